"""External vector engines (Qdrant, Chroma), kept in step with the relational store through its outbox.

The relational store (the embedded SQLite file) stays the source of truth: memories with their embeddings,
history, the message log, graph memory and the job queue. A write goes there first, with an outbox entry
naming the memories it touched (`{"vectors": {"sync": [ids]}}`); then each pending entry is applied to the
engine: every named memory the store still holds is upserted with its current vector and scope, every one
it does not is deleted. Applying an entry again changes nothing, so a crash between the two writes, or an
engine that is down, is repaired on the next write or open (oldest entry first).

Search asks the engine for a candidate pool within the scope (the engine filters by user_id / agent_id /
run_id only) and checks the candidates against the store with the full filter, so every operator works on
every engine; the pool grows until k candidates pass or the engine has no more. Keyword search stays the
store's. OutboxVectorStore composes with graphs.outbox.OutboxGraphStore: this one goes inside, and shows the
graph wrapper only the graph part of each entry, after its own part has reached the engine.
"""
from __future__ import annotations

import dataclasses
import logging
import threading
from typing import Any, Optional, Protocol

import numpy as np

from .. import filters as F
from ..errors import MemlaneError, ProviderError
from ..models import ChangeSet, Scope

log = logging.getLogger("memlane.vectors")

KEY = "vectors"  # this wrapper's part of an outbox entry
SCOPE_KEYS = ("user_id", "agent_id", "run_id")
CHUNK = 500


class VectorEngine(Protocol):
    """An external vector index. Every call is idempotent: upsert by id, delete of a missing id is fine."""

    def upsert(self, records: list[tuple[str, np.ndarray, Scope]]) -> None:
        """Insert or replace (id, unit vector, scope ids) records."""

    def delete(self, ids: list[str]) -> None: ...

    def clear(self, scope: Optional[Scope]) -> None:
        """Remove the scope's records (each id it fixes matches), or all of them (None)."""

    def search(self, vector: np.ndarray, scope: Scope, k: int) -> list[tuple[str, float]]:
        """Up to k (id, cosine similarity) pairs among the records of `scope`, best first."""

    def count(self) -> int:
        """How many records the engine holds."""

    def close(self) -> None: ...


def scope_items(scope: Scope) -> dict[str, str]:
    """The scope ids a scope fixes, as {key: id}."""
    return {key: value for key in SCOPE_KEYS if (value := getattr(scope, key)) is not None}


def vector_part(changes: ChangeSet) -> Optional[dict[str, Any]]:
    """This wrapper's outbox part of a ChangeSet: the memories whose vectors the engine must match."""
    ids = [r.id for r in (*changes.inserts, *changes.updates, *changes.reindex)] + list(changes.deletes)
    return {"sync": list(dict.fromkeys(ids))} if ids else None


