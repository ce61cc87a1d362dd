"""Qdrant as the vector engine: local mode (`path`, an embedded folder; what the tests run) or a server
(`url` / `host` + `port`, `api_key`). Config keys are mem0's. Points carry the memory id and its scope ids
as payload, and a server gets a keyword index on each scope key."""
from __future__ import annotations

import contextlib
import threading
import uuid
from pathlib import Path
from typing import Any, Optional

import numpy as np

from ..errors import ConfigurationError
from ..models import Scope
from . import config_keys, scope_items

KEYS = frozenset({"collection_name", "embedding_model_dims", "path", "url", "host", "port", "api_key", "on_disk",
                  "client"})
ID = "memory_id"


def point_id(memory_id: str) -> str:
    """Qdrant ids are UUIDs (or integers): a memory id that is a UUID is its own, any other maps to one."""
    try:
        if str(uuid.UUID(memory_id)) == memory_id:
            return memory_id
    except ValueError:
        pass
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"memlane:{memory_id}"))


class QdrantEngine:
    LOCAL_KEY = "path"  # where it keeps its folder when run embedded (config.vector_engine)

    def __init__(self, config: dict[str, Any]):
        config = config_keys(dict(config), KEYS, "qdrant")
        try:
            from qdrant_client import QdrantClient, models
        except ImportError as exc:
            raise ConfigurationError("vector_store 'qdrant' needs qdrant-client: "
                                     "pip install 'memlane[qdrant]'") from exc
        self._models = models
        self.collection = str(config.get("collection_name") or "memlane")
        self._on_disk = bool(config.get("on_disk", False))
        client = config.get("client")
        if client is not None:
            self._client = client
        elif config.get("url") or config.get("host"):
            self._client = QdrantClient(url=config.get("url"), host=config.get("host"), port=config.get("port") or 6333,
                                        api_key=config.get("api_key"))
        else:
            if not config.get("path"):
                raise ConfigurationError("vector_store 'qdrant' needs a path (local mode) or a url")
            Path(config["path"]).mkdir(parents=True, exist_ok=True)
            try:
                self._client = QdrantClient(path=str(config["path"]))
            except RuntimeError as exc:  # its folder is locked by another client (this process or another)
                raise ConfigurationError(f"vector_store 'qdrant': {exc}") from exc
        self._local = client is None and not (config.get("url") or config.get("host"))
        # local mode is not thread-safe (a search racing an upsert reads half-grown arrays): one call at a time
        self._lock: Any = threading.Lock() if self._local else contextlib.nullcontext()
        self._dims: Optional[int] = None
        if self._client.collection_exists(self.collection):
            params = self._client.get_collection(self.collection).config.params.vectors
            self._dims = int(params.size)

    def _ensure(self, dims: int) -> None:
        if self._dims == dims:
            return
        models = self._models
        if self._dims is not None:  # another space (a reindex to another embedder): the old vectors go
            self._client.delete_collection(self.collection)
        self._client.create_collection(self.collection, vectors_config=models.VectorParams(
            size=dims, distance=models.Distance.COSINE, on_disk=self._on_disk))
        if not self._local:  # local mode has no payload indexes (it scans)
            for key in ("user_id", "agent_id", "run_id"):
                self._client.create_payload_index(self.collection, key, models.PayloadSchemaType.KEYWORD)
        self._dims = dims

    def upsert(self, records: list[tuple[str, np.ndarray, Scope]]) -> None:
        if records:
            with self._lock:
                self._upsert(records)

    def _upsert(self, records: list[tuple[str, np.ndarray, Scope]]) -> None:
        self._ensure(int(records[0][1].shape[0]))
        models = self._models
        self._client.upsert(self.collection, points=[
            models.PointStruct(id=point_id(mid), vector=[float(x) for x in vec],
                               payload={ID: mid, **scope_items(scope)})
            for mid, vec, scope in records])

    def delete(self, ids: list[str]) -> None:
        with self._lock:
            if ids and self._dims is not None:
                self._client.delete(self.collection,
                                    points_selector=self._models.PointIdsList(points=[point_id(i) for i in ids]))

    def _filter(self, scope: Scope) -> Any:
        models = self._models
        must = [models.FieldCondition(key=key, match=models.MatchValue(value=value))
                for key, value in scope_items(scope).items()]
        return models.Filter(must=must) if must else None

    def clear(self, scope: Optional[Scope]) -> None:
        with self._lock:
            self._clear(scope)

    def _clear(self, scope: Optional[Scope]) -> None:
        if self._dims is None:
            return
        if scope is None or not scope_items(scope):
            self._client.delete_collection(self.collection)
            self._dims = None
            return
        self._client.delete(self.collection, points_selector=self._models.FilterSelector(filter=self._filter(scope)))

    def search(self, vector: np.ndarray, scope: Scope, k: int) -> list[tuple[str, float]]:
        with self._lock:
            if self._dims is None or k <= 0:
                return []
            points = self._client.query_points(self.collection, query=[float(x) for x in vector], limit=k,
                                               query_filter=self._filter(scope), with_payload=[ID]).points
        return [(p.payload[ID], float(p.score)) for p in points]

    def count(self) -> int:
        with self._lock:
            return 0 if self._dims is None else int(self._client.count(self.collection, exact=True).count)

    def close(self) -> None:
        with self._lock:
            self._client.close()
