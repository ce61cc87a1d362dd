"""What the pure pipeline asks its driver to do. The pipeline is a generator that yields these and gets the
answer sent back (or the exception thrown in); `drivers.py` runs it synchronously or with asyncio."""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Optional

if TYPE_CHECKING:
    import numpy as np

    from .filters import Node
    from .models import ChangeSet, Scope


@dataclass(frozen=True)
class Embed:
    texts: list[str]
    purpose: str = "add"


@dataclass(frozen=True)
class StoreCall:
    """A call of the MemoryStore method `method` (stores/base.py); built only through `Store`."""

    method: str
    args: tuple[Any, ...] = ()


class Store:
    """One builder per MemoryStore method the pipeline calls, with the method's name and parameters, so a
    misspelt or mis-ordered store call fails where it is written (tests/test_store_calls.py checks them
    against the protocol). close() and job_queue() are Memory's own, never pipeline effects."""

    @staticmethod
    def ensure_space(model_id: str, dimension: int) -> StoreCall:
        return StoreCall("ensure_space", (model_id, dimension))

    @staticmethod
    def apply(changes: ChangeSet) -> StoreCall:
        return StoreCall("apply", (changes,))

    @staticmethod
    def get(ids: list[str], with_embeddings: bool = False) -> StoreCall:
        return StoreCall("get", (ids, with_embeddings))

    @staticmethod
    def ids(where: Node) -> StoreCall:
        return StoreCall("ids", (where,))

    @staticmethod
    def vector_search(vector: np.ndarray, scope: Scope, where: Node, k: int) -> StoreCall:
        return StoreCall("vector_search", (vector, scope, where, k))

    @staticmethod
    def keyword_search(terms: list[str], scope: Scope, where: Node, k: int) -> StoreCall:
        return StoreCall("keyword_search", (terms, scope, where, k))

    @staticmethod
    def graph_entities(scope: Scope, with_embeddings: bool = False) -> StoreCall:
        return StoreCall("graph_entities", (scope, with_embeddings))

    @staticmethod
    def graph_relations(scope: Scope, as_of: Optional[str] = None, entity_ids: Optional[list[str]] = None,
                        hops: int = 1, ended: bool = False) -> StoreCall:
        return StoreCall("graph_relations", (scope, as_of, entity_ids, hops, ended))

    @staticmethod
    def entities() -> StoreCall:
        return StoreCall("entities")

    @staticmethod
    def history(memory_id: str) -> StoreCall:
        return StoreCall("history", (memory_id,))

    @staticmethod
    def history_page(cursor: Optional[int], limit: int) -> StoreCall:
        return StoreCall("history_page", (cursor, limit))

    @staticmethod
    def messages(ids: list[str]) -> StoreCall:
        return StoreCall("messages", (ids,))

    @staticmethod
    def list_messages(where: Node, limit: int, offset: int) -> StoreCall:
        return StoreCall("list_messages", (where, limit, offset))

    @staticmethod
    def reindex_page(model_id: str, dimension: int, cursor: Optional[int], limit: int) -> StoreCall:
        return StoreCall("reindex_page", (model_id, dimension, cursor, limit))

    @staticmethod
    def begin_bulk(rows: int) -> StoreCall:
        return StoreCall("begin_bulk", (rows,))

    @staticmethod
    def end_bulk() -> StoreCall:
        return StoreCall("end_bulk")

    @staticmethod
    def reset() -> StoreCall:
        return StoreCall("reset")

    # Last: below it, `list` in an annotation would name this method (for mypy).
    @staticmethod
    def list(where: Node, limit: int, offset: int, newest_first: bool = False) -> StoreCall:
        return StoreCall("list", (where, limit, offset, newest_first))


@dataclass(frozen=True)
class Rerank:
    """Ask the configured reranker for each document's relevance to the query (rerankers/base.py)."""

    query: str
    documents: list[str]


@dataclass(frozen=True)
class Complete:
    """Ask the configured LLM; `request` is an llms.base.LLMRequest."""

    request: Any


@dataclass(frozen=True)
class WarnOnce:
    """Log `message` as a warning on the "memlane" logger, the first time this runtime (one Memory) is
    asked to; the driver holds that state, so the pipeline and its settings stay read-only."""

    message: str
