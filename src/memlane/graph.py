"""Graph memory, pure: entity names normalised and matched, the LLM's entities, relations and endings turned
into graph changes, and relations found for a query. No I/O: the generators here yield store calls
(effects.Store) as the pipeline does, and the pipeline calls them from add, search and get_all.

The LLM extracts (source, relationship, target) relations in the same call as the facts (extraction.py).
Names are matched conservatively: the same normalised name is the same entity; otherwise only a name whose
words contain, or are contained in, an existing entity's (Alice / Alice Smith) and whose embedding is very
close to it, when it is the only such candidate. A relation the new messages end keeps its row with a
valid_to; one whose memories are all deleted goes (the store cascades memory deletes in the same
transaction, stores/sqlite_graph.py).
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Optional

import numpy as np

from . import inputs
from .effects import Store
from .models import ChangeSet, GraphEntity, GraphRelation, MemoryRecord, Scope
from .settings import Op

# Cosine similarity above which a contained name (Alice / Alice Smith) is taken for the same entity.
SAME_ENTITY_SIMILARITY = 0.8
# Cosine similarity between a query and an entity's name above which search starts from that entity.
QUERY_ENTITY_SIMILARITY = 0.75
# How far search walks from the query's entities, and how a relation's score falls per hop.
SEARCH_HOPS = 2
HOP_DECAY = 0.5
# The most existing relations shown to the LLM on an add.
MAX_SHOWN_RELATIONS = 20
# Longer entity names and relationships from the LLM are dropped.
MAX_NAME_CHARS = 200
# What "I" and "me" may be written as in the LLM's answer: the scope's user.
SELF_NAMES = frozenset({"i", "me", "my", "myself", "user", "the user"})

_PUNCT = re.compile(r"[^\w\s'-]+")
_SPACE = re.compile(r"\s+")


def normalise(name: str) -> str:
    """Case, whitespace and punctuation folded; a lowercase (common-noun) name's last word singular."""
    text = _SPACE.sub(" ", _PUNCT.sub(" ", name)).strip()
    proper = text[:1].isupper()
    words = text.casefold().split(" ")
    last = words[-1]
    if not proper and len(last) > 3:
        if last.endswith("ies"):
            last = last[:-3] + "y"
        elif last.endswith("s") and not last.endswith(("ss", "us", "is")):
            last = last[:-1]
    return " ".join([*words[:-1], last])


def relationship_key(relationship: str) -> str:
    """works at / Works_At / works-at -> works_at."""
    return "_".join(re.findall(r"\w+", relationship.casefold()))


def resolved(name: str, user: Optional[str]) -> str:
    """The name with "I" / "me" (and the like) as the scope's user, when there is one."""
    name = _SPACE.sub(" ", name).strip()
    return user if user is not None and name.casefold() in SELF_NAMES else name


def utc(timestamp: str) -> str:
    """An ISO time as UTC, so that validity times compare as strings."""
    parsed = datetime.fromisoformat(timestamp)
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=timezone.utc)
    return parsed.astimezone(timezone.utc).isoformat()


def as_of(value: Any) -> Optional[str]:
    """A validated as_of (search, get_all): any form add()'s timestamp takes, as UTC ISO; None: now."""
    checked = inputs.timestamp(value)
    return None if checked is None else utc(checked)


def same_scope(entity: GraphEntity, scope: Scope) -> bool:
    return (entity.user_id, entity.agent_id, entity.run_id) == (scope.user_id, scope.agent_id, scope.run_id)


def _cosine(a: Optional[np.ndarray], b: Optional[np.ndarray]) -> float:
    if a is None or b is None or a.shape != b.shape:
        return -1.0
    denominator = float(np.linalg.norm(a) * np.linalg.norm(b))
    return float(np.dot(a, b)) / denominator if denominator else -1.0


