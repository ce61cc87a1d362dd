"""The SQLite store's schema, as an ordered list of migrations (the way sqlite-utils and Datasette plugins
keep theirs): MIGRATIONS[i] takes a file from schema version i to i + 1, the file's version is the meta
row 'schema_version' (no meta table: a new file, version 0), and opening a file applies the ones it lacks,
in order, in one IMMEDIATE transaction, so a file is never left half migrated and two processes opening
it at once migrate it once. To change the schema, append a migration; never edit one that has shipped.

Each step checks what it adds (IF NOT EXISTS, or the columns present) so that a file which gained an
object some other way still upgrades. The full-text index and memory_vectors call memlane_keyed and
memlane_half, which the store registers on its connections (stores/sqlite.py).
"""
from __future__ import annotations

import logging
import sqlite3
from typing import Callable, Optional

from ..errors import ConfigurationError

log = logging.getLogger("memlane")

Migration = Callable[[sqlite3.Connection], None]


def run(conn: sqlite3.Connection, script: str) -> None:
    """Execute a script statement by statement inside the caller's transaction (executescript would
    COMMIT first); sqlite3.complete_statement knows about trigger bodies."""
    current = ""
    for line in script.splitlines(keepends=True):
        if line.lstrip().startswith("--") and not current.strip():
            continue
        current += line
        if sqlite3.complete_statement(current):
            conn.execute(current.strip())
            current = ""


def table_columns(conn: sqlite3.Connection, table: str) -> set[str]:
    return {r[1] for r in conn.execute(f"PRAGMA table_info({table})")}


def _add_column(conn: sqlite3.Connection, table: str, column: str, definition: str) -> None:
    if column not in table_columns(conn, table):  # the names are this module's constants
        conn.execute(f"ALTER TABLE {table} ADD COLUMN {column} {definition}")


def tables(conn: sqlite3.Connection) -> None:
    """1: memories (vectors as float32 BLOBs), history, the message log and meta. Schema 1's full-text
    index indexed plain terms beside a scope column; 2 replaced it, so a new file never builds it."""
    run(conn, """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS memories (
    pk INTEGER PRIMARY KEY,
    id TEXT NOT NULL UNIQUE,
    memory TEXT NOT NULL,
    hash TEXT NOT NULL,
    metadata TEXT NOT NULL DEFAULT '{}',
    user_id TEXT, agent_id TEXT, run_id TEXT, actor_id TEXT, role TEXT,
    memory_type TEXT NOT NULL DEFAULT 'semantic_memory',
    created_at TEXT NOT NULL, updated_at TEXT, timestamp TEXT,
    source_message_ids TEXT NOT NULL DEFAULT '[]',
    context TEXT,
    embedding BLOB NOT NULL
);
CREATE INDEX IF NOT EXISTS memories_user ON memories(user_id);
CREATE INDEX IF NOT EXISTS memories_agent ON memories(agent_id);
CREATE INDEX IF NOT EXISTS memories_run ON memories(run_id);
CREATE TABLE IF NOT EXISTS history (
    pk INTEGER PRIMARY KEY,
    id TEXT NOT NULL UNIQUE,
    memory_id TEXT NOT NULL,
    event TEXT NOT NULL CHECK (event IN ('ADD', 'UPDATE', 'DELETE')),
    old_memory TEXT, new_memory TEXT, actor_id TEXT, role TEXT,
    created_at TEXT NOT NULL, updated_at TEXT
);
CREATE INDEX IF NOT EXISTS history_memory ON history(memory_id);
CREATE TABLE IF NOT EXISTS messages (
    pk INTEGER PRIMARY KEY,
    id TEXT NOT NULL UNIQUE,
    role TEXT NOT NULL, content TEXT NOT NULL, actor_id TEXT,
    user_id TEXT, agent_id TEXT, run_id TEXT,
    timestamp TEXT, created_at TEXT NOT NULL,
    metadata TEXT NOT NULL DEFAULT '{}'
);
CREATE INDEX IF NOT EXISTS messages_user ON messages(user_id);
CREATE INDEX IF NOT EXISTS messages_agent ON messages(agent_id);
CREATE INDEX IF NOT EXISTS messages_run ON messages(run_id);
""")


