"""What the vector engine test modules share: the fixtures the engine tests of tests/test_vector_engines.py
(and the contract's) run on, and small helpers to reach the engine behind a Memory.

A module testing engines defines `kind` (its engine names, as params) and, unless they are embedded engines
with a folder, `engine_config`: a fixture giving a callable `make(name=None) -> vector_store config`, where
each call with another name is another place in the engine (a folder, an index, a database) that nothing
else uses. It collects the tests with `from test_vector_engines import *`, fixtures included."""
import pytest

import test_store_contract as contract

from memlane import Memory
from memlane.vector_engines import OutboxVectorStore

NO_LLM = {"provider": "none"}


def embedded_config(kind, folder, name=None):
    """An embedded engine's config: its own folder below `folder` (one per name)."""
    where = folder / name if name else folder
    return {"provider": kind, "config": {"path": str(where / f"engine-{kind}"), "collection_name": "memlane_test"}}


@pytest.fixture
def engine_config(kind, tmp_path):
    """An embedded engine's (tests/test_vector_engines.py, the Milvus / FAISS module); a module of hosted engines
    defines its own."""
    return lambda name=None: embedded_config(kind, tmp_path, name)


@pytest.fixture
def store_config(engine_config):
    """vector_store config of the engine; the embedded file is $MEMLANE_HOME/memlane.db (conftest: per test)."""
    return engine_config()


@pytest.fixture
def mem(store_config):
    m = Memory({"vector_store": store_config, "llm": NO_LLM})
    yield m
    m.close()


@pytest.fixture
def rank_tolerance():
    """How far an engine's score may be from the SQLite store's for the same memory."""
    return 0.01


def wrapper(m):
    store = m._runtime.store
    while not isinstance(store, OutboxVectorStore):
        store = store._store
    return store


def engine_count(m):
    return wrapper(m)._engine.count()


def reindex_to_16_dimensions(store_config):
    """The five facts written, then the store reindexed with tests/test_reindex.py's 16-dimension embedder (the
    engine's index is made again in the new space); the Memory config with that embedder is returned."""
    from test_reindex import TinyEmbedder

    from memlane.registry import register_provider
    register_provider("embedder", "tiny-letters", TinyEmbedder)
    with Memory({"vector_store": store_config, "llm": NO_LLM}) as m:
        contract.add_all(m, contract.FACTS, user_id="alice")
    tiny = {"vector_store": store_config, "llm": NO_LLM, "embedder": {"provider": "tiny-letters"}}
    with Memory.reindexed(tiny) as m:
        assert engine_count(m) == 5 and wrapper(m).in_step()
    return tiny
