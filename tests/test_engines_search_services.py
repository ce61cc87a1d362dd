"""The search-service vector engines: Elasticsearch, OpenSearch and Azure AI Search, our real client code
(src/memlane/vector_engines/elasticsearch.py, azure_ai_search.py) against local servers speaking each
service's REST protocol (tests/fake_search_servers.py: real HTTP, documents in memory, exact cosine search with
the filter applied first, the services' own score mappings and validation). The Memory-level contract of
tests/test_store_contract.py runs on each, then what was sent (the scope filter inside the kNN search, auth,
escaping), a 5xx retried and then caught up through the outbox, ranks and scores as the SQLite store gives."""
import json
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import test_store_contract as contract
from fake_search_servers import (  # noqa: F401  (fixtures)
    AZURE_API_KEY, AZURE_API_VERSION, ES_API_KEY, FakeAzureSearch, FakeElasticsearch, Reply, fake_azure_search,
    fake_elasticsearch, fake_opensearch)
from fakeservers import fake_server  # noqa: F401  (fixture: the contract's graph tests use it)
from test_store_contract import (  # noqa: F401  (the contract's tests, collected here with this module's fixtures)
    test_a_keyword_only_match_is_found, test_add_get_get_all_and_search,
    test_concurrent_updates_through_two_instances_lose_nothing, test_delete_racing_delete_one_wins_one_not_found,
    test_dimension_mismatch_and_reset, test_every_filter_operator_and_combinator,
    test_graph_memory_through_memory_on_each_store, test_pagination_totals_and_scope_isolation,
    test_text_update_racing_metadata_update_loses_neither, test_update_delete_delete_all_and_history,
    test_update_of_a_memory_deleted_meanwhile_is_not_found)

from memlane import ConfigurationError, Memory
from memlane import filters as F
from memlane.errors import ProviderError
from memlane.models import Scope
from memlane.vector_engines import OutboxVectorStore
from memlane.vector_engines.azure_ai_search import AzureAISearchEngine, document_key, odata_filter
from memlane.vector_engines.elasticsearch import ElasticsearchEngine, OpenSearchEngine, cloud_url

KINDS = ["elasticsearch", "opensearch", "azure_ai_search"]
NO_LLM = {"provider": "none"}
FAST = {"retry_base_delay": 0.001, "retry_max_delay": 0.01, "timeout": 20}
OS_USER, OS_PASSWORD = "admin", "Str0ng!pass"


def start(kind):
    if kind == "elasticsearch":
        return FakeElasticsearch("elasticsearch", api_key=ES_API_KEY)
    if kind == "opensearch":
        return FakeElasticsearch("opensearch", api_key=None, user=OS_USER, password=OS_PASSWORD)
    return FakeAzureSearch()


def engine_config(kind, server, **extra):
    """mem0's keys for each service, pointed at the local server."""
    if kind == "elasticsearch":
        config = {"host": "http://127.0.0.1", "port": server.port, "api_key": ES_API_KEY}
    elif kind == "opensearch":
        config = {"host": "127.0.0.1", "port": server.port, "user": OS_USER, "password": OS_PASSWORD,
                  "use_ssl": False}
    else:
        config = {"service_name": "unused", "base_url": server.url, "api_key": AZURE_API_KEY}
    return {"provider": kind, "config": {"collection_name": "memlane-test", **FAST, **config, **extra}}


@pytest.fixture(params=KINDS)
def kind(request):
    return request.param


@pytest.fixture
def server(kind):
    s = start(kind)
    yield s
    s.close()


@pytest.fixture
def store_config(kind, server):
    return engine_config(kind, server)


@pytest.fixture
def mem(store_config):
    m = Memory({"vector_store": store_config, "llm": NO_LLM})
    yield m
    m.close()


def wrapper(m):
    store = m._runtime.store
    while not isinstance(store, OutboxVectorStore):
        store = store._store
    return store


def engine_count(m):
    return wrapper(m)._engine.count()


def held(server):
    """The documents the fake service holds, over all its indexes."""
    indexes = server.indexes if isinstance(server, FakeAzureSearch) else server.indices
    return sum(len(index.docs) for index in indexes.values())


def searches(server):
    return server.sent("POST", "/_search") or server.sent("POST", "/docs/search")


