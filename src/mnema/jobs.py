"""A durable ingestion queue for add(..., background=True), kept in the same SQLite file.

The job row (with the messages and the ids they will have in the message log) is committed before add()
returns, so a crash loses nothing; a worker thread claims jobs under a lease (an expired lease means the
claimer died, and the job is taken again), runs the one pipeline, and retries transient failures with
capped exponential backoff. Input errors fail the job at once; they cannot succeed on retry.
"""
from __future__ import annotations

import json
import logging
import random
import sqlite3
import threading
import time
from pathlib import Path
from typing import Any, Callable, Optional

from .errors import ConfigurationError, NotFoundError, ValidationError
from .inputs import new_id, now_iso

log = logging.getLogger("mnema")

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
PERMANENT = (ValidationError, ConfigurationError)


class JobQueue:
    def __init__(self, path: Path, *, max_attempts: int = 10, lease_seconds: float = 300.0,
                 base_delay: float = 1.0, max_delay: float = 300.0):
        self.path = Path(path)
        self.max_attempts = max_attempts
        self.lease_seconds = lease_seconds
        self.base_delay = base_delay
        self.max_delay = max_delay
        self._local = threading.local()
        conn = self._conn()
        conn.executescript("BEGIN IMMEDIATE;\n" + SCHEMA + "\nCOMMIT;")

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

    def claim(self) -> Optional[tuple[str, dict[str, Any], int]]:
        """Take the oldest runnable job (queued and due, or running with an expired lease)."""
        now = time.time()
        conn = self._conn()
        conn.execute("BEGIN IMMEDIATE")
        try:
            row = conn.execute(
                "SELECT id, payload, attempts FROM jobs WHERE (status = 'queued' AND not_before <= ?) OR "
                "(status = 'running' AND lease_until < ?) ORDER BY pk LIMIT 1", (now, now)).fetchone()
            if row is not None:
                conn.execute("UPDATE jobs SET status = 'running', lease_until = ?, attempts = attempts + 1, "
                             "updated_at = ? WHERE id = ?", (now + self.lease_seconds, now_iso(), row[0]))
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        return None if row is None else (row[0], json.loads(row[1]), row[2] + 1)

    def succeed(self, job_id: str, result: Any) -> None:
        self._conn().execute("UPDATE jobs SET status = 'done', result = ?, last_error = NULL, updated_at = ? "
                             "WHERE id = ?", (json.dumps(result), now_iso(), job_id))

    def fail(self, job_id: str, attempts: int, error: BaseException) -> None:
        message = f"{type(error).__name__}: {error}"
        if isinstance(error, PERMANENT) or attempts >= self.max_attempts:
            self._conn().execute("UPDATE jobs SET status = 'failed', last_error = ?, updated_at = ? WHERE id = ?",
                                 (message, now_iso(), job_id))
            log.error("mnema: background job %s failed after %d attempt(s): %s", job_id, attempts, message)
            return
        delay = random.uniform(0.5, 1.0) * min(self.max_delay, self.base_delay * 2 ** (attempts - 1))
        self._conn().execute("UPDATE jobs SET status = 'queued', last_error = ?, not_before = ?, updated_at = ? "
                             "WHERE id = ?", (message, time.time() + delay, now_iso(), job_id))
        log.warning("mnema: background job %s attempt %d failed (%s); retrying in %.1fs",
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
    """One daemon thread that drains the queue with `run(payload) -> result`."""

    def __init__(self, queue: JobQueue, run: Callable[[dict[str, Any]], Any], poll_seconds: float = 0.5):
        self.queue = queue
        self.run = run
        self.poll_seconds = poll_seconds
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: Optional[threading.Thread] = None
        self._lock = threading.Lock()

    def start(self) -> None:
        with self._lock:
            if self._thread is None or not self._thread.is_alive():
                self._stop.clear()
                self._thread = threading.Thread(target=self._loop, name="mnema-jobs", daemon=True)
                self._thread.start()
        self._wake.set()

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout)

    def _loop(self) -> None:
        while not self._stop.is_set():
            claimed = self.queue.claim()
            if claimed is None:
                self._wake.wait(self.poll_seconds)
                self._wake.clear()
                continue
            job_id, payload, attempts = claimed
            try:
                result = self.run(payload)
            except Exception as exc:  # recorded on the job; the worker keeps going
                self.queue.fail(job_id, attempts, exc)
            else:
                self.queue.succeed(job_id, result)
