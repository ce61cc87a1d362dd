"""Records passed between the pipeline and the stores (dataclasses, cheap) and the public result
models (pydantic, what users get back as dicts with mem0's keys)."""
from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any, Optional

import numpy as np
from pydantic import BaseModel

SCOPE_KEYS = ("user_id", "agent_id", "run_id")
MEMORY_TYPES = ("semantic_memory", "episodic_memory", "procedural_memory")


@dataclass(frozen=True)
class Scope:
    """The scope ids every match of a read has (None: the read does not fix that one). Search passes it to
    the store beside the filter, so a store can read one scope's partition first and check the filter
    (which holds the same ids) afterwards."""

    user_id: Optional[str] = None
    agent_id: Optional[str] = None
    run_id: Optional[str] = None


def text_hash(text: str) -> str:
    return hashlib.md5(text.encode("utf-8")).hexdigest()  # mem0's dedup hash; not used for security


@dataclass
class MessageRecord:
    """One message of the message log (episodic memory)."""

    id: str
    role: str
    content: str
    actor_id: Optional[str]
    user_id: Optional[str]
    agent_id: Optional[str]
    run_id: Optional[str]
    timestamp: Optional[str]
    created_at: str
    metadata: dict[str, Any] = field(default_factory=dict)


@dataclass
class MemoryRecord:
    """One stored memory, as the store holds it."""

    id: str
    memory: str
    hash: str
    metadata: dict[str, Any]
    user_id: Optional[str]
    agent_id: Optional[str]
    run_id: Optional[str]
    actor_id: Optional[str]
    role: Optional[str]
    memory_type: str
    created_at: str
    updated_at: Optional[str]
    timestamp: Optional[str]
    source_message_ids: list[str]
    embedding: Optional[np.ndarray] = None
    # The turn before this one, for a memory stored verbatim from a conversation: it is indexed with the
    # memory (keyword index, and blended into the vector) because replies often only make sense with it.
    context: Optional[str] = None
    # Bumped by the store on every write to the row; a ChangeSet names the version it was planned against
    # (ChangeSet.expected), so a concurrent change is a ConflictError instead of a lost update.
    version: int = 1
    # mem0's expiration_date (YYYY-MM-DD): from the day after it (UTC), search and get_all leave the memory
    # out unless asked to show expired ones; get() still answers.
    expiration_date: Optional[str] = None


@dataclass(frozen=True)
class EntityRecord:
    """One user, agent or run that memories are scoped to (users()): `kind` is the scope key ("user_id",
    "agent_id" or "run_id"), `count` how many memories hold that id (every type, expired ones included), and
    the oldest created_at and newest change among them."""

    kind: str
    id: str
    count: int
    created_at: str
    updated_at: str


@dataclass
class HistoryRecord:
    id: str
    memory_id: str
    event: str  # ADD | UPDATE | DELETE
    old_memory: Optional[str]
    new_memory: Optional[str]
    actor_id: Optional[str]
    role: Optional[str]
    created_at: str
    updated_at: Optional[str]
    # Set when an UPDATE was given metadata: the metadata before and after (text alone would not show it).
    old_metadata: Optional[dict[str, Any]] = None
    new_metadata: Optional[dict[str, Any]] = None


@dataclass(frozen=True)
class JobCompletion:
    """Marks a background job done in the same transaction as its changes, so a crash can never leave its
    memories committed and the job queued to run again. `owner` is the lease holder: a worker whose lease
    was taken over commits nothing."""

    job_id: str
    owner: str
    result: Any


@dataclass
class GraphEntity:
    """A node of graph memory: something the messages of a scope name (a person, an organisation...).
    `norm` is the normalised name (graph.normalise) it is matched by; `embedding` the embedder's vector of
    the name (None when read without embeddings)."""

    id: str
    name: str
    norm: str
    type: str
    user_id: Optional[str]
    agent_id: Optional[str]
    run_id: Optional[str]
    created_at: str
    embedding: Optional[np.ndarray] = None


@dataclass
class GraphRelation:
    """An edge of graph memory, between two entities of its scope. valid_from / valid_to (UTC ISO) bound
    when it held; valid_to None: it still does. memory_ids / message_ids: what it came from."""

    id: str
    source_id: str
    relationship: str
    target_id: str
    user_id: Optional[str]
    agent_id: Optional[str]
    run_id: Optional[str]
    valid_from: Optional[str]
    valid_to: Optional[str]
    created_at: str
    memory_ids: list[str] = field(default_factory=list)
    message_ids: list[str] = field(default_factory=list)


