"""`memlane doctor`: check a SQLite store's invariants, and mend the ones that can be derived.

check(path) reads the whole file in ONE read transaction (a WAL snapshot), so a process writing to it
meanwhile cannot make a consistent store look broken. It checks:

- vectors: every memory has one memory_vectors row per scope id it has, holding the float16 copy of its
  float32 embedding; no row points at a missing memory or a scope the memory no longer has; embeddings
  have the store's dimension and no NaN / infinity; `hash` is the md5 of the text;
- full-text index: the terms FTS5 holds for each memory are exactly those of its content (the keyed text of
  memories_fts_source). The content is tokenized again into a temporary FTS5 table with the same tokenizer
  and the two are compared term by term through fts5vocab, which names the memories that differ; FTS5's
  own 'integrity-check' (rank=1: against the external content) runs afterwards, in its own short
  transaction, because SQLite treats it as a write;
- history: every live memory's first event is an ADD (episodic turns too from schema 4 on; before, only
  the facts had one), each event's old_memory is the previous event's new_memory, a live memory's last
  event is not a DELETE and has its current text (and metadata, where the event records new_metadata); a
  memory that is gone ends with its one DELETE;
- provenance: every id in source_message_ids is a logged message;
- jobs: no queued, running or failed job whose messages already have memories (running it again would
  apply it twice), no done job without a result, and no text stored twice for the same source messages in
  one scope and memory type (what a job run twice leaves).

repair(path) mends what can be derived from what is stored, in one write transaction: the FTS index is
rebuilt, memory_vectors rows are recomputed from memories.embedding, hashes are recomputed, and a job
whose memories are already stored is marked done (with a result listing them) so it cannot run again.
The history chain, provenance and duplicates cannot be derived; they are reported, never changed. An
embedding with NaN is not derivable either: `memlane reindex` embeds every memory again.

Written against schema 3 and 4 (columns are looked up with PRAGMA table_info, never assumed).
"""
from __future__ import annotations

import json
import re
import sqlite3
import threading
from collections import Counter, defaultdict
from itertools import groupby
from pathlib import Path
from typing import Any, Iterator, Optional, Union

import numpy as np
from pydantic import BaseModel, Field

from ..errors import ConfigurationError
from ..models import text_hash
from .sqlite import SQLiteStore, _fold, _half
from .sqlite_migrations import table_columns
from .scoped_terms import keyed_text

# kind -> what it means (the CLI prints these; the tests name violations by kind)
KINDS = {
    "schema": "the file lacks a table or column this check needs",
    "vector_missing": "a memory lacks the memory_vectors row of one of its scopes",
    "vector_mismatch": "a memory_vectors row is not the float16 copy of the memory's embedding",
    "vector_orphan": "a memory_vectors row points at a missing memory or a scope the memory does not have",
    "vector_invalid": "an embedding has the wrong size or holds NaN / infinity",
    "hash_mismatch": "a memory's hash is not the md5 of its text",
    "row_malformed": "a memory's metadata or source_message_ids is not valid JSON of the right type",
    "fts_mismatch": "the full-text index's terms for a memory differ from its content",
    "fts_orphan": "the full-text index holds terms for a row that is not a memory (a deleted one)",
    "fts_integrity": "FTS5's integrity-check against the external content failed",
    "history_missing_add": "a live memory has no history, or its first event is not ADD",
    "history_chain": "an event's old_memory is not the previous event's new_memory (or a second ADD)",
    "history_stale": "a live memory's last event does not carry its current text or metadata",
    "history_live_deleted": "a live memory's history ends with DELETE",
    "history_missing_delete": "a memory that is gone has history that does not end with DELETE",
    "history_multiple_delete": "a memory has more than one DELETE",
    "history_after_delete": "a memory has events after its DELETE",
    "provenance_missing": "a memory's source_message_ids names a message that is not logged",
    "job_pending_applied": "a queued/running/failed job whose messages already have memories (would apply twice)",
    "job_done_without_result": "a done job has no result",
    "duplicate_memory": "the same text stored more than once for the same source messages, scope and type",
    "graph_dangling": "a graph relation's source or target entity is missing or of another scope",
    "graph_unsupported": "a graph relation names a memory that is gone, or none (deleting a memory removes "
                         "the relations only it supported)",
}
# What repair() mends; the rest is reported only.
DERIVABLE = frozenset({"vector_missing", "vector_mismatch", "vector_orphan", "hash_mismatch", "fts_mismatch",
                       "fts_orphan", "fts_integrity", "job_pending_applied"})
