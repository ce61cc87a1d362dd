"""add() with an LLM: images described, facts extracted and reconciled with related memories in one
call (extraction.py), the plan applied in one write, re-planned when another call changed a memory it
updates or deletes. Also the LLM call with its one repair retry and the token usage count."""
from __future__ import annotations

import json
from dataclasses import replace
from typing import TYPE_CHECKING, Any, Optional

from .. import extraction as X
from .. import graph as G
from .. import inputs
from ..effects import Complete, Store
from ..errors import ConflictError, LLMError
from ..llms.base import LLMRequest
from ..models import ChangeSet, MemoryRecord, MessageRecord, Scope, text_hash
from ..settings import Op, Settings
from ..vectors import memory_vectors, turn_vectors
from .common import history_row, log, new_memory, scope_node, unexpired
from .turns import previous_turn, turns_after

if TYPE_CHECKING:
    from .ingest import AddRequest


DESCRIBE_IMAGE = ("A user shared this image in a conversation. Describe it in one or two sentences: what it "
                  "shows, and any text in it. Answer with the description only.")


def described(settings: Settings, msgs: list[inputs.Message], usage: Optional["Usage"] = None) -> Op:
    """The messages as memories read them: with an LLM that has vision (llm config enable_vision), each
    image part is described by it and the description follows the message's text (mem0 describes images
    so); without one they are as given, their images kept in the message log only."""
    if not settings.vision or not any(m.images for m in msgs if m.role != "system"):
        return msgs
    out = []
    for m in msgs:
        descriptions = []
        for image in m.images if m.role != "system" else ():
            response = yield Complete(LLMRequest(
                messages=[{"role": "user", "content": [{"type": "text", "text": DESCRIBE_IMAGE}, image]}],
                schema_name="image_description"))
            if usage is not None:
                usage.count(response)
            descriptions.append(" ".join((response.content or "").split()))
        text = " ".join(t for t in (m.content.strip(), *descriptions) if t)
        out.append(replace(m, content=text[:settings.max_message_chars]) if descriptions else m)
    return out


class Usage:
    def __init__(self) -> None:
        self.prompt_tokens = self.completion_tokens = self.llm_calls = 0

    def count(self, response: Any) -> None:
        self.llm_calls += 1
        self.prompt_tokens += int(getattr(response, "prompt_tokens", 0) or 0)
        self.completion_tokens += int(getattr(response, "completion_tokens", 0) or 0)

    def as_dict(self) -> dict[str, int]:
        return {"prompt_tokens": self.prompt_tokens, "completion_tokens": self.completion_tokens,
                "llm_calls": self.llm_calls}


def ask(request: Any, model: type, usage: Usage) -> Op:
    """One LLM call, strictly parsed; on output that does not validate, one repair retry, then LLMError."""
    response = yield Complete(request)
    usage.count(response)
    try:
        return X.parse(response, model)
    except ValueError as first:
        raw = response.content or json.dumps(response.data)
        log.info("memlane: LLM answer did not validate (%s); asking once more", first)
        response = yield Complete(X.repair_request(request, raw, str(first)))
        usage.count(response)
        try:
            return X.parse(response, model)
        except ValueError as second:
            raise LLMError(f"the LLM's answer did not validate after one repair retry: {second}",
                           raw_output=response.content or response.data) from None


