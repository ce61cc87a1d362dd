"""The embedded default: one SQLite file holding memories, their vectors, an FTS5 index, history and the
message log. Every ChangeSet commits in one IMMEDIATE transaction (taking the write lock up front is what
avoids SQLite's "database is locked" on lock upgrade); WAL lets readers run beside the writer; each thread
gets its own connection, so one store can be shared by many threads and processes.

Vectors are float32 BLOBs in the memories table (the exact copy, returned by get()), and a float16 copy per
scope id lies in memory_vectors, a WITHOUT ROWID table clustered by scope, which search scans with numpy: a
scope's vectors then sit on a few neighbouring pages instead of one page per memory, wherever its rows landed
among other tenants' (measured by bench/vector_layout.py, docs/design.md). float16 keeps 768 bytes per vector,
under the size SQLite stores inside an index page; float32 would spill each row to an overflow page and lose
the clustering. Triggers keep the copy in step with memories in the same transaction. The schema is the
ordered list of migrations in sqlite_migrations.py, applied on open; filters compile to SQL in
sqlite_filters.py; the job queue shares the file (sqlite_jobs.py).
"""
from __future__ import annotations

import functools
import json
import sqlite3
import threading
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Optional, TypeVar

import numpy as np

from .. import filters as F
from ..inputs import now_iso
from ..errors import ConfigurationError, ConflictError, DimensionMismatchError, ProviderError, ValidationError
from ..models import (ChangeSet, EntityRecord, GraphEntity, GraphRelation, HistoryRecord, MemoryRecord,
                      MessageRecord, Scope)
from ..pooling import POOLED_SUFFIX
from . import sqlite_graph, sqlite_jobs
from .scope_bm25 import fts5_idf, fts5_row_count, scope_idf
from .scoped_terms import keyed_text, phrases, scope_key, search_scope
from .sqlite_filters import to_sql
from .sqlite_migrations import migrate

BUSY_TIMEOUT_MS = 30_000
T = TypeVar("T")

MEMORY_COLUMNS = ("id, memory, hash, metadata, user_id, agent_id, run_id, actor_id, role, memory_type, "
                  "created_at, updated_at, timestamp, source_message_ids, context, expiration_date, version")
EMBEDDING_INDEX = 17  # position of the embedding after MEMORY_COLUMNS
HISTORY_COLUMNS = ("id, memory_id, event, old_memory, new_memory, actor_id, role, created_at, updated_at, "
                   "old_metadata, new_metadata")
# A term found in the previous turn counts half as much as one in the memory itself (LOCOMO ablation,
# docs/benchmarks.md).
CONTEXT_BM25_WEIGHT = 0.5


def _fold(value: Any) -> Any:
    return value.casefold() if isinstance(value, str) else value


def _half(blob: Any) -> bytes:
    """float32 vector bytes -> float16 bytes (memory_vectors' copy)."""
    return np.frombuffer(blob, dtype=np.float32).astype(np.float16).tobytes()


def vector_scope(kind: str, value: str) -> str:
    """memory_vectors' key for a scope id, as its triggers build it."""
    return f"{kind}:{value}"


def _row_to_record(row: sqlite3.Row | tuple, embedding: bytes | None = None) -> MemoryRecord:
    return MemoryRecord(
        id=row[0], memory=row[1], hash=row[2], metadata=json.loads(row[3]), user_id=row[4],
        agent_id=row[5], run_id=row[6], actor_id=row[7], role=row[8], memory_type=row[9],
        created_at=row[10], updated_at=row[11], timestamp=row[12], source_message_ids=json.loads(row[13]),
        context=row[14], expiration_date=row[15], version=row[16],
        embedding=None if embedding is None else np.frombuffer(embedding, dtype=np.float32),
    )


def _json_or_none(value: Any) -> Optional[str]:
    return None if value is None else json.dumps(value)


def _history_record(row: tuple) -> HistoryRecord:
    id_, memory_id, event, old, new, actor_id, role, created_at, updated_at, old_meta, new_meta = row
    return HistoryRecord(id=id_, memory_id=memory_id, event=event, old_memory=old, new_memory=new,
                         actor_id=actor_id, role=role, created_at=created_at, updated_at=updated_at,
                         old_metadata=None if old_meta is None else json.loads(old_meta),
                         new_metadata=None if new_meta is None else json.loads(new_meta))


