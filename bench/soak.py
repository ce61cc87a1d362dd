#!/usr/bin/env python3
"""Soak test of the embedded store: many processes and threads on one SQLite file, then kill -9s.

    MEMLANE_LLM=none python bench/soak.py [--processes 4] [--threads 8] [--seconds 60] [--kills 200]
                                        [--parallel 2] [--db FILE] [--out bench/results/soak.json] [--seed N]

(a) Mixed load: --processes worker processes with --threads threads each share one database file for
--seconds, each thread mixing add (verbatim, infer=False; some background=True), update (text, or
metadata only), delete, search and get_all on a small pool of shared scopes, so processes touch the same
memories. Every worker keeps a ledger (JSON lines, flushed per line): what each write was asked to do
(an intent line before an update or delete) and what it returned or raised, with its latency. After the
run, queued jobs are drained by a fresh Memory and the ledgers are checked against the store:

  - every acknowledged add's memories exist, unless an acknowledged delete removed them;
  - no memory was inserted twice (no message id carried by two memories);
  - every acknowledged update is in history as an UPDATE with the text sent (metadata: with the metadata
    sent where history records it, else by count: UPDATE rows >= acknowledged updates);
  - a memory removed by an acknowledged delete is gone and has exactly one DELETE (a delete that raised
    NotFoundError is fine);
  - every background job is done, and its memories are stored once (exactly once);
  - `memlane doctor` (memlane.stores.sqlite_doctor.check) reports no violations;
  - no exception other than a MemlaneError was raised (typed errors are counted by type), and no
    InternalError either (memlane's wrapper for an unexpected exception: a bug by its own account).

(b) Crash run: --kills SIGKILLs at random moments of victim processes (--parallel at a time, on a
second file): "writer" victims run the mixed load; "jobs" victims enqueue background adds while their
worker thread runs them, so most kills land while a job runs (and a victim's fresh Memory resumes the
jobs its killed predecessors left). About one kill in seven lands during start-up. After each kill the
doctor checks the file while the other victims keep writing (0 violations expected); at the end a fresh
Memory drains the queue and the same ledger checks run, where an update or delete whose process died
before it was acknowledged may or may not have happened.

Results (ops/s, p50/p95 latency per operation, errors by type, every failed check with examples) go to
--out as JSON; the exit status is 0 when nothing failed. tests/test_soak.py runs a bounded version.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import random
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
import traceback
from collections import Counter, defaultdict, deque
from pathlib import Path
from typing import Any, Optional

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))  # run from a checkout without installing

USERS = [f"user-{i}" for i in range(6)]
AGENTS = ["agent-a", "agent-b"]
WORDS = ("coffee tea lisbon porto cello violin garden cat dog hiking surfing paris train bicycle novel "
         "recipe pasta curry marathon guitar painting sister brother meeting dentist holiday museum "
         "concert winter summer rain beach mountain river kitchen office project deadline").split()
LOAD_MIX = {"add": 25, "add_bg": 8, "update_text": 14, "update_meta": 10, "delete": 8, "search": 20,
            "get_all": 15}
JOBS_MIX = {"add": 10, "add_bg": 60, "update_text": 8, "update_meta": 5, "delete": 5, "search": 7, "get_all": 5}
WRITES = ("add", "add_bg", "update_text", "update_meta", "delete")


def config(db: Path) -> dict[str, Any]:
    return {"vector_store": {"provider": "sqlite", "config": {"path": str(db)}}, "llm": {"provider": "none"}}


def open_memory(db: Path):
    os.environ["MEMLANE_LLM"] = "none"
    from memlane import Memory
    return Memory.from_config(config(db))


# ------------------------------------------------------------------ worker processes

class Ledger:
    """JSON lines, one write + flush per record, so a record written before a SIGKILL survives it."""

    def __init__(self, path: Path):
        self._file = open(path, "a", buffering=1, encoding="utf-8")
        self._lock = threading.Lock()

    def write(self, record: dict[str, Any]) -> None:
        line = json.dumps(record, ensure_ascii=False) + "\n"
        with self._lock:
            self._file.write(line)
            self._file.flush()

    def close(self) -> None:
        self._file.close()


class Actor:
    """One thread's random operations on a shared Memory, each logged to the ledger."""

    def __init__(self, memory, ledger: Ledger, tag: str, mix: dict[str, int], seen: deque, rng: random.Random):
        self.m, self.ledger, self.tag, self.seen, self.rng = memory, ledger, tag, seen, rng
        self.ops, self.weights = list(mix), list(mix.values())
        self.n = 0
        self.pace_jobs = False

    def sentence(self) -> str:
        return " ".join(self.rng.choice(WORDS) for _ in range(self.rng.randint(3, 8)))

    def scope(self) -> dict[str, str]:
        scope = {"user_id": self.rng.choice(USERS)}
        if self.rng.random() < 0.3:
            scope["agent_id"] = self.rng.choice(AGENTS)
        return scope

    def target(self) -> Optional[str]:
        return self.rng.choice(self.seen) if self.seen else None

    def step(self) -> None:
        op = self.rng.choices(self.ops, self.weights)[0]
        self.n += 1
        getattr(self, f"do_{op}")(op)

    def call(self, op: str, fn, record: dict[str, Any]) -> Any:
        import memlane
        start = time.time()
        t0 = time.perf_counter()
        try:
            out = fn()
        except memlane.MemlaneError as exc:
            record.update(op=op, ok=False, error=type(exc).__name__, message=str(exc)[:300], t=start,
                          lat=time.perf_counter() - t0)
            internal = getattr(memlane, "InternalError", None)
            if internal is not None and isinstance(exc, internal):  # typed, but by its own account a bug
                record.update(untyped=True, traceback="".join(traceback.format_exception(exc))[-3000:])
            self.ledger.write(record)
            return None
        except Exception as exc:  # a failure of the run: any exception memlane did not type
            record.update(op=op, ok=False, error=type(exc).__name__, untyped=True, message=str(exc)[:300],
                          traceback=traceback.format_exc()[-2000:], t=start, lat=time.perf_counter() - t0)
            self.ledger.write(record)
            return None
        record.update(op=op, ok=True, t=start, lat=time.perf_counter() - t0)
        return out

    def do_add(self, op: str) -> None:
        scope = self.scope()
        texts = [f"{self.tag} n{self.n}.{i}: {self.sentence()}" for i in range(self.rng.randint(1, 3))]
        msgs = [{"role": self.rng.choice(("user", "assistant")), "content": t} for t in texts]
        record: dict[str, Any] = {"scope": scope, "texts": texts}
        out = self.call(op, lambda: self.m.add(msgs, infer=False, metadata={"by": self.tag}, **scope), record)
        if out is not None:
            record["ids"] = [r["id"] for r in out["results"]]
            record["memories"] = [r["memory"] for r in out["results"]]
            self.seen.extend(record["ids"])
        self.ledger.write(record)

    def do_add_bg(self, op: str) -> None:
        scope = self.scope()
        texts = [f"{self.tag} n{self.n}.{i} (bg): {self.sentence()}" for i in range(self.rng.randint(1, 3))]
        msgs = [{"role": "user", "content": t} for t in texts]
        record: dict[str, Any] = {"scope": scope, "texts": texts}
        out = self.call(op, lambda: self.m.add(msgs, infer=False, background=True, **scope), record)
        if out is not None:
            record["job_id"] = out["job_id"]
        self.ledger.write(record)
        if out is not None and self.pace_jobs:  # let the worker keep up, so the queue stays short
            self.m.wait(out["job_id"], timeout=self.rng.uniform(0.0, 0.6))

    def _intent(self, op: str, record: dict[str, Any]) -> None:
        self.ledger.write({**record, "op": op, "intent": True})

    def do_update_text(self, op: str) -> None:
        mid = self.target()
        if mid is None:
            return self.do_add("add")
        record = {"id": mid, "text": f"{self.tag} n{self.n} edit: {self.sentence()}"}
        self._intent(op, record)
        self.call(op, lambda: self.m.update(mid, record["text"]), record)
        self.ledger.write(record)

    def do_update_meta(self, op: str) -> None:
        mid = self.target()
        if mid is None:
            return self.do_add("add")
        record = {"id": mid, "metadata": {"by": self.tag, "n": self.n, "tag": self.rng.choice(WORDS)}}
        self._intent(op, record)
        self.call(op, lambda: self.m.update(mid, metadata=record["metadata"]), record)
        self.ledger.write(record)

    def do_delete(self, op: str) -> None:
        mid = self.target()
        if mid is None:
            return self.do_add("add")
        record = {"id": mid}
        self._intent(op, record)
        self.call(op, lambda: self.m.delete(mid), record)
        self.ledger.write(record)

    def do_search(self, op: str) -> None:
        scope = self.scope()
        record: dict[str, Any] = {}
        out = self.call(op, lambda: self.m.search(self.sentence(), limit=10, **scope), record)
        if out is not None:
            self.seen.extend(r["id"] for r in out["results"][:3])
        self.ledger.write(record)

    def do_get_all(self, op: str) -> None:
        scope = self.scope()
        record: dict[str, Any] = {}
        out = self.call(op, lambda: self.m.get_all(limit=30, **scope), record)
        if out is not None:
            self.seen.extend(r["id"] for r in self.rng.sample(out["results"], min(3, len(out["results"]))))
        self.ledger.write(record)


