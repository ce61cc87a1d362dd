"""The memory pipeline, written once. Each operation is a generator: it validates, decides and plans
without doing I/O, yields effects (embed, store calls, LLM calls) for a driver to perform, and returns the
public result. `Memory` and `AsyncMemory` are thin drivers over these functions."""
from __future__ import annotations

import json
import logging
from collections import OrderedDict
from dataclasses import dataclass, replace
from datetime import date
from typing import Any, Callable, Optional, Sequence

import numpy as np

from . import extraction as X
from . import filters as F
from . import graph as G
from . import inputs
from .effects import Complete, Embed, Rerank, Store, WarnOnce
from .errors import ConfigurationError, ConflictError, LLMError, NotFoundError, ValidationError
from .llms.base import LLMRequest
from .models import (ChangeSet, HistoryEntry, HistoryRecord, JobCompletion, MemoryItem, MemoryRecord,
                     MessageRecord, Scope, text_hash)
from .rerankers.base import checked
from .query_dates import date_share, named_dates
from .calibration import result_scores, scope_size
from .scoring import fuse, named_actor, query_terms
from .settings import Op, Settings
from .vectors import memory_vectors, reembedded, scope_key, turn_vectors

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


# ------------------------------------------------------------------ add

@dataclass
class AddRequest:
    """A validated add(): what a background job persists and a worker replays. `message_ids` are fixed up
    front so the message log is written once however many times the job is attempted."""

    messages: list[inputs.Message]
    ids: dict[str, Optional[str]]
    metadata: dict[str, Any]
    timestamp: Optional[str]
    infer: bool
    memory_type: Optional[str]
    instructions: Optional[str]
    message_ids: list[str]
    # mem0's expiration_date (YYYY-MM-DD) for the memories this add writes or updates
    expiration_date: Optional[str] = None
    # (job id, lease owner) when a background worker runs it: the job is marked done in the final write.
    job: Optional[tuple[str, str]] = None

    def finish(self, changes: ChangeSet, result: dict[str, Any]) -> ChangeSet:
        """The final write of an add, carrying the job's completion when it runs as a background job."""
        if self.job is not None:
            changes.job = JobCompletion(self.job[0], self.job[1], result)
        return changes

    def to_payload(self) -> dict[str, Any]:
        return {"messages": [m.__dict__ for m in self.messages], "ids": self.ids, "metadata": self.metadata,
                "timestamp": self.timestamp, "infer": self.infer, "memory_type": self.memory_type,
                "instructions": self.instructions, "message_ids": self.message_ids,
                "expiration_date": self.expiration_date}

    @classmethod
    def from_payload(cls, data: dict[str, Any]) -> "AddRequest":
        return cls(**{**data, "messages": [inputs.Message(**m) for m in data["messages"]]})


def prepare_add(settings: Settings, messages: Any, *, user_id: Any = None, agent_id: Any = None,
                run_id: Any = None, metadata: Any = None, infer: bool = True, timestamp: Any = None,
                memory_type: Any = None, prompt: Any = None, expiration_date: Any = None) -> AddRequest:
    """Validate everything add() takes; raises ValidationError / ConfigurationError before any write."""
    msgs = inputs.messages(messages, settings.max_message_chars)
    ids = inputs.scope_ids(user_id, agent_id, run_id)
    inputs.require_scope(ids)
    infer = inputs.flag(infer, "infer")
    prompt = inputs.prompt(prompt, settings.max_message_chars)
    memory_type = inputs.memory_type(memory_type)
    if memory_type == "procedural_memory":
        if ids["agent_id"] is None:
            raise ValidationError("procedural memory needs an agent_id")
        if not settings.llm_configured:
            raise ConfigurationError("procedural memory is summarised by an LLM; configure one first")
    return AddRequest(messages=msgs, ids=ids, metadata=inputs.metadata(metadata),
                      timestamp=inputs.timestamp(timestamp), infer=infer, memory_type=memory_type,
                      instructions="\n".join(p for p in (settings.custom_instructions, prompt) if p) or None,
                      message_ids=[inputs.new_id() for _ in msgs],
                      expiration_date=inputs.expiration_date(expiration_date))


def add(settings: Settings, messages: Any, **kwargs: Any) -> Op:
    return (yield from execute_add(settings, prepare_add(settings, messages, **kwargs)))


