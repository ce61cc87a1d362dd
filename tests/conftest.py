import pytest

from mnema import AsyncMemory, Memory, MemoryConfig, ProviderConfig


def config_for(path) -> MemoryConfig:
    return MemoryConfig(vector_store=ProviderConfig(provider="sqlite", config={"path": str(path)}))


@pytest.fixture(autouse=True)
def _isolated_home(tmp_path, monkeypatch):
    # No test may touch the real ~/.mnema.
    monkeypatch.setenv("MNEMA_HOME", str(tmp_path / "home"))


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
