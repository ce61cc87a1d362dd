"""`memlane import --from-mem0` on data written by the real mem0ai package: a throwaway venv (cached in the
git-ignored .venv-mem0/, made on first use with pip) runs tests/mem0_writer.py, which stores memories with
infer=False through mem0's OpenAI embedder pointed at a local fake embeddings server, into mem0's embedded
Qdrant folder (or its pgvector table on a real PostgreSQL) and its SQLite history database, then updates one
memory and deletes another. The import must bring over what mem0 itself answers: texts, scope ids, metadata,
hashes, timestamps and history. With the venv cached the module takes about half a minute; making the venv
(pip install mem0ai) adds a minute or two, once."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from fake_embed_servers import FakeEmbedServer
from mem0_venv import mem0_python

from memlane import ConfigurationError, Memory

WRITER = Path(__file__).resolve().parent / "mem0_writer.py"
DIMS = 24


def _write(store: str, history_db: Path, home: Path) -> dict:
    """Run mem0_writer.py with the real mem0 on `store` (a Qdrant folder or a connection string); what mem0
    answered afterwards."""
    python = mem0_python()
    server = FakeEmbedServer(default_dim=DIMS)
    try:
        env = {**os.environ, "MEM0_TELEMETRY": "false", "MEM0_DIR": str(home / "mem0home"), "HOME": str(home)}
        done = subprocess.run([str(python), str(WRITER), f"{server.url}/v1", store, str(history_db), str(DIMS)],
                              capture_output=True, text=True, env=env, timeout=600)
    finally:
        server.close()
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout)


@pytest.fixture(scope="module")
def mem0_data(tmp_path_factory):
    """mem0's Qdrant folder and history database after the writer ran, and what mem0 answered."""
    where = tmp_path_factory.mktemp("mem0")
    return where, _write(str(where / "qdrant"), where / "history.db", where)


def _mem0_view(item):
    """A memlane memory as mem0's get_all shows it (mem0 leaves out empty metadata and absent scope ids)."""
    out = {k: item[k] for k in ("id", "memory", "hash", "created_at", "updated_at", "role")}
    out["metadata"] = item["metadata"] or None
    out.update({k: item[k] for k in ("user_id", "agent_id", "run_id") if item[k] is not None})
    return out


HISTORY_KEYS = ("id", "memory_id", "old_memory", "new_memory", "event", "created_at", "updated_at", "is_deleted",
                "actor_id", "role")


def test_a_real_mem0_store_comes_over_with_its_history(tmp_path, mem0_data):
    where, mem0 = mem0_data
    db = tmp_path / "imported.db"
    done = subprocess.run([sys.executable, "-m", "memlane.cli", "--db", str(db), "import", "--from-mem0",
                           "--qdrant-path", str(where / "qdrant"), "--history-db", str(where / "history.db")],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert "4 memories, 7 history rows" in done.stdout and "4 memories embedded again" in done.stdout
    with Memory({"vector_store": {"provider": "sqlite", "config": {"path": str(db)}}}) as m:
        _same_as_mem0(m, mem0)
        again = m.import_mem0(qdrant_path=str(where / "qdrant"), history_db=str(where / "history.db"),
                              skip_existing=True)
        assert again["memory"] == again["history"] == 0 and again["skipped"] == 11


def _same_as_mem0(m, mem0):
    for scope_text, theirs in mem0["all"].items():
        scope = json.loads(scope_text)
        ours = [_mem0_view(r) for r in m.get_all(**scope)["results"]]
        assert sorted(ours, key=lambda r: r["id"]) == sorted(theirs, key=lambda r: r["id"]), scope
    for memory_id, theirs in mem0["history"].items():  # the deleted memory's too
        assert [{k: h[k] for k in HISTORY_KEYS} for h in m.history(memory_id)] == \
            [{k: h[k] for k in HISTORY_KEYS} for h in theirs]
    assert m.get(mem0["ids"]["Temporary memory"]) is None
    best = m.search("jasmine green tea", user_id="alice")["results"][0]
    assert best["id"] == mem0["ids"]["I like green tea"]


def test_mem0_on_pgvector_comes_over_too(tmp_path, pg_url):
    mem0 = _write(pg_url, tmp_path / "history.db", tmp_path)
    with Memory({"vector_store": {"provider": "sqlite", "config": {"path": str(tmp_path / "t.db")}}}) as m:
        counts = m.import_mem0(pgvector=pg_url, history_db=str(tmp_path / "history.db"))
        assert (counts["memory"], counts["history"]) == (4, 7)
        _same_as_mem0(m, mem0)


def test_a_missing_folder_or_library_is_named(tmp_path, monkeypatch, mem0_data):
    where, _ = mem0_data
    with Memory({"vector_store": {"provider": "sqlite", "config": {"path": str(tmp_path / "t.db")}}}) as m:
        with pytest.raises(ValueError, match="no mem0 Qdrant collection"):
            m.import_mem0(qdrant_path=str(tmp_path / "nothing"))
        monkeypatch.setitem(sys.modules, "qdrant_client", None)  # as if the extra were not installed
        with pytest.raises(ConfigurationError, match=r"memlane\[mem0-import\]"):
            m.import_mem0(qdrant_path=str(where / "qdrant"))
        assert m.get_all(user_id="alice")["results"] == []
