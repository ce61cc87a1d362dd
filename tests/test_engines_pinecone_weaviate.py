"""Pinecone and Weaviate as vector engines (src/memlane/vector_engines/pinecone.py, weaviate.py): memlane's
real client code against local servers speaking each service's REST / GraphQL protocol
(tests/fake_vector_servers.py: vectors held in memory, real cosine search with the filter applied inside it,
requests validated as the services do and recorded). The Memory-level contract of tests/test_store_contract.py
and the engine tests of tests/test_vector_engines.py run on each; then what was sent (auth, the scope filter,
the index / class made), a failing server (retried, then the outbox keeps the change until it catches up),
and the index made again for another dimension."""
import uuid

import numpy as np
import pytest

import test_store_contract as contract
from engine_testing import NO_LLM, engine_count, reindex_to_16_dimensions, wrapper
from fake_vector_servers import (PINECONE_KEY, WEAVIATE_KEY, FakePinecone, FakeWeaviate, Reply,  # noqa: F401
                                 fake_pinecone, fake_weaviate)
from test_vector_engines import *  # noqa: F403  (the contract's and the engine tests, with their fixtures)

from memlane import ConfigurationError, Memory
from memlane.errors import ProviderError
from memlane.models import Scope
from memlane.stores import sqlite_doctor
from memlane.vector_engines.pinecone import PineconeEngine
from memlane.vector_engines.weaviate import WeaviateEngine

ENGINES = ["pinecone", "weaviate"]
FAST = {"max_retries": 2, "retry_base_delay": 0.01, "retry_max_delay": 0.05, "timeout": 10}


def config_for(kind, server, **extra):
    if kind == "pinecone":
        config = {"collection_name": "memlane-test", "api_key": PINECONE_KEY, "extra_params": {"host": server.url}}
    else:
        config = {"collection_name": "memlane_test", "cluster_url": server.url, "auth_client_secret": WEAVIATE_KEY}
    return {"provider": kind, "config": {**config, **FAST, **extra}}


@pytest.fixture(params=ENGINES)
def kind(request):
    return request.param


@pytest.fixture
def server(kind):
    fake = FakePinecone() if kind == "pinecone" else FakeWeaviate()
    yield fake
    fake.close()


@pytest.fixture
def engine_config(kind, server):
    """vector_store config pointing at the fake server (`name`: another index / class on it)."""
    return lambda name=None: config_for(kind, server, **({"collection_name": name} if name else {}))


def search_requests(kind, server):
    return server.sent("/query") if kind == "pinecone" else [
        r for r in server.sent("/v1/graphql") if "Get" in r.json["query"]]


# ------------------------------------------------------------------ what was sent

def write_search_delete_and_reset(config, **scope):
    """Through a Memory: alice's five facts (in `scope`) and bob's one, a search, a delete, alice's delete_all,
    a reset. Returns alice's ids."""
    with Memory({"vector_store": config, "llm": NO_LLM}) as m:
        ids = contract.add_all(m, contract.FACTS, user_id="alice", **scope)
        contract.add_all(m, ["elsewhere"], user_id="bob")
        hits = m.search("what instrument do I play?", user_id="alice", **scope)["results"]
        assert hits[0]["id"] == ids[0]
        m.delete(ids[1])
        m.delete_all(user_id="alice")
        m.reset()
    return ids


def test_pinecone_requests(fake_pinecone):
    config = config_for("pinecone", fake_pinecone, serverless_config={"cloud": "aws", "region": "us-east-1"},
                        extra_params={"host": fake_pinecone.url, "additional_headers": {"X-Project": "p1"}})
    ids = write_search_delete_and_reset(config, agent_id="bot")
    assert all(r.headers["api-key"] == PINECONE_KEY and r.headers["x-pinecone-api-version"] == "2025-04"
               and r.headers["x-project"] == "p1" for r in fake_pinecone.requests)
    # the control plane: looked for the index, made it (serverless, cosine) at the first write, waited for it
    control = [(r.method, r.path) for r in fake_pinecone.requests if r.server == "control"]
    assert control[:3] == [("GET", "/indexes/memlane-test"), ("POST", "/indexes"), ("GET", "/indexes/memlane-test")]
    [create] = fake_pinecone.sent("/indexes", "control")[1:2]
    assert create.json == {"name": "memlane-test", "dimension": 384, "metric": "cosine",
                           "spec": {"serverless": {"cloud": "aws", "region": "us-east-1"}},
                           "deletion_protection": "disabled"}
    upserts = fake_pinecone.sent("/vectors/upsert")
    first = upserts[0].json["vectors"][0]
    assert first["id"] == ids[0] and first["metadata"] == {"user_id": "alice", "agent_id": "bot"}
    assert len(first["values"]) == 384 and "namespace" not in upserts[0].json
    query = search_requests("pinecone", fake_pinecone)[0].json
    assert query["filter"] == {"user_id": {"$eq": "alice"}, "agent_id": {"$eq": "bot"}}
    assert query["topK"] >= 10 and query["includeValues"] is False
    deletes = [r.json for r in fake_pinecone.sent("/vectors/delete")]
    assert deletes[0] == {"ids": [ids[1]]} and sorted(deletes[1]["ids"]) == sorted(ids[:1] + ids[2:])
    assert deletes[2:] == [{"deleteAll": True}]  # reset


