"""External vector engines (src/memlane/vector_engines/): Qdrant in local mode and Chroma's PersistentClient,
both real and embedded. The relational side is the embedded SQLite file; the engine is fed through its
outbox. The Memory-level contract of tests/test_store_contract.py runs on each engine, then what is the
engines' own: the outbox repairing a crash between the two writes, an engine that is down, scope-only
filtering in the engine with every operator checked by the store, and the graph's outbox on top."""
import json
import os
import sqlite3
import subprocess
import sys
import textwrap
from contextlib import closing

import numpy as np
import pytest

import test_store_contract as contract
from engine_testing import (  # noqa: F401  (fixtures: engine_config, mem, rank_tolerance, store_config)
    NO_LLM, embedded_config, engine_config, engine_count, mem, rank_tolerance, store_config, wrapper)
from fakeservers import fake_server  # noqa: F401  (fixture)
from graph_servers import falkordb_server, graph_store_config  # noqa: F401  (fixtures)
from test_graph import reply, triples
from test_store_contract import (  # noqa: F401  (the contract's tests, collected here with this module's fixtures)
    test_a_keyword_only_match_is_found, test_add_get_get_all_and_search,
    test_delete_racing_delete_one_wins_one_not_found,
    test_every_filter_operator_and_combinator, test_graph_adds_racing_in_one_scope_make_one_entity_per_name,
    test_graph_memory_through_memory_on_each_store, test_pagination_totals_and_scope_isolation,
    test_text_update_racing_metadata_update_loses_neither, test_update_delete_delete_all_and_history,
    test_update_of_a_memory_deleted_meanwhile_is_not_found)

from memlane import ConfigurationError, Memory
from memlane import filters as F
from memlane.config import MemoryConfig
from memlane.errors import DimensionMismatchError
from memlane.models import Scope
from memlane.registry import create, factory
from memlane.stores import sqlite_doctor

ENGINES = ["qdrant", "chroma", "lancedb"]

# What an engine's test module collects with `from test_vector_engines import *`: the contract's tests, the
# engine tests below and the fixtures they need; the module gives `kind` and `engine_config` (engine_testing.py).
__all__ = [
    "fake_server", "mem", "rank_tolerance", "store_config",
    "test_a_keyword_only_match_is_found", "test_add_get_get_all_and_search",
    "test_delete_racing_delete_one_wins_one_not_found", "test_every_filter_operator_and_combinator",
    "test_graph_adds_racing_in_one_scope_make_one_entity_per_name", "test_graph_memory_through_memory_on_each_store",
    "test_pagination_totals_and_scope_isolation", "test_text_update_racing_metadata_update_loses_neither",
    "test_update_delete_delete_all_and_history", "test_update_of_a_memory_deleted_meanwhile_is_not_found",
    "test_search_ranks_as_the_sqlite_store_does", "test_the_engine_filters_by_scope_and_the_store_checks_the_rest",
    "test_delete_delete_all_and_reset_reach_the_engine", "test_drift_is_seen_and_mended",
    "test_a_crash_between_the_store_and_the_engine_is_repaired_on_open",
    "test_an_engine_that_fails_keeps_the_facts_and_catches_up",
    "test_reindex_to_another_dimension_and_export_import", "test_threads_writing_and_searching_at_once"]


@pytest.fixture(params=ENGINES)
def kind(request):
    return request.param


# ------------------------------------------------------------------ the contract tests Qdrant's local mode cannot run

@pytest.mark.parametrize("kind", ["chroma", "lancedb"])
def test_dimension_mismatch_reset_and_two_instances(kind, tmp_path):
    """Two clients on one folder at once: Chroma's PersistentClient and LanceDB allow it, Qdrant's local mode
    does not."""
    config = embedded_config(kind, tmp_path)
    with Memory({"vector_store": config, "llm": NO_LLM}) as m:
        contract.test_dimension_mismatch_and_reset(config, m)
    contract.test_concurrent_updates_through_two_instances_lose_nothing(config)


def test_qdrant_local_mode_is_one_client_at_a_time(tmp_path):
    config = embedded_config("qdrant", tmp_path)
    with Memory({"vector_store": config, "llm": NO_LLM}):
        with pytest.raises(ConfigurationError, match="Qdrant server"):
            Memory({"vector_store": config, "llm": NO_LLM})
    wrong = {**config, "config": {**config["config"], "embedding_model_dims": 3}}
    with pytest.raises(DimensionMismatchError, match="embedding_model_dims"):
        Memory({"vector_store": wrong, "llm": NO_LLM})


# ------------------------------------------------------------------ the engines' own