# ------------------------------------------------------------------ the engines' own, on all three

def test_search_ranks_and_scores_as_the_sqlite_store_does(kind, server, tmp_path):
    corpus = contract.FACTS + ["I drive a blue bicycle to work", "Emma likes the violin as well",
                               "Peanut butter is banned at home"]
    queries = ["what instrument do I play?", "food allergies", "what do I drive?", "Emma's birthday"]
    results = []
    for store in ({"provider": "sqlite", "config": {"path": str(tmp_path / "plain.db")}},
                  engine_config(kind, server)):
        with Memory({"vector_store": store, "history_db_path": str(tmp_path / f"{store['provider']}.db"),
                     "llm": NO_LLM}) as m:
            contract.add_all(m, corpus, user_id="u")
            contract.add_all(m, corpus[:3], user_id="other")
            results.append([[(h["memory"], h["score"]) for h in m.search(q, user_id="u", limit=4)["results"]]
                            for q in queries])
    for query, lite, ext in zip(queries, *results):
        assert [t for t, _ in ext] == [t for t, _ in lite], query
        assert all(abs(p - q) < 1e-3 for (_, p), (_, q) in zip(ext, lite)), (query, ext, lite)


def test_the_engine_filters_by_scope_and_the_store_checks_the_rest(mem):
    ids = contract.add_all(mem, [f"note {i} about the garden" for i in range(30)], user_id="a")
    for i, mid in enumerate(ids):
        mem.update(mid, metadata={"n": i})
    contract.add_all(mem, ["note about the garden"] * 3, user_id="b")
    store = wrapper(mem)
    query = mem._runtime.embedder.embed(["garden"])[0]
    engine_hits = store._engine.search(np.asarray(query, dtype=np.float32), Scope(user_id="a"), 100)
    assert len(engine_hits) == 30 and {i for i, _ in engine_hits} == set(ids)  # scope only, in the engine
    scores = [s for _, s in engine_hits]
    assert scores == sorted(scores, reverse=True) and all(-1 <= s <= 1 for s in scores)
    worst = engine_hits[-1][0]
    n = ids.index(worst)
    assert [i for i, _ in store.vector_search(query, Scope(user_id="a"), F.parse({"user_id": "a", "n": n}), 1)] == [
        worst]  # the pool grows until the one passing memory is in it
    where = F.parse({"AND": [{"user_id": "a"}, {"n": {"gte": 10}}, {"NOT": {"n": {"in": [11, 12]}}}]})
    got = [i for i, _ in store.vector_search(query, Scope(user_id="a"), where, 50)]
    assert sorted(got) == sorted(mid for i, mid in enumerate(ids) if i >= 10 and i not in (11, 12))


def test_delete_delete_all_reset_and_drift_reach_the_service(mem, server):
    ids = contract.add_all(mem, contract.FACTS, user_id="alice")
    contract.add_all(mem, ["elsewhere"], user_id="bob", agent_id="x")
    assert engine_count(mem) == 6 == held(server) and wrapper(mem).in_step()
    mem.delete(ids[0])
    assert engine_count(mem) == 5
    mem.update(ids[1], "I am allergic to cats")
    assert mem.search("cats", user_id="alice")["results"][0]["id"] == ids[1]
    mem.delete_all(user_id="alice")
    assert engine_count(mem) == 1 and mem.search("violin", user_id="alice")["results"] == []
    wrapper(mem)._engine.clear(Scope(agent_id="x"))  # a scope of the engine's own
    assert held(server) == 0
    contract.add_all(mem, contract.FACTS, user_id="alice")
    wrapper(mem)._engine.clear(None)  # the service lost everything
    assert not wrapper(mem).in_step() and held(server) == 0
    assert wrapper(mem).resync() == 6 and wrapper(mem).in_step()
    mem.reset()
    assert engine_count(mem) == 0 and wrapper(mem)._store.outbox_pending() == []
    contract.add_all(mem, ["after reset"], user_id="alice")
    assert engine_count(mem) == 1 and wrapper(mem).in_step()