def keyed_terms(conn: sqlite3.Connection) -> None:
    """2: the full-text index keyed by scope (stores/scoped_terms.py), rebuilt from the memories."""
    run(conn, """
DROP TRIGGER IF EXISTS memories_ai;
DROP TRIGGER IF EXISTS memories_bd;
DROP TRIGGER IF EXISTS memories_bu;
DROP TRIGGER IF EXISTS memories_au;
DROP TABLE IF EXISTS memories_fts;
DROP VIEW IF EXISTS memories_fts_source;
-- memlane_keyed() is deterministic, so the 'delete' rows below reproduce exactly what was inserted.
-- Other tools (the sqlite3 shell, Datasette) can read every table, but writing to memories or reading
-- memories_fts needs the function: memlane.stores.scoped_terms.keyed_text, registered with 4 arguments.
CREATE VIEW memories_fts_source AS SELECT pk,
    memlane_keyed(memory, user_id, agent_id, run_id) AS memory,
    memlane_keyed(context, user_id, agent_id, run_id) AS context FROM memories;
CREATE VIRTUAL TABLE memories_fts USING fts5(
    memory, context, content='memories_fts_source', content_rowid='pk',
    tokenize="porter unicode61 remove_diacritics 2 tokenchars '_'");
CREATE TRIGGER memories_ai AFTER INSERT ON memories BEGIN
    INSERT INTO memories_fts(rowid, memory, context)
        SELECT pk, memory, context FROM memories_fts_source WHERE pk = new.pk;
END;
CREATE TRIGGER memories_bd BEFORE DELETE ON memories BEGIN
    INSERT INTO memories_fts(memories_fts, rowid, memory, context)
        SELECT 'delete', pk, memory, context FROM memories_fts_source WHERE pk = old.pk;
END;
CREATE TRIGGER memories_bu BEFORE UPDATE OF memory, context, user_id, agent_id, run_id
ON memories BEGIN
    INSERT INTO memories_fts(memories_fts, rowid, memory, context)
        SELECT 'delete', pk, memory, context FROM memories_fts_source WHERE pk = old.pk;
END;
CREATE TRIGGER memories_au AFTER UPDATE OF memory, context, user_id, agent_id, run_id
ON memories BEGIN
    INSERT INTO memories_fts(rowid, memory, context)
        SELECT pk, memory, context FROM memories_fts_source WHERE pk = new.pk;
END;
INSERT INTO memories_fts(memories_fts) VALUES ('rebuild');
""")


def vector_copy(conn: sqlite3.Connection) -> None:
    """3: memory_vectors, one row per scope id a memory has ('user_id:alice', ...) holding a float16 copy
    of its vector, clustered by scope (stores/sqlite.py says why); written only by these triggers, and
    filled once from the memories."""
    existed = conn.execute("SELECT 1 FROM sqlite_master WHERE name = 'memory_vectors'").fetchone()
    run(conn, """
CREATE TABLE IF NOT EXISTS memory_vectors (
    scope TEXT NOT NULL, pk INTEGER NOT NULL, embedding BLOB NOT NULL,
    PRIMARY KEY (scope, pk)) WITHOUT ROWID;
CREATE TRIGGER IF NOT EXISTS memory_vectors_ai AFTER INSERT ON memories BEGIN
    INSERT INTO memory_vectors (scope, pk, embedding) SELECT scope, new.pk, memlane_half(new.embedding) FROM (
        SELECT 'user_id:' || new.user_id AS scope WHERE new.user_id IS NOT NULL
        UNION ALL SELECT 'agent_id:' || new.agent_id WHERE new.agent_id IS NOT NULL
        UNION ALL SELECT 'run_id:' || new.run_id WHERE new.run_id IS NOT NULL);
END;
CREATE TRIGGER IF NOT EXISTS memory_vectors_ad AFTER DELETE ON memories BEGIN
    DELETE FROM memory_vectors WHERE pk = old.pk AND scope IN (
        'user_id:' || old.user_id, 'agent_id:' || old.agent_id, 'run_id:' || old.run_id);
END;
CREATE TRIGGER IF NOT EXISTS memory_vectors_au AFTER UPDATE OF embedding, user_id, agent_id, run_id
ON memories BEGIN
    DELETE FROM memory_vectors WHERE pk = old.pk AND scope IN (
        'user_id:' || old.user_id, 'agent_id:' || old.agent_id, 'run_id:' || old.run_id);
    INSERT INTO memory_vectors (scope, pk, embedding) SELECT scope, new.pk, memlane_half(new.embedding) FROM (
        SELECT 'user_id:' || new.user_id AS scope WHERE new.user_id IS NOT NULL
        UNION ALL SELECT 'agent_id:' || new.agent_id WHERE new.agent_id IS NOT NULL
        UNION ALL SELECT 'run_id:' || new.run_id WHERE new.run_id IS NOT NULL);
END;
""")
    if existed:
        return
    count = conn.execute("SELECT count(*) FROM memories").fetchone()[0]
    if count:  # one pass over every vector: say why opening takes a while on a big file
        log.warning("memlane: %s: copying %d vectors into memory_vectors (schema 3; once)", _path(conn), count)
    run(conn, """
INSERT INTO memory_vectors (scope, pk, embedding) SELECT scope, pk, memlane_half(embedding) FROM (
    SELECT 'user_id:' || user_id AS scope, pk, embedding FROM memories WHERE user_id IS NOT NULL
    UNION ALL SELECT 'agent_id:' || agent_id, pk, embedding FROM memories WHERE agent_id IS NOT NULL
    UNION ALL SELECT 'run_id:' || run_id, pk, embedding FROM memories WHERE run_id IS NOT NULL);
""")


