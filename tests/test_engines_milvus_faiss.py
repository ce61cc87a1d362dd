"""Milvus (Milvus Lite, in this process) and FAISS (faiss-cpu, with its SQLite sidecar) as vector engines, both
real. The Memory-level contract of tests/test_store_contract.py and the engine tests of
tests/test_vector_engines.py run on each, then what is theirs: reopening finds the vectors, a crash right after
both writes, many scopes searched within the scope (never a global top k filtered
afterwards), scope ids that need escaping, and the config keys (mem0's)."""
import json
import sqlite3
import subprocess
import sys
import textwrap
from contextlib import closing

import numpy as np
import pytest

import test_store_contract as contract
from engine_testing import (  # noqa: F401  (fixture: engine_config)
    NO_LLM, embedded_config, engine_config, engine_count, wrapper)
from test_vector_engines import *  # noqa: F403  (the contract's and the engine tests, with their fixtures)

from memlane import ConfigurationError, Memory
from memlane import filters as F
from memlane.config import MemoryConfig
from memlane.errors import DimensionMismatchError, ProviderError
from memlane.models import Scope
from memlane.registry import create
from memlane.vector_engines.faiss import FaissEngine

ENGINES = ["milvus", "faiss"]


@pytest.fixture(params=ENGINES)
def kind(request):
    return request.param


@pytest.fixture
def engine(kind, tmp_path):
    e = create("vector_engine", kind, {"path": str(tmp_path / kind)})
    yield e
    e.close()


def unit(rows):
    rows = np.asarray(rows, dtype=np.float32)
    return rows / np.linalg.norm(rows, axis=-1, keepdims=True)


# ------------------------------------------------------------------ several instances on one folder

def test_milvus_lite_two_instances_and_dimension_mismatch(tmp_path):
    """Two Memory objects of one process share its Milvus Lite server (one per folder)."""
    config = embedded_config("milvus", tmp_path)
    with Memory({"vector_store": config, "llm": NO_LLM}) as m:
        contract.test_dimension_mismatch_and_reset(config, m)
    contract.test_concurrent_updates_through_two_instances_lose_nothing(config)
    a, b = (Memory({"vector_store": config, "llm": NO_LLM}) for _ in range(2))
    a.close()  # the server stays up while another engine uses the folder
    with b:
        mid = contract.add_all(b, ["after the first one closed"], user_id="u2")[0]
        assert [h["id"] for h in b.search("after the first one closed", user_id="u2")["results"]] == [mid]


def test_faiss_is_one_memory_at_a_time(tmp_path):
    config = embedded_config("faiss", tmp_path)
    with Memory({"vector_store": config, "llm": NO_LLM}) as m:
        with pytest.raises(ConfigurationError, match="open in another Memory"):
            Memory({"vector_store": config, "llm": NO_LLM})
        contract.add_all(m, ["still works"], user_id="u")
    wrong = {**config, "config": {**config["config"], "embedding_model_dims": 3}}
    with pytest.raises(DimensionMismatchError, match="embedding_model_dims"):
        Memory({"vector_store": wrong, "llm": NO_LLM})
    with Memory({"vector_store": config, "llm": NO_LLM}) as m:  # the folder is free again
        assert engine_count(m) == 1
        m.reset()
        assert engine_count(m) == 0


# ------------------------------------------------------------------ persistence and crashes

def test_reopening_finds_the_vectors(store_config, monkeypatch):
    with Memory({"vector_store": store_config, "llm": NO_LLM}) as m:
        ids = contract.add_all(m, contract.FACTS, user_id="alice")
        m.delete(ids[4])
        query = m._runtime.embedder.embed(["what instrument do I play?"])[0]
    if store_config["provider"] == "faiss":  # closed cleanly: the saved index is read, not rebuilt
        monkeypatch.setattr(FaissEngine, "_new_index", lambda self, dims: pytest.fail("index rebuilt"))
    with Memory({"vector_store": store_config, "llm": NO_LLM}) as m:
        assert engine_count(m) == 4 and wrapper(m).in_step()
        hits = wrapper(m)._engine.search(np.asarray(query, np.float32), Scope(user_id="alice"), 10)
        assert [i for i, _ in hits][0] == ids[0] and sorted(i for i, _ in hits) == sorted(ids[:4])


