"""The PostgreSQL store (vector_store provider "pgvector"; pip install 'memlane[postgres]')."""
from __future__ import annotations

from .store import PostgresStore

__all__ = ["PostgresStore"]
