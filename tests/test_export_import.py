"""Export and import (memlane.interop, docs/export-format.md): a SQLite store with every kind of record
(memories with metadata, updates, deletes, the message log, graph memory with an ended relation) goes to a
file, into a real PostgreSQL, out again byte for byte the same, and back into a fresh SQLite file where every
read answers as it did on the original. Then the refusals: ids already there, a file cut short, another
embedding space (re-embedded, not copied)."""
import gzip
import json
import subprocess
import sys

import pytest

from fakeservers import fake_server  # noqa: F401  (fixture)
from graph_servers import bolt_server, falkordb_server, graph_store_config  # noqa: F401  (fixtures)
from test_graph import reply

from memlane import ConflictError, Memory, ValidationError
from memlane.models import Scope

SCOPES = ({"user_id": "u1"}, {"user_id": "u2"}, {"agent_id": "a1"}, {"run_id": "r1", "user_id": "u1"})


def sqlite_config(path, url=None, **retrieval):
    cfg = {"vector_store": {"provider": "sqlite", "config": {"path": str(path)}}, "graph_store": {"provider": "sqlite"}}
    if url is not None:
        cfg["llm"] = {"provider": "openai", "config": {"api_key": "k", "openai_base_url": f"{url}/v1"}}
    if retrieval:
        cfg["retrieval"] = retrieval
    return cfg


def pg_config(url):
    return {"vector_store": {"provider": "pgvector", "config": {"connection_string": url}},
            "graph_store": {"provider": "sqlite"}}


def fill(m, server):
    """Every kind of record a store keeps, history and an ended relation included."""
    a, b, c = (r["id"] for r in m.add([{"role": "user", "content": "I like green tea"},
                                       {"role": "assistant", "content": "Noted, green tea"},
                                       {"role": "user", "content": "My cat is called Miso"}],
                                      user_id="u1", infer=False, metadata={"src": "chat", "n": 1})["results"])
    m.add("Agent prefers short answers", agent_id="a1", infer=False, metadata={"k": [1, 2, {"x": None}]},
          expiration_date="2099-01-01")
    m.add("Run-scoped note about Paris", run_id="r1", user_id="u1", infer=False, timestamp="2026-02-03T04:05:06Z")
    m.add("Ünïcode ✓ memory for u2", user_id="u2", infer=False)
    m.update(a, "I love jasmine green tea", metadata={"n": 2, "src": None})
    m.delete(b)
    server.script(reply([("ADD", None, "Alice works at Acme")], [("Alice", "works_at", "Acme")]))
    m.add("Alice works at Acme", user_id="u1", timestamp="2026-01-10T09:00:00Z")
    server.script(reply([("UPDATE", 0, "Alice works at Globex")], [("alice", "works at", "Globex")], ended=[0]))
    m.add("Alice left Acme and joined Globex", user_id="u1", timestamp="2026-03-01T00:00:00Z")
    return a, b, c


def reads(m, deleted=()):
    """Everything the public API answers about the store, plus the whole graph (ended relations too)."""
    out = {}
    all_ids = []
    for scope in SCOPES:
        key = json.dumps(scope, sort_keys=True)
        page = m.get_all(**scope, show_expired=True, limit=1000)
        out["all " + key] = page
        all_ids += [r["id"] for r in page["results"]]
        out["then " + key] = m.get_all(**scope, as_of="2026-02-01")["relations"]
        out["search " + key] = m.search("green tea and cats", **scope)
        out["log " + key] = m.message_log(**scope, limit=1000)
    for mid in [*sorted(set(all_ids)), *deleted]:
        out["history " + mid] = m.history(mid)
        out["get " + mid] = m.get(mid)
    store = m._runtime.store  # the graph as stored, ended relations included (no public read lists them all)
    out["entities"] = [e.__dict__ | {"embedding": e.embedding.tolist()} for e in store.graph_entities(Scope(), True)]
    out["relations"] = [r.__dict__ for r in store.graph_relations(Scope(), ended=True)]
    out["users"] = m.users()
    return out


def lines(path):
    opener = gzip.open if str(path).endswith(".gz") else open
    with opener(path, "rt", encoding="utf-8") as handle:
        rows = [json.loads(line) for line in handle]
    rows[0].pop("exported_at")
    return rows