def test_search_ranks_as_the_sqlite_store_does(engine_config, tmp_path, rank_tolerance):
    corpus = contract.FACTS + ["I drive a blue bicycle to work", "Emma likes the violin as well",
                               "Peanut butter is banned at home"]
    queries = ["what instrument do I play?", "food allergies", "what do I drive?", "Emma's birthday"]
    results = []
    for store in ({"provider": "sqlite", "config": {"path": str(tmp_path / "plain.db")}},
                  engine_config()):
        with Memory({"vector_store": store, "history_db_path": str(tmp_path / f"{store['provider']}.db"),
                     "llm": NO_LLM}) as m:
            contract.add_all(m, corpus, user_id="u")
            contract.add_all(m, corpus[:3], user_id="other")
            results.append([[(h["memory"], h["score"]) for h in m.search(q, user_id="u", limit=4)["results"]]
                            for q in queries])
    for query, lite, ext in zip(queries, *results):
        assert [t for t, _ in ext] == [t for t, _ in lite], query
        assert all(abs(p - q) < rank_tolerance for (_, p), (_, q) in zip(ext, lite)), (query, ext, lite)


def test_the_engine_filters_by_scope_and_the_store_checks_the_rest(mem):
    ids = contract.add_all(mem, [f"note {i} about the garden" for i in range(30)], user_id="a")
    for i, mid in enumerate(ids):
        mem.update(mid, metadata={"n": i})
    contract.add_all(mem, ["note about the garden"] * 3, user_id="b")
    store = wrapper(mem)
    query = mem._runtime.embedder.embed(["garden"])[0]
    engine_hits = store._engine.search(np.asarray(query, dtype=np.float32), Scope(user_id="a"), 100)
    assert len(engine_hits) == 30 and set(i for i, _ in engine_hits) == set(ids)  # scope only, in the engine
    scores = [s for _, s in engine_hits]
    assert scores == sorted(scores, reverse=True) and all(-1 <= s <= 1.0001 for s in scores)
    worst = engine_hits[-1][0]
    n = next(i for i, mid in enumerate(ids) if mid == worst)
    where = F.parse({"user_id": "a", "n": n})
    assert [i for i, _ in store.vector_search(query, Scope(user_id="a"), where, 1)] == [worst]  # the pool grows
    where = F.parse({"AND": [{"user_id": "a"}, {"n": {"gte": 10}}, {"NOT": {"n": {"in": [11, 12]}}}]})
    got = [i for i, _ in store.vector_search(query, Scope(user_id="a"), where, 50)]
    assert sorted(got) == sorted(mid for i, mid in enumerate(ids) if i >= 10 and i not in (11, 12))


def test_delete_delete_all_and_reset_reach_the_engine(mem):
    ids = contract.add_all(mem, contract.FACTS, user_id="alice")
    contract.add_all(mem, ["elsewhere"], user_id="bob")
    assert engine_count(mem) == 6 and wrapper(mem).in_step()
    mem.delete(ids[0])
    assert engine_count(mem) == 5
    mem.update(ids[1], "I am allergic to cats")
    assert mem.search("cats", user_id="alice")["results"][0]["id"] == ids[1]
    mem.delete_all(user_id="alice")
    assert engine_count(mem) == 1 and mem.search("violin", user_id="alice")["results"] == []
    mem.reset()
    assert engine_count(mem) == 0 and wrapper(mem).outbox_pending() == []
    contract.add_all(mem, ["after reset"], user_id="alice")
    assert engine_count(mem) == 1 and wrapper(mem).in_step()


def test_drift_is_seen_and_mended(mem):
    contract.add_all(mem, contract.FACTS, user_id="alice")
    store = wrapper(mem)
    store._engine.clear(None)  # the engine lost everything (a wiped folder, a new server)
    assert not store.in_step()
    assert mem.search("violin", user_id="alice")["results"][0]["memory"] == contract.FACTS[0]  # keyword half
    assert store.resync() == 5 and store.in_step()
    assert mem.search("what instrument do I play?", user_id="alice")["results"][0]["memory"] == contract.FACTS[0]


CRASH = """
import json, os, sys
from memlane import Memory
from memlane.registry import factory
m = Memory(json.loads(sys.argv[1]))
factory("vector_engine", sys.argv[2]).upsert = lambda self, records: os._exit(3)  # dies between the two writes
m.add("I collect vintage postcards", user_id="u1", infer=False)
"""


def crashed_in_a_fork(config):
    """CRASH, in a forked child sharing this process's objects; its exit status."""
    pid = os.fork()
    if pid == 0:  # the child: never returns to pytest
        try:
            m = Memory(config)
            factory("vector_engine", config.vector_store.provider).upsert = lambda self, records: os._exit(3)
            m.add("I collect vintage postcards", user_id="u1", infer=False)
        finally:
            os._exit(4)
    return os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1])