def test_reindex_to_another_dimension_makes_the_index_again(kind, server, tmp_path):
    from memlane.registry import register_provider
    from test_reindex import TinyEmbedder
    register_provider("embedder", "tiny-letters", TinyEmbedder)
    config = engine_config(kind, server)
    with Memory({"vector_store": config, "llm": NO_LLM}) as m:
        ids = contract.add_all(m, contract.FACTS, user_id="alice")
    with Memory.reindexed({"vector_store": config, "llm": NO_LLM, "embedder": {"provider": "tiny-letters"}}) as m:
        assert engine_count(m) == 5 and wrapper(m).in_step()
        hits = wrapper(m)._engine.search(TinyEmbedder().embed(["violin"])[0], Scope(user_id="alice"), 10)
        assert sorted(i for i, _ in hits) == sorted(ids)
    if kind == "azure_ai_search":
        [index] = server.indexes.values()
        assert {f["name"]: f.get("dimensions") for f in index.definition["fields"]}["vector"] == 16
    else:
        [index] = server.indices.values()
        spec = index.mappings["properties"]["vector"]
        assert spec.get("dims", spec.get("dimension")) == 16


def test_a_5xx_is_retried_then_the_outbox_catches_up(mem, server, kind, caplog):
    contract.add_all(mem, ["I collect vintage postcards"], user_id="u")
    before = len(server.requests)
    server.fail(Reply(503, {"error": "busy"}, {"retry-after": "0"}))  # once: retried within the call
    contract.add_all(mem, ["I bake sourdough bread"], user_id="u")
    writes = server.requests[before:]
    assert len(writes) == 2 and writes[0].raw == writes[1].raw
    assert engine_count(mem) == 2 and wrapper(mem)._store.outbox_pending() == []
    server.fail(*[Reply(500, {"error": "down"})] * 4)  # more than max_retries (3): the write waits
    third = contract.add_all(mem, ["I grow tomatoes"], user_id="u")[0]
    assert "1 change(s) wait in the outbox" in caplog.text
    assert len(wrapper(mem)._store.outbox_pending()) == 1 and held(server) == 2
    assert mem.get(third)["memory"] == "I grow tomatoes"  # the fact is kept
    contract.add_all(mem, ["I swim on Sundays"], user_id="u")  # the next write applies both, in order
    assert engine_count(mem) == 4 and wrapper(mem)._store.outbox_pending() == []
    server.fail(*[Reply(502, None)] * 4)
    with pytest.raises(ProviderError, match="HTTP 502"):
        mem.search("tomatoes", user_id="u")


def test_wrong_credentials_keep_the_facts_and_say_so(kind, server):
    bad = engine_config(kind, server, **({"password": "nope"} if kind == "opensearch" else {"api_key": "nope"}))
    with Memory({"vector_store": bad, "llm": NO_LLM}) as m:  # opens: the service is first asked on a write
        mid = contract.add_all(m, ["I collect vintage postcards"], user_id="u")[0]
        assert m.get(mid)["memory"] == "I collect vintage postcards"
        assert len(wrapper(m)._store.outbox_pending()) == 1
        with pytest.raises(ProviderError, match="HTTP 40[13]"):
            m.search("postcards", user_id="u")
    with Memory({"vector_store": engine_config(kind, server), "llm": NO_LLM}) as m:  # right key: catches up
        assert engine_count(m) == 1 and wrapper(m).in_step()


CRASH = """
import json, os, sys
from memlane import Memory
from memlane.vector_engines import azure_ai_search, elasticsearch
config = json.loads(sys.argv[1])
m = Memory(config)
for engine in (elasticsearch.ElasticsearchEngine, elasticsearch.OpenSearchEngine,
               azure_ai_search.AzureAISearchEngine):
    engine.upsert = lambda self, records: os._exit(3)  # the process dies between the two writes
m.add("I collect vintage postcards", user_id="u1", infer=False)
"""


def test_a_crash_between_the_store_and_the_service_is_repaired_on_open(store_config, server):
    from memlane.config import MemoryConfig
    config = MemoryConfig.from_mem0({"vector_store": store_config, "llm": NO_LLM})
    crashed = subprocess.run([sys.executable, "-c", textwrap.dedent(CRASH), json.dumps(config.model_dump())],
                             capture_output=True, text=True, timeout=120)
    assert crashed.returncode == 3, crashed.stderr
    assert held(server) == 0
    with Memory(config) as m:  # applies what the service missed
        assert wrapper(m)._store.outbox_pending() == [] and engine_count(m) == 1 == held(server)


