"""OpenAI embeddings (POST {base}/embeddings), and any server speaking that API (vLLM, LM Studio, TEI...).

Config keys (mem0's names): `model` (default text-embedding-3-small), `api_key` (else OPENAI_API_KEY),
`openai_base_url` (else OPENAI_BASE_URL / OPENAI_API_BASE, else https://api.openai.com/v1), `embedding_dims`
(sent as `dimensions` to text-embedding-3-*; for other models it is the size to expect), `model_kwargs`
(extra JSON body fields); plus `batch_size` (at most 2048), `max_concurrency`, `timeout`, `max_retries`,
`extra_headers`. The dimension is embedding_dims, else the model's known size, else one probe call.
"""
from __future__ import annotations

import base64
from collections.abc import Mapping
from typing import Any, Optional

import numpy as np

from ..errors import ConfigurationError
from ..http import HTTPCall, HTTPResult
from ..provider_config import MEM0_EMBEDDER_KEYS, ProviderConfig
from .base import Purpose
from .remote import RemoteEmbedder

DEFAULT_MODEL = "text-embedding-3-small"
DEFAULT_BASE_URL = "https://api.openai.com/v1"
# Native output sizes; text-embedding-3-* accept `dimensions` up to that size (Matryoshka truncation).
KNOWN_DIMENSIONS = {"text-embedding-3-small": 1536, "text-embedding-3-large": 3072,
                    "text-embedding-ada-002": 1536}
# OpenAI: at most 2048 inputs and 300k tokens per request; the character cap keeps long texts under the
# token limit (2 characters per token would still fit).
MAX_BATCH = 2048
MAX_BATCH_CHARS = 600_000


def supports_dimensions(model: str) -> bool:
    return model.split("/")[-1].startswith("text-embedding-3")


def known_dimension(model: str) -> Optional[int]:
    return KNOWN_DIMENSIONS.get(model.split("/")[-1])


class OpenAIEmbedder(RemoteEmbedder):
    name = "openai"
    max_batch = MAX_BATCH
    max_batch_chars = MAX_BATCH_CHARS

    def __init__(self, config: Mapping[str, Any] | None = None):
        cfg = ProviderConfig(config, self.name, "embedder", ignored=MEM0_EMBEDDER_KEYS)
        super().__init__(cfg)
        self._configure(cfg)
        cfg.done()

    def _configure(self, config: ProviderConfig) -> None:
        self.model = config.first("model", default=DEFAULT_MODEL)
        self.api_key = config.first("api_key", env=("OPENAI_API_KEY",))
        if not self.api_key:
            raise ConfigurationError("openai embedder: no API key; set OPENAI_API_KEY or config api_key")
        self.base_url = config.first("openai_base_url", "base_url", env=("OPENAI_BASE_URL", "OPENAI_API_BASE"),
                                     default=DEFAULT_BASE_URL).rstrip("/")
        self._configure_common(config)

    def _configure_common(self, config: ProviderConfig) -> None:
        self.embedding_dims = config.positive_int("embedding_dims")
        self.model_kwargs = config.mapping("model_kwargs")
        self.extra_headers = config.mapping("extra_headers")
        native = known_dimension(self.model)
        if self.embedding_dims and native:
            if not supports_dimensions(self.model) and self.embedding_dims != native:
                raise ConfigurationError(f"{self.model} gives {native}-dimensional vectors only, "
                                         f"not embedding_dims={self.embedding_dims}")
            if self.embedding_dims > native:
                raise ConfigurationError(f"{self.model} gives at most {native} dimensions, "
                                         f"not embedding_dims={self.embedding_dims}")
        self._dimension = self.embedding_dims or native

    # ---------------------------------------------------------------- pure

    def url(self) -> str:
        return f"{self.base_url}/embeddings"

    def headers(self) -> dict[str, str]:
        return {"content-type": "application/json", "authorization": f"Bearer {self.api_key}",
                **self.extra_headers}

    def body(self, texts: list[str]) -> dict[str, Any]:
        # OpenAI rejects empty strings; a space embeds as "nothing" just the same.
        body: dict[str, Any] = {"model": self.model, "input": [t if t else " " for t in texts],
                                "encoding_format": "float"}
        if self.embedding_dims and supports_dimensions(self.model):
            body["dimensions"] = self.embedding_dims
        body.update(self.model_kwargs)
        return body

    def build(self, texts: list[str], purpose: Purpose) -> HTTPCall:
        return HTTPCall("POST", self.url(), self.headers(), self.body(texts))

    def parse(self, result: HTTPResult, count: int) -> list[Any]:
        payload = self._json(result)
        data = payload.get("data") if isinstance(payload, dict) else None
        if not isinstance(data, list):
            raise self._shape_error("no 'data' list")
        try:
            # Rows carry their index; the order of the list itself is not promised.
            rows = sorted(data, key=lambda row: int(row["index"])) if all(
                isinstance(r, dict) and "index" in r for r in data) else data
            vectors = [row["embedding"] for row in rows]
        except (KeyError, TypeError, ValueError) as exc:
            raise self._shape_error(f"bad row: {exc!r}") from exc
        return [np.frombuffer(base64.b64decode(v), dtype="<f4").tolist() if isinstance(v, str) else v
                for v in vectors]
