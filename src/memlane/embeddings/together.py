"""Together AI embeddings: its OpenAI-compatible API (POST {base}/embeddings).

Config keys (mem0's names): `model` (default intfloat/multilingual-e5-large-instruct, mem0's default),
`api_key` (else TOGETHER_API_KEY), `base_url` (default https://api.together.xyz/v1), `embedding_dims` (the
size to expect; found by one probe call when unset and the model is not known here), `model_kwargs`; plus
`batch_size`, `max_concurrency`, `timeout`, `max_retries`, `extra_headers`, as the openai embedder.
"""
from __future__ import annotations

from ..errors import ConfigurationError
from ..provider_config import ProviderConfig
from .openai import OpenAIEmbedder

DEFAULT_MODEL = "intfloat/multilingual-e5-large-instruct"
DEFAULT_BASE_URL = "https://api.together.xyz/v1"
# Output sizes of Together's serverless embedding models (a probe call finds any other's).
KNOWN_DIMENSIONS = {"intfloat/multilingual-e5-large-instruct": 1024, "BAAI/bge-large-en-v1.5": 1024,
                    "BAAI/bge-base-en-v1.5": 768, "togethercomputer/m2-bert-80M-8k-retrieval": 768,
                    "togethercomputer/m2-bert-80M-32k-retrieval": 768}


class TogetherEmbedder(OpenAIEmbedder):
    name = "together"

    def _configure(self, config: ProviderConfig) -> None:
        self.model = config.first("model", default=DEFAULT_MODEL)
        self.api_key = config.first("api_key", env=("TOGETHER_API_KEY",))
        if not self.api_key:
            raise ConfigurationError("together embedder: no API key; set TOGETHER_API_KEY or config api_key")
        self.base_url = config.first("together_base_url", "base_url", default=DEFAULT_BASE_URL).rstrip("/")
        self._configure_common(config)
        native = KNOWN_DIMENSIONS.get(self.model)
        if self.embedding_dims and native and self.embedding_dims != native:
            raise ConfigurationError(f"together embedder: {self.model} gives {native}-dimensional vectors, not "
                                     f"embedding_dims={self.embedding_dims}")
        self._dimension = self.embedding_dims or native