def test_a_store_goes_through_postgres_and_back_losslessly(tmp_path, pg_url, fake_server):
    with Memory(sqlite_config(tmp_path / "a.db", fake_server.url)) as original:
        _, deleted, _ = fill(original, fake_server)
        first = original.export(tmp_path / "a.jsonl")
        before = reads(original, [deleted])
    assert (first["message"], first["memory"], first["history"]) == (8, 8, 12)
    assert first["entity"] == 3 and first["relation"] == 2
    ended = [r for r in lines(tmp_path / "a.jsonl") if r["kind"] == "relation" and r["valid_to"]]
    assert len(ended) == 1

    with Memory(pg_config(pg_url)) as pg:
        counts = pg.import_file(tmp_path / "a.jsonl")
        assert counts == {**{k: first[k] for k in ("message", "memory", "history", "entity", "relation")},
                          "skipped": 0, "reembedded": 0}
        pg.export(tmp_path / "b.jsonl")
        pg.export(tmp_path / "b.jsonl.gz")
        with pytest.raises(ConflictError, match="already holds"):
            pg.import_file(tmp_path / "a.jsonl")
    assert lines(tmp_path / "a.jsonl") == lines(tmp_path / "b.jsonl") == lines(tmp_path / "b.jsonl.gz")

    with Memory(sqlite_config(tmp_path / "c.db")) as copy:
        copy.import_file(tmp_path / "b.jsonl.gz")
        after = reads(copy, [deleted])
        copy.export(tmp_path / "c.jsonl")
    assert after == before
    assert lines(tmp_path / "c.jsonl") == lines(tmp_path / "a.jsonl")


@pytest.fixture
def exported(tmp_path, fake_server):
    with Memory(sqlite_config(tmp_path / "src.db", fake_server.url)) as m:
        _, deleted, _ = fill(m, fake_server)
        m.export(tmp_path / "src.jsonl")
        return tmp_path / "src.jsonl", reads(m, [deleted])


def test_ids_already_there_are_refused_before_anything_is_written_or_skipped(tmp_path, exported):
    path, _ = exported
    with Memory(sqlite_config(tmp_path / "t.db")) as m:
        m.add("a memory of the target's own", user_id="u9", infer=False)
        m.import_file(path)
        state = reads(m)
        with pytest.raises(ConflictError):
            m.import_file(path)
        assert reads(m) == state
        counts = m.import_file(path, skip_existing=True)
        assert counts["skipped"] == sum(json.loads(path.read_text().splitlines()[-1])["counts"].values())
        assert all(counts[k] == 0 for k in ("message", "memory", "history", "entity", "relation"))
        assert reads(m) == state


def test_a_cut_or_foreign_file_is_refused_and_writes_nothing(tmp_path, exported):
    path, _ = exported
    text = path.read_text(encoding="utf-8").splitlines(keepends=True)
    cut = tmp_path / "cut.jsonl"
    cut.write_text("".join(text[:-3]), encoding="utf-8")
    wrong = tmp_path / "wrong.jsonl"
    wrong.write_text(json.dumps({"kind": "header", "format": "memlane-export", "version": 99}) + "\n")
    with Memory(sqlite_config(tmp_path / "t.db")) as m:
        for bad, match in ((cut, "cut short"), (wrong, "version 99"), (tmp_path / "none.jsonl", "cannot read")):
            with pytest.raises(ValidationError, match=match):
                m.import_file(bad)
        assert m.get_all(user_id="u1")["results"] == []
        assert m.message_log(user_id="u1")["total"] == 0


def test_another_embedding_space_is_embedded_again(tmp_path, exported):
    path, before = exported
    with Memory(sqlite_config(tmp_path / "t.db", sentence_pooling=False)) as m:
        counts = m.import_file(path, progress=lambda done, total: None)
        assert counts["reembedded"] == counts["memory"] == 8
        for scope in SCOPES:
            key = json.dumps(scope, sort_keys=True)
            assert m.get_all(**scope, show_expired=True, limit=1000) == before["all " + key]
        found = m.search("green tea", user_id="u1")["results"]
        assert found[0]["memory"] == "I love jasmine green tea"
        vectors = {r["id"]: r["embedding"] for r in lines(path) if r["kind"] == "memory"}
        m.export(tmp_path / "again.jsonl")
        again = {r["id"]: r["embedding"] for r in lines(tmp_path / "again.jsonl") if r["kind"] == "memory"}
        # a one-sentence memory without a speaker embeds the same either way; the turns do not
        assert vectors.keys() == again.keys() and any(vectors[k] != again[k] for k in vectors)
        assert lines(tmp_path / "again.jsonl")[0]["embedding"] != lines(path)[0]["embedding"]


