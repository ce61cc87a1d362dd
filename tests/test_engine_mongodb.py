"""MongoDB Atlas Vector Search as the vector engine: the real pymongo client against tests/fake_mongo_server.py,
a local server speaking MongoDB's wire protocol with Atlas's search-index commands and $vectorSearch stage
(checked as Atlas checks them). The Memory-level contract of tests/test_store_contract.py and the engine
tests of tests/test_vector_engines.py run here on it; then what is MongoDB's own: the index made and waited
on, the stage sent, Atlas's score mapping, the server down and back, the index updated for another
dimension."""
import sys
import uuid

import numpy as np
import pytest

import test_store_contract as contract
from engine_testing import NO_LLM, reindex_to_16_dimensions, wrapper
from fake_mongo_server import FakeMongo, mongo_server  # noqa: F401  (fixture)
from test_store_contract import (  # noqa: F401  (contract tests that need two clients on one engine)
    test_concurrent_updates_through_two_instances_lose_nothing, test_dimension_mismatch_and_reset)
from test_vector_engines import *  # noqa: F403  (the contract's and the engine tests, with their fixtures)

from memlane import ConfigurationError, Memory
from memlane.errors import ProviderError
from memlane.models import Scope
from memlane.vector_engines.mongodb import MongoDBEngine

COLLECTION = "memories"


def mongo_config(server, db=None, **extra):
    return {"provider": "mongodb", "config": {"mongo_uri": server.uri, "db_name": db or f"t{uuid.uuid4().hex[:12]}",
                                              "collection_name": COLLECTION, **extra}}


@pytest.fixture
def engine_config(mongo_server):
    """vector_store config of a new database on the module's server each call (`name` starts its name)."""
    return lambda name=None: mongo_config(mongo_server, name and f"{name}{uuid.uuid4().hex[:12]}")


def sent(server, name, db):
    return [c for c in server.commands(name) if c.get("$db") == db]


def vector_stages(server, db):
    return [c["pipeline"][0]["$vectorSearch"] for c in sent(server, "aggregate", db)
            if "$vectorSearch" in c["pipeline"][0]]


# ------------------------------------------------------------------ what is sent, and how the fake answers

def test_the_index_and_the_documents_sent(mem, store_config, mongo_server):
    db = store_config["config"]["db_name"]
    ids = contract.add_all(mem, contract.FACTS[:2], user_id="alice", agent_id="helper")
    [created] = sent(mongo_server, "createSearchIndexes", db)
    assert created["createSearchIndexes"] == COLLECTION
    [index] = created["indexes"]
    assert index["name"] == f"{COLLECTION}_vector_index" and index["type"] == "vectorSearch"
    assert index["definition"]["fields"] == [
        {"type": "vector", "path": "embedding", "numDimensions": 384, "similarity": "cosine"},
        {"type": "filter", "path": "user_id"}, {"type": "filter", "path": "agent_id"},
        {"type": "filter", "path": "run_id"}]
    updates = [u for c in sent(mongo_server, "update", db) for u in c["updates"]]
    assert [u["q"] for u in updates] == [{"_id": i} for i in ids] and all(u["upsert"] for u in updates)
    assert not any(u.get("multi") for u in updates)  # ReplaceOne: a replacement document, no operators
    doc = updates[0]["u"]
    assert set(doc) == {"embedding", "user_id", "agent_id"} and (doc["user_id"], doc["agent_id"]) == ("alice",
                                                                                                     "helper")
    assert len(doc["embedding"]) == 384 and abs(np.linalg.norm(doc["embedding"]) - 1) < 1e-5
    stored = mongo_server.collection(db, COLLECTION).docs[ids[0]]
    assert stored["_id"] == ids[0] and stored["user_id"] == "alice"
    mem.delete(ids[1])
    deletes = [d for c in sent(mongo_server, "delete", db) for d in c["deletes"]]
    assert deletes[-1]["q"] == {"_id": {"$in": [ids[1]]}} and deletes[-1]["limit"] == 0  # delete_many


