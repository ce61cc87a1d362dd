"""The memory pipeline, written once. Each operation is a generator: it validates, decides and plans
without doing I/O, yields effects (embed, store calls, LLM calls) for a driver to perform, and returns the
public result. `Memory` and `AsyncMemory` are thin drivers over these functions."""
from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass, field
from typing import Any, Generator, Optional

import numpy as np

from . import filters as F
from . import inputs
from .effects import Embed, StoreCall
from .errors import NotFoundError, ValidationError
from .models import ChangeSet, HistoryEntry, HistoryRecord, MemoryItem, MemoryRecord, MessageRecord
from .scoring import FusionWeights, fuse, query_terms

log = logging.getLogger("mnema")
Op = Generator[Any, Any, Any]

NO_LLM_WARNING = ("mnema: no LLM is configured, so add(infer=True) stores messages verbatim instead of "
                  "extracting facts. Configure one with Memory.from_config({'llm': {'provider': 'openai', "
                  "...}}) or set OPENAI_API_KEY; pass infer=False to store verbatim without this warning.")


@dataclass
class Settings:
    max_message_chars: int = 100_000
    llm_configured: bool = False
    weights: FusionWeights = field(default_factory=FusionWeights)
    # How many candidates each retriever contributes before fusion: max(min_candidates, factor * limit).
    candidate_factor: int = 4
    min_candidates: int = 50
    warned_no_llm: bool = False
    embedding_model: str = ""
    dimension: int = 0


def text_hash(text: str) -> str:
    return hashlib.md5(text.encode("utf-8")).hexdigest()  # mem0's dedup hash; not used for security


def history_row(memory_id: str, event: str, old: Optional[str], new: Optional[str],
                actor_id: Optional[str], role: Optional[str], at: str) -> HistoryRecord:
    return HistoryRecord(id=inputs.new_id(), memory_id=memory_id, event=event, old_memory=old, new_memory=new,
                         actor_id=actor_id, role=role, created_at=at, updated_at=None if event == "ADD" else at)


def message_records(msgs: list[inputs.Message], ids: dict[str, Optional[str]], event_time: Optional[str],
                    at: str) -> list[MessageRecord]:
    return [MessageRecord(id=inputs.new_id(), role=m.role, content=m.content, actor_id=m.name,
                          user_id=ids["user_id"], agent_id=ids["agent_id"], run_id=ids["run_id"],
                          timestamp=event_time, created_at=at) for m in msgs]


def new_memory(text: str, vector: np.ndarray, ids: dict[str, Optional[str]], metadata: dict[str, Any], *,
               actor_id: Optional[str], role: Optional[str], event_time: Optional[str], sources: list[str],
               at: str, memory_type: str = "semantic_memory") -> MemoryRecord:
    return MemoryRecord(id=inputs.new_id(), memory=text, hash=text_hash(text), metadata=dict(metadata),
                        user_id=ids["user_id"], agent_id=ids["agent_id"], run_id=ids["run_id"],
                        actor_id=actor_id, role=role, memory_type=memory_type, created_at=at, updated_at=None,
                        timestamp=event_time, source_message_ids=sources, embedding=vector)


# ------------------------------------------------------------------ add

def add(settings: Settings, messages: Any, *, user_id: Any = None, agent_id: Any = None, run_id: Any = None,
        metadata: Any = None, infer: bool = True, timestamp: Any = None) -> Op:
    msgs = inputs.messages(messages, settings.max_message_chars)
    ids = inputs.scope_ids(user_id, agent_id, run_id)
    inputs.require_scope(ids)
    meta = inputs.metadata(metadata)
    event_time = inputs.timestamp(timestamp)
    if infer and not settings.llm_configured and not settings.warned_no_llm:
        settings.warned_no_llm = True
        log.warning(NO_LLM_WARNING)
    return (yield from add_verbatim(msgs, ids, meta, event_time))


def add_verbatim(msgs: list[inputs.Message], ids: dict[str, Optional[str]], meta: dict[str, Any],
                 event_time: Optional[str]) -> Op:
    """Store each non-system message as one memory, with the message log, in one transaction."""
    at = inputs.now_iso()
    logged = message_records(msgs, ids, event_time, at)
    kept = [(m, rec) for m, rec in zip(msgs, logged) if m.role != "system"]
    vectors = yield Embed([m.content for m, _ in kept], "add")
    records = [new_memory(m.content, vec, ids, meta, actor_id=m.name, role=m.role, event_time=event_time,
                          sources=[rec.id], at=at) for (m, rec), vec in zip(kept, vectors)]
    history = [history_row(r.id, "ADD", None, r.memory, r.actor_id, r.role, at) for r in records]
    yield StoreCall("apply", (ChangeSet(messages=logged, inserts=records, history=history),))
    return {"results": [{"id": r.id, "memory": r.memory, "event": "ADD", "actor_id": r.actor_id,
                         "role": r.role} for r in records], "relations": []}


# ------------------------------------------------------------------ search