@pytest.mark.parametrize("store", ["sqlite", "postgres"])
def test_the_cli_exports_and_imports(tmp_path, exported, store, request):
    path, _ = exported
    cfg = tmp_path / "cfg.json"  # --config: the CLI reaches PostgreSQL too
    cfg.write_text(json.dumps(sqlite_config(tmp_path / "cli.db") if store == "sqlite"
                              else pg_config(request.getfixturevalue("pg_url"))))

    def cli(*args):
        return subprocess.run([sys.executable, "-m", "memlane.cli", "--config", str(cfg), *args],
                              capture_output=True, text=True, timeout=300)

    done = cli("import", str(path))
    assert done.returncode == 0, done.stderr
    assert "8 memories, 12 history rows, 3 graph entities, 2 graph relations" in done.stdout
    out = cli("export", "--out", str(tmp_path / "cli.jsonl.gz"))
    assert out.returncode == 0, out.stderr
    assert lines(tmp_path / "cli.jsonl.gz") == lines(path)
    refused = cli("import", str(path))
    assert refused.returncode == 3 and "already holds" in refused.stderr


@pytest.mark.parametrize("engine", ["falkordb", "neo4j"])
def test_a_graph_in_an_external_engine_goes_out_the_same(tmp_path, exported, engine, request):
    path, before = exported
    cfg = {**sqlite_config(tmp_path / "e.db"), "graph_store": graph_store_config(engine, request)}
    with Memory(cfg) as m:
        m.import_file(path)
        m.export(tmp_path / "e.jsonl")
        held = m._runtime.store.graph_relations(Scope(), ended=True)  # the engine's own read
        assert [r.__dict__ for r in held] == before["relations"]
    assert lines(tmp_path / "e.jsonl") == lines(path)


def test_a_batch_the_store_refuses_is_written_not_at_all(tmp_path, exported):
    path, _ = exported
    rows = path.read_text(encoding="utf-8").splitlines()
    memory = next(i for i, r in enumerate(rows) if json.loads(r)["kind"] == "memory")
    rows.insert(memory, rows[memory])  # the same id twice in one batch: the store refuses the batch
    end = json.loads(rows[-1])
    end["counts"]["memory"] += 1
    rows[-1] = json.dumps(end)
    twice = tmp_path / "twice.jsonl"
    twice.write_text("\n".join(rows) + "\n", encoding="utf-8")
    with Memory(sqlite_config(tmp_path / "t.db")) as m:
        with pytest.raises(ValidationError, match="refused a batch of 9 memory record.*8 record.*before it"):
            m.import_file(twice)
        assert m.message_log(user_id="u1")["total"] == 6  # the batch before it
        assert m.get_all(user_id="u1", limit=1000)["results"] == []  # none of the refused batch


async def test_async_memory_exports_and_imports(tmp_path, exported):
    from memlane import AsyncMemory

    path, before = exported
    m = AsyncMemory(sqlite_config(tmp_path / "t.db"))
    try:
        await m.import_file(path)
        await m.export(tmp_path / "again.jsonl")
    finally:
        m.close()
    assert lines(tmp_path / "again.jsonl") == lines(path)


def test_skipping_an_entity_the_store_has_by_name_keeps_its_relations_attached(tmp_path, exported, fake_server):
    path, _ = exported
    with Memory(sqlite_config(tmp_path / "t.db", fake_server.url)) as m:
        fill(m, fake_server)  # the same names under other ids
        store = m._runtime.store
        names = {e.id: e.name for e in store.graph_entities(Scope())}
        counts = m.import_file(path, skip_existing=True)
        assert counts["entity"] == 0 and counts["memory"] == 8 and counts["relation"] == 2
        assert {e.id: e.name for e in store.graph_entities(Scope())} == names  # one node per name still
        for r in store.graph_relations(Scope(), ended=True):
            assert r.source_id in names and r.target_id in names
