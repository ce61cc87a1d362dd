"""The client, sans-I/O: each method is a generator that yields HTTP calls (and sleeps between retries)
and returns the result; memlane.http's send_sync / send_async do the I/O, so MemoryClient and
AsyncMemoryClient share one body (api.py). Retries on 429, 5xx and transport errors with the providers'
backoff (memlane.http.RetryPolicy: exponential with full jitter, honouring Retry-After); HTTP errors come
back as memlane's typed errors."""
from __future__ import annotations

import time
from typing import Any, Callable, Generator, Optional, Union
from urllib.parse import quote

import httpx

from .. import errors
from ..errors import ConfigurationError, MemlaneError, ProviderError
from ..http import HTTPCall, HTTPResult, RetryPolicy, Sleep

RETRY_STATUS = frozenset({429, 500, 502, 503, 504})
Step = Union[HTTPCall, Sleep]
Op = Generator[Step, Any, Any]
PROVIDER = "memlane-server"


class AuthenticationError(ConfigurationError):
    """The server refused the API key (HTTP 401): missing, unknown or revoked."""


class PermissionDeniedError(ConfigurationError):
    """The key may not do this (HTTP 403): not an admin key, or a user_id outside the key's user_ids."""


class RateLimitError(ProviderError):
    """Still rate limited (HTTP 429) after the retries."""


_BY_NAME: dict[str, type[MemlaneError]] = {
    name: cls for name, cls in vars(errors).items()
    if isinstance(cls, type) and issubclass(cls, MemlaneError)
}
_BY_NAME.update({"Unauthorized": AuthenticationError, "Forbidden": PermissionDeniedError,
                 "RateLimited": RateLimitError})


def _detail(result: HTTPResult) -> tuple[str, Optional[str]]:
    try:
        body = result.json()
    except ValueError:
        return result.body[:500].decode("utf-8", "replace") or f"HTTP {result.status}", None
    if not isinstance(body, dict):
        return str(body)[:500], None
    detail = body.get("detail")
    if isinstance(detail, list):  # request validation: [{loc, msg, type}, ...]
        detail = "; ".join(f"{'.'.join(map(str, d.get('loc', [])))}: {d.get('msg')}" if isinstance(d, dict)
                           else str(d) for d in detail)
    name = body.get("error")
    return str(detail if detail is not None else body)[:2000], name if isinstance(name, str) else None


def error_for(result: HTTPResult) -> MemlaneError:
    """The typed error of a non-2xx answer: the class the server names, else one chosen by the status."""
    message, name = _detail(result)
    cls = _BY_NAME.get(name or "")
    status = result.status
    if cls is None:
        if status == 401:
            cls = AuthenticationError
        elif status == 403:
            cls = PermissionDeniedError
        elif status == 404:
            cls = errors.NotFoundError
        elif status == 409:
            cls = errors.ConflictError
        elif status == 429:
            cls = RateLimitError
        elif status in (400, 413, 422):
            cls = errors.ValidationError
        elif status >= 500:
            cls = errors.InternalError if status == 500 else ProviderError
        else:
            cls = ProviderError
    if issubclass(cls, ProviderError):
        return cls(message, provider=PROVIDER, status=status)
    return cls(message)


class Core:
    """Builds the calls; `request` is the one retry loop."""

    def __init__(self, host: str, api_key: Optional[str], policy: RetryPolicy):
        if not isinstance(host, str) or not host.startswith(("http://", "https://")):
            raise ConfigurationError(f"host must be an http:// or https:// URL, got {host!r}")
        self.base = host.rstrip("/")
        self.headers = {"Accept": "application/json"}
        if api_key:
            self.headers["Authorization"] = f"Token {api_key}"
        self.policy = policy

    def url(self, path: str, *ids: str) -> str:
        return self.base + path.format(*(quote(str(i), safe="") for i in ids))

    def request(self, method: str, path: str, *ids: str, json: Any = None,
                not_found: Callable[[], Any] | None = None) -> Op:
        call = HTTPCall(method, self.url(path, *ids), dict(self.headers), json=json)
        attempt = 0
        while True:
            try:
                result: HTTPResult = yield call
            except (httpx.TimeoutException, httpx.TransportError) as exc:
                if attempt >= self.policy.max_retries:
                    raise ProviderError(f"{self.base}: request failed after {attempt + 1} attempts: {exc!r}",
                                        provider=PROVIDER) from exc
                yield Sleep(self.policy.delay(attempt, None))
                attempt += 1
                continue
            if 200 <= result.status < 300:
                return result.json()
            if result.status == 404 and not_found is not None:
                return not_found()
            if result.status in RETRY_STATUS and attempt < self.policy.max_retries:
                yield Sleep(self.policy.delay(attempt, result.headers.get("retry-after")))
                attempt += 1
                continue
            raise error_for(result)

    def wait(self, job_id: str, timeout: Optional[float]) -> Op:
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            job = yield from self.request("GET", "/api/jobs/{}", job_id)
            if job["status"] in ("done", "failed") or (deadline is not None and time.monotonic() > deadline):
                return job
            yield Sleep(0.05)
