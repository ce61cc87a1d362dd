"""`memlane doctor`: a clean store after real adds, updates and deletes has no violations; each invariant,
broken by hand with raw SQL on a copy, is reported with its kind and the ids involved; --repair mends the
derivable ones; the CLI's exit codes."""
import json
import os
import shutil
import sqlite3
import subprocess
import sys
import threading
import time
from contextlib import closing

import numpy as np
import pytest

from memlane import Memory
from memlane.models import text_hash
from memlane.stores import sqlite_doctor as doctor
from memlane.stores.scoped_terms import keyed_text
from memlane.stores.sqlite import _fold, _half

from conftest import config_for

DERIVABLE_CASES = ("vector_missing", "vector_mismatch", "vector_orphan", "fts_mismatch", "fts_orphan",
                   "hash_mismatch", "job_pending_applied")


@pytest.fixture(scope="module")
def base(tmp_path_factory):
    """One store made through the public API: verbatim adds in several scopes, a text update, a
    metadata-only update, a delete, and a background add that ran to completion."""
    path = tmp_path_factory.mktemp("doctor") / "base.db"
    ids = {}
    with Memory(config_for(path)) as m:
        first = m.add([{"role": "user", "content": "I moved to Lisbon last spring"},
                       {"role": "assistant", "content": "Lisbon is lovely in spring"},
                       {"role": "user", "content": "I am allergic to peanuts"}],
                      user_id="alice", agent_id="helper", infer=False)["results"]
        ids["edited"], ids["deleted"], ids["meta"] = (r["id"] for r in first)
        ids["run"] = m.add("Booked a table for Friday", user_id="alice", run_id="trip-1",
                           infer=False)["results"][0]["id"]
        m.update(ids["edited"], "I moved to Porto last spring")
        m.update(ids["meta"], metadata={"severity": "high"})
        m.delete(ids["deleted"])
        job = m.add([{"role": "user", "content": "Bob plays the cello"}], user_id="bob", infer=False,
                    background=True)
        assert m.wait(job["job_id"], timeout=60)["status"] == "done"
        ids["job"] = job["job_id"]
        ids["bob"] = m.get_all(user_id="bob")["results"][0]["id"]
    # Memory.close() leaves the job worker thread's connection open: fold the WAL into the file so a
    # copy of the file alone is the whole store.
    with closing(sqlite3.connect(path)) as conn:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    return path, ids


@pytest.fixture
def copy(base, tmp_path):
    path, ids = base
    target = tmp_path / "copy.db"
    shutil.copy(path, target)
    if os.path.exists(f"{path}-wal"):
        shutil.copy(f"{path}-wal", f"{target}-wal")
    return target, ids


def raw(path) -> sqlite3.Connection:
    """A plain connection for corrupting a copy; the triggers need memlane's SQL functions."""
    conn = sqlite3.connect(path, isolation_level=None)
    conn.create_function("memlane_keyed", 4, keyed_text, deterministic=True)
    conn.create_function("memlane_half", 1, _half, deterministic=True)
    conn.create_function("memlane_fold", 1, _fold, deterministic=True)
    return conn


def pk_of(conn, memory_id) -> int:
    return conn.execute("SELECT pk FROM memories WHERE id = ?", (memory_id,)).fetchone()[0]


def kinds(report) -> dict[str, int]:
    return report.violation_counts


def cli(db, *args, env=None):
    return subprocess.run([sys.executable, "-m", "memlane.cli", "--db", str(db), "doctor", *args],
                          capture_output=True, text=True, timeout=120, env={**os.environ, **(env or {})})


# ------------------------------------------------------------------ clean stores

def test_clean_store_has_no_violations(base):
    path, ids = base
    report = doctor.check(path)
    assert report.ok, report.summary()
    assert report.violations == []
    assert report.counts["memories"] == 4          # 3 + 1 - 1 deleted + bob's
    assert report.counts["memory_vectors"] == 7    # alice+helper x2, alice+trip-1, bob
    assert report.counts["fts_documents"] == 4
    assert report.counts["jobs_done"] == 1
    assert "ok: no violations" in report.summary()


