"""The export format (docs/export-format.md): JSON Lines, one object per line, each with a "kind". A header
first, then messages, memories, history rows, graph entities and graph relations, then an "end" line with
the counts (its absence means the file was cut short). Read and written one line at a time, gzip-compressed
when the name ends in .gz. This module only converts records to and from lines; export.py and importer.py
move them between stores."""
from __future__ import annotations

import base64
import gzip
import io
import json
import os
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any, Callable, Generator, Iterator, Optional, Union

import numpy as np

from ..errors import ValidationError
from ..models import GraphEntity, GraphRelation, HistoryRecord, MemoryRecord, MessageRecord

FORMAT = "memlane-export"
VERSION = 1
# In file order; an importer writes them in this order too (memories re-embedded as turns need their
# messages, relations need their entities).
KINDS = ("message", "memory", "history", "entity", "relation")
Record = Union[MessageRecord, MemoryRecord, HistoryRecord, GraphEntity, GraphRelation]

_MEMORY_FIELDS = ("id", "memory", "hash", "metadata", "user_id", "agent_id", "run_id", "actor_id", "role",
                  "memory_type", "created_at", "updated_at", "timestamp", "source_message_ids", "context",
                  "expiration_date")
_MESSAGE_FIELDS = ("id", "role", "content", "actor_id", "user_id", "agent_id", "run_id", "timestamp",
                   "created_at", "metadata")
_HISTORY_FIELDS = ("id", "memory_id", "event", "old_memory", "new_memory", "actor_id", "role", "created_at",
                   "updated_at", "old_metadata", "new_metadata")
_ENTITY_FIELDS = ("id", "name", "norm", "type", "user_id", "agent_id", "run_id", "created_at")
_RELATION_FIELDS = ("id", "source_id", "relationship", "target_id", "user_id", "agent_id", "run_id",
                    "valid_from", "valid_to", "created_at", "memory_ids", "message_ids")


def encode_vector(vector: Optional[np.ndarray]) -> Optional[str]:
    """base64 of the little-endian float32 bytes: exact, and a quarter of a list of decimals."""
    if vector is None:
        return None
    return base64.b64encode(np.asarray(vector, dtype="<f4").reshape(-1).tobytes()).decode("ascii")


def decode_vector(text: Optional[str]) -> Optional[np.ndarray]:
    if text is None:
        return None
    return np.frombuffer(base64.b64decode(text, validate=True), dtype="<f4").astype(np.float32)


def header(memlane_version: str, exported_at: str, model: Optional[str], dimension: Optional[int]) -> dict[str, Any]:
    embedding = None if model is None else {"model": model, "dimension": dimension}
    return {"kind": "header", "format": FORMAT, "version": VERSION, "memlane_version": memlane_version,
            "exported_at": exported_at, "embedding": embedding}


def check_header(line: dict[str, Any]) -> dict[str, Any]:
    if line.get("kind") != "header" or line.get("format") != FORMAT:
        raise ValidationError("not a memlane export: the first line is not a memlane-export header")
    if line.get("version") != VERSION:
        raise ValidationError(f"memlane export format version {line.get('version')!r} is not supported "
                              f"(this memlane reads version {VERSION})")
    return line


def to_line(record: Record) -> dict[str, Any]:
    if isinstance(record, MemoryRecord):
        return {"kind": "memory", **{f: getattr(record, f) for f in _MEMORY_FIELDS},
                "embedding": encode_vector(record.embedding)}
    if isinstance(record, MessageRecord):
        return {"kind": "message", **{f: getattr(record, f) for f in _MESSAGE_FIELDS}}
    if isinstance(record, HistoryRecord):
        return {"kind": "history", **{f: getattr(record, f) for f in _HISTORY_FIELDS}}
    if isinstance(record, GraphEntity):
        return {"kind": "entity", **{f: getattr(record, f) for f in _ENTITY_FIELDS},
                "embedding": encode_vector(record.embedding)}
    return {"kind": "relation", **{f: getattr(record, f) for f in _RELATION_FIELDS}}


def _fields(line: dict[str, Any], names: tuple[str, ...], required: tuple[str, ...]) -> dict[str, Any]:
    missing = [n for n in required if line.get(n) is None]
    if missing:
        raise ValidationError(f"{line.get('kind')} {line.get('id')!r}: missing {', '.join(missing)}")
    return {n: line.get(n) for n in names}


