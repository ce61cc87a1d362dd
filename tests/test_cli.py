"""The `memlane` command line, run as a real subprocess on a real database file."""
import json
import logging
import os
import re
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor

import pytest

from memlane import __version__
from memlane import cli
from memlane.errors import InternalError, NotFoundError, ProviderError

UNKNOWN = "00000000-0000-4000-8000-000000000000"


def command(db, *args):
    return [sys.executable, "-m", "memlane.cli", "--db", str(db), *args]


def environment(**extra):
    # wide enough that no table cell is shortened; no provider key picks an LLM up from the environment
    return {**os.environ, "COLUMNS": "200", "MEMLANE_LLM": "none", **extra}


def memlane(db, *args, **env):
    # stdin is not a terminal (and never the one pytest runs in, which delete --all would ask on)
    return subprocess.run(command(db, *args), capture_output=True, text=True, timeout=120,
                          stdin=subprocess.DEVNULL, env=environment(**env))


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

    out = ok(db, "get", food_id)  # one field a line, nothing shortened
    assert re.search(rf"^id:\s+{food_id}$", out, flags=re.M)
    assert re.search(r"^memory:\s+I'm vegan now$", out, flags=re.M)
    assert re.search(r"^user_id:\s+alice$", out, flags=re.M) and "agent_id" not in out  # empty fields left out

    assert sister_id in ok(db, "delete", sister_id)
    gone = memlane(db, "get", sister_id)
    assert (gone.returncode, gone.stdout, gone.stderr) == (1, "", f"error: memory {sister_id} not found\n")

    assert as_json(db, "delete", "--all", "--user", "alice", "--yes")["deleted"] == 1
    assert json.loads(ok(db, "list", "--user", "alice", "--json"))["total"] == 0  # --json after the command too
    bob = as_json(db, "list", "--user", "bob")
    assert [r["memory"] for r in bob["results"]] == ["bob likes surfing"]


