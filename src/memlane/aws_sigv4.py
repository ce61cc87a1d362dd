"""AWS Signature Version 4 request signing, as a pure function (no clock, no I/O, no botocore).

`sign()` returns the headers to send: the caller's own, plus `host`, `x-amz-date`, `x-amz-security-token`
(when a session token is given) and `authorization`. Every header in the result except `authorization` is
signed. Checked against AWS's published SigV4 test suite (tests/test_embedders.py).

Canonical URI: the path exactly as it goes on the wire, URI-encoded once more with `/` and `~` kept, which is
what AWS expects of every service but S3. A Bedrock model id such as `amazon.titan-embed-text-v2:0` therefore
goes on the wire as `.../model/amazon.titan-embed-text-v2%3A0/invoke` and is signed as `...%253A0...`
(botocore does the same). Dot segments are not normalised: callers build clean paths.
"""
from __future__ import annotations

import hashlib
import hmac
from datetime import datetime, timezone
from typing import Callable, Mapping, Optional
from urllib.parse import SplitResult, parse_qsl, quote, urlsplit

from .errors import ConfigurationError
from .provider_config import ProviderConfig

ALGORITHM = "AWS4-HMAC-SHA256"


def _hmac(key: bytes, message: str) -> bytes:
    return hmac.new(key, message.encode("utf-8"), hashlib.sha256).digest()


def signing_key(secret_key: str, date: str, region: str, service: str) -> bytes:
    key = _hmac(("AWS4" + secret_key).encode("utf-8"), date)
    key = _hmac(key, region)
    key = _hmac(key, service)
    return _hmac(key, "aws4_request")


def _host(url_parts: SplitResult) -> str:
    host = (url_parts.hostname or "").lower()
    if ":" in host:  # IPv6 literal
        host = f"[{host}]"
    port = url_parts.port
    default = {"http": 80, "https": 443}.get(url_parts.scheme)
    return host if port is None or port == default else f"{host}:{port}"


def _canonical_query(query: str) -> str:
    pairs = parse_qsl(query, keep_blank_values=True)
    encoded = sorted((quote(k, safe="-_.~"), quote(v, safe="-_.~")) for k, v in pairs)
    return "&".join(f"{k}={v}" for k, v in encoded)


def _canonical_value(value: str) -> str:
    return " ".join(str(value).split())


def canonical_request(method: str, url: str, headers: Mapping[str, str], payload_hash: str) -> tuple[str, str]:
    """(canonical request, signed-headers list) for `headers` (which must already hold host and x-amz-date)."""
    parts = urlsplit(url)
    path = quote(parts.path or "/", safe="/~")
    lowered: dict[str, list[str]] = {}
    for name, value in headers.items():
        lowered.setdefault(name.lower().strip(), []).append(_canonical_value(value))
    names = sorted(lowered)
    canonical_headers = "".join(f"{name}:{','.join(lowered[name])}\n" for name in names)
    signed = ";".join(names)
    request = "\n".join([method.upper(), path, _canonical_query(parts.query), canonical_headers, signed,
                         payload_hash])
    return request, signed


def sign(method: str, url: str, headers: Optional[Mapping[str, str]], body: Optional[bytes], access_key: str,
         secret_key: str, session_token: Optional[str], region: str, service: str,
         now: datetime) -> dict[str, str]:
    """Sign a request; returns the full header dict to send (names lower-cased).

    `now` is the signing time (timezone-aware, or naive UTC). `body` is the exact bytes sent."""
    if now.tzinfo is not None:
        now = now.astimezone(timezone.utc)
    amz_date = now.strftime("%Y%m%dT%H%M%SZ")
    date = amz_date[:8]
    out: dict[str, str] = {}
    for name, value in (headers or {}).items():
        if name.lower() in ("authorization", "x-amz-date", "x-amz-security-token", "host"):
            continue
        out[name.lower()] = str(value)
    out["host"] = _host(urlsplit(url))
    out["x-amz-date"] = amz_date
    if session_token:
        out["x-amz-security-token"] = session_token
    payload_hash = hashlib.sha256(body or b"").hexdigest()
    request, signed = canonical_request(method, url, out, payload_hash)
    scope = f"{date}/{region}/{service}/aws4_request"
    string_to_sign = "\n".join([ALGORITHM, amz_date, scope,
                                hashlib.sha256(request.encode("utf-8")).hexdigest()])
    signature = hmac.new(signing_key(secret_key, date, region, service), string_to_sign.encode("utf-8"),
                         hashlib.sha256).hexdigest()
    out["authorization"] = (f"{ALGORITHM} Credential={access_key}/{scope}, SignedHeaders={signed}, "
                            f"Signature={signature}")
    return out


# ---------------------------------------------------------------- shared by the Bedrock LLM and embedder

Credentials = tuple[str, str, Optional[str]]
BEDROCK_DEFAULT_REGION = "us-west-2"


def bedrock_region_endpoint(config: ProviderConfig, *endpoint_keys: str) -> tuple[str, str]:
    """Take `aws_region` and the endpoint keys (the first one set wins): (region, bedrock-runtime base URL
    without trailing slash). Region: config, else AWS_REGION / AWS_DEFAULT_REGION, else us-west-2; endpoint:
    config, else AWS_ENDPOINT_URL_BEDROCK_RUNTIME / AWS_ENDPOINT_URL, else the region's public endpoint."""
    region = config.first("aws_region", env=("AWS_REGION", "AWS_DEFAULT_REGION"), default=BEDROCK_DEFAULT_REGION)
    endpoint = config.first(*endpoint_keys, env=("AWS_ENDPOINT_URL_BEDROCK_RUNTIME", "AWS_ENDPOINT_URL"),
                            default=f"https://bedrock-runtime.{region}.amazonaws.com")
    return region, endpoint.rstrip("/")


def botocore_credentials(profile: Optional[str], who: str) -> Optional[Callable[[], Credentials]]:
    """botocore's credential chain (profiles, SSO, instance roles) when botocore is installed, else None.
    The returned callable refreshes temporary credentials when they are due."""
    try:
        import botocore.session
    except ImportError:
        if profile:
            raise ConfigurationError(f"{who}: aws_profile needs botocore (pip install 'memlane[aws]')") from None
        return None
    try:
        found = botocore.session.Session(profile=profile).get_credentials()
    except Exception as exc:  # ProfileNotFound, a malformed config file...
        raise ConfigurationError(f"{who}: cannot load AWS credentials: {exc}") from exc
    if found is None:
        return None

    def resolve() -> Credentials:
        frozen = found.get_frozen_credentials()
        return frozen.access_key, frozen.secret_key, frozen.token
    return resolve
