"""The search-service vector engines: Elasticsearch, OpenSearch and Azure AI Search, our real client code
(src/memlane/vector_engines/elasticsearch.py, azure_ai_search.py) against local servers speaking each
service's REST protocol (tests/fake_search_servers.py: real HTTP, documents in memory, exact cosine search with
the filter applied first, the services' own score mappings and validation). The Memory-level contract of
tests/test_store_contract.py and the engine tests of tests/test_vector_engines.py run on each (ranks and scores
as the SQLite store gives, within 1e-3), then what was sent (the scope filter inside the kNN search, auth,
escaping), the service's documents following the engine, a 5xx retried and then caught up through the outbox."""
import numpy as np
import pytest

import test_store_contract as contract
from engine_testing import NO_LLM, engine_count, reindex_to_16_dimensions, wrapper
from fake_search_servers import (  # noqa: F401  (fixtures)
    AZURE_API_KEY, AZURE_API_VERSION, ES_API_KEY, FakeAzureSearch, FakeElasticsearch, Reply, fake_azure_search,
    fake_elasticsearch, fake_opensearch)
from test_store_contract import (  # noqa: F401  (contract tests that need two clients on one engine)
    test_concurrent_updates_through_two_instances_lose_nothing, test_dimension_mismatch_and_reset)
from test_vector_engines import *  # noqa: F403  (the contract's and the engine tests, with their fixtures)

from memlane import ConfigurationError, Memory
from memlane.errors import ProviderError
from memlane.models import Scope
from memlane.vector_engines.azure_ai_search import AzureAISearchEngine, document_key, odata_filter
from memlane.vector_engines.elasticsearch import ElasticsearchEngine, OpenSearchEngine, cloud_url

KINDS = ["elasticsearch", "opensearch", "azure_ai_search"]
FAST = {"retry_base_delay": 0.001, "retry_max_delay": 0.01, "timeout": 20}
OS_USER, OS_PASSWORD = "admin", "Str0ng!pass"


def start(kind):
    if kind == "elasticsearch":
        return FakeElasticsearch("elasticsearch", api_key=ES_API_KEY)
    if kind == "opensearch":
        return FakeElasticsearch("opensearch", api_key=None, user=OS_USER, password=OS_PASSWORD)
    return FakeAzureSearch()


def config_for(kind, server, **extra):
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
def engine_config(kind, server):
    """vector_store config pointing at the local server (`name`: another index on it)."""
    return lambda name=None: config_for(kind, server, **({"collection_name": name} if name else {}))


@pytest.fixture
def rank_tolerance():
    """The services map cosine to their scores exactly (and memlane maps them back): scores agree closely."""
    return 1e-3


def held(server):
    """The documents the fake service holds, over all its indexes."""
    indexes = server.indexes if isinstance(server, FakeAzureSearch) else server.indices
    return sum(len(index.docs) for index in indexes.values())


def searches(server):
    return server.sent("POST", "/_search") or server.sent("POST", "/docs/search")


# ------------------------------------------------------------------ the engines' own, on all three

def test_the_service_holds_what_the_engine_counts(mem, server):
    """Deletes, reset and drift reaching the engine are the shared tests'; here the service's own documents
    follow them, and a scope of the engine's own (an agent, across users) is cleared in it."""
    ids = contract.add_all(mem, contract.FACTS, user_id="alice")
    contract.add_all(mem, ["elsewhere"], user_id="bob", agent_id="x")
    assert engine_count(mem) == 6 == held(server) and wrapper(mem).in_step()
    mem.delete(ids[0])
    mem.delete_all(user_id="alice")
    assert held(server) == 1
    wrapper(mem)._engine.clear(Scope(agent_id="x"))
    assert held(server) == 0
    contract.add_all(mem, contract.FACTS, user_id="alice")
    wrapper(mem)._engine.clear(None)  # the service lost everything
    assert held(server) == 0 and wrapper(mem).resync() == 6 == held(server)


def test_reindex_to_another_dimension_makes_the_index_again(kind, server, store_config):
    """What a reindex finds is the shared test's; here, the index is made again in the new space."""
    reindex_to_16_dimensions(store_config)
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
    bad = config_for(kind, server, **({"password": "nope"} if kind == "opensearch" else {"api_key": "nope"}))
    with Memory({"vector_store": bad, "llm": NO_LLM}) as m:  # opens: the service is first asked on a write
        mid = contract.add_all(m, ["I collect vintage postcards"], user_id="u")[0]
        assert m.get(mid)["memory"] == "I collect vintage postcards"
        assert len(wrapper(m)._store.outbox_pending()) == 1
        with pytest.raises(ProviderError, match="HTTP 40[13]"):
            m.search("postcards", user_id="u")
    with Memory({"vector_store": config_for(kind, server), "llm": NO_LLM}) as m:  # right key: catches up
        assert engine_count(m) == 1 and wrapper(m).in_step()


# ------------------------------------------------------------------ what was sent

def test_elasticsearch_sends_the_scope_filter_inside_the_knn_search(fake_elasticsearch, tmp_path):
    server = fake_elasticsearch
    with Memory({"vector_store": config_for("elasticsearch", server), "llm": NO_LLM}) as m:
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
    with Memory({"vector_store": config_for("opensearch", server, engine="faiss"), "llm": NO_LLM}) as m:
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
    with Memory({"vector_store": config_for("azure_ai_search", server), "llm": NO_LLM}) as m:
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
    engine = AzureAISearchEngine(config_for("azure_ai_search", fake_azure_search)["config"])
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
        Memory({"vector_store": config_for(kind, server, nope=1), "llm": NO_LLM})
    with pytest.raises(ConfigurationError, match="collection_name"):
        Memory({"vector_store": config_for(kind, server, collection_name="Bad Name"), "llm": NO_LLM})
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