def test_the_vector_search_stage_filters_inside_it(mem, store_config, mongo_server):
    db = store_config["config"]["db_name"]
    contract.add_all(mem, contract.FACTS, user_id="alice", agent_id="helper")
    contract.add_all(mem, contract.FACTS, user_id="bob")
    hits = mem.search("what instrument do I play?", user_id="alice", agent_id="helper", limit=3)["results"]
    assert hits[0]["memory"] == contract.FACTS[0] and {h["user_id"] for h in hits} == {"alice"}
    [stage] = vector_stages(mongo_server, db)
    assert stage["index"] == f"{COLLECTION}_vector_index" and stage["path"] == "embedding"
    assert stage["filter"] == {"$and": [{"user_id": {"$eq": "alice"}}, {"agent_id": {"$eq": "helper"}}]}
    assert stage["limit"] >= 3 and stage["numCandidates"] == min(20 * stage["limit"], 10_000)  # 20 a result
    assert len(stage["queryVector"]) == 384
    [command] = [c for c in sent(mongo_server, "aggregate", db) if "$vectorSearch" in c["pipeline"][0]]
    assert command["pipeline"][1:] == [{"$project": {"_id": 1, "score": {"$meta": "vectorSearchScore"}}}]
    mem.search("violin", user_id="bob")
    assert vector_stages(mongo_server, db)[-1]["filter"] == {"user_id": {"$eq": "bob"}}


def test_scores_are_atlas_mapped_back_to_cosine(mem):
    contract.add_all(mem, contract.FACTS, user_id="u")
    engine = wrapper(mem)._engine
    query = mem._runtime.embedder.embed(["what instrument do I play?"])[0]
    held = {r.id: r.embedding for r in wrapper(mem).get(wrapper(mem).ids(contract.F.TRUE), with_embeddings=True)}
    hits = engine.search(np.asarray(query, np.float32), Scope(user_id="u"), 5)
    assert len(hits) == 5
    for mid, score in hits:
        v = np.asarray(held[mid], np.float64)
        cosine = float(np.dot(query, v) / (np.linalg.norm(query) * np.linalg.norm(v)))
        assert abs(score - cosine) < 1e-4, (score, cosine)
    assert engine.search(np.asarray(query, np.float32), Scope(user_id="nobody"), 5) == []


def test_the_legacy_op_query_handshake_is_answered(mongo_server):
    """pymongo 4.7 opens each connection with isMaster over OP_QUERY (4.20 sends it as OP_MSG): a raw one."""
    import socket
    import struct

    import bson
    query = struct.pack("<i", 0) + b"admin.$cmd\0" + struct.pack("<ii", 0, -1) + bson.encode({"isMaster": 1})
    with socket.create_connection(("127.0.0.1", mongo_server.port), timeout=5) as conn:
        conn.sendall(struct.pack("<iiii", 16 + len(query), 7, 0, 2004) + query)
        reply = b""
        while len(reply) < 4 or len(reply) < struct.unpack_from("<i", reply)[0]:
            reply += conn.recv(65536)
    _, _, response_to, opcode, _, cursor_id, _, returned = struct.unpack_from("<iiiiiqii", reply)
    assert (response_to, opcode, cursor_id, returned) == (7, 1, 0, 1)  # OP_REPLY to request 7, one document
    hello = bson.decode(reply[36:])
    assert hello["ok"] == 1 and hello["isWritablePrimary"] and hello["maxWireVersion"] >= 8


def test_the_fake_checks_the_stage_as_atlas_does(mem, store_config, mongo_server):
    from pymongo import MongoClient
    from pymongo.errors import OperationFailure
    contract.add_all(mem, ["something to find"], user_id="u")
    mem.search("find", user_id="u")  # the index is queryable now
    client = MongoClient(mongo_server.uri)
    try:
        coll = client[store_config["config"]["db_name"]][COLLECTION]
        good = {"index": f"{COLLECTION}_vector_index", "path": "embedding", "queryVector": [0.05] * 384,
                "numCandidates": 10, "limit": 5}

        def run(**change):
            return list(coll.aggregate([{"$vectorSearch": {**good, **change}}]))

        assert len(run()) == 1
        assert run(index="no_such_index") == []  # Atlas: no results, no error
        for change, message in [({"numCandidates": 2}, "numCandidates must be greater"),
                                ({"numCandidates": 10_001}, "less than or equal to 10000"),
                                ({"path": "vector"}, "'vector' needs to be indexed as vector"),
                                ({"filter": {"memory": {"$eq": "x"}}}, "'memory' needs to be indexed as filter"),
                                ({"filter": {"user_id": {"$regex": "u"}}}, r"\$regex is not supported"),
                                ({"queryVector": [0.1] * 3}, "indexed with 384 dimensions but queried with 3")]:
            with pytest.raises(OperationFailure, match=message):
                run(**change)
        with pytest.raises(OperationFailure, match="only valid as the first stage"):
            list(coll.aggregate([{"$match": {}}, {"$vectorSearch": good}]))
    finally:
        client.close()


# ------------------------------------------------------------------ the index's life