def _message_record(row: tuple) -> MessageRecord:
    id_, role, content, actor_id, user_id, agent_id, run_id, timestamp, created_at, metadata = row
    return MessageRecord(id=id_, role=role, content=content, actor_id=actor_id, user_id=user_id,
                         agent_id=agent_id, run_id=run_id, timestamp=timestamp, created_at=created_at,
                         metadata=json.loads(metadata))


def _pooling_hint(stored: str, configured: str) -> str:
    if stored.removesuffix(POOLED_SUFFIX) != configured.removesuffix(POOLED_SUFFIX):
        return ""
    wanted = stored.endswith(POOLED_SUFFIX)
    return (f" Only the way vectors are made differs: set retrieval sentence_pooling={wanted} to keep "
            "using this file.")


def _failed(action: str, exc: sqlite3.DatabaseError) -> ProviderError:
    """SQLite could not read or write (locked past the busy timeout, disk I/O, a damaged file)."""
    hint = "" if isinstance(exc, sqlite3.OperationalError) else " (is the file damaged?)"
    return ProviderError(f"sqlite {action} failed{hint}: {exc}", provider="sqlite")


def _reads(method: Callable[..., T]) -> Callable[..., T]:
    """A read that SQLite could not answer is a ProviderError, as a failed write is, not a raw sqlite3
    error."""
    @functools.wraps(method)
    def read(*args: Any, **kwargs: Any) -> T:
        try:
            return method(*args, **kwargs)
        except sqlite3.DatabaseError as exc:
            raise _failed("read", exc) from exc
    return read