def execute_add(settings: Settings, req: AddRequest) -> Op:
    logged = message_records(req.messages, req.ids, req.timestamp, inputs.now_iso(), req.message_ids)
    if req.memory_type == "procedural_memory":
        return (yield from add_procedural(settings, req, logged))
    if req.infer and settings.llm_configured:
        return (yield from add_inferred(settings, req, logged))
    if req.infer:
        yield WarnOnce(NO_LLM_WARNING)  # once per Memory: the runtime remembers
    if settings.graph_requested and not settings.graph:
        yield WarnOnce(GRAPH_NO_LLM_WARNING)
    return (yield from add_verbatim(settings, req, logged))


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


def scope_node(ids: dict[str, Optional[str]], memory_type: str) -> F.Node:
    return F.conjoin(*(F.Cmp(k, "eq", v) for k, v in ids.items() if v is not None),
                     F.Cmp("memory_type", "eq", memory_type))


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


def add_procedural(settings: Settings, req: AddRequest, logged: list[MessageRecord]) -> Op:
    """Summarise an agent's execution history into one procedural memory (mem0's procedural_memory)."""
    ids, meta, event_time, instructions = req.ids, req.metadata, req.timestamp, req.instructions
    at = inputs.now_iso()
    yield Store.apply(ChangeSet(messages=logged))
    usage = Usage()
    msgs = [m for m in (yield from described(settings, req.messages, usage)) if m.content.strip()]
    answer = yield from ask(X.procedural_request(msgs, instructions), X.ProceduralAnswer, usage)
    summary = answer.summary.strip()
    if not summary:
        raise LLMError("the LLM returned an empty procedural summary", raw_output=answer.model_dump())
    vector = (yield Embed([summary], "add"))[0]
    rec = new_memory(summary, vector, ids, meta, actor_id=None, role="assistant", event_time=event_time,
                     sources=[r.id for r in logged], at=at, memory_type="procedural_memory",
                     expiration_date=req.expiration_date)
    row = history_row(rec.id, "ADD", None, summary, None, "assistant", at)
    out = {"results": [{"id": rec.id, "memory": summary, "event": "ADD"}], "relations": [],
           "usage": usage.as_dict()}
    yield Store.apply(req.finish(ChangeSet(inserts=[rec], history=[row]), out))
    return out


def exact_scope(ids: dict[str, Optional[str]], memory_type: str) -> F.Node:
    """Rows of exactly this scope: the given ids, and no id where none was given."""
    return F.conjoin(*(F.Cmp(k, "eq", v) for k, v in ids.items()), F.Cmp("memory_type", "eq", memory_type))


def previous_turn(ids: dict[str, Optional[str]], memory_type: str) -> Op:
    """(text, speaker) of the newest turn stored in exactly this scope. Read from the memories, not the
    message log, so a deleted turn never becomes the context of a new one."""
    last, _ = yield Store.list(exact_scope(ids, memory_type), 1, 0, newest_first=True)
    return (last[0].memory, last[0].actor_id) if last else None


def next_turns(records: list[MemoryRecord]) -> Op:
    """The memories that keep one of these memories' text as their context (the turns right after them, in
    exactly their scope), other than these memories themselves."""
    own_ids = {r.id for r in records}
    groups: dict[tuple, set[str]] = {}
    for r in records:
        groups.setdefault(scope_key(r), set()).add(r.memory)
    found: list[str] = []
    for (user, agent, run, memory_type), texts in groups.items():
        scope = exact_scope({"user_id": user, "agent_id": agent, "run_id": run}, memory_type)
        texts_list = sorted(texts)
        for start in range(0, len(texts_list), 500):
            where = F.conjoin(scope, F.Cmp("context", "in", tuple(texts_list[start:start + 500])))
            found.extend(mid for mid in (yield Store.ids(where)) if mid not in own_ids)
    return (yield Store.get(found)) if found else []


def turns_after(settings: Settings, olds: list[MemoryRecord], new_texts: list[Optional[str]],
                lead: Sequence[MemoryRecord] = ()) -> Op:
    """The turns right after these memories, re-indexed with each memory's new text as their context (None:
    it was deleted, so they keep no context), so old or deleted text stops steering search. `lead` (edited
    memories) is re-embedded first in the same pass, so a turn after an edited turn is blended with that
    turn's new vector, as reindex() would. Returns lead + those turns, with new vectors."""
    after = yield from next_turns(olds)
    context = {(scope_key(o), o.memory): text for o, text in zip(olds, new_texts)}
    # A turn whose context changed between the two reads was retold by a call that changed one of `olds`
    # meanwhile; the write expecting that memory's version will conflict and re-plan, so it is left out.
    retold = [replace(r, context=context[(scope_key(r), r.context)]) for r in after
              if (scope_key(r), r.context) in context]
    return (yield from reembedded(settings, [*lead, *retold], OrderedDict()))


