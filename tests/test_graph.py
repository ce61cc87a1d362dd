"""Graph memory in the embedded file (graph_store {"provider": "sqlite"}), end to end over a real local server
speaking OpenAI's protocol: the one LLM call and its prompt, the rows as SQLite keeps them, every change in
the facts' transaction, doctor, the CLI and the config. The scenarios every graph store must pass, this
one included, are in test_graph_contract.py."""
import json
import logging
import sqlite3
from contextlib import closing

import pytest

from fakeservers import Answer, fake_server  # noqa: F401  (fixture)

from memlane import AsyncMemory, ConfigurationError, Memory, MemoryConfig, ProviderError
from memlane import graph as G


def config(path, url=None, graph=True):
    cfg = {"vector_store": {"provider": "sqlite", "config": {"path": str(path)}}}
    if url is not None:
        cfg["llm"] = {"provider": "openai", "config": {"api_key": "k", "openai_base_url": f"{url}/v1"}}
    if graph:
        cfg["graph_store"] = {"provider": "sqlite"}
    return cfg


def reply(memory=(), relations=(), ended=(), entities=None):
    """The LLM's answer: facts as (event, id, text), relations as (source, relationship, target)."""
    rels = [{"source": s, "relationship": r, "target": t, "source_messages": [0]} for s, r, t in relations]
    names = {n for s, _, t in relations for n in (s, t)}
    return Answer(data={
        "memory": [{"event": e, "id": i, "text": t, "source_messages": [0], "attributed_to": "user"}
                   for e, i, t in memory],
        "entities": entities if entities is not None else [{"name": n, "type": "thing"} for n in sorted(names)],
        "relations": rels, "ended_relations": list(ended)})


def triples(rels):
    return sorted((r["source"], r["relationship"], r["target"]) for r in rels)


def rows(m, table, **where):
    clause = " AND ".join(f"{k} = ?" for k in where) or "1"
    with closing(sqlite3.connect(m.config.database_path())) as conn:
        return conn.execute(f"SELECT * FROM {table} WHERE {clause}", list(where.values())).fetchall()


@pytest.fixture
def mem(fake_server, tmp_path):
    with Memory(config(tmp_path / "g.db", fake_server.url)) as m:
        yield m


def test_a_contradicted_relation_is_ended_and_as_of_still_answers(mem, fake_server):
    fake_server.script(reply([("ADD", None, "Alice works at Acme")], [("Alice", "works_at", "Acme")]))
    first = mem.add("Alice works at Acme", user_id="u1", timestamp="2026-01-10T09:00:00Z")
    assert len(fake_server.requests) == 1  # one LLM call per add, the graph included
    sent = fake_server.last().json
    schema = sent["response_format"]["json_schema"]["schema"]
    assert schema["properties"]["relations"]["maxItems"] == schema["properties"]["entities"]["maxItems"] == 20
    assert [(r["event"], r["source"], r["target"]) for r in first["relations"]] == [("ADD", "Alice", "Acme")]
    assert first["usage"] == {"prompt_tokens": 11, "completion_tokens": 7, "llm_calls": 1}
    mid = first["results"][0]["id"]
    [acme] = mem.get_all(user_id="u1")["relations"]
    assert acme == {"source": "Alice", "relationship": "works_at", "target": "Acme",
                    "valid_from": "2026-01-10T09:00:00+00:00", "valid_to": None}

    fake_server.script(reply([("UPDATE", 0, "Alice works at Globex")], [("alice", "works at", "Globex")],
                             ended=[0]))
    second = mem.add("Alice left Acme and joined Globex last month", user_id="u1",
                     timestamp="2026-03-01T00:00:00Z")
    assert len(fake_server.requests) == 2
    prompt = fake_server.last().json["messages"][1]["content"]
    assert "Existing relations:\n0: Alice -- works_at --> Acme" in prompt  # a small integer, not the row id
    assert second["results"][0]["event"] == "UPDATE"
    assert sorted((r["event"], r["target"]) for r in second["relations"]) == [("ADD", "Globex"), ("END", "Acme")]

    now = mem.get_all(user_id="u1")["relations"]
    assert triples(now) == [("Alice", "works_at", "Globex")]
    assert now[0]["valid_from"] == "2026-03-01T00:00:00+00:00"
    then = mem.get_all(user_id="u1", as_of="2026-02-01")["relations"]
    assert then == [{**acme, "valid_to": "2026-03-01T00:00:00+00:00"}]  # the record is kept, with its end

    found = mem.search("Where does Alice work?", user_id="u1")
    assert triples(found["relations"]) == [("Alice", "works_at", "Globex")]
    assert set(found["relations"][0]) == {"source", "relationship", "target", "score", "valid_from", "valid_to"}
    assert triples(mem.search("Where does Alice work?", user_id="u1", as_of="2026-02-01")["relations"]) == [
        ("Alice", "works_at", "Acme")]
    assert len(rows(mem, "graph_entities")) == 3  # Alice (and "alice"), Acme, Globex

    mem.delete(mid)  # the memory behind both relations: nothing else supports them
    assert rows(mem, "graph_relations") == []
    assert mem.get_all(user_id="u1", as_of="2026-02-01")["relations"] == []


