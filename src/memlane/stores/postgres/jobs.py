"""The PostgreSQL store's job queue (stores/base.py JobQueue), the semantics of stores/sqlite_jobs.py: a
`jobs` table in the collection's schema (migrations.py), so the store's apply() marks a job done in the
transaction that commits its memories (`complete`). Claims lock the row they take (FOR UPDATE SKIP
LOCKED), so workers in several processes never take the same job. jobs.py holds the lease and retry
policy and the Worker."""
from __future__ import annotations

import json
import logging
import time
from typing import Any, Callable, Optional

from psycopg import Cursor

from ...errors import ConfigurationError, ConflictError, NotFoundError
from ...inputs import new_id, now_iso
from ...jobs import HOST, backoff, is_permanent, owner_is_dead
from ...models import JobCompletion

log = logging.getLogger("memlane")

# Opens a transaction on one of the store's pooled connections and gives its cursor.
Transaction = Callable[[], Any]


def complete(cur: Cursor[Any], job: JobCompletion) -> None:
    """Mark a background job done inside the store's write transaction; ConflictError when the lease was
    taken over, so a worker that lost its job commits nothing."""
    cur.execute("UPDATE jobs SET status = 'done', result = %s::json, last_error = NULL, updated_at = %s "
                "WHERE id = %s AND status = 'running' AND lease_owner = %s",
                (json.dumps(job.result), now_iso(), job.job_id, job.owner))
    if cur.rowcount != 1:
        raise ConflictError(f"job {job.job_id}: the lease was taken over by another worker", ids=(job.job_id,))


class PostgresJobQueue:
    """Shares the store's connection pool; `transaction` is the store's (errors mapped as the store's)."""

    def __init__(self, transaction: Transaction, *, max_attempts: int = 10, lease_seconds: float = 60.0,
                 base_delay: float = 1.0, max_delay: float = 300.0):
        if not lease_seconds > 0:
            raise ConfigurationError(f"job_lease_seconds must be positive, got {lease_seconds!r}")
        self._tx = transaction
        self.max_attempts = max_attempts
        self.lease_seconds = lease_seconds
        self.base_delay = base_delay
        self.max_delay = max_delay

    def enqueue(self, payload: dict[str, Any]) -> str:
        job_id = new_id()
        at = now_iso()
        with self._tx() as cur:
            cur.execute("INSERT INTO jobs (id, status, payload, created_at, updated_at) VALUES "
                        "(%s, 'queued', %s::json, %s, %s)", (job_id, json.dumps(payload), at, at))
        return job_id

    def claim(self, owner: str) -> Optional[tuple[str, dict[str, Any], int]]:
        """Take the oldest runnable job for `owner`: queued and due, running with an expired lease, or
        running under a process of this host that has exited."""
        now = time.time()
        with self._tx() as cur:
            cur.execute("SELECT id, payload, attempts FROM jobs WHERE (status = 'queued' AND not_before <= %s) OR "
                        "(status = 'running' AND lease_until < %s) ORDER BY pk LIMIT 1 FOR UPDATE SKIP LOCKED",
                        (now, now))
            row = cur.fetchone()
            if row is None:
                cur.execute("SELECT id, payload, attempts, lease_owner FROM jobs WHERE status = 'running' AND "
                            "lease_owner LIKE %s ORDER BY pk FOR UPDATE SKIP LOCKED", (f"{HOST}:%",))
                row = next((r[:3] for r in cur.fetchall() if owner_is_dead(r[3])), None)
            if row is not None:
                cur.execute("UPDATE jobs SET status = 'running', lease_until = %s, lease_owner = %s, "
                            "attempts = attempts + 1, updated_at = %s WHERE id = %s",
                            (now + self.lease_seconds, owner, now_iso(), row[0]))
        return None if row is None else (row[0], row[1], row[2] + 1)

    def renew(self, job_id: str, owner: str) -> bool:
        """Extend the lease of a job this owner still holds; False when it was taken over or finished."""
        with self._tx() as cur:
            cur.execute("UPDATE jobs SET lease_until = %s WHERE id = %s AND status = 'running' AND lease_owner = %s",
                        (time.time() + self.lease_seconds, job_id, owner))
            return bool(cur.rowcount == 1)

    def succeed(self, job_id: str, owner: str, result: Any) -> None:
        """Mark done a job whose final write did not already (a no-op when it did, or when the lease was lost)."""
        with self._tx() as cur:
            cur.execute("UPDATE jobs SET status = 'done', result = %s::json, last_error = NULL, updated_at = %s "
                        "WHERE id = %s AND status = 'running' AND lease_owner = %s",
                        (json.dumps(result), now_iso(), job_id, owner))

    def fail(self, job_id: str, owner: str, attempts: int, error: BaseException) -> None:
        message = f"{type(error).__name__}: {error}"
        held = "WHERE id = %s AND status = 'running' AND lease_owner = %s"  # a lost lease is not ours to change
        with self._tx() as cur:
            if is_permanent(error) or attempts >= self.max_attempts:
                cur.execute(f"UPDATE jobs SET status = 'failed', last_error = %s, updated_at = %s {held}",
                            (message, now_iso(), job_id, owner))
                if cur.rowcount:
                    log.error("memlane: background job %s failed after %d attempt(s): %s", job_id, attempts, message)
                return
            delay = backoff(attempts, self.base_delay, self.max_delay)
            cur.execute(f"UPDATE jobs SET status = 'queued', last_error = %s, not_before = %s, updated_at = %s {held}",
                        (message, time.time() + delay, now_iso(), job_id, owner))
            if cur.rowcount:
                log.warning("memlane: background job %s attempt %d failed (%s); retrying in %.1fs",
                            job_id, attempts, message, delay)

    def get(self, job_id: str) -> dict[str, Any]:
        with self._tx() as cur:
            cur.execute("SELECT id, status, attempts, last_error, result, created_at, updated_at FROM jobs "
                        "WHERE id = %s", (job_id,))
            row = cur.fetchone()
        if row is None:
            raise NotFoundError(f"job {job_id} not found")
        return {"id": row[0], "status": row[1], "attempts": row[2], "last_error": row[3],
                "result": row[4], "created_at": row[5], "updated_at": row[6]}

    def retry(self, job_id: str) -> None:
        """Put a failed job back in the queue."""
        with self._tx() as cur:
            cur.execute("UPDATE jobs SET status = 'queued', attempts = 0, not_before = 0, updated_at = %s "
                        "WHERE id = %s AND status = 'failed'", (now_iso(), job_id))
            if cur.rowcount != 1:
                raise NotFoundError(f"no failed job {job_id}")

    def pending(self) -> int:
        with self._tx() as cur:
            cur.execute("SELECT count(*) FROM jobs WHERE status IN ('queued', 'running')")
            row = cur.fetchone()
            return int(row[0]) if row else 0

    def close(self) -> None:
        """Nothing of its own to close: the connections are the store's pool's."""