class SQLiteStore:
    """Config: `path` (the database file; defaults to $MEMLANE_HOME/memlane.db). mem0's `collection_name`,
    `embedding_model_dims` are accepted; the latter is checked against the embedder."""

    def __init__(self, config: dict[str, Any] | None = None):
        config = dict(config or {})
        path = config.pop("path", None) or config.pop("db_path", None)
        if not path:
            from ..config import default_home
            path = default_home() / "memlane.db"
        config.pop("collection_name", None)
        self._expected_dims = config.pop("embedding_model_dims", None)
        if config:
            raise ConfigurationError(f"unknown sqlite store config keys: {', '.join(sorted(config))}")
        if str(path) == ":memory:":
            raise ConfigurationError("the sqlite store needs a file path (several connections share it)")
        self.path = Path(path)
        self._local = threading.local()
        self._all: list[sqlite3.Connection] = []
        self._all_lock = threading.Lock()
        self._dimension: int | None = None
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            conn = self._conn()
        except (OSError, sqlite3.Error) as exc:
            self.close()
            raise ConfigurationError(f"cannot open {self.path} as a memlane database: {exc}") from exc
        try:
            self._create(conn)
        except BaseException:
            self.close()
            raise

    # ------------------------------------------------------------ connections

    def _conn(self) -> sqlite3.Connection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = sqlite3.connect(self.path, timeout=BUSY_TIMEOUT_MS / 1000, isolation_level=None,
                                   check_same_thread=False)
            conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
            conn.execute("PRAGMA journal_mode = WAL")
            conn.execute("PRAGMA synchronous = NORMAL")
            conn.create_function("memlane_fold", 1, _fold, deterministic=True)
            conn.create_function("memlane_keyed", 4, keyed_text, deterministic=True)
            conn.create_function("memlane_half", 1, _half, deterministic=True)
            self._local.conn = conn
            with self._all_lock:
                self._all.append(conn)
        return conn

    class _Tx:
        def __init__(self, conn: sqlite3.Connection):
            self.conn = conn

        def __enter__(self) -> sqlite3.Connection:
            self.conn.execute("BEGIN IMMEDIATE")
            return self.conn

        def __exit__(self, exc_type: Optional[type], exc: Optional[BaseException], tb: Any) -> None:
            if exc_type is None:
                self.conn.execute("COMMIT")
            else:
                self.conn.execute("ROLLBACK")

    def _write(self, conn: sqlite3.Connection | None = None) -> "_Tx":
        return SQLiteStore._Tx(conn or self._conn())

    def _create(self, conn: sqlite3.Connection) -> None:
        try:
            migrate(conn)
        except sqlite3.Error as exc:
            raise ConfigurationError(f"cannot open {self.path} as a memlane database: {exc}") from exc

    def job_queue(self, *, max_attempts: int, base_delay: float,
                  lease_seconds: float) -> sqlite_jobs.SQLiteJobQueue:
        """The background-add queue, in this file: apply() marks its jobs done (ChangeSet.job)."""
        return sqlite_jobs.SQLiteJobQueue(self.path, max_attempts=max_attempts, base_delay=base_delay,
                                          lease_seconds=lease_seconds)

    def close(self) -> None:
        with self._all_lock:
            for conn in self._all:
                try:
                    conn.close()
                except sqlite3.Error:
                    pass
            self._all.clear()
        self._local = threading.local()

    # ------------------------------------------------------------ writes

    def ensure_space(self, model_id: str, dimension: int) -> None:
        self._check_expected_dims(dimension)
        with self._write() as conn:
            unfinished = conn.execute("SELECT value FROM meta WHERE key = 'reindex_target'").fetchone()
            if unfinished:
                dims, _, model = unfinished[0].partition(":")
                raise DimensionMismatchError(
                    f"{self.path} is being re-embedded with {model!r} ({dims} dimensions) and the reindex has not "
                    "finished (it is running elsewhere, or was interrupted): finish it with Memory.reindexed("
                    "config) or `memlane reindex` using that embedder, or remove the file.")
            rows = dict(conn.execute("SELECT key, value FROM meta WHERE key IN ('embedding_model', "
                                     "'embedding_dims')").fetchall())
            if not rows:
                _record_space(conn, model_id, dimension)
            elif int(rows["embedding_dims"]) != dimension or rows["embedding_model"] != model_id:
                raise DimensionMismatchError(
                    f"{self.path} holds {rows['embedding_dims']}-dimensional vectors from "
                    f"{rows['embedding_model']!r}; the configured embedder is {model_id!r} ({dimension} "
                    "dimensions). Re-embed it with Memory.reindexed(config) (or `memlane reindex` for the packaged "
                    "embedder), use another database file, or reset() this one." + _pooling_hint(
                        rows["embedding_model"], model_id))
        self._dimension = dimension

    def _check_expected_dims(self, dimension: int) -> None:
        if self._expected_dims is not None and int(self._expected_dims) != dimension:
            raise DimensionMismatchError(
                f"vector_store embedding_model_dims={self._expected_dims} but the embedder gives {dimension}")

    def reindex_page(self, model_id: str, dimension: int, cursor: int | None,
                     limit: int) -> tuple[list[MemoryRecord], int | None]:
        """The next `limit` memories, oldest first, to re-embed for the space (model_id, dimension), and the
        cursor to pass back for the page after them. cursor=None starts a reindex, or resumes an interrupted
        one to the same space; passing a cursor records that every memory before it is done, so a crash
        repeats at most one page. An empty page records the new space and ends the reindex. Until then
        ensure_space() refuses the file, so nothing searches a half re-embedded store."""
        self._check_expected_dims(dimension)
        target = f"{dimension}:{model_id}"
        with self._write() as conn:
            if cursor is None:
                stored = dict(conn.execute("SELECT key, value FROM meta WHERE key IN ('reindex_target', "
                                           "'reindex_cursor')").fetchall())
                cursor = int(stored.get("reindex_cursor", 0)) if stored.get("reindex_target") == target else 0
            conn.execute("INSERT OR REPLACE INTO meta VALUES ('reindex_target', ?), ('reindex_cursor', ?)",
                         (target, str(cursor)))
            rows = conn.execute(f"SELECT {MEMORY_COLUMNS}, pk FROM memories WHERE pk > ? ORDER BY pk LIMIT ?",
                                (cursor, limit)).fetchall()
            if not rows:
                _forget_space(conn)
                _record_space(conn, model_id, dimension)
        self._dimension = dimension
        if not rows:
            return [], None
        return [_row_to_record(r) for r in rows], rows[-1][-1]

    def _blob(self, rec: MemoryRecord) -> bytes:
        vec = rec.embedding
        if vec is None:
            raise ValidationError(f"memory {rec.id} has no embedding")
        vec = np.asarray(vec, dtype=np.float32).reshape(-1)
        if self._dimension is not None and vec.shape[0] != self._dimension:
            raise ValidationError(f"memory {rec.id}: vector has {vec.shape[0]} dimensions, "
                                  f"the store holds {self._dimension}")
        return vec.tobytes()

    @staticmethod
    def _memory_values(rec: MemoryRecord, blob: bytes) -> tuple:
        return (rec.id, rec.memory, rec.hash, json.dumps(rec.metadata), rec.user_id, rec.agent_id,
                rec.run_id, rec.actor_id, rec.role, rec.memory_type, rec.created_at, rec.updated_at,
                rec.timestamp, json.dumps(rec.source_message_ids), rec.context, rec.expiration_date, blob)

    def apply(self, changes: ChangeSet) -> None:
        """Write the whole ChangeSet in one IMMEDIATE transaction, or nothing: ConflictError when a memory
        in `changes.expected` is gone or at another version, or the job's lease was taken over."""
        if changes.is_empty():
            return
        inserts = [self._memory_values(r, self._blob(r)) for r in changes.inserts]
        updates = [self._memory_values(r, self._blob(r)) for r in changes.updates]
        try:
            with self._write() as conn:
                _check_expected(conn, changes.expected)
                conn.executemany(
                    # OR IGNORE: a retried background job logs the same (pre-assigned) message ids again.
                    "INSERT OR IGNORE INTO messages (id, role, content, actor_id, user_id, agent_id, run_id, timestamp,"
                    " created_at, metadata) VALUES (?,?,?,?,?,?,?,?,?,?)",
                    [(m.id, m.role, m.content, m.actor_id, m.user_id, m.agent_id, m.run_id, m.timestamp,
                      m.created_at, json.dumps(m.metadata)) for m in changes.messages])
                conn.executemany(f"INSERT INTO memories ({MEMORY_COLUMNS.removesuffix(', version')}, embedding) "
                                 "VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)", inserts)
                for values in updates:
                    cur = conn.execute(
                        "UPDATE memories SET memory=?, hash=?, metadata=?, user_id=?, agent_id=?, run_id=?, "
                        "actor_id=?, role=?, memory_type=?, created_at=?, updated_at=?, timestamp=?, "
                        "source_message_ids=?, context=?, expiration_date=?, embedding=?, version = version + 1 "
                        "WHERE id=?",
                        values[1:] + (values[0],))
                    if cur.rowcount != 1:
                        raise ConflictError(f"memory {values[0]} was deleted by another call", ids=(values[0],))
                conn.executemany("UPDATE memories SET context = ?, embedding = ?, version = version + 1 "
                                 "WHERE id = ? AND memory = ?",
                                 [(r.context, self._blob(r), r.id, r.memory) for r in changes.reindex])
                for memory_id in changes.deletes:
                    if conn.execute("DELETE FROM memories WHERE id = ?", (memory_id,)).rowcount != 1:
                        raise ConflictError(f"memory {memory_id} was deleted by another call", ids=(memory_id,))
                sqlite_graph.write(conn, changes)
                conn.executemany(
                    f"INSERT INTO history ({HISTORY_COLUMNS}) VALUES (?,?,?,?,?,?,?,?,?,?,?)",
                    [(h.id, h.memory_id, h.event, h.old_memory, h.new_memory, h.actor_id, h.role,
                      h.created_at, h.updated_at, _json_or_none(h.old_metadata), _json_or_none(h.new_metadata))
                     for h in changes.history])
                if changes.outbox is not None:
                    conn.execute("INSERT INTO graph_outbox (payload, created_at) VALUES (?, ?)",
                                 (json.dumps(changes.outbox), now_iso()))
                if changes.job is not None:
                    sqlite_jobs.complete(conn, changes.job)
        except sqlite3.IntegrityError as exc:
            raise ValidationError(f"write rejected by the store: {exc}") from exc
        except sqlite3.DatabaseError as exc:
            raise _failed("write", exc) from exc

    def begin_bulk(self, rows: int) -> None:
        """Nothing to defer: SQLite's vector rows and FTS index grow as cheaply one batch at a time."""

    def end_bulk(self) -> None:
        """Nothing was deferred."""

    def reset(self) -> None:
        with self._write() as conn:
            for table in ("memories", "history", "messages", "graph_outbox"):
                conn.execute(f"DELETE FROM {table}")
            conn.execute("INSERT INTO memories_fts(memories_fts) VALUES ('delete-all')")
            sqlite_graph.clear(conn)
            _forget_space(conn)
        self._dimension = None

    # ------------------------------------------------------------ reads

    def _where(self, node: F.Node, prefix: str = "") -> tuple[str, list[Any]]:
        params: list[Any] = []
        sql = to_sql(node, params, metadata_column=f"{prefix}metadata", column_prefix=prefix)
        return sql, params

    @_reads
    def get(self, ids: list[str], with_embeddings: bool = False) -> list[MemoryRecord]:
        out: list[MemoryRecord] = []
        conn = self._conn()
        cols = MEMORY_COLUMNS + (", embedding" if with_embeddings else "")
        for chunk in _chunks(ids, 500):
            marks = ",".join("?" * len(chunk))
            for row in conn.execute(f"SELECT {cols} FROM memories WHERE id IN ({marks})", chunk):
                out.append(_row_to_record(row, row[EMBEDDING_INDEX] if with_embeddings else None))
        return out

    @_reads
    def graph_entities(self, scope: Scope, with_embeddings: bool = False) -> list[GraphEntity]:
        return sqlite_graph.entities(self._conn(), scope, with_embeddings)

    @_reads
    def graph_relations(self, scope: Scope, as_of: Optional[str] = None, entity_ids: Optional[list[str]] = None,
                        hops: int = 1, ended: bool = False) -> list[GraphRelation]:
        return sqlite_graph.relations(self._conn(), scope, as_of, entity_ids, hops, ended)

    @_reads
    def outbox_pending(self) -> list[tuple[int, dict[str, Any]]]:
        rows = self._conn().execute("SELECT id, payload FROM graph_outbox ORDER BY id").fetchall()
        return [(row[0], json.loads(row[1])) for row in rows]

    def outbox_done(self, entry_id: int) -> None:
        with self._write() as conn:
            conn.execute("DELETE FROM graph_outbox WHERE id = ?", (entry_id,))

    @_reads
    def ids(self, where: F.Node) -> list[str]:
        sql, params = self._where(where)
        return [r[0] for r in self._conn().execute(f"SELECT id FROM memories WHERE {sql}", params)]

    @_reads
    def vector_search(self, vector: np.ndarray, scope: Scope, where: F.Node, k: int) -> list[tuple[str, float]]:
        query = np.asarray(vector, dtype=np.float32).reshape(-1)
        read_under = search_scope(scope)
        conn = self._conn()
        with _read_snapshot(conn):  # the ranking and the ids read after it see the same rows
            if read_under is None:  # every search is scoped (inputs.scoped_filter); a direct call may not be
                sql, params = self._where(where)
                rows = conn.execute(f"SELECT pk, embedding FROM memories WHERE {sql}", params).fetchall()
                return self._first_matching(conn, *_ranked(rows, _similarities(rows, np.float32, query)), None, k)
            rows = conn.execute("SELECT pk, embedding FROM memory_vectors WHERE scope = ?",
                                (vector_scope(*read_under),)).fetchall()
            return self._first_matching(conn, *_ranked(rows, _similarities(rows, np.float16, query)), where, k)

    def _first_matching(self, conn: sqlite3.Connection, pks: list[int], scores: list[float],
                        where: F.Node | None, k: int) -> list[tuple[str, float]]:
        """The first k of `pks` (ranked best first) that match `where` (all, when None), as (id, score).
        The scope's index gave the ranking without touching memories; rows are now checked in growing
        batches, best first: when the best k pass (the usual case) only those k rows are read, which
        search fetches next anyway, and a selective filter still gives the exact top k."""
        sql, params = self._where(where) if where is not None else ("1", [])
        out: list[tuple[str, float]] = []
        start, size = 0, k
        while start < len(pks) and len(out) < k:
            batch = pks[start:start + size]
            found = dict(conn.execute(f"SELECT pk, id FROM memories WHERE pk IN (SELECT value FROM json_each(?)) "
                                      f"AND {sql}", [json.dumps(batch)] + params).fetchall())
            out += [(found[pk], score) for pk, score in zip(batch, scores[start:start + size]) if pk in found]
            start, size = start + size, size * 4
        return out[:k]

    @_reads
    def keyword_search(self, terms: list[str], scope: Scope, where: F.Node, k: int) -> list[tuple[str, float]]:
        read_under = search_scope(scope)
        if read_under is None:  # every search is scoped (inputs.scoped_filter); a direct call may not be
            raise ValidationError("keyword_search needs a scope with a user_id, agent_id or run_id")
        kind, value = read_under
        conn = self._conn()
        # One read transaction, so the counts and the per-term scores see the same rows.
        with _read_snapshot(conn):
            table_rows = fts5_row_count(
                (conn.execute("SELECT block FROM memories_fts_data WHERE id = 1").fetchone() or [None])[0])
            scope_rows = conn.execute(f"SELECT count(*) FROM memories WHERE {kind} = ?", (value,)).fetchone()[0]
            branches, args = [], []
            for phrase in phrases(scope_key(kind, value), terms):
                hits = conn.execute("SELECT count(*) FROM memories_fts WHERE memories_fts MATCH ?",
                                    (phrase,)).fetchone()[0]
                if hits:  # FTS5's table-wide idf swapped for the scope's (scope_bm25.py)
                    factor = scope_idf(max(scope_rows, hits), hits) / fts5_idf(max(table_rows, hits), hits)
                    branches.append(f"SELECT rowid AS pk, ? * -bm25(memories_fts, 1.0, {CONTEXT_BM25_WEIGHT}) "
                                    "AS s FROM memories_fts WHERE memories_fts MATCH ?")
                    args += [factor, phrase]
            if not branches:
                return []
            # Each term scored on its own and summed in SQL, so a big scope's common words stay in C; the
            # filter is checked afterwards on the best rows only (a JOIN would read every match's row).
            ranked = conn.execute(f"WITH per_term AS MATERIALIZED ({' UNION ALL '.join(branches)}) "
                                  "SELECT pk, max(0.0, sum(s)) AS s FROM per_term GROUP BY pk ORDER BY s DESC, pk",
                                  args).fetchall()
            return self._first_matching(conn, [r[0] for r in ranked], [float(r[1]) for r in ranked], where, k)

    @_reads
    def entities(self) -> list[EntityRecord]:
        conn = self._conn()
        out: list[EntityRecord] = []
        with _read_snapshot(conn):  # the three kinds counted on the same rows
            for kind in ("user_id", "agent_id", "run_id"):  # constants; each GROUP BY walks that id's index
                out += [EntityRecord(kind, *row) for row in conn.execute(
                    f"SELECT {kind}, count(*), min(created_at), max(coalesce(updated_at, created_at)) "
                    f"FROM memories WHERE {kind} IS NOT NULL GROUP BY {kind} ORDER BY {kind}")]
        return out

    @_reads
    def history(self, memory_id: str) -> list[HistoryRecord]:
        rows = self._conn().execute(f"SELECT {HISTORY_COLUMNS} FROM history WHERE memory_id = ? ORDER BY pk",
                                    (memory_id,)).fetchall()
        return [_history_record(r) for r in rows]

    @_reads
    def history_page(self, cursor: Optional[int], limit: int) -> tuple[list[HistoryRecord], Optional[int]]:
        rows = self._conn().execute(f"SELECT {HISTORY_COLUMNS}, pk FROM history WHERE pk > ? ORDER BY pk LIMIT ?",
                                    (cursor or 0, limit)).fetchall()
        return [_history_record(r[:-1]) for r in rows], (rows[-1][-1] if len(rows) == limit else None)

    @_reads
    def list_messages(self, where: F.Node, limit: int, offset: int) -> tuple[list[MessageRecord], int]:
        sql, params = self._where(where)
        conn = self._conn()
        total = conn.execute(f"SELECT count(*) FROM messages WHERE {sql}", params).fetchone()[0]
        rows = conn.execute(
            "SELECT id, role, content, actor_id, user_id, agent_id, run_id, timestamp, created_at, metadata "
            f"FROM messages WHERE {sql} ORDER BY pk LIMIT ? OFFSET ?", params + [limit, offset]).fetchall()
        return [_message_record(r) for r in rows], total

    @_reads
    def messages(self, ids: list[str]) -> list[MessageRecord]:
        out = []
        for chunk in _chunks(ids, 500):
            marks = ",".join("?" * len(chunk))
            for r in self._conn().execute(
                    "SELECT id, role, content, actor_id, user_id, agent_id, run_id, timestamp, created_at, "
                    f"metadata FROM messages WHERE id IN ({marks}) ORDER BY pk", chunk):
                out.append(_message_record(r))
        return out

    # Last: below it, `list` in an annotation would name this method (for mypy).
    @_reads
    def list(self, where: F.Node, limit: int, offset: int,
             newest_first: bool = False) -> tuple[list[MemoryRecord], int]:
        sql, params = self._where(where)
        conn = self._conn()
        total = conn.execute(f"SELECT count(*) FROM memories WHERE {sql}", params).fetchone()[0]
        order = "created_at DESC, pk DESC" if newest_first else "created_at, pk"
        rows = conn.execute(f"SELECT {MEMORY_COLUMNS} FROM memories WHERE {sql} ORDER BY {order} "
                            "LIMIT ? OFFSET ?", params + [limit, offset]).fetchall()
        return [_row_to_record(r) for r in rows], total