def test_an_unknown_relation_id_is_rejected_not_applied(mem, fake_server):
    fake_server.script(reply([("ADD", None, "Alice works at Acme")], [("Alice", "works_at", "Acme")]),
                       reply([("ADD", None, "Likes tea")], [], ended=[7]))
    mem.add("Alice works at Acme", user_id="u1")
    out = mem.add("I like tea", user_id="u1")
    assert [r["reason"] for r in out["rejected"]] == ["unknown relation id 7"]
    assert len(mem.get_all(user_id="u1")["relations"]) == 1


def test_a_failed_write_leaves_no_graph(mem, fake_server, monkeypatch):
    from memlane.stores import sqlite_graph

    def broken(conn, changes):
        raise sqlite3.OperationalError("disk I/O error")

    monkeypatch.setattr(sqlite_graph, "write", broken)
    fake_server.script(reply([("ADD", None, "Alice works at Acme")], [("Alice", "works_at", "Acme")]))
    with pytest.raises(ProviderError):
        mem.add("Alice works at Acme", user_id="u1")
    monkeypatch.undo()
    assert mem.get_all(user_id="u1")["total"] == 0 and rows(mem, "graph_entities") == []


def test_without_the_graph_the_prompt_and_schema_are_as_before(fake_server, tmp_path):
    with Memory(config(tmp_path / "plain.db", fake_server.url, graph=False)) as m:
        fake_server.script(Answer(data={"memory": [{"event": "ADD", "id": None, "text": "Alice works at Acme",
                                                    "source_messages": [0], "attributed_to": "user"}]}))
        out = m.add("Alice works at Acme", user_id="u1")
        body = fake_server.last().json
        assert "relations" not in body["response_format"]["json_schema"]["schema"]["properties"]
        assert "Existing relations" not in body["messages"][1]["content"]
        assert out["relations"] == [] and "relations" not in m.get_all(user_id="u1")


def test_no_llm_means_no_graph_and_one_warning(tmp_path, caplog):
    with Memory(config(tmp_path / "nollm.db")) as m, caplog.at_level(logging.WARNING, logger="memlane"):
        m.add("Alice works at Acme", user_id="u1")
        m.add("Bob works at Globex", user_id="u1")
        warned = [r for r in caplog.records if "graph_store is configured but no LLM" in r.message]
        assert len(warned) == 1
        assert m.get_all(user_id="u1")["relations"] == []  # nothing extracted; reading needs no LLM


def test_graph_store_config():
    assert MemoryConfig.from_mem0({"graph_store": {"provider": "sqlite", "config": {
        "url": "x", "username": "u", "password": "p", "database": "d"}}}).graph_enabled
    for provider in ("neo4j", "falkordb", "memgraph"):
        assert MemoryConfig.from_mem0({"graph_store": {"provider": provider, "config": {"url": "x"}}}).graph_engine
    with pytest.raises(ConfigurationError, match="graph_store provider 'neptune' is not supported"):
        MemoryConfig.from_mem0({"graph_store": {"provider": "neptune"}})
    with pytest.raises(ConfigurationError, match="unknown falkordb graph_store config keys"):
        Memory({"graph_store": {"provider": "falkordb", "config": {"hostname": "x"}}})
    with pytest.raises(ConfigurationError, match="graph_store config"):
        MemoryConfig.from_mem0({"graph_store": {"provider": "sqlite", "config": {"uri": "x"}}})


async def test_async_memory_has_the_graph_too(fake_server, tmp_path):
    m = AsyncMemory(config(tmp_path / "async.db", fake_server.url))
    try:
        fake_server.script(reply([("ADD", None, "Alice works at Acme")], [("Alice", "works_at", "Acme")]))
        await m.add("Alice works at Acme", user_id="u1", timestamp="2026-01-10")
        assert triples((await m.search("Alice", user_id="u1"))["relations"]) == [("Alice", "works_at", "Acme")]
        assert (await m.get_all(user_id="u1", as_of="2025-01-01"))["relations"] == []
    finally:
        m.close()


@pytest.mark.parametrize("name, norm", [("Alice", "alice"), ("  ALICE  smith ", "alice smith"),
                                        ("cats", "cat"), ("berries", "berry"), ("James", "james"),
                                        ("Acme, Inc.", "acme inc")])
def test_normalise(name, norm):
    assert G.normalise(name) == norm


