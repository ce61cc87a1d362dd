"""The embedder interface: many texts in, one L2-normalised float32 row per text out."""
from __future__ import annotations

from typing import Literal, Protocol, runtime_checkable

import numpy as np

Purpose = Literal["add", "search", "update"]


@runtime_checkable
class Embedder(Protocol):
    #: Identifies the vector space; a store refuses vectors from another model or dimension.
    model_id: str
    dimension: int

    def embed(self, texts: list[str], purpose: Purpose = "add") -> np.ndarray:
        """Return an array of shape (len(texts), dimension), float32, rows of unit length."""
        ...


def normalise(vectors: np.ndarray) -> np.ndarray:
    vectors = np.asarray(vectors, dtype=np.float32)
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return vectors / np.maximum(norms, 1e-12)
