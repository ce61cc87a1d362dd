"""Amazon Bedrock embeddings over InvokeModel (POST {endpoint}/model/{modelId}/invoke), signed with SigV4
(memlane.aws_sigv4; no boto3 needed).

Models: amazon.titan-embed-text-v2:0 (one text per call; `dimensions` 256/512/1024, default 1024),
amazon.titan-embed-text-v1 (one text per call; 1536), cohere.embed-english-v3 / cohere.embed-multilingual-v3
(up to 96 texts per call; 1024; input_type search_document for add and update, search_query for search) and
cohere.embed-v4:0 (up to 96 texts; output_dimension 256/512/1024/1536, default 1536). Cross-region inference
profile ids (us.cohere.embed-v4:0, ...) work the same.

Config keys (mem0's names): `model` (default amazon.titan-embed-text-v2:0), `aws_region` (else AWS_REGION /
AWS_DEFAULT_REGION, else us-west-2), `aws_access_key_id`, `aws_secret_access_key`, `aws_session_token` (else
the AWS_* environment variables, else botocore's credential chain when botocore is installed),
`embedding_dims`, `model_kwargs` (extra body fields, e.g. {"truncate": "END"} for Cohere), `endpoint_url`
(else AWS_ENDPOINT_URL_BEDROCK_RUNTIME / AWS_ENDPOINT_URL), `batch_size`, `timeout`, `max_retries`.
"""
from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import datetime, timezone
from typing import Any, Callable, Optional
from urllib.parse import quote

from ..aws_sigv4 import Credentials, bedrock_region_endpoint, botocore_credentials, sign
from ..errors import ConfigurationError
from ..http import HTTPCall, HTTPResult
from ..provider_config import MEM0_EMBEDDER_KEYS, ProviderConfig
from .base import Purpose
from .remote import RemoteEmbedder

DEFAULT_MODEL = "amazon.titan-embed-text-v2:0"
SERVICE = "bedrock"
COHERE_MAX_BATCH = 96
# family: (native dimension, allowed embedding_dims, texts per call)
FAMILIES: dict[str, tuple[int, tuple[int, ...], int]] = {
    "titan-v2": (1024, (256, 512, 1024), 1),
    "titan-v1": (1536, (1536,), 1),
    "cohere-v3": (1024, (1024,), COHERE_MAX_BATCH),
    "cohere-v4": (1536, (256, 512, 1024, 1536), COHERE_MAX_BATCH),
}


def family(model: str) -> str:
    name = model.lower()
    if "titan-embed-text-v2" in name:
        return "titan-v2"
    if "titan-embed-text-v1" in name or "titan-embed-g1-text" in name:
        return "titan-v1"
    if "cohere.embed-english-v3" in name or "cohere.embed-multilingual-v3" in name:
        return "cohere-v3"
    if "cohere.embed-v4" in name:
        return "cohere-v4"
    raise ConfigurationError(f"aws_bedrock embedder: unsupported model {model!r}; supported: Titan Text "
                             "Embeddings v1/v2 (amazon.titan-embed-text-*) and Cohere Embed v3/v4 (cohere.embed-*)")


class BedrockEmbedder(RemoteEmbedder):
    name = "aws_bedrock"
    max_batch = COHERE_MAX_BATCH

    def __init__(self, config: Mapping[str, Any] | None = None):
        cfg = ProviderConfig(config, self.name, "embedder", ignored=MEM0_EMBEDDER_KEYS)
        super().__init__(cfg)
        self.model = cfg.first("model", default=DEFAULT_MODEL)
        self.family = family(self.model)
        native, allowed, per_call = FAMILIES[self.family]
        self.max_batch = min(self.max_batch, per_call)
        self.region, self.endpoint = bedrock_region_endpoint(cfg, "endpoint_url", "aws_endpoint_url")
        access = cfg.first("aws_access_key_id", env=("AWS_ACCESS_KEY_ID",))
        secret = cfg.first("aws_secret_access_key", env=("AWS_SECRET_ACCESS_KEY",))
        token = cfg.first("aws_session_token", env=("AWS_SESSION_TOKEN",))
        self.embedding_dims = cfg.positive_int("embedding_dims")
        if self.embedding_dims and self.embedding_dims not in allowed:
            raise ConfigurationError(f"{self.model} gives {', '.join(map(str, allowed))}-dimensional vectors, "
                                     f"not embedding_dims={self.embedding_dims}")
        self.model_kwargs = cfg.mapping("model_kwargs")
        cfg.done()
        self._credentials = self._credential_source(access, secret, token)
        self.clock: Callable[[], datetime] = lambda: datetime.now(timezone.utc)
        self._dimension = self.embedding_dims or native

    @staticmethod
    def _credential_source(access: Optional[str], secret: Optional[str],
                           token: Optional[str]) -> Callable[[], Credentials]:
        if access and secret:
            return lambda: (access, secret, token)
        if access or secret:
            raise ConfigurationError("aws_bedrock embedder: set both aws_access_key_id and aws_secret_access_key "
                                     "(or AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY)")
        found = botocore_credentials(None, "aws_bedrock embedder")  # profiles, SSO, instance roles
        if found is not None:
            return found
        raise ConfigurationError("aws_bedrock embedder: no AWS credentials; set AWS_ACCESS_KEY_ID and "
                                 "AWS_SECRET_ACCESS_KEY (and AWS_SESSION_TOKEN for temporary credentials), "
                                 "or config aws_access_key_id / aws_secret_access_key")

    # ---------------------------------------------------------------- pure (given the clock)

    def body(self, texts: list[str], purpose: Purpose) -> dict[str, Any]:
        if self.family.startswith("titan"):
            body: dict[str, Any] = {"inputText": texts[0]}
            if self.family == "titan-v2":
                body["normalize"] = True
                if self.embedding_dims:
                    body["dimensions"] = self.embedding_dims
        else:
            body = {"texts": texts, "input_type": "search_query" if purpose == "search" else "search_document"}
            if self.family == "cohere-v4":
                body["embedding_types"] = ["float"]
                if self.embedding_dims:
                    body["output_dimension"] = self.embedding_dims
        body.update(self.model_kwargs)
        return body

    def build(self, texts: list[str], purpose: Purpose) -> HTTPCall:
        url = f"{self.endpoint}/model/{quote(self.model, safe='')}/invoke"
        payload = json.dumps(self.body(texts, purpose), separators=(",", ":")).encode("utf-8")
        access, secret, token = self._credentials()
        headers = sign("POST", url, {"content-type": "application/json", "accept": "application/json"},
                       payload, access, secret, token, self.region, SERVICE, self.clock())
        return HTTPCall("POST", url, headers, content=payload)

    def parse(self, result: HTTPResult, count: int) -> list[Any]:
        payload = self._json(result)
        if not isinstance(payload, dict):
            raise self._shape_error("not a JSON object")
        if self.family.startswith("titan"):
            vector = payload.get("embedding")
            if not isinstance(vector, list):
                raise self._shape_error("no 'embedding' list")
            return [vector]
        vectors = payload.get("embeddings")
        if isinstance(vectors, dict):  # embedding_types given: {"float": [[...], ...]}
            vectors = vectors.get("float")
        if not isinstance(vectors, list):
            raise self._shape_error("no 'embeddings' list")
        return vectors
