"""The SQLite store's schema is an ordered list of migrations (stores/sqlite_migrations.py): a file at any
earlier version opens and is brought up to date in one transaction, a failed migration leaves the file as
it was, and a file from a newer memlane is refused."""
import sqlite3
from contextlib import closing

import numpy as np
import pytest

from memlane import ConfigurationError
from memlane import filters as F
from memlane.models import Scope
from memlane.stores import sqlite_migrations as M
from memlane.stores.scoped_terms import keyed_text
from memlane.stores.sqlite import SQLiteStore, _half
from memlane.stores.sqlite_migrations import MIGRATIONS, SCHEMA_VERSION, table_columns

DIM = 8

# Schema 1 as memlane's first release wrote it: plain full-text terms beside a scope column, no version
# column, no history metadata, no memory_vectors.
SCHEMA_1 = """
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE memories (
    pk INTEGER PRIMARY KEY, id TEXT NOT NULL UNIQUE, memory TEXT NOT NULL, hash TEXT NOT NULL,
    metadata TEXT NOT NULL DEFAULT '{}', user_id TEXT, agent_id TEXT, run_id TEXT, actor_id TEXT, role TEXT,
    memory_type TEXT NOT NULL DEFAULT 'semantic_memory', created_at TEXT NOT NULL, updated_at TEXT,
    timestamp TEXT, source_message_ids TEXT NOT NULL DEFAULT '[]', context TEXT, embedding BLOB NOT NULL);
CREATE INDEX memories_user ON memories(user_id);
CREATE VIEW memories_fts_source AS SELECT pk, memory, coalesce(context, '') AS context,
    trim(coalesce('u' || lower(hex(user_id)), '') || ' ' || coalesce('a' || lower(hex(agent_id)), '') || ' ' ||
         coalesce('r' || lower(hex(run_id)), '')) AS scope FROM memories;
CREATE VIRTUAL TABLE memories_fts USING fts5(memory, context, scope, content='memories_fts_source',
    content_rowid='pk', tokenize='porter unicode61 remove_diacritics 2');
CREATE TRIGGER memories_ai AFTER INSERT ON memories BEGIN
    INSERT INTO memories_fts(rowid, memory, context, scope)
        SELECT pk, memory, context, scope FROM memories_fts_source WHERE pk = new.pk;
END;
CREATE TABLE history (
    pk INTEGER PRIMARY KEY, id TEXT NOT NULL UNIQUE, memory_id TEXT NOT NULL,
    event TEXT NOT NULL CHECK (event IN ('ADD', 'UPDATE', 'DELETE')), old_memory TEXT, new_memory TEXT,
    actor_id TEXT, role TEXT, created_at TEXT NOT NULL, updated_at TEXT);
CREATE TABLE messages (
    pk INTEGER PRIMARY KEY, id TEXT NOT NULL UNIQUE, role TEXT NOT NULL, content TEXT NOT NULL, actor_id TEXT,
    user_id TEXT, agent_id TEXT, run_id TEXT, timestamp TEXT, created_at TEXT NOT NULL,
    metadata TEXT NOT NULL DEFAULT '{}');
INSERT INTO meta VALUES ('schema_version', '1');
"""


def _vector(seed: int) -> np.ndarray:
    v = np.random.default_rng(seed).standard_normal(DIM).astype(np.float32)
    return v / np.linalg.norm(v)


def _insert(conn, mid: str, text: str, user: str, seed: int) -> None:
    conn.execute("INSERT INTO memories (id, memory, hash, user_id, created_at, embedding) VALUES "
                 "(?, ?, 'h', ?, '2024-01-01', ?)", (mid, text, user, _vector(seed).tobytes()))


def _search(store, terms, user):
    where = F.parse({"user_id": user})
    return [i for i, _ in store.keyword_search(terms, Scope(user_id=user), where, 5)]


def _version(path) -> str:
    with closing(sqlite3.connect(path)) as conn:
        return conn.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()[0]


def test_the_version_is_the_number_of_migrations():
    assert SCHEMA_VERSION == len(MIGRATIONS) == 7


def test_a_schema_1_file_from_the_first_release_opens_at_the_current_version(tmp_path):
    path = tmp_path / "v1.db"
    with closing(sqlite3.connect(path)) as conn:
        conn.executescript(SCHEMA_1)
        _insert(conn, "m1", "I restore vintage motorcycles", "alice", 1)
        _insert(conn, "m2", "Bob restores vintage motorcycles too", "bob", 2)
        conn.commit()
    store = SQLiteStore({"path": str(path)})
    try:
        assert _version(path) == str(SCHEMA_VERSION)
        conn = store._conn()
        assert {"version", "expiration_date"} <= table_columns(conn, "memories")
        assert {"old_metadata", "new_metadata"} <= table_columns(conn, "history")
        assert "scope" not in table_columns(conn, "memories_fts")
        assert _search(store, ["motorcycles"], "alice") == ["m1"]  # keyed terms, rebuilt from the rows
        hits = store.vector_search(_vector(2), Scope(user_id="bob"), F.parse({"user_id": "bob"}), 3)
        assert [i for i, _ in hits] == ["m2"]  # from the float16 copy filled on open
        assert store.get(["m1"])[0].version == 1
        conn.execute("INSERT INTO memories_fts(memories_fts, rank) VALUES ('integrity-check', 1)")
    finally:
        store.close()