def test_pinecone_namespace_and_count(fake_pinecone):
    config = config_for("pinecone", fake_pinecone, namespace="tenant-a")
    with Memory({"vector_store": config, "llm": NO_LLM}) as m:
        contract.add_all(m, contract.FACTS[:3], user_id="u")
        contract.add_all(m, contract.FACTS[3:], user_id="v")
        assert engine_count(m) == 5 and wrapper(m).in_step()
        wrapper(m)._engine.clear(Scope(user_id="v"))  # a scope's records: delete by metadata filter
        assert fake_pinecone.sent("/vectors/delete")[-1].json == {"filter": {"user_id": {"$eq": "v"}},
                                                                  "namespace": "tenant-a"}
        assert engine_count(m) == 3
        m.reset()
        assert engine_count(m) == 0
    bodies = [r.json for r in fake_pinecone.sent("/vectors") + fake_pinecone.sent("/query")]
    assert bodies and all(b["namespace"] == "tenant-a" for b in bodies)
    index = fake_pinecone.indexes["memlane-test"]
    index.namespaces.setdefault("other", {})["x"] = (np.ones(384, np.float32), {})  # another tenant's record
    with Memory({"vector_store": config, "llm": NO_LLM}) as m:
        assert engine_count(m) == 0  # counted in its own namespace only


def test_weaviate_requests(fake_weaviate):
    config = config_for("weaviate", fake_weaviate, additional_headers={"X-OpenAI-Api-Key": "sk-x"})
    ids = write_search_delete_and_reset(config, run_id="r1")
    assert all(r.headers["authorization"] == f"Bearer {WEAVIATE_KEY}" and r.headers["x-openai-api-key"] == "sk-x"
               for r in fake_weaviate.requests)
    [schema] = [r.json for r in fake_weaviate.sent("/v1/schema") if r.method == "POST"]
    assert schema["class"] == "Memlane_test" and schema["vectorizer"] == "none"
    assert schema["vectorIndexConfig"] == {"distance": "cosine"}
    assert [(p["name"], p["dataType"], p["tokenization"]) for p in schema["properties"]] == [
        (k, ["text"], "field") for k in ("memory_id", "user_id", "agent_id", "run_id")]
    batch = [r.json for r in fake_weaviate.sent("/v1/batch/objects") if r.method == "POST"][0]["objects"][0]
    assert batch["class"] == "Memlane_test" and uuid.UUID(batch["id"])
    assert batch["properties"] == {"memory_id": ids[0], "user_id": "alice", "run_id": "r1"}
    query = search_requests("weaviate", fake_weaviate)[0].json["query"]
    assert query.startswith("{ Get { Memlane_test(nearVector: {vector: [")
    assert ('where: {operator: And, operands: [{path: ["user_id"], operator: Equal, valueText: "alice"}, '
            '{path: ["run_id"], operator: Equal, valueText: "r1"}]}') in query
    assert query.endswith("{ memory_id _additional { distance } } } }")
    deletes = [(r.method, r.path, r.json) for r in fake_weaviate.requests if r.method == "DELETE"]
    assert deletes[0][:2] == ("DELETE", f"/v1/objects/Memlane_test/{ids[1]}")
    where = deletes[1][2]["match"]["where"]  # delete_all: the ids the store deleted, in one batch delete
    assert deletes[1][1] == "/v1/batch/objects" and deletes[1][2]["match"]["class"] == "Memlane_test"
    assert (where["path"], where["operator"]) == (["memory_id"], "ContainsAny")
    assert sorted(where["valueTextArray"]) == sorted(ids[:1] + ids[2:])
    assert deletes[-1][:2] == ("DELETE", "/v1/schema/Memlane_test")  # reset drops the class