# ------------------------------------------------------------------ what was sent

def test_elasticsearch_sends_the_scope_filter_inside_the_knn_search(fake_elasticsearch, tmp_path):
    server = fake_elasticsearch
    with Memory({"vector_store": engine_config("elasticsearch", server), "llm": NO_LLM}) as m:
        contract.add_all(m, contract.FACTS, user_id="alice", agent_id="bot")
        m.search("violin", user_id="alice", agent_id="bot", limit=3)
    assert {r.headers.get("authorization") for r in server.requests} == {f"ApiKey {ES_API_KEY}"}
    [create] = server.sent("PUT")
    assert create.path == "/memlane-test"
    props = create.body["mappings"]["properties"]
    assert props["vector"] == {"type": "dense_vector", "dims": 384, "index": True, "similarity": "cosine"}
    assert all(props[k] == {"type": "keyword"} for k in ("user_id", "agent_id", "run_id"))
    bulk = server.sent("POST", "/_bulk")[0]
    assert bulk.query == {"refresh": "wait_for"} and bulk.headers["content-type"] == "application/x-ndjson"
    assert bulk.body[0] == {"index": {"_id": bulk.body[0]["index"]["_id"]}} and set(bulk.body[1]) == {
        "vector", "user_id", "agent_id"}
    search = searches(server)[-1].body
    assert set(search) == {"knn", "size", "_source"}  # no query, no post_filter: the filter is the kNN's
    knn = search["knn"]
    assert knn["field"] == "vector" and knn["k"] == search["size"] and knn["num_candidates"] >= knn["k"]
    assert knn["filter"] == {"bool": {"filter": [{"term": {"user_id": "alice"}}, {"term": {"agent_id": "bot"}}]}}


def test_opensearch_sends_a_knn_query_with_its_filter_and_basic_auth(fake_opensearch):
    server = fake_opensearch
    with Memory({"vector_store": engine_config("opensearch", server, engine="faiss"), "llm": NO_LLM}) as m:
        contract.add_all(m, contract.FACTS, user_id="alice")
        assert m.search("violin", user_id="alice", limit=2)["results"][0]["memory"] == contract.FACTS[0]
    token = __import__("base64").b64encode(f"{OS_USER}:{OS_PASSWORD}".encode()).decode()
    assert {r.headers.get("authorization") for r in server.requests} == {f"Basic {token}"}
    [create] = server.sent("PUT")
    assert create.body["settings"] == {"index": {"knn": True}}
    assert create.body["mappings"]["properties"]["vector"] == {
        "type": "knn_vector", "dimension": 384,
        "method": {"name": "hnsw", "engine": "faiss", "space_type": "cosinesimil"}}
    search = searches(server)[-1].body
    assert set(search) == {"query", "size", "_source"}
    knn = search["query"]["knn"]["vector"]
    assert knn["k"] == search["size"] and knn["filter"] == {"bool": {"filter": [{"term": {"user_id": "alice"}}]}}


def test_azure_sends_a_prefiltered_vector_query_with_the_quotes_escaped(fake_azure_search):
    server = fake_azure_search
    with Memory({"vector_store": engine_config("azure_ai_search", server), "llm": NO_LLM}) as m:
        mine = contract.add_all(m, ["I play the violin", "I like tea"], user_id="O'Brien")
        contract.add_all(m, ["I play the violin too"], user_id="x' or user_id ne 'y")  # an injection attempt
        contract.add_all(m, ["I play the violin as well"], user_id="O")
        hits = m.search("violin", user_id="O'Brien")["results"]
        assert {h["id"] for h in hits} == set(mine) and hits[0]["id"] == mine[0]
    assert all(r.headers.get("api-key") == AZURE_API_KEY and r.query == {"api-version": AZURE_API_VERSION}
               for r in server.requests)
    [create] = server.sent("PUT")
    fields = {f["name"]: f for f in create.body["fields"]}
    assert fields["id"]["key"] and all(fields[k]["filterable"] for k in ("user_id", "agent_id", "run_id"))
    assert fields["vector"]["type"] == "Collection(Edm.Single)" and fields["vector"]["dimensions"] == 384
    profile = create.body["vectorSearch"]["profiles"][0]
    assert fields["vector"]["vectorSearchProfile"] == profile["name"]
    assert create.body["vectorSearch"]["algorithms"] == [
        {"name": profile["algorithm"], "kind": "hnsw", "hnswParameters": {"metric": "cosine"}}]
    write = server.sent("POST", "/docs/index")[0].body["value"][0]
    assert write["@search.action"] == "mergeOrUpload" and write["user_id"] == "O'Brien" and write["run_id"] is None
    search = searches(server)[-1].body
    assert search["filter"] == "user_id eq 'O''Brien'" and search["vectorFilterMode"] == "preFilter"
    [query] = search["vectorQueries"]
    assert query["kind"] == "vector" and query["fields"] == "vector" and query["k"] == search["top"]
    assert odata_filter(Scope(user_id="a'b", run_id="r")) == "user_id eq 'a''b' and run_id eq 'r'"