@pytest.mark.parametrize("version", range(1, SCHEMA_VERSION))
def test_a_file_at_each_earlier_version_is_brought_up_to_date(tmp_path, version):
    path = tmp_path / f"v{version}.db"
    with closing(sqlite3.connect(path, isolation_level=None)) as conn:
        conn.create_function("memlane_keyed", 4, keyed_text, deterministic=True)  # as the store registers them
        conn.create_function("memlane_half", 1, _half, deterministic=True)
        conn.execute("BEGIN")
        for step in MIGRATIONS[:version]:
            step(conn)
        conn.execute("INSERT INTO meta VALUES ('schema_version', ?)", (str(version),))
        _insert(conn, "m1", "alice keeps bees on the roof", "alice", 3)
        conn.execute("COMMIT")
    store = SQLiteStore({"path": str(path)})
    try:
        assert _version(path) == str(SCHEMA_VERSION)
        assert _search(store, ["bees"], "alice") == ["m1"]
        hits = store.vector_search(_vector(3), Scope(user_id="alice"), F.parse({"user_id": "alice"}), 3)
        assert [i for i, _ in hits] == ["m1"]
    finally:
        store.close()


def test_a_schema_5_file_gets_the_graph_tables(tmp_path):
    path = tmp_path / "v5.db"
    with closing(sqlite3.connect(path, isolation_level=None)) as conn:
        conn.create_function("memlane_keyed", 4, keyed_text, deterministic=True)
        conn.create_function("memlane_half", 1, _half, deterministic=True)
        conn.execute("BEGIN")
        for step in MIGRATIONS[:5]:
            step(conn)
        conn.execute("INSERT INTO meta VALUES ('schema_version', '5')")
        _insert(conn, "m1", "alice keeps bees", "alice", 3)
        conn.execute("COMMIT")
        assert conn.execute("SELECT 1 FROM sqlite_master WHERE name = 'graph_relations'").fetchone() is None
    SQLiteStore({"path": str(path)}).close()
    assert _version(path) == str(SCHEMA_VERSION)
    with closing(sqlite3.connect(path)) as conn:
        assert {"id", "user_id", "agent_id", "run_id", "name", "norm", "type", "embedding",
                "created_at"} <= table_columns(conn, "graph_entities")
        assert {"source", "relationship", "target", "valid_from", "valid_to", "memory_ids",
                "message_ids"} <= table_columns(conn, "graph_relations")
        indexed = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'index' AND "
                                              "tbl_name = 'graph_relations'")}
        assert {"graph_relations_source", "graph_relations_target", "graph_relations_user"} <= indexed
        assert conn.execute("SELECT count(*) FROM memories").fetchone()[0] == 1
        assert {"id", "payload", "created_at"} <= table_columns(conn, "graph_outbox")


def test_a_failed_migration_leaves_the_file_as_it_was(tmp_path, monkeypatch):
    path = tmp_path / "m.db"
    SQLiteStore({"path": str(path)}).close()
    with closing(sqlite3.connect(path)) as conn:
        conn.create_function("memlane_keyed", 4, keyed_text, deterministic=True)  # the schema's triggers use it
        conn.execute("UPDATE meta SET value = '3' WHERE key = 'schema_version'")
        conn.execute("ALTER TABLE history DROP COLUMN new_metadata")
        conn.commit()

    def breaks(conn):
        M.versions(conn)  # adds the column, then fails: the whole upgrade must roll back
        raise sqlite3.OperationalError("disk I/O error")

    monkeypatch.setattr(M, "MIGRATIONS", [*MIGRATIONS[:3], breaks])
    with pytest.raises(ConfigurationError, match="disk I/O error"):
        SQLiteStore({"path": str(path)})
    with closing(sqlite3.connect(path)) as conn:
        assert "new_metadata" not in table_columns(conn, "history")
    assert _version(path) == "3"
    monkeypatch.undo()
    SQLiteStore({"path": str(path)}).close()
    assert _version(path) == str(SCHEMA_VERSION)


def test_an_up_to_date_file_runs_no_migration(tmp_path, monkeypatch):
    path = tmp_path / "m.db"
    SQLiteStore({"path": str(path)}).close()

    def never(conn):
        raise AssertionError("a migration ran on an up-to-date file")

    monkeypatch.setattr(M, "MIGRATIONS", [never] * SCHEMA_VERSION)
    SQLiteStore({"path": str(path)}).close()


def test_a_file_from_a_newer_memlane_is_refused_untouched(tmp_path):
    path = tmp_path / "m.db"
    SQLiteStore({"path": str(path)}).close()
    with closing(sqlite3.connect(path)) as conn:
        conn.execute("UPDATE meta SET value = ? WHERE key = 'schema_version'", (str(SCHEMA_VERSION + 1),))
        conn.commit()
    with pytest.raises(ConfigurationError, match="newer memlane"):
        SQLiteStore({"path": str(path)})
    assert _version(path) == str(SCHEMA_VERSION + 1)