def test_a_crash_between_the_store_and_the_engine_is_repaired_on_open(store_config):
    config = MemoryConfig.from_mem0({"vector_store": store_config, "llm": NO_LLM})
    Memory(config).close()
    try:
        dumped = json.dumps(config.model_dump())
    except TypeError:  # an in-process client (a LangChain store object): a forked child dies instead
        assert crashed_in_a_fork(config) == 3
    else:
        crashed = subprocess.run([sys.executable, "-c", textwrap.dedent(CRASH), dumped, store_config["provider"]],
                                 capture_output=True, text=True, timeout=120)
        assert crashed.returncode == 3, crashed.stderr
    db = config.database_path()
    with closing(sqlite3.connect(db)) as conn:  # the memory and the outbox entry naming it
        [(mid,)] = conn.execute("SELECT id FROM memories").fetchall()
        [(entry,)] = conn.execute("SELECT payload FROM graph_outbox").fetchall()
    assert json.loads(entry) == {"vectors": {"sync": [mid]}}
    report = sqlite_doctor.check(db)
    assert report.counts["outbox_pending"] == 1 and "for an external engine" in report.summary()
    engine = create("vector_engine", config.vector_engine["provider"], config.vector_engine["config"])
    try:
        assert engine.count() == 0  # it never reached the engine
    finally:
        engine.close()
    with Memory(config) as m:  # applies what the engine missed
        assert wrapper(m).outbox_pending() == [] and engine_count(m) == 1
        assert wrapper(m).vector_search(m._runtime.embedder.embed(["postcards"])[0], Scope(user_id="u1"),
                                        F.parse({"user_id": "u1"}), 5)[0][0] == mid
    assert sqlite_doctor.check(db).counts["outbox_pending"] == 0


def test_an_engine_that_fails_keeps_the_facts_and_catches_up(mem, monkeypatch, caplog):
    engine = type(wrapper(mem)._engine)
    real = engine.upsert

    def down(self, records):
        raise ConnectionError("engine down")

    monkeypatch.setattr(engine, "upsert", down)
    first = contract.add_all(mem, ["I collect vintage postcards"], user_id="u")[0]
    assert mem.get(first)["memory"] == "I collect vintage postcards"
    assert "1 change(s) wait in the outbox" in caplog.text and engine_count(mem) == 0
    monkeypatch.setattr(engine, "upsert", real)
    contract.add_all(mem, ["I bake sourdough bread"], user_id="u")  # the next write applies both, in order
    assert engine_count(mem) == 2 and wrapper(mem).outbox_pending() == []


def test_config_keys_are_mem0s_and_the_engine_folder_sits_beside_the_database(tmp_path):
    with pytest.raises(ConfigurationError, match="unknown qdrant vector_store config keys: nope"):
        Memory({"vector_store": {"provider": "qdrant", "config": {"nope": 1}}, "llm": NO_LLM})
    config = MemoryConfig.from_mem0({"vector_store": {"provider": "chroma", "config": {"collection_name": "c1"}},
                                     "history_db_path": str(tmp_path / "mine.db")})
    assert config.vector_engine == {"provider": "chroma", "config": {"collection_name": "c1",
                                                                      "path": str(tmp_path / "mine-chroma")}}
    assert config.store_config() == {"path": str(tmp_path / "mine.db")}
    assert MemoryConfig().vector_engine is None


# ------------------------------------------------------------------ with the graph's outbox on top

GRAPH_CRASH = """
import json, os, sys
from memlane import Memory
from memlane.graphs import cypher
from memlane.vector_engines import qdrant
config = json.loads(sys.argv[1])
m = Memory(config)
if sys.argv[2] == "vectors":
    qdrant.QdrantEngine.upsert = lambda self, records: os._exit(3)
else:
    cypher.CypherGraph.apply = lambda self, payload: os._exit(3)
m.add("Alice works at Acme", user_id="u1")
"""