def test_repair_of_a_clean_store_changes_nothing(copy):
    path, _ = copy
    before = path.read_bytes()
    report = doctor.repair(path)
    assert report.ok and report.repaired == [] and report.before == {}
    with closing(sqlite3.connect(path)) as conn:  # same rows (the file itself may be checkpointed)
        assert conn.execute("SELECT count(*) FROM memories").fetchone()[0] == 4
    assert len(before) > 0


def test_check_reads_one_snapshot_while_a_writer_runs(tmp_path):
    """A writer adding, updating and deleting (one at a time, so the core's own races are out of play)
    while the doctor runs again and again: every check sees a consistent store."""
    path = tmp_path / "live.db"
    stop, errors = threading.Event(), []
    with Memory(config_for(path)) as m:
        m.add("seed memory", user_id="w", infer=False)

        def write():
            i = 0
            try:
                while not stop.is_set():
                    got = m.add([{"role": "user", "content": f"fact number {i} about writing"},
                                 {"role": "assistant", "content": f"reply {i}"}], user_id="w", agent_id="x",
                                infer=False)["results"]
                    m.update(got[0]["id"], f"fact number {i} about writing, edited")
                    m.update(got[1]["id"], metadata={"i": i})
                    m.delete(got[1]["id"])
                    i += 1
            except Exception as exc:  # reported by the main thread
                errors.append(exc)

        writer = threading.Thread(target=write)
        writer.start()
        try:
            deadline, checks = time.monotonic() + 6, 0
            while time.monotonic() < deadline:
                report = doctor.check(path, fts_integrity=checks % 3 == 0)
                assert report.ok, report.summary()
                checks += 1
        finally:
            stop.set()
            writer.join()
    assert errors == []
    assert checks >= 3
    assert doctor.check(path).ok


# ------------------------------------------------------------------ each invariant, broken by hand

def test_missing_vector_row_is_reported_and_repaired(copy):
    path, ids = copy
    with closing(raw(path)) as conn:
        pk = pk_of(conn, ids["edited"])
        conn.execute("DELETE FROM memory_vectors WHERE pk = ? AND scope = 'agent_id:helper'", (pk,))
    report = doctor.check(path)
    assert kinds(report) == {"vector_missing": 1}
    assert report.violations[0].ids == [ids["edited"]]
    assert "agent_id:helper" in report.violations[0].message
    fixed = doctor.repair(path)
    assert fixed.ok, fixed.summary()
    assert fixed.before == {"vector_missing": 1} and fixed.repaired


def test_wrong_vector_copy_is_reported_and_repaired(copy):
    path, ids = copy
    with closing(raw(path)) as conn:
        pk = pk_of(conn, ids["run"])
        conn.execute("UPDATE memory_vectors SET embedding = zeroblob(length(embedding)) WHERE pk = ? AND "
                     "scope = 'run_id:trip-1'", (pk,))
    report = doctor.check(path)
    assert kinds(report) == {"vector_mismatch": 1}
    assert report.violations[0].ids == [ids["run"]]
    assert doctor.repair(path).ok


def test_orphan_vector_rows_are_reported_and_repaired(copy):
    path, ids = copy
    with closing(raw(path)) as conn:
        pk = pk_of(conn, ids["bob"])
        blob = conn.execute("SELECT embedding FROM memory_vectors WHERE pk = ?", (pk,)).fetchone()[0]
        conn.execute("INSERT INTO memory_vectors VALUES ('user_id:mallory', ?, ?)", (pk, blob))  # a scope it lacks
        conn.execute("INSERT INTO memory_vectors VALUES ('user_id:bob', 999999, ?)", (blob,))  # no such memory
    report = doctor.check(path)
    assert kinds(report) == {"vector_orphan": 2}
    assert sorted(v.ids[0] for v in report.violations) == sorted([ids["bob"], "pk=999999"])
    fixed = doctor.repair(path)
    assert fixed.ok, fixed.summary()
    with closing(raw(path)) as conn:
        assert conn.execute("SELECT count(*) FROM memory_vectors").fetchone()[0] == 7


