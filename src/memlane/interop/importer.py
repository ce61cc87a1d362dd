"""Import: records (from an export file, or read from mem0's stores) into this Memory's store, through the
store protocol only. Two passes over the source, so both stream:

1. check: every record parses, the source is complete, and (unless skip_existing) no message, memory,
   history row, graph entity or relation id already exists in the store - nothing is written before this
   pass ends, so a refused import leaves the store as it was;
2. write: one ChangeSet per batch (one transaction each) holding one kind of record, in the source's order,
   ids and timestamps as they are. Vectors are copied when the source's embedding space is this store's,
   else the memories (and graph entities' names) are embedded again as add() embeds them now.

A failure in pass 2 (the store refused a batch) leaves the batches before it written and none half written.
"""
from __future__ import annotations

from collections import OrderedDict
from contextlib import closing
from typing import Any, Callable, Generator, Iterator, Optional

import numpy as np

from ..effects import Store
from ..errors import ConflictError, ValidationError
from ..models import ChangeSet, GraphEntity, GraphRelation, MemoryRecord, Scope
from ..settings import Op, Settings
from ..vectors import memory_vectors, reembedded
from . import format as fmt

Progress = Callable[[int, int], None]
# Opens the source again at its first record (the check and the write pass each read it once).
Source = Callable[[], Iterator[fmt.Record]]


def _batches(open_source: Source, size: int) -> Generator[tuple[str, list[Any]], None, None]:
    """Runs of at most `size` records of one kind, in source order; the source is closed (its file, its
    client) when this generator is, however it stops."""
    records = open_source()
    try:
        yield from _runs(records, size)
    finally:
        close = getattr(records, "close", None)
        if close is not None:
            close()


def _runs(records: Iterator[fmt.Record], size: int) -> Iterator[tuple[str, list[Any]]]:
    kind, batch = "", list[Any]()
    for record in records:
        this = fmt.to_kind[type(record)]
        if batch and (this != kind or len(batch) >= size):
            yield kind, batch
            batch = []
        kind = this
        batch.append(record)
    if batch:
        yield kind, batch


class _Graph:
    """The store's graph before the import: ids taken, and each (scope, name)'s entity, so an imported
    entity the store already has under another id is seen (and, skipping, its relations follow it)."""

    def __init__(self, entities: list[GraphEntity], relations: list[GraphRelation]):
        self.entity_ids = {e.id for e in entities}
        self.by_name = {(e.user_id, e.agent_id, e.run_id, e.norm): e.id for e in entities}
        self.relation_ids = {r.id for r in relations}
        self.moved: dict[str, str] = {}  # imported entity id -> the store's entity id

    def existing(self, kind: str, batch: list[Any]) -> set[str]:
        if kind == "entity":
            found = set()
            for e in batch:
                held = self.by_name.get((e.user_id, e.agent_id, e.run_id, e.norm))
                if e.id in self.entity_ids or held is not None:
                    found.add(e.id)
                    if held is not None and held != e.id:
                        self.moved[e.id] = held
            return found
        return {r.id for r in batch if r.id in self.relation_ids}


def _existing(kind: str, batch: list[Any], graph: _Graph) -> Op:
    """The ids among `batch` (one kind) the store already holds."""
    ids = [r.id for r in batch]
    if kind == "message":
        return {m.id for m in (yield Store.messages(ids))}
    if kind == "memory":
        return {m.id for m in (yield Store.get(ids, False))}
    if kind == "history":
        held: set[str] = set()
        for memory_id in dict.fromkeys(h.memory_id for h in batch):
            held |= {h.id for h in (yield Store.history(memory_id))}
        return held & set(ids)
    return graph.existing(kind, batch)


def _check(open_source: Source, batch: int, skip_existing: bool, graph: _Graph) -> Op:
    """Pass 1: the counts per kind; ConflictError on a taken id (unless skipping)."""
    counts = dict.fromkeys(fmt.KINDS, 0)
    with closing(_batches(open_source, batch)) as batches:
        for kind, records in batches:
            counts[kind] += len(records)
            taken = yield from _existing(kind, records, graph)
            if taken and not skip_existing:
                sample = sorted(taken)[:5]
                raise ConflictError(f"the store already holds {kind} id(s) {', '.join(sample)}"
                                    f"{' ...' if len(taken) > 5 else ''}: nothing was imported (import into an "
                                    "empty store, or pass skip_existing=True / --skip-existing to keep what is "
                                    "there)", ids=tuple(sample))
    return counts


