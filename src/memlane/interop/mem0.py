"""Reading a mem0 installation's data, without importing mem0: its memories from the vector store (the
default embedded Qdrant folder, or a pgvector table) and their history from its SQLite history database.
The records go through importer.py like an export file's, embedded again with this Memory's embedder (mem0's
vectors are another model's).

A mem0 point's payload: `data` (the text), `hash`, `created_at`, `updated_at`, the scope ids `user_id` /
`agent_id` / `run_id`, `actor_id`, `role`, `expiration_date`; mem0's own `text_lemmatized` and
`attributed_to`; every other key is the memory's metadata (as mem0's get() reports it). mem0's message table
(its recent-messages buffer) is not carried over.
"""
from __future__ import annotations

import os
import sqlite3
from contextlib import closing
from pathlib import Path
from typing import Any, Iterator, Optional

from ..errors import ConfigurationError, ValidationError
from ..models import MEMORY_TYPES, HistoryRecord, MemoryRecord, text_hash
from . import format as fmt

DEFAULT_QDRANT_PATH = "/tmp/qdrant"  # mem0's default for its embedded Qdrant
DEFAULT_COLLECTION = "mem0"
PAGE = 256
_CORE = {"data", "hash", "created_at", "updated_at", "user_id", "agent_id", "run_id", "actor_id", "role",
         "expiration_date", "text_lemmatized", "attributed_to", "id", "memory_type"}
EXTRA = "memlane[mem0-import]"


def default_history_db() -> Path:
    """Where mem0 keeps its history by default: $MEM0_DIR/history.db, else ~/.mem0/history.db."""
    home = os.environ.get("MEM0_DIR") or os.path.join(os.path.expanduser("~"), ".mem0")
    return Path(home) / "history.db"


def memory_record(point_id: str, payload: dict[str, Any]) -> MemoryRecord:
    """A mem0 point as a memlane memory (without a vector: it is embedded again)."""
    text = payload.get("data")
    if not isinstance(text, str) or not payload.get("created_at"):
        raise ValidationError(f"mem0 memory {point_id}: no text (data) or created_at in its payload")
    memory_type = payload.get("memory_type")
    return MemoryRecord(
        id=str(point_id), memory=text, hash=payload.get("hash") or text_hash(text),
        metadata={k: v for k, v in payload.items() if k not in _CORE},
        user_id=payload.get("user_id"), agent_id=payload.get("agent_id"), run_id=payload.get("run_id"),
        actor_id=payload.get("actor_id"), role=payload.get("role"),
        memory_type=memory_type if memory_type in MEMORY_TYPES else "semantic_memory",
        created_at=str(payload["created_at"]), updated_at=payload.get("updated_at"), timestamp=None,
        source_message_ids=[], expiration_date=payload.get("expiration_date"))


def qdrant_points(path: str, collection: str) -> Iterator[MemoryRecord]:
    """The memories of mem0's embedded Qdrant collection, a page at a time."""
    try:
        from qdrant_client import QdrantClient
    except ImportError as exc:
        raise ConfigurationError(f"reading mem0's Qdrant folder needs qdrant-client: pip install '{EXTRA}'") from exc
    if not (Path(path) / "collection" / collection).is_dir():
        raise ValidationError(f"no mem0 Qdrant collection {collection!r} under {path}")
    try:
        client = QdrantClient(path=path)
    except Exception as exc:  # the folder is locked by a running mem0, or is not Qdrant's
        raise ValidationError(f"cannot open mem0's Qdrant folder {path} (is mem0 still running?): {exc}") from exc
    try:
        offset = None
        while True:
            points, offset = client.scroll(collection, limit=PAGE, offset=offset, with_payload=True,
                                           with_vectors=False)
            for point in points:
                yield memory_record(str(point.id), dict(point.payload or {}))
            if offset is None:
                return
    finally:
        client.close()


def pgvector_points(connection_string: str, collection: str) -> Iterator[MemoryRecord]:
    """The memories of mem0's pgvector table (id, vector, payload jsonb), streamed by a server-side cursor."""
    try:
        import psycopg
        from psycopg import sql
    except ImportError as exc:
        raise ConfigurationError("reading mem0's pgvector table needs psycopg: "
                                 "pip install 'memlane[postgres]'") from exc
    try:
        with psycopg.connect(connection_string) as conn, conn.cursor(name="memlane_mem0_import") as cur:
            cur.itersize = PAGE
            cur.execute(sql.SQL("SELECT id::text, payload FROM {} ORDER BY id").format(sql.Identifier(collection)))
            for point_id, payload in cur:
                yield memory_record(point_id, dict(payload or {}))
    except psycopg.Error as exc:
        raise ValidationError(f"cannot read mem0's pgvector table {collection!r}: {exc}") from exc


def history_rows(path: Path) -> Iterator[HistoryRecord]:
    """mem0's history rows in the order it wrote them."""
    if not path.is_file():
        return
    try:
        with closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True)) as conn:
            cur = conn.execute("SELECT id, memory_id, event, old_memory, new_memory, actor_id, role, created_at, "
                               "updated_at FROM history ORDER BY rowid")
            while rows := cur.fetchmany(PAGE):
                for r in rows:
                    yield HistoryRecord(id=r[0], memory_id=r[1], event=r[2], old_memory=r[3], new_memory=r[4],
                                        actor_id=r[5], role=r[6], created_at=r[7] or r[8] or "",
                                        updated_at=r[8])
    except sqlite3.Error as exc:
        raise ValidationError(f"cannot read mem0's history database {path}: {exc}") from exc


def source(*, qdrant_path: Optional[str] = None, collection: Optional[str] = None,
           history_db: Optional[str] = None, pgvector: Optional[str] = None) -> Any:
    """A function returning mem0's records (memories, then history) from the start each time it is called."""
    collection = collection or DEFAULT_COLLECTION
    history = Path(history_db) if history_db else default_history_db()

    def records() -> Iterator[fmt.Record]:
        if pgvector:
            yield from pgvector_points(pgvector, collection)
        else:
            yield from qdrant_points(qdrant_path or DEFAULT_QDRANT_PATH, collection)
        yield from history_rows(history)
    return records