def test_nan_embedding_is_reported_not_repaired(copy):
    path, ids = copy
    with closing(raw(path)) as conn:
        dims = len(conn.execute("SELECT embedding FROM memories LIMIT 1").fetchone()[0]) // 4
        bad = np.full(dims, np.nan, dtype=np.float32).tobytes()
        conn.execute("UPDATE memories SET embedding = ? WHERE id = ?", (bad, ids["bob"]))  # triggers copy it
    report = doctor.check(path)
    assert kinds(report) == {"vector_invalid": 1}
    assert report.violations[0].ids == [ids["bob"]]
    assert kinds(doctor.repair(path)) == {"vector_invalid": 1}


def test_fts_row_dropped_with_the_delete_command(copy):
    path, ids = copy
    with closing(raw(path)) as conn:
        pk = pk_of(conn, ids["meta"])
        conn.execute("INSERT INTO memories_fts(memories_fts, rowid, memory, context) "
                     "SELECT 'delete', pk, memory, context FROM memories_fts_source WHERE pk = ?", (pk,))
    report = doctor.check(path)
    assert kinds(report) == {"fts_mismatch": 1}
    assert report.violations[0].ids == [ids["meta"]]
    with Memory(config_for(path)) as m:  # the symptom: keyword search no longer finds it
        assert m.search("peanuts allergic", user_id="alice")["results"]
    fixed = doctor.repair(path)
    assert fixed.ok, fixed.summary()
    assert "full-text index rebuilt from the memories" in fixed.repaired


def test_fts_terms_of_a_row_that_is_not_a_memory(copy):
    path, ids = copy
    with closing(raw(path)) as conn:
        conn.execute("INSERT INTO memories_fts(rowid, memory, context) VALUES (424242, 'ghost words', NULL)")
    report = doctor.check(path)
    assert kinds(report) == {"fts_orphan": 1}
    assert report.violations[0].ids == ["pk=424242"]
    assert doctor.repair(path).ok


def test_fts_index_stale_after_a_content_change_behind_its_back(copy):
    path, ids = copy
    with closing(raw(path)) as conn:
        conn.execute("DROP TRIGGER memories_bu")
        conn.execute("DROP TRIGGER memories_au")
        conn.execute("UPDATE memories SET memory = 'I moved to Faro last spring', hash = ? WHERE id = ?",
                     (text_hash("I moved to Faro last spring"), ids["edited"]))
        conn.execute("INSERT INTO history (id, memory_id, event, old_memory, new_memory, created_at) VALUES "
                     "('h-faro', ?, 'UPDATE', 'I moved to Porto last spring', 'I moved to Faro last spring', "
                     "'2026-01-01')", (ids["edited"],))
    report = doctor.check(path)  # one word changed, indexed under two scope keys (alice, helper)
    assert set(kinds(report)) == {"fts_mismatch"}
    assert report.violations[0].ids == [ids["edited"]]
    assert "2 term(s) of its content missing" in report.violations[0].message


def test_hash_mismatch_is_repaired(copy):
    path, ids = copy
    with closing(raw(path)) as conn:
        conn.execute("UPDATE memories SET hash = 'x' WHERE id = ?", (ids["run"],))
    assert kinds(doctor.check(path)) == {"hash_mismatch": 1}
    assert doctor.repair(path).ok


