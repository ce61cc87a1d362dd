"""Scope-keyed full-text terms (memlane.stores.scoped_terms) and the SQLite index built from them."""
import sqlite3
from contextlib import closing

import pytest

from memlane import Memory
from memlane import filters as F
from memlane.models import Scope
from memlane.stores.scoped_terms import keyed_text, phrases, scope_key, search_scope, words
from memlane.stores.sqlite_migrations import SCHEMA_VERSION

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
    assert search_scope(Scope(user_id="u1", run_id="r1")) == ("run_id", "r1")
    assert search_scope(F.scope_of(F.parse({"AND": [{"user_id": "u1"}, {"user_id": "u2"}]}))) is None  # no single id
    assert search_scope(Scope()) is None


def test_phrases_quote_words_and_make_phrases_of_compound_terms():
    assert words("e-mail user_name naïve") == ["e", "mail", "user", "name", "naïve"]
    assert phrases("k", ["tea", "user_name", "tea", '"']) == ['"k_tea"', '"k_user k_name"']
    assert phrases("k", ["--", ""]) == []


def test_keyword_search_reads_only_the_scope_and_follows_updates_and_deletes(tmp_path):
    with Memory(config_for(tmp_path / "m.db")) as m:
        alice = m.add("I restore vintage motorcycles", user_id="alice", infer=False)["results"][0]["id"]
        m.add("Bob restores vintage motorcycles too", user_id="bob", infer=False)
        m.add("vintage motorcycles in a run", user_id="alice", run_id="trip", infer=False)
        store = m._runtime.store
        alices = F.parse({"user_id": "alice"})
        scope = (F.scope_of(alices), alices)
        assert {i for i, _ in store.keyword_search(["motorcycles"], *scope, 10)} == {
            alice, *[r["id"] for r in m.get_all(user_id="alice", run_id="trip")["results"]]}
        run_only = F.parse({"run_id": "trip"})
        assert len(store.keyword_search(["motorcycles"], F.scope_of(run_only), run_only, 10)) == 1
        m.update(alice, "I restore old sailboats")
        assert alice not in {i for i, _ in store.keyword_search(["motorcycles"], *scope, 10)}
        assert [i for i, _ in store.keyword_search(["sailboats"], *scope, 10)] == [alice]
        m.delete(alice)
        assert store.keyword_search(["sailboats"], *scope, 10) == []
        with pytest.raises(Exception, match="user_id, agent_id or run_id"):
            store.keyword_search(["x"], Scope(), F.parse({"role": "user"}), 10)


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
        where = F.parse({"user_id": "alice"})
        assert [i for i, _ in store.keyword_search(["motorcycles"], F.scope_of(where), where, 5)] == [kept]
        conn = store._conn()
        assert conn.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone() == (str(SCHEMA_VERSION),)
        conn.execute("INSERT INTO memories_fts(memories_fts, rank) VALUES ('integrity-check', 1)")
        assert "scope" not in [r[1] for r in conn.execute("PRAGMA table_info(memories_fts)")]


# ------------------------------------------------------------------ BM25 with the scope's own statistics

def test_varints_and_the_fts5_row_count_read_from_a_real_table():
    from memlane.stores.scope_bm25 import fts5_row_count, read_varint
    assert read_varint(bytes([0x05]), 0) == (5, 1)
    assert read_varint(bytes([0x82, 0x2C, 0x07]), 0) == (300, 2)
    assert read_varint(bytes([0xFF] * 8 + [0x01]), 0) == ((2 ** 56 - 1) << 8 | 1, 9)
    assert fts5_row_count(None) == 0
    with closing(sqlite3.connect(":memory:")) as conn:
        conn.execute("CREATE VIRTUAL TABLE t USING fts5(x)")
        conn.executemany("INSERT INTO t VALUES (?)", [(f"row {i}",) for i in range(1234)])
        conn.execute("DELETE FROM t WHERE rowid <= 34")
        block = conn.execute("SELECT block FROM t_data WHERE id = 1").fetchone()[0]
        assert fts5_row_count(block) == 1200


def _keyword_scores(m, user):
    return dict(m._runtime.store.keyword_search(["alice", "tea"], Scope(user_id=user), F.parse({"user_id": user}),
                                                10))


def test_a_scopes_keyword_scores_do_not_depend_on_other_tenants(tmp_path):
    from memlane.config import MemoryConfig, ProviderConfig, RetrievalConfig
    config = MemoryConfig(vector_store=ProviderConfig(provider="sqlite", config={"path": str(tmp_path / "t.db")}),
                          llm=ProviderConfig(provider="none"), retrieval=RetrievalConfig(context_weight=0))
    with Memory(config) as m:
        # "alice" is in every memory of the scope, "tea" in one: only "tea" should separate them.
        for text in ("alice drinks green tea", "alice walks her dog", "alice reads old books",
                     "alice paints blue skies"):
            m.add(text, user_id="u1", infer=False)
        alone = _keyword_scores(m, "u1")
        # Another tenant's memories, of the same length so FTS5's average length stays the same.
        m.add([{"role": "user", "content": f"bob likes item{i} lots"} for i in range(400)], user_id="u2",
              infer=False)
        crowded = _keyword_scores(m, "u1")
        assert crowded.keys() == alone.keys() and len(alone) == 4
        for mid, score in alone.items():
            assert crowded[mid] == pytest.approx(score, rel=1e-9)
        tea = max(alone, key=alone.get)
        assert "tea" in m.get(tea)["memory"]
        # a word in every memory of the scope still counts a little (never zero, never negative)
        assert all(0 < s < 0.3 * alone[tea] for mid, s in alone.items() if mid != tea)