def add_verbatim(settings: Settings, req: AddRequest, logged: list[MessageRecord]) -> Op:
    """Store each non-system message as one memory, with the message log, in one transaction. A message
    of images alone, with no LLM to see them, is logged and stored as no memory."""
    ids, meta, event_time = req.ids, req.metadata, req.timestamp
    at = logged[0].created_at
    msgs = yield from described(settings, req.messages)
    kept = [(m, rec) for m, rec in zip(msgs, logged) if m.role != "system" and m.content.strip()]
    if not kept:
        out: dict[str, Any] = {"results": [], "relations": []}
        yield Store.apply(req.finish(ChangeSet(messages=logged), out))
        return out
    texts = [m.content for m, _ in kept]
    first_context = (yield from previous_turn(ids, "semantic_memory")) if settings.context_weight > 0 else None
    vectors, contexts = yield from turn_vectors(settings, texts, [m.name for m, _ in kept], first_context)
    records = [new_memory(m.content, vec, ids, meta, actor_id=m.name, role=m.role, event_time=event_time,
                          sources=[rec.id], at=at, expiration_date=req.expiration_date)
               for (m, rec), vec in zip(kept, vectors)]
    for rec, context in zip(records, contexts):
        rec.context = context
    history = [history_row(r.id, "ADD", None, r.memory, r.actor_id, r.role, at) for r in records]
    out = {"results": [{"id": r.id, "memory": r.memory, "event": "ADD", "actor_id": r.actor_id,
                        "role": r.role} for r in records], "relations": []}
    yield Store.apply(req.finish(ChangeSet(messages=logged, inserts=records, history=history), out))
    return out


# ------------------------------------------------------------------ search

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


RERANK_WITHOUT_RERANKER = ("memlane: search(rerank=True) but no reranker is configured: searching without one "
                           "(as mem0 does); configure reranker={'provider': 'maxsim'} to rerank")


def search(settings: Settings, query: Any, *, user_id: Any = None, agent_id: Any = None, run_id: Any = None,
           filters: Any = None, limit: Any = None, threshold: Any = None, rerank: Any = None, top_k: Any = None,
           show_expired: Any = False, as_of: Any = None) -> Op:
    text = inputs.query(query, settings.max_message_chars)
    when = G.as_of(as_of)
    where = visible(inputs.scoped_filter(user_id, agent_id, run_id, filters),
                    inputs.flag(show_expired, "show_expired"))
    # The scopes the arguments and filters fix (several for an OR of scopes or an `in` list of ids); the
    # store reads each one's partition, and a memory found under several keeps its best score.
    scopes = F.scope_cover(where)
    k = inputs.limit_or_top_k(limit, top_k, 10, maximum=1000)
    cut = inputs.threshold(threshold)
    if rerank is not None and not isinstance(rerank, bool):
        raise ValidationError(f"rerank must be true, false or omitted, not {rerank!r}")
    if rerank and not settings.reranker_configured:  # mem0 code passes rerank=True whether or not one exists
        log.debug(RERANK_WITHOUT_RERANKER)
        rerank = False
    rerank = settings.reranker_configured if rerank is None else rerank
    pool = max(settings.min_candidates, settings.candidate_factor * k)
    vector = (yield Embed([text], "search"))[0]
    terms = query_terms(text)
    dense: dict[str, float] = {}
    keyword: dict[str, float] = {}
    for scope in scopes:
        for mid, score in (yield Store.vector_search(vector, scope, where, pool)):
            dense[mid] = max(score, dense.get(mid, score))
        for mid, score in (yield Store.keyword_search(terms, scope, where, pool)):
            keyword[mid] = max(score, keyword.get(mid, score))
    candidates = list(dict.fromkeys([*dense, *keyword]))
    records = {r.id: r for r in (yield Store.get(candidates, with_embeddings=True))}
    # Exact dense scores from the stored vectors: keyword-only hits get one, and a store may rank with a
    # compact copy (the SQLite store scans float16 vectors).
    dense = {mid: float(np.dot(records[mid].embedding, vector)) for mid in candidates if mid in records}
    actor = named_actor(text, {r.actor_id for r in records.values() if r.actor_id})
    actor_match = {mid for mid, r in records.items() if actor is not None and r.actor_id == actor}
    today = date.fromisoformat(inputs.now_iso()[:10])  # UTC, as created_at
    spans = named_dates(text, today) if settings.weights.date > 0 else []
    # a memory's day is its event time (when it was said), else when it was stored
    dated = {mid: date_share((r.timestamp or r.created_at)[:10], spans) for mid, r in records.items()} if spans \
        else None
    scores = fuse(dense, keyword, actor_match, settings.weights, dated)
    ranked = sorted(((i, s) for i, s in scores.items() if i in records), key=lambda kv: (-kv[1], kv[0]))
    if rerank and ranked:
        ranked = yield from reranked(settings, text, ranked, records, k)
    # The returned score is calibrated (calibration.py): the probability that a result is evidence, given the
    # scope's size (the candidate count, when below the pool), a near-exact match at least 0.9, never above the
    # result before it; the order stays the ranking's, and a threshold keeps a prefix of it.
    head = ranked[:k]
    final = result_scores(text, [(records[i].memory, records[i].actor_id, s) for i, s in head],
                          scope_size(len(records), pool))
    results = [MemoryItem.from_record(records[i], score=round(f, 6)).to_dict()
               for (i, _), f in zip(head, final) if cut is None or f >= cut]
    # reading the graph needs no LLM: a process without one (the CLI, a dashboard) sees what others wrote
    relations = (yield from G.search_relations(scopes, text, vector, when, k)) if settings.graph_requested else []
    return {"results": results, "relations": relations}