def test_history_rows_added_or_removed_by_hand(copy):
    path, ids = copy
    with closing(raw(path)) as conn:
        add = ("INSERT INTO history (id, memory_id, event, old_memory, new_memory, created_at) "
               "VALUES (?, ?, ?, ?, ?, '2026-01-01')")
        # an UPDATE that does not start from the text the memory had, and leaves text it does not have
        conn.execute(add, ("h1", ids["run"], "UPDATE", "something else", "Booked a table for Saturday"))
        # a second DELETE, as a delete racing a delete writes
        conn.execute(add, ("h2", ids["deleted"], "DELETE", "Lisbon is lovely in spring", None))
        # a live memory whose history says it was deleted
        conn.execute(add, ("h3", ids["bob"], "DELETE", "Bob plays the cello", None))
        # a live memory with no ADD
        conn.execute("DELETE FROM history WHERE memory_id = ? AND event = 'ADD'", (ids["meta"],))
        # a memory that is gone without its DELETE
        conn.execute(add, ("h4", "00000000-0000-4000-8000-00000000000a", "ADD", None, "vanished"))
    report = doctor.check(path)
    assert kinds(report) == {"history_chain": 1, "history_stale": 1, "history_multiple_delete": 1,
                             "history_live_deleted": 1, "history_missing_add": 1, "history_missing_delete": 1}
    by_kind = {v.kind: v.ids for v in report.violations}
    assert by_kind["history_chain"] == [ids["run"]]
    assert by_kind["history_stale"] == [ids["run"]]
    assert by_kind["history_multiple_delete"] == [ids["deleted"]]
    assert by_kind["history_live_deleted"] == [ids["bob"]]
    assert by_kind["history_missing_add"] == [ids["meta"]]
    assert by_kind["history_missing_delete"] == ["00000000-0000-4000-8000-00000000000a"]
    after = doctor.repair(path)  # not derivable: reported, never changed
    assert kinds(after) == kinds(report) and after.repaired == []


def test_history_metadata_must_match_where_recorded(copy):
    path, ids = copy
    with closing(raw(path)) as conn:
        if "new_metadata" not in {r[1] for r in conn.execute("PRAGMA table_info(history)")}:
            pytest.skip("schema before 4: history has no metadata columns")
        conn.execute("INSERT INTO history (id, memory_id, event, old_memory, new_memory, created_at, "
                     "old_metadata, new_metadata) VALUES ('hm', ?, 'UPDATE', 'I am allergic to peanuts', "
                     "'I am allergic to peanuts', '2026-01-01', '{\"severity\": \"high\"}', '{\"severity\": \"low\"}')",
                     (ids["meta"],))
    report = doctor.check(path)
    assert kinds(report) == {"history_stale": 1}
    assert "metadata" in report.violations[0].message


def test_provenance_to_a_message_that_is_not_logged(copy):
    path, ids = copy
    with closing(raw(path)) as conn:
        source = json.loads(conn.execute("SELECT source_message_ids FROM memories WHERE id = ?",
                                         (ids["run"],)).fetchone()[0])[0]
        conn.execute("DELETE FROM messages WHERE id = ?", (source,))
    report = doctor.check(path)
    assert kinds(report) == {"provenance_missing": 1}
    assert report.violations[0].ids == [ids["run"], source]
    assert kinds(doctor.repair(path)) == {"provenance_missing": 1}


def test_job_queued_again_after_it_was_applied(copy):
    """A job whose memories are stored but which is queued again would be applied twice: reported, and
    repair marks it done so a Memory opened on the file does not run it again."""
    path, ids = copy
    with closing(raw(path)) as conn:
        conn.execute("UPDATE jobs SET status = 'queued', result = NULL WHERE id = ?", (ids["job"],))
    report = doctor.check(path)
    assert kinds(report) == {"job_pending_applied": 1}
    assert report.violations[0].ids == [ids["job"], ids["bob"]]
    fixed = doctor.repair(path)
    assert fixed.ok, fixed.summary()
    with Memory(config_for(path)) as m:
        job = m.job(ids["job"])
        assert job["status"] == "done"
        assert job["result"]["results"] == [{"id": ids["bob"], "memory": "Bob plays the cello", "event": "ADD"}]
        time.sleep(0.3)
        assert m.get_all(user_id="bob")["total"] == 1


def test_done_job_without_result(copy):
    path, ids = copy
    with closing(raw(path)) as conn:
        conn.execute("UPDATE jobs SET result = NULL WHERE id = ?", (ids["job"],))
    report = doctor.check(path)
    assert kinds(report) == {"job_done_without_result": 1}
    assert report.violations[0].ids == [ids["job"]]


