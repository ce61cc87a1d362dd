"""The storage interface. Deliberately narrow: the pipeline plans every mutation, a store only persists a
ChangeSet atomically and answers a handful of reads. A new backend implements these methods and nothing else.
The pipeline reaches them through effects.Store, one typed builder per method (tests/test_store_calls.py
keeps the two in step); Memory itself calls only job_queue() and close()."""
from __future__ import annotations

from typing import Any, Callable, Optional, Protocol, runtime_checkable

import numpy as np

from ..filters import Node
from ..models import (ChangeSet, EntityRecord, GraphEntity, GraphRelation, HistoryRecord, MemoryRecord,
                      MessageRecord, Scope)


def within_hops(entity_ids: list[str], hops: int,
                touching: Callable[[list[str]], list[GraphRelation]]) -> list[GraphRelation]:
    """The relations within `hops` of the entities (1: touching one of them; 2: also touching their
    neighbours), each once, in the order found; `touching(ids)` reads those touching any of `ids`. Every
    store's graph_relations walks the same way."""
    found: dict[str, GraphRelation] = {}
    frontier, seen = set(entity_ids), set(entity_ids)
    for _ in range(max(hops, 0)):
        if not frontier:
            break
        near = touching(sorted(frontier))
        frontier = set()
        for rel in near:
            found.setdefault(rel.id, rel)
            frontier |= {rel.source_id, rel.target_id} - seen
        seen |= frontier
    return list(found.values())


@runtime_checkable
class JobQueue(Protocol):
    """The durable queue of background adds (jobs.py's Worker drains it). A job is claimed under a lease
    that names its owner; only the lease holder may finish it, and the store's apply() marks it done in
    the same transaction as its changes (ChangeSet.job)."""

    lease_seconds: float

    def enqueue(self, payload: dict[str, Any]) -> str:
        """Persist a job (queued) and return its id."""

    def claim(self, owner: str) -> Optional[tuple[str, dict[str, Any], int]]:
        """Take the oldest runnable job for `owner`: (job id, payload, attempt number), or None."""

    def renew(self, job_id: str, owner: str) -> bool:
        """Extend the lease of a job `owner` still holds; False when it was taken over or finished."""

    def succeed(self, job_id: str, owner: str, result: Any) -> None:
        """Mark done a job whose final write did not (a no-op when it did, or when the lease was lost)."""

    def fail(self, job_id: str, owner: str, attempts: int, error: BaseException) -> None:
        """Queue the job again after a backoff, or fail it (a permanent error, or out of attempts)."""

    def get(self, job_id: str) -> dict[str, Any]:
        """The job's state (id, status, attempts, last_error, result, created_at, updated_at);
        NotFoundError when there is none."""

    def retry(self, job_id: str) -> None:
        """Queue a failed job again; NotFoundError when there is no failed job with that id."""

    def pending(self) -> int:
        """How many jobs are queued or running."""

    def close(self) -> None:
        """Close this thread's resources (workers call it from their own threads)."""


@runtime_checkable
class MemoryStore(Protocol):
    def ensure_space(self, model_id: str, dimension: int) -> None:
        """Record the embedding space on first use; raise DimensionMismatchError if it differs later."""

    def apply(self, changes: ChangeSet) -> None:
        """Persist messages, inserts, updates, reindexes, deletes and history together, or nothing (raise)."""

    def get(self, ids: list[str], with_embeddings: bool = False) -> list[MemoryRecord]:
        """The records that exist among `ids` (any order)."""

    def ids(self, where: Node) -> list[str]:
        """Every id matching `where`."""

    def vector_search(self, vector: np.ndarray, scope: Scope, where: Node, k: int) -> list[tuple[str, float]]:
        """Up to k (id, cosine similarity) pairs among matches of `where`, best first. `scope` holds the
        scope ids `where` fixes (the pipeline passes both), so a store can rank one scope's rows first."""

    def keyword_search(self, terms: list[str], scope: Scope, where: Node, k: int) -> list[tuple[str, float]]:
        """Up to k (id, BM25 relevance >= 0, higher better) pairs matching any of `terms` and `where`, best
        first; `scope` as for vector_search."""

    def graph_entities(self, scope: Scope, with_embeddings: bool = False) -> list[GraphEntity]:
        """Graph memory's entities of the scope (each id it fixes matches; None matches any), oldest first."""

    def graph_relations(self, scope: Scope, as_of: Optional[str] = None, entity_ids: Optional[list[str]] = None,
                        hops: int = 1, ended: bool = False) -> list[GraphRelation]:
        """The scope's relations that held at `as_of` (UTC ISO; None: the current ones): all of them when
        entity_ids is None, else those within `hops` of these entities. ended=True: every relation, current
        and ended, whatever `as_of` (export reads them so). Graph writes go through apply()."""

    def outbox_pending(self) -> list[tuple[int, dict[str, Any]]]:
        """The outbox entries (ChangeSet.outbox) not yet marked done, oldest first, as (entry id, payload)."""

    def outbox_done(self, entry_id: int) -> None:
        """Mark an outbox entry applied to its engine (it goes; an unknown id is a no-op)."""

    def entities(self) -> list[EntityRecord]:
        """Every user, agent and run id that memories hold, with how many memories hold it (users())."""

    def history(self, memory_id: str) -> list[HistoryRecord]:
        """Every history row of a memory, oldest first."""

    def history_page(self, cursor: Optional[int], limit: int) -> tuple[list[HistoryRecord], Optional[int]]:
        """Every history row, deleted memories' too, in the order written: the next `limit` rows after
        `cursor` (None: from the start) and the cursor after them (None when there are no more)."""

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

    def begin_bulk(self, rows: int) -> None:
        """A load of about `rows` memories follows (an import): the store may defer index upkeep until
        end_bulk(). Every read stays correct meanwhile; an interrupted load is mended on the next open."""

    def end_bulk(self) -> None:
        """Bring back what begin_bulk() deferred (a no-op when nothing was)."""

    def reset(self) -> None:
        """Delete everything, including the recorded embedding space."""

    def job_queue(self, *, max_attempts: int, base_delay: float, lease_seconds: float) -> JobQueue:
        """The queue of background adds kept with this store; apply() completes its jobs (ChangeSet.job)."""

    def close(self) -> None: ...

    # Last: below it, `list` in an annotation would name this method (for mypy).
    def list(self, where: Node, limit: int, offset: int,
             newest_first: bool = False) -> tuple[list[MemoryRecord], int]:
        """A page of matching records, oldest first (or newest first), and the total number of matches."""