def test_weaviate_maps_ids_that_are_not_uuids_and_deletes_past_the_query_limit(fake_weaviate):
    fake_weaviate.query_max = 3  # QUERY_MAXIMUM_RESULTS: a batch delete takes at most 3 per call
    engine = WeaviateEngine(config_for("weaviate", fake_weaviate)["config"])
    vec = [contract.vec(1, i, 0, 0) for i in range(8)]
    engine.upsert([(f"mem-{i}", vec[i], Scope(user_id="a" if i < 7 else "b")) for i in range(8)])
    stored = fake_weaviate.classes["Memlane_test"].objects
    assert str(uuid.uuid5(uuid.NAMESPACE_URL, "memlane:mem-0")) in stored  # deterministic, as Qdrant's
    assert [i for i, _ in engine.search(vec[0], Scope(user_id="a"), 3)] == ["mem-0", "mem-1", "mem-2"]
    engine.upsert([("mem-0", vec[0], Scope(user_id="a"))])  # the same id again replaces it
    assert engine.count() == 8
    engine.delete(["mem-1", "mem-2"])
    assert engine.count() == 6
    engine.clear(Scope(user_id="a"))  # 5 matches: two passes of at most 3
    assert engine.count() == 1 and len([r for r in fake_weaviate.sent("/v1/batch/objects")
                                        if r.method == "DELETE"]) == 1 + 2
    assert [i for i, _ in engine.search(vec[7], Scope(), 3)] == ["mem-7"]
    odd = 'o"brien \\ ü\n'  # quotes, a backslash, non-ASCII and a newline inside the GraphQL where literal
    engine.upsert([("mem-odd", vec[3], Scope(user_id=odd, agent_id="a b"))])
    assert [i for i, _ in engine.search(vec[3], Scope(user_id=odd, agent_id="a b"), 3)] == ["mem-odd"]
    assert engine.search(vec[3], Scope(user_id='o"brien'), 3) == []
    engine.close()


def test_weaviate_class_dropped_behind_its_back_is_made_again(fake_weaviate):
    with Memory({"vector_store": config_for("weaviate", fake_weaviate), "llm": NO_LLM}) as m:
        contract.add_all(m, ["I play the violin"], user_id="u")
        fake_weaviate.classes.clear()  # someone dropped the class (the batch write then fails per object)
        second = contract.add_all(m, ["I collect vintage postcards"], user_id="u")[0]
        assert engine_count(m) == 1 and wrapper(m).resync() == 2 and wrapper(m).in_step()
        assert m.search("postcards", user_id="u")["results"][0]["id"] == second


# ------------------------------------------------------------------ failures

@pytest.mark.parametrize("kind", ENGINES)
def test_a_server_error_is_retried(mem, kind, server):
    write = "/vectors/upsert" if kind == "pinecone" else "/v1/batch/objects"
    contract.add_all(mem, ["first"], user_id="u")
    server.fail(Reply(503, {"message": "overloaded"}), path=write)
    contract.add_all(mem, ["second"], user_id="u")
    assert len(server.sent(write)) == 3 and engine_count(mem) == 2 and wrapper(mem).in_step()


@pytest.mark.parametrize("kind", ENGINES)
def test_a_server_down_keeps_the_change_in_the_outbox_until_it_catches_up(mem, kind, server, caplog):
    write = "/vectors/upsert" if kind == "pinecone" else "/v1/batch/objects"
    contract.add_all(mem, ["I play the violin"], user_id="u")
    server.fail(*[Reply(500, {"message": "internal"})] * 3, path=write)  # max_retries=2: 3 attempts, all fail
    first = contract.add_all(mem, ["I collect vintage postcards"], user_id="u")[0]
    assert mem.get(first)["memory"] == "I collect vintage postcards"
    assert "1 change(s) wait in the outbox" in caplog.text and engine_count(mem) == 1
    assert sqlite_doctor.check(mem.config.database_path()).counts["outbox_pending"] == 1
    contract.add_all(mem, ["I bake sourdough bread"], user_id="u")  # the next write applies both, in order
    assert engine_count(mem) == 3 and wrapper(mem).in_step()
    assert mem.search("postcards", user_id="u")["results"][0]["id"] == first


