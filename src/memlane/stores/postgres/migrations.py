"""The PostgreSQL store's schema, as an ordered list of migrations like stores/sqlite_migrations.py:
MIGRATIONS[i] takes a collection's schema from version i to i + 1, the version is the meta row
'schema_version', and opening applies the missing ones in one transaction under a transaction-level
advisory lock, so two processes opening at once migrate once and a schema is never half migrated. To change
the schema, append a migration; never edit one that has shipped.

Every object lives in the collection's own PostgreSQL schema (the store sets search_path to it); the
vector extension stays where it was installed. Text columns use the "C" collation so ordering and range
filters compare code points, as SQLite's BINARY does.
"""
from __future__ import annotations

from typing import Any, Callable

import psycopg
from psycopg import Connection, sql

from ...errors import ConfigurationError

Migration = Callable[[Connection[Any], str], None]
# One key for every memlane store on a database: CREATE EXTENSION and CREATE SCHEMA race across schemas too.
LOCK = "memlane.migrate"


def tables(conn: Connection[Any], schema: str) -> None:
    """1: memories (a `vector` column, typed to the space's dimension once it is known, with an HNSW
    index), a weighted tsvector of memory (A) and context (B) for keyword search, history, the message log,
    meta, graph memory, the graph outbox and the job queue."""
    found = conn.execute("SELECT 1 FROM pg_ts_config WHERE cfgname = 'memlane_text' AND cfgnamespace = "
                         "%s::regnamespace", (schema,)).fetchone()
    if found is None:
        # English stems without a stop list: like SQLite's FTS5 porter tokenizer, every word is indexed.
        conn.execute("CREATE TEXT SEARCH DICTIONARY memlane_stem (TEMPLATE = snowball, Language = english)")
        conn.execute("CREATE TEXT SEARCH CONFIGURATION memlane_text (COPY = english)")
        conn.execute("ALTER TEXT SEARCH CONFIGURATION memlane_text ALTER MAPPING FOR asciiword, asciihword, "
                     "hword_asciipart, word, hword, hword_part, numword, numhword, hword_numpart WITH memlane_stem")
    for statement in SCHEMA.strip().split(";\n"):
        conn.execute(statement)


SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key text COLLATE "C" PRIMARY KEY, value text NOT NULL);
CREATE TABLE IF NOT EXISTS memories (
    pk bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    id text COLLATE "C" NOT NULL UNIQUE,
    memory text COLLATE "C" NOT NULL,
    hash text COLLATE "C" NOT NULL,
    metadata json NOT NULL DEFAULT '{}',
    user_id text COLLATE "C", agent_id text COLLATE "C", run_id text COLLATE "C",
    actor_id text COLLATE "C", role text COLLATE "C",
    memory_type text COLLATE "C" NOT NULL DEFAULT 'semantic_memory',
    created_at text COLLATE "C" NOT NULL, updated_at text COLLATE "C", timestamp text COLLATE "C",
    source_message_ids jsonb NOT NULL DEFAULT '[]',
    context text COLLATE "C",
    expiration_date text COLLATE "C",
    version integer NOT NULL DEFAULT 1,
    doc_len integer NOT NULL DEFAULT 0,
    terms tsvector GENERATED ALWAYS AS (
        setweight(to_tsvector('memlane_text'::regconfig, memory), 'A') ||
        setweight(to_tsvector('memlane_text'::regconfig, coalesce(context, '')), 'B')) STORED,
    embedding vector NOT NULL
);
CREATE INDEX IF NOT EXISTS memories_user ON memories (user_id);
CREATE INDEX IF NOT EXISTS memories_agent ON memories (agent_id);
CREATE INDEX IF NOT EXISTS memories_run ON memories (run_id);
CREATE INDEX IF NOT EXISTS memories_created ON memories (created_at, pk);
CREATE INDEX IF NOT EXISTS memories_terms ON memories USING gin (terms);
CREATE TABLE IF NOT EXISTS history (
    pk bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    id text COLLATE "C" NOT NULL UNIQUE,
    memory_id text COLLATE "C" NOT NULL,
    event text NOT NULL CHECK (event IN ('ADD', 'UPDATE', 'DELETE')),
    old_memory text, new_memory text, actor_id text, role text,
    created_at text COLLATE "C" NOT NULL, updated_at text COLLATE "C",
    old_metadata json, new_metadata json
);
CREATE INDEX IF NOT EXISTS history_memory ON history (memory_id);
CREATE TABLE IF NOT EXISTS messages (
    pk bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    id text COLLATE "C" NOT NULL UNIQUE,
    role text COLLATE "C" NOT NULL, content text NOT NULL, actor_id text COLLATE "C",
    user_id text COLLATE "C", agent_id text COLLATE "C", run_id text COLLATE "C",
    timestamp text COLLATE "C", created_at text COLLATE "C" NOT NULL,
    metadata json NOT NULL DEFAULT '{}'
);
CREATE INDEX IF NOT EXISTS messages_user ON messages (user_id);
CREATE INDEX IF NOT EXISTS messages_agent ON messages (agent_id);
CREATE INDEX IF NOT EXISTS messages_run ON messages (run_id);
CREATE TABLE IF NOT EXISTS graph_entities (
    pk bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    id text COLLATE "C" UNIQUE NOT NULL,
    user_id text COLLATE "C", agent_id text COLLATE "C", run_id text COLLATE "C",
    name text NOT NULL, norm text COLLATE "C" NOT NULL, type text NOT NULL DEFAULT '',
    embedding vector, created_at text COLLATE "C" NOT NULL
);
CREATE INDEX IF NOT EXISTS graph_entities_user ON graph_entities (user_id, norm);
CREATE INDEX IF NOT EXISTS graph_entities_agent ON graph_entities (agent_id, norm);
CREATE INDEX IF NOT EXISTS graph_entities_run ON graph_entities (run_id, norm);
CREATE TABLE IF NOT EXISTS graph_relations (
    pk bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    id text COLLATE "C" UNIQUE NOT NULL,
    user_id text COLLATE "C", agent_id text COLLATE "C", run_id text COLLATE "C",
    source text COLLATE "C" NOT NULL, relationship text COLLATE "C" NOT NULL, target text COLLATE "C" NOT NULL,
    valid_from text COLLATE "C", valid_to text COLLATE "C", created_at text COLLATE "C" NOT NULL,
    memory_ids jsonb NOT NULL DEFAULT '[]', message_ids jsonb NOT NULL DEFAULT '[]'
);
CREATE INDEX IF NOT EXISTS graph_relations_source ON graph_relations (source);
CREATE INDEX IF NOT EXISTS graph_relations_target ON graph_relations (target);
CREATE INDEX IF NOT EXISTS graph_relations_user ON graph_relations (user_id);
CREATE INDEX IF NOT EXISTS graph_relations_agent ON graph_relations (agent_id);
CREATE INDEX IF NOT EXISTS graph_relations_run ON graph_relations (run_id);
CREATE INDEX IF NOT EXISTS graph_relations_memories ON graph_relations USING gin (memory_ids);
CREATE TABLE IF NOT EXISTS graph_outbox (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    payload json NOT NULL, created_at text NOT NULL
);
CREATE TABLE IF NOT EXISTS jobs (
    pk bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    id text COLLATE "C" NOT NULL UNIQUE,
    status text NOT NULL CHECK (status IN ('queued', 'running', 'done', 'failed')),
    payload json NOT NULL,
    attempts integer NOT NULL DEFAULT 0,
    last_error text,
    result json,
    not_before double precision NOT NULL DEFAULT 0,
    lease_until double precision NOT NULL DEFAULT 0,
    lease_owner text COLLATE "C",
    created_at text NOT NULL,
    updated_at text NOT NULL
);
CREATE INDEX IF NOT EXISTS jobs_status ON jobs (status, not_before)
"""

def fold_accents(conn: Connection[Any], schema: str) -> None:
    """2: keyword search folds accents, as SQLite's FTS5 does (`cafe` finds `café` and the other way round):
    the unaccent dictionary runs before the stemmer, and every stored tsvector is computed again. Where the
    unaccent extension cannot be created (migrate() tries), keyword search keeps the accents."""
    if conn.execute("SELECT 1 FROM pg_ts_dict WHERE dictname = 'unaccent'").fetchone() is None:
        return
    conn.execute("ALTER TEXT SEARCH CONFIGURATION memlane_text ALTER MAPPING FOR asciiword, asciihword, "
                 "hword_asciipart, word, hword, hword_part, numword, numhword, hword_numpart "
                 "WITH unaccent, memlane_stem")
    conn.execute("UPDATE memories SET memory = memory")  # a stored generated column is computed again


MIGRATIONS: list[Migration] = [tables, fold_accents]
SCHEMA_VERSION = len(MIGRATIONS)


def migrate(conn: Connection[Any], schema: str) -> int:
    """Create the extension and the collection's schema if needed and bring it to SCHEMA_VERSION, in one
    transaction under the advisory lock; returns the version it was at (0: new). `conn` is in autocommit
    mode. A schema from a newer memlane is a ConfigurationError."""
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(hashtextextended(%s, 0))", (LOCK,))
        conn.execute("CREATE EXTENSION IF NOT EXISTS vector")
        try:  # optional (accent folding, migration 2): a role that may not create it keeps the accents
            with conn.transaction():
                conn.execute("CREATE EXTENSION IF NOT EXISTS unaccent")
        except psycopg.Error:
            pass
        conn.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(sql.Identifier(schema)))
        conn.execute("SELECT set_config('search_path', quote_ident(%s) || ', ' || current_setting('search_path'), "
                     "true)", (schema,))
        version = 0
        if conn.execute("SELECT to_regclass(quote_ident(%s) || '.meta')", (schema,)).fetchone() != (None,):
            row = conn.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
            version = int(row[0]) if row else 0
        if version > SCHEMA_VERSION:
            raise ConfigurationError(f"PostgreSQL schema {schema!r} was written by a newer memlane (schema "
                                     f"{version})")
        for step in MIGRATIONS[version:]:
            step(conn, schema)
        if version < SCHEMA_VERSION:
            conn.execute("INSERT INTO meta VALUES ('schema_version', %s) ON CONFLICT (key) DO UPDATE SET "
                         "value = excluded.value", (str(SCHEMA_VERSION),))
    return version
