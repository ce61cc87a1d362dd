"""The SQLite store's job queue (stores/base.py JobQueue): a `jobs` table in the store's own file, so the
store's apply() can mark a job done in the transaction that commits its memories (`complete`). The
queue creates its table itself, on first use, beside the store's versioned schema: its one later column,
lease_owner, is added to a table from before it. jobs.py holds the lease and retry policy and the Worker."""
from __future__ import annotations

import json
import logging
import sqlite3
import threading
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Optional

from ..errors import ConfigurationError, ConflictError, NotFoundError
from ..inputs import new_id, now_iso
from ..jobs import HOST, backoff, is_permanent, owner_is_dead
from ..models import JobCompletion

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
# Who holds a running job's lease: 'host:pid:token' (jobs.new_owner). Added after the table, hence apart.
LEASE_OWNER = "ALTER TABLE jobs ADD COLUMN lease_owner TEXT"


def complete(conn: sqlite3.Connection, job: JobCompletion) -> None:
    """Mark a background job done inside the store's write transaction; ConflictError when the lease was
    taken over, so a worker that lost its job commits nothing."""
    cur = conn.execute("UPDATE jobs SET status = 'done', result = ?, last_error = NULL, updated_at = ? "
                       "WHERE id = ? AND status = 'running' AND lease_owner = ?",
                       (json.dumps(job.result), datetime.now(timezone.utc).isoformat(), job.job_id, job.owner))
    if cur.rowcount != 1:
        raise ConflictError(f"job {job.job_id}: the lease was taken over by another worker", ids=(job.job_id,))


class SQLiteJobQueue:
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
            if "lease_owner" not in {r[1] for r in conn.execute("PRAGMA table_info(jobs)")}:
                conn.execute(LEASE_OWNER)
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
        if is_permanent(error) or attempts >= self.max_attempts:
            cur = self._conn().execute(f"UPDATE jobs SET status = 'failed', last_error = ?, updated_at = ? {held}",
                                       (message, now_iso(), job_id, owner))
            if cur.rowcount:
                log.error("memlane: background job %s failed after %d attempt(s): %s", job_id, attempts, message)
            return
        delay = backoff(attempts, self.base_delay, self.max_delay)
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
