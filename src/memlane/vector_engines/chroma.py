"""Chroma as the vector engine: PersistentClient (`path`; what the tests run) or a server (`host`, `port`).
Config keys are mem0's. memlane always passes vectors: Chroma's own embedding function is never used (it
would download a model). Records carry their scope ids as metadata."""
from __future__ import annotations

from pathlib import Path
from typing import Any, Optional

import numpy as np

from ..errors import ConfigurationError
from ..models import Scope
from . import config_keys, scope_items

KEYS = frozenset({"collection_name", "embedding_model_dims", "path", "host", "port", "client"})


def _where(scope: Scope) -> Optional[dict[str, Any]]:
    items = [{key: value} for key, value in scope_items(scope).items()]
    if not items:
        return None
    return items[0] if len(items) == 1 else {"$and": items}


class ChromaEngine:
    LOCAL_KEY = "path"  # where it keeps its folder when run embedded (config.vector_engine)

    def __init__(self, config: dict[str, Any]):
        config = config_keys(dict(config), KEYS, "chroma")
        try:
            import chromadb
            from chromadb.config import Settings
        except ImportError as exc:
            raise ConfigurationError("vector_store 'chroma' needs chromadb: pip install 'memlane[chroma]'") from exc
        self.collection_name = str(config.get("collection_name") or "memlane")
        settings = Settings(anonymized_telemetry=False)
        if config.get("client") is not None:
            self._client = config["client"]
        elif config.get("host"):
            self._client = chromadb.HttpClient(host=config["host"], port=int(config.get("port") or 8000),
                                               settings=settings)
        else:
            if not config.get("path"):
                raise ConfigurationError("vector_store 'chroma' needs a path (PersistentClient) or a host")
            Path(config["path"]).mkdir(parents=True, exist_ok=True)
            self._client = chromadb.PersistentClient(path=str(config["path"]), settings=settings)
        self._open()

    def _open(self) -> None:
        self._col = self._client.get_or_create_collection(
            self.collection_name, metadata={"hnsw:space": "cosine"}, embedding_function=None)

    def upsert(self, records: list[tuple[str, np.ndarray, Scope]]) -> None:
        if not records:
            return
        args = dict(ids=[mid for mid, _, _ in records],
                    embeddings=[np.asarray(vec, dtype=np.float32) for _, vec, _ in records],
                    metadatas=[{"memory": True, **scope_items(scope)} for _, _, scope in records])
        try:
            self._col.upsert(**args)
        except Exception as exc:
            if "dimension" not in str(exc).lower():
                raise
            self.clear(None)  # another space (a reindex to another embedder): the old vectors go
            self._col.upsert(**args)

    def delete(self, ids: list[str]) -> None:
        if ids:
            self._col.delete(ids=ids)

    def clear(self, scope: Optional[Scope]) -> None:
        where = None if scope is None else _where(scope)
        if where is None:
            self._client.delete_collection(self.collection_name)
            self._open()
        else:
            self._col.delete(where=where)

    def search(self, vector: np.ndarray, scope: Scope, k: int) -> list[tuple[str, float]]:
        n = min(k, self._col.count())
        if n <= 0:
            return []
        found = self._col.query(query_embeddings=[np.asarray(vector, dtype=np.float32)], n_results=n,
                                where=_where(scope), include=["distances"])
        return [(mid, 1.0 - float(d)) for mid, d in zip(found["ids"][0], found["distances"][0])]

    def count(self) -> int:
        return int(self._col.count())

    def close(self) -> None:
        close = getattr(self._client, "close", None)
        if callable(close):
            close()
