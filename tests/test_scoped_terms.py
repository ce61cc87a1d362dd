"""Scope-keyed full-text terms (mnema.stores.scoped_terms) and the SQLite index built from them."""
import sqlite3
from contextlib import closing

import pytest

from mnema import Memory
from mnema.stores.scoped_terms import keyed_text, match_expression, scope_key, search_key, words

from conftest import config_for

PORTER = "porter unicode61 remove_diacritics 2"


def _stems(tokenize: str, text: str) -> list[str]:
    with closing(sqlite3.connect(":memory:")) as conn:
        conn.execute(f"CREATE VIRTUAL TABLE t USING fts5(x, tokenize=\"{tokenize}\")")
        conn.execute("CREATE VIRTUAL TABLE v USING fts5vocab(t, 'instance')")
        conn.execute("INSERT INTO t VALUES (?)", (text,))
        return [r[0] for r in conn.execute("SELECT term FROM v ORDER BY offset")]


def test_a_key_leaves_porter_stems_as_they_are_for_the_bare_word():
    text = ("running feeds caresses ponies relational relative generalization agreed hopping conditional "
            "sky yellow café 2023 marathons painting Melanie's")
    key = scope_key("user_id", "alice")
    keyed = _stems(PORTER + " tokenchars '_'", keyed_text(text, "alice", None, None))
    bare = _stems(PORTER, text)
    # Porter leaves tokens under three letters alone; with the key in front "s" or "is" can lose an "s".
    assert [t.removeprefix(key + "_") for t in keyed if len(t) > len(key) + 3] == [t for t in bare if len(t) > 2]
    assert all(t.startswith(key + "_") for t in keyed)


def test_keys_are_vowel_free_distinct_per_kind_and_stable():
    keys = {scope_key(kind, "x") for kind in ("user_id", "agent_id", "run_id")}
    assert len(keys) == 3
    assert scope_key("user_id", "alice") == scope_key("user_id", "alice") != scope_key("user_id", "bob")
    assert not set("aeiouy") & set("".join(keys))


def test_keyed_text_has_one_block_per_scope_id_and_search_picks_the_narrowest():
    text = keyed_text("likes tea", "u1", None, "r1")
    assert text.split() == [f"{scope_key('user_id', 'u1')}_likes", f"{scope_key('user_id', 'u1')}_tea",
                            f"{scope_key('run_id', 'r1')}_likes", f"{scope_key('run_id', 'r1')}_tea"]
    assert keyed_text(None, "u1", None, None) == ""
    assert search_key({"user_id": ["u1"], "run_id": ["r1"]}) == scope_key("run_id", "r1")
    assert search_key({"user_id": ["u1", "u2"]}) is None  # contradictory: no single key
    assert search_key({}) is None


def test_match_expression_quotes_words_and_makes_phrases_of_compound_terms():
    assert words("e-mail user_name naïve") == ["e", "mail", "user", "name", "naïve"]
    assert match_expression("k", ["tea", "user_name", "tea", '"'] ) == '"k_tea" OR "k_user k_name"'
    assert match_expression("k", ["--", ""]) is None


def test_keyword_search_reads_only_the_scope_and_follows_updates_and_deletes(tmp_path):
    with Memory(config_for(tmp_path / "m.db")) as m:
        alice = m.add("I restore vintage motorcycles", user_id="alice", infer=False)["results"][0]["id"]
        m.add("Bob restores vintage motorcycles too", user_id="bob", infer=False)
        m.add("vintage motorcycles in a run", user_id="alice", run_id="trip", infer=False)
        store = m._runtime.store
        from mnema import filters as F
        scope = F.parse({"user_id": "alice"})
        assert {i for i, _ in store.keyword_search(["motorcycles"], scope, 10)} == {
            alice, *[r["id"] for r in m.get_all(user_id="alice", run_id="trip")["results"]]}
        run_only = F.parse({"run_id": "trip"})
        assert len(store.keyword_search(["motorcycles"], run_only, 10)) == 1
        m.update(alice, "I restore old sailboats")
        assert alice not in {i for i, _ in store.keyword_search(["motorcycles"], scope, 10)}
        assert [i for i, _ in store.keyword_search(["sailboats"], scope, 10)] == [alice]
        m.delete(alice)
        assert store.keyword_search(["sailboats"], scope, 10) == []
        with pytest.raises(Exception, match="user_id, agent_id or run_id"):
            store.keyword_search(["x"], F.parse({"role": "user"}), 10)


V1_FTS = """
DROP TRIGGER memories_ai; DROP TRIGGER memories_bd; DROP TRIGGER memories_bu; DROP TRIGGER memories_au;
DROP TABLE memories_fts; DROP VIEW memories_fts_source;
CREATE VIEW memories_fts_source AS SELECT pk, memory, coalesce(context, '') AS context,
    trim(coalesce('u' || lower(hex(user_id)), '')) AS scope FROM memories;
CREATE VIRTUAL TABLE memories_fts USING fts5(memory, context, scope, content='memories_fts_source',
    content_rowid='pk', tokenize='porter unicode61 remove_diacritics 2');
INSERT INTO memories_fts(memories_fts) VALUES ('rebuild');
UPDATE meta SET value = '1' WHERE key = 'schema_version';
"""


def test_a_schema_1_database_is_migrated_to_keyed_terms_on_open(tmp_path):
    path = tmp_path / "m.db"
    with Memory(config_for(path)) as m:
        kept = m.add("I restore vintage motorcycles", user_id="alice", infer=False)["results"][0]["id"]
    with closing(sqlite3.connect(path)) as conn:
        conn.executescript(V1_FTS)
        assert conn.execute("SELECT count(*) FROM memories_fts WHERE memories_fts MATCH 'motorcycl'").fetchone() == (1,)
    with Memory(config_for(path)) as m:
        store = m._runtime.store
        from mnema import filters as F
        assert [i for i, _ in store.keyword_search(["motorcycles"], F.parse({"user_id": "alice"}), 5)] == [kept]
        conn = store._conn()
        assert conn.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone() == ("2",)
        conn.execute("INSERT INTO memories_fts(memories_fts, rank) VALUES ('integrity-check', 1)")
        assert "scope" not in [r[1] for r in conn.execute("PRAGMA table_info(memories_fts)")]
