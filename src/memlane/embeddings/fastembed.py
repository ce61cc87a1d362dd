"""FastEmbed (Qdrant's ONNX embedding library) from a local model cache only: memlane never downloads a
model, so the model's files must already be in the cache folder (as fastembed lays them out when it fetched
them once, or a folder given as `model_path`).

Needs the optional extra: pip install 'memlane[fastembed]'.

Config keys (mem0's names): `model` (default thenlper/gte-large, mem0's default), `embedding_dims` (must equal
the model's size); plus `cache_dir` (required, else FASTEMBED_CACHE_PATH: the folder holding the models),
`model_path` (a folder with the model's ONNX and tokenizer files, instead of looking the model up in the
cache), `threads`, `batch_size` (default 32). Search texts are embedded with the model's query form, added
and updated texts with its passage form (they differ for models that prefix them, like the e5 and bge ones).
"""
from __future__ import annotations

import asyncio
import os
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Optional

import numpy as np

from ..errors import ConfigurationError, ProviderError, missing_extra
from ..provider_config import MEM0_EMBEDDER_KEYS, ProviderConfig
from .base import Purpose, normalise
from .remote import check_texts

DEFAULT_MODEL = "thenlper/gte-large"


def _folder(value: Any, key: str) -> Path:
    path = Path(str(value)).expanduser()
    if not path.is_dir():
        raise ConfigurationError(f"fastembed embedder: {key} {str(value)!r} is not a folder; memlane never "
                                 "downloads models, so the model must already be there")
    return path


class FastEmbedEmbedder:
    name = "fastembed"

    def __init__(self, config: Mapping[str, Any] | None = None):
        cfg = ProviderConfig(config, self.name, "embedder", ignored=MEM0_EMBEDDER_KEYS)
        self.model = str(cfg.first("model", default=DEFAULT_MODEL))
        dims = cfg.positive_int("embedding_dims")
        cache_dir = cfg.first("cache_dir", env=("FASTEMBED_CACHE_PATH",))
        model_path = cfg.take("model_path")
        threads = cfg.positive_int("threads")
        self.batch_size = cfg.positive_int("batch_size") or 32
        cfg.done()
        if not cache_dir and not model_path:
            raise ConfigurationError("fastembed embedder: set cache_dir (or FASTEMBED_CACHE_PATH) to the folder "
                                     "holding the model; memlane never downloads models")
        cache = _folder(cache_dir, "cache_dir") if cache_dir else None
        folder = _folder(model_path, "model_path") if model_path else None
        os.environ["HF_HUB_OFFLINE"] = "1"  # before the import: huggingface_hub reads it then
        try:
            from fastembed import TextEmbedding
        except ImportError as exc:
            raise missing_extra("fastembed", "fastembed") from exc
        kwargs: dict[str, Any] = {"local_files_only": True}
        if cache is not None:
            kwargs["cache_dir"] = str(cache)
        if folder is not None:
            kwargs["specific_model_path"] = str(folder)
        if threads:
            kwargs["threads"] = threads
        try:
            self._model = TextEmbedding(model_name=self.model, **kwargs)
        except (OSError, ValueError, RuntimeError) as exc:
            where = folder or cache
            raise ConfigurationError(
                f"fastembed embedder: cannot load {self.model!r} from {str(where)!r} without downloading: {exc}. "
                "Put the model in the cache folder first (or pass its folder as model_path)") from exc
        native = self._native_dimension()
        if dims is not None and native is not None and dims != native:
            raise ConfigurationError(f"fastembed embedder: {self.model} gives {native}-dimensional vectors, not "
                                     f"embedding_dims={dims}")
        self._dimension: Optional[int] = native or dims
        self._lock = threading.Lock()

    def _native_dimension(self) -> Optional[int]:
        size = getattr(self._model, "embedding_size", None)
        if isinstance(size, int):
            return size
        for info in getattr(type(self._model), "list_supported_models", lambda: [])():
            if isinstance(info, Mapping) and str(info.get("model", "")).lower() == self.model.lower():
                return int(info["dim"])
        return None

    @property
    def model_id(self) -> str:
        return f"{self.name}:{self.model}"

    @property
    def dimension(self) -> int:
        if self._dimension is None:
            self._dimension = int(self._encode(["dimension probe"], "search").shape[1])
        return self._dimension

    def _encode(self, texts: list[str], purpose: Purpose) -> np.ndarray:
        method = self._model.query_embed if purpose == "search" else self._model.passage_embed
        with self._lock:
            rows = list(method(texts, batch_size=self.batch_size))
        if len(rows) != len(texts):
            raise ProviderError(f"fastembed: {len(rows)} vectors for {len(texts)} texts", provider=self.name)
        return np.asarray(rows, dtype=np.float32).reshape(len(texts), -1)

    def embed(self, texts: list[str], purpose: Purpose = "add") -> np.ndarray:
        texts = check_texts(texts)
        if not texts:
            return np.zeros((0, self.dimension), dtype=np.float32)
        vectors = self._encode(texts, purpose)
        if self._dimension is not None and vectors.shape[1] != self._dimension:
            raise ProviderError(f"fastembed: {self.model} returned {vectors.shape[1]}-dimensional vectors, "
                                f"expected {self._dimension}", provider=self.name)
        if not np.isfinite(vectors).all():
            raise ProviderError(f"fastembed: {self.model} returned non-finite values", provider=self.name)
        self._dimension = int(vectors.shape[1])
        return normalise(vectors)

    async def aembed(self, texts: list[str], purpose: Purpose = "add") -> np.ndarray:
        return await asyncio.to_thread(self.embed, texts, purpose)
