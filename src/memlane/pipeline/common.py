"""What the operations share: the warnings add() gives, the history row and new memory records,
the compare-and-set retry loop, and the filters that scope a read and hide what search and get_all do
not show."""
from __future__ import annotations

import logging
from typing import Any, Callable, Optional

import numpy as np

from .. import filters as F
from .. import inputs
from ..errors import ConflictError
from ..models import HistoryRecord, MemoryRecord, MessageRecord, text_hash
from ..settings import Op

log = logging.getLogger("memlane")

NO_LLM_WARNING = ("memlane: no LLM is configured, so add(infer=True) stores messages verbatim instead of "
                  "extracting facts. Configure one with Memory.from_config({'llm': {'provider': 'openai', "
                  "...}}) or set OPENAI_API_KEY; pass infer=False to store verbatim without this warning.")

GRAPH_NO_LLM_WARNING = ("memlane: graph_store is configured but no LLM is: graph memory stays off (the LLM "
                        "extracts its entities and relations). Configure an LLM to turn it on.")

# A mutation re-reads and re-plans when another call changed its memories first (compare-and-set); each
# round means someone else committed, so this bounds only pathological contention on one memory.
CONFLICT_ATTEMPTS = 20


def history_row(memory_id: str, event: str, old: Optional[str], new: Optional[str],
                actor_id: Optional[str], role: Optional[str], at: str, old_metadata: Optional[dict] = None,
                new_metadata: Optional[dict] = None) -> HistoryRecord:
    return HistoryRecord(id=inputs.new_id(), memory_id=memory_id, event=event, old_memory=old, new_memory=new,
                         actor_id=actor_id, role=role, created_at=at, updated_at=None if event == "ADD" else at,
                         old_metadata=old_metadata, new_metadata=new_metadata)


def retrying(attempt: Callable[[], Op]) -> Op:
    """Run a read-plan-write operation, starting over from its reads when its write hits a ConflictError.
    Each attempt takes its time stamps after its reads, so history follows commit order."""
    for _ in range(CONFLICT_ATTEMPTS - 1):
        try:
            return (yield from attempt())
        except ConflictError:
            pass
    return (yield from attempt())  # the last round's conflict reaches the caller


def message_records(msgs: list[inputs.Message], ids: dict[str, Optional[str]], event_time: Optional[str],
                    at: str, message_ids: list[str]) -> list[MessageRecord]:
    """The message log's rows; a message given as content parts keeps them whole (images included)."""
    return [MessageRecord(id=mid, role=m.role, content=m.content, actor_id=m.name, user_id=ids["user_id"],
                          agent_id=ids["agent_id"], run_id=ids["run_id"], timestamp=event_time, created_at=at,
                          metadata={"content_parts": m.parts} if m.parts else {})
            for m, mid in zip(msgs, message_ids)]


def new_memory(text: str, vector: np.ndarray, ids: dict[str, Optional[str]], metadata: dict[str, Any], *,
               actor_id: Optional[str], role: Optional[str], event_time: Optional[str], sources: list[str],
               at: str, memory_type: str = "semantic_memory", expiration_date: Optional[str] = None) -> MemoryRecord:
    return MemoryRecord(id=inputs.new_id(), memory=text, hash=text_hash(text), metadata=dict(metadata),
                        user_id=ids["user_id"], agent_id=ids["agent_id"], run_id=ids["run_id"],
                        actor_id=actor_id, role=role, memory_type=memory_type, created_at=at, updated_at=None,
                        timestamp=event_time, source_message_ids=sources, embedding=vector,
                        expiration_date=expiration_date)


def scope_node(ids: dict[str, Optional[str]], memory_type: str) -> F.Node:
    return F.conjoin(*(F.Cmp(k, "eq", v) for k, v in ids.items() if v is not None),
                     F.Cmp("memory_type", "eq", memory_type))


def unexpired(where: F.Node) -> F.Node:
    """`where`, less the memories whose expiration_date has passed (before today, UTC: mem0's meaning)."""
    return F.conjoin(where, F.Or((F.Cmp("expiration_date", "eq", None),
                                  F.Cmp("expiration_date", "gte", inputs.today()))))


def visible(where: F.Node, show_expired: bool = False) -> F.Node:
    """What search and get_all show: episodic memories (raw turns kept beside extracted facts) only when a
    filter asks for them, expired memories only with show_expired."""
    if not F.mentions(where, "memory_type"):
        where = F.conjoin(where, F.Cmp("memory_type", "ne", "episodic_memory"))
    return where if show_expired else unexpired(where)


ENTITY_TYPES = {"user_id": "user", "agent_id": "agent", "run_id": "run"}