REQUIRED_TABLES = ("meta", "memories", "history", "messages", "memories_fts")
VECTOR_KINDS = frozenset({"vector_missing", "vector_mismatch", "vector_orphan"})
FTS_KINDS = frozenset({"fts_mismatch", "fts_orphan", "fts_integrity"})
# Above this many memories check() skips FTS5's integrity-check unless asked (it holds the write lock).
FTS_INTEGRITY_MAX_MEMORIES = 200_000
TEMP_FTS, TEMP_VOCAB_MAIN, TEMP_VOCAB_SHADOW = "memlane_doctor_fts", "memlane_doctor_vocab", "memlane_doctor_vocab2"


class NotAMemlaneDatabase(ConfigurationError):
    """The file is missing, is not SQLite, or is SQLite without memlane's tables."""


class Violation(BaseModel):
    kind: str
    ids: list[str] = Field(default_factory=list)  # memory / job / message ids involved (pk=N for a bare row)
    message: str


class Report(BaseModel):
    path: str
    schema_version: Optional[int] = None
    counts: dict[str, int] = Field(default_factory=dict)  # rows per table, jobs per status
    violation_counts: dict[str, int] = Field(default_factory=dict)  # per kind, including any left out below
    violations: list[Violation] = Field(default_factory=list)  # at most max_per_kind of each kind
    repaired: list[str] = Field(default_factory=list)  # what repair() changed
    notes: list[str] = Field(default_factory=list)  # checks skipped, and why
    before: Optional[dict[str, int]] = None  # repair(): the violation counts it started from

    @property
    def ok(self) -> bool:
        return not self.violation_counts

    @property
    def total(self) -> int:
        return sum(self.violation_counts.values())

    def of_kind(self, kind: str) -> list[Violation]:
        return [v for v in self.violations if v.kind == kind]

    def summary(self, per_kind: int = 5) -> str:
        """A short human report."""
        version = f"schema {self.schema_version}" if self.schema_version is not None else "schema ?"
        lines = [f"memlane doctor: {self.path} ({version})"]
        jobs = ", ".join(f"{k[5:]} {v}" for k, v in sorted(self.counts.items()) if k.startswith("jobs_"))
        lines.append("  " + ", ".join(f"{k} {self.counts[k]}" for k in
                                      ("memories", "memory_vectors", "fts_documents", "history", "messages", "jobs")
                                      if k in self.counts) + (f" ({jobs})" if jobs else ""))
        if self.before is not None:
            fixed = sum(self.before.values()) - self.total
            lines.append(f"  repair: {sum(self.before.values())} violation(s) found, "
                         f"{max(fixed, 0)} mended" + (": " + "; ".join(self.repaired) if self.repaired else ""))
        lines += [f"  note: {n}" for n in self.notes]
        if self.ok:
            lines.append("  ok: no violations")
            return "\n".join(lines)
        lines.append(f"  {self.total} violation(s):")
        for kind, count in sorted(self.violation_counts.items()):
            note = "" if kind in DERIVABLE else " (not derivable: reported only)"
            lines.append(f"  {kind} ({count}): {KINDS.get(kind, '')}{note}")
            shown = self.of_kind(kind)[:per_kind]
            for v in shown:
                lines.append(f"    - {v.message}")
            if count > len(shown):
                lines.append(f"    … and {count - len(shown)} more")
        return "\n".join(lines)


# ------------------------------------------------------------------ opening

def _probe(path: Path) -> None:
    """Refuse anything that is not a memlane database before the store's connection setup touches it (that
    setup turns WAL on, and opening the store proper would create tables)."""
    if not path.is_file():
        raise NotAMemlaneDatabase(f"cannot open {path} as a memlane database: no such file")
    try:  # a plain connection reads the schema without writing anything
        conn = sqlite3.connect(path, timeout=30)
        try:
            names = {r[0] for r in conn.execute("SELECT name FROM sqlite_master")}
        finally:
            conn.close()
    except sqlite3.Error as exc:
        raise NotAMemlaneDatabase(f"cannot open {path} as a memlane database: {exc}") from None
    missing = [t for t in REQUIRED_TABLES if t not in names]
    if missing:
        raise NotAMemlaneDatabase(f"cannot open {path} as a memlane database: no {', '.join(missing)} table")