CRASH = """
import json, os, sys
from memlane import Memory
m = Memory(json.loads(sys.argv[1]))
m.add("I collect vintage postcards", user_id="u1", infer=False)
os._exit(3)  # right after both writes, without closing anything
"""


def test_a_crash_after_both_writes_leaves_the_engine_whole(store_config):
    """A crash between the two writes is the shared test's; after both, the engine has the vector (FAISS: its
    sidecar has it, and the saved index, missing it, is rebuilt)."""
    config = MemoryConfig.from_mem0({"vector_store": store_config, "llm": NO_LLM})
    with Memory(config) as m:
        contract.add_all(m, ["I play the violin"], user_id="u1")
    crashed = subprocess.run([sys.executable, "-c", textwrap.dedent(CRASH), json.dumps(config.model_dump())],
                             capture_output=True, text=True, timeout=120)
    assert crashed.returncode == 3, crashed.stderr
    with closing(sqlite3.connect(config.database_path())) as conn:
        [(mid,)] = conn.execute("SELECT id FROM memories WHERE memory LIKE '%postcards'").fetchall()
        assert conn.execute("SELECT payload FROM graph_outbox").fetchall() == []
    with Memory(config) as m:
        assert wrapper(m).outbox_pending() == [] and engine_count(m) == 2 and wrapper(m).in_step()
        hits = wrapper(m).vector_search(m._runtime.embedder.embed(["postcards"])[0], Scope(user_id="u1"),
                                        F.parse({"user_id": "u1"}), 5)
        assert hits[0][0] == mid


# ------------------------------------------------------------------ scopes

def test_many_scopes_are_searched_within_the_scope(engine):
    """40 users of 25 records each; user 0's are all closer to the query than anyone else's, so a global top k
    filtered afterwards would find nothing for the others (mem0's FAISS store does that). Each scope gets its
    own exact top k, and so does a scope of two keys."""
    rng = np.random.default_rng(3)
    query = unit(rng.normal(size=32))
    records, vectors = [], {}
    for user in range(40):
        for n in range(25):
            v = unit(query * (8.0 if user == 0 else 0.5) + rng.normal(size=32))
            mid = f"m-{user}-{n}"
            vectors[mid] = v
            records.append((mid, v, Scope(user_id=f"u{user}", agent_id=f"a{n % 2}")))
    engine.upsert(records)
    assert engine.count() == 1000
    assert all(i.startswith("m-0-") for i, _ in engine.search(query, Scope(), 25))  # user 0 fills a global top k

    def expected(prefix, k, agent=None):
        mine = [(mid, float(v @ query)) for mid, v in vectors.items() if mid.startswith(prefix)
                and (agent is None or int(mid.rsplit("-", 1)[1]) % 2 == agent)]
        return sorted(mine, key=lambda p: -p[1])[:k]

    for user in range(40):
        got = engine.search(query, Scope(user_id=f"u{user}"), 5)
        want = expected(f"m-{user}-", 5)
        assert [i for i, _ in got] == [i for i, _ in want], user
        assert np.allclose([s for _, s in got], [s for _, s in want], atol=1e-4)
    got = engine.search(query, Scope(user_id="u7", agent_id="a1"), 50)
    assert [i for i, _ in got] == [i for i, _ in expected("m-7-", 50, agent=1)] and len(got) == 12
    assert engine.search(query, Scope(user_id="nobody"), 5) == []
    engine.upsert([("m-3-0", query, Scope(user_id="u5", agent_id="a0"))])  # an upsert replaces: vector and scope
    vectors["m-5-moved"] = vectors.pop("m-3-0")
    assert engine.count() == 1000 and engine.search(query, Scope(user_id="u5"), 1) == [("m-3-0", pytest.approx(1))]
    assert "m-3-0" not in [i for i, _ in engine.search(query, Scope(user_id="u3"), 50)]
    engine.clear(Scope(user_id="u7", agent_id="a1"))
    assert engine.count() == 988 and [i for i, _ in engine.search(query, Scope(user_id="u7"), 50)] == [
        i for i, _ in expected("m-7-", 50, agent=0)]


NASTY = ['quote"d', "apo'strophe", "back\\slash", '\\"', '" or user_id != "', "x' || 'y", "ünï😀", "a == b"]