ERRORS = {
    "search without scope": (["search", "food"], "user_id"),
    "delete --all without scope": (["delete", "--all"], "user_id"),
    "list with invalid JSON filters": (["list", "--user", "alice", "--filters", "{bad"], "--filters"),
    "get a malformed id": (["get", "not-a-uuid"], "UUID"),
    "get an id prefix": (["get", "0000000"], "not a whole memory id"),
    "update with neither text nor metadata": (["update", UNKNOWN], "needs text"),
    "search with a threshold above 1": (["search", "x", "--user", "alice", "--threshold", "2"], "threshold"),
    "delete with neither id nor --all": (["delete", "--user", "alice"], "--all"),
    "delete with both an id and --all": (["delete", UNKNOWN, "--all", "--user", "alice", "--yes"], "not both"),
    "delete --all without --yes and no terminal": (["delete", "--all", "--user", "alice"], "pass --yes"),
    "an unknown option": (["list", "--user", "alice", "--nope"], "unrecognized arguments"),
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


NOT_FOUND = {
    "get": ["get", UNKNOWN],
    "get --json": ["get", UNKNOWN, "--json"],
    "update": ["update", UNKNOWN, "text"],
    "delete": ["delete", UNKNOWN],
    "history": ["history", UNKNOWN],
    "history --json": ["history", UNKNOWN, "--json"],
}


def test_not_found_exits_1_with_a_message_on_stderr(tmp_path):
    db = tmp_path / "nf.db"
    ok(db, "add", "keep me", "--user", "alice", "--no-infer")
    with ThreadPoolExecutor(os.cpu_count()) as pool:
        procs = dict(zip(NOT_FOUND, pool.map(lambda args: memlane(db, *args), NOT_FOUND.values())))
    for name, proc in procs.items():
        assert (proc.returncode, proc.stdout) == (1, ""), (name, proc.returncode, proc.stdout, proc.stderr)
        assert proc.stderr == f"error: memory {UNKNOWN} not found\n", (name, proc.stderr)
    assert as_json(db, "list", "--user", "alice")["total"] == 1


def test_version():
    proc = subprocess.run([sys.executable, "-m", "memlane.cli", "--version"], capture_output=True, text=True,
                          timeout=120)
    assert (proc.returncode, proc.stdout) == (0, f"memlane {__version__}\n"), proc.stderr


def test_a_bad_db_is_one_line_and_exit_2(tmp_path):
    folder = tmp_path / "folder"
    folder.mkdir()
    garbage = tmp_path / "garbage.db"
    garbage.write_bytes(b"this is not a database\n" * 200)
    cases = [(db, args) for db in (folder, garbage)
             for args in (["list", "--user", "alice"], ["get", UNKNOWN], ["add", "x", "--user", "a", "--no-infer"],
                          ["doctor"], ["reindex"])]
    with ThreadPoolExecutor(os.cpu_count()) as pool:
        procs = list(pool.map(lambda case: memlane(case[0], *case[1]), cases))
    for (db, args), proc in zip(cases, procs):
        assert proc.returncode == 2, (db, args, proc.returncode, proc.stderr)
        assert proc.stdout == "" and "Traceback" not in proc.stderr, (db, args, proc.stderr)
        [line] = proc.stderr.splitlines()
        assert line.startswith("error: ") and str(db) in line, (db, args, line)
    assert "is a folder" in procs[0].stderr and "not a database" in procs[-1].stderr
    assert garbage.read_bytes() == b"this is not a database\n" * 200 and list(folder.iterdir()) == []


def test_a_closed_pipe_is_no_traceback(tmp_path):
    db = tmp_path / "pipe.db"
    memory_id = as_json(db, "add", "x", "--user", "alice", "--no-infer")["results"][0]["id"]
    ok(db, "update", memory_id, "y")
    # `memlane history ID --json | head -c 0`: the reader is gone before memlane writes
    proc = subprocess.Popen(command(db, "history", memory_id, "--json"), stdin=subprocess.DEVNULL,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=environment())
    proc.stdout.close()
    stderr = proc.stderr.read().decode()
    proc.wait(timeout=120)
    assert (proc.returncode, stderr) == (141, "")
    # the same through a shell with a reader that takes a little: the exit status of the pipe is head's
    shell = subprocess.run(["bash", "-o", "pipefail", "-c", " ".join(command(db, "list", "--user", "alice"))
                            + " | head -c 2"], capture_output=True, text=True, timeout=120, env=environment())
    assert shell.stdout == "ID" and "Traceback" not in shell.stderr and shell.returncode in (0, 141)


def test_delete_all_refuses_without_yes_and_no_terminal(tmp_path):
    db = tmp_path / "all.db"
    ok(db, "add", "one", "--user", "alice", "--no-infer")
    ok(db, "add", "two", "--user", "alice", "--no-infer")
    refused = memlane(db, "delete", "--all", "--user", "alice")
    assert (refused.returncode, refused.stdout) == (2, "")
    assert refused.stderr == ("error: Delete all 2 memories of user alice: refused without a terminal to ask on; "
                              "pass --yes to confirm\n")
    assert as_json(db, "list", "--user", "alice")["total"] == 2
    assert as_json(db, "delete", "--all", "--user", "alice", "-y")["deleted"] == 2
    assert as_json(db, "list", "--user", "alice")["total"] == 0


def test_delete_all_asks_on_a_terminal(tmp_path):
    pty = pytest.importorskip("pty")
    db = tmp_path / "tty.db"
    ok(db, "add", "one", "--user", "alice", "--agent", "bot", "--no-infer")
    for answer, code, left in ((b"n\n", 1, 1), (b"y\n", 0, 0)):
        leader, follower = pty.openpty()
        proc = subprocess.Popen(command(db, "delete", "--all", "--user", "alice", "--agent", "bot"),
                                stdin=follower, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                env=environment())
        os.close(follower)
        os.write(leader, answer)  # the terminal holds the line until memlane reads it
        try:
            stdout, stderr = proc.communicate(timeout=120)
        finally:
            os.close(leader)
        assert proc.returncode == code, stderr
        assert stderr.startswith("Delete all 1 memory of user alice, agent bot? [y/N] ")
        assert ("nothing deleted" in stderr) == (code == 1) and "Traceback" not in stderr
        assert as_json(db, "list", "--user", "alice")["total"] == left


def test_the_no_llm_warning_speaks_cli(tmp_path):
    db = tmp_path / "warn.db"
    proc = memlane(db, "add", "I like tea", "--user", "alice")
    assert proc.returncode == 0, proc.stderr
    assert "--no-infer" in proc.stderr and "OPENAI_API_KEY" in proc.stderr, proc.stderr
    assert "infer=False" not in proc.stderr and "Memory.from_config" not in proc.stderr
    quiet = memlane(db, "add", "I like coffee", "--user", "alice", "--no-infer")
    assert (quiet.returncode, quiet.stderr) == (0, "")
    assert as_json(db, "list", "--user", "alice")["total"] == 2


def test_the_library_keeps_its_python_wording(caplog):
    from memlane.pipeline import NO_LLM_WARNING
    assert "infer=False" in NO_LLM_WARNING and "--no-infer" not in NO_LLM_WARNING
    record = logging.LogRecord("memlane", logging.WARNING, __file__, 1, NO_LLM_WARNING, (), None)
    assert cli._CliWording().filter(record) and record.getMessage() == cli.CLI_NO_LLM_WARNING
    other = logging.LogRecord("memlane", logging.WARNING, __file__, 1, "memlane: something else", (), None)
    assert cli._CliWording().filter(other) and other.getMessage() == "memlane: something else"


class FailingMemory:
    """Stands in for Memory in-process: every call raises what it was given."""

    def __init__(self, error):
        self.error = error

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return None

    def get_all(self, **kwargs):
        raise self.error


@pytest.mark.parametrize("error, code, message", [
    (NotFoundError("memory x not found"), 1, "error: memory x not found\n"),
    (ProviderError("the store failed: disk I/O error"), 3, "error: the store failed: disk I/O error\n"),
    (InternalError("get_all() failed with an unexpected KeyError: 'x' (a bug)"), 3,
     "error: get_all() failed with an unexpected KeyError: 'x' (a bug); run again with --verbose for the "
     "traceback\n"),
    (KeyboardInterrupt(), 130, "error: interrupted\n"),
])
def test_exit_status_of_failures(monkeypatch, capsys, error, code, message):
    monkeypatch.setattr(cli, "_memory", lambda args, reindexing=False: FailingMemory(error))
    assert cli.main(["list", "--user", "alice"]) == code
    captured = capsys.readouterr()
    assert (captured.out, captured.err) == ("", message)
    assert not any(isinstance(f, cli._CliWording) for f in logging.getLogger("memlane").filters)


def test_list_never_shortens_ids(tmp_path):
    db = tmp_path / "ids.db"
    memory_id = as_json(db, "add", "short", "--user", "alice", "--no-infer")["results"][0]["id"]
    out = memlane(db, "list", "--user", "alice", COLUMNS="40").stdout
    assert table_rows(out)[0].split()[0] == memory_id


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
    if args == ["--help"]:  # the exit status scheme is part of the help
        assert "exit status:" in out and "not found" in out and "bad input" in out


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