def worker_main(args: argparse.Namespace) -> int:
    """A worker process: one Memory shared by --threads threads running Actors until --seconds after the
    go file appears (load), or until killed / told to stop (crash victims)."""
    ledger = Ledger(Path(args.ledger))
    mix = JOBS_MIX if args.role == "jobs" else LOAD_MIX
    seed = args.seed
    m = open_memory(Path(args.db))
    Path(args.ready).touch()
    if args.go:
        while not Path(args.go).exists():
            time.sleep(0.01)
    deadline = time.monotonic() + args.seconds if args.seconds else None
    stop_file = Path(args.stop) if args.stop else None
    seen: deque = deque(maxlen=300)

    def run(t: int) -> None:
        actor = Actor(m, ledger, f"{args.tag}t{t}", mix, seen, random.Random(f"{seed}-{args.tag}-{t}"))
        actor.pace_jobs = args.role == "jobs"
        while True:
            if deadline is not None and time.monotonic() >= deadline:
                return
            if stop_file is not None and actor.n % 5 == 0 and stop_file.exists():
                return
            try:
                actor.step()
            except Exception:  # an error in the harness itself: record it and keep going
                ledger.write({"op": "harness", "ok": False, "untyped": True, "error": "harness",
                              "traceback": traceback.format_exc()[-2000:]})

    threads = [threading.Thread(target=run, args=(t,)) for t in range(args.threads)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    m.close()
    ledger.close()
    return 0


def spawn(role: str, db: Path, work: Path, tag: str, threads: int, seed: int, *, seconds: float = 0,
          go: Optional[Path] = None, stop: Optional[Path] = None) -> tuple[subprocess.Popen, Path, Path]:
    ledger, ready = work / f"ledger-{tag}.jsonl", work / f"ready-{tag}"
    cmd = [sys.executable, str(Path(__file__).resolve()), "--role", role, "--db", str(db), "--ledger", str(ledger),
           "--ready", str(ready), "--tag", tag, "--threads", str(threads), "--seconds", str(seconds),
           "--seed", str(seed)]
    if go:
        cmd += ["--go", str(go)]
    if stop:
        cmd += ["--stop", str(stop)]
    env = {**os.environ, "MEMLANE_LLM": "none"}
    err = open(work / f"stderr-{tag}.txt", "w")
    proc = subprocess.Popen(cmd, stdout=err, stderr=subprocess.STDOUT, env=env)
    err.close()
    return proc, ledger, ready


# ------------------------------------------------------------------ reading the outcome

def read_ledgers(work: Path) -> list[dict[str, Any]]:
    records = []
    for path in sorted(work.glob("ledger-*.jsonl")):
        proc = path.stem[len("ledger-"):]
        for line in path.read_text(encoding="utf-8").splitlines():
            try:
                record = json.loads(line)
            except ValueError:  # a line cut by SIGKILL mid-write (never acknowledged)
                continue
            record["proc"] = proc
            records.append(record)
    return records


def drain_jobs(db: Path, timeout: float) -> dict[str, Any]:
    """Open a fresh Memory (it resumes queued jobs) and wait until no job is queued or running."""
    m = open_memory(db)
    start = time.monotonic()
    try:
        worker = getattr(m, "_worker", None)  # started at open when jobs were pending; make sure
        if worker is not None:
            worker.start()
        while True:
            with _connect_plain(db) as conn:
                pending = conn.execute("SELECT count(*) FROM jobs WHERE status IN ('queued', 'running')").fetchone()[0]
            if pending == 0 or time.monotonic() - start > timeout:
                break
            time.sleep(0.2)
    finally:
        m.close()
    return {"pending_left": pending, "seconds": round(time.monotonic() - start, 2)}


class _connect_plain:
    def __init__(self, db: Path):
        self.conn = sqlite3.connect(db, timeout=60)

    def __enter__(self) -> sqlite3.Connection:
        return self.conn

    def __exit__(self, *exc: Any) -> None:
        self.conn.close()


class Failures:
    def __init__(self) -> None:
        self.counts: Counter[str] = Counter()
        self.examples: dict[str, list[Any]] = defaultdict(list)

    def add(self, kind: str, example: Any) -> None:
        self.counts[kind] += 1
        if len(self.examples[kind]) < 5:
            self.examples[kind].append(example)

    def as_dict(self) -> dict[str, Any]:
        return {k: {"count": n, "examples": self.examples[k]} for k, n in sorted(self.counts.items())}


def check_outcome(db: Path, records: list[dict[str, Any]], crashed: bool) -> dict[str, Any]:
    """The ledgers against the store. crashed: some processes were killed, so an intent without its
    acknowledgement may or may not have been applied."""
    from memlane.stores import sqlite_doctor
    fail, info = Failures(), Counter()
    with _connect_plain(db) as conn:
        live = {r[0]: r[1:] for r in conn.execute("SELECT id, memory, metadata, source_message_ids FROM memories")}
        hist_cols = {r[1] for r in conn.execute("PRAGMA table_info(history)")}
        meta_col = "new_metadata" if "new_metadata" in hist_cols else "NULL"
        history: dict[str, list[tuple]] = defaultdict(list)
        for mid, event, new, new_meta in conn.execute(
                f"SELECT memory_id, event, new_memory, {meta_col} FROM history ORDER BY pk"):
            history[mid].append((event, new, new_meta))
        jobs = {r[0]: r[1:] for r in conn.execute("SELECT id, status, payload, result, last_error FROM jobs")}

    acked = [r for r in records if r.get("ok") and not r.get("intent")]
    ended = {(r["proc"], r["op"], r.get("id")) for r in records if not r.get("intent") and "ok" in r}
    for r in records:
        if r.get("untyped"):
            fail.add("untyped_error", {k: r.get(k) for k in ("op", "error", "message", "traceback")})

    deleted_ok = Counter(r["id"] for r in acked if r["op"] == "delete")
    delete_tried = {r["id"] for r in records if r["op"] == "delete" and r.get("intent")}
    unacked_delete = {r["id"] for r in records if r["op"] == "delete" and r.get("intent")
                      and (r["proc"], "delete", r["id"]) not in ended}

    def deletes(mid: str) -> int:
        return sum(1 for e in history.get(mid, []) if e[0] == "DELETE")

    # every acknowledged add's memories exist unless a delete removed them
    added = [(mid, text) for r in acked if r["op"] == "add" for mid, text in zip(r["ids"], r["memories"])]
    for mid, text in added:
        if mid in live:
            continue
        if mid in deleted_ok or (crashed and mid in unacked_delete and deletes(mid)):
            continue
        fail.add("lost_add", {"id": mid, "memory": text, "delete_tried": mid in delete_tried,
                              "history": [e[0] for e in history.get(mid, [])]})
    # a memory removed by an acknowledged delete is gone, with exactly one DELETE
    for mid, n in deleted_ok.items():
        if mid in live:
            fail.add("deleted_but_present", {"id": mid})
        if deletes(mid) != 1:
            fail.add("delete_history", {"id": mid, "deletes": deletes(mid), "acknowledged_deletes": n})
        if n > 1:
            info["delete_acknowledged_more_than_once"] += 1
    for mid in history:  # also deletes nobody saw acknowledged (killed callers)
        if mid not in deleted_ok and deletes(mid) > 1:
            fail.add("delete_history", {"id": mid, "deletes": deletes(mid), "acknowledged_deletes": 0})
    # no memory inserted twice
    carriers: dict[str, list[str]] = defaultdict(list)
    for mid, (_, _, sources) in live.items():
        for source in json.loads(sources):
            carriers[source].append(mid)
    for source, mids in carriers.items():
        if len(mids) > 1:
            fail.add("duplicate_insert", {"message_id": source, "memories": mids,
                                          "texts": sorted({live[m][0] for m in mids})})
    # every acknowledged update is in history
    updates_ok: Counter[str] = Counter()
    updates_tried: Counter[str] = Counter()
    for r in records:
        if r["op"] in ("update_text", "update_meta"):
            (updates_tried if r.get("intent") else updates_ok if r.get("ok") else Counter())[r["id"]] += 1
    for r in acked:
        if r["op"] == "update_text":
            if not any(e[0] == "UPDATE" and e[1] == r["text"] for e in history.get(r["id"], [])):
                fail.add("update_missing_from_history", {"id": r["id"], "text": r["text"]})
        elif r["op"] == "update_meta" and meta_col != "NULL":
            if not any(e[0] == "UPDATE" and e[2] is not None and json.loads(e[2]) == r["metadata"]
                       for e in history.get(r["id"], [])):
                fail.add("update_missing_from_history", {"id": r["id"], "metadata": r["metadata"]})
    for mid, n in updates_ok.items():
        rows = sum(1 for e in history.get(mid, []) if e[0] == "UPDATE")
        if rows < n or rows > updates_tried[mid]:
            fail.add("update_count", {"id": mid, "update_rows": rows, "acknowledged": n,
                                      "attempted": updates_tried[mid]})
    # background jobs: all done, each stored exactly once
    acked_jobs = {r["job_id"] for r in acked if r["op"] == "add_bg"}
    for jid in acked_jobs - jobs.keys():
        fail.add("job_lost", {"job_id": jid})
    job_stats = Counter(status for status, *_ in jobs.values())
    for jid, (status, payload, result, last_error) in jobs.items():
        if status != "done":
            fail.add(f"job_{status}", {"job_id": jid, "last_error": last_error})
            continue
        message_ids = json.loads(payload).get("message_ids", [])
        stored = sorted({m for source in message_ids for m in carriers.get(source, [])})
        result_ids = [x["id"] for x in json.loads(result)["results"]] if result else []
        extra = [m for m in stored if m not in result_ids]
        if extra:
            fail.add("job_applied_twice", {"job_id": jid, "result_ids": result_ids, "also_stored": extra})
        for mid in result_ids:
            if mid not in live and not deletes(mid):
                fail.add("job_memory_lost", {"job_id": jid, "id": mid})
    doctor = sqlite_doctor.check(db, max_per_kind=20)
    for v in doctor.violations:
        fail.add(f"doctor:{v.kind}", {"ids": v.ids, "message": v.message})
    for kind, n in doctor.violation_counts.items():  # the ones the listing left out still count
        fail.counts[f"doctor:{kind}"] = n
    return {"ok": not fail.counts, "failures": fail.as_dict(), "info": dict(info),
            "store": {**doctor.counts}, "jobs": dict(job_stats), "acknowledged_writes":
            dict(Counter(r["op"] for r in acked if r["op"] in WRITES))}


def op_stats(records: list[dict[str, Any]], seconds: float) -> dict[str, Any]:
    by_op: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for r in records:
        if "lat" in r and not r.get("intent"):
            by_op[r["op"]].append(r)
    out = {}
    for op, rs in sorted(by_op.items()):
        lat = sorted(r["lat"] for r in rs if r["ok"])
        errors = Counter(r["error"] for r in rs if not r["ok"])
        out[op] = {"ok": len(lat), "ops_per_s": round(len(lat) / seconds, 2) if seconds else None,
                   "p50_ms": round(1000 * _pct(lat, 50), 1) if lat else None,
                   "p95_ms": round(1000 * _pct(lat, 95), 1) if lat else None,
                   "errors": dict(errors)}
    return out


def _pct(sorted_values: list[float], p: float) -> float:
    k = (len(sorted_values) - 1) * p / 100
    lo, hi = int(k), min(int(k) + 1, len(sorted_values) - 1)
    return sorted_values[lo] + (sorted_values[hi] - sorted_values[lo]) * (k - lo)


def error_samples(records: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for r in records:
        if r.get("ok") is False:
            e = out.setdefault(r["error"], {"count": 0, "untyped": bool(r.get("untyped")), "examples": []})
            e["count"] += 1
            if len(e["examples"]) < 3 and r.get("message") not in e["examples"]:
                e["examples"].append(r.get("message"))
    return out


# ------------------------------------------------------------------ the two runs

def run_load(db: Path, work: Path, processes: int, threads: int, seconds: float, seed: int,
             drain_timeout: float = 180) -> dict[str, Any]:
    work.mkdir(parents=True, exist_ok=True)
    go = work / "go"
    open_memory(db).close()  # create the file once, so the workers do not race to make the schema
    procs = [spawn("load", db, work, f"p{i}", threads, seed, seconds=seconds, go=go) for i in range(processes)]
    start = time.monotonic()
    while not all(ready.exists() for _, _, ready in procs):
        if any(p.poll() is not None for p, _, _ in procs) or time.monotonic() - start > 300:
            break
        time.sleep(0.05)
    startup = time.monotonic() - start
    go.touch()
    t0 = time.monotonic()
    codes = [p.wait(timeout=seconds + 600) for p, _, _ in procs]
    wall = time.monotonic() - t0
    drained = drain_jobs(db, timeout=drain_timeout)
    records = read_ledgers(work)
    outcome = check_outcome(db, records, crashed=False)
    for i, code in enumerate(codes):
        if code != 0:
            outcome["ok"] = False
            outcome["failures"][f"worker_exit:p{i}"] = {"count": 1, "examples": [
                (work / f"stderr-p{i}.txt").read_text()[-2000:]]}
    return {"processes": processes, "threads": threads, "seconds": seconds, "startup_s": round(startup, 2),
            "wall_s": round(wall, 2), "drain": drained, "ops": op_stats(records, seconds),
            "errors": error_samples(records), **outcome}


def run_crash(db: Path, work: Path, kills: int, parallel: int, seed: int,
              drain_timeout: float = 180) -> dict[str, Any]:
    from memlane.stores import sqlite_doctor
    work.mkdir(parents=True, exist_ok=True)
    rng = random.Random(seed)
    stop = work / "stop"
    open_memory(db).close()
    live: dict[str, tuple[subprocess.Popen, Path, float, str]] = {}
    done_kills, spawned, by_role, exits = 0, 0, Counter(), []
    doctor_runs, dirty_runs = 0, 0
    first_seen: dict[tuple, dict[str, Any]] = {}  # each distinct violation, with the kill it followed
    early = Counter()
    started = time.monotonic()
    while done_kills < kills:
        while len(live) < parallel:
            role = "jobs" if rng.random() < 0.45 else "writer"
            tag = f"k{spawned}"
            proc, _, ready = spawn(role, db, work, tag, 1 if role == "jobs" else rng.randint(2, 4),
                                   seed, stop=stop)
            live[tag] = (proc, ready, time.monotonic(), role)
            spawned += 1
        tag = rng.choice(sorted(live))
        proc, ready, born, role = live[tag]
        if rng.random() < 1 / 7:  # somewhere in start-up (imports, opening the file, resuming jobs)
            time.sleep(max(0.0, born + rng.uniform(0.2, 2.5) - time.monotonic()))
            early["before_ready" if not ready.exists() else "after_ready"] += 1
        else:
            while not ready.exists() and proc.poll() is None and time.monotonic() - born < 120:
                time.sleep(0.02)
            time.sleep(rng.uniform(0.05, 1.5))
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
            done_kills += 1
            by_role[role] += 1
        else:
            exits.append({"tag": tag, "code": proc.returncode,
                          "stderr": (work / f"stderr-{tag}.txt").read_text()[-2000:]})
        proc.wait()
        del live[tag]
        report = sqlite_doctor.check(db, max_per_kind=50)
        doctor_runs += 1
        if not report.ok:
            dirty_runs += 1
            for v in report.violations:
                first_seen.setdefault((v.kind, tuple(v.ids)), {"after_kill": done_kills, "victim": role,
                                                               "kind": v.kind, "message": v.message})
    stop.touch()  # the victims left finish their current operation and exit
    for tag, (proc, _, _, _) in live.items():
        try:
            proc.wait(timeout=120)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        if proc.returncode != 0:
            exits.append({"tag": tag, "code": proc.returncode,
                          "stderr": (work / f"stderr-{tag}.txt").read_text()[-2000:]})
    crash_s = time.monotonic() - started
    drained = drain_jobs(db, timeout=drain_timeout)
    records = read_ledgers(work)
    outcome = check_outcome(db, records, crashed=True)
    if first_seen:  # distinct violations seen by the checks between kills (some may have healed later)
        outcome["ok"] = False
        outcome["failures"]["doctor_after_kill"] = {
            "count": len(first_seen), "runs_with_violations": dirty_runs,
            "kinds": dict(Counter(v["kind"] for v in first_seen.values())),
            "examples": list(first_seen.values())[:10]}
    if exits:
        outcome["ok"] = False
        outcome["failures"]["victim_exited"] = {"count": len(exits), "examples": exits[:5]}
    return {"kills": done_kills, "by_role": dict(by_role), "start_up_kills": dict(early), "parallel": parallel,
            "spawned": spawned, "seconds": round(crash_s, 1), "doctor_runs": doctor_runs,
            "doctor_dirty_runs": dirty_runs,
            "drain": drained, "errors": error_samples(records), **outcome}


def main(argv: Optional[list[str]] = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--processes", type=int, default=4)
    p.add_argument("--threads", type=int, default=8)
    p.add_argument("--seconds", type=float, default=60)
    p.add_argument("--kills", type=int, default=200)
    p.add_argument("--parallel", type=int, default=2, help="crash run: victims alive at once")
    p.add_argument("--db", help="database file of the load run (default: a temporary one); the crash run "
                                "uses FILE with a -crash suffix")
    p.add_argument("--out", help="write the results here as JSON")
    p.add_argument("--seed", type=int, default=None)
    p.add_argument("--drain-timeout", type=float, default=180,
                   help="seconds to wait, after each run, for the jobs left queued to be done")
    p.add_argument("--keep", action="store_true", help="keep the work directory (ledgers) even when all passed")
    p.add_argument("--skip-load", action="store_true")
    p.add_argument("--skip-crash", action="store_true")
    # worker processes
    p.add_argument("--role", choices=["load", "writer", "jobs"], help=argparse.SUPPRESS)
    p.add_argument("--ledger", help=argparse.SUPPRESS)
    p.add_argument("--ready", help=argparse.SUPPRESS)
    p.add_argument("--go", help=argparse.SUPPRESS)
    p.add_argument("--stop", help=argparse.SUPPRESS)
    p.add_argument("--tag", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.role:
        return worker_main(args)
    os.environ["MEMLANE_LLM"] = "none"
    seed = args.seed if args.seed is not None else random.randrange(1 << 30)
    work = Path(tempfile.mkdtemp(prefix="memlane-soak-"))
    db = Path(args.db) if args.db else work / "soak.db"
    crash_db = db.with_name(db.stem + "-crash" + db.suffix)
    for path in (db, crash_db):
        for suffix in ("", "-wal", "-shm"):
            Path(f"{path}{suffix}").unlink(missing_ok=True)
    results: dict[str, Any] = {"seed": seed, "commit": _commit(), "host": _host(), "work_dir": str(work)}
    if not args.skip_load:
        print(f"soak: load {args.processes} x {args.threads} for {args.seconds:g}s on {db}", file=sys.stderr)
        results["load"] = run_load(db, work / "load", args.processes, args.threads, args.seconds, seed,
                                   args.drain_timeout)
        _print_load(results["load"])
    if not args.skip_crash and args.kills > 0:
        print(f"soak: crash run, {args.kills} kill -9s on {crash_db}", file=sys.stderr)
        results["crash"] = run_crash(crash_db, work / "crash", args.kills, args.parallel, seed, args.drain_timeout)
        _print_crash(results["crash"])
    results["schema_version"] = _schema_version(db if db.exists() else crash_db)
    results["ok"] = all(results[k]["ok"] for k in ("load", "crash") if k in results)
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps(results, indent=2, ensure_ascii=False) + "\n")
    if results["ok"] and not args.keep:  # ledgers and stderr of every process: kept when something failed
        shutil.rmtree(work, ignore_errors=True)
    print("soak: " + ("ok" if results["ok"] else f"FAILED (ledgers in {work})")
          + (f" (results in {args.out})" if args.out else ""), file=sys.stderr)
    return 0 if results["ok"] else 1


def _print_load(r: dict[str, Any]) -> None:
    print(f"  {'op':<12}{'ok':>7}{'ops/s':>9}{'p50 ms':>9}{'p95 ms':>9}  errors", file=sys.stderr)
    for op, s in r["ops"].items():
        print(f"  {op:<12}{s['ok']:>7}{s['ops_per_s'] or 0:>9}{s['p50_ms'] or 0:>9}{s['p95_ms'] or 0:>9}  "
              f"{s['errors'] or ''}", file=sys.stderr)
    _print_failures(r)


def _print_crash(r: dict[str, Any]) -> None:
    print(f"  kills {r['kills']} {r['by_role']}, doctor runs {r['doctor_runs']}, jobs {r['jobs']}, "
          f"{r['seconds']}s", file=sys.stderr)
    _print_failures(r)


def _print_failures(r: dict[str, Any]) -> None:
    for kind, f in r["failures"].items():
        print(f"  FAIL {kind}: {f['count']}  e.g. {json.dumps(f['examples'][:1])[:300]}", file=sys.stderr)


def _schema_version(db: Path) -> Optional[int]:
    try:
        with _connect_plain(db) as conn:
            return int(conn.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()[0])
    except (sqlite3.Error, TypeError, ValueError):
        return None


def _commit() -> Optional[str]:
    try:
        head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True,
                              timeout=10).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no", "src"], cwd=ROOT,
                               capture_output=True, text=True, timeout=10).stdout.strip()
        return head + ("+dirty" if dirty else "")
    except OSError:
        return None


def _host() -> dict[str, Any]:
    return {"python": platform.python_version(), "sqlite": sqlite3.sqlite_version, "cpus": os.cpu_count(),
            "platform": platform.platform()}


if __name__ == "__main__":
    sys.exit(main())
