"""Fact extraction and reconciliation, pure: build the one prompt, parse the LLM's answer strictly, and turn
it into a checked plan. No I/O here; the pipeline (pipeline/infer.py, ingest.py) drives it.

One LLM call per add() does both jobs: the nearest existing memories are retrieved first (with the vectors
of the new messages), shown to the model under small integer ids, and the model answers with a list of
ADD / UPDATE / DELETE / NONE decisions over the facts it extracted. Ids are mapped back in code; an id the
model invents is rejected, never applied.
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any, Literal, Optional

from pydantic import BaseModel, ConfigDict, ValidationError as PydanticError

from .inputs import Message
from .llms.base import LLMRequest, LLMResponse
from .models import MemoryRecord, text_hash

Event = Literal["ADD", "UPDATE", "DELETE", "NONE"]


class Decision(BaseModel):
    model_config = ConfigDict(extra="forbid")
    event: Event
    id: Optional[int] = None
    text: str = ""
    source_messages: list[int] = []
    attributed_to: Literal["user", "assistant"] = "user"


class EntityOut(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str
    type: str = ""


class RelationOut(BaseModel):
    model_config = ConfigDict(extra="forbid")
    source: str
    relationship: str
    target: str
    source_messages: list[int] = []


class Answer(BaseModel):
    model_config = ConfigDict(extra="forbid")
    memory: list[Decision]
    # Graph memory only (the schema asks for them when it is on).
    entities: list[EntityOut] = []
    relations: list[RelationOut] = []
    ended_relations: list[int] = []


class ProceduralAnswer(BaseModel):
    model_config = ConfigDict(extra="forbid")
    summary: str


# Strict-mode JSON schemas (every property required, no extras), as OpenAI's json_schema mode demands.
ANSWER_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {"memory": {"type": "array", "items": {
        "type": "object",
        "properties": {
            "event": {"type": "string", "enum": ["ADD", "UPDATE", "DELETE", "NONE"]},
            "id": {"type": ["integer", "null"]},
            "text": {"type": "string"},
            "source_messages": {"type": "array", "items": {"type": "integer"}},
            "attributed_to": {"type": "string", "enum": ["user", "assistant"]},
        },
        "required": ["event", "id", "text", "source_messages", "attributed_to"],
        "additionalProperties": False,
    }}},
    "required": ["memory"],
    "additionalProperties": False,
}
# With graph memory on: the same answer plus the graph, every array bounded.
MAX_GRAPH_ITEMS = 20
GRAPH_ANSWER_SCHEMA: dict[str, Any] = {
    **ANSWER_SCHEMA,
    "properties": {
        "memory": {**ANSWER_SCHEMA["properties"]["memory"], "maxItems": 50},
        "entities": {"type": "array", "maxItems": MAX_GRAPH_ITEMS, "items": {
            "type": "object", "properties": {"name": {"type": "string"}, "type": {"type": "string"}},
            "required": ["name", "type"], "additionalProperties": False}},
        "relations": {"type": "array", "maxItems": MAX_GRAPH_ITEMS, "items": {
            "type": "object",
            "properties": {"source": {"type": "string"}, "relationship": {"type": "string"},
                           "target": {"type": "string"},
                           "source_messages": {"type": "array", "maxItems": MAX_GRAPH_ITEMS,
                                               "items": {"type": "integer"}}},
            "required": ["source", "relationship", "target", "source_messages"], "additionalProperties": False}},
        "ended_relations": {"type": "array", "maxItems": MAX_GRAPH_ITEMS, "items": {"type": "integer"}},
    },
    "required": ["memory", "entities", "relations", "ended_relations"],
}
PROCEDURAL_SCHEMA: dict[str, Any] = {
    "type": "object", "properties": {"summary": {"type": "string"}},
    "required": ["summary"], "additionalProperties": False,
}

COMMON_RULES = """\
Rules for facts:
- One fact per item: short, atomic and self-contained, understandable without the conversation \
("Is vegetarian", "Moved to Lisbon in March 2026"), not "That too" or "He said yes".
- Turn relative dates into absolute ones using the conversation date below ("last Saturday" -> the date).
- Write each fact in the language the speaker used.
- Skip greetings, small talk, and questions that carry no information.
- source_messages: the [indices] of the new messages the fact comes from.