@dataclass
class ChangeSet:
    """Everything one operation writes; a store applies it in one transaction or not at all."""

    messages: list[MessageRecord] = field(default_factory=list)
    inserts: list[MemoryRecord] = field(default_factory=list)
    updates: list[MemoryRecord] = field(default_factory=list)  # full new state, matched by id
    deletes: list[str] = field(default_factory=list)
    history: list[HistoryRecord] = field(default_factory=list)
    # New (context, embedding) for rows whose text is still `memory`; a row deleted or edited meanwhile is
    # left alone (a re-index must never undo a concurrent change).
    reindex: list[MemoryRecord] = field(default_factory=list)
    # memory id -> the version the updates and deletes were planned against; any other version (or a
    # missing row) makes the store raise ConflictError naming those ids and write nothing.
    expected: dict[str, int] = field(default_factory=dict)
    job: Optional[JobCompletion] = None
    # Graph memory, written in the same transaction (docs/guide.md, Graph memory). New entities and
    # relations; current relations the new messages end (id -> valid_to); relations that gain support (id
    # -> (memory ids, message ids), merged into theirs); memories whose text changed (id -> when: the
    # current relations only they supported end then, unless in graph_support). Deleting a memory takes it
    # out of its relations' memory_ids and removes the relations left with none (the store does that for
    # every delete). graph_clear: scopes whose whole graph goes (a None id matches any).
    graph_entities: list[GraphEntity] = field(default_factory=list)
    graph_relations: list[GraphRelation] = field(default_factory=list)
    graph_ends: dict[str, str] = field(default_factory=dict)
    graph_support: dict[str, tuple[list[str], list[str]]] = field(default_factory=dict)
    graph_edited: dict[str, str] = field(default_factory=dict)
    graph_clear: list[Scope] = field(default_factory=list)
    # Graph changes bound for an external graph engine (graphs/outbox.py), as JSON: the store keeps them in
    # its outbox in this transaction, and the engine applies them after (again, after a crash).
    outbox: Optional[dict[str, Any]] = None

    def is_empty(self) -> bool:
        return not (self.messages or self.inserts or self.updates or self.deletes or self.history
                    or self.reindex or self.job or self.graph_entities or self.graph_relations
                    or self.graph_ends or self.graph_support or self.graph_edited or self.graph_clear
                    or self.outbox is not None)


class MemoryItem(BaseModel):
    """A memory as returned by get / get_all / search (mem0's keys, plus provenance and event time)."""

    id: str
    memory: str
    hash: str
    metadata: dict[str, Any]
    user_id: Optional[str] = None
    agent_id: Optional[str] = None
    run_id: Optional[str] = None
    actor_id: Optional[str] = None
    role: Optional[str] = None
    memory_type: str = "semantic_memory"
    created_at: str
    updated_at: Optional[str] = None
    timestamp: Optional[str] = None
    source_message_ids: list[str] = []
    expiration_date: Optional[str] = None
    score: Optional[float] = None

    @classmethod
    def from_record(cls, rec: MemoryRecord, score: Optional[float] = None) -> "MemoryItem":
        return cls(
            id=rec.id, memory=rec.memory, hash=rec.hash, metadata=rec.metadata, user_id=rec.user_id,
            agent_id=rec.agent_id, run_id=rec.run_id, actor_id=rec.actor_id, role=rec.role,
            memory_type=rec.memory_type, created_at=rec.created_at, updated_at=rec.updated_at,
            timestamp=rec.timestamp, source_message_ids=list(rec.source_message_ids), score=score,
            expiration_date=rec.expiration_date,
        )

    def to_dict(self) -> dict[str, Any]:
        data = self.model_dump()
        for optional in ("score", "expiration_date"):  # present when there is one (as in mem0's results)
            if data[optional] is None:
                del data[optional]
        return data


class HistoryEntry(BaseModel):
    id: str
    memory_id: str
    event: str
    old_memory: Optional[str] = None
    new_memory: Optional[str] = None
    actor_id: Optional[str] = None
    role: Optional[str] = None
    created_at: str
    updated_at: Optional[str] = None
    is_deleted: bool = False
    # Only for an UPDATE that was given metadata (None otherwise).
    old_metadata: Optional[dict[str, Any]] = None
    new_metadata: Optional[dict[str, Any]] = None

    @classmethod
    def from_record(cls, rec: HistoryRecord) -> "HistoryEntry":
        return cls(id=rec.id, memory_id=rec.memory_id, event=rec.event, old_memory=rec.old_memory,
                   new_memory=rec.new_memory, actor_id=rec.actor_id, role=rec.role,
                   created_at=rec.created_at, updated_at=rec.updated_at,
                   is_deleted=rec.event == "DELETE", old_metadata=rec.old_metadata,
                   new_metadata=rec.new_metadata)
