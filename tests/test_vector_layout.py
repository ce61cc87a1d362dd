"""The SQLite store's scope-clustered float16 vector copy (memory_vectors), and the scoped reads that rank
from the scope's own index first and check the full filter on the best rows afterwards."""
import sqlite3
from contextlib import closing

import numpy as np
import pytest

from memlane import Memory
from memlane import filters as F
from memlane import inputs
from memlane.models import ChangeSet
from memlane.pipeline import new_memory
from memlane.stores.sqlite_migrations import SCHEMA_VERSION
from memlane.stores.sqlite import SQLiteStore

from conftest import config_for

DIM = 8


def _expected(conn) -> set:
    """memory_vectors as it should be: one float16 row per scope id of each memory."""
    out = set()
    for pk, user, agent, run, blob in conn.execute("SELECT pk, user_id, agent_id, run_id, embedding FROM memories"):
        half = np.frombuffer(blob, dtype=np.float32).astype(np.float16).tobytes()
        for kind, value in (("user_id", user), ("agent_id", agent), ("run_id", run)):
            if value is not None:
                out.add((f"{kind}:{value}", pk, half))
    return out


def _actual(conn) -> set:
    return set(conn.execute("SELECT scope, pk, embedding FROM memory_vectors"))


def test_the_float16_copy_follows_every_write(tmp_path):
    with Memory(config_for(tmp_path / "m.db")) as m:
        conn = m._runtime.store._conn()
        a = m.add("I keep bees on the roof", user_id="alice", run_id="r1", infer=False)["results"][0]["id"]
        m.add("I sail on weekends", user_id="bob", agent_id="coach", infer=False)
        assert len(_actual(conn)) == 4 and _actual(conn) == _expected(conn)
        before = _actual(conn)
        m.update(a, "I keep goats in the garden")
        assert _actual(conn) == _expected(conn) != before  # a new text, a new vector
        m.delete(a)
        assert {s for s, _, _ in _actual(conn)} == {"user_id:bob", "agent_id:coach"}
        assert _actual(conn) == _expected(conn)
        m.reset()
        assert _actual(conn) == set()


def _store(tmp_path, vectors, scopes, metadata=None, texts=None):
    store = SQLiteStore({"path": str(tmp_path / "s.db")})
    store.ensure_space("test-model", DIM)
    at = inputs.now_iso()
    cs = ChangeSet()
    for i, (vec, scope) in enumerate(zip(vectors, scopes)):
        ids = {"user_id": scope, "agent_id": None, "run_id": None}
        cs.inserts.append(new_memory((texts or {}).get(i, f"memory {i}"), vec, ids, (metadata or {}).get(i, {}),
                                     actor_id=None, role="user", event_time=None, sources=[], at=at))
    store.apply(cs)
    return store, [r.id for r in cs.inserts]


def scoped(filters):
    """(scope, filter tree) of a filter dict, as the pipeline passes them to a search."""
    where = F.parse(filters)
    return F.scope_of(where), where


def _unit(rng, n):
    v = rng.standard_normal((n, DIM)).astype(np.float32)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def test_vector_search_gives_the_exact_top_k_of_the_scope_and_filter(tmp_path):
    rng = np.random.default_rng(7)
    vectors = _unit(rng, 600)
    scopes = [("a", "b", "c")[i % 3] for i in range(600)]  # interleaved, as tenants' rows arrive
    query = _unit(rng, 1)[0]
    sims = vectors @ query
    # A selective filter on the scope's *least* similar rows: the batches must reach the end of the scope.
    worst = sorted((i for i in range(600) if scopes[i] == "b"), key=lambda i: sims[i])[:5]
    store, ids = _store(tmp_path, vectors, scopes, {i: {"tag": "rare"} for i in worst})
    try:
        got = store.vector_search(query, *scoped({"user_id": "b"}), 10)
        want = sorted((i for i in range(600) if scopes[i] == "b"), key=lambda i: -sims[i])[:10]
        assert [mid for mid, _ in got] == [ids[i] for i in want]
        assert all(abs(score - sims[i]) < 2e-3 for (_, score), i in zip(got, want))  # float16 rounding
        rare = store.vector_search(query, *scoped({"user_id": "b", "tag": "rare"}), 3)
        assert [mid for mid, _ in rare] == [ids[i] for i in sorted(worst, key=lambda i: -sims[i])[:3]]
        assert store.vector_search(query, *scoped({"user_id": "nobody"}), 10) == []
        # Unscoped (a store used directly): the float32 rows, filter in SQL.
        everyone = store.vector_search(query, *scoped({"tag": "rare"}), 10)
        assert [mid for mid, _ in everyone] == [ids[i] for i in sorted(worst, key=lambda i: -sims[i])]
        with pytest.raises(Exception, match="dimensions"):
            store.vector_search(np.ones(DIM + 1, dtype=np.float32), *scoped({"user_id": "b"}), 3)
    finally:
        store.close()


