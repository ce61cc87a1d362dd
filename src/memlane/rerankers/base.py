"""The reranker interface. search() fuses dense and keyword scores over a wide pool, then hands the best
`retrieval.rerank_pool` candidates to the reranker and blends its relevance into their scores:
score = (fused + rerank_weight * relevance) / (1 + rerank_weight), so a score stays in [0, 1].

A reranker is any object with `rerank(query, documents) -> list[float]` returning one relevance in [0, 1]
per document (higher is more relevant), in the documents' order. It may score a document relative to the
others it is given (the packaged one does). An `arerank` coroutine, if present, is used by AsyncMemory;
otherwise `rerank` runs in a worker thread. Register your own with
`memlane.register_provider("reranker", name, factory)`. A reranker that scores with an LLM (the `llm` one)
has `use_llm(llm)`: Memory calls it with the LLM it built from the config's `llm` (None when there is none).
"""
from __future__ import annotations

import math
from typing import Any, Optional, Protocol, Sequence, runtime_checkable

from ..errors import ProviderError


@runtime_checkable
class Reranker(Protocol):
    def rerank(self, query: str, documents: list[str]) -> list[float]: ...


@runtime_checkable
class UsesLLM(Protocol):
    """A reranker that is handed the Memory's LLM once both are built (see memory._finish)."""

    def use_llm(self, llm: Optional[Any]) -> None: ...


def checked(scores: Sequence[float], count: int) -> list[float]:
    """A reranker's answer, validated: one finite number per document, clipped to [0, 1]."""
    try:
        values = [float(s) for s in scores]
    except (TypeError, ValueError) as exc:
        raise ProviderError(f"the reranker returned non-numeric scores: {exc}") from exc
    if len(values) != count:
        raise ProviderError(f"the reranker returned {len(values)} scores for {count} documents")
    if not all(math.isfinite(v) for v in values):
        raise ProviderError("the reranker returned a NaN or infinite score")
    return [min(1.0, max(0.0, v)) for v in values]
