"""A durable ingestion queue for add(..., background=True), kept in the same SQLite file.

The job row (with the messages and the ids they will have in the message log) is committed before add()
returns, so a crash loses nothing. A worker thread claims jobs under a lease that names it
(`host:pid:token`) and renews the lease while the job runs; a job is taken again when its lease expires
(its worker stopped renewing), or at once when its worker was a process on this host that no longer
exists. The job is marked done in the same transaction that commits its memories (ChangeSet.job), and
that write requires the lease, so a job's memories are committed exactly once however it is interrupted.
Transient failures are retried with capped exponential backoff; input errors fail the job at once.
"""
from __future__ import annotations

import json
import logging
import os
import random
import socket
import sqlite3
import threading
import time
import uuid
from pathlib import Path
from typing import Any, Callable, Optional

from .errors import ConfigurationError, NotFoundError, ValidationError
from .inputs import new_id, now_iso
from .stores.sqlite import add_missing_columns

log = logging.getLogger("memlane")

SCHEMA = """
CREATE TABLE IF NOT EXISTS jobs (
    pk INTEGER PRIMARY KEY,
    id TEXT NOT NULL UNIQUE,
    status TEXT NOT NULL CHECK (status IN ('queued', 'running', 'done', 'failed')),
    payload TEXT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    last_error TEXT,
    result TEXT,
    not_before REAL NOT NULL DEFAULT 0,
    lease_until REAL NOT NULL DEFAULT 0,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS jobs_status ON jobs(status, not_before);
"""
ADDED_COLUMNS = (("jobs", "lease_owner", "TEXT"),)  # who holds a running job's lease: 'host:pid:token'
PERMANENT = (ValidationError, ConfigurationError)
HOST = socket.gethostname()


def new_owner() -> str:
    return f"{HOST}:{os.getpid()}:{uuid.uuid4().hex[:12]}"


def owner_is_dead(owner: Optional[str]) -> bool:
    """Whether a lease owner was a process on this host that has exited (its lease can be taken now).
    Owners on other hosts, or unreadable ones, are only reclaimed when their lease expires."""
    parts = (owner or "").split(":")
    if len(parts) < 3 or ":".join(parts[:-2]) != HOST or not parts[-2].isdigit():
        return False
    pid = int(parts[-2])
    if pid == os.getpid():
        return False  # this process: its workers renew their leases or are alive to finish
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except OSError:  # exists but is not ours to signal
        return False
    try:  # a killed child its parent has not reaped yet is a zombie: gone all the same
        with open(f"/proc/{pid}/stat", "rb") as f:
            return f.read().rsplit(b")", 1)[1].split()[0] in (b"Z", b"X")
    except (OSError, IndexError):
        return False


