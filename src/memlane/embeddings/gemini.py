"""Gemini embeddings: POST {base}/v1beta/models/{model}:batchEmbedContents (at most 100 texts per request),
authenticated by the `x-goog-api-key` header.

Config keys (mem0's names): `model` (default gemini-embedding-001; a leading "models/" is accepted),
`api_key` (else GEMINI_API_KEY, else GOOGLE_API_KEY), `embedding_dims` or `output_dimensionality` (sent as
outputDimensionality), `memory_add_embedding_type` / `memory_update_embedding_type` /
`memory_search_embedding_type` (the taskType per purpose; defaults RETRIEVAL_DOCUMENT for add and update,
RETRIEVAL_QUERY for search), `model_kwargs` (extra fields of each request, e.g. title), `gemini_base_url`,
`batch_size`, `timeout`, `max_retries`.
"""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Optional
from urllib.parse import quote

from ..errors import ConfigurationError
from ..http import HTTPCall, HTTPResult
from ..provider_config import MEM0_EMBEDDER_KEYS, ProviderConfig
from .base import Purpose
from .remote import RemoteEmbedder

DEFAULT_MODEL = "gemini-embedding-001"
DEFAULT_BASE_URL = "https://generativelanguage.googleapis.com"
KNOWN_DIMENSIONS = {"gemini-embedding-001": 3072, "text-embedding-004": 768, "embedding-001": 768}
MAX_BATCH = 100  # batchEmbedContents accepts at most 100 requests
TASK_TYPES = ("RETRIEVAL_DOCUMENT", "RETRIEVAL_QUERY", "SEMANTIC_SIMILARITY", "CLASSIFICATION", "CLUSTERING",
              "QUESTION_ANSWERING", "FACT_VERIFICATION", "CODE_RETRIEVAL_QUERY", "TASK_TYPE_UNSPECIFIED")


def known_dimension(model: str) -> Optional[int]:
    return KNOWN_DIMENSIONS.get(model)


class GeminiEmbedder(RemoteEmbedder):
    name = "gemini"
    max_batch = MAX_BATCH

    def __init__(self, config: Mapping[str, Any] | None = None):
        cfg = ProviderConfig(config, self.name, "embedder", ignored=MEM0_EMBEDDER_KEYS)
        super().__init__(cfg)
        model = cfg.first("model", default=DEFAULT_MODEL)
        self.model = model[len("models/"):] if model.startswith("models/") else model
        self.api_key = cfg.first("api_key", env=("GEMINI_API_KEY", "GOOGLE_API_KEY"))
        if not self.api_key:
            raise ConfigurationError("gemini embedder: no API key; set GEMINI_API_KEY (or GOOGLE_API_KEY) "
                                     "or config api_key")
        self.base_url = cfg.first("gemini_base_url", "base_url", default=DEFAULT_BASE_URL).rstrip("/")
        dims = cfg.positive_int("embedding_dims")
        alias = cfg.positive_int("output_dimensionality")
        if dims is not None and alias is not None and dims != alias:
            raise ConfigurationError("embedding_dims and output_dimensionality disagree")
        self.embedding_dims = dims or alias
        native = known_dimension(self.model)
        if self.embedding_dims and native and self.embedding_dims > native:
            raise ConfigurationError(f"{self.model} gives at most {native} dimensions, "
                                     f"not embedding_dims={self.embedding_dims}")
        self.task_types: dict[str, str] = {}
        for purpose, key, default in (("add", "memory_add_embedding_type", "RETRIEVAL_DOCUMENT"),
                                      ("update", "memory_update_embedding_type", "RETRIEVAL_DOCUMENT"),
                                      ("search", "memory_search_embedding_type", "RETRIEVAL_QUERY")):
            value = str(cfg.first(key, default=default)).upper()
            if value not in TASK_TYPES:
                raise ConfigurationError(f"{key} must be one of {', '.join(TASK_TYPES)}, not {value!r}")
            self.task_types[purpose] = value
        self.model_kwargs = cfg.mapping("model_kwargs")
        cfg.done()
        self._dimension = self.embedding_dims or native

    def build(self, texts: list[str], purpose: Purpose) -> HTTPCall:
        resource = f"models/{self.model}"
        one: dict[str, Any] = {"model": resource, "taskType": self.task_types.get(purpose, "RETRIEVAL_DOCUMENT")}
        if self.embedding_dims:
            one["outputDimensionality"] = self.embedding_dims
        one.update(self.model_kwargs)
        requests = [{**one, "content": {"parts": [{"text": text}]}} for text in texts]
        url = f"{self.base_url}/v1beta/models/{quote(self.model, safe='')}:batchEmbedContents"
        return HTTPCall("POST", url, {"content-type": "application/json", "x-goog-api-key": self.api_key},
                        {"requests": requests})

    def parse(self, result: HTTPResult, count: int) -> list[Any]:
        payload = self._json(result)
        rows = payload.get("embeddings") if isinstance(payload, dict) else None
        if not isinstance(rows, list):
            raise self._shape_error("no 'embeddings' list")
        try:
            return [row["values"] for row in rows]
        except (KeyError, TypeError) as exc:
            raise self._shape_error(f"bad row: {exc!r}") from exc
