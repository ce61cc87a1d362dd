"""The PostgreSQL store (vector_store provider "pgvector"): memories with a pgvector `vector` column and
an HNSW cosine index, a weighted tsvector with a GIN index for keyword search, history, the message log,
graph memory, the graph outbox and the job queue, all in one PostgreSQL schema per collection
(config.py). Every ChangeSet commits in one transaction; compare-and-set rows are locked (FOR UPDATE)
before their versions are checked, so a concurrent writer waits and then sees the conflict, as SQLite's
single writer would. Connections come from a psycopg_pool pool whose connections run in autocommit mode
and open explicit transactions; the schema is created or migrated on first use (migrations.py)."""
from __future__ import annotations

import functools
import json
from contextlib import contextmanager
from typing import Any, Callable, Iterator, Optional, TypeVar

import numpy as np
import psycopg
from pgvector.psycopg import register_vector
from psycopg import Connection, Cursor, errors as pg_errors
from psycopg_pool import ConnectionPool

from ... import filters as F
from ...errors import ConfigurationError, ConflictError, DimensionMismatchError, ProviderError, ValidationError
from ...inputs import now_iso
from ...models import (ChangeSet, EntityRecord, GraphEntity, GraphRelation, HistoryRecord, MemoryRecord,
                       MessageRecord, Scope)
from ..scoped_terms import search_scope, words
from ..sqlite import _pooling_hint
from . import graph, jobs, search
from .config import parse
from .filters import Compiler
from .migrations import migrate

T = TypeVar("T")

MEMORY_COLUMNS = ("id, memory, hash, metadata, user_id, agent_id, run_id, actor_id, role, memory_type, "
                  "created_at, updated_at, timestamp, source_message_ids, context, expiration_date, version")
EMBEDDING_INDEX = 17  # position of the embedding after MEMORY_COLUMNS
HISTORY_COLUMNS = ("id, memory_id, event, old_memory, new_memory, actor_id, role, created_at, updated_at, "
                   "old_metadata, new_metadata")
MESSAGE_COLUMNS = "id, role, content, actor_id, user_id, agent_id, run_id, timestamp, created_at, metadata"
INSERT_COLUMNS = f"{MEMORY_COLUMNS.removesuffix(', version')}, doc_len, embedding"
# binary COPY's types, column by column (INSERT_COLUMNS); json values go as objects, the rest as written
COPY_TYPES = ["text"] * 3 + ["json"] + ["text"] * 9 + ["jsonb", "text", "text", "int4", "vector"]
COPY_MIN_ROWS = 64  # below, a multi-row INSERT costs about what COPY does
# A load this large (and at least as large as the table) builds the HNSW index once at the end instead of
# growing it row by row, several times faster (docs/benchmarks.md)
BULK_DEFER_ROWS = 10_000
HNSW_MAX_DIMS = 2000  # pgvector indexes `vector` columns up to this many dimensions; above, scans are exact
SPACE_LOCK = "memlane.space."


def _failed(action: str, exc: BaseException) -> ProviderError:
    """PostgreSQL could not read or write (unreachable, pool exhausted, a statement failed)."""
    return ProviderError(f"postgres {action} failed: {type(exc).__name__}: {exc}", provider="pgvector")


@contextmanager
def _guarded(action: str) -> Iterator[None]:
    """Only MemlaneErrors leave the store: a constraint or a value PostgreSQL rejects is the caller's input,
    a deadlock or serialization failure a conflict (nothing was written), anything else the provider's."""
    try:
        yield
    except (pg_errors.IntegrityError, pg_errors.DataError) as exc:
        raise ValidationError(f"{action} rejected by the store: {exc}") from exc
    except (pg_errors.DeadlockDetected, pg_errors.SerializationFailure) as exc:
        raise ConflictError(f"{action} conflicted with another call and wrote nothing: {exc}") from exc
    except psycopg.Error as exc:
        raise _failed(action, exc) from exc