def _connect(path: Path) -> sqlite3.Connection:
    """A connection set up as the store sets up its own (pragmas, memlane_keyed, memlane_half, ...), without
    running the store's schema script or migrations."""
    store = SQLiteStore.__new__(SQLiteStore)
    try:
        store.path, store._local, store._all, store._all_lock = path, threading.local(), [], threading.Lock()
        conn = store._conn()
    except (AttributeError, TypeError):  # the store's internals moved: register the same functions here
        conn = sqlite3.connect(path, timeout=30, isolation_level=None, check_same_thread=False)
        conn.execute("PRAGMA busy_timeout = 30000")
        conn.create_function("memlane_fold", 1, _fold, deterministic=True)
        conn.create_function("memlane_keyed", 4, keyed_text, deterministic=True)
        conn.create_function("memlane_half", 1, _half, deterministic=True)
    conn.create_function("memlane_doctor_hash", 1, lambda t: text_hash(t) if isinstance(t, str) else None,
                         deterministic=True)
    conn.create_function("memlane_doctor_bad_vector", 2, _bad_vector, deterministic=True)
    return conn


def _bad_vector(blob: Any, dims: Any) -> Optional[str]:
    """Why a stored float32 embedding is unusable, or None."""
    if not isinstance(blob, bytes) or len(blob) % 4:
        return f"{len(blob) if isinstance(blob, bytes) else type(blob).__name__} bytes, not float32"
    if dims is not None and len(blob) != 4 * int(dims):
        return f"{len(blob) // 4} dimensions, the store holds {dims}"
    if not np.isfinite(np.frombuffer(blob, dtype=np.float32)).all():
        return "holds NaN or infinity"
    return None


def _tables(conn: sqlite3.Connection) -> set[str]:
    return {r[0] for r in conn.execute("SELECT name FROM sqlite_master")}


# ------------------------------------------------------------------ check

class _Collector:
    def __init__(self, max_per_kind: int):
        self.max_per_kind = max_per_kind
        self.counts: Counter[str] = Counter()
        self.kept: list[Violation] = []

    def add(self, kind: str, ids: list[str], message: str) -> None:
        self.counts[kind] += 1
        if self.counts[kind] <= self.max_per_kind:
            self.kept.append(Violation(kind=kind, ids=[str(i) for i in ids], message=message))


def check(path: Union[str, Path], *, fts_integrity: Optional[bool] = None, max_per_kind: int = 1000) -> Report:
    """Check every invariant of the store at `path` (see the module docstring). Raises NotAMemlaneDatabase
    if the file cannot be opened as one. `max_per_kind` bounds the violations listed per kind (all are
    counted). fts_integrity: whether to run FTS5's own integrity-check, the one step that holds the write
    lock (~2 s per 50k memories here); None runs it up to FTS_INTEGRITY_MAX_MEMORIES memories, so writers
    never wait near their 30 s busy timeout (the term-by-term comparison always runs)."""
    path = Path(path)
    _probe(path)
    try:
        conn = _connect(path)
    except sqlite3.Error as exc:
        raise NotAMemlaneDatabase(f"cannot open {path} as a memlane database: {exc}") from None
    out = _Collector(max_per_kind)
    try:
        conn.execute("BEGIN")  # deferred: one WAL snapshot for every read below
        try:
            report = _check_snapshot(conn, path, out)
        finally:
            _drop_temp(conn)
            conn.execute("COMMIT")  # read-only: committing and rolling back are the same
        if fts_integrity is None:
            fts_integrity = report.counts.get("memories", 0) <= FTS_INTEGRITY_MAX_MEMORIES
            if not fts_integrity:
                report.notes.append(f"FTS5 integrity-check skipped ({report.counts['memories']} memories: it "
                                    "would hold the write lock too long); pass fts_integrity=True to run it")
        if fts_integrity and not (out.counts.keys() & FTS_KINDS) and "memories_fts" in _tables(conn):
            _fts_integrity(conn, out)
    except sqlite3.DatabaseError as exc:
        if isinstance(exc, sqlite3.OperationalError) and "locked" in str(exc):
            raise
        out.add("schema", [], f"reading the store failed: {exc}")
        report = Report(path=str(path))
    finally:
        conn.close()
    report.violation_counts = dict(sorted(out.counts.items()))
    report.violations = out.kept
    return report