def reranked(settings: Settings, query: str, ranked: list[tuple[str, float]], records: dict[str, MemoryRecord],
             limit: int) -> Op:
    """The best fused candidates rescored by the reranker: (fused + w * relevance) / (1 + w), in [0, 1].
    Only these can be returned (the pool is at least `limit`), so the rest are dropped."""
    head = ranked[:max(settings.rerank_pool, limit)]
    relevance = checked((yield Rerank(query, [records[i].memory for i, _ in head])), len(head))
    w = settings.rerank_weight
    return sorted(((i, (s + w * r) / (1 + w)) for (i, s), r in zip(head, relevance)),
                  key=lambda kv: (-kv[1], kv[0]))


# ------------------------------------------------------------------ reads

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


# ------------------------------------------------------------------ mutations

def _existing(mids: list[str], with_embeddings: bool = False) -> Op:
    """The records of `mids`, in that order; NotFoundError naming those that do not exist."""
    found = {r.id: r for r in (yield Store.get(mids, with_embeddings))}
    missing = [mid for mid in mids if mid not in found]
    if len(missing) == 1:
        raise NotFoundError(f"memory {missing[0]} not found")
    if missing:
        raise NotFoundError(f"{len(missing)} memories not found: {', '.join(missing[:5])}"
                            + (", ..." if len(missing) > 5 else ""))
    return [found[mid] for mid in mids]


@dataclass(frozen=True)
class Edit:
    """One memory's validated change (update, batch_update): new text (None: kept), a metadata patch or,
    with replace_metadata, a replacement (None: kept), and an expiration date (inputs.UNSET: kept, None:
    cleared)."""

    memory_id: str
    text: Optional[str] = None
    metadata: Optional[dict[str, Any]] = None
    replace_metadata: bool = False
    expiration_date: Any = inputs.UNSET

    def metadata_of(self, old: dict[str, Any]) -> dict[str, Any]:
        """The memory's metadata after this edit: the patch merged in (a key set to None is removed), or
        the replacement; checked again, as the merge may outgrow the limits."""
        if self.metadata is None:
            return old
        if self.replace_metadata:
            return self.metadata
        merged = dict(old)
        for key, value in self.metadata.items():
            if value is None:
                merged.pop(key, None)
            else:
                merged[key] = value
        return inputs.metadata(merged)