@pytest.mark.parametrize("dies_in", ["vectors", "graph"])
def test_vectors_and_graph_in_engines_at_once(fake_server, request, tmp_path, dies_in):
    config = MemoryConfig.from_mem0({
        "vector_store": embedded_config("qdrant", tmp_path), "graph_store": graph_store_config("falkordb", request),
        "llm": {"provider": "openai", "config": {"api_key": "k", "openai_base_url": f"{fake_server.url}/v1"}}})
    with Memory(config) as m:
        fake_server.script(reply([("ADD", None, "Bob lives in Oslo")], [("Bob", "lives_in", "Oslo")]))
        bob = m.add("Bob lives in Oslo", user_id="u1")["results"][0]["id"]
        assert triples(m.get_all(user_id="u1")["relations"]) == [("Bob", "lives_in", "Oslo")]
        assert engine_count(m) == 2 and wrapper(m).in_step()  # the fact and the episodic memory
        assert m._runtime.store.outbox_pending() == []
    fake_server.script(reply([("ADD", None, "Alice works at Acme")], [("Alice", "works_at", "Acme")]))
    crashed = subprocess.run([sys.executable, "-c", textwrap.dedent(GRAPH_CRASH), json.dumps(config.model_dump()),
                              dies_in], capture_output=True, text=True, timeout=120)
    assert crashed.returncode == 3, crashed.stderr
    with closing(sqlite3.connect(config.database_path())) as conn:
        [(entry,)] = conn.execute("SELECT payload FROM graph_outbox").fetchall()
    entry = json.loads(entry)
    assert len(entry["vectors"]["sync"]) == 2 and [r["relationship"] for r in entry["relations"]] == ["works_at"]
    with Memory(config) as m:  # both engines catch up
        assert m._runtime.store.outbox_pending() == [] and engine_count(m) == 4 and wrapper(m).in_step()
        assert triples(m.get_all(user_id="u1")["relations"]) == [("Alice", "works_at", "Acme"),
                                                                 ("Bob", "lives_in", "Oslo")]
        hits = m.search("Where does Alice work?", user_id="u1")["results"]
        assert hits[0]["memory"] == "Alice works at Acme"
        m.delete(bob)
        assert engine_count(m) == 3 and triples(m.get_all(user_id="u1")["relations"]) == [
            ("Alice", "works_at", "Acme")]


def test_reindex_to_another_dimension_and_export_import(engine_config, store_config, tmp_path):
    from memlane.registry import register_provider
    from test_reindex import TinyEmbedder
    register_provider("embedder", "tiny-letters", TinyEmbedder)
    with Memory({"vector_store": store_config, "llm": NO_LLM}) as m:
        ids = contract.add_all(m, contract.FACTS, user_id="alice")
        assert m.export(tmp_path / "out.jsonl")["memory"] == 5
    tiny = {"vector_store": store_config, "llm": NO_LLM, "embedder": {"provider": "tiny-letters"}}
    with Memory.reindexed(tiny) as m:  # the engine's index is made again in the new space
        assert engine_count(m) == 5 and wrapper(m).in_step()
        hits = wrapper(m)._engine.search(TinyEmbedder().embed(["violin"])[0], Scope(user_id="alice"), 10)
        assert sorted(i for i, _ in hits) == sorted(ids)
        assert m.search("what instrument do I play?", user_id="alice")["results"][0]["id"] == ids[0]
    elsewhere = {"vector_store": engine_config("other"), "history_db_path": str(tmp_path / "b.db"),
                 "llm": NO_LLM}
    with Memory(elsewhere) as m:
        m.import_file(tmp_path / "out.jsonl")
        assert engine_count(m) == 5 and wrapper(m).in_step()
        assert m.search("what instrument do I play?", user_id="alice")["results"][0]["id"] == ids[0]


def test_threads_writing_and_searching_at_once(mem):
    import threading
    errors = []

    def write(t):
        try:
            contract.add_all(mem, [f"note {t} {i} about gardens and bees" for i in range(12)], user_id=f"u{t % 2}")
        except Exception as exc:  # noqa: BLE001  (any failure fails the test below)
            errors.append(exc)

    def read():
        try:
            for _ in range(30):
                assert all(h["user_id"] == "u0" for h in mem.search("bees", user_id="u0")["results"])
        except Exception as exc:  # noqa: BLE001
            errors.append(exc)

    threads = [threading.Thread(target=write, args=(t,)) for t in range(3)] + [threading.Thread(target=read)
                                                                              for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == [] and engine_count(mem) == 36 and wrapper(mem).in_step()


# ------------------------------------------------------------------ memlane doctor --config with an engine

def test_doctor_shows_and_mends_an_engine_that_drifted(tmp_path):
    config = {"vector_store": embedded_config("chroma", tmp_path), "history_db_path": str(tmp_path / "d.db"),
              "llm": NO_LLM}
    (tmp_path / "config.json").write_text(json.dumps(config))
    with Memory(config) as m:
        contract.add_all(m, contract.FACTS, user_id="alice")
        wrapper(m)._engine.clear(None)  # the engine lost its vectors (a wiped server, a restored backup)

    def doctor(*args):
        return subprocess.run([sys.executable, "-m", "memlane.cli", "--config", str(tmp_path / "config.json"),
                               "doctor", *args], capture_output=True, text=True, timeout=120)

    found = doctor()
    assert found.returncode == 1 and "0 vector(s) for 5 memorie(s)" in found.stdout and "drift" in found.stdout
    mended = doctor("--repair", "--json")
    assert mended.returncode == 0, mended.stdout + mended.stderr
    report = json.loads(mended.stdout)
    assert report["ok"] and report["engine"] == {"store_memories": 5, "engine_vectors": 5, "outbox_pending": 0,
                                                 "in_step": True, "resynced": 5}
    again = doctor()
    assert again.returncode == 0 and "ok: in step" in again.stdout