def _check_snapshot(conn: sqlite3.Connection, path: Path, out: _Collector) -> Report:
    tables = _tables(conn)
    meta = dict(conn.execute("SELECT key, value FROM meta").fetchall())
    version = int(meta["schema_version"]) if str(meta.get("schema_version", "")).isdigit() else None
    dims = int(meta["embedding_dims"]) if str(meta.get("embedding_dims", "")).isdigit() else None
    counts: dict[str, int] = {t: conn.execute(f"SELECT count(*) FROM {t}").fetchone()[0]
              for t in ("memories", "memory_vectors", "history", "messages", "jobs") if t in tables}
    if "memories_fts_docsize" in tables:
        counts["fts_documents"] = conn.execute("SELECT count(*) FROM memories_fts_docsize").fetchone()[0]
    if "jobs" in tables:
        for status, n in conn.execute("SELECT status, count(*) FROM jobs GROUP BY status"):
            counts[f"jobs_{status}"] = n
    report = Report(path=str(path), schema_version=version, counts=counts)
    if "graph_outbox" in tables:  # changes written here that an external engine (vectors, graph) has not applied
        pending = conn.execute("SELECT count(*) FROM graph_outbox").fetchone()[0]
        report.counts["outbox_pending"] = pending
        if pending:
            report.notes.append(f"{pending} outbox entr{'y waits' if pending == 1 else 'ies wait'} for an external "
                                "engine (vector or graph): opening the store with that engine configured applies "
                                "them (a process running now may be applying them)")
    ids = dict(conn.execute("SELECT pk, id FROM memories").fetchall())
    _check_rows(conn, dims, out)
    if "memory_vectors" in tables:
        _check_vectors(conn, ids, out)
    else:
        out.add("schema", [], "no memory_vectors table (written by memlane before schema 3: open it with "
                              "memlane once to migrate)")
    _check_fts(conn, ids, out)
    _check_history(conn, version, out)
    _check_provenance(conn, out)
    if "jobs" in tables:
        _check_jobs(conn, out)
    _check_duplicates(conn, out)
    if "graph_relations" in tables:
        _check_graph(conn, out)
    return report


def _check_graph(conn: sqlite3.Connection, out: _Collector) -> None:
    """Each relation joins two entities of its own scope and is supported by memories that exist."""
    for rid, source, target in conn.execute(
            "SELECT r.id, r.source, r.target FROM graph_relations r WHERE "
            + " OR ".join(f"NOT EXISTS (SELECT 1 FROM graph_entities e WHERE e.id = r.{end} AND e.user_id IS "
                          "r.user_id AND e.agent_id IS r.agent_id AND e.run_id IS r.run_id)"
                          for end in ("source", "target"))):
        out.add("graph_dangling", [rid, source, target], f"relation {rid}: entity {source} or {target} is "
                                                         "missing or of another scope")
    for rid, memory_ids in conn.execute("SELECT id, memory_ids FROM graph_relations"):
        named = _json(memory_ids)
        if not isinstance(named, list) or not named:
            out.add("graph_unsupported", [rid], f"relation {rid}: no memory supports it")
            continue
        marks = ",".join("?" * len(named))
        present = {r[0] for r in conn.execute(f"SELECT id FROM memories WHERE id IN ({marks})",
                                              [str(m) for m in named])}
        gone = [str(m) for m in named if str(m) not in present]
        if gone:
            out.add("graph_unsupported", [rid, *gone], f"relation {rid}: memory {', '.join(gone)} is gone")


def _pk(ids: dict[int, str], pk: int) -> str:
    return ids.get(pk, f"pk={pk}")


def _check_rows(conn: sqlite3.Connection, dims: Optional[int], out: _Collector) -> None:
    for mid, why in conn.execute("SELECT id, memlane_doctor_bad_vector(embedding, ?) AS why FROM memories "
                                 "WHERE why IS NOT NULL", (dims,)):
        out.add("vector_invalid", [mid], f"memory {mid}: embedding {why}")
    for (mid,) in conn.execute("SELECT id FROM memories WHERE hash IS NOT memlane_doctor_hash(memory)"):
        out.add("hash_mismatch", [mid], f"memory {mid}: hash is not the md5 of its text")
    for mid, meta_ok, src_ok in conn.execute(
            "SELECT id, json_valid(metadata) AND json_type(metadata) = 'object', "
            "json_valid(source_message_ids) AND json_type(source_message_ids) = 'array' FROM memories "
            "WHERE NOT (json_valid(metadata) AND json_type(metadata) = 'object') "
            "OR NOT (json_valid(source_message_ids) AND json_type(source_message_ids) = 'array')"):
        what = " and ".join(w for w, good in (("metadata", meta_ok), ("source_message_ids", src_ok)) if not good)
        out.add("row_malformed", [mid], f"memory {mid}: {what} is not valid JSON of the right type")