def edit(settings: Settings, memory_id: Any, text: Any = None, metadata: Any = None, *, data: Any = None,
         expiration_date: Any = inputs.UNSET, replace_metadata: Any = False, what: str = "update()") -> Edit:
    """Validate one update (before any read)."""
    mid = inputs.memory_id(memory_id)
    text = inputs.text_or_data(text, data)
    if inputs.flag(replace_metadata, "replace_metadata") and metadata is None:
        raise ValidationError(f"{what}: replace_metadata=True replaces the metadata with `metadata`; pass it "
                              "(metadata={} empties it)")
    if text is None and metadata is None and expiration_date is inputs.UNSET:
        raise ValidationError(f"{what} needs text, metadata or expiration_date")
    return Edit(memory_id=mid,
                text=None if text is None else inputs.memory_text(text, settings.max_message_chars),
                metadata=None if metadata is None else inputs.metadata(metadata),
                replace_metadata=replace_metadata,
                expiration_date=expiration_date if expiration_date is inputs.UNSET
                else inputs.expiration_date(expiration_date))


def update(settings: Settings, memory_id: Any, text: Any = None, metadata: Any = None, *, data: Any = None,
           expiration_date: Any = inputs.UNSET, replace_metadata: Any = False) -> Op:
    change = edit(settings, memory_id, text, metadata, data=data, expiration_date=expiration_date,
                  replace_metadata=replace_metadata)
    [new] = yield from retrying(lambda: edits_once(settings, [change]))
    return {"message": "Memory updated successfully!", "id": new.id, "memory": new.memory}


def batch_update(settings: Settings, memories: Any) -> Op:
    """mem0's batch_update: [{"memory_id", "text"?, "metadata"?, "expiration_date"?}, ...], at most
    inputs.MAX_BATCH, each applied as update() applies it, all in one transaction or none."""
    changes = [edit(settings, item["memory_id"], item.get("text"), item.get("metadata"),
                    expiration_date=item.get("expiration_date", inputs.UNSET), what=f"batch_update() item {i}")
               for i, item in enumerate(inputs.batch_updates(memories))]
    news = yield from retrying(lambda: edits_once(settings, changes))
    return {"message": f"{len(news)} memories updated",
            "results": [{"id": n.id, "memory": n.memory, "event": "UPDATE"} for n in news]}


def edits_once(settings: Settings, changes: list[Edit]) -> Op:
    """One read-plan-write round of update() / batch_update(): the write expects the versions it read.
    Returns the new records."""
    olds = yield from _existing([c.memory_id for c in changes], with_embeddings=True)
    at = inputs.now_iso()
    news, rows = [], []
    for change, old in zip(changes, olds):
        text = old.memory if change.text is None else change.text
        meta = change.metadata_of(old.metadata)
        news.append(replace(old, memory=text, hash=text_hash(text) if text != old.memory else old.hash,
                            metadata=meta, updated_at=at,
                            expiration_date=old.expiration_date if change.expiration_date is inputs.UNSET
                            else change.expiration_date))
        given = change.metadata is not None
        rows.append(history_row(old.id, "UPDATE", old.memory, news[-1].memory, old.actor_id, old.role, at,
                                old_metadata=old.metadata if given else None, new_metadata=meta if given else None))
    edited = [i for i, (old, new) in enumerate(zip(olds, news)) if new.memory != old.memory]
    retold: list[MemoryRecord] = []
    if edited:  # embedded as add() or reindex() would embed them now (vectors.py)
        redone = yield from turns_after(settings, [olds[i] for i in edited], [news[i].memory for i in edited],
                                        lead=[news[i] for i in edited])
        for i, rec in zip(edited, redone):
            news[i] = rec
        retold = redone[len(edited):]
    # relations only an edited memory supported end now (the store keeps them, with valid_to)
    yield Store.apply(ChangeSet(updates=news, history=rows, reindex=retold,
                                expected={o.id: o.version for o in olds},
                                graph_edited={olds[i].id: G.utc(at) for i in edited}))
    return news


def delete(settings: Settings, memory_id: Any) -> Op:
    mid = inputs.memory_id(memory_id)
    yield from retrying(lambda: deletes_once(settings, [mid]))
    return {"message": "Memory deleted successfully!", "id": mid}


def batch_delete(settings: Settings, memories: Any) -> Op:
    """mem0's batch_delete: [{"memory_id": ...}, ...], at most inputs.MAX_BATCH, all in one transaction or
    none (an unknown id is a NotFoundError and deletes nothing)."""
    mids = inputs.batch_deletes(memories)
    yield from retrying(lambda: deletes_once(settings, mids))
    return {"message": f"{len(mids)} memories deleted", "deleted": len(mids)}


