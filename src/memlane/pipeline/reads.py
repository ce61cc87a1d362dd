"""The plain reads: one memory, a scope's memories, a memory's history, the entities memories are
scoped to (mem0's users()), and the message log."""
from __future__ import annotations

from typing import Any

from .. import filters as F
from .. import graph as G
from .. import inputs
from ..effects import Store
from ..models import HistoryEntry, MemoryItem, MessageRecord
from ..settings import Op, Settings
from .common import ENTITY_TYPES, visible


def get(settings: Settings, memory_id: Any) -> Op:
    mid = inputs.memory_id(memory_id)
    found = yield Store.get([mid])
    return MemoryItem.from_record(found[0]).to_dict() if found else None


def get_all(settings: Settings, *, user_id: Any = None, agent_id: Any = None, run_id: Any = None,
            filters: Any = None, limit: Any = None, offset: Any = 0, top_k: Any = None,
            show_expired: Any = False, as_of: Any = None) -> Op:
    """With graph memory configured, also the scope's relations (current ones, or those that held at as_of)."""
    where = visible(inputs.scoped_filter(user_id, agent_id, run_id, filters),
                    inputs.flag(show_expired, "show_expired"))
    limit = inputs.limit_or_top_k(limit, top_k, 100)
    when = G.as_of(as_of)
    records, total = yield Store.list(where, limit, inputs.offset(offset))
    out = {"results": [MemoryItem.from_record(r).to_dict() for r in records], "total": total}
    if settings.graph_requested:
        out["relations"] = yield from G.all_relations(F.scope_cover(where), when)
    return out


def history(settings: Settings, memory_id: Any) -> Op:
    mid = inputs.memory_id(memory_id)
    rows = yield Store.history(mid)
    return [HistoryEntry.from_record(r).model_dump() for r in rows]


def users(settings: Settings) -> Op:
    """Every user, agent and run that memories are scoped to, in mem0's entity shape: type, name (and id,
    the same), total_memories (every memory holding the id: all types, expired ones included, what
    delete_users would delete), created_at of the oldest and updated_at of the newest change."""
    rows = yield Store.entities()
    results = [{"id": e.id, "name": e.id, "type": ENTITY_TYPES[e.kind], "total_memories": e.count,
                "created_at": e.created_at, "updated_at": e.updated_at} for e in rows]
    return {"results": results, "total": len(results)}


def _message_dict(r: MessageRecord) -> dict[str, Any]:
    """A logged message; one given as content parts also has them, images included, as `content_parts`."""
    out = {"id": r.id, "role": r.role, "content": r.content, "actor_id": r.actor_id, "user_id": r.user_id,
           "agent_id": r.agent_id, "run_id": r.run_id, "timestamp": r.timestamp, "created_at": r.created_at}
    if r.metadata.get("content_parts"):
        out["content_parts"] = r.metadata["content_parts"]
    return out


def messages(settings: Settings, ids: Any) -> Op:
    """Source messages of a memory (provenance), in log order."""
    records = yield Store.messages(inputs.message_ids(ids))
    return [_message_dict(r) for r in records]


def message_log(settings: Settings, *, user_id: Any = None, agent_id: Any = None, run_id: Any = None,
                limit: Any = 100, offset: Any = 0) -> Op:
    """The scope's message log, oldest first: every message ever passed to add(), kept even when the
    add failed, so it can be replayed."""
    ids = inputs.scope_ids(user_id, agent_id, run_id)
    inputs.require_scope(ids)
    where = F.conjoin(*(F.Cmp(k, "eq", v) for k, v in ids.items() if v is not None))
    records, total = yield Store.list_messages(where, inputs.limit(limit), inputs.offset(offset))
    return {"results": [_message_dict(r) for r in records], "total": total}
