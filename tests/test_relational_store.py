"""PostgreSQL as the relational side behind an external vector engine (`relational_store`): memories, history,
the message log, graph and jobs in PostgreSQL, vectors searched in the engine (Qdrant's local mode here, real),
fed through PostgreSQL's outbox. The Memory-level contract tests run on that pair, then what is its own."""
import uuid

import psycopg
import pytest

import test_store_contract as contract
from test_store_contract import (  # noqa: F401  (the contract's tests, collected here with this module's `mem`)
    test_a_keyword_only_match_is_found, test_add_get_get_all_and_search, test_pagination_totals_and_scope_isolation,
    test_update_delete_delete_all_and_history)

from memlane import ConfigurationError, Memory
from memlane.config import MemoryConfig
from memlane.stores.postgres import PostgresStore
from memlane.vector_engines import OutboxVectorStore

NO_LLM = {"provider": "none"}


def config(pg_url, tmp_path, schema):
    return {"vector_store": {"provider": "qdrant", "config": {"path": str(tmp_path / "qdrant"),
                                                              "collection_name": "rel"}},
            "relational_store": {"provider": "pgvector", "config": {"connection_string": pg_url,
                                                                    "collection_name": schema}},
            "llm": NO_LLM}


@pytest.fixture
def schema():
    return "rel_" + uuid.uuid4().hex[:12]


@pytest.fixture
def mem(pg_url, tmp_path, schema):
    m = Memory(config(pg_url, tmp_path, schema))
    yield m
    m.close()


def test_the_pair_is_postgres_and_the_engine(mem, pg_url, schema):
    store = mem._runtime.store
    assert isinstance(store, OutboxVectorStore) and isinstance(store._store, PostgresStore)
    ids = contract.add_all(mem, contract.FACTS, user_id="alice")
    assert store._engine.count() == len(ids) and store.in_step()
    with psycopg.connect(pg_url) as conn:
        rows = conn.execute(f"SELECT count(*) FROM {schema}.memories").fetchone()[0]
        history = conn.execute(f"SELECT count(*) FROM {schema}.history").fetchone()[0]
        pending = conn.execute(f"SELECT count(*) FROM {schema}.graph_outbox").fetchone()[0]
    assert (rows, history, pending) == (len(ids), len(ids), 0)
    store._engine.clear(None)  # the engine lost its vectors: PostgreSQL still has them
    assert not store.in_step() and store.resync() == len(ids) and store.in_step()
    assert mem.search("what instrument do I play?", user_id="alice")["results"][0]["memory"] == contract.FACTS[0]


def test_an_engine_that_fails_catches_up_from_postgres(mem, monkeypatch):
    engine = type(mem._runtime.store._engine)
    real = engine.upsert
    monkeypatch.setattr(engine, "upsert", lambda self, records: (_ for _ in ()).throw(ConnectionError("down")))
    first = contract.add_all(mem, ["I collect vintage postcards"], user_id="u")[0]
    assert mem.get(first)["memory"] == "I collect vintage postcards" and mem._runtime.store._engine.count() == 0
    monkeypatch.setattr(engine, "upsert", real)
    contract.add_all(mem, ["I bake sourdough bread"], user_id="u")
    assert mem._runtime.store._engine.count() == 2 and mem._runtime.store.outbox_pending() == []


def test_relational_store_config_is_checked(tmp_path, pg_url):
    with pytest.raises(ConfigurationError, match="relational_store is for an external vector engine"):
        Memory({"relational_store": {"provider": "pgvector", "config": {"connection_string": pg_url}},
                "llm": NO_LLM})
    with pytest.raises(ConfigurationError, match="relational_store provider 'qdrant' is not a store"):
        MemoryConfig.from_mem0({"vector_store": {"provider": "chroma"}, "relational_store": {"provider": "qdrant"}})
    mine = MemoryConfig.from_mem0({"vector_store": {"provider": "chroma"},
                                   "relational_store": {"provider": "sqlite",
                                                        "config": {"path": str(tmp_path / "rel.db")}}})
    assert mine.store_config() == {"path": str(tmp_path / "rel.db")}
    assert mine.vector_engine["config"]["path"] == str(tmp_path / "rel-chroma")
