"""A store whose graph memory lives in an external engine, kept in step through an outbox.

apply() strips the graph changes from the ChangeSet and writes them, with the memory deletes they cascade to,
as one outbox entry in the store's own transaction; then it hands every pending entry, oldest first, to the
engine and marks it done. The engine's apply is idempotent, so an entry whose application was cut short (a
crash between the two writes, the engine down) is simply applied again: on the next write, and when the store
is opened. Until then the engine's graph lags the facts; nothing is lost.
"""
from __future__ import annotations

import base64
import dataclasses
import logging
import threading
from typing import Any, Optional, Protocol

import numpy as np

from ..errors import MemlaneError, ProviderError
from ..models import ChangeSet, GraphEntity, GraphRelation, Scope

log = logging.getLogger("memlane.graph")


class GraphEngine(Protocol):
    """An external graph engine (cypher.CypherGraph and its drivers)."""

    def apply(self, payload: dict[str, Any]) -> None:
        """Apply an outbox payload; applying it again changes nothing."""

    def entities(self, scope: Scope, with_embeddings: bool) -> list[GraphEntity]: ...

    def relations(self, scope: Scope, as_of: Optional[str], entity_ids: Optional[list[str]],
                  hops: int, ended: bool = False) -> list[GraphRelation]: ...

    def close(self) -> None: ...


def encode_vector(vector: Optional[np.ndarray]) -> Optional[str]:
    """An entity's embedding as engines keep it: base64 of its float32 bytes (a list of floats would be
    four times larger on the wire, and too large for some Bolt servers)."""
    if vector is None:
        return None
    return base64.b64encode(np.asarray(vector, dtype=np.float32).reshape(-1).tobytes()).decode("ascii")


def decode_vector(text: Optional[str]) -> Optional[np.ndarray]:
    return None if text is None else np.frombuffer(base64.b64decode(text), dtype=np.float32).copy()


def _scope(scope: Scope) -> dict[str, Optional[str]]:
    return {"user_id": scope.user_id, "agent_id": scope.agent_id, "run_id": scope.run_id}


def payload(changes: ChangeSet) -> Optional[dict[str, Any]]:
    """The graph part of a ChangeSet as JSON (None when it has none): what the engine must apply."""
    out: dict[str, Any] = {}
    if changes.graph_entities:
        out["entities"] = [{"id": e.id, "name": e.name, "norm": e.norm, "type": e.type, "user_id": e.user_id,
                            "agent_id": e.agent_id, "run_id": e.run_id, "created_at": e.created_at,
                            "embedding": encode_vector(e.embedding)}
                           for e in changes.graph_entities]
    if changes.graph_relations:
        out["relations"] = [{"id": r.id, "source_id": r.source_id, "relationship": r.relationship,
                             "target_id": r.target_id, "user_id": r.user_id, "agent_id": r.agent_id,
                             "run_id": r.run_id, "valid_from": r.valid_from, "valid_to": r.valid_to,
                             "created_at": r.created_at, "memory_ids": list(r.memory_ids),
                             "message_ids": list(r.message_ids)} for r in changes.graph_relations]
    if changes.graph_ends:
        out["ends"] = dict(changes.graph_ends)
    if changes.graph_support:
        out["support"] = {rid: [list(m), list(g)] for rid, (m, g) in changes.graph_support.items()}
    if changes.graph_edited:
        out["edited"] = dict(changes.graph_edited)
    if changes.graph_clear:
        out["clear"] = [_scope(s) for s in changes.graph_clear]
    if changes.deletes:
        out["deletes"] = list(changes.deletes)
    return out or None


def without_graph(changes: ChangeSet, entry: Optional[dict[str, Any]]) -> ChangeSet:
    """The ChangeSet the store writes: its graph changes replaced by the outbox entry."""
    return dataclasses.replace(changes, graph_entities=[], graph_relations=[], graph_ends={}, graph_support={},
                               graph_edited={}, graph_clear=[], outbox=entry)


class OutboxGraphStore:
    """A MemoryStore (stores/base.py) whose graph reads and writes go to `engine`; everything else is the
    wrapped store's."""

    def __init__(self, store: Any, engine: GraphEngine):
        self._store = store
        self._engine = engine
        self._lock = threading.Lock()  # one drain at a time, so entries reach the engine in order
        self.drain()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._store, name)

    def apply(self, changes: ChangeSet) -> None:
        self._store.apply(without_graph(changes, payload(changes)))
        self.drain()

    def drain(self) -> int:
        """Apply the pending outbox entries to the engine, oldest first; how many are left (0 unless the
        engine failed: they wait for the next write or open, and a warning says so)."""
        with self._lock:
            pending = self._store.outbox_pending()
            for done, (entry_id, entry) in enumerate(pending):
                try:
                    self._engine.apply(entry)
                except Exception as exc:  # the facts are committed; the graph catches up later
                    log.warning("graph engine: %d change(s) wait in the outbox (%s: %s)", len(pending) - done,
                                type(exc).__name__, exc)
                    return len(pending) - done
                self._store.outbox_done(entry_id)
            return 0

    def graph_entities(self, scope: Scope, with_embeddings: bool = False) -> list[GraphEntity]:
        return self._read(lambda: self._engine.entities(scope, with_embeddings))

    def graph_relations(self, scope: Scope, as_of: Optional[str] = None, entity_ids: Optional[list[str]] = None,
                        hops: int = 1, ended: bool = False) -> list[GraphRelation]:
        return self._read(lambda: self._engine.relations(scope, as_of, entity_ids, hops, ended))

    def _read(self, read: Any) -> Any:
        try:
            return read()
        except MemlaneError:
            raise
        except Exception as exc:
            raise ProviderError(f"graph engine read failed: {type(exc).__name__}: {exc}") from exc

    def reset(self) -> None:
        """Everything goes: the store, then (through the outbox, so a crash in between is repaired) the
        engine's graph."""
        self._store.reset()
        self._store.apply(ChangeSet(outbox={"reset": True}))
        self.drain()

    def close(self) -> None:
        try:
            self._engine.close()
        finally:
            self._store.close()
