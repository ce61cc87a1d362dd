"""The turns around a memory: the one before a new turn (its context) and the ones after an edited or
deleted memory, re-indexed with its new text as their context (vectors.py blends them)."""
from __future__ import annotations

from collections import OrderedDict
from dataclasses import replace
from typing import Optional, Sequence

from .. import filters as F
from ..effects import Store
from ..models import MemoryRecord
from ..settings import Op, Settings
from ..vectors import reembedded, scope_key


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