def test_scope_ids_that_need_escaping_stay_apart(mem):
    ids = {user: contract.add_all(mem, [f"the garden of {i}"], user_id=user)[0] for i, user in enumerate(NASTY)}
    for user in NASTY:
        assert [h["id"] for h in mem.search("garden", user_id=user)["results"]] == [ids[user]], user
    mem.delete_all(user_id=NASTY[4])
    mem.delete_all(user_id=NASTY[0])
    assert engine_count(mem) == len(NASTY) - 2
    for user in NASTY[1:4] + NASTY[5:]:
        assert [h["id"] for h in mem.search("garden", user_id=user)["results"]] == [ids[user]], user


# ------------------------------------------------------------------ config

def test_config_keys_are_mem0s(tmp_path, monkeypatch):
    with pytest.raises(ConfigurationError, match="unknown milvus vector_store config keys: host"):
        Memory({"vector_store": {"provider": "milvus", "config": {"host": "x"}}, "llm": NO_LLM})
    with pytest.raises(ConfigurationError, match="unknown faiss vector_store config keys: url"):
        Memory({"vector_store": {"provider": "faiss", "config": {"url": "x"}}, "llm": NO_LLM})
    with pytest.raises(ConfigurationError, match="use COSINE"):
        Memory({"vector_store": {"provider": "milvus", "config": {"metric_type": "L2"}}, "llm": NO_LLM})
    with pytest.raises(ConfigurationError, match="distance_strategy 'manhattan'"):
        Memory({"vector_store": {"provider": "faiss", "config": {"distance_strategy": "manhattan"}}, "llm": NO_LLM})
    milvus = {"provider": "milvus", "config": {  # mem0's keys; a url ending in .db is Milvus Lite
        "url": str(tmp_path / "lite" / "mine.db"), "token": "", "db_name": "", "collection_name": "c1",
        "embedding_model_dims": 384, "metric_type": "IP"}}
    faiss = {"provider": "faiss", "config": {"path": str(tmp_path / "f"), "collection_name": "c1",
                                             "distance_strategy": "euclidean", "normalize_L2": True,
                                             "embedding_model_dims": 384}}
    results = []
    for n, store in enumerate((milvus, faiss, embedded_config("milvus", tmp_path))):
        with Memory({"vector_store": store, "history_db_path": str(tmp_path / f"{n}.db"), "llm": NO_LLM}) as m:
            ids = contract.add_all(m, contract.FACTS, user_id="alice")
            hits = m.search("what instrument do I play?", user_id="alice")["results"]
            results.append([(ids.index(h["id"]), round(h["score"], 3)) for h in hits])
    assert results[0] == results[1] == results[2]  # IP and euclidean rank and score as cosine (unit vectors)
    assert (tmp_path / "lite" / "mine.db").is_dir() and (tmp_path / "f" / "c1.sqlite").exists()
    for module, extra in (("pymilvus", "milvus"), ("faiss", "faiss")):
        monkeypatch.setitem(sys.modules, module, None)  # not installed
        with pytest.raises(ConfigurationError, match=rf"pip install 'memlane\[{extra}\]'"):
            create("vector_engine", extra, {"path": str(tmp_path / "x")})


def test_milvus_refuses_a_collection_of_another_shape(tmp_path):
    from pymilvus import MilvusClient
    uri = str(tmp_path / "other.db")
    client = MilvusClient(uri=uri)
    client.create_collection("mem0", dimension=8)  # e.g. mem0's own collection of that name
    client.close()
    from milvus_lite.server_manager import server_manager_instance
    server_manager_instance.release_server(uri)
    with pytest.raises(ConfigurationError, match="exists with other fields"):
        create("vector_engine", "milvus", {"url": uri, "collection_name": "mem0"})
    create("vector_engine", "milvus", {"url": uri, "collection_name": "memlane"}).close()


def test_a_milvus_server_that_is_down_is_a_provider_error():
    """The server path (url, token, db_name) is not run here against a real server; its failure is typed. A bare
    host:port, as mem0's documentation writes it, is taken as http."""
    with pytest.raises(ProviderError, match="http://127.0.0.1:1: .*Fail connecting"):
        create("vector_engine", "milvus", {"url": "127.0.0.1:1", "token": "root:Milvus", "db_name": "default"})
