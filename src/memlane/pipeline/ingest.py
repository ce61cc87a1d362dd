"""add(): the request validated up front (AddRequest, what a background job persists), then stored
verbatim, summarised as a procedural memory, or extracted by the LLM (infer.py)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Optional

from .. import extraction as X
from .. import inputs
from ..effects import Embed, Store, WarnOnce
from ..errors import ConfigurationError, LLMError, ValidationError
from ..models import ChangeSet, JobCompletion, MessageRecord
from ..settings import Op, Settings
from ..vectors import turn_vectors
from .common import GRAPH_NO_LLM_WARNING, NO_LLM_WARNING, history_row, message_records, new_memory
from .infer import Usage, add_inferred, ask, described
from .turns import previous_turn


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