Then reconcile every fact with the existing memories, which are listed with small integer ids:
- ADD (id null): new information not in any existing memory.
- UPDATE (id of the memory): the same topic, and the new information changes or enriches it; text is the \
complete new memory, merging what still holds.
- DELETE (id of the memory): the new messages contradict or retract it ("I'm not vegetarian anymore"); \
text is the memory being deleted.
- NONE (id of the memory): already known, nothing to change.
Use only ids from the list; never invent one. If nothing is worth remembering, answer {"memory": []}.
Answer with JSON only: {"memory": [{"event", "id", "text", "source_messages", "attributed_to"}]}."""

USER_PROMPT = """\
You are the memory manager of a personal assistant. From the NEW messages, extract facts about the user \
(preferences, personal details, plans, relationships, events, opinions) from the user's messages \
(attributed_to "user"). Also keep facts the assistant stated that the user will need later — a \
recommendation, an answer, a plan it proposed — with attributed_to "assistant".

""" + COMMON_RULES

AGENT_PROMPT = """\
You are the memory manager of an AI agent. From the NEW messages, extract facts about the agent itself — \
its persona, preferences, capabilities, commitments and the approaches it took — from the assistant's \
messages (attributed_to "assistant"). Facts the user stated that the agent must keep (instructions, \
constraints) get attributed_to "user".

""" + COMMON_RULES

GRAPH_RULES = """\

Also build a knowledge graph from the NEW messages:
- entities: the people, organisations, places and things they name, {{"name", "type"}} (type: person, \
organisation, place, ...). {user}
- relations: {{"source", "relationship", "target", "source_messages"}} between entities, the relationship \
short and in snake_case (works_at, lives_in, sister_of), true now according to the messages.
- ended_relations: the ids of Existing relations the NEW messages say no longer hold (left a job, moved \
away). Use only ids from that list.
Answer with JSON only: {{"memory": [...], "entities": [...], "relations": [...], "ended_relations": [...]}}."""

PROCEDURAL_PROMPT = """\
You summarise an AI agent's execution history into one procedural memory: the task, the steps taken in \
order with their key inputs and results (keep exact values, names, URLs, errors), the current state, and \
what remains to do. Be complete and precise; it replaces the history. Answer with JSON: {"summary": "..."}."""


def use_agent_prompt(messages: list[Message], agent_id: Optional[str]) -> bool:
    """mem0's rule: agent memory when an agent_id is given and the conversation has assistant messages."""
    return agent_id is not None and any(m.role == "assistant" for m in messages)


@dataclass
class Context:
    """What the prompt shows: the new messages and the retrieved memories under integer ids."""

    messages: list[Message]
    existing: list[MemoryRecord]
    conversation_date: str
    agent_mode: bool
    custom_instructions: Optional[str] = None
    # Graph memory: None when it is off; else the existing relations shown (as lines, under integer ids),
    # and the scope's user, whom "I" and "me" name.
    relations: Optional[list[str]] = None
    user: Optional[str] = None


def build_request(ctx: Context) -> LLMRequest:
    system = AGENT_PROMPT if ctx.agent_mode else USER_PROMPT
    if ctx.relations is not None:
        system += GRAPH_RULES.format(user=f'Write the user ("I", "me") as "{ctx.user}".' if ctx.user else "")
    if ctx.custom_instructions:
        system += "\n\nAdditional instructions:\n" + ctx.custom_instructions.strip()
    lines = [f"Conversation date: {ctx.conversation_date}", "", "Existing memories:"]
    lines += [f"{i}: {rec.memory}" for i, rec in enumerate(ctx.existing)] or ["(none)"]
    if ctx.relations is not None:
        lines += ["", "Existing relations:"]
        lines += [f"{i}: {text}" for i, text in enumerate(ctx.relations)] or ["(none)"]
    lines += ["", "NEW messages:"]
    for i, m in enumerate(ctx.messages):
        speaker = m.role if not m.name else f"{m.role} ({m.name})"
        lines.append(f"[{i}] {speaker}: {m.content}")
    return LLMRequest(messages=[{"role": "system", "content": system},
                                {"role": "user", "content": "\n".join(lines)}],
                      schema=ANSWER_SCHEMA if ctx.relations is None else GRAPH_ANSWER_SCHEMA,
                      schema_name="memory_decisions")


def procedural_request(messages: list[Message], custom_instructions: Optional[str]) -> LLMRequest:
    system = PROCEDURAL_PROMPT + (f"\n\nAdditional instructions:\n{custom_instructions}"
                                  if custom_instructions else "")
    history = "\n".join(f"[{i}] {m.role}: {m.content}" for i, m in enumerate(messages))
    return LLMRequest(messages=[{"role": "system", "content": system}, {"role": "user", "content": history}],
                      schema=PROCEDURAL_SCHEMA, schema_name="procedural_memory")


