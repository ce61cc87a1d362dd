#!/usr/bin/env python3
"""Why the SQLite store keeps a float16 vector copy clustered by scope (memory_vectors).

    python bench/vector_layout.py [--rows 1000000] [--scopes 1000] [--out bench/results/vector_layout.json]
                                  [--drop-caches]

Builds one SQLite file with N random 384-d vectors whose rows arrive interleaved across S scopes (as
tenants' writes do), stored three ways, and times reading one scope's vectors (SELECT + fetchall):

  row_float32        in the memories-like table (text, context, float32 BLOB), found by an index on the
                     scope column: one row per page, scattered over the file
  clustered_float32  a WITHOUT ROWID table keyed by (scope, pk), float32 BLOB: too big for an index page,
                     so every vector spills to its own overflow page
  clustered_float16  the same with float16 (768 bytes, stored inside the index pages): what memlane reads

For each layout, 100 random scopes are read twice: "first" (pages never read by this process; whatever the
OS page cache still holds after the build) and "repeat" (the same scopes again). With --drop-caches (root
only) the OS page cache is dropped before each layout's first pass, so "first" reads from disk. The file
is deleted afterwards.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import random
import sqlite3
import subprocess
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
DIM = 384
LAYOUTS = {
    "row_float32": "SELECT pk, embedding FROM memories WHERE user_id = ?",
    "clustered_float32": "SELECT pk, embedding FROM vec32 WHERE scope = ?",
    "clustered_float16": "SELECT pk, embedding FROM vec16 WHERE scope = ?",
}


def build(path: Path, rows: int, scopes: int) -> float:
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("PRAGMA synchronous = NORMAL")
    conn.execute("CREATE TABLE memories (pk INTEGER PRIMARY KEY, id TEXT UNIQUE, memory TEXT, user_id TEXT, "
                 "context TEXT, embedding BLOB)")
    conn.execute("CREATE INDEX memories_user ON memories(user_id)")
    for name in ("vec16", "vec32"):
        conn.execute(f"CREATE TABLE {name} (scope TEXT NOT NULL, pk INTEGER NOT NULL, embedding BLOB NOT NULL, "
                     "PRIMARY KEY (scope, pk)) WITHOUT ROWID")
    rng = np.random.default_rng(0)
    text = "a LOCOMO-sized turn of about one hundred and twenty characters, " * 2
    start = time.perf_counter()
    chunk = 10_000
    for lo in range(0, rows, chunk):
        n = min(chunk, rows - lo)
        vecs = rng.standard_normal((n, DIM)).astype(np.float32)
        vecs /= np.linalg.norm(vecs, axis=1, keepdims=True)
        batch = [(lo + i + 1, f"id{lo + i}", text, f"u{(lo + i) % scopes}", text, vecs[i].tobytes())
                 for i in range(n)]
        conn.execute("BEGIN")
        conn.executemany("INSERT INTO memories VALUES (?,?,?,?,?,?)", batch)
        conn.executemany("INSERT INTO vec16 VALUES (?,?,?)",
                         [(f"user_id:{b[3]}", b[0], vecs[i].astype(np.float16).tobytes()) for i, b in enumerate(batch)])
        conn.executemany("INSERT INTO vec32 VALUES (?,?,?)",
                         [(f"user_id:{b[3]}", b[0], b[5]) for b in batch])
        conn.execute("COMMIT")
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()
    return time.perf_counter() - start


def drop_caches() -> bool:
    try:
        subprocess.run(["sync"], check=True)
        Path("/proc/sys/vm/drop_caches").write_text("3\n")
        return True
    except OSError:
        return False


def percentiles(values: list[float]) -> dict[str, float]:
    p50, p95 = np.percentile(values, [50, 95])
    return {"p50_ms": round(float(p50), 2), "p95_ms": round(float(p95), 2), "mean_ms": round(float(np.mean(values)), 2)}


def measure(path: Path, layout: str, scopes: int, seed: int, drop: bool) -> dict:
    dropped = drop_caches() if drop else False
    conn = sqlite3.connect(path)
    sql = LAYOUTS[layout]
    picked = random.Random(seed).sample(range(scopes), min(100, scopes))
    key = (lambda s: f"u{s}") if layout == "row_float32" else (lambda s: f"user_id:u{s}")
    out = {"os_cache_dropped_before_first": dropped}
    for label in ("first", "repeat"):
        lat, counts = [], []
        for s in picked:
            t = time.perf_counter()
            rows = conn.execute(sql, (key(s),)).fetchall()
            lat.append(1000 * (time.perf_counter() - t))
            counts.append(len(rows))
        out[label] = percentiles(lat)
    out["rows_per_scope"] = int(np.median(counts))
    conn.close()
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--scopes", type=int, default=1000)
    ap.add_argument("--drop-caches", action="store_true")
    ap.add_argument("--out", default=str(ROOT / "bench" / "results" / "vector_layout.json"))
    ap.add_argument("--workdir", default=str(ROOT / "bench" / "results" / "tmp"))
    args = ap.parse_args()
    Path(args.workdir).mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=args.workdir, prefix="layout-") as tmp:
        path = Path(tmp) / "layout.db"
        print(f"building {args.rows:,} rows over {args.scopes:,} scopes ...", flush=True)
        build_s = build(path, args.rows, args.scopes)
        size_mib = round(path.stat().st_size / 2 ** 20, 1)
        results = {}
        for i, layout in enumerate(LAYOUTS):
            results[layout] = measure(path, layout, args.scopes, seed=i, drop=args.drop_caches)
            print(layout, results[layout], flush=True)
    report = {
        "benchmark": "bench/vector_layout.py",
        "command": "python bench/vector_layout.py" + (" --drop-caches" if args.drop_caches else ""),
        "started_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "rows": args.rows, "scopes": args.scopes, "dimension": DIM, "file_mib": size_mib,
        "build_seconds": round(build_s, 1),
        "hardware": {"cores": os.cpu_count(), "platform": platform.platform(), "python": platform.python_version(),
                     "sqlite": sqlite3.sqlite_version},
        "note": "one scope's vectors read with SELECT ... fetchall; 100 random scopes, first pass then the same "
                "scopes again; each layout uses a different random sample of scopes",
        "layouts": results,
    }
    Path(args.out).write_text(json.dumps(report, indent=1) + "\n")
    print("wrote", args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
