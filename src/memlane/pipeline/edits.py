"""The mutations after add(): update / batch_update, delete / batch_delete, delete_all, delete_users
and reset. Each reads, plans and writes expecting the versions it read, re-planned on a conflict
(common.retrying)."""
from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any, Optional, Sequence

from .. import filters as F
from .. import graph as G
from .. import inputs
from ..effects import Store
from ..errors import NotFoundError, ValidationError
from ..models import ChangeSet, MemoryRecord, Scope, text_hash
from ..settings import Op, Settings
from .common import ENTITY_TYPES, history_row, retrying
from .turns import turns_after


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