def add_inferred(settings: Settings, req: AddRequest, logged: list[MessageRecord]) -> Op:
    """Extract facts and reconcile them with related memories in one LLM call, then apply the plan in one
    transaction. The messages are logged first, in their own transaction, so a failed add loses no input."""
    ids, meta, event_time, instructions = req.ids, req.metadata, req.timestamp, req.instructions
    first_context = (yield from previous_turn(ids, "episodic_memory")) if settings.keep_episodic else None
    yield Store.apply(ChangeSet(messages=logged))
    usage = Usage()
    msgs = yield from described(settings, req.messages, usage)
    # a message of images alone, with no LLM to see them, is in the log and nowhere else
    convo = [(m, rec) for m, rec in zip(msgs, logged) if m.role != "system" and m.content.strip()]
    if not convo:
        out: dict[str, Any] = {"results": [], "relations": [], "usage": usage.as_dict()}
        yield Store.apply(req.finish(ChangeSet(), out))
        return out
    vectors = yield from memory_vectors(settings, [m.content for m, _ in convo], [m.name for m, _ in convo])
    # Expired memories are not shown to the LLM: "already known" must not hold for a fact that search hides.
    where, scope = unexpired(scope_node(ids, "semantic_memory")), Scope(**ids)
    best: dict[str, float] = {}
    for vec in vectors:
        for mid, score in (yield Store.vector_search(vec, scope, where, settings.related_per_message)):
            best[mid] = max(score, best.get(mid, -1.0))
    related_ids = sorted(best, key=lambda i: -best[i])[:settings.max_related]
    found = {r.id: r for r in (yield Store.get(related_ids))}
    graph = (yield from G.before_add(scope, [m.content for m, _ in convo], vectors)) if settings.graph else None
    at = inputs.now_iso()  # after the reads: an update it plans is stamped later than the state it saw
    ctx = X.Context(messages=[m for m, _ in convo], existing=[found[i] for i in related_ids if i in found],
                    conversation_date=(event_time or at)[:10], agent_mode=X.use_agent_prompt(msgs, ids["agent_id"]),
                    custom_instructions=instructions, relations=graph.lines() if graph else None,
                    user=ids["user_id"])
    answer = yield from ask(X.build_request(ctx), X.Answer, usage)
    plan = X.plan(answer, ctx)
    texts = [a.text for a in plan.adds] + [u.text for u in plan.updates]
    names = G.names_to_embed(graph, answer) if graph else []  # embedded with the facts, in one batch
    new_vectors = (yield from memory_vectors(settings, texts + names)) if texts or names else []
    name_vectors = dict(zip(names, new_vectors[len(texts):]))
    add_vectors = list(new_vectors[:len(plan.adds)])
    update_vectors = {id(u): v for u, v in zip(plan.updates, new_vectors[len(plan.adds):])}
    episodes: list[MemoryRecord] = []
    if settings.keep_episodic:
        turn_vecs, contexts = yield from turn_vectors(settings, [m.content for m, _ in convo],
                                                      [m.name for m, _ in convo], first_context, own=vectors)
        for (m, rec), vec, context in zip(convo, turn_vecs, contexts):
            episode = new_memory(m.content, vec, ids, meta, actor_id=m.name, role=m.role, event_time=event_time,
                                 sources=[rec.id], at=at, memory_type="episodic_memory",
                                 expiration_date=req.expiration_date)
            episode.context = context
            episodes.append(episode)
    source_ids = [rec.id for _, rec in convo]
    # Nothing but the store's answer changes between rounds: a decision on a memory that another call
    # changed or deleted since it was shown to the LLM is dropped (reported under "rejected"), the rest
    # is written.
    while True:
        changes, results = yield from inferred_changes(settings, plan, add_vectors, update_vectors, episodes,
                                                       convo, source_ids, ids, meta, event_time, at,
                                                       expiration=req.expiration_date)
        relations = G.after_add(
            graph, answer, plan.ended_relations, name_vectors, event_time, at,
            G.support_of(list(zip(changes.inserts, [a.sources for a in plan.adds])),
                         [(u.target, u.sources) for u in plan.updates], plan.unchanged),
            [u.target.id for u in plan.updates], source_ids, changes) if graph else []
        out = {"results": results, "relations": relations, "usage": usage.as_dict()}
        if plan.rejected:
            out["rejected"] = plan.rejected
        try:
            yield Store.apply(req.finish(changes, out))
        except ConflictError as exc:
            if not drop_conflicts(plan, set(exc.ids)):
                raise
            continue
        break
    if plan.rejected:
        log.warning("memlane: rejected %d LLM decision(s): %s", len(plan.rejected),
                    "; ".join(r["reason"] for r in plan.rejected))
    return out