def _reads(method: Callable[..., T]) -> Callable[..., T]:
    @functools.wraps(method)
    def read(*args: Any, **kwargs: Any) -> T:
        with _guarded("read"):
            return method(*args, **kwargs)
    return read


def _record(row: tuple, with_embedding: bool = False) -> MemoryRecord:
    return MemoryRecord(
        id=row[0], memory=row[1], hash=row[2], metadata=row[3], user_id=row[4], agent_id=row[5], run_id=row[6],
        actor_id=row[7], role=row[8], memory_type=row[9], created_at=row[10], updated_at=row[11],
        timestamp=row[12], source_message_ids=list(row[13]), context=row[14], expiration_date=row[15],
        version=row[16],
        embedding=graph.array(row[EMBEDDING_INDEX]) if with_embedding else None)


def _history(row: tuple) -> HistoryRecord:
    id_, memory_id, event, old, new, actor_id, role, created_at, updated_at, old_meta, new_meta = row
    return HistoryRecord(id=id_, memory_id=memory_id, event=event, old_memory=old, new_memory=new,
                         actor_id=actor_id, role=role, created_at=created_at, updated_at=updated_at,
                         old_metadata=old_meta, new_metadata=new_meta)


def _message(row: tuple) -> MessageRecord:
    id_, role, content, actor_id, user_id, agent_id, run_id, timestamp, created_at, metadata = row
    return MessageRecord(id=id_, role=role, content=content, actor_id=actor_id, user_id=user_id,
                         agent_id=agent_id, run_id=run_id, timestamp=timestamp, created_at=created_at,
                         metadata=metadata)


def _json_or_none(value: Any) -> Optional[str]:
    return None if value is None else json.dumps(value)


def _doc_len(rec: MemoryRecord) -> int:
    """Words in the memory and its context: BM25's document length (what FTS5 counts)."""
    return len(words(rec.memory)) + len(words(rec.context or ""))


