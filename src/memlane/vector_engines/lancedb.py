"""LanceDB as the vector engine: an embedded folder (`path`; what the tests run) or a LanceDB URI (`uri`,
`api_key` for LanceDB Cloud). One table (`collection_name`) of id, vector and scope ids; cosine search with
the scope as a prefilter. Keyword search stays the embedded store's (its BM25 index)."""
from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any, Optional

import numpy as np

from ..errors import ConfigurationError
from ..models import Scope
from . import SCOPE_KEYS, config_keys, scope_items

KEYS = frozenset({"collection_name", "embedding_model_dims", "path", "uri", "api_key"})


def _quote(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def _where(scope: Scope) -> Optional[str]:
    parts = [f"{key} = {_quote(value)}" for key, value in scope_items(scope).items()]
    return " AND ".join(parts) or None


class LanceDBEngine:
    LOCAL_KEY = "path"  # where it keeps its folder when run embedded (config.vector_engine)

    def __init__(self, config: dict[str, Any]):
        config = config_keys(dict(config), KEYS, "lancedb")
        try:  # pyarrow (a lancedb dependency) has no type stubs
            lancedb, pa = importlib.import_module("lancedb"), importlib.import_module("pyarrow")
        except ImportError as exc:
            raise ConfigurationError("vector_store 'lancedb' needs lancedb: pip install 'memlane[lancedb]'") from exc
        self._pa = pa
        self.name = str(config.get("collection_name") or "memlane")
        uri = config.get("uri") or config.get("path")
        if not uri:
            raise ConfigurationError("vector_store 'lancedb' needs a path (an embedded folder) or a uri")
        if config.get("path") and not config.get("uri"):
            Path(uri).mkdir(parents=True, exist_ok=True)
        self._db = lancedb.connect(str(uri), api_key=config.get("api_key"))
        self._table: Any = None
        self._dims: Optional[int] = None
        try:
            self._table = self._db.open_table(self.name)
            self._dims = int(self._table.schema.field("vector").type.list_size)
        except (ValueError, FileNotFoundError):  # not created yet: the first upsert does
            pass

    def _ensure(self, dims: int) -> None:
        if self._dims == dims:
            return
        pa = self._pa
        if self._dims is not None:  # another space (a reindex to another embedder): the old vectors go
            self._db.drop_table(self.name)
        schema = pa.schema([pa.field("id", pa.string()), pa.field("vector", pa.list_(pa.float32(), dims)),
                            *(pa.field(key, pa.string()) for key in SCOPE_KEYS)])
        self._table = self._db.create_table(self.name, schema=schema)
        self._dims = dims

    def upsert(self, records: list[tuple[str, np.ndarray, Scope]]) -> None:
        if not records:
            return
        self._ensure(int(records[0][1].shape[0]))
        rows = [{"id": mid, "vector": np.asarray(vec, dtype=np.float32).tolist(),
                 **{key: getattr(scope, key) for key in SCOPE_KEYS}} for mid, vec, scope in records]
        self._table.merge_insert("id").when_matched_update_all().when_not_matched_insert_all().execute(rows)

    def delete(self, ids: list[str]) -> None:
        if ids and self._table is not None:
            self._table.delete(f"id IN ({', '.join(_quote(i) for i in ids)})")

    def clear(self, scope: Optional[Scope]) -> None:
        if self._table is None:
            return
        where = None if scope is None else _where(scope)
        if where is None:
            self._db.drop_table(self.name)
            self._table, self._dims = None, None
        else:
            self._table.delete(where)

    def search(self, vector: np.ndarray, scope: Scope, k: int) -> list[tuple[str, float]]:
        if self._table is None or k <= 0:
            return []
        query = self._table.search(np.asarray(vector, dtype=np.float32).tolist()).metric("cosine")
        where = _where(scope)
        if where is not None:
            query = query.where(where, prefilter=True)
        rows = query.limit(k).select(["id", "_distance"]).to_list()
        return [(row["id"], 1.0 - float(row["_distance"])) for row in rows]

    def count(self) -> int:
        return 0 if self._table is None else int(self._table.count_rows())

    def close(self) -> None:
        self._table = None