def test_a_search_waits_until_atlas_reports_the_index_queryable(tmp_path):
    slow = FakeMongo(polls_until_ready=3).start()
    try:
        config = mongo_config(slow)
        def listed():
            return [c["pipeline"][0]["$listSearchIndexes"] for c in slow.commands("aggregate")
                    if "$listSearchIndexes" in c["pipeline"][0]]

        with Memory({"vector_store": config, "llm": NO_LLM}) as m:
            contract.add_all(m, contract.FACTS, user_id="u")
            assert len(slow.commands("createSearchIndexes")) == 1 and listed() == []  # writes do not wait
            assert m.search("what instrument do I play?", user_id="u")["results"][0]["memory"] == contract.FACTS[0]
            assert listed() == [{"name": f"{COLLECTION}_vector_index"}] * 4  # PENDING three times, then READY
        never = FakeMongo(polls_until_ready=10**9).start()
        try:
            engine = MongoDBEngine(mongo_config(never)["config"])
            engine.index_wait_s = 0.3
            engine.upsert([("m1", np.ones(4, np.float32) / 2, Scope(user_id="u"))])
            with pytest.raises(ProviderError, match="not queryable after 0.3s .status PENDING"):
                engine.search(np.ones(4, np.float32) / 2, Scope(user_id="u"), 3)
            assert engine.count() == 1
            engine.close()
        finally:
            never.stop()
    finally:
        slow.stop()


def test_reindex_to_another_dimension_updates_the_index(mongo_server, store_config):
    """What a reindex finds is the shared test's; here, the search index is updated to the new dimension."""
    tiny = reindex_to_16_dimensions(store_config)
    db = store_config["config"]["db_name"]
    [update] = sent(mongo_server, "updateSearchIndex", db)
    assert update["name"] == f"{COLLECTION}_vector_index"
    assert update["definition"]["fields"][0] == {"type": "vector", "path": "embedding", "numDimensions": 16,
                                                  "similarity": "cosine"}
    assert len(sent(mongo_server, "createSearchIndexes", db)) == 1
    with Memory(tiny) as m:  # a new client reads the index's dimension back
        assert wrapper(m)._engine._dims == 16 and wrapper(m).in_step()


# ------------------------------------------------------------------ failures

def test_a_server_that_is_down_then_back_is_caught_up_through_the_outbox(mongo_server, caplog):
    with Memory({"vector_store": mongo_config(mongo_server), "llm": NO_LLM}) as m:
        first = contract.add_all(m, ["I collect vintage postcards"], user_id="u")[0]
        mongo_server.stop()
        try:
            second = contract.add_all(m, ["I bake sourdough bread"], user_id="u")[0]
            assert m.get(second)["memory"] == "I bake sourdough bread"  # the facts are committed
            assert "1 change(s) wait in the outbox" in caplog.text and len(wrapper(m)._store.outbox_pending()) == 1
            with pytest.raises(ProviderError, match="vector engine search failed"):
                m.search("bread", user_id="u")
        finally:
            mongo_server.start()
        third = contract.add_all(m, ["I swim on Sundays"], user_id="u")[0]  # applies the waiting entry first
        assert wrapper(m).outbox_pending() == [] and wrapper(m).in_step() and wrapper(m)._engine.count() == 3
        found = [h["id"] for h in m.search("baking bread", user_id="u")["results"]]
        assert found[0] == second and {first, third} <= set(found)


def test_opening_with_the_server_down_is_a_provider_error(tmp_path):
    down = FakeMongo().start()
    down.stop()  # its port, with nothing listening
    with pytest.raises(ProviderError, match="mongodb: cannot read the vector index"):
        Memory({"vector_store": mongo_config(down), "llm": NO_LLM})


def test_config_keys_are_mem0s_and_the_extra_is_named(mongo_server, monkeypatch):
    with pytest.raises(ConfigurationError, match="unknown mongodb vector_store config keys: host"):
        Memory({"vector_store": {"provider": "mongodb", "config": {"host": "x"}}, "llm": NO_LLM})
    with pytest.raises(ConfigurationError, match="vector_store 'mongodb'"):
        MongoDBEngine({"mongo_uri": "http://127.0.0.1:1"})  # not a mongodb:// URI
    engine = MongoDBEngine({"mongo_uri": mongo_server.uri, "db_name": "defaults", "embedding_model_dims": 384})
    assert (engine._collection.full_name, engine.index) == ("defaults.memlane", "memlane_vector_index")
    engine.close()
    monkeypatch.setitem(sys.modules, "pymongo", None)
    with pytest.raises(ConfigurationError, match=r"pip install 'memlane\[mongodb\]'"):
        MongoDBEngine({"mongo_uri": mongo_server.uri})
