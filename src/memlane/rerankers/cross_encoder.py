"""The `cross_encoder` reranker: a sentence-transformers CrossEncoder loaded from a local folder only (memlane
never downloads a model: a hub name is refused, and the Hugging Face libraries are put offline).

Needs the optional extra: pip install 'memlane[huggingface]' (sentence-transformers, which brings torch).

Config keys (mem0's sentence_transformer names): `model` (required: a folder holding a CrossEncoder, e.g. a
saved cross-encoder/ms-marco-MiniLM-L6-v2), `device`, `batch_size` (default 32), `max_length`,
`show_progress_bar` (accepted, never shown); `top_k` (accepted from mem0; every candidate is still scored).

Scores are mapped into [0, 1]: a model whose activation already gives probabilities (a sigmoid or softmax)
is read as it is; raw logits go through a sigmoid; a model with several labels gives its last label (the
"relevant" class of two-label models). How a model's scores are read is fixed when it is loaded, so every
search reads them alike.
"""
from __future__ import annotations

import os
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Callable, Optional

import numpy as np

from ..errors import ConfigurationError, ProviderError, missing_extra
from ..provider_config import ProviderConfig

Loader = Callable[[str, Optional[str], Optional[int]], Any]


def load_cross_encoder(path: str, device: Optional[str], max_length: Optional[int]) -> Any:
    """sentence-transformers' CrossEncoder from `path`, offline."""
    os.environ["HF_HUB_OFFLINE"] = "1"  # before the import: huggingface_hub reads it then
    os.environ["TRANSFORMERS_OFFLINE"] = "1"
    try:
        from sentence_transformers import CrossEncoder
    except ImportError as exc:
        raise missing_extra("sentence-transformers", "huggingface") from exc
    kwargs: dict[str, Any] = {"device": device}
    if max_length:
        kwargs["max_length"] = max_length
    try:
        try:
            return CrossEncoder(path, local_files_only=True, **kwargs)
        except TypeError:  # an older CrossEncoder without local_files_only: offline through the environment
            return CrossEncoder(path, **kwargs)
    except (OSError, ValueError) as exc:
        raise ConfigurationError(f"cross_encoder reranker: cannot load {path!r}: {exc}") from exc


def gives_probabilities(model: Any) -> bool:
    """Whether the model's own activation already maps its scores into [0, 1] (sigmoid, softmax)."""
    for attr in ("activation_fn", "default_activation_function", "activation_fct"):
        fn = getattr(model, attr, None)
        if fn is not None:
            return any(word in type(fn).__name__.lower() for word in ("sigmoid", "softmax"))
    return False


def to_relevance(raw: Any, count: int, probabilities: bool) -> list[float]:
    """The model's output (count,) or (count, labels) as one relevance in [0, 1] per document."""
    scores = np.asarray(raw, dtype=np.float64)
    if scores.ndim == 2:
        scores = scores[:, -1]
    if scores.shape != (count,):
        raise ProviderError(f"cross_encoder: {scores.shape} scores for {count} documents", provider="cross_encoder")
    if not np.isfinite(scores).all():
        raise ProviderError("cross_encoder: a NaN or infinite score", provider="cross_encoder")
    if not probabilities:
        scores = 1.0 / (1.0 + np.exp(-scores))
    return np.clip(scores, 0.0, 1.0).tolist()


class CrossEncoderReranker:
    name = "cross_encoder"

    def __init__(self, config: Mapping[str, Any] | None = None, *, loader: Optional[Loader] = None):
        """`loader(path, device, max_length)` builds the model (sentence-transformers' CrossEncoder unless
        given: the seam the tests use)."""
        cfg = ProviderConfig(config, self.name, "reranker", ignored=("show_progress_bar",))
        model = cfg.take("model")
        device = cfg.take("device")
        self.batch_size = cfg.positive_int("batch_size") or 32
        max_length = cfg.positive_int("max_length")
        self.top_k = cfg.positive_int("top_k")
        cfg.done()
        if not model or not isinstance(model, (str, os.PathLike)):
            raise ConfigurationError("cross_encoder reranker: `model` is required: a local folder holding a "
                                     "CrossEncoder (memlane never downloads models)")
        path = Path(model).expanduser()
        if not path.is_dir():
            raise ConfigurationError(
                f"cross_encoder reranker: {str(model)!r} is not a local folder; memlane never downloads models, "
                "so save the CrossEncoder to a folder first (CrossEncoder(name).save(folder)) and pass that")
        self.model = str(path)
        self._model = (loader or load_cross_encoder)(self.model, device, max_length)
        self.probabilities = gives_probabilities(self._model)
        self._lock = threading.Lock()  # AsyncMemory reranks in worker threads

    def rerank(self, query: str, documents: list[str]) -> list[float]:
        if not documents:
            return []
        with self._lock:
            raw = self._model.predict([(query, d) for d in documents], batch_size=self.batch_size,
                                      show_progress_bar=False, convert_to_numpy=True)
        return to_relevance(raw, len(documents), self.probabilities)