_FENCE = re.compile(r"^```[a-zA-Z0-9_-]*\s*\n?(.*?)\n?```$", re.DOTALL)
_THINK = re.compile(r"^\s*<think>.*?</think>", re.DOTALL)


def parse(response: LLMResponse, model: type[BaseModel] = Answer) -> BaseModel:
    """Strict: take the provider's structured data, else the text with code fences (and a reasoning model's
    <think> block) stripped; it must be JSON that validates. Raises ValueError with the reason."""
    data = response.data
    if data is None:
        text = _THINK.sub("", response.content or "").strip()
        fenced = _FENCE.match(text)
        if fenced:
            text = fenced.group(1).strip()
        if not text:
            raise ValueError("the answer is empty")
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ValueError(f"the answer is not JSON: {exc}") from None
    try:
        return model.model_validate(data)
    except PydanticError as exc:
        raise ValueError(f"the answer does not match the schema: {exc}") from None


def repair_request(original: LLMRequest, bad_output: str, error: str) -> LLMRequest:
    """The one retry after output that did not validate: show the model its answer and the reason."""
    return LLMRequest(
        messages=original.messages + [
            {"role": "assistant", "content": bad_output[:4000]},
            {"role": "user", "content": f"That answer is invalid: {error[:1000]}\nAnswer again with JSON only, "
                                        "exactly matching the requested format."}],
        schema=original.schema, schema_name=original.schema_name, temperature=original.temperature,
        max_tokens=original.max_tokens)


@dataclass
class PlannedAdd:
    text: str
    sources: list[int]
    attributed_to: str


@dataclass
class PlannedUpdate:
    target: MemoryRecord
    text: str
    sources: list[int]


@dataclass
class Plan:
    adds: list[PlannedAdd] = field(default_factory=list)
    updates: list[PlannedUpdate] = field(default_factory=list)
    deletes: list[MemoryRecord] = field(default_factory=list)
    unchanged: list[MemoryRecord] = field(default_factory=list)
    rejected: list[dict[str, Any]] = field(default_factory=list)
    # Graph memory: indices into Context.relations that the messages end (checked).
    ended_relations: list[int] = field(default_factory=list)


def plan(answer: Answer, ctx: Context) -> Plan:
    """Check each decision against what was shown; map integer ids back to memories. A decision that names
    an unknown id, touches a memory twice, or has no text where text is needed is rejected, not applied."""
    out = Plan()
    touched: set[int] = set()
    known_hashes = {rec.hash: rec for rec in ctx.existing}
    added_texts: set[str] = set()
    n_messages = len(ctx.messages)
    for d in answer.memory:
        text = d.text.strip()
        sources = sorted({i for i in d.source_messages if 0 <= i < n_messages})
        if d.event == "ADD":
            if not text:
                out.rejected.append({"decision": d.model_dump(), "reason": "ADD without text"})
                continue
            same = known_hashes.get(text_hash(text))
            if same is not None:  # the model re-added an existing memory verbatim
                out.unchanged.append(same)
                continue
            if text.casefold() in added_texts:
                continue
            added_texts.add(text.casefold())
            out.adds.append(PlannedAdd(text, sources, d.attributed_to))
            continue
        if d.id is None or not 0 <= d.id < len(ctx.existing):
            if d.event != "NONE":
                out.rejected.append({"decision": d.model_dump(), "reason": f"unknown memory id {d.id!r}"})
            continue
        if d.id in touched:
            out.rejected.append({"decision": d.model_dump(), "reason": f"memory id {d.id} decided twice"})
            continue
        target = ctx.existing[d.id]
        if d.event == "NONE":
            out.unchanged.append(target)
            continue
        touched.add(d.id)
        if d.event == "DELETE":
            out.deletes.append(target)
        elif not text:
            out.rejected.append({"decision": d.model_dump(), "reason": "UPDATE without text"})
            touched.discard(d.id)
        elif text == target.memory:
            out.unchanged.append(target)
        else:
            out.updates.append(PlannedUpdate(target, text, sources))
    shown = len(ctx.relations or [])
    for i in dict.fromkeys(answer.ended_relations):
        if 0 <= i < shown:
            out.ended_relations.append(i)
        else:
            out.rejected.append({"decision": {"ended_relation": i}, "reason": f"unknown relation id {i!r}"})
    return out
