"""The `memlane` command line, run as a real subprocess on a real database file."""
import json
import os
import re
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor

import pytest

UNKNOWN = "00000000-0000-4000-8000-000000000000"


def memlane(db, *args):
    env = {**os.environ, "COLUMNS": "200"}  # wide enough that no table cell is shortened
    return subprocess.run([sys.executable, "-m", "memlane.cli", "--db", str(db), *args], capture_output=True,
                          text=True, timeout=120, env=env)


def ok(db, *args):
    proc = memlane(db, *args)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def as_json(db, *args):
    return json.loads(ok(db, "--json", *args))


def table_rows(stdout):
    """The data lines of a table (the header is upper case, a footer says 'n of total')."""
    lines = [line for line in stdout.splitlines() if line.strip()]
    return lines[1:]


def test_lifecycle(tmp_path):
    db = tmp_path / "cli.db"
    out = ok(db, "add", "I'm vegetarian and love Thai food", "--user", "alice", "--metadata", '{"source": "cli"}',
             "--timestamp", "2026-03-02T09:00:00Z", "--no-infer")
    assert out.split()[:3] == ["ID", "EVENT", "MEMORY"]
    [row] = table_rows(out)
    assert re.match(r"^[0-9a-f-]{36}\s+ADD\s+I'm vegetarian and love Thai food$", row)
    food_id = row.split()[0]
    added = as_json(db, "add", "My sister Ana lives in Porto", "--user", "alice", "--role", "assistant", "--no-infer")
    sister_id = added["results"][0]["id"]
    ok(db, "add", "bob likes surfing", "--user", "bob", "--no-infer")

    found = as_json(db, "search", "what food do I like", "--user", "alice")
    assert [r["id"] for r in found["results"]][0] == food_id
    assert {r["id"] for r in found["results"]} == {food_id, sister_id}  # never bob's
    assert all(0 <= r["score"] <= 1 for r in found["results"])
    out = ok(db, "search", "food", "--user", "alice", "--limit", "1")
    assert out.split()[:2] == ["SCORE", "ID"]
    [row] = table_rows(out)
    assert re.match(rf"^\d\.\d{{3}}\s+{food_id}\s+I'm vegetarian and love Thai food\s", row)

    out = ok(db, "list", "--user", "alice")
    assert "I'm vegetarian and love Thai food" in out and "My sister Ana lives in Porto" in out
    assert '{"source": "cli"}' in out and out.rstrip().endswith("2 of 2")
    assert "bob likes surfing" not in out

    item = as_json(db, "get", food_id)
    assert (item["memory"], item["metadata"], item["user_id"]) == (
        "I'm vegetarian and love Thai food", {"source": "cli"}, "alice")
    assert item["timestamp"] == "2026-03-02T09:00:00+00:00"

    out = ok(db, "update", food_id, "I'm vegan now")
    assert "I'm vegan now" in out and "Memory updated successfully!" in out
    history = as_json(db, "history", food_id)
    assert [(h["event"], h["old_memory"], h["new_memory"]) for h in history] == [
        ("ADD", None, "I'm vegetarian and love Thai food"), ("UPDATE", "I'm vegetarian and love Thai food",
                                                           "I'm vegan now")]
    out = ok(db, "history", food_id)
    assert out.split()[:2] == ["EVENT", "OLD_MEMORY"] and len(table_rows(out)) == 2

    assert sister_id in ok(db, "delete", sister_id)
    gone = memlane(db, "get", sister_id)
    assert (gone.returncode, gone.stdout.strip()) == (1, "not found")

    assert as_json(db, "delete", "--all", "--user", "alice")["deleted"] == 1
    assert json.loads(ok(db, "list", "--user", "alice", "--json"))["total"] == 0  # --json after the command too
    bob = as_json(db, "list", "--user", "bob")
    assert [r["memory"] for r in bob["results"]] == ["bob likes surfing"]