def from_line(line: dict[str, Any]) -> Record:
    """The record a line holds; ValidationError for a line that is not one."""
    kind = line.get("kind")
    try:
        if kind == "memory":
            f = _fields(line, _MEMORY_FIELDS, ("id", "memory", "created_at"))
            return MemoryRecord(**{**f, "hash": f["hash"] or "", "metadata": f["metadata"] or {},
                                   "memory_type": f["memory_type"] or "semantic_memory",
                                   "source_message_ids": list(f["source_message_ids"] or [])},
                                embedding=decode_vector(line.get("embedding")))
        if kind == "message":
            f = _fields(line, _MESSAGE_FIELDS, ("id", "role", "content", "created_at"))
            return MessageRecord(**{**f, "metadata": f["metadata"] or {}})
        if kind == "history":
            return HistoryRecord(**_fields(line, _HISTORY_FIELDS, ("id", "memory_id", "event", "created_at")))
        if kind == "entity":
            f = _fields(line, _ENTITY_FIELDS, ("id", "name", "norm", "created_at"))
            return GraphEntity(**{**f, "type": f["type"] or ""}, embedding=decode_vector(line.get("embedding")))
        if kind == "relation":
            f = _fields(line, _RELATION_FIELDS, ("id", "source_id", "relationship", "target_id", "created_at"))
            return GraphRelation(**{**f, "memory_ids": list(f["memory_ids"] or []),
                                    "message_ids": list(f["message_ids"] or [])})
    except (TypeError, ValueError) as exc:  # a wrong type, bad base64
        raise ValidationError(f"{kind} {line.get('id')!r}: {exc}") from exc
    raise ValidationError(f"unknown record kind {kind!r}")


# A record's kind, by its class.
to_kind: dict[type, str] = {MessageRecord: "message", MemoryRecord: "memory", HistoryRecord: "history",
                             GraphEntity: "entity", GraphRelation: "relation"}


def _open_text(path: Path, mode: str, compressed: bool) -> IO[str]:
    if not compressed:
        return open(path, mode, encoding="utf-8", newline="\n")
    if mode == "r":
        return io.TextIOWrapper(gzip.open(path, "rb"), encoding="utf-8", newline="\n")
    # no name or time in the gzip header: the same records give the same bytes
    raw = open(path, "wb")
    try:
        return io.TextIOWrapper(_Gzip(raw), encoding="utf-8", newline="\n")
    except BaseException:
        raw.close()
        raise


class _Gzip(gzip.GzipFile):
    """A gzip writer that closes the file it writes to."""

    def __init__(self, raw: IO[bytes]):
        super().__init__(filename="", mode="wb", fileobj=raw, mtime=0)
        self._raw = raw

    def close(self) -> None:
        try:
            super().close()
        finally:
            self._raw.close()


def compressed(path: Path) -> bool:
    return path.name.endswith(".gz")


def read_lines(path: Union[str, os.PathLike[str]]) -> Generator[dict[str, Any], None, None]:
    """Each line of an export as a dict, streaming; ValidationError for a file that is not one."""
    path = Path(path)
    try:
        with _open_text(path, "r", compressed(path)) as handle:
            for number, text in enumerate(handle, 1):
                if not text.strip():
                    continue
                try:
                    line = json.loads(text)
                except ValueError as exc:
                    raise ValidationError(f"{path}, line {number}: not JSON ({exc})") from exc
                if not isinstance(line, dict):
                    raise ValidationError(f"{path}, line {number}: not a JSON object")
                yield line
    except (OSError, EOFError, UnicodeDecodeError) as exc:  # missing, unreadable, a cut gzip stream
        raise ValidationError(f"cannot read {path}: {exc}") from exc


@contextmanager
def writer(path: Union[str, os.PathLike[str]]) -> Iterator[Any]:
    """A function writing one line; the file appears under its name only once complete (a failed export
    leaves nothing behind)."""
    path = Path(path)
    partial = path.with_name(path.name + ".partial")
    try:
        handle = _open_text(partial, "w", compressed(path))
    except OSError as exc:
        raise ValidationError(f"cannot write {path}: {exc}") from exc
    try:
        with handle:
            yield lambda line: handle.write(json.dumps(line, ensure_ascii=False, separators=(",", ":")) + "\n")
        os.replace(partial, path)
    except OSError as exc:
        partial.unlink(missing_ok=True)
        raise ValidationError(f"cannot write {path}: {exc}") from exc
    except BaseException:
        partial.unlink(missing_ok=True)
        raise


def file_source(path: Union[str, os.PathLike[str]]) -> tuple[dict[str, Any], Callable[[], Iterator[Record]]]:
    """An export file's header, and a function reading its records from the start each time it is called:
    ValidationError for a bad line, a record after the end line, or a file without one (cut short)."""
    lines = read_lines(path)
    first = next(lines, None)
    lines.close()
    if first is None:
        raise ValidationError(f"{path} is empty, not a memlane export")
    head = check_header(first)

    def records() -> Iterator[Record]:
        counts = dict.fromkeys(KINDS, 0)
        ended = False
        for number, line in enumerate(read_lines(path)):
            if number == 0:
                continue
            if ended:
                raise ValidationError(f"{path}: lines after the end line")
            if line.get("kind") == "end":
                ended = True
                if line.get("counts") not in (None, counts):
                    raise ValidationError(f"{path}: the end line counts {line.get('counts')}, the file holds "
                                          f"{counts}")
                continue
            record = from_line(line)
            counts[to_kind[type(record)]] += 1
            yield record
        if not ended:
            raise ValidationError(f"{path} ends without its end line: the file was cut short")
    return head, records


def space_of(head: dict[str, Any]) -> Optional[tuple[str, int]]:
    """The (model, dimension) an export's vectors were made in, from its header."""
    embedding = head.get("embedding")
    if not isinstance(embedding, dict) or not embedding.get("model") or not embedding.get("dimension"):
        return None
    return str(embedding["model"]), int(embedding["dimension"])