def test_search_scores_come_from_the_exact_float32_vectors(tmp_path, monkeypatch):
    from memlane.pipeline import retrieval
    from memlane.config import MemoryConfig, ProviderConfig, RetrievalConfig
    # the fused score itself, before calibration (a monotone map of it: test_calibration.py)
    monkeypatch.setattr(retrieval, "result_scores", lambda query, ranked, n: [s for _, _, s in ranked])
    config = MemoryConfig(vector_store=ProviderConfig(provider="sqlite", config={"path": str(tmp_path / "e.db")}),
                          llm=ProviderConfig(provider="none"), retrieval=RetrievalConfig(context_weight=0))
    with Memory(config) as m:
        m.add("I keep bees on the roof of my flat", user_id="alice", infer=False)
        hit = m.search("zebra crossing", user_id="alice")["results"][0]  # no shared word: dense only
        stored = m._runtime.store.get([hit["id"]], with_embeddings=True)[0].embedding
        query = m._runtime.embedder.embed(["zebra crossing"], "search")[0]
        from memlane.scoring import fuse
        exact = fuse({hit["id"]: float(np.dot(stored, query))}, {}, set(), m._settings.weights)[hit["id"]]
        assert hit["score"] == round(exact, 6)


def test_a_schema_2_file_gets_its_vector_copy_on_open(tmp_path, caplog):
    path = tmp_path / "m.db"
    with Memory(config_for(path)) as m:
        kept = m.add("I restore vintage motorcycles", user_id="alice", run_id="r9", infer=False)["results"][0]["id"]
    with closing(sqlite3.connect(path)) as conn:
        conn.executescript("DROP TRIGGER memory_vectors_ai; DROP TRIGGER memory_vectors_ad; "
                           "DROP TRIGGER memory_vectors_au; DROP TABLE memory_vectors; "
                           "UPDATE meta SET value = '2' WHERE key = 'schema_version';")
    with caplog.at_level("WARNING", logger="memlane"), Memory(config_for(path)) as m:
        assert "copying 1 vectors into memory_vectors" in caplog.text
        conn = m._runtime.store._conn()
        assert conn.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone() == (str(SCHEMA_VERSION),)
        assert len(_actual(conn)) == 2 and _actual(conn) == _expected(conn)
        assert [r["id"] for r in m.search("old motorbikes", user_id="alice")["results"]] == [kept]


def test_keyword_search_applies_the_filter_after_ranking_and_stays_exact(tmp_path):
    vectors = _unit(np.random.default_rng(3), 300)
    scopes = [("a", "b")[i % 2] for i in range(300)]
    # term frequency 1..5 sets the BM25 order; the tagged rows are among the weakest matches
    texts = {i: " ".join(["tea"] * (1 + i % 5) + ["filler"] * 3) for i in range(300)}
    tagged = [i for i in range(300) if scopes[i] == "b" and i % 5 == 0][:4]
    store, ids = _store(tmp_path, vectors, scopes, {i: {"tag": "rare"} for i in tagged}, texts)
    try:
        everything = store.keyword_search(["tea"], *scoped({"user_id": "b"}), 1000)
        assert len(everything) == 150
        assert [s for _, s in everything] == sorted((s for _, s in everything), reverse=True)
        rare = store.keyword_search(["tea"], *scoped({"user_id": "b", "tag": "rare"}), 3)
        tagged_ids = {ids[i] for i in tagged}
        assert rare == [(mid, s) for mid, s in everything if mid in tagged_ids][:3]
        assert store.keyword_search(["tea"], *scoped({"user_id": "b", "tag": "none"}), 3) == []
    finally:
        store.close()
