import sqlite3
from contextlib import closing

import pytest

from memlane import AsyncMemory, Memory, MemoryConfig, ProviderConfig
from postgres_server import pg_server, pg_url  # noqa: F401  (fixtures: a real PostgreSQL per session)


def config_for(path) -> MemoryConfig:
    return MemoryConfig(vector_store=ProviderConfig(provider="sqlite", config={"path": str(path)}))


@pytest.fixture(autouse=True)
def _isolated_home(tmp_path, monkeypatch):
    # No test may touch the real ~/.memlane, nor pick up an LLM from the environment it runs in.
    monkeypatch.setenv("MEMLANE_HOME", str(tmp_path / "home"))
    for variable in ("OPENAI_API_KEY", "ANTHROPIC_API_KEY", "GEMINI_API_KEY", "OLLAMA_HOST", "MEMLANE_LLM",
                     "OPENAI_BASE_URL"):
        monkeypatch.delenv(variable, raising=False)


@pytest.fixture
def memory(tmp_path):
    m = Memory(config_for(tmp_path / "m.db"))
    yield m
    m.close()


@pytest.fixture
async def amemory(tmp_path):
    m = AsyncMemory(config_for(tmp_path / "am.db"))
    yield m
    m.close()


# ------------------------------------------------------------------ shared helpers for the behaviour suite

TABLES = ("memories", "history", "messages")


def snapshot(m) -> dict[str, list[tuple]]:
    """Every row of every table a write touches, read straight from the database file, so a test can
    assert that a failed call changed nothing (not even the message log or the history)."""
    with closing(sqlite3.connect(m.config.database_path())) as conn:
        return {t: conn.execute(f"SELECT * FROM {t} ORDER BY pk").fetchall() for t in TABLES}


def seed(m, texts, **scope) -> list[str]:
    """Store `texts` verbatim (one add() call, one transaction) and return their ids in order."""
    result = m.add([{"role": "user", "content": t} for t in texts], infer=False, **scope)
    assert [r["memory"] for r in result["results"]] == list(texts)
    return [r["id"] for r in result["results"]]


def ids_of(result) -> list[str]:
    """The ids of a search / get_all result, in order."""
    return [r["id"] for r in result["results"]]


@pytest.fixture(scope="session", autouse=True)
def _warm_embedder():
    # The ONNX session is shared per process (memlane.embeddings.local); load it once, up front, so no
    # single test pays for it and every Memory built afterwards reuses it.
    from memlane.embeddings.local import LocalEmbedder
    LocalEmbedder({}).embed(["warm up"])