def test_azure_keys_for_ids_that_are_not_url_safe(fake_azure_search):
    engine = AzureAISearchEngine(engine_config("azure_ai_search", fake_azure_search)["config"])
    odd = ["a/b c", "_leading", "é", "with=equals", "plain-id_1"]
    assert document_key("plain-id_1") == "plain-id_1" and document_key("a/b c").startswith("k=")
    assert len({document_key(i) for i in odd}) == len(odd)
    vectors = np.eye(len(odd), 8, dtype=np.float32)
    engine.upsert([(mid, vectors[i], Scope(user_id="u")) for i, mid in enumerate(odd)])
    assert engine.count() == len(odd)
    assert engine.search(vectors[0], Scope(user_id="u"), 1) == [("a/b c", 1.0)]
    assert [i for i, _ in engine.search(vectors[2], Scope(user_id="u"), 5)][0] == "é"
    engine.delete(odd[:2])
    assert engine.count() == 3 and set(fake_azure_search.indexes["memlane-test"].docs) == {
        document_key(i) for i in odd[2:]}
    engine.close()


# ------------------------------------------------------------------ config

def test_config_keys_are_mem0s(kind, server):
    with pytest.raises(ConfigurationError, match=f"unknown {kind} vector_store config keys: nope"):
        Memory({"vector_store": engine_config(kind, server, nope=1), "llm": NO_LLM})
    with pytest.raises(ConfigurationError, match="collection_name"):
        Memory({"vector_store": engine_config(kind, server, collection_name="Bad Name"), "llm": NO_LLM})
    mem0_keys = {
        "elasticsearch": {"collection_name": "mem0", "host": "localhost", "port": 9200, "user": "u", "password": "p",
                          "cloud_id": None, "api_key": None, "embedding_model_dims": 1536, "verify_certs": True,
                          "ca_certs": None, "use_ssl": True, "auto_create_index": True, "custom_search_query": None,
                          "headers": {"x-opaque-id": "memlane"}},
        "opensearch": {"collection_name": "mem0", "host": "localhost", "port": 9200, "user": None, "password": None,
                       "api_key": None, "embedding_model_dims": 1536, "verify_certs": False, "use_ssl": False,
                       "http_auth": ("u", "p"), "connection_class": "RequestsHttpConnection", "pool_maxsize": 20,
                       "auto_refresh": False},
        "azure_ai_search": {"collection_name": "mem0", "service_name": "svc", "api_key": "k",
                            "embedding_model_dims": 1536, "compression_type": "scalar", "use_float16": True,
                            "hybrid_search": False, "vector_filter_mode": "postFilter"}}[kind]
    engine = {"elasticsearch": ElasticsearchEngine, "opensearch": OpenSearchEngine,
              "azure_ai_search": AzureAISearchEngine}[kind](mem0_keys)  # nothing is asked of the service yet
    expected = {"elasticsearch": "https://localhost:9200", "opensearch": "http://localhost:9200",
                "azure_ai_search": "https://svc.search.windows.net"}[kind]
    assert engine.base_url == expected
    if kind == "azure_ai_search":
        definition = engine.definition(8)
        assert definition["fields"][-1]["type"] == "Collection(Edm.Half)"
        assert definition["vectorSearch"]["compressions"][0]["kind"] == "scalarQuantization"
        with pytest.raises(ConfigurationError, match="api_key"):
            AzureAISearchEngine({"service_name": "svc"})
    else:
        assert engine.headers["authorization"].startswith("Basic ")
    engine.close()