def search(settings: Settings, query: Any, *, user_id: Any = None, agent_id: Any = None, run_id: Any = None,
           filters: Any = None, limit: Any = 10, threshold: Any = None) -> Op:
    text = inputs.query(query, settings.max_message_chars)
    where = inputs.scoped_filter(user_id, agent_id, run_id, filters)
    k = inputs.limit(limit, maximum=1000)
    cut = inputs.threshold(threshold)
    pool = max(settings.min_candidates, settings.candidate_factor * k)
    vector = (yield Embed([text], "search"))[0]
    dense = dict((yield StoreCall("vector_search", (vector, where, pool))))
    keyword = dict((yield StoreCall("keyword_search", (query_terms(text), where, pool))))
    missing = [i for i in keyword if i not in dense]
    if missing:  # keyword-only hits still get their exact dense score
        for rec in (yield StoreCall("get", (missing, True))):
            dense[rec.id] = float(np.dot(rec.embedding, vector))
    scores = fuse(dense, keyword, settings.weights)
    ranked = sorted(scores.items(), key=lambda kv: (-kv[1], kv[0]))
    if cut is not None:
        ranked = [(i, s) for i, s in ranked if s >= cut]
    ranked = ranked[:k]
    records = {r.id: r for r in (yield StoreCall("get", ([i for i, _ in ranked],)))}
    results = [MemoryItem.from_record(records[i], score=round(s, 6)).to_dict()
               for i, s in ranked if i in records]  # a row deleted meanwhile simply drops out
    return {"results": results, "relations": []}


# ------------------------------------------------------------------ reads

def get(settings: Settings, memory_id: Any) -> Op:
    mid = inputs.memory_id(memory_id)
    found = yield StoreCall("get", ([mid],))
    return MemoryItem.from_record(found[0]).to_dict() if found else None


def get_all(settings: Settings, *, user_id: Any = None, agent_id: Any = None, run_id: Any = None,
            filters: Any = None, limit: Any = 100, offset: Any = 0) -> Op:
    where = inputs.scoped_filter(user_id, agent_id, run_id, filters)
    records, total = yield StoreCall("list", (where, inputs.limit(limit), inputs.offset(offset)))
    return {"results": [MemoryItem.from_record(r).to_dict() for r in records], "total": total}


def history(settings: Settings, memory_id: Any) -> Op:
    mid = inputs.memory_id(memory_id)
    rows = yield StoreCall("history", (mid,))
    return [HistoryEntry.from_record(r).model_dump() for r in rows]


# ------------------------------------------------------------------ mutations

def _existing(mid: str, with_embeddings: bool = False) -> Op:
    found = yield StoreCall("get", ([mid], with_embeddings))
    if not found:
        raise NotFoundError(f"memory {mid} not found")
    return found[0]


def update(settings: Settings, memory_id: Any, text: Any = None, metadata: Any = None) -> Op:
    mid = inputs.memory_id(memory_id)
    if text is None and metadata is None:
        raise ValidationError("update() needs text, metadata or both")
    if text is not None:
        text = inputs.messages([{"role": "user", "content": text}], settings.max_message_chars)[0].content
    meta = inputs.metadata(metadata) if metadata is not None else None
    old = yield from _existing(mid, with_embeddings=True)
    at = inputs.now_iso()
    vector = old.embedding if text is None or text == old.memory else (yield Embed([text], "update"))[0]
    new = MemoryRecord(**{**old.__dict__, "memory": text if text is not None else old.memory,
                          "metadata": meta if meta is not None else old.metadata, "updated_at": at,
                          "embedding": vector})
    new.hash = text_hash(new.memory)
    row = history_row(mid, "UPDATE", old.memory, new.memory, old.actor_id, old.role, at)
    yield StoreCall("apply", (ChangeSet(updates=[new], history=[row]),))
    return {"message": "Memory updated successfully!", "id": mid, "memory": new.memory}


def delete(settings: Settings, memory_id: Any) -> Op:
    mid = inputs.memory_id(memory_id)
    old = yield from _existing(mid)
    row = history_row(mid, "DELETE", old.memory, None, old.actor_id, old.role, inputs.now_iso())
    yield StoreCall("apply", (ChangeSet(deletes=[mid], history=[row]),))
    return {"message": "Memory deleted successfully!", "id": mid}


def delete_all(settings: Settings, *, user_id: Any = None, agent_id: Any = None, run_id: Any = None,
               filters: Any = None) -> Op:
    where = inputs.scoped_filter(user_id, agent_id, run_id, filters)
    mids = yield StoreCall("ids", (where,))
    olds = yield StoreCall("get", (mids,))
    at = inputs.now_iso()
    rows = [history_row(o.id, "DELETE", o.memory, None, o.actor_id, o.role, at) for o in olds]
    yield StoreCall("apply", (ChangeSet(deletes=[o.id for o in olds], history=rows),))  # all or nothing
    return {"message": f"{len(olds)} memories deleted", "deleted": len(olds)}


def reset(settings: Settings) -> Op:
    yield StoreCall("reset")
    yield StoreCall("ensure_space", (settings.embedding_model, settings.dimension))
    return None


def messages(settings: Settings, ids: list[str]) -> Op:
    """Source messages of a memory (provenance), in log order."""
    if not isinstance(ids, list):
        ids = [ids]
    records = yield StoreCall("messages", (list(ids),))
    return [{"id": r.id, "role": r.role, "content": r.content, "actor_id": r.actor_id,
             "timestamp": r.timestamp, "created_at": r.created_at} for r in records]