def test_a_contained_name_is_the_same_entity_only_when_its_embedding_agrees():
    import numpy as np

    from memlane.models import GraphEntity
    v = np.array([1.0, 0.0], dtype=np.float32)
    smith = GraphEntity("e1", "Alice Smith", "alice smith", "person", "u", None, None, "t", v)
    assert G.match("alice", v, [smith]) is smith
    assert G.match("alice", np.array([0.0, 1.0], dtype=np.float32), [smith]) is None  # far: another Alice
    assert G.match("bob smith", v, [smith]) is None  # not contained
    jones = GraphEntity("e2", "Alice Jones", "alice jones", "person", "u", None, None, "t", v)
    assert G.match("alice", v, [smith, jones]) is None  # ambiguous: stays apart


def test_doctor_checks_the_graph(mem, fake_server):
    from memlane.stores import sqlite_doctor as doctor
    fake_server.script(reply([("ADD", None, "Alice works at Acme")], [("Alice", "works_at", "Acme")]))
    mid = mem.add("Alice works at Acme", user_id="u1")["results"][0]["id"]
    path = mem.config.database_path()
    assert doctor.check(path).ok
    with closing(sqlite3.connect(path)) as conn:  # what a bug could leave: a gone memory, a foreign entity
        conn.execute("UPDATE graph_relations SET memory_ids = ?", (json.dumps([mid, "gone"]),))
        conn.execute("UPDATE graph_entities SET user_id = 'u2' WHERE name = 'Acme'")
        conn.commit()
    report = doctor.check(path)
    [rid] = [r[1] for r in rows(mem, "graph_relations")]
    assert [v.ids for v in report.of_kind("graph_unsupported")] == [[rid, "gone"]]
    assert [v.ids[0] for v in report.of_kind("graph_dangling")] == [rid]


def test_a_shorter_name_joins_the_one_entity_it_names(mem, fake_server):
    # with the packaged embedder, "Alice" / "Alice Smith" measure 0.81 and "Acme" / "Acme Corp" 0.83
    fake_server.script(reply([("ADD", None, "Alice Smith works at Acme Corp")],
                             [("Alice Smith", "works_at", "Acme Corp")]),
                       reply([("ADD", None, "Alice lives in Paris")], [("Alice", "lives_in", "Paris")]))
    mem.add("Alice Smith works at Acme Corp", user_id="u1")
    mem.add("Alice lives in Paris", user_id="u1")
    assert sorted(r[5] for r in rows(mem, "graph_entities")) == ["Acme Corp", "Alice Smith", "Paris"]
    assert triples(mem.get_all(user_id="u1")["relations"]) == [
        ("Alice Smith", "lives_in", "Paris"), ("Alice Smith", "works_at", "Acme Corp")]


def graph_cli(path, *args):
    import os
    import subprocess
    import sys
    env = {**os.environ, "MEMLANE_LLM": "none"}
    return subprocess.run([sys.executable, "-m", "memlane.cli", "--db", str(path), "graph", *args],
                          capture_output=True, text=True, env=env, stdin=subprocess.DEVNULL, timeout=120)


def test_memlane_graph_prints_a_scopes_relations_in_each_format(fake_server, tmp_path):
    path = tmp_path / "cli.db"
    with Memory(config(path, fake_server.url)) as m:
        fake_server.script(reply([("ADD", None, "Alice works at Acme")], [("Alice", "works_at", "Acme")]))
        m.add("Alice works at Acme", user_id="u1", timestamp="2026-01-10T09:00:00Z")
        fake_server.script(reply([("ADD", None, 'Bob "B" greets Alice')], [('Bob "B"', "greets", "Alice")]))
        m.add('Bob "B" greets Alice', user_id="u2")
    text = graph_cli(path, "--user", "u1")
    assert text.returncode == 0, text.stderr
    assert text.stdout.strip() == "Alice --works_at--> Acme  since 2026-01-10"
    as_json = json.loads(graph_cli(path, "--user", "u1", "--format", "json").stdout)
    assert triples(as_json) == [("Alice", "works_at", "Acme")]
    assert graph_cli(path, "--user", "u1", "--as-of", "2025-12-31", "--json").stdout.strip() == "[]"
    dot = graph_cli(path, "--user", "u2", "--format", "dot").stdout
    assert dot.startswith("digraph memlane {") and '"Bob \\"B\\"" -> "Alice" [label="greets"];' in dot
    mermaid = graph_cli(path, "--user", "u2", "--format", "mermaid").stdout.splitlines()
    assert mermaid == ["graph LR", '  n0["Bob #quot;B#quot;"] -->|greets| n1["Alice"]']
    empty = graph_cli(path, "--user", "nobody")
    assert empty.returncode == 0 and empty.stdout.strip() == "(no relations)"
    assert graph_cli(path).returncode == 2  # no scope: bad input, one line, no traceback
    assert "Traceback" not in graph_cli(path).stderr