ERRORS = {
    "search without scope": (["search", "food"], "user_id"),
    "delete --all without scope": (["delete", "--all"], "user_id"),
    "list with invalid JSON filters": (["list", "--user", "alice", "--filters", "{bad"], "--filters"),
    "get a malformed id": (["get", "not-a-uuid"], "UUID"),
    "update an unknown id": (["update", UNKNOWN, "text"], UNKNOWN),
    "search with a threshold above 1": (["search", "x", "--user", "alice", "--threshold", "2"], "threshold"),
    "delete with neither id nor --all": (["delete", "--user", "alice"], "--all"),
}


def test_errors_exit_2_with_a_message_on_stderr(tmp_path):
    db = tmp_path / "err.db"
    ok(db, "add", "keep me", "--user", "alice", "--no-infer")
    with ThreadPoolExecutor(os.cpu_count()) as pool:  # independent processes: run them side by side
        procs = dict(zip(ERRORS, pool.map(lambda case: memlane(db, *case[0]), ERRORS.values())))
    for name, proc in procs.items():
        expected = ERRORS[name][1]
        assert proc.returncode == 2, (name, proc.returncode, proc.stderr)
        assert expected in proc.stderr, (name, proc.stderr)
        assert "Traceback" not in proc.stderr, name
        assert proc.stdout == "", name
    assert as_json(db, "list", "--user", "alice")["total"] == 1  # nothing was written or deleted


def test_demo_runs_and_prints_scores(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "memlane.cli", "demo"], capture_output=True, text=True, timeout=120,
                          env={**os.environ, "COLUMNS": "200"})
    assert proc.returncode == 0, proc.stderr
    assert "7 memories stored for demo-user" in proc.stdout
    scores = [float(s) for s in re.findall(r"^\s+(\d\.\d{3})\s", proc.stdout, flags=re.M)]
    assert len(scores) == 10 and all(0 <= s <= 1 for s in scores)
    # each of the five questions is followed by its two best memories
    assert len(re.findall(r"^\? .+\n\s+\d\.\d{3}  \S.*\n\s+\d\.\d{3}  \S", proc.stdout, flags=re.M)) == 5
    assert "another user sees 0 of demo-user's memories" in proc.stdout


@pytest.mark.parametrize("args", [["--help"], ["search", "--help"]])
def test_help(tmp_path, args):
    out = ok(tmp_path / "h.db", *args)
    assert "usage: memlane" in out


def test_search_with_the_packaged_reranker(tmp_path):
    db = tmp_path / "rr.db"
    for text in ("I play the violin in an orchestra", "I painted a sunrise over the lake", "We go camping in summer"):
        ok(db, "add", text, "--user", "alice", "--no-infer")
    plain = as_json(db, "search", "What instrument do I play?", "--user", "alice", "--no-rerank")["results"]
    reranked = as_json(db, "search", "What instrument do I play?", "--user", "alice", "--rerank")["results"]
    assert "violin" in reranked[0]["memory"] and len(reranked) == len(plain) == 3
    # the blend (fused + 0.5 * relevance) / 1.5 changes the scores
    assert {r["id"]: r["score"] for r in reranked} != {r["id"]: r["score"] for r in plain}


def test_reindex_moves_a_file_onto_the_packaged_embedders_space(tmp_path):
    db = tmp_path / "cli.db"
    ok(db, "add", "I keep bees on the roof. They make honey.", "--user", "bo", "--no-infer")
    # pretend the file was made without sentence pooling (another vector space): normal commands refuse it
    import sqlite3
    from contextlib import closing
    with closing(sqlite3.connect(db)) as conn:
        conn.execute("UPDATE meta SET value = 'all-MiniLM-L6-v2' WHERE key = 'embedding_model'")
        conn.commit()
    refused = memlane(db, "list", "--user", "bo")
    assert refused.returncode == 2 and "memlane reindex" in refused.stderr
    proc = memlane(db, "reindex", "--batch-size", "1")
    assert proc.returncode == 0, proc.stderr
    assert "reindex [" in proc.stderr  # the progress bar
    assert table_rows(proc.stdout)[0].split() == ["1", "all-MiniLM-L6-v2+sentence-pooled", "384"]
    assert as_json(db, "search", "who keeps bees", "--user", "bo")["results"][0]["memory"].startswith("I keep bees")
    bad = memlane(db, "reindex", "--batch-size", "0")
    assert bad.returncode == 2 and "batch_size must be an integer" in bad.stderr