def _check_expected(conn: sqlite3.Connection, expected: dict[str, int]) -> None:
    """Compare-and-set: every memory the ChangeSet was planned against is still at that version."""
    stale = []
    for memory_id, version in expected.items():
        row = conn.execute("SELECT version FROM memories WHERE id = ?", (memory_id,)).fetchone()
        if row is None or row[0] != version:
            stale.append(memory_id)
    if stale:
        raise ConflictError(f"{len(stale)} memor{'y' if len(stale) == 1 else 'ies'} changed or deleted by "
                            f"another call since this one read {'it' if len(stale) == 1 else 'them'}: "
                            f"{', '.join(stale[:5])}", ids=tuple(stale))


def _record_space(conn: sqlite3.Connection, model_id: str, dimension: int) -> None:
    conn.execute("INSERT INTO meta VALUES ('embedding_model', ?), ('embedding_dims', ?)", (model_id, str(dimension)))


def _forget_space(conn: sqlite3.Connection) -> None:
    """Drop the recorded vector space and any unfinished reindex (the schema version stays)."""
    conn.execute("DELETE FROM meta WHERE key IN ('embedding_model', 'embedding_dims', 'reindex_target', "
                 "'reindex_cursor')")


def _ranked(rows: list, sims: np.ndarray) -> tuple[list[int], list[float]]:
    """(pk, ...) rows' pks and similarities, best first (ties by position)."""
    order = np.argsort(-sims, kind="stable")
    return [rows[i][0] for i in order], sims[order].tolist()


def _similarities(rows: list, dtype: type, query: np.ndarray) -> np.ndarray:
    """Dot products of the query with the vectors of (pk, vector bytes) rows, as float32."""
    if not rows:
        return np.zeros(0, dtype=np.float32)
    matrix: np.ndarray = np.frombuffer(b"".join(r[1] for r in rows), dtype=dtype).reshape(len(rows), -1)
    if matrix.shape[1] != query.shape[0]:
        raise ValidationError(f"query vector has {query.shape[0]} dimensions, the store holds {matrix.shape[1]}")
    return matrix.astype(np.float32) @ query


@contextmanager
def _read_snapshot(conn: sqlite3.Connection) -> Iterator[None]:
    """Several reads that must agree: one deferred transaction (a WAL snapshot), unless one is open."""
    if conn.in_transaction:
        yield
        return
    conn.execute("BEGIN")
    try:
        yield
    finally:
        conn.execute("COMMIT")  # read-only, so committing and rolling back are the same


def _chunks(items: list[str], size: int) -> Iterable[list[str]]:
    for i in range(0, len(items), size):
        yield list(items[i:i + size])
