"""One Memory shared by threads, several processes on one file, and all-or-nothing writes."""
import multiprocessing
import sqlite3
import threading
import traceback
from contextlib import closing

import numpy as np
import pytest

from memlane import Memory, ValidationError
from memlane.models import ChangeSet, HistoryRecord, MemoryRecord, MessageRecord
from memlane.stores.scoped_terms import keyed_text

from conftest import config_for, seed, snapshot


def test_one_memory_shared_by_threads(memory):
    threads, per_thread = 8, 10
    errors, barrier = [], threading.Barrier(threads)

    def work(t):
        try:
            barrier.wait()
            for i in range(per_thread):
                memory.add(f"thread {t} remembers item {i}", user_id="shared", infer=False)
                hits = memory.search(f"item {i}", user_id="shared", limit=5)["results"]
                assert hits and all(h["user_id"] == "shared" for h in hits)
                memory.get_all(user_id="shared", limit=10)
        except Exception:  # collected and reported by the main thread
            errors.append(traceback.format_exc())

    workers = [threading.Thread(target=work, args=(t,)) for t in range(threads)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    assert errors == []
    listed = memory.get_all(user_id="shared", limit=1000)
    assert listed["total"] == threads * per_thread
    assert {r["memory"] for r in listed["results"]} == {
        f"thread {t} remembers item {i}" for t in range(threads) for i in range(per_thread)}


def _process_writer(path, worker, count, barrier, results):
    """Runs in a spawned process: its own Memory on the shared file."""
    try:
        with Memory(config_for(path)) as m:
            barrier.wait(timeout=60)
            for i in range(count):
                m.add(f"process {worker} wrote fact {i}", user_id="shared", infer=False)
                m.update(m.add(f"process {worker} scratch {i}", user_id=f"p{worker}", infer=False)["results"][0]["id"],
                         f"process {worker} scratch {i} (edited)")
        results.put((worker, "ok"))
    except BaseException:
        results.put((worker, traceback.format_exc()))


def test_processes_write_the_same_file_concurrently(tmp_path):
    path = tmp_path / "shared.db"
    with Memory(config_for(path)):  # create the schema first, as an application would
        pass
    ctx = multiprocessing.get_context("spawn")
    workers, count = 2, 15
    barrier, results = ctx.Barrier(workers), ctx.Queue()
    procs = [ctx.Process(target=_process_writer, args=(str(path), w, count, barrier, results))
             for w in range(workers)]
    for p in procs:
        p.start()
    outcomes = dict(results.get(timeout=120) for _ in procs)
    for p in procs:
        p.join(timeout=60)
    assert outcomes == {w: "ok" for w in range(workers)}, outcomes  # no "database is locked", no error
    assert all(p.exitcode == 0 for p in procs)
    with Memory(config_for(path)) as m:
        shared = m.get_all(user_id="shared", limit=1000)
        assert shared["total"] == workers * count
        assert {r["memory"] for r in shared["results"]} == {
            f"process {w} wrote fact {i}" for w in range(workers) for i in range(count)}
        for w in range(workers):
            mine = m.get_all(user_id=f"p{w}", limit=1000)["results"]
            assert sorted(r["memory"] for r in mine) == sorted(
                f"process {w} scratch {i} (edited)" for i in range(count))
            assert all([h["event"] for h in m.history(r["id"])] == ["ADD", "UPDATE"] for r in mine)


def _record(mid, text, vector):
    return MemoryRecord(id=mid, memory=text, hash="h", metadata={}, user_id="alice", agent_id=None, run_id=None,
                        actor_id=None, role="user", memory_type="semantic_memory", created_at="2026-01-01T00:00:00",
                        updated_at=None, timestamp=None, source_message_ids=[], embedding=vector)


def _history(hid, mid):
    return HistoryRecord(id=hid, memory_id=mid, event="ADD", old_memory=None, new_memory="x", actor_id=None,
                         role="user", created_at="2026-01-01T00:00:00", updated_at=None)


@pytest.mark.parametrize("where", ["second insert", "last history row"])
def test_a_write_that_fails_mid_transaction_leaves_nothing(memory, where):
    keep, victim = seed(memory, ["I like tea", "I like coffee"], user_id="alice")
    existing_history = memory.history(keep)[0]["id"]
    store = memory._runtime.store
    vector = np.ones(384, dtype=np.float32) / np.sqrt(384)
    new_id = "11111111-1111-4111-8111-111111111111"
    changes = ChangeSet(
        messages=[MessageRecord(id="22222222-2222-4222-8222-222222222222", role="user", content="logged",
                                actor_id=None, user_id="alice", agent_id=None, run_id=None, timestamp=None,
                                created_at="2026-01-01T00:00:00")],
        inserts=[_record(new_id, "brand new memory", vector)],
        updates=[_record(keep, "tea, rewritten", vector)],
        deletes=[victim],
        history=[_history("33333333-3333-4333-8333-333333333333", new_id)])
    if where == "second insert":  # fails right after the first insert ran
        changes.inserts.append(_record(new_id, "same id again", vector))
    else:  # fails at the very end, after every insert, update and delete ran
        changes.history.append(_history(existing_history, keep))
    before = snapshot(memory)
    with pytest.raises(ValidationError, match="rejected"):
        store.apply(changes)
    assert snapshot(memory) == before
    assert memory.get(new_id) is None and memory.get(victim) is not None
    assert memory.get(keep)["memory"] == "I like tea"
    assert memory.search("brand new memory", user_id="alice")["results"][0]["id"] != new_id
    with closing(sqlite3.connect(memory.config.database_path())) as conn:  # the FTS index rolled back too
        conn.create_function("memlane_keyed", 4, keyed_text, deterministic=True)  # the FTS source view uses it
        conn.execute("INSERT INTO memories_fts(memories_fts, rank) VALUES ('integrity-check', 1)")
    # and the store is still writable afterwards
    seed(memory, ["after the failure"], user_id="alice")
    assert memory.get_all(user_id="alice")["total"] == 3