def match(norm: str, vector: Optional[np.ndarray], entities: list[GraphEntity]) -> Optional[GraphEntity]:
    """The existing entity a name is: the same normalised name, else the one entity whose name's words
    contain or are contained in it and whose embedding is at least SAME_ENTITY_SIMILARITY; None: new."""
    for entity in entities:
        if entity.norm == norm:
            return entity
    words = set(norm.split())
    close = [e for e in entities if (words <= set(e.norm.split()) or set(e.norm.split()) <= words)
             and _cosine(vector, e.embedding) >= SAME_ENTITY_SIMILARITY]
    return close[0] if len(close) == 1 else None


def mentioned(texts: list[str], vectors: Any, entities: list[GraphEntity], threshold: float) -> dict[str, float]:
    """Entity id -> how surely the texts name it: 1.0 for its normalised name as words of a text, else the
    best similarity of a text's vector to its name's at or above `threshold`."""
    folded = [" " + " ".join(normalise(w) for w in re.findall(r"[\w'-]+", t)) + " " for t in texts]
    raw = [" " + " ".join(re.findall(r"[\w'-]+", t.casefold())) + " " for t in texts]
    out: dict[str, float] = {}
    for entity in entities:
        if any(f" {entity.norm} " in text for text in folded + raw):
            out[entity.id] = 1.0
            continue
        best = max((_cosine(np.asarray(v), entity.embedding) for v in vectors), default=-1.0)
        if best >= threshold:
            out[entity.id] = best
    return out


def render(rel: GraphRelation, names: dict[str, str], score: Optional[float] = None) -> dict[str, Any]:
    """A relation as search and get_all return it."""
    out: dict[str, Any] = {"source": names.get(rel.source_id, rel.source_id), "relationship": rel.relationship,
                           "target": names.get(rel.target_id, rel.target_id)}
    if score is not None:
        out["score"] = round(score, 6)
    out.update(valid_from=rel.valid_from, valid_to=rel.valid_to)
    return out


def line(rel: GraphRelation, names: dict[str, str]) -> str:
    """A relation as the LLM is shown it."""
    return f"{names.get(rel.source_id, '?')} -- {rel.relationship} --> {names.get(rel.target_id, '?')}"


def ranked(relations: list[GraphRelation], seeds: dict[str, float]) -> list[tuple[GraphRelation, float]]:
    """Relations near the query's entities, scored by the best seed they reach, halved per hop beyond the
    first; best first."""
    reach = dict(seeds)
    scored: dict[str, tuple[GraphRelation, float]] = {}
    for _ in range(SEARCH_HOPS):
        grown = dict(reach)
        for rel in relations:
            ends = [reach[e] for e in (rel.source_id, rel.target_id) if e in reach]
            if not ends:
                continue
            score = max(ends)
            if score > scored.get(rel.id, (rel, -1.0))[1]:
                scored[rel.id] = (rel, score)
            for e in (rel.source_id, rel.target_id):
                grown[e] = max(grown.get(e, 0.0), score * HOP_DECAY)
        reach = grown
    return sorted(scored.values(), key=lambda rs: (-rs[1], rs[0].created_at, rs[0].id))


@dataclass
class Extracted:
    """What the LLM answered for the graph, its names resolved to the scope's user."""

    types: dict[str, str] = field(default_factory=dict)  # normalised name -> type
    names: dict[str, str] = field(default_factory=dict)  # normalised name -> name as first written
    relations: list[tuple[str, str, str, list[int]]] = field(default_factory=list)  # (src, rel, tgt, sources)
    ended: list[GraphRelation] = field(default_factory=list)


def extracted(entities: list[tuple[str, str]], relations: list[tuple[str, str, str, list[int]]],
              ended: list[GraphRelation], user: Optional[str]) -> Extracted:
    out = Extracted(ended=ended)

    def name_of(raw: str) -> Optional[str]:
        name = resolved(raw, user)
        norm = normalise(name) if name else ""
        if not norm or len(name) > MAX_NAME_CHARS:  # a name, not a paragraph
            return None
        out.names.setdefault(norm, name)
        return norm

    for raw, kind in entities:
        norm = name_of(raw)
        if norm is not None and kind.strip():
            out.types.setdefault(norm, kind.strip().casefold()[:MAX_NAME_CHARS])
    for src, rel, tgt, sources in relations:
        s, t, key = name_of(src), name_of(tgt), relationship_key(rel)
        if s is not None and t is not None and key and len(key) <= MAX_NAME_CHARS and s != t:
            out.relations.append((s, key, t, sources))
    return out