class JobQueue:
    def __init__(self, path: Path, *, max_attempts: int = 10, lease_seconds: float = 60.0,
                 base_delay: float = 1.0, max_delay: float = 300.0):
        if not lease_seconds > 0:
            raise ConfigurationError(f"job_lease_seconds must be positive, got {lease_seconds!r}")
        self.path = Path(path)
        self.max_attempts = max_attempts
        self.lease_seconds = lease_seconds
        self.base_delay = base_delay
        self.max_delay = max_delay
        self._local = threading.local()
        try:
            self._create(self._conn())
        except (OSError, sqlite3.Error) as exc:
            self.close()
            raise ConfigurationError(f"cannot open the job queue in {self.path}: {exc}") from exc

    @staticmethod
    def _create(conn: sqlite3.Connection) -> None:
        conn.execute("BEGIN IMMEDIATE")
        try:
            for statement in SCHEMA.strip().split(";\n"):
                conn.execute(statement)
            add_missing_columns(conn, ADDED_COLUMNS)
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise

    def _conn(self) -> sqlite3.Connection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = sqlite3.connect(self.path, timeout=30, isolation_level=None, check_same_thread=False)
            conn.execute("PRAGMA busy_timeout = 30000")
            conn.execute("PRAGMA journal_mode = WAL")
            self._local.conn = conn
        return conn

    def enqueue(self, payload: dict[str, Any]) -> str:
        job_id = new_id()
        at = now_iso()
        self._conn().execute("INSERT INTO jobs (id, status, payload, created_at, updated_at) VALUES "
                             "(?, 'queued', ?, ?, ?)", (job_id, json.dumps(payload), at, at))
        return job_id

    def claim(self, owner: str) -> Optional[tuple[str, dict[str, Any], int]]:
        """Take the oldest runnable job for `owner`: queued and due, running with an expired lease, or
        running under a process of this host that has exited."""
        now = time.time()
        conn = self._conn()
        conn.execute("BEGIN IMMEDIATE")
        try:
            row = conn.execute(
                "SELECT id, payload, attempts FROM jobs WHERE (status = 'queued' AND not_before <= ?) OR "
                "(status = 'running' AND lease_until < ?) ORDER BY pk LIMIT 1", (now, now)).fetchone()
            if row is None:
                orphans = conn.execute("SELECT id, payload, attempts, lease_owner FROM jobs WHERE status = "
                                       "'running' AND lease_owner LIKE ? ORDER BY pk", (f"{HOST}:%",)).fetchall()
                row = next((r[:3] for r in orphans if owner_is_dead(r[3])), None)
            if row is not None:
                conn.execute("UPDATE jobs SET status = 'running', lease_until = ?, lease_owner = ?, "
                             "attempts = attempts + 1, updated_at = ? WHERE id = ?",
                             (now + self.lease_seconds, owner, now_iso(), row[0]))
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        return None if row is None else (row[0], json.loads(row[1]), row[2] + 1)

    def renew(self, job_id: str, owner: str) -> bool:
        """Extend the lease of a job this owner still holds; False when it was taken over or finished."""
        cur = self._conn().execute("UPDATE jobs SET lease_until = ? WHERE id = ? AND status = 'running' AND "
                                   "lease_owner = ?", (time.time() + self.lease_seconds, job_id, owner))
        return cur.rowcount == 1

    def succeed(self, job_id: str, owner: str, result: Any) -> None:
        """Mark done a job whose final write did not already (a no-op when it did, or when the lease was lost)."""
        self._conn().execute("UPDATE jobs SET status = 'done', result = ?, last_error = NULL, updated_at = ? "
                             "WHERE id = ? AND status = 'running' AND lease_owner = ?",
                             (json.dumps(result), now_iso(), job_id, owner))

    def fail(self, job_id: str, owner: str, attempts: int, error: BaseException) -> None:
        message = f"{type(error).__name__}: {error}"
        held = "WHERE id = ? AND status = 'running' AND lease_owner = ?"  # a lost lease is not ours to change
        if isinstance(error, PERMANENT) or attempts >= self.max_attempts:
            cur = self._conn().execute(f"UPDATE jobs SET status = 'failed', last_error = ?, updated_at = ? {held}",
                                       (message, now_iso(), job_id, owner))
            if cur.rowcount:
                log.error("memlane: background job %s failed after %d attempt(s): %s", job_id, attempts, message)
            return
        delay = random.uniform(0.5, 1.0) * min(self.max_delay, self.base_delay * 2 ** (attempts - 1))
        cur = self._conn().execute(f"UPDATE jobs SET status = 'queued', last_error = ?, not_before = ?, "
                                   f"updated_at = ? {held}", (message, time.time() + delay, now_iso(), job_id, owner))
        if cur.rowcount:
            log.warning("memlane: background job %s attempt %d failed (%s); retrying in %.1fs",
                        job_id, attempts, message, delay)

    def get(self, job_id: str) -> dict[str, Any]:
        row = self._conn().execute("SELECT id, status, attempts, last_error, result, created_at, updated_at "
                                   "FROM jobs WHERE id = ?", (job_id,)).fetchone()
        if row is None:
            raise NotFoundError(f"job {job_id} not found")
        return {"id": row[0], "status": row[1], "attempts": row[2], "last_error": row[3],
                "result": json.loads(row[4]) if row[4] else None, "created_at": row[5], "updated_at": row[6]}

    def retry(self, job_id: str) -> None:
        """Put a failed job back in the queue."""
        cur = self._conn().execute("UPDATE jobs SET status = 'queued', attempts = 0, not_before = 0, "
                                   "updated_at = ? WHERE id = ? AND status = 'failed'", (now_iso(), job_id))
        if cur.rowcount != 1:
            raise NotFoundError(f"no failed job {job_id}")

    def pending(self) -> int:
        return self._conn().execute("SELECT count(*) FROM jobs WHERE status IN ('queued', 'running')").fetchone()[0]

    def close(self) -> None:
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()
            self._local.conn = None


class Worker:
    """One daemon thread that drains the queue with `run(payload, (job_id, owner)) -> result`, renewing
    the lease of the running job every third of the lease."""

    def __init__(self, queue: JobQueue, run: Callable[[dict[str, Any], tuple[str, str]], Any],
                 poll_seconds: float = 0.5):
        self.queue = queue
        self.run = run
        self.poll_seconds = poll_seconds
        self.owner = new_owner()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: Optional[threading.Thread] = None
        self._lock = threading.Lock()

    def start(self) -> None:
        with self._lock:
            if self._thread is None or not self._thread.is_alive():
                self._stop.clear()
                self._thread = threading.Thread(target=self._loop, name="memlane-jobs", daemon=True)
                self._thread.start()
        self._wake.set()

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout)

    def _loop(self) -> None:
        try:
            self._drain()
        finally:
            self.queue.close()  # this thread's connection, so the file's WAL can be checkpointed on close

    def _drain(self) -> None:
        while not self._stop.is_set():
            claimed = self.queue.claim(self.owner)
            if claimed is None:
                self._wake.wait(self.poll_seconds)
                self._wake.clear()
                continue
            job_id, payload, attempts = claimed
            done = threading.Event()
            beat = threading.Thread(target=self._heartbeat, args=(job_id, done), name="memlane-jobs-lease",
                                    daemon=True)
            beat.start()
            try:
                result = self.run(payload, (job_id, self.owner))
            except Exception as exc:  # recorded on the job; the worker keeps going
                self.queue.fail(job_id, self.owner, attempts, exc)
            else:
                self.queue.succeed(job_id, self.owner, result)
            finally:
                done.set()
                beat.join()

    def _heartbeat(self, job_id: str, done: threading.Event) -> None:
        try:
            while not done.wait(self.queue.lease_seconds / 3):
                if not self.queue.renew(job_id, self.owner):
                    return
        finally:
            self.queue.close()  # this thread's connection