EXPECTED_SCOPES = """
    SELECT 'user_id:' || user_id AS scope, pk FROM memories WHERE user_id IS NOT NULL
    UNION ALL SELECT 'agent_id:' || agent_id, pk FROM memories WHERE agent_id IS NOT NULL
    UNION ALL SELECT 'run_id:' || run_id, pk FROM memories WHERE run_id IS NOT NULL"""
# A memory_vectors row whose memory is gone, or that is keyed by a scope the memory does not have.
ORPHAN_VECTORS = """
    SELECT v.scope, v.pk FROM memory_vectors v LEFT JOIN memories m ON m.pk = v.pk
    WHERE m.pk IS NULL OR v.scope NOT IN (coalesce('user_id:' || m.user_id, ''),
        coalesce('agent_id:' || m.agent_id, ''), coalesce('run_id:' || m.run_id, ''))"""


def _check_vectors(conn: sqlite3.Connection, ids: dict[int, str], out: _Collector) -> None:
    for mid, scope, missing in conn.execute(
            f"WITH expected AS ({EXPECTED_SCOPES}) SELECT m.id, e.scope, v.pk IS NULL FROM expected e "
            "JOIN memories m ON m.pk = e.pk LEFT JOIN memory_vectors v ON v.scope = e.scope AND v.pk = e.pk "
            "WHERE v.pk IS NULL OR v.embedding IS NOT memlane_half(m.embedding)"):
        if missing:
            out.add("vector_missing", [mid], f"memory {mid} has no memory_vectors row for {scope}")
        else:
            out.add("vector_mismatch", [mid], f"memory {mid}: the {scope} row is not its embedding as float16")
    for scope, pk in conn.execute(ORPHAN_VECTORS):
        mid = _pk(ids, pk)
        why = "which has no such scope id" if pk in ids else "which does not exist"
        out.add("vector_orphan", [mid], f"memory_vectors row ({scope}, {mid}) points at memory {mid}, {why}")


def _fts_spec(conn: sqlite3.Connection) -> tuple[list[str], str]:
    """memories_fts' columns and its tokenize= option, read from the file (not assumed)."""
    sql = conn.execute("SELECT sql FROM sqlite_master WHERE name = 'memories_fts'").fetchone()[0]
    match = re.search(r"""tokenize\s*=\s*("(?:[^"]|"")*"|'(?:[^']|'')*')""", sql, re.IGNORECASE)
    columns = [r[1] for r in conn.execute("PRAGMA table_info(memories_fts)")]
    return columns, (f", tokenize={match.group(1)}" if match else "")


def _check_fts(conn: sqlite3.Connection, ids: dict[int, str], out: _Collector) -> None:
    """Tokenize the content again into a temporary FTS5 table (same tokenizer) and compare the two indexes
    term instance by term instance: temp objects need no lock on the main database, so this stays in the
    read snapshot, and it names the memories whose index entries differ."""
    columns, tokenize = _fts_spec(conn)
    cols = ", ".join(columns)
    conn.execute(f"CREATE VIRTUAL TABLE temp.{TEMP_FTS} USING fts5({cols}, content=''{tokenize})")
    conn.execute(f"INSERT INTO temp.{TEMP_FTS}(rowid, {cols}) SELECT pk, {cols} FROM main.memories_fts_source")
    conn.execute(f"CREATE VIRTUAL TABLE temp.{TEMP_VOCAB_MAIN} USING fts5vocab(main, memories_fts, instance)")
    conn.execute(f"CREATE VIRTUAL TABLE temp.{TEMP_VOCAB_SHADOW} USING fts5vocab(temp, {TEMP_FTS}, instance)")
    q = "SELECT term, doc, col, offset FROM temp.{}"
    extra = Counter(r[0] for r in conn.execute(
        f"SELECT doc FROM ({q.format(TEMP_VOCAB_MAIN)} EXCEPT {q.format(TEMP_VOCAB_SHADOW)})"))
    missing = Counter(r[0] for r in conn.execute(
        f"SELECT doc FROM ({q.format(TEMP_VOCAB_SHADOW)} EXCEPT {q.format(TEMP_VOCAB_MAIN)})"))
    for pk in sorted(extra.keys() | missing.keys()):
        mid = _pk(ids, pk)
        if pk not in ids:
            out.add("fts_orphan", [mid], f"the full-text index holds {extra[pk]} term(s) for {mid}, "
                                         "which is not a memory")
        else:
            out.add("fts_mismatch", [mid], f"memory {mid}: {missing[pk]} term(s) of its content missing from "
                                           f"the full-text index, {extra[pk]} there that it does not have")


