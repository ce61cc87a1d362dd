"""Every mutation reads and writes as one unit (compare-and-set on the memory's version): races between two
calls are replayed deterministically by stepping the pipeline's generators by hand, so that one call
commits between the other's read and its write; threaded runs check the same on real threads."""
import json
import sqlite3
import threading
import time
from contextlib import closing

import pytest

from memlane import ConflictError, Memory, NotFoundError, pipeline, register_provider
from memlane.drive import drive
from memlane.effects import Complete, StoreCall
from memlane.models import ChangeSet, JobCompletion

from conftest import seed
from scripted_llm import ScriptedLLM
from test_pipeline_llm import llm_config

register_provider("llm", "scripted", ScriptedLLM)


def run_with(m, op, when, then):
    """Drive `op` to the end with m's runtime; right after the first effect for which when(effect) holds
    is performed, then() runs: another caller's turn between this call's read and its write."""
    pending = [True]

    def perform(effect):
        try:
            return m._runtime.perform(effect)
        finally:
            if pending and when(effect):
                pending.clear()
                then()

    return drive(op, perform)


def first_read(effect):
    return isinstance(effect, StoreCall) and effect.method == "get"


def test_delete_racing_delete_one_wins_one_not_found(memory):
    (mid,) = seed(memory, ["to be deleted"], user_id="u")
    with pytest.raises(NotFoundError):  # the winner commits between the loser's read and its write
        run_with(memory, pipeline.delete(memory._settings, mid), first_read, lambda: memory.delete(mid))
    assert [h["event"] for h in memory.history(mid)] == ["ADD", "DELETE"]


def test_delete_all_racing_delete_deletes_each_memory_once(memory):
    ids = seed(memory, ["one", "two", "three"], user_id="u")
    result = run_with(memory, pipeline.delete_all(memory._settings, user_id="u"), first_read,
                      lambda: memory.delete(ids[1]))
    assert result["deleted"] == 2
    for mid in ids:
        assert [h["event"] for h in memory.history(mid)].count("DELETE") == 1


def test_text_update_racing_metadata_update_loses_neither(memory):
    (mid,) = seed(memory, ["original"], user_id="u")
    # the metadata update commits while the text update holds a stale read
    run_with(memory, pipeline.update(memory._settings, mid, "edited text"), first_read,
             lambda: memory.update(mid, metadata={"tag": "kept"}))
    got = memory.get(mid)
    assert (got["memory"], got["metadata"]) == ("edited text", {"tag": "kept"})
    events = memory.history(mid)
    assert [(e["old_memory"], e["new_memory"]) for e in events] == [
        (None, "original"), ("original", "original"), ("original", "edited text")]
    assert events[1]["created_at"] <= events[2]["created_at"]  # history follows commit order


def test_metadata_update_records_old_and_new_metadata(memory):
    mid = memory.add("note", user_id="u", metadata={"a": 1}, infer=False)["results"][0]["id"]
    memory.update(mid, metadata={"a": 2, "b": [1]})
    memory.update(mid, text="note two")
    events = memory.history(mid)
    assert (events[1]["old_metadata"], events[1]["new_metadata"]) == ({"a": 1}, {"a": 2, "b": [1]})
    assert (events[2]["old_metadata"], events[2]["new_metadata"]) == (None, None)  # text only


def test_update_of_a_memory_deleted_meanwhile_is_not_found(memory):
    (mid,) = seed(memory, ["short lived"], user_id="u")
    with pytest.raises(NotFoundError):
        run_with(memory, pipeline.update(memory._settings, mid, None, {"x": 1}), first_read,
                 lambda: memory.delete(mid))
    assert memory.get(mid) is None
    assert [h["event"] for h in memory.history(mid)] == ["ADD", "DELETE"]


def test_stale_changeset_writes_nothing(memory):
    (mid,) = seed(memory, ["versioned"], user_id="u")
    store = memory._runtime.store
    (rec,) = store.get([mid], True)
    memory.update(mid, metadata={"v": 2})
    with pytest.raises(ConflictError) as info:
        store.apply(ChangeSet(deletes=[mid], expected={mid: rec.version}))
    assert info.value.ids == (mid,)
    assert memory.get(mid)["metadata"] == {"v": 2}


def test_llm_decision_on_a_memory_deleted_meanwhile_is_reported_not_fatal(tmp_path):
    with Memory(llm_config(tmp_path / "llm.db")) as m:
        city = m.add("My favourite city is Lisbon", user_id="a")["results"][0]["id"]
        op = pipeline.add(m._settings, [{"role": "user", "content": "My favourite city is Porto"},
                                        {"role": "user", "content": "I like chess"}], user_id="a")
        # the LLM decides an UPDATE of the city memory, which another call deletes before the add commits
        result = run_with(m, op, lambda e: isinstance(e, Complete), lambda: m.delete(city))
        assert [(r["event"], r["memory"]) for r in result["results"]] == [("ADD", "Likes chess")]
        assert [r["reason"].split(":")[0] for r in result["rejected"]] == ["conflict"]
        assert result["rejected"][0]["decision"]["memory_id"] == city
        assert m.get(city) is None
        assert [h["event"] for h in m.history(city)] == ["ADD", "DELETE"]
        assert [r["memory"] for r in m.get_all(user_id="a")["results"]] == ["Likes chess"]


