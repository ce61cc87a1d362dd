"""Hugging Face embeddings: a sentence-transformers model loaded from a local path or the local Hugging Face
cache, offline only (local_files_only: nothing is downloaded), or a text-embeddings-inference server.

Needs the optional extra: pip install 'memlane[huggingface]' (sentence-transformers, which brings torch).

Config keys (mem0's names): `model` (a directory holding a sentence-transformers model, or a model name
already in the local cache; default multi-qa-MiniLM-L6-cos-v1, mem0's default), `model_kwargs` (keyword
arguments of SentenceTransformer(), e.g. device, trust_remote_code, truncate_dim), `embedding_dims` (must
equal the model's output size), `batch_size`; or `huggingface_base_url` (a TEI server's OpenAI-compatible
API: then `api_key`, `timeout`, `max_retries` apply and nothing is loaded locally).

Models that define "query" and "document" prompts (e5, bge, nomic...) get them per purpose: search texts
are encoded as queries, added and updated texts as documents.
"""
from __future__ import annotations

import asyncio
import threading
from collections.abc import Mapping
from typing import Any

import numpy as np

from ..errors import ConfigurationError, ProviderError, missing_extra
from ..provider_config import MEM0_EMBEDDER_KEYS, ProviderConfig
from .base import Purpose, normalise
from .openai import OpenAIEmbedder
from .remote import check_texts

DEFAULT_MODEL = "multi-qa-MiniLM-L6-cos-v1"


class TEIEmbedder(OpenAIEmbedder):
    """A text-embeddings-inference server through its OpenAI-compatible API, named as the huggingface
    provider in errors and model ids."""
    name = "huggingface"


class HuggingFaceEmbedder:
    name = "huggingface"

    def __init__(self, config: Mapping[str, Any] | None = None):
        cfg = ProviderConfig(config, self.name, "embedder", ignored=MEM0_EMBEDDER_KEYS)
        base_url = cfg.take("huggingface_base_url")
        self._remote = None
        if base_url:
            self.model = cfg.first("model", default="tei")
            api_key = cfg.first("api_key", default="tei")
            # embedding_dims, model_kwargs, timeout...: the remaining keys are taken and checked there
            self._remote = TEIEmbedder({**cfg.rest(), "openai_base_url": base_url, "model": self.model,
                                        "api_key": api_key})
            return
        self.model = str(cfg.first("model", default=DEFAULT_MODEL))
        model_kwargs = cfg.mapping("model_kwargs")
        dims = cfg.positive_int("embedding_dims")
        self.batch_size = cfg.positive_int("batch_size") or 32
        cfg.done()
        try:
            from sentence_transformers import SentenceTransformer
        except ImportError as exc:
            raise missing_extra("sentence-transformers", "huggingface") from exc
        model_kwargs.pop("local_files_only", None)  # offline, always
        try:
            self._model = SentenceTransformer(self.model, local_files_only=True, **model_kwargs)
        except TypeError as exc:
            raise ConfigurationError(f"huggingface embedder: bad model_kwargs: {exc}") from exc
        except (OSError, ValueError) as exc:
            raise ConfigurationError(
                f"huggingface embedder: cannot load {self.model!r} offline (memlane never downloads models): "
                f"{exc}. Pass a local directory as `model`, or put the model in the Hugging Face cache first."
            ) from exc
        get_dim = getattr(self._model, "get_embedding_dimension", None) or \
            self._model.get_sentence_embedding_dimension
        native = get_dim()
        if native is None:  # some custom modules do not say; ask the model once
            native = int(self._model.encode(["dimension probe"], convert_to_numpy=True).shape[1])
        if dims is not None and dims != native:
            raise ConfigurationError(f"{self.model} gives {native}-dimensional vectors, not embedding_dims={dims} "
                                     "(pass model_kwargs={'truncate_dim': N} to truncate a Matryoshka model)")
        self._dimension = int(native)
        prompts = getattr(self._model, "prompts", None) or {}
        self._prompts = {"search": "query" if "query" in prompts else None,
                         "add": next((p for p in ("document", "passage") if p in prompts), None)}
        self._prompts["update"] = self._prompts["add"]
        self._lock = threading.Lock()

    @property
    def model_id(self) -> str:
        return f"{self.name}:{self.model}"

    @property
    def dimension(self) -> int:
        return self._remote.dimension if self._remote is not None else self._dimension

    def embed(self, texts: list[str], purpose: Purpose = "add") -> np.ndarray:
        if self._remote is not None:
            return self._remote.embed(texts, purpose)
        texts = check_texts(texts)
        if not texts:
            return np.zeros((0, self._dimension), dtype=np.float32)
        with self._lock:
            vectors = self._model.encode(texts, prompt_name=self._prompts.get(purpose), batch_size=self.batch_size,
                                         convert_to_numpy=True, normalize_embeddings=True,
                                         show_progress_bar=False)
        vectors = np.asarray(vectors, dtype=np.float32)
        if vectors.shape != (len(texts), self._dimension):
            raise ProviderError(f"{self.model} returned vectors of shape {vectors.shape}, "
                                f"expected {(len(texts), self._dimension)}", provider=self.name)
        return normalise(vectors)

    async def aembed(self, texts: list[str], purpose: Purpose = "add") -> np.ndarray:
        if self._remote is not None:
            return await self._remote.aembed(texts, purpose)
        return await asyncio.to_thread(self.embed, texts, purpose)
