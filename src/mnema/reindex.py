"""Re-embedding a store: every memory's vector made again the way add() makes it with the current embedder
and settings (after changing the embedder, sentence pooling, the context weight, or upgrading mnema). Part
of the one pipeline: a generator of effects, run by the sync or async driver.

The store hands out pages oldest first and remembers how far the reindex got (stores/base.py
reindex_page), so an interrupted run resumes; the new vector space is recorded with the last page, and
until then the file refuses to open for normal use.

How each kind of memory is embedded, as add() does it:
- conversation turns (episodic memories, and semantic ones stored verbatim: their text is their one
  source message): sentence-pooled with the speaker's name, and blended with the vector of their context
  (the turn before them) when contextual indexing is on;
- extracted facts and other semantic memories: sentence-pooled without a speaker;
- procedural summaries: the whole text, one vector.
"""
from __future__ import annotations

from collections import OrderedDict
from typing import Callable, Optional

import numpy as np

from . import filters as F
from . import inputs
from .effects import Embed, StoreCall
from .models import ChangeSet, MemoryRecord
from .pipeline import Op, Settings, memory_vectors, with_context

# Turn vectors kept per scope to serve as the next turn's context without embedding it again. A scope
# not held (more scopes than this in flight) gets its context embedded from the stored context text.
NEWEST_TURNS_KEPT = 50_000
Progress = Callable[[int, int], None]


def reindex(settings: Settings, batch_size: int = 256, progress: Optional[Progress] = None) -> Op:
    """Re-embed every memory, one transaction per page; returns what was done."""
    batch_size = inputs.limit(batch_size, "batch_size")
    _, total = yield StoreCall("list", (F.TRUE, 1, 0))
    newest: OrderedDict[tuple, tuple[str, np.ndarray]] = OrderedDict()
    done, cursor = 0, None
    while True:
        records, cursor = yield StoreCall("reindex_page", (settings.embedding_model, settings.dimension,
                                                           cursor, batch_size))
        if not records:
            break
        fresh = yield from reembedded(settings, records, newest)
        yield StoreCall("apply", (ChangeSet(reindex=fresh),))
        done += len(records)
        if progress is not None:
            progress(done, max(total, done))
    return {"reindexed": done, "embedding_model": settings.embedding_model, "dimension": settings.dimension}


def _scope(r: MemoryRecord) -> tuple:
    return (r.user_id, r.agent_id, r.run_id, r.memory_type)


def reembedded(settings: Settings, records: list[MemoryRecord],
               newest: "OrderedDict[tuple, tuple[str, np.ndarray]]") -> Op:
    """The records with new vectors (and contexts), in order. `newest` carries each scope's latest turn
    (text, own vector) from page to page."""
    turns = yield from _turn_flags(records)
    procedural = [i for i, r in enumerate(records) if r.memory_type == "procedural_memory"]
    pooled = [i for i, r in enumerate(records) if r.memory_type != "procedural_memory"]
    own = np.zeros((len(records), settings.dimension or 0), dtype=np.float32)
    if pooled:
        speakers = [records[i].actor_id if turns[i] else None for i in pooled]
        own[pooled] = yield from memory_vectors(settings, [records[i].memory for i in pooled], speakers)
    if procedural:
        own[procedural] = yield Embed([records[i].memory for i in procedural], "add")
    w = settings.context_weight
    before: dict[int, np.ndarray] = {}
    missing: list[int] = []
    for i, r in enumerate(records):
        if not turns[i]:
            continue
        if w > 0 and r.context is not None:
            held = newest.get(_scope(r))
            if held is not None and held[0] == r.context:
                before[i] = held[1]
            else:
                missing.append(i)
        newest[_scope(r)] = (r.memory, own[i])
        newest.move_to_end(_scope(r))
        while len(newest) > NEWEST_TURNS_KEPT:
            newest.popitem(last=False)
    if missing:  # the turn before is not at hand: embed the stored context text (its speaker is not stored)
        vectors = yield from memory_vectors(settings, [records[i].context for i in missing])
        before.update(zip(missing, vectors))
    out = []
    for i, r in enumerate(records):
        vector = with_context(own[i], before[i], w) if i in before else own[i]
        context = r.context if turns[i] and w > 0 else None
        out.append(MemoryRecord(**{**r.__dict__, "embedding": np.asarray(vector, dtype=np.float32),
                                   "context": context}))
    return out


def _turn_flags(records: list[MemoryRecord]) -> Op:
    """Whether each record is a conversation turn: episodic, or semantic with its one source message's text."""
    single = [r.source_message_ids[0] for r in records
              if r.memory_type == "semantic_memory" and len(r.source_message_ids) == 1]
    logged = (yield StoreCall("messages", (sorted(set(single)),))) if single else []
    content = {m.id: m.content for m in logged}
    return [r.memory_type == "episodic_memory"
            or (r.memory_type == "semantic_memory" and len(r.source_message_ids) == 1
                and content.get(r.source_message_ids[0]) == r.memory)
            for r in records]