@pytest.mark.parametrize("kind", ENGINES)
def test_a_wrong_key_is_a_provider_error_naming_the_key(kind, server):
    config = config_for(kind, server)["config"]
    config["api_key" if kind == "pinecone" else "auth_client_secret"] = "wrong"
    engine = (PineconeEngine if kind == "pinecone" else WeaviateEngine)(config)
    with pytest.raises(ProviderError, match="HTTP 401 \\(check the API key\\)"):
        engine.search(contract.vec(1, 0, 0, 0), Scope(user_id="u"), 5)
    assert len(server.requests) == 1  # a 401 is not retried
    engine.close()


def test_config_keys_are_mem0s(fake_pinecone, fake_weaviate, monkeypatch):
    monkeypatch.delenv("PINECONE_API_KEY", raising=False)
    with pytest.raises(ConfigurationError, match="unknown pinecone vector_store config keys: nope"):
        PineconeEngine({"api_key": "k", "nope": 1})
    with pytest.raises(ConfigurationError, match="PINECONE_API_KEY"):
        PineconeEngine({"collection_name": "x"})
    with pytest.raises(ConfigurationError, match="no Pinecone index name"):
        PineconeEngine({"api_key": "k", "collection_name": "Has_Underscore"})
    with pytest.raises(ConfigurationError, match="not both"):
        PineconeEngine({"api_key": "k", "serverless_config": {"cloud": "aws"}, "pod_config": {"pods": 1}})
    with pytest.raises(ConfigurationError, match="metric"):
        PineconeEngine({"api_key": "k", "metric": "euclidean"})
    with pytest.raises(ConfigurationError, match="extra_params keys: proxy_url"):
        PineconeEngine({"api_key": "k", "extra_params": {"proxy_url": "http://p"}})
    monkeypatch.setenv("PINECONE_API_KEY", PINECONE_KEY)
    mem0_style = {"collection_name": "mem0", "embedding_model_dims": 1536, "client": None, "api_key": None,
                  "environment": "us-west1-gcp", "pod_config": {"pod_type": "p1.x1", "pods": 1}, "hybrid_search": True,
                  "metric": "dotproduct", "batch_size": 2, "extra_params": {"host": fake_pinecone.url},
                  "namespace": None}
    engine = PineconeEngine(mem0_style)
    engine.upsert([(f"m{i}", contract.vec(1, i, 0, 0), Scope(user_id="u")) for i in range(5)])
    assert fake_pinecone.sent("/indexes", "control")[1].json["spec"] == {
        "pod": {"environment": "us-west1-gcp", "pod_type": "p1.x1", "pods": 1}}
    assert [len(r.json["vectors"]) for r in fake_pinecone.sent("/vectors/upsert")] == [2, 2, 1]  # batch_size
    assert engine.count() == 5
    engine.close()
    with pytest.raises(ConfigurationError, match="unknown weaviate vector_store config keys: url"):
        WeaviateEngine({"cluster_url": fake_weaviate.url, "url": "x"})
    with pytest.raises(ConfigurationError, match="config keys: path"):  # hosted: memlane gives it no folder
        Memory({"vector_store": {"provider": "weaviate", "config": {"cluster_url": "http://x", "path": "/tmp/x"}}})
    with pytest.raises(ConfigurationError, match="cluster_url is required"):
        WeaviateEngine({"collection_name": "c"})
    with pytest.raises(ConfigurationError, match="no Weaviate class name"):
        WeaviateEngine({"cluster_url": fake_weaviate.url, "collection_name": "9lives"})
    # mem0's keys as mem0 dumps them (None when unset); a Memory gets them through vector_store
    with Memory({"vector_store": {"provider": "weaviate", "config": {
            "collection_name": "mem0", "embedding_model_dims": 384, "cluster_url": fake_weaviate.url,
            "auth_client_secret": WEAVIATE_KEY, "additional_headers": None}}, "llm": NO_LLM}) as m:
        contract.add_all(m, ["hello"], user_id="u")
        assert "Mem0" in fake_weaviate.classes and engine_count(m) == 1


# ------------------------------------------------------------------ another space

def test_reindex_to_another_dimension_makes_the_index_again(kind, server, store_config):
    """What a reindex finds is the shared test's; here, the index / class is made again in the new space."""
    reindex_to_16_dimensions(store_config)
    if kind == "pinecone":
        assert server.indexes["memlane-test"].dimension == 16
        assert [r.method for r in server.sent("/indexes/memlane-test", "control")].count("DELETE") == 1
    else:
        assert server.classes["Memlane_test"].dims == 16