class OutboxVectorStore:
    """A MemoryStore (stores/base.py) whose vector_search goes to `engine`; everything else is the wrapped
    store's. `pool_factor`: candidates asked of the engine per result wanted."""

    def __init__(self, store: Any, engine: VectorEngine, pool_factor: int = 4):
        self._store = store
        self._engine = engine
        self._pool_factor = max(pool_factor, 1)
        self._lock = threading.RLock()  # one drain at a time, so entries reach the engine in order
        self._applied: set[int] = set()  # entries whose vector part reached the engine, graph part pending
        self.drain()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._store, name)

    def apply(self, changes: ChangeSet) -> None:
        part = vector_part(changes)
        if part is not None:
            changes = dataclasses.replace(changes, outbox={**(changes.outbox or {}), KEY: part})
        self._store.apply(changes)
        self.drain()

    # ------------------------------------------------------------ the outbox

    def _apply_vectors(self) -> tuple[list[tuple[int, dict[str, Any]]], int]:
        """Apply the vector part of the pending entries, oldest first, and mark done those that hold nothing
        else: the entries applied that still hold other parts (for the graph wrapper, without this part)
        and how many entries wait for the engine (0 unless it failed)."""
        with self._lock:
            pending = self._store.outbox_pending()
            rest: list[tuple[int, dict[str, Any]]] = []
            for done, (entry_id, entry) in enumerate(pending):
                if entry_id not in self._applied and KEY in entry:
                    try:
                        self._apply_part(entry[KEY])
                    except Exception as exc:  # the facts are committed; the engine catches up later
                        log.warning("vector engine: %d change(s) wait in the outbox (%s: %s)",
                                    len(pending) - done, type(exc).__name__, exc)
                        return rest, len(pending) - done
                others = {k: v for k, v in entry.items() if k != KEY}
                if others:
                    self._applied.add(entry_id)
                    rest.append((entry_id, others))
                else:
                    self._store.outbox_done(entry_id)
            return rest, 0

    def _apply_part(self, part: dict[str, Any]) -> None:
        if part.get("reset"):
            self._engine.clear(None)
        ids = list(part.get("sync", []))
        for start in range(0, len(ids), CHUNK):
            chunk = ids[start:start + CHUNK]
            held = {r.id: r for r in self._store.get(chunk, with_embeddings=True)}
            self._engine.upsert([(r.id, _unit(r.embedding), Scope(user_id=r.user_id, agent_id=r.agent_id,
                                                                   run_id=r.run_id))
                                 for r in held.values() if r.embedding is not None])
            gone = [i for i in chunk if i not in held]
            if gone:
                self._engine.delete(gone)

    def drain(self) -> int:
        """Apply the pending vector changes to the engine; how many entries still wait for it."""
        return self._apply_vectors()[1]

    def outbox_pending(self) -> list[tuple[int, dict[str, Any]]]:
        """For a wrapper above (the graph's): the entries whose vector part has reached the engine and that
        hold another part, that part only."""
        return self._apply_vectors()[0]

    def outbox_done(self, entry_id: int) -> None:
        with self._lock:
            self._store.outbox_done(entry_id)
            self._applied.discard(entry_id)

    def resync(self) -> int:
        """Mend drift: empty the engine and load every memory the store holds again (through the outbox, so
        an interruption is finished on the next open). How many memories were queued."""
        ids = self._store.ids(F.TRUE)
        self._store.apply(ChangeSet(outbox={KEY: {"reset": True, "sync": ids}}))
        self.drain()
        return len(ids)

    def in_step(self) -> bool:
        """Whether the engine holds as many vectors as the store holds memories (nothing pending)."""
        return bool(self.status()["in_step"])

    def status(self) -> dict[str, Any]:
        """Memories in the store, vectors in the engine, entries pending (after applying what it can)."""
        pending = self.drain()
        store, engine = len(self._store.ids(F.TRUE)), self._engine.count()
        return {"store_memories": store, "engine_vectors": engine, "outbox_pending": pending,
                "in_step": not pending and store == engine}

    # ------------------------------------------------------------ reads

    def vector_search(self, vector: np.ndarray, scope: Scope, where: F.Node, k: int) -> list[tuple[str, float]]:
        """The engine ranks within the scope; the store checks the full filter on the candidates, in
        growing pools until k pass or the engine has no more."""
        if k <= 0:
            return []
        query = _unit(vector)
        pool = k * self._pool_factor
        while True:
            try:
                found = self._engine.search(query, scope, pool)
            except MemlaneError:
                raise
            except Exception as exc:
                raise ProviderError(f"vector engine search failed: {type(exc).__name__}: {exc}") from exc
            passing = self._passing([i for i, _ in found], where)
            hits = [(i, float(s)) for i, s in found if i in passing]
            if len(hits) >= k or len(found) < pool:
                return hits[:k]
            pool *= 4

    def _passing(self, ids: list[str], where: F.Node) -> set[str]:
        out: set[str] = set()
        for start in range(0, len(ids), CHUNK):
            chunk = ids[start:start + CHUNK]
            out.update(self._store.ids(F.And((where, F.Cmp("id", "in", tuple(chunk))))))
        return out

    # ------------------------------------------------------------ whole-store operations

    def reset(self) -> None:
        """Everything goes: the store, then (through the outbox) the engine's vectors."""
        with self._lock:
            self._store.reset()
            self._applied.clear()
            self._store.apply(ChangeSet(outbox={KEY: {"reset": True}}))
            self.drain()

    def close(self) -> None:
        try:
            self._engine.close()
        finally:
            self._store.close()


def _unit(vector: Any) -> np.ndarray:
    v = np.asarray(vector, dtype=np.float32).reshape(-1)
    norm = float(np.linalg.norm(v))
    return v / norm if norm > 0 else v


def config_keys(config: dict[str, Any], allowed: frozenset[str], provider: str) -> dict[str, Any]:
    """The engine's config, refusing keys it does not know (mem0's names)."""
    unknown = set(config) - allowed
    if unknown:
        raise _config_error(f"unknown {provider} vector_store config keys: {', '.join(sorted(unknown))} "
                            f"(known: {', '.join(sorted(allowed))})")
    return config


def _config_error(message: str) -> Exception:
    from ..errors import ConfigurationError
    return ConfigurationError(message)