def new_names(found: Extracted, entities: list[GraphEntity]) -> list[str]:
    """The normalised names used by relations that no entity has exactly: they need an embedding."""
    known = {e.norm for e in entities}
    used = dict.fromkeys(n for s, _, t, _ in found.relations for n in (s, t))
    return [n for n in used if n not in known]


def plan(found: Extracted, vectors: dict[str, np.ndarray], entities: list[GraphEntity],
         shown: list[GraphRelation], scope: Scope, valid_from: str, at: str,
         support: list[tuple[str, list[int]]], message_ids: list[str], changes: ChangeSet) -> list[dict[str, Any]]:
    """Add the graph's changes to `changes`: new entities, new relations (or more support for a current
    one that says the same), endings. `support`: (memory id, its source message indices) of the facts this
    add wrote or confirmed; a relation records those sharing one of its messages (all, if none does).
    Returns the relations added and ended, as add() reports them."""
    known = [e for e in entities if same_scope(e, scope)]
    by_norm: dict[str, GraphEntity] = {}
    for norm in dict.fromkeys(n for s, _, t, _ in found.relations for n in (s, t)):
        entity = match(norm, vectors.get(norm), known)
        if entity is None:
            entity = GraphEntity(id=inputs.new_id(), name=found.names.get(norm, norm), norm=norm,
                                 type=found.types.get(norm, ""), user_id=scope.user_id, agent_id=scope.agent_id,
                                 run_id=scope.run_id, created_at=at, embedding=vectors.get(norm))
            changes.graph_entities.append(entity)
            known.append(entity)
        by_norm[norm] = entity
    names = {e.id: e.name for e in known}
    current = {(r.source_id, relationship_key(r.relationship), r.target_id): r for r in shown
               if r.valid_to is None}
    reported: list[dict[str, Any]] = []
    for rel in found.ended:
        changes.graph_ends[rel.id] = valid_from
        reported.append({**render(rel, names), "valid_to": valid_from, "event": "END"})
    for src, key, tgt, sources in found.relations:
        memory_ids = [mid for mid, s in support if set(s) & set(sources)] or [mid for mid, _ in support]
        if not memory_ids:
            continue  # nothing of this add supports it: a relation always has a memory behind it
        messages = [message_ids[i] for i in sources if 0 <= i < len(message_ids)] or list(message_ids)
        a, b = by_norm[src].id, by_norm[tgt].id
        same = current.get((a, key, b))
        if same is not None and same.id not in changes.graph_ends:
            merged = changes.graph_support.setdefault(same.id, ([], []))
            merged[0].extend(m for m in memory_ids if m not in merged[0])
            merged[1].extend(m for m in messages if m not in merged[1])
            continue
        rel = GraphRelation(id=inputs.new_id(), source_id=a, relationship=key, target_id=b, user_id=scope.user_id,
                            agent_id=scope.agent_id, run_id=scope.run_id, valid_from=valid_from, valid_to=None,
                            created_at=at, memory_ids=memory_ids, message_ids=messages)
        current[(a, key, b)] = rel
        changes.graph_relations.append(rel)
        reported.append({**render(rel, names), "event": "ADD"})
    return reported


def support_of(adds: list[tuple[MemoryRecord, list[int]]], updates: list[tuple[MemoryRecord, list[int]]],
               unchanged: list[MemoryRecord]) -> list[tuple[str, list[int]]]:
    """(memory id, source message indices) of the facts an add wrote, updated or found already known (those
    with no indices match any message)."""
    return ([(r.id, s) for r, s in adds] + [(r.id, s) for r, s in updates] + [(r.id, []) for r in unchanged])


