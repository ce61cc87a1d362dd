"""MongoDB Atlas Vector Search as the vector engine. Config keys are mem0's: `mongo_uri`, `db_name`,
`collection_name`, `embedding_model_dims` (the embedded store checks the dimension).

One document per memory, {_id: memory id, embedding, and the scope ids it has}, written with ReplaceOne
upserts. The collection gets one Atlas Vector Search index (cosine over `embedding`, user_id / agent_id /
run_id declared as filter fields), made on the first write; a search waits (bounded) until Atlas reports it
queryable, then runs `$vectorSearch` with the scope filter inside the stage, so Atlas filters before it
ranks. Atlas scores cosine as (1 + cos) / 2; the engine hands back the cosine itself."""
from __future__ import annotations

import threading
import time
from typing import Any, Mapping, Optional

import numpy as np

from ..errors import ConfigurationError, ProviderError
from ..models import Scope
from . import SCOPE_KEYS, config_keys, scope_items

KEYS = frozenset({"mongo_uri", "db_name", "collection_name", "embedding_model_dims"})
FIELD = "embedding"
MAX_CANDIDATES = 10_000  # Atlas's bound on numCandidates (and so on limit)
CANDIDATES_PER_RESULT = 20  # Atlas's advice for ANN recall: 10 to 20 candidates per result


class MongoDBEngine:
    index_wait_s = 120.0  # how long a search waits for a new (or changed) index to become queryable

    def __init__(self, config: dict[str, Any]):
        config = config_keys(dict(config), KEYS, "mongodb")
        try:
            import pymongo
            from pymongo import errors
        except ImportError as exc:
            raise ConfigurationError("vector_store 'mongodb' needs pymongo: pip install 'memlane[mongodb]'") from exc
        self._pymongo = pymongo
        uri = str(config.get("mongo_uri") or "mongodb://localhost:27017")
        try:
            self._client: Any = pymongo.MongoClient(uri, appname="memlane")
        except (errors.ConfigurationError, errors.InvalidURI, ValueError, TypeError) as exc:
            raise ConfigurationError(f"vector_store 'mongodb': {exc}") from exc
        self._collection = self._client[str(config.get("db_name") or "memlane")][
            str(config.get("collection_name") or "memlane")]
        self.index = f"{self._collection.name}_vector_index"
        self._lock = threading.Lock()  # the index's state (made, its dimension, queryable)
        self._dims: Optional[int] = None
        self._queryable = False
        try:
            self._load()
        except errors.PyMongoError as exc:
            self._client.close()
            raise ProviderError(f"mongodb: cannot read the vector index of {self._collection.full_name}: {exc}",
                                provider="mongodb") from exc

    def _load(self) -> None:
        """The index's dimension and state, if the collection has it already."""
        if self._collection.name not in self._collection.database.list_collection_names():
            return
        for index in self._collection.list_search_indexes(self.index):
            vector = [f for f in index.get("latestDefinition", {}).get("fields", []) if f.get("type") == "vector"]
            self._dims = int(vector[0]["numDimensions"]) if vector else None
            self._queryable = _ready(index)

    def _definition(self, dims: int) -> dict[str, Any]:
        return {"fields": [{"type": "vector", "path": FIELD, "numDimensions": dims, "similarity": "cosine"},
                           *({"type": "filter", "path": key} for key in SCOPE_KEYS)]}

    def _ensure(self, dims: int) -> None:
        with self._lock:
            if self._dims is None:  # another client may have made it meanwhile
                self._load()
            if self._dims == dims:
                return
            if self._dims is not None:  # another space (a reindex): Atlas rebuilds the index in place
                self._collection.update_search_index(self.index, self._definition(dims))
            else:
                errors = self._pymongo.errors
                try:  # Atlas makes a search index only on a collection that exists
                    self._collection.database.create_collection(self._collection.name, check_exists=False)
                except (errors.CollectionInvalid, errors.OperationFailure) as exc:
                    if getattr(exc, "code", 48) != 48:  # 48: NamespaceExists
                        raise
                self._collection.create_search_index(self._pymongo.operations.SearchIndexModel(
                    definition=self._definition(dims), name=self.index, type="vectorSearch"))
            self._dims, self._queryable = dims, False

    def _wait_queryable(self) -> None:
        """Atlas builds an index asynchronously: poll its status, boundedly, until it can answer."""
        with self._lock:
            deadline, pause = time.monotonic() + self.index_wait_s, 0.1
            while not self._queryable:
                listed = list(self._collection.list_search_indexes(self.index))
                self._queryable = bool(listed) and _ready(listed[0], self._dims)
                if self._queryable:
                    return
                if time.monotonic() >= deadline:
                    state = listed[0].get("status") if listed else "missing"
                    raise ProviderError(f"mongodb: vector index {self.index!r} is not queryable after "
                                        f"{self.index_wait_s:g}s (status {state})", provider="mongodb")
                time.sleep(pause)
                pause = min(pause * 2, 5.0)

    def upsert(self, records: list[tuple[str, np.ndarray, Scope]]) -> None:
        if not records:
            return
        self._ensure(int(records[0][1].shape[0]))
        replace = self._pymongo.ReplaceOne
        self._collection.bulk_write([
            replace({"_id": mid}, {FIELD: [float(x) for x in vec], **scope_items(scope)}, upsert=True)
            for mid, vec, scope in records])

    def delete(self, ids: list[str]) -> None:
        if ids:
            self._collection.delete_many({"_id": {"$in": list(ids)}})

    def clear(self, scope: Optional[Scope]) -> None:
        """The documents go; the index stays (making it again takes Atlas a while)."""
        self._collection.delete_many(_match(scope) if scope is not None else {})

    def search(self, vector: np.ndarray, scope: Scope, k: int) -> list[tuple[str, float]]:
        if self._dims is None:
            with self._lock:
                self._load()
        if self._dims is None or k <= 0:
            return []
        self._wait_queryable()
        limit = min(k, MAX_CANDIDATES)
        stage: dict[str, Any] = {"index": self.index, "path": FIELD, "queryVector": [float(x) for x in vector],
                                 "numCandidates": min(limit * CANDIDATES_PER_RESULT, MAX_CANDIDATES), "limit": limit}
        where = _match(scope)
        if where:
            stage["filter"] = where
        found = self._collection.aggregate([
            {"$vectorSearch": stage}, {"$project": {"_id": 1, "score": {"$meta": "vectorSearchScore"}}}])
        return [(str(doc["_id"]), 2.0 * float(doc["score"]) - 1.0) for doc in found]

    def count(self) -> int:
        return int(self._collection.count_documents({}))

    def close(self) -> None:
        self._client.close()


def _match(scope: Scope) -> dict[str, Any]:
    """The scope as a filter $vectorSearch accepts (fields declared in the index, $eq)."""
    terms = [{key: {"$eq": value}} for key, value in scope_items(scope).items()]
    return terms[0] if len(terms) == 1 else {"$and": terms} if terms else {}


def _ready(index: Mapping[str, Any], dims: Optional[int] = None) -> bool:
    """Queryable, and (after a change of dimension) built on the latest definition."""
    if not index.get("queryable") or index.get("status") != "READY":
        return False
    if dims is None:
        return True
    fields = index.get("latestDefinition", {}).get("fields", [])
    return any(f.get("type") == "vector" and f.get("numDimensions") == dims for f in fields)