class PostgresStore:
    """Config: see config.py (mem0's pgvector keys)."""

    def __init__(self, config: dict[str, Any] | None = None):
        settings = parse(config)
        self.schema = settings.schema
        self._build_memory = settings.build_memory
        self._expected_dims = settings.expected_dims
        self._dimension: int | None = None
        try:
            with psycopg.connect(settings.conninfo, autocommit=True, connect_timeout=10) as conn:
                migrate(conn, self.schema)
                version = conn.info.server_version
        except ConfigurationError:
            raise
        except psycopg.Error as exc:
            raise ConfigurationError(f"cannot open PostgreSQL schema {self.schema!r} as a memlane store: "
                                     f"{type(exc).__name__}: {exc}") from exc
        # Python's str.casefold for icontains: PostgreSQL 18's casefold() under its Unicode collation
        self._filters = Compiler("casefold({} COLLATE pg_unicode_fast)" if version >= 180000 else "lower({})")
        self._pool = ConnectionPool(settings.conninfo, min_size=settings.min_size, max_size=settings.max_size,
                                    kwargs={"autocommit": True}, configure=self._configure, open=False,
                                    name=f"memlane-{self.schema}")
        try:
            self._pool.open(wait=True, timeout=30)
        except psycopg.Error as exc:
            self._pool.close()
            raise ConfigurationError(f"cannot open a PostgreSQL connection pool: {exc}") from exc

    def _configure(self, conn: Connection[Any]) -> None:
        # the collection's schema first, then wherever the vector extension was installed
        conn.execute("SELECT set_config('search_path', quote_ident(%s) || ', ' || current_setting('search_path'), "
                     "false)", (self.schema,))
        register_vector(conn)

    @contextmanager
    def _cursor(self, snapshot: bool = False, binary: bool = False) -> Iterator[Cursor[Any]]:
        """One transaction on a pooled connection; `snapshot`: several reads that must agree see one
        snapshot (REPEATABLE READ, read only); `binary`: results in binary (vectors parse several times
        faster than from text)."""
        with self._pool.connection() as conn, conn.transaction(), conn.cursor(binary=binary) as cur:
            if snapshot:
                cur.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY")
            yield cur

    @contextmanager
    def _job_cursor(self) -> Iterator[Cursor[Any]]:
        with _guarded("job queue"), self._cursor() as cur:
            yield cur

    def close(self) -> None:
        self._pool.close()

    # ------------------------------------------------------------ the embedding space

    def _check_expected_dims(self, dimension: int) -> None:
        if self._expected_dims is not None and int(self._expected_dims) != dimension:
            raise DimensionMismatchError(
                f"vector_store embedding_model_dims={self._expected_dims} but the embedder gives {dimension}")

    def _lock_space(self, cur: Cursor[Any]) -> None:
        cur.execute("SELECT pg_advisory_xact_lock(hashtextextended(%s, 0))", (SPACE_LOCK + self.schema,))

    @staticmethod
    def _meta(cur: Cursor[Any], *keys: str) -> dict[str, str]:
        cur.execute("SELECT key, value FROM meta WHERE key = ANY(%s)", (list(keys),))
        return {row[0]: row[1] for row in cur.fetchall()}

    @staticmethod
    def _set_meta(cur: Cursor[Any], values: dict[str, str]) -> None:
        for key, value in values.items():
            cur.execute("INSERT INTO meta VALUES (%s, %s) ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                        (key, value))

    @staticmethod
    def _forget_space(cur: Cursor[Any]) -> None:
        cur.execute("DELETE FROM meta WHERE key IN ('embedding_model', 'embedding_dims', 'reindex_target', "
                    "'reindex_cursor')")

    @staticmethod
    def _column_dims(cur: Cursor[Any]) -> int:
        cur.execute("SELECT atttypmod FROM pg_attribute WHERE attrelid = 'memories'::regclass AND "
                    "attname = 'embedding'")
        return _scalar(cur)  # -1: not typed to a dimension

    def _fit_column(self, cur: Cursor[Any], dimension: int) -> None:
        """Type the vector column to the space's dimension and index it (HNSW needs a fixed dimension)."""
        if self._column_dims(cur) != dimension:
            cur.execute("DROP INDEX IF EXISTS memories_embedding")
            cur.execute(f"ALTER TABLE memories ALTER COLUMN embedding TYPE vector({int(dimension)})")
        cur.execute("SELECT to_regclass('memories_embedding')")
        if dimension <= HNSW_MAX_DIMS and cur.fetchone() == (None,):
            cur.execute("CREATE INDEX memories_embedding ON memories USING hnsw (embedding vector_cosine_ops)")

    def _unfit_column(self, cur: Cursor[Any]) -> None:
        """Let the column hold any dimension again (a reset, or a reindex to another dimension)."""
        if self._column_dims(cur) != -1:
            cur.execute("DROP INDEX IF EXISTS memories_embedding")
            cur.execute("ALTER TABLE memories ALTER COLUMN embedding TYPE vector")

    def ensure_space(self, model_id: str, dimension: int) -> None:
        self._check_expected_dims(dimension)
        with _guarded("write"), self._cursor() as cur:
            self._lock_space(cur)
            unfinished = self._meta(cur, "reindex_target").get("reindex_target")
            if unfinished:
                dims, _, model = unfinished.partition(":")
                raise DimensionMismatchError(
                    f"PostgreSQL schema {self.schema!r} is being re-embedded with {model!r} ({dims} dimensions) "
                    "and the reindex has not finished (it is running elsewhere, or was interrupted): finish it "
                    "with Memory.reindexed(config) or `memlane reindex` using that embedder, or reset() it.")
            rows = self._meta(cur, "embedding_model", "embedding_dims")
            if not rows:
                self._set_meta(cur, {"embedding_model": model_id, "embedding_dims": str(dimension)})
            elif int(rows["embedding_dims"]) != dimension or rows["embedding_model"] != model_id:
                raise DimensionMismatchError(
                    f"PostgreSQL schema {self.schema!r} holds {rows['embedding_dims']}-dimensional vectors from "
                    f"{rows['embedding_model']!r}; the configured embedder is {model_id!r} ({dimension} "
                    "dimensions). Re-embed it with Memory.reindexed(config), use another collection_name, or "
                    "reset() this one." + _pooling_hint(rows["embedding_model"], model_id))
            self._fit_column(cur, dimension)
        self._dimension = dimension

    def reindex_page(self, model_id: str, dimension: int, cursor: Optional[int],
                     limit: int) -> tuple[list[MemoryRecord], Optional[int]]:
        """As the SQLite store's: pages oldest first by pk, resumable, ensure_space() refused until done."""
        self._check_expected_dims(dimension)
        target = f"{dimension}:{model_id}"
        with _guarded("write"), self._cursor() as cur:
            self._lock_space(cur)
            if cursor is None:
                stored = self._meta(cur, "reindex_target", "reindex_cursor")
                cursor = int(stored.get("reindex_cursor", 0)) if stored.get("reindex_target") == target else 0
                if self._column_dims(cur) not in (-1, dimension):
                    self._unfit_column(cur)
            self._set_meta(cur, {"reindex_target": target, "reindex_cursor": str(cursor)})
            cur.execute(f"SELECT {MEMORY_COLUMNS}, pk FROM memories WHERE pk > %s ORDER BY pk LIMIT %s",
                        (cursor, limit))
            rows = cur.fetchall()
            if not rows:
                self._forget_space(cur)
                self._set_meta(cur, {"embedding_model": model_id, "embedding_dims": str(dimension)})
                self._fit_column(cur, dimension)
        self._dimension = dimension
        if not rows:
            return [], None
        return [_record(r) for r in rows], int(rows[-1][-1])

    # ------------------------------------------------------------ writes

    def _vector(self, rec: MemoryRecord) -> np.ndarray:
        vec = rec.embedding
        if vec is None:
            raise ValidationError(f"memory {rec.id} has no embedding")
        vec = np.asarray(vec, dtype=np.float32).reshape(-1)
        if self._dimension is not None and vec.shape[0] != self._dimension:
            raise ValidationError(f"memory {rec.id}: vector has {vec.shape[0]} dimensions, "
                                  f"the store holds {self._dimension}")
        return vec

    def _memory_values(self, rec: MemoryRecord) -> tuple:
        return (rec.id, rec.memory, rec.hash, json.dumps(rec.metadata), rec.user_id, rec.agent_id, rec.run_id,
                rec.actor_id, rec.role, rec.memory_type, rec.created_at, rec.updated_at, rec.timestamp,
                json.dumps(rec.source_message_ids), rec.context, rec.expiration_date, _doc_len(rec),
                self._vector(rec))

    def apply(self, changes: ChangeSet) -> None:
        """Write the whole ChangeSet in one transaction, or nothing: ConflictError when a memory in
        `changes.expected` is gone or at another version, or the job's lease was taken over."""
        if changes.is_empty():
            return
        inserts = [self._memory_values(r) for r in changes.inserts]
        updates = [self._memory_values(r) for r in changes.updates]
        reindex = [(r.context, _doc_len(r), self._vector(r), r.id, r.memory) for r in changes.reindex]
        with _guarded("write"), self._cursor() as cur:
            _check_expected(cur, changes.expected)
            # ON CONFLICT: a retried background job logs the same (pre-assigned) message ids again.
            cur.executemany(f"INSERT INTO messages ({MESSAGE_COLUMNS}) VALUES (%s,%s,%s,%s,%s,%s,%s,%s,%s,%s::json) "
                            "ON CONFLICT (id) DO NOTHING",
                            [(m.id, m.role, m.content, m.actor_id, m.user_id, m.agent_id, m.run_id, m.timestamp,
                              m.created_at, json.dumps(m.metadata)) for m in changes.messages])
            if len(inserts) >= COPY_MIN_ROWS:
                _copy_memories(cur, changes.inserts, inserts)
            else:
                cur.executemany(f"INSERT INTO memories ({INSERT_COLUMNS}) "
                                "VALUES (%s,%s,%s,%s::json,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s::jsonb,%s,%s,%s,%s)", inserts)
            for values in updates:
                cur.execute("UPDATE memories SET memory=%s, hash=%s, metadata=%s::json, user_id=%s, agent_id=%s, "
                            "run_id=%s, actor_id=%s, role=%s, memory_type=%s, created_at=%s, updated_at=%s, "
                            "timestamp=%s, source_message_ids=%s::jsonb, context=%s, expiration_date=%s, doc_len=%s, "
                            "embedding=%s, version = version + 1 WHERE id=%s", values[1:] + (values[0],))
                if cur.rowcount != 1:
                    raise ConflictError(f"memory {values[0]} was deleted by another call", ids=(values[0],))
            cur.executemany("UPDATE memories SET context = %s, doc_len = %s, embedding = %s, version = version + 1 "
                            "WHERE id = %s AND memory = %s", reindex)
            for memory_id in changes.deletes:
                cur.execute("DELETE FROM memories WHERE id = %s", (memory_id,))
                if cur.rowcount != 1:
                    raise ConflictError(f"memory {memory_id} was deleted by another call", ids=(memory_id,))
            graph.write(cur, changes, self.schema)
            cur.executemany(
                f"INSERT INTO history ({HISTORY_COLUMNS}) VALUES (%s,%s,%s,%s,%s,%s,%s,%s,%s,%s::json,%s::json)",
                [(h.id, h.memory_id, h.event, h.old_memory, h.new_memory, h.actor_id, h.role, h.created_at,
                  h.updated_at, _json_or_none(h.old_metadata), _json_or_none(h.new_metadata))
                 for h in changes.history])
            if changes.outbox is not None:
                cur.execute("INSERT INTO graph_outbox (payload, created_at) VALUES (%s::json, %s)",
                            (json.dumps(changes.outbox), now_iso()))
            if changes.job is not None:
                jobs.complete(cur, changes.job)

    def begin_bulk(self, rows: int) -> None:
        """A load of about `rows` memories follows: when it is at least BULK_DEFER_ROWS and at least what the
        table holds, the HNSW index goes until end_bulk() (searches stay exact meanwhile, only slower on large
        scopes); an interrupted load gets its index back on the next open (ensure_space)."""
        with _guarded("write"), self._cursor() as cur:
            self._lock_space(cur)
            cur.execute("SELECT count(*) FROM memories")
            if rows >= max(BULK_DEFER_ROWS, _scalar(cur)):
                cur.execute("DROP INDEX IF EXISTS memories_embedding")

    def end_bulk(self) -> None:
        """Build what begin_bulk() deferred (nothing when nothing was)."""
        with _guarded("write"), self._cursor() as cur:
            self._lock_space(cur)
            dims = self._column_dims(cur)
            if dims > 0:
                cur.execute("SELECT set_config('maintenance_work_mem', %s, true)", (self._build_memory,))
                self._fit_column(cur, dims)

    def reset(self) -> None:
        with _guarded("write"), self._cursor() as cur:
            self._lock_space(cur)
            cur.execute("TRUNCATE memories, history, messages, graph_outbox, graph_relations, graph_entities")
            self._forget_space(cur)
            self._unfit_column(cur)
        self._dimension = None

    def outbox_done(self, entry_id: int) -> None:
        with _guarded("write"), self._cursor() as cur:
            cur.execute("DELETE FROM graph_outbox WHERE id = %s", (entry_id,))

    def job_queue(self, *, max_attempts: int, base_delay: float, lease_seconds: float) -> jobs.PostgresJobQueue:
        return jobs.PostgresJobQueue(self._job_cursor, max_attempts=max_attempts, base_delay=base_delay,
                                     lease_seconds=lease_seconds)

    # ------------------------------------------------------------ reads

    def _where(self, node: F.Node) -> tuple[str, list[Any]]:
        params: list[Any] = []
        return self._filters.to_sql(node, params), params

    @_reads
    def get(self, ids: list[str], with_embeddings: bool = False) -> list[MemoryRecord]:
        cols = MEMORY_COLUMNS + (", embedding" if with_embeddings else "")
        with self._cursor(binary=with_embeddings) as cur:
            cur.execute(f"SELECT {cols} FROM memories WHERE id = ANY(%s::text[])", (list(ids),))
            return [_record(r, with_embeddings) for r in cur.fetchall()]

    @_reads
    def ids(self, where: F.Node) -> list[str]:
        sql, params = self._where(where)
        with self._cursor() as cur:
            cur.execute(f"SELECT id FROM memories WHERE {sql}", params)
            return [r[0] for r in cur.fetchall()]

    @_reads
    def vector_search(self, vector: np.ndarray, scope: Scope, where: F.Node, k: int) -> list[tuple[str, float]]:
        query = np.asarray(vector, dtype=np.float32).reshape(-1)
        sql, params = self._where(where)
        read_under = search_scope(scope)
        if read_under is not None:  # kind is a scope column name from scoped_terms, never caller text
            sql, params = f"{read_under[0]} = %s AND {sql}", [read_under[1]] + params
        with self._cursor() as cur:
            dims = self._dimension if self._dimension is not None else self._column_dims(cur)
            if dims > 0 and dims != query.shape[0]:
                raise ValidationError(f"query vector has {query.shape[0]} dimensions, the store holds {dims}")
            return search.vector(cur, query, read_under, sql, params, k)

    @_reads
    def keyword_search(self, terms: list[str], scope: Scope, where: F.Node, k: int) -> list[tuple[str, float]]:
        read_under = search_scope(scope)
        if read_under is None:  # every search is scoped (inputs.scoped_filter); a direct call may not be
            raise ValidationError("keyword_search needs a scope with a user_id, agent_id or run_id")
        sql, params = self._where(where)
        with self._cursor() as cur:
            lexemes = search.lexemes(cur, terms)
            if not lexemes:
                return []
            return search.keyword(cur, lexemes, read_under[0], read_under[1], sql, params, k)

    @_reads
    def graph_entities(self, scope: Scope, with_embeddings: bool = False) -> list[GraphEntity]:
        with self._cursor() as cur:
            return graph.entities(cur, scope, with_embeddings)

    @_reads
    def graph_relations(self, scope: Scope, as_of: Optional[str] = None, entity_ids: Optional[list[str]] = None,
                        hops: int = 1, ended: bool = False) -> list[GraphRelation]:
        with self._cursor(snapshot=True) as cur:
            return graph.relations(cur, scope, as_of, entity_ids, hops, ended)

    @_reads
    def outbox_pending(self) -> list[tuple[int, dict[str, Any]]]:
        with self._cursor() as cur:
            cur.execute("SELECT id, payload FROM graph_outbox ORDER BY id")
            return [(int(row[0]), row[1]) for row in cur.fetchall()]

    @_reads
    def entities(self) -> list[EntityRecord]:
        out: list[EntityRecord] = []
        with self._cursor(snapshot=True) as cur:  # the three kinds counted on the same rows
            for kind in ("user_id", "agent_id", "run_id"):  # constants
                cur.execute(f"SELECT {kind}, count(*), min(created_at), max(coalesce(updated_at, created_at)) "
                            f"FROM memories WHERE {kind} IS NOT NULL GROUP BY {kind} ORDER BY {kind}")
                out += [EntityRecord(kind, row[0], int(row[1]), row[2], row[3]) for row in cur.fetchall()]
        return out

    @_reads
    def history(self, memory_id: str) -> list[HistoryRecord]:
        with self._cursor() as cur:
            cur.execute(f"SELECT {HISTORY_COLUMNS} FROM history WHERE memory_id = %s ORDER BY pk",
                        (memory_id,))
            return [_history(r) for r in cur.fetchall()]

    @_reads
    def history_page(self, cursor: Optional[int], limit: int) -> tuple[list[HistoryRecord], Optional[int]]:
        with self._cursor() as cur:
            cur.execute(f"SELECT {HISTORY_COLUMNS}, pk FROM history WHERE pk > %s ORDER BY pk LIMIT %s",
                        (cursor or 0, limit))
            rows = cur.fetchall()
        return [_history(r[:-1]) for r in rows], (int(rows[-1][-1]) if len(rows) == limit else None)

    @_reads
    def list_messages(self, where: F.Node, limit: int, offset: int) -> tuple[list[MessageRecord], int]:
        sql, params = self._where(where)
        with self._cursor(snapshot=True) as cur:
            cur.execute(f"SELECT count(*) FROM messages WHERE {sql}", params)
            total = _scalar(cur)
            cur.execute(f"SELECT {MESSAGE_COLUMNS} FROM messages WHERE {sql} ORDER BY pk LIMIT %s OFFSET %s",
                        params + [limit, offset])
            return [_message(r) for r in cur.fetchall()], total

    @_reads
    def messages(self, ids: list[str]) -> list[MessageRecord]:
        with self._cursor() as cur:
            cur.execute(f"SELECT {MESSAGE_COLUMNS} FROM messages WHERE id = ANY(%s::text[]) ORDER BY pk",
                        (list(ids),))
            return [_message(r) for r in cur.fetchall()]

    # Last: below it, `list` in an annotation would name this method (for mypy).
    @_reads
    def list(self, where: F.Node, limit: int, offset: int,
             newest_first: bool = False) -> tuple[list[MemoryRecord], int]:
        sql, params = self._where(where)
        order = "created_at DESC, pk DESC" if newest_first else "created_at, pk"
        with self._cursor(snapshot=True) as cur:
            cur.execute(f"SELECT count(*) FROM memories WHERE {sql}", params)
            total = _scalar(cur)
            cur.execute(f"SELECT {MEMORY_COLUMNS} FROM memories WHERE {sql} ORDER BY {order} "
                        "LIMIT %s OFFSET %s", params + [limit, offset])
            return [_record(r) for r in cur.fetchall()], total


def _scalar(cur: Cursor[Any]) -> int:
    """The one integer the statement just run returned."""
    row = cur.fetchone()
    assert row is not None  # an aggregate or a catalog read of a table the migration created
    return int(row[0])


def _copy_memories(cur: Cursor[Any], records: list[MemoryRecord], rows: list[tuple]) -> None:
    """The inserts in one binary COPY (rows: as _memory_values gives them)."""
    with cur.copy(f"COPY memories ({INSERT_COLUMNS}) FROM STDIN (FORMAT BINARY)") as copy:
        copy.set_types(COPY_TYPES)
        for rec, row in zip(records, rows):
            copy.write_row(row[:3] + (rec.metadata,) + row[4:13] + (rec.source_message_ids,) + row[14:])


def _check_expected(cur: Cursor[Any], expected: dict[str, int]) -> None:
    """Compare-and-set: every memory the ChangeSet was planned against is still at that version. The rows
    are locked in id order (no deadlock between two writers) until the transaction ends."""
    if not expected:
        return
    cur.execute("SELECT id, version FROM memories WHERE id = ANY(%s::text[]) ORDER BY id FOR UPDATE",
                (sorted(expected),))
    found = {row[0]: row[1] for row in cur.fetchall()}
    stale = [memory_id for memory_id, version in expected.items() if found.get(memory_id) != version]
    if stale:
        raise ConflictError(f"{len(stale)} memor{'y' if len(stale) == 1 else 'ies'} changed or deleted by "
                            f"another call since this one read {'it' if len(stale) == 1 else 'them'}: "
                            f"{', '.join(stale[:5])}", ids=tuple(stale))