# ------------------------------------------------------------------ what the pipeline calls

@dataclass
class State:
    """What an add read of its scope's graph: the entities (with embeddings) and the current relations
    shown to the LLM, in the order of their integer ids."""

    scope: Scope
    entities: list[GraphEntity]
    shown: list[GraphRelation]

    def lines(self) -> list[str]:
        names = {e.id: e.name for e in self.entities}
        return [line(r, names) for r in self.shown]


def before_add(scope: Scope, texts: list[str], vectors: Any) -> Op:
    """Read the scope's entities, and the current relations of those the new messages name (and of the
    scope's user), to show the LLM."""
    entities = [e for e in (yield Store.graph_entities(scope, True)) if same_scope(e, scope)]
    seeds = mentioned(texts, vectors, entities, QUERY_ENTITY_SIMILARITY)
    if scope.user_id is not None:
        seeds.update({e.id: 1.0 for e in entities if e.norm == normalise(scope.user_id)})
    shown: list[GraphRelation] = []
    if seeds:
        near = yield Store.graph_relations(scope, None, sorted(seeds), 1)
        by_id = {e.id for e in entities}
        shown = [r for r in near if r.source_id in by_id and r.target_id in by_id][:MAX_SHOWN_RELATIONS]
    return State(scope, entities, shown)


def after_add(state: State, answer: Any, ended: list[int], vectors: dict[str, np.ndarray],
              valid_from: Optional[str], at: str, support: list[tuple[str, list[int]]],
              edited: list[str], message_ids: list[str], changes: ChangeSet) -> list[dict[str, Any]]:
    """The graph part of an add's ChangeSet (see plan); `edited`: memories whose text it changed."""
    found = extracted([(e.name, e.type) for e in answer.entities],
                      [(r.source, r.relationship, r.target, r.source_messages) for r in answer.relations],
                      [state.shown[i] for i in ended], state.scope.user_id)
    when = utc(valid_from or at)
    for memory_id in edited:
        changes.graph_edited[memory_id] = when
    return plan(found, vectors, state.entities, state.shown, state.scope, when, at, support, message_ids,
                changes)


def names_to_embed(state: State, answer: Any) -> list[str]:
    found = extracted([], [(r.source, r.relationship, r.target, []) for r in answer.relations], [],
                      state.scope.user_id)
    return new_names(found, state.entities)


def search_relations(scopes: list[Scope], query: str, vector: np.ndarray, when: Optional[str],
                     limit: int) -> Op:
    """The relations search returns: from the entities the query names (or whose name's embedding is close
    to the query's), 1-2 hops within each scope, valid at `when` (None: current), best first."""
    out: list[tuple[GraphRelation, float, dict[str, str]]] = []
    for scope in scopes:
        entities = yield Store.graph_entities(scope, True)
        seeds = mentioned([query], [vector], entities, QUERY_ENTITY_SIMILARITY)
        if not seeds:
            continue
        near = yield Store.graph_relations(scope, when, sorted(seeds), SEARCH_HOPS)
        names = {e.id: e.name for e in entities}
        out.extend((rel, score, names) for rel, score in ranked(near, seeds))
    out.sort(key=lambda item: -item[1])
    seen: set[str] = set()
    results: list[dict[str, Any]] = []
    for rel, score, names in out:
        if rel.id not in seen and len(results) < limit:
            seen.add(rel.id)
            results.append(render(rel, names, score))
    return results


def all_relations(scopes: list[Scope], when: Optional[str]) -> Op:
    """get_all's relations: every relation of the scopes valid at `when` (None: current), oldest first."""
    results: list[dict[str, Any]] = []
    seen: set[str] = set()
    for scope in scopes:
        names = {e.id: e.name for e in (yield Store.graph_entities(scope, False))}
        for rel in (yield Store.graph_relations(scope, when, None, 0)):
            if rel.id not in seen:
                seen.add(rel.id)
                results.append(render(rel, names))
    return results
