"""Ollama embeddings: POST {base}/api/embed with {"model", "input": [...]} -> {"embeddings": [[...], ...]}.

Config keys (mem0's names): `model` (default nomic-embed-text), `ollama_base_url` (else OLLAMA_HOST, read
by Ollama's rules as in memlane/ollama_host.py, else http://localhost:11434), `embedding_dims` (the size to
expect; Ollama has no truncation parameter, so a mismatch is reported, not hidden), `model_kwargs` (extra
body fields: options, truncate, keep_alive...), `api_key` (optional bearer token, for a proxy or
ollama.com), `batch_size`, `timeout`, `max_retries`.
"""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Optional

from ..http import HTTPCall, HTTPResult
from ..ollama_host import ollama_base_url
from ..provider_config import MEM0_EMBEDDER_KEYS, ProviderConfig
from .base import Purpose
from .remote import RemoteEmbedder

DEFAULT_MODEL = "nomic-embed-text"
KNOWN_DIMENSIONS = {"nomic-embed-text": 768, "mxbai-embed-large": 1024, "all-minilm": 384,
                    "snowflake-arctic-embed": 1024, "bge-m3": 1024, "bge-large": 1024,
                    "embeddinggemma": 768, "granite-embedding": 384, "paraphrase-multilingual": 768}


def known_dimension(model: str) -> Optional[int]:
    name = model[:-len(":latest")] if model.endswith(":latest") else model
    return KNOWN_DIMENSIONS.get(name)


class OllamaEmbedder(RemoteEmbedder):
    name = "ollama"
    max_batch = 256

    def __init__(self, config: Mapping[str, Any] | None = None):
        cfg = ProviderConfig(config, self.name, "embedder", ignored=MEM0_EMBEDDER_KEYS)
        super().__init__(cfg)
        self.model = cfg.first("model", default=DEFAULT_MODEL)
        self.base_url = ollama_base_url(cfg.first("ollama_base_url", "base_url"))
        self.api_key = cfg.first("api_key", env=("OLLAMA_API_KEY",))
        self.embedding_dims = cfg.positive_int("embedding_dims")
        self.model_kwargs = cfg.mapping("model_kwargs")
        cfg.done()
        self._dimension = self.embedding_dims or known_dimension(self.model)

    def build(self, texts: list[str], purpose: Purpose) -> HTTPCall:
        headers = {"content-type": "application/json"}
        if self.api_key:
            headers["authorization"] = f"Bearer {self.api_key}"
        return HTTPCall("POST", f"{self.base_url}/api/embed", headers,
                        {"model": self.model, "input": texts, **self.model_kwargs})

    def parse(self, result: HTTPResult, count: int) -> list[Any]:
        payload = self._json(result)
        vectors = payload.get("embeddings") if isinstance(payload, dict) else None
        if not isinstance(vectors, list):
            raise self._shape_error("no 'embeddings' list")
        return vectors
