import pytest

from mnema import AsyncMemory, Memory, MemoryConfig, ProviderConfig


def config_for(path) -> MemoryConfig:
    return MemoryConfig(vector_store=ProviderConfig(provider="sqlite", config={"path": str(path)}))


@pytest.fixture(autouse=True)
def _isolated_home(tmp_path, monkeypatch):
    # No test may touch the real ~/.mnema, nor pick up an LLM from the environment it runs in.
    monkeypatch.setenv("MNEMA_HOME", str(tmp_path / "home"))
    for variable in ("OPENAI_API_KEY", "ANTHROPIC_API_KEY", "GEMINI_API_KEY", "OLLAMA_HOST", "MNEMA_LLM",
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
