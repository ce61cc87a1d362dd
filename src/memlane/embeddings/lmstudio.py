"""LM Studio embeddings: its local server's OpenAI-compatible API (POST {base}/embeddings).

Config keys (mem0's names): `model` (default mem0's, nomic-embed-text-v1.5 as LM Studio names it; use the
name LM Studio shows), `lmstudio_base_url` (else LMSTUDIO_BASE_URL, else http://localhost:1234/v1; `base_url`
works too), `api_key` (optional: LM Studio ignores it unless its server requires one; else LMSTUDIO_API_KEY),
`embedding_dims` (the size to expect; found by one probe call when unset), `model_kwargs`; plus `batch_size`,
`max_concurrency`, `timeout`, `max_retries`, `extra_headers`, as the openai embedder.
"""
from __future__ import annotations

from ..provider_config import ProviderConfig
from .openai import OpenAIEmbedder

DEFAULT_MODEL = "nomic-ai/nomic-embed-text-v1.5-GGUF/nomic-embed-text-v1.5.f16.gguf"
DEFAULT_BASE_URL = "http://localhost:1234/v1"


class LMStudioEmbedder(OpenAIEmbedder):
    name = "lmstudio"

    def _configure(self, config: ProviderConfig) -> None:
        self.model = config.first("model", default=DEFAULT_MODEL)
        self.api_key = config.first("api_key", env=("LMSTUDIO_API_KEY",), default="lm-studio")
        self.base_url = config.first("lmstudio_base_url", "base_url", env=("LMSTUDIO_BASE_URL",),
                                     default=DEFAULT_BASE_URL).rstrip("/")
        self._configure_common(config)