def _drop_temp(conn: sqlite3.Connection) -> None:
    for name in (TEMP_VOCAB_SHADOW, TEMP_VOCAB_MAIN, TEMP_FTS):
        try:
            conn.execute(f"DROP TABLE IF EXISTS temp.{name}")
        except sqlite3.Error:
            pass


def _fts_integrity(conn: sqlite3.Connection, out: _Collector) -> None:
    """FTS5's own check of the index against the external content. SQLite runs it as a write, so it has
    its own short IMMEDIATE transaction (writers wait for it; it writes nothing and is rolled back)."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        conn.execute("INSERT INTO memories_fts(memories_fts, rank) VALUES ('integrity-check', 1)")
    except sqlite3.OperationalError as exc:
        if "locked" in str(exc) or "busy" in str(exc):
            raise
        out.add("fts_integrity", [], f"FTS5 integrity-check: {exc}")
    except sqlite3.DatabaseError as exc:  # SQLITE_CORRUPT_VTAB: "database disk image is malformed"
        out.add("fts_integrity", [], f"FTS5 integrity-check: {exc}")
    finally:
        conn.execute("ROLLBACK")


def _sorted_memories(conn: sqlite3.Connection) -> Iterator[tuple]:
    yield from conn.execute("SELECT id, memory, metadata, memory_type FROM memories ORDER BY id")


def _check_history(conn: sqlite3.Connection, version: Optional[int], out: _Collector) -> None:
    """Memories (by id) merged with their history (by memory_id, then order written), both streamed."""
    has_meta = "new_metadata" in table_columns(conn, "history")
    # Before schema 4 the episodic turns kept beside extracted facts were stored without an ADD event.
    episodic_need_add = version is not None and version >= 4
    cols = "memory_id, event, old_memory, new_memory" + (", new_metadata" if has_meta else ", NULL")
    history = groupby(conn.execute(f"SELECT {cols} FROM history ORDER BY memory_id, pk"), key=lambda r: r[0])
    memories = _sorted_memories(conn)
    mem = next(memories, None)
    hist = next(history, None)
    while mem is not None or hist is not None:
        if hist is None or (mem is not None and mem[0] < hist[0]):
            assert mem is not None  # the condition above
            if mem[3] != "episodic_memory" or episodic_need_add:
                out.add("history_missing_add", [mem[0]], f"memory {mem[0]} ({mem[3]}) has no history")
            mem = next(memories, None)
        elif mem is None or hist[0] < mem[0]:
            _check_events(hist[0], list(hist[1]), None, out)
            hist = next(history, None)
        else:
            _check_events(mem[0], list(hist[1]), mem, out)
            mem, hist = next(memories, None), next(history, None)


def _check_events(mid: str, events: list[tuple], live: Optional[tuple], out: _Collector) -> None:
    kinds = [e[1] for e in events]
    if kinds[0] != "ADD":
        out.add("history_missing_add", [mid], f"memory {mid}: first event is {kinds[0]}, not ADD")
    deletes = kinds.count("DELETE")
    if deletes > 1:
        out.add("history_multiple_delete", [mid], f"memory {mid} has {deletes} DELETE events")
    first_delete = kinds.index("DELETE") if deletes else len(kinds)
    if any(k != "DELETE" for k in kinds[first_delete + 1:]):
        out.add("history_after_delete", [mid], f"memory {mid} has {'/'.join(kinds[first_delete + 1:])} after "
                                               "its DELETE")
    for i in range(1, first_delete + 1 if deletes else len(events)):
        prev, event = events[i - 1], events[i]
        if event[1] == "ADD":
            out.add("history_chain", [mid], f"memory {mid}: event {i + 1} is a second ADD")
        elif event[2] != prev[3]:
            out.add("history_chain", [mid], f"memory {mid}: event {i + 1} ({event[1]}) starts from "
                                            f"{_clip(event[2])}, but event {i} left {_clip(prev[3])}")
    last = events[-1]
    if live is None:
        if last[1] != "DELETE" and not deletes:
            out.add("history_missing_delete", [mid], f"memory {mid} is gone but its history ends with {last[1]}")
        return
    if deletes:
        out.add("history_live_deleted", [mid], f"memory {mid} is live but its history has a DELETE")
    elif last[3] != live[1]:
        out.add("history_stale", [mid], f"memory {mid}: text is {_clip(live[1])}, its last event "
                                        f"({last[1]}) left {_clip(last[3])}")
    elif last[4] is not None and _json(last[4]) != _json(live[2]):
        out.add("history_stale", [mid], f"memory {mid}: metadata is {_clip(live[2])}, its last event "
                                        f"({last[1]}) left {_clip(last[4])}")


def _json(text: Any) -> Any:
    try:
        return json.loads(text)
    except (TypeError, ValueError):
        return text


def _clip(text: Any, n: int = 60) -> str:
    if text is None:
        return "nothing"
    text = str(text)
    return repr(text if len(text) <= n else text[:n - 1] + "…")


# Memories' source message ids, skipping rows whose column is not a JSON array (reported as row_malformed).
SOURCES = ("FROM memories m, json_each(CASE WHEN json_valid(m.source_message_ids) AND "
           "json_type(m.source_message_ids) = 'array' THEN m.source_message_ids ELSE '[]' END) s")


def _check_provenance(conn: sqlite3.Connection, out: _Collector) -> None:
    missing: dict[str, list[str]] = defaultdict(list)
    for mid, message_id in conn.execute(f"SELECT m.id, s.value {SOURCES} WHERE NOT EXISTS "
                                        "(SELECT 1 FROM messages g WHERE g.id = s.value)"):
        missing[mid].append(str(message_id))
    for mid, gone in missing.items():
        out.add("provenance_missing", [mid, *gone], f"memory {mid}: source message(s) {', '.join(gone)} "
                                                    "not in the message log")


def applied(conn: sqlite3.Connection, message_ids: list[str]) -> dict[str, list[str]]:
    """message id -> ids of the memories that carry it in source_message_ids (one pass over memories)."""
    found: dict[str, list[str]] = defaultdict(list)
    if message_ids:
        for mid, message_id in conn.execute(f"SELECT m.id, s.value {SOURCES} WHERE s.value IN "
                                            "(SELECT value FROM json_each(?))", (json.dumps(message_ids),)):
            found[message_id].append(mid)
    return found


def _job_message_ids(payload: Any) -> list[str]:
    try:
        ids = json.loads(payload).get("message_ids") or []
    except (TypeError, ValueError, AttributeError):
        return []
    return [i for i in ids if isinstance(i, str)]


def _unsettled_jobs(conn: sqlite3.Connection) -> tuple[dict[str, tuple[str, list[str]]], dict[str, list[str]]]:
    """Jobs not done (queued / running / failed) whose messages already have memories:
    job id -> (status, memory ids), and the message -> memories map it came from."""
    jobs = {jid: (status, _job_message_ids(payload)) for jid, status, payload in conn.execute(
        "SELECT id, status, payload FROM jobs WHERE status IN ('queued', 'running', 'failed')")}
    found = applied(conn, sorted({m for _, ids in jobs.values() for m in ids}))
    hit = {}
    for jid, (status, message_ids) in jobs.items():
        memories = sorted({mem for m in message_ids for mem in found.get(m, [])})
        if memories:
            hit[jid] = (status, memories)
    return hit, found


def _check_jobs(conn: sqlite3.Connection, out: _Collector) -> None:
    hit, _ = _unsettled_jobs(conn)
    for jid, (status, memories) in hit.items():
        out.add("job_pending_applied", [jid, *memories],
                f"job {jid} is {status}, but {len(memories)} memorie(s) already carry its messages "
                f"({', '.join(memories[:3])}{'…' if len(memories) > 3 else ''})")
    for (jid,) in conn.execute("SELECT id FROM jobs WHERE status = 'done' AND result IS NULL"):
        out.add("job_done_without_result", [jid], f"job {jid} is done but has no result")


def _check_duplicates(conn: sqlite3.Connection, out: _Collector) -> None:
    for text, sources, memory_type, n, group in conn.execute(
            "SELECT memory, source_message_ids, memory_type, count(*), json_group_array(id) FROM memories "
            "WHERE source_message_ids NOT IN ('[]', '') GROUP BY memory, source_message_ids, user_id, agent_id, "
            "run_id, memory_type HAVING count(*) > 1"):
        mids = sorted(json.loads(group))
        out.add("duplicate_memory", mids, f"{n} {memory_type} memories {', '.join(mids)} hold {_clip(text)} "
                                          f"from the same source messages {sources}")


# ------------------------------------------------------------------ repair

def repair(path: Union[str, Path], *, max_per_kind: int = 1000) -> Report:
    """Mend what can be derived (see the module docstring) in one write transaction, then check again.
    The returned report is the check after repair; `before` holds the counts found first and `repaired`
    says what was changed."""
    path = Path(path)
    before = check(path, max_per_kind=max_per_kind)
    kinds = set(before.violation_counts)
    done: list[str] = []
    if kinds & DERIVABLE:
        conn = _connect(path)
        try:
            conn.execute("BEGIN IMMEDIATE")
            try:
                done = _repair(conn, kinds)
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise
        finally:
            conn.close()
    after = check(path, max_per_kind=max_per_kind)
    after.before = before.violation_counts
    after.repaired = done
    return after


def _repair(conn: sqlite3.Connection, kinds: set[str]) -> list[str]:
    done = []
    tables = _tables(conn)
    if kinds & VECTOR_KINDS and "memory_vectors" in tables:
        gone = conn.execute(f"DELETE FROM memory_vectors WHERE (scope, pk) IN ({ORPHAN_VECTORS})").rowcount
        stale = conn.execute("DELETE FROM memory_vectors WHERE embedding IS NOT (SELECT memlane_half(m.embedding) "
                             "FROM memories m WHERE m.pk = memory_vectors.pk)").rowcount
        added = conn.execute(f"INSERT OR IGNORE INTO memory_vectors (scope, pk, embedding) SELECT e.scope, e.pk, "
                             f"memlane_half(m.embedding) FROM ({EXPECTED_SCOPES}) e JOIN memories m ON m.pk = e.pk"
                             ).rowcount
        done.append(f"memory_vectors: {gone} orphan row(s) removed, {stale} recomputed, "
                    f"{added - stale} missing row(s) added")
    if "hash_mismatch" in kinds:
        n = conn.execute("UPDATE memories SET hash = memlane_doctor_hash(memory) "
                         "WHERE hash IS NOT memlane_doctor_hash(memory)").rowcount
        done.append(f"hash: {n} recomputed")
    if kinds & FTS_KINDS:
        conn.execute("INSERT INTO memories_fts(memories_fts) VALUES ('rebuild')")
        done.append("full-text index rebuilt from the memories")
    if "job_pending_applied" in kinds and "jobs" in tables:
        hit, _ = _unsettled_jobs(conn)  # again, inside the write transaction
        rows = {r[0]: r[1:] for r in conn.execute(
            "SELECT id, memory, memory_type FROM memories WHERE id IN (SELECT value FROM json_each(?))",
            (json.dumps(sorted({m for _, mems in hit.values() for m in mems})),))}
        for jid, (_status, memories) in hit.items():
            result = {"results": [{"id": m, "memory": rows[m][0], "event": "ADD"} for m in memories
                                  if m in rows and rows[m][1] != "episodic_memory"],
                      "relations": [], "repaired_by": "memlane doctor"}
            conn.execute("UPDATE jobs SET status = 'done', result = ?, last_error = NULL, updated_at = "
                         "strftime('%Y-%m-%dT%H:%M:%fZ', 'now') WHERE id = ?", (json.dumps(result), jid))
        if hit:
            done.append(f"jobs: {len(hit)} already applied marked done ({', '.join(sorted(hit))})")
    return done


def exit_code(report: Report) -> int:
    """The CLI's status: 0 without violations, 1 with some."""
    return 0 if report.ok else 1


__all__ = ["KINDS", "DERIVABLE", "NotAMemlaneDatabase", "Report", "Violation", "check", "repair", "applied"]