def test_threads_updating_one_memory_lose_no_acknowledged_update(memory):
    (mid,) = seed(memory, ["v0"], user_id="u")
    acked: list[tuple[str, object]] = []
    lock = threading.Lock()

    def writer(n):
        for i in range(8):
            if n == 0:
                memory.update(mid, text=f"text {i}")
                with lock:
                    acked.append(("text", f"text {i}"))
            else:
                meta = {"writer": n, "i": i}
                memory.update(mid, metadata=meta)
                with lock:
                    acked.append(("meta", meta))

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    events = memory.history(mid)[1:]
    assert len(events) == len(acked) == 32
    # a chain: each event starts from the state the previous one left
    text, meta = "v0", {}
    for e in events:
        assert e["old_memory"] == text
        text = e["new_memory"]
        if e["new_metadata"] is not None:
            assert e["old_metadata"] == meta
            meta = e["new_metadata"]
    assert [e["created_at"] for e in events] == sorted(e["created_at"] for e in events)
    final = memory.get(mid)
    assert (final["memory"], final["metadata"]) == (text, meta)
    assert {json.dumps(v, sort_keys=True) for k, v in acked if k == "meta"} == \
        {json.dumps(e["new_metadata"], sort_keys=True) for e in events if e["new_metadata"] is not None}


def test_threads_deleting_one_memory_record_one_delete(memory):
    (mid,) = seed(memory, ["contested"], user_id="u")
    outcomes = []

    def deleter():
        try:
            memory.delete(mid)
            outcomes.append("ok")
        except NotFoundError:
            outcomes.append("not found")

    threads = [threading.Thread(target=deleter) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(outcomes) == ["not found"] * 5 + ["ok"]
    assert [h["event"] for h in memory.history(mid)] == ["ADD", "DELETE"]


# ------------------------------------------------------------------ background jobs: exactly once

def job_row(path, job_id):
    with closing(sqlite3.connect(path)) as conn:
        return conn.execute("SELECT status, lease_owner, attempts FROM jobs WHERE id = ?", (job_id,)).fetchone()


class Crash(BaseException):
    """Stands for the process dying: raised where no handler of the worker catches it."""


@pytest.mark.filterwarnings("ignore::pytest.PytestUnhandledThreadExceptionWarning")
def test_job_is_done_in_the_same_transaction_as_its_memories(tmp_path, monkeypatch):
    path = tmp_path / "jobs.db"
    from conftest import config_for
    m = Memory(config_for(path))
    # The worker dies right after the job's write committed, before its own bookkeeping runs.
    monkeypatch.setattr(m._queue, "succeed", lambda *a: (_ for _ in ()).throw(Crash()))
    job_id = m.add("I like rowing", user_id="r", background=True)["job_id"]
    deadline = time.monotonic() + 30
    while m._worker._thread.is_alive() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert job_row(path, job_id)[0] == "done"
    m.close()
    with Memory(config_for(path)) as again:  # a fresh process on the file would resume queued jobs
        assert again.wait(job_id, timeout=5)["status"] == "done"
        assert [r["memory"] for r in again.get_all(user_id="r")["results"]] == ["I like rowing"]
        assert again.job(job_id)["result"]["results"][0]["memory"] == "I like rowing"


def test_final_write_of_a_job_whose_lease_was_taken_writes_nothing(memory, tmp_path):
    queue = memory._queue
    job_id = queue.enqueue({"x": 1})
    assert queue.claim("host:1:a")[0] == job_id
    with closing(sqlite3.connect(memory.config.database_path())) as conn:  # another worker took it over
        conn.execute("UPDATE jobs SET lease_owner = 'host:2:b' WHERE id = ?", (job_id,))
        conn.commit()
    (mid,) = seed(memory, ["x"], user_id="u")
    store = memory._runtime.store
    (rec,) = store.get([mid], True)
    with pytest.raises(ConflictError):
        store.apply(ChangeSet(deletes=[mid], expected={mid: rec.version},
                              job=JobCompletion(job_id, "host:1:a", {"ok": True})))
    assert memory.get(mid) is not None
    assert job_row(memory.config.database_path(), job_id)[:2] == ("running", "host:2:b")


def test_a_schema_3_file_gains_versions_and_history_metadata_on_open(tmp_path):
    from conftest import config_for
    path = tmp_path / "v3.db"
    with Memory(config_for(path)) as m:
        (mid,) = seed(m, ["from an older memlane"], user_id="u")
    with closing(sqlite3.connect(path)) as conn:
        from memlane.stores.scoped_terms import keyed_text
        conn.create_function("memlane_keyed", 4, keyed_text, deterministic=True)  # the schema's triggers use it
        conn.executescript("ALTER TABLE memories DROP COLUMN version; ALTER TABLE history DROP COLUMN "
                           "old_metadata; ALTER TABLE history DROP COLUMN new_metadata; "
                           "UPDATE meta SET value = '3' WHERE key = 'schema_version';")
    with Memory(config_for(path)) as m:
        m.update(mid, metadata={"k": 1})
        assert m.history(mid)[-1]["new_metadata"] == {"k": 1}
        assert m._runtime.store.get([mid])[0].version == 2


def test_delete_racing_an_update_that_retells_the_next_turn(memory, monkeypatch):
    # delete(A) finds the turn after A by its context; an update of A commits before delete reads that turn
    first, second = seed(memory, ["I adopted a cat", "What is its name?"], user_id="u")
    store = memory._runtime.store
    real_get, raced = store.get, []

    def get(ids, *args):
        if ids == [second] and not raced:
            raced.append(True)
            memory.update(first, text="I adopted a dog")  # retells the next turn's context
        return real_get(ids, *args)

    monkeypatch.setattr(store, "get", get)
    memory.delete(first)
    assert raced and memory.get(first) is None
    assert store.get([second])[0].context is None
    assert [h["event"] for h in memory.history(first)] == ["ADD", "UPDATE", "DELETE"]