def deletes_once(settings: Settings, mids: list[str]) -> Op:
    """One round of delete() / batch_delete(): a memory deleted meanwhile is a NotFoundError on the next
    round's read."""
    olds = yield from _existing(mids)
    return (yield from delete_records(settings, olds))


def delete_records(settings: Settings, olds: list[MemoryRecord], clear: Sequence[Scope] = ()) -> Op:
    """Delete these memories (as read, each expected at that version) with their history rows, the turns
    after them re-indexed, in one write; with them go the graph relations only they supported (the store
    does that) and the whole graph of the scopes in `clear`."""
    at = inputs.now_iso()
    rows = [history_row(o.id, "DELETE", o.memory, None, o.actor_id, o.role, at) for o in olds]
    reindexed = yield from turns_after(settings, olds, [None] * len(olds))
    yield Store.apply(ChangeSet(deletes=[o.id for o in olds], history=rows, reindex=reindexed,
                                expected={o.id: o.version for o in olds}, graph_clear=list(clear)))
    return len(olds)


def delete_all(settings: Settings, *, user_id: Any = None, agent_id: Any = None, run_id: Any = None,
               filters: Any = None) -> Op:
    where = inputs.scoped_filter(user_id, agent_id, run_id, filters)
    # the scope's whole graph goes with all its memories; with a filter, the relations of those deleted
    clear = [Scope(**inputs.scope_ids(user_id, agent_id, run_id))] if filters is None else []
    return (yield from retrying(lambda: delete_all_once(settings, where, clear)))


def delete_all_once(settings: Settings, where: F.Node, clear: Sequence[Scope] = ()) -> Op:
    deleted = yield from delete_records(settings, (yield Store.get((yield Store.ids(where)))), clear)
    return {"message": f"{deleted} memories deleted", "deleted": deleted}


# ------------------------------------------------------------------ entities (mem0's users())

ENTITY_TYPES = {"user_id": "user", "agent_id": "agent", "run_id": "run"}


def users(settings: Settings) -> Op:
    """Every user, agent and run that memories are scoped to, in mem0's entity shape: type, name (and id,
    the same), total_memories (every memory holding the id: all types, expired ones included, what
    delete_users would delete), created_at of the oldest and updated_at of the newest change."""
    rows = yield Store.entities()
    results = [{"id": e.id, "name": e.id, "type": ENTITY_TYPES[e.kind], "total_memories": e.count,
                "created_at": e.created_at, "updated_at": e.updated_at} for e in rows]
    return {"results": results, "total": len(results)}


def delete_users(settings: Settings, *, user_id: Any = None, agent_id: Any = None, run_id: Any = None) -> Op:
    """Delete every memory of the named entities (each must have some: NotFoundError otherwise), or, with
    no argument, of every entity, as mem0's delete_users() does; one transaction, with history rows as
    delete_all writes them. The message log is kept (reset() clears everything)."""
    ids = inputs.scope_ids(user_id, agent_id, run_id)
    named = [F.Cmp(k, "eq", v) for k, v in ids.items() if v is not None]
    return (yield from retrying(lambda: delete_users_once(settings, named)))


def delete_users_once(settings: Settings, named: list[F.Cmp]) -> Op:
    if not named:
        deleted = yield from delete_records(settings, (yield Store.get((yield Store.ids(F.TRUE)))), [Scope()])
        return {"message": "All users, agents and runs deleted.", "deleted": deleted}
    mids: list[str] = []
    missing: list[str] = []
    for cmp in named:
        found = yield Store.ids(cmp)
        if not found:
            missing.append(f"{ENTITY_TYPES[cmp.key]} {cmp.value!r}")
        mids += found
    if missing:
        raise NotFoundError(f"no memories of {' or '.join(missing)}: nothing to delete")
    deleted = yield from delete_records(settings, (yield Store.get(list(dict.fromkeys(mids)))),
                                        [Scope(**{cmp.key: cmp.value}) for cmp in named])
    return {"message": "Entity deleted successfully.", "deleted": deleted}


def reset(settings: Settings) -> Op:
    yield Store.reset()
    yield Store.ensure_space(settings.embedding_model, settings.dimension)
    return None


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
