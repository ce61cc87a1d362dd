"""The PostgreSQL store's config (mem0's pgvector keys): `connection_string`, or the discrete `host`, `port`,
`user`, `password`, `dbname`, `sslmode` (libpq's PG* environment variables fill what is left out);
`collection_name` names the PostgreSQL schema that holds the collection's tables (default "memlane"), so
collections on one database never share rows; `embedding_model_dims` is checked against the embedder;
`minconn` / `maxconn` size the connection pool; `maintenance_work_mem` (default 1GB) is what rebuilding the
HNSW index after a bulk load (import) may use. mem0's `hnsw` is accepted (the index is always HNSW);
`diskann` is refused."""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Optional

from ...errors import ConfigurationError

DEFAULT_SCHEMA = "memlane"
_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,62}")
_DISCRETE = ("host", "port", "user", "password", "dbname", "sslmode")


@dataclass(frozen=True)
class PostgresConfig:
    conninfo: str
    schema: str
    expected_dims: Optional[int]
    min_size: int
    max_size: int
    build_memory: str = "1GB"


def _count(config: dict[str, Any], key: str, default: int) -> int:
    value = config.pop(key, None)
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigurationError(f"pgvector {key} must be a positive integer, got {value!r}")
    return value


def parse(config: dict[str, Any] | None) -> PostgresConfig:
    from psycopg.conninfo import make_conninfo

    config = dict(config or {})
    connection_string = config.pop("connection_string", None)
    discrete = {k: config.pop(k) for k in _DISCRETE if config.get(k) is not None}
    for k in _DISCRETE:
        config.pop(k, None)
    schema = config.pop("collection_name", None) or DEFAULT_SCHEMA
    dims = config.pop("embedding_model_dims", None)
    min_size = _count(config, "minconn", 1)
    max_size = _count(config, "maxconn", 5)
    config.pop("hnsw", None)
    build_memory = config.pop("maintenance_work_mem", "1GB")
    if not isinstance(build_memory, str) or not re.fullmatch(r"[1-9][0-9]*\s*(kB|MB|GB)", build_memory):
        raise ConfigurationError(f"pgvector maintenance_work_mem must be a size such as '512MB' or '2GB', "
                                 f"got {build_memory!r}")
    if config.pop("diskann", False):
        raise ConfigurationError("pgvector diskann is not supported by memlane (it indexes with HNSW)")
    if config:
        raise ConfigurationError(f"unknown pgvector store config keys: {', '.join(sorted(config))}")
    if not isinstance(schema, str) or not _IDENTIFIER.fullmatch(schema):
        raise ConfigurationError(f"pgvector collection_name {schema!r} must be a PostgreSQL identifier (letters, "
                                 "digits and underscores, not starting with a digit, at most 63 characters)")
    if dims is not None and (isinstance(dims, bool) or not isinstance(dims, int) or dims < 1):
        raise ConfigurationError(f"pgvector embedding_model_dims must be a positive integer, got {dims!r}")
    if max_size < min_size:
        raise ConfigurationError(f"pgvector maxconn ({max_size}) is below minconn ({min_size})")
    try:  # connection_string wins over the discrete keys, as in mem0
        conninfo = make_conninfo(connection_string or "", **({} if connection_string else
                                                             {k: str(v) for k, v in discrete.items()}))
    except Exception as exc:  # psycopg.ProgrammingError for a malformed string; say nothing of its secrets
        raise ConfigurationError(f"pgvector connection_string is not a valid libpq connection string: "
                                 f"{type(exc).__name__}") from None
    return PostgresConfig(conninfo=conninfo, schema=schema, expected_dims=dims, min_size=min_size,
                          max_size=max_size, build_memory=build_memory)