def versions(conn: sqlite3.Connection) -> None:
    """4: a version per memory (compare-and-set writes), and the metadata before and after an update in
    its history row."""
    _add_column(conn, "memories", "version", "INTEGER NOT NULL DEFAULT 1")
    _add_column(conn, "history", "old_metadata", "TEXT")
    _add_column(conn, "history", "new_metadata", "TEXT")


def expiration(conn: sqlite3.Connection) -> None:
    """5: mem0's expiration_date per memory (YYYY-MM-DD; NULL: none)."""
    _add_column(conn, "memories", "expiration_date", "TEXT")


def graph(conn: sqlite3.Connection) -> None:
    """6: graph memory (docs/guide.md, Graph memory): entities and the relations between them, per scope.
    A relation keeps its validity (valid_from, valid_to: UTC ISO times; NULL valid_to = current) and the
    memories and messages it came from (JSON arrays of ids). Indexed for hops from an entity within a scope."""
    run(conn, """
CREATE TABLE IF NOT EXISTS graph_entities (
    pk INTEGER PRIMARY KEY, id TEXT UNIQUE NOT NULL, user_id TEXT, agent_id TEXT, run_id TEXT,
    name TEXT NOT NULL, norm TEXT NOT NULL, type TEXT NOT NULL DEFAULT '', embedding BLOB,
    created_at TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS graph_entities_user ON graph_entities (user_id, norm);
CREATE INDEX IF NOT EXISTS graph_entities_agent ON graph_entities (agent_id, norm);
CREATE INDEX IF NOT EXISTS graph_entities_run ON graph_entities (run_id, norm);
CREATE TABLE IF NOT EXISTS graph_relations (
    pk INTEGER PRIMARY KEY, id TEXT UNIQUE NOT NULL, user_id TEXT, agent_id TEXT, run_id TEXT,
    source TEXT NOT NULL, relationship TEXT NOT NULL, target TEXT NOT NULL, valid_from TEXT, valid_to TEXT,
    created_at TEXT NOT NULL, memory_ids TEXT NOT NULL DEFAULT '[]', message_ids TEXT NOT NULL DEFAULT '[]');
CREATE INDEX IF NOT EXISTS graph_relations_source ON graph_relations (source);
CREATE INDEX IF NOT EXISTS graph_relations_target ON graph_relations (target);
CREATE INDEX IF NOT EXISTS graph_relations_user ON graph_relations (user_id);
CREATE INDEX IF NOT EXISTS graph_relations_agent ON graph_relations (agent_id);
CREATE INDEX IF NOT EXISTS graph_relations_run ON graph_relations (run_id);
""")


def outbox(conn: sqlite3.Connection) -> None:
    """7: the outbox of graph changes for an external graph engine (graphs/outbox.py), written with the
    facts and deleted once the engine has them."""
    run(conn, """
CREATE TABLE IF NOT EXISTS graph_outbox (
    id INTEGER PRIMARY KEY AUTOINCREMENT, payload TEXT NOT NULL, created_at TEXT NOT NULL);
""")


MIGRATIONS: list[Migration] = [tables, keyed_terms, vector_copy, versions, expiration, graph, outbox]
SCHEMA_VERSION = len(MIGRATIONS)


def stored_version(conn: sqlite3.Connection) -> Optional[int]:
    """The file's schema version; None for a file with no meta table (a new one)."""
    if conn.execute("SELECT 1 FROM sqlite_master WHERE name = 'meta'").fetchone() is None:
        return None
    row = conn.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
    return int(row[0]) if row else None


def migrate(conn: sqlite3.Connection) -> int:
    """Bring the file to SCHEMA_VERSION in one IMMEDIATE transaction (nothing on error) and return the
    version it was at (0: new). A file from a newer memlane is a ConfigurationError."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        version = stored_version(conn) or 0
        if version > SCHEMA_VERSION:
            raise ConfigurationError(f"{_path(conn)} was written by a newer memlane (schema {version})")
        for step in MIGRATIONS[version:]:
            step(conn)
        if version < SCHEMA_VERSION:
            conn.execute("INSERT OR REPLACE INTO meta VALUES ('schema_version', ?)", (str(SCHEMA_VERSION),))
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise
    return version


def _path(conn: sqlite3.Connection) -> str:
    """The file the connection's main database is (for messages)."""
    return conn.execute("PRAGMA database_list").fetchone()[2]
