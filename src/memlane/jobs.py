"""Background adds (add(..., background=True)): the policy of the durable queue and the worker that drains
it. The queue itself is the store's (stores/base.py JobQueue; the SQLite store's is stores/sqlite_jobs.py).

The job row (with the messages and the ids they will have in the message log) is committed before add()
returns, so a crash loses nothing. A worker thread claims jobs under a lease that names it
(`host:pid:token`) and renews the lease while the job runs; a job is taken again when its lease expires
(its worker stopped renewing), or at once when its worker was a process on this host that no longer
exists. The job is marked done in the same transaction that commits its memories (ChangeSet.job), and
that write requires the lease, so a job's memories are committed exactly once however it is interrupted.
Transient failures are retried with capped exponential backoff; input errors fail the job at once.
"""
from __future__ import annotations

import os
import random
import socket
import threading
import uuid
from typing import Any, Callable, NoReturn, Optional

from .errors import ConfigurationError, ValidationError
from .stores.base import JobQueue

# Errors that running the job again cannot cure: the job fails at once instead of being retried.
PERMANENT = (ValidationError, ConfigurationError)
HOST = socket.gethostname()


def is_permanent(error: BaseException) -> bool:
    return isinstance(error, PERMANENT)


def backoff(attempts: int, base_delay: float, max_delay: float) -> float:
    """Seconds before attempt `attempts + 1`: exponential from base_delay, capped, with jitter so workers
    that failed together do not retry together."""
    return random.uniform(0.5, 1.0) * min(max_delay, base_delay * 2 ** (attempts - 1))


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


class NoQueue:
    """The queue of a store that keeps none (it has no job_queue()): background adds are refused, the rest
    of Memory works."""

    lease_seconds = 60.0

    def _refuse(self) -> NoReturn:
        raise ConfigurationError("this vector store keeps no job queue (it has no job_queue() method), so "
                                 "add(background=True) and the job methods are not available with it")

    def enqueue(self, payload: dict[str, Any]) -> str:
        self._refuse()

    def claim(self, owner: str) -> None:
        return None

    def renew(self, job_id: str, owner: str) -> bool:
        return False

    def succeed(self, job_id: str, owner: str, result: Any) -> None:
        self._refuse()

    def fail(self, job_id: str, owner: str, attempts: int, error: BaseException) -> None:
        self._refuse()

    def get(self, job_id: str) -> dict[str, Any]:
        self._refuse()

    def retry(self, job_id: str) -> None:
        self._refuse()

    def pending(self) -> int:
        return 0

    def close(self) -> None:
        pass


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
