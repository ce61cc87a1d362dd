"""The PostgreSQL store (vector_store provider "pgvector"; pip install 'memlane[postgres]')."""
from __future__ import annotations

from ...errors import missing_extra

try:  # the extra's packages, checked before any module of the store imports them
    import pgvector.psycopg  # noqa: F401
    import psycopg  # noqa: F401
    import psycopg_pool  # noqa: F401
except ImportError as exc:
    raise missing_extra(exc.name or "psycopg", "postgres") from exc

from .store import PostgresStore  # noqa: E402

__all__ = ["PostgresStore"]
