"""What the pure pipeline asks its driver to do. The pipeline is a generator that yields these and gets the
answer sent back (or the exception thrown in); `drivers.py` runs it synchronously or with asyncio."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Embed:
    texts: list[str]
    purpose: str = "add"


@dataclass(frozen=True)
class StoreCall:
    method: str
    args: tuple[Any, ...] = ()


@dataclass(frozen=True)
class Rerank:
    """Ask the configured reranker for each document's relevance to the query (rerankers/base.py)."""

    query: str
    documents: list[str]


@dataclass(frozen=True)
class Complete:
    """Ask the configured LLM; `request` is an llms.base.LLMRequest."""

    request: Any