def _needs_embedding(records: list[Any], same_space: bool, dimension: int) -> list[int]:
    if not same_space:
        return list(range(len(records)))
    return [i for i, r in enumerate(records)
            if r.embedding is None or np.asarray(r.embedding).reshape(-1).shape[0] != dimension]


def _memories(settings: Settings, records: list[MemoryRecord], same_space: bool,
              newest: OrderedDict[tuple, tuple[str, np.ndarray]]) -> Op:
    redo = _needs_embedding(records, same_space, settings.dimension)
    if not redo:
        return records
    fresh = yield from reembedded(settings, [records[i] for i in redo], newest)
    out = list(records)
    for i, record in zip(redo, fresh):
        out[i] = record
    return out


def _entities(settings: Settings, records: list[GraphEntity], same_space: bool) -> Op:
    redo = _needs_embedding(records, same_space, settings.dimension)
    if redo:  # as graph memory embeds a name: its normalised form, like a memory text
        vectors = yield from memory_vectors(settings, [records[i].norm for i in redo])
        for i, vector in zip(redo, vectors):
            records[i].embedding = np.asarray(vector, dtype=np.float32)
    return records


def _changes(kind: str, records: list[Any]) -> ChangeSet:
    if kind == "message":
        return ChangeSet(messages=records)
    if kind == "memory":
        return ChangeSet(inserts=records)
    if kind == "history":
        return ChangeSet(history=records)
    if kind == "entity":
        return ChangeSet(graph_entities=records)
    return ChangeSet(graph_relations=records)


def _stopped(kind: str, size: int, written: int, exc: Exception) -> str:
    return (f"import stopped: the store refused a batch of {size} {kind} record(s) ({exc}); the {written} "
            "record(s) before it are written, none of that batch (import again with skip_existing=True to "
            "complete it)")


def import_records(settings: Settings, open_source: Source, space: Optional[tuple[str, int]], *,
                   batch: int = 500, skip_existing: bool = False, progress: Optional[Progress] = None) -> Op:
    """Import what `open_source` yields (see the module's docstring). `space`: the (model, dimension) the
    source's vectors were made in (None: they must all be embedded again). Returns the counts written per
    kind, "skipped", and "reembedded" (whether vectors were made again)."""
    same_space = space is not None and (space[0], int(space[1])) == (settings.embedding_model, settings.dimension)
    graph = _Graph((yield Store.graph_entities(Scope(), False)),
                   (yield Store.graph_relations(Scope(), None, None, 1, True)))
    counts = yield from _check(open_source, batch, skip_existing, graph)
    total = sum(counts.values())
    written = dict.fromkeys(fmt.KINDS, 0)
    skipped, done = 0, 0
    reembeddings = 0
    newest: OrderedDict[tuple, tuple[str, np.ndarray]] = OrderedDict()
    yield Store.begin_bulk(counts["memory"])
    try:
        with closing(_batches(open_source, batch)) as batches:
            for kind, records in batches:
                done += len(records)
                if skip_existing:
                    taken = yield from _existing(kind, records, graph)
                    skipped += len(taken)
                    records = [r for r in records if r.id not in taken]
                if kind == "relation" and graph.moved:
                    for r in records:
                        r.source_id = graph.moved.get(r.source_id, r.source_id)
                        r.target_id = graph.moved.get(r.target_id, r.target_id)
                if kind == "memory":
                    reembeddings += len(_needs_embedding(records, same_space, settings.dimension))
                    records = yield from _memories(settings, records, same_space, newest)
                elif kind == "entity":
                    records = yield from _entities(settings, records, same_space)
                if records:
                    try:
                        yield Store.apply(_changes(kind, records))
                    except ValidationError as exc:
                        raise ValidationError(_stopped(kind, len(records), sum(written.values()), exc)) from exc
                    except ConflictError as exc:
                        raise ConflictError(_stopped(kind, len(records), sum(written.values()), exc),
                                            ids=exc.ids) from exc
                    written[kind] += len(records)
                if progress is not None:
                    progress(done, total)
    except GeneratorExit:  # closed unfinished: no more effects (the next open mends the store)
        raise
    except BaseException:
        yield Store.end_bulk()
        raise
    yield Store.end_bulk()
    if progress is not None and total == 0:
        progress(0, 0)
    return {**written, "skipped": skipped, "reembedded": reembeddings}