def test_elastic_cloud_id_and_custom_queries():
    cloud_id = "deploy:" + __import__("base64").b64encode(b"us-east-1.aws.found.io$abc123$kib456").decode()
    assert cloud_url(cloud_id) == "https://abc123.us-east-1.aws.found.io:443"
    engine = ElasticsearchEngine({"cloud_id": cloud_id, "api_key": "k"})
    assert engine.base_url == cloud_url(cloud_id) and engine.headers["authorization"] == "ApiKey k"
    with pytest.raises(ConfigurationError, match="custom_search_query"):
        ElasticsearchEngine({"custom_search_query": lambda *a: {}})
    with pytest.raises(ConfigurationError, match="engine"):
        OpenSearchEngine({"engine": "nmslib"})
    with pytest.raises(ConfigurationError, match="http_auth"):
        OpenSearchEngine({"http_auth": object()})


# ------------------------------------------------------------------ the fakes refuse what the services refuse

def test_the_fake_services_validate_requests_as_the_services_do(fake_elasticsearch, fake_azure_search):
    import httpx
    es, az = fake_elasticsearch.url, fake_azure_search.url
    auth = {"authorization": f"ApiKey {ES_API_KEY}"}
    assert httpx.get(f"{es}/memlane-test/_count").status_code == 401
    assert httpx.get(f"{es}/memlane-test/_count", headers=auth).json()["error"]["type"] == "index_not_found_exception"
    mapping = {"mappings": {"properties": {"vector": {"type": "dense_vector", "dims": 3, "similarity": "cosine"}}}}
    assert httpx.put(f"{es}/memlane-test", json=mapping, headers=auth).status_code == 200
    lines = b'{"index":{"_id":"a"}}\n{"vector":[1,0]}\n{"index":{"_id":"b"}}\n{"vector":[0,0,0]}\n'
    bulk = httpx.post(f"{es}/memlane-test/_bulk", content=lines,
                      headers={**auth, "content-type": "application/x-ndjson"}).json()
    assert bulk["errors"] and [i["index"]["status"] for i in bulk["items"]] == [400, 400]  # dims; zero magnitude
    knn = {"field": "vector", "query_vector": [1, 0, 0], "k": 20, "num_candidates": 10}
    assert "cannot be less than [k]" in httpx.post(f"{es}/memlane-test/_search", json={"knn": knn},
                                                   headers=auth).text
    key, version = {"api-key": AZURE_API_KEY}, {"api-version": AZURE_API_VERSION}
    assert httpx.get(f"{az}/indexes/x", headers=key, params={"api-version": "2023-11-01"}).status_code == 400
    assert httpx.get(f"{az}/indexes/x", headers={"api-key": "wrong"}, params=version).status_code == 403
    assert httpx.get(f"{az}/indexes/x", headers=key, params=version).status_code == 404
    engine = AzureAISearchEngine({"base_url": az, "api_key": AZURE_API_KEY, "collection_name": "x1"})
    assert httpx.put(f"{az}/indexes/x1", headers=key, params=version, json=engine.definition(4)).status_code == 201
    docs = {"value": [{"@search.action": "upload", "id": "_bad", "memory_id": "m"},
                      {"@search.action": "upload", "id": "ok", "nope": 1}]}
    assert httpx.post(f"{az}/indexes/x1/docs/index", headers=key, params=version, json=docs).status_code == 400
    docs["value"].pop()
    answer = httpx.post(f"{az}/indexes/x1/docs/index", headers=key, params=version, json=docs)
    assert answer.status_code == 207 and "Invalid document key" in answer.json()["value"][0]["errorMessage"]
    search = {"filter": "memory_id eq 'm'", "select": "memory_id"}  # memory_id is not filterable
    assert "not filterable" in httpx.post(f"{az}/indexes/x1/docs/search", headers=key, params=version,
                                          json=search).text
    engine.close()