def test_duplicate_memory_from_the_same_messages(copy):
    """What a job applied twice leaves: the same text from the same source messages, twice in a scope."""
    path, ids = copy
    dup = "00000000-0000-4000-8000-0000000000dd"
    with closing(raw(path)) as conn:
        cols = [r[1] for r in conn.execute("PRAGMA table_info(memories)") if r[1] not in ("pk", "id")]
        conn.execute(f"INSERT INTO memories (id, {', '.join(cols)}) SELECT ?, {', '.join(cols)} FROM memories "
                     "WHERE id = ?", (dup, ids["bob"]))
        conn.execute("INSERT INTO history (id, memory_id, event, old_memory, new_memory, created_at) VALUES "
                     "('hd', ?, 'ADD', NULL, 'Bob plays the cello', '2026-01-01')", (dup,))
    report = doctor.check(path)
    assert kinds(report) == {"duplicate_memory": 1}
    assert report.violations[0].ids == sorted([ids["bob"], dup])
    assert kinds(doctor.repair(path)) == {"duplicate_memory": 1}


def test_a_store_from_before_memory_vectors_is_reported(copy):
    path, _ = copy
    with closing(raw(path)) as conn:
        for name in ("memory_vectors_ai", "memory_vectors_ad", "memory_vectors_au"):
            conn.execute(f"DROP TRIGGER {name}")
        conn.execute("DROP TABLE memory_vectors")
    report = doctor.check(path)
    assert kinds(report) == {"schema": 1}


def test_violations_listed_are_bounded_but_all_counted(copy):
    path, _ = copy
    with closing(raw(path)) as conn:
        conn.execute("DELETE FROM memory_vectors")
    report = doctor.check(path, max_per_kind=2)
    assert report.violation_counts == {"vector_missing": 7}
    assert len(report.violations) == 2
    assert "… and 5 more" in report.summary()


# ------------------------------------------------------------------ the command line

def test_cli_exit_codes_and_repair(copy):
    path, ids = copy
    proc = cli(path)
    assert proc.returncode == 0, proc.stderr
    assert "ok: no violations" in proc.stdout
    with closing(raw(path)) as conn:
        conn.execute("DELETE FROM memory_vectors WHERE pk = ?", (pk_of(conn, ids["bob"]),))
        conn.execute("INSERT INTO memories_fts(memories_fts, rowid, memory, context) "
                     "SELECT 'delete', pk, memory, context FROM memories_fts_source WHERE pk = ?",
                     (pk_of(conn, ids["run"]),))
    proc = cli(path)
    assert proc.returncode == 1
    assert "vector_missing (1)" in proc.stdout and "fts_mismatch (1)" in proc.stdout
    proc = cli(path, "--json")
    assert proc.returncode == 1
    out = json.loads(proc.stdout)
    assert out["ok"] is False
    assert out["violation_counts"] == {"fts_mismatch": 1, "vector_missing": 1}
    assert {tuple(v["ids"]) for v in out["violations"]} == {(ids["bob"],), (ids["run"],)}
    proc = cli(path, "--repair")
    assert proc.returncode == 0, proc.stdout
    assert "2 mended" in proc.stdout
    assert cli(path).returncode == 0


def test_cli_repair_exits_1_when_violations_remain(copy):
    path, ids = copy
    with closing(raw(path)) as conn:
        conn.execute("DELETE FROM memory_vectors WHERE pk = ?", (pk_of(conn, ids["bob"]),))
        conn.execute("DELETE FROM messages")  # provenance cannot be derived
    proc = cli(path, "--repair", "--json")
    assert proc.returncode == 1
    out = json.loads(proc.stdout)
    assert set(out["violation_counts"]) == {"provenance_missing"}
    assert out["before"]["vector_missing"] == 1


@pytest.mark.parametrize("what", ["missing", "not sqlite", "other sqlite"])
def test_cli_exit_2_when_the_file_is_not_a_memlane_database(tmp_path, what):
    path = tmp_path / "x.db"
    if what == "not sqlite":
        path.write_bytes(b"this is not a database, just text" * 100)
    elif what == "other sqlite":
        with closing(sqlite3.connect(path)) as conn:
            conn.execute("CREATE TABLE t (x)")
            conn.commit()
    before = path.read_bytes() if path.exists() else None
    proc = cli(path)
    assert proc.returncode == 2
    assert "cannot open" in proc.stderr and "memlane database" in proc.stderr
    assert (path.read_bytes() if path.exists() else None) == before  # left as it was, not created
    with pytest.raises(doctor.NotAMemlaneDatabase):
        doctor.check(path)
