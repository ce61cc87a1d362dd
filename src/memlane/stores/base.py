"""The storage interface. Deliberately narrow: the pipeline plans every mutation, a store only persists a
ChangeSet atomically and answers a handful of reads. A new backend implements these methods and nothing else."""
from __future__ import annotations

from typing import Optional, Protocol, runtime_checkable

import numpy as np

from ..filters import Node
from ..models import ChangeSet, HistoryRecord, MemoryRecord, MessageRecord


@runtime_checkable
class MemoryStore(Protocol):
    def ensure_space(self, model_id: str, dimension: int) -> None:
        """Record the embedding space on first use; raise DimensionMismatchError if it differs later."""

    def apply(self, changes: ChangeSet) -> None:
        """Persist messages, inserts, updates, reindexes, deletes and history together, or nothing (raise)."""

    def get(self, ids: list[str], with_embeddings: bool = False) -> list[MemoryRecord]:
        """The records that exist among `ids` (any order)."""

    def list(self, where: Node, limit: int, offset: int,
             newest_first: bool = False) -> tuple[list[MemoryRecord], int]:
        """A page of matching records, oldest first (or newest first), and the total number of matches."""

    def ids(self, where: Node) -> list[str]:
        """Every id matching `where`."""

    def vector_search(self, vector: np.ndarray, where: Node, k: int) -> list[tuple[str, float]]:
        """Up to k (id, cosine similarity) pairs among matches, best first."""

    def keyword_search(self, terms: list[str], where: Node, k: int) -> list[tuple[str, float]]:
        """Up to k (id, BM25 relevance >= 0, higher better) pairs matching any of `terms`, best first."""

    def history(self, memory_id: str) -> list[HistoryRecord]:
        """Every history row of a memory, oldest first."""

    def messages(self, ids: list[str]) -> list[MessageRecord]:
        """Message-log rows by id."""

    def list_messages(self, where: Node, limit: int, offset: int) -> tuple[list[MessageRecord], int]:
        """A page of the message log (scope keys only in `where`), oldest first, and the total."""

    def reindex_page(self, model_id: str, dimension: int, cursor: Optional[int],
                     limit: int) -> tuple[list[MemoryRecord], Optional[int]]:
        """Re-embedding, resumably: the next `limit` memories (oldest first) after `cursor` and the cursor
        after them. cursor=None starts, or resumes an unfinished reindex to the same space; a cursor passed
        back marks every memory before it done; an empty page records (model_id, dimension) as the space
        and ends it. While one is unfinished, ensure_space() raises. The vectors go through apply(reindex=)."""

    def reset(self) -> None:
        """Delete everything, including the recorded embedding space."""

    def close(self) -> None: ...


