"""The background job queue: leases, their renewal and takeover, and which failures are retried."""
import sqlite3
import subprocess
import sys
import time
from contextlib import closing

import pytest

from memlane import ConfigurationError, Memory, ProviderError, ValidationError
from memlane.jobs import HOST, Worker, owner_is_dead
from memlane.stores.sqlite_jobs import SQLiteJobQueue

from conftest import config_for


@pytest.fixture
def queue(tmp_path):
    q = SQLiteJobQueue(tmp_path / "q.db", max_attempts=3, lease_seconds=60, base_delay=0.01, max_delay=0.02)
    yield q
    q.close()


def set_lease(q, job_id, owner, until):
    with closing(sqlite3.connect(q.path)) as conn:
        conn.execute("UPDATE jobs SET status = 'running', lease_owner = ?, lease_until = ? WHERE id = ?",
                     (owner, until, job_id))
        conn.commit()


def dead_pid():
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_a_live_lease_is_not_taken_and_an_expired_one_is(queue):
    job_id = queue.enqueue({"n": 1})
    set_lease(queue, job_id, "elsewhere:1:a", time.time() + 60)
    assert queue.claim("me:1:b") is None
    set_lease(queue, job_id, "elsewhere:1:a", time.time() - 1)
    claimed = queue.claim("me:1:b")
    assert claimed[0] == job_id and claimed[2] == 1
    assert queue.renew(job_id, "me:1:b") and not queue.renew(job_id, "elsewhere:1:a")


def test_a_dead_process_on_this_host_loses_its_lease_at_once(queue):
    job_id = queue.enqueue({"n": 1})
    set_lease(queue, job_id, f"{HOST}:{dead_pid()}:gone", time.time() + 300)
    assert queue.claim(f"{HOST}:1:me")[0] == job_id


def test_a_live_process_keeps_its_lease(queue):
    job_id = queue.enqueue({"n": 1})
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        set_lease(queue, job_id, f"{HOST}:{proc.pid}:alive", time.time() + 300)
        assert queue.claim(f"{HOST}:1:me") is None
        assert not owner_is_dead(f"{HOST}:{proc.pid}:alive")
    finally:
        proc.kill()
        proc.wait()
    assert owner_is_dead(f"{HOST}:{proc.pid}:alive")
    assert not owner_is_dead(f"otherhost:{proc.pid}:alive") and not owner_is_dead("junk")


def test_heartbeat_keeps_a_long_job_leased(tmp_path):
    q = SQLiteJobQueue(tmp_path / "hb.db", lease_seconds=1.0)
    other = SQLiteJobQueue(tmp_path / "hb.db", lease_seconds=1.0)
    seen_by_other = []
    runs = []

    def run(payload, job):
        runs.append(job)
        for _ in range(6):  # 3 s: three times the lease, renewed every third of it
            time.sleep(0.5)
            seen_by_other.append(other.claim("other:1:x"))
        return {"ok": True}

    worker = Worker(q, run, poll_seconds=0.05)
    job_id = q.enqueue({"n": 1})
    worker.start()
    deadline = time.monotonic() + 20
    while q.get(job_id)["status"] != "done" and time.monotonic() < deadline:
        time.sleep(0.05)
    worker.stop()
    assert q.get(job_id)["status"] == "done" and len(runs) == 1
    assert seen_by_other == [None] * 6


@pytest.mark.parametrize("error, status, attempts", [
    (ValidationError("bad input"), "failed", 1),   # cannot succeed on retry: fails at once
    (ConfigurationError("no llm"), "failed", 1),
    (ProviderError("503"), "done", 3),             # transient: retried until it works
])
def test_input_errors_fail_at_once_transient_ones_retry(tmp_path, error, status, attempts):
    q = SQLiteJobQueue(tmp_path / "r.db", max_attempts=5, base_delay=0.01, max_delay=0.02)
    calls = []

    def run(payload, job):
        calls.append(job)
        if len(calls) < 3:
            raise error
        return {"ok": True}

    worker = Worker(q, run, poll_seconds=0.02)
    job_id = q.enqueue({"n": 1})
    worker.start()
    deadline = time.monotonic() + 20
    while q.get(job_id)["status"] not in ("done", "failed") and time.monotonic() < deadline:
        time.sleep(0.02)
    worker.stop()
    job = q.get(job_id)
    assert (job["status"], job["attempts"]) == (status, attempts)
    assert type(error).__name__ in (job["last_error"] or type(error).__name__)


def test_job_left_by_a_killed_process_is_resumed_at_once_and_done_once(tmp_path):
    path = tmp_path / "killed.db"
    with Memory(config_for(path)) as m:
        m._worker.stop()  # keep this job queued: a process is about to "die" holding it
        job_id = m._queue.enqueue(__import__("memlane").pipeline.prepare_add(
            m._settings, "I like kayaks", user_id="k").to_payload())
    set_lease(SQLiteJobQueue(path), job_id, f"{HOST}:{dead_pid()}:crashed", time.time() + 300)
    started = time.monotonic()
    with Memory(config_for(path)) as again:
        job = again.wait(job_id, timeout=30)
        assert job["status"] == "done"
        assert time.monotonic() - started < 30  # not the 300 s lease
        assert [r["memory"] for r in again.get_all(user_id="k")["results"]] == ["I like kayaks"]


def test_lease_must_be_positive(tmp_path):
    with pytest.raises(ConfigurationError):
        SQLiteJobQueue(tmp_path / "x.db", lease_seconds=0)