def drop_conflicts(plan: X.Plan, stale: set[str]) -> bool:
    """Move the plan's updates and deletes of `stale` memories to its rejected decisions; False if none."""
    conflicted: list[tuple[str, MemoryRecord, Optional[str]]] = [
        *(("UPDATE", u.target, u.text) for u in plan.updates if u.target.id in stale),
        *(("DELETE", d, None) for d in plan.deletes if d.id in stale)]
    for event, target, text in conflicted:
        plan.rejected.append({"decision": {"event": event, "memory_id": target.id, "text": text},
                              "reason": f"conflict: memory {target.id} was changed or deleted by another "
                                        "call after it was shown to the LLM"})
    plan.updates = [u for u in plan.updates if u.target.id not in stale]
    plan.deletes = [d for d in plan.deletes if d.id not in stale]
    return bool(conflicted)


def inferred_changes(settings: Settings, plan: X.Plan, add_vectors: list, update_vectors: dict[int, Any],
                     episodes: list[MemoryRecord], convo: list, source_ids: list[str],
                     ids: dict[str, Optional[str]], meta: dict[str, Any], event_time: Optional[str],
                     at: str, expiration: Optional[str] = None) -> Op:
    """The ChangeSet and results of an LLM plan, each update and delete expecting the version shown. The
    add's metadata and expiration_date go to the memories it adds and updates."""
    def sources(indices: list[int]) -> list[str]:
        return [source_ids[i] for i in indices] if indices else list(source_ids)

    def speaker(indices: list[int], role: str) -> Optional[str]:
        names = [convo[i][0].name for i in (indices or range(len(convo))) if convo[i][0].role == role]
        return next((n for n in names if n), None)

    changes = ChangeSet()
    results: list[dict[str, Any]] = []
    for add_, vec in zip(plan.adds, add_vectors):
        rec = new_memory(add_.text, vec, ids, meta, actor_id=speaker(add_.sources, add_.attributed_to),
                         role=add_.attributed_to, event_time=event_time, sources=sources(add_.sources), at=at,
                         expiration_date=expiration)
        changes.inserts.append(rec)
        changes.history.append(history_row(rec.id, "ADD", None, rec.memory, rec.actor_id, rec.role, at))
        results.append({"id": rec.id, "memory": rec.memory, "event": "ADD"})
    for upd in plan.updates:
        old = upd.target
        merged_sources = list(dict.fromkeys(old.source_message_ids + sources(upd.sources)))
        new = replace(old, memory=upd.text, hash=text_hash(upd.text), metadata={**old.metadata, **meta},
                      updated_at=at, embedding=update_vectors[id(upd)], timestamp=event_time or old.timestamp,
                      source_message_ids=merged_sources, expiration_date=expiration or old.expiration_date)
        changes.updates.append(new)
        changes.expected[old.id] = old.version
        changes.history.append(history_row(old.id, "UPDATE", old.memory, upd.text, old.actor_id, old.role, at))
        results.append({"id": old.id, "memory": upd.text, "event": "UPDATE", "previous_memory": old.memory})
    for old in plan.deletes:
        changes.deletes.append(old.id)
        changes.expected[old.id] = old.version
        changes.history.append(history_row(old.id, "DELETE", old.memory, None, old.actor_id, old.role, at))
        results.append({"id": old.id, "memory": old.memory, "event": "DELETE"})
    changed = [u.target for u in plan.updates] + list(plan.deletes)
    if changed:
        changes.reindex = yield from turns_after(settings, changed, [u.text for u in plan.updates]
                                                 + [None] * len(plan.deletes))
    for episode in episodes:  # the raw turns kept beside the facts are audited like any other memory
        changes.inserts.append(episode)
        changes.history.append(history_row(episode.id, "ADD", None, episode.memory, episode.actor_id,
                                           episode.role, at))
    return changes, results
