"""How each memory's stored vector is made, in one place for add(), update(), delete()'s re-indexing of the
next turn, and reindex(). Generators of effects like the rest of the pipeline (no I/O here).

- conversation turns (episodic memories, and semantic ones stored verbatim: their text is their one
  source message): sentence-pooled with the speaker's name, and blended with the vector of their context
  (the turn before them) when contextual indexing is on;
- extracted facts and other semantic memories: sentence-pooled without a speaker;
- procedural summaries: the whole text, one vector.
"""
from __future__ import annotations

from collections import OrderedDict
from typing import Optional

import numpy as np

from . import pooling
from .effects import Embed, Store
from .models import MemoryRecord
from .settings import Op, Settings

# Turn vectors kept per scope to serve as the next turn's context without embedding it again. A scope
# not held (more scopes than this in flight) gets its context embedded from the stored context text.
NEWEST_TURNS_KEPT = 50_000


def memory_vectors(settings: Settings, texts: list[str], speakers: Optional[list[Optional[str]]] = None,
                   purpose: str = "add") -> Op:
    """The stored vector of each memory text: sentence-pooled (pooling.py) unless turned off."""
    if not texts:
        return np.zeros((0, settings.dimension or 0), dtype=np.float32)
    if not settings.sentence_pooling:
        return (yield Embed(list(texts), purpose))
    parts, owners = pooling.pieces(texts, speakers)
    return pooling.pool((yield Embed(parts, purpose)), owners, len(texts))


def turn_vectors(settings: Settings, texts: list[str], speakers: list[Optional[str]],
                 first_context: Optional[tuple[str, Optional[str]]], own: Optional[np.ndarray] = None) -> Op:
    """Vectors and contexts for consecutive turns: each turn's context is the turn before it, and its vector
    takes `context_weight` of that turn's own embedding (as good as embedding the pair on LOCOMO, at no
    extra embedding cost)."""
    contexts = [first_context[0] if first_context else None, *texts[:-1]]
    w = settings.context_weight
    extra = [first_context] if first_context and w > 0 else []
    if own is None:
        embedded = yield from memory_vectors(settings, [c[0] for c in extra] + texts,
                                             [c[1] for c in extra] + list(speakers))
        own, before = embedded[len(extra):], (embedded[0] if extra else None)
    else:
        before = (yield from memory_vectors(settings, [extra[0][0]], [extra[0][1]]))[0] if extra else None
    if w <= 0:
        return own, [None] * len(texts)
    vectors = np.array(own, dtype=np.float32, copy=True)
    vectors[1:] = with_context(vectors[1:], np.asarray(own[:-1]), w)
    if before is not None and len(vectors):
        vectors[0] = with_context(vectors[0], before, w)
    return vectors, contexts


def with_context(own: np.ndarray, before: np.ndarray, w: float) -> np.ndarray:
    """A turn's stored vector (or rows of them): its own embedding with share `w` of the turn before it."""
    return (1 - w) * own + w * before


def scope_key(r: MemoryRecord) -> tuple:
    """The exact scope a turn's context comes from: its ids and memory type."""
    return (r.user_id, r.agent_id, r.run_id, r.memory_type)


def reembedded(settings: Settings, records: list[MemoryRecord],
               newest: OrderedDict[tuple, tuple[str, np.ndarray]]) -> Op:
    """The records with new vectors (and contexts), in order. `newest` carries each scope's latest turn
    (text, own vector) from page to page."""
    turns = yield from turn_flags(records)
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
            held = newest.get(scope_key(r))
            if held is not None and held[0] == r.context:
                before[i] = held[1]
            else:
                missing.append(i)
        newest[scope_key(r)] = (r.memory, own[i])
        newest.move_to_end(scope_key(r))
        while len(newest) > NEWEST_TURNS_KEPT:
            newest.popitem(last=False)
    if missing:  # the turn before is not at hand: embed the stored context text (its speaker is not stored)
        vectors = yield from memory_vectors(settings, [records[i].context or "" for i in missing])  # never None here
        before.update(zip(missing, vectors))
    out = []
    for i, r in enumerate(records):
        vector = with_context(own[i], before[i], w) if i in before else own[i]
        context = r.context if turns[i] and w > 0 else None
        out.append(MemoryRecord(**{**r.__dict__, "embedding": np.asarray(vector, dtype=np.float32),
                                   "context": context}))
    return out


def turn_flags(records: list[MemoryRecord]) -> Op:
    """Whether each record is a conversation turn: episodic, or semantic with its one source message's text."""
    single = [r.source_message_ids[0] for r in records
              if r.memory_type == "semantic_memory" and len(r.source_message_ids) == 1]
    logged = (yield Store.messages(sorted(set(single)))) if single else []
    content = {m.id: m.content for m in logged}
    return [r.memory_type == "episodic_memory"
            or (r.memory_type == "semantic_memory" and len(r.source_message_ids) == 1
                and content.get(r.source_message_ids[0]) == r.memory)
            for r in records]
