"""Export: every record of a store to an export file (format.py), streaming, one page at a time. A pipeline
op (a generator of effects, run by Memory's driver), so it reads only through the store protocol."""
from __future__ import annotations

import os
from typing import Any, Callable, Optional, Union

from .. import filters as F
from ..effects import Store
from ..inputs import now_iso
from ..models import Scope
from ..settings import Op, Settings
from . import format as fmt

Progress = Callable[[int, int], None]


def _history_count(batch: int) -> Op:
    """How many history rows there are (the protocol has no count; one pass over small rows)."""
    count, cursor = 0, None
    while True:
        rows, cursor = yield Store.history_page(cursor, batch)
        count += len(rows)
        if cursor is None:
            return count


def export(settings: Settings, path: Union[str, os.PathLike[str]], batch: int = 500,
           progress: Optional[Progress] = None) -> Op:
    """Write the store's messages, memories (with vectors), history and graph to `path`; returns the counts
    per kind. Graph entities and relations are read whole (the protocol reads a scope's graph at once)."""
    _, messages_total = yield Store.list_messages(F.TRUE, 1, 0)
    _, memories_total = yield Store.list(F.TRUE, 1, 0)
    history_total = yield from _history_count(batch)
    entities = yield Store.graph_entities(Scope(), True)
    relations = yield Store.graph_relations(Scope(), None, None, 1, True)
    total = messages_total + memories_total + history_total + len(entities) + len(relations)
    counts = dict.fromkeys(fmt.KINDS, 0)

    def wrote(write: Any, records: list[Any]) -> None:
        for record in records:
            line = fmt.to_line(record)
            write(line)
            counts[line["kind"]] += 1
        if progress is not None:
            done = sum(counts.values())
            progress(done, max(total, done))

    from .. import __version__  # here: the package imports Memory, which imports this module

    with fmt.writer(path) as write:
        write(fmt.header(__version__, now_iso(), settings.embedding_model, settings.dimension))
        offset = 0
        while True:  # offset pages: the log is append-only, oldest first
            page, _ = yield Store.list_messages(F.TRUE, batch, offset)
            if not page:
                break
            wrote(write, page)
            offset += len(page)
        offset = 0
        while True:
            page, _ = yield Store.list(F.TRUE, batch, offset)
            if not page:
                break
            full = {r.id: r for r in (yield Store.get([r.id for r in page], True))}
            wrote(write, [full[r.id] for r in page if r.id in full])
            offset += len(page)
        cursor = None
        while True:
            rows, cursor = yield Store.history_page(cursor, batch)
            wrote(write, rows)
            if cursor is None:
                break
        wrote(write, entities)
        wrote(write, relations)
        if progress is not None and total == 0:
            progress(0, 0)
        write({"kind": "end", "counts": counts})
    return {"path": os.fspath(path), **counts}
