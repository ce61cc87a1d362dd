"""Milvus as the vector engine: Milvus Lite (`path`, a folder holding milvus.db, or a `url` ending in .db; what
the tests run, in this process) or a Milvus server (`url`, `token`, `db_name`; the same calls, untested here).
Config keys are mem0's. One collection (`collection_name`) of id, vector and the scope ids as scalar fields,
"" where a scope key is unset (scope ids are never empty); the scope is a boolean filter expression on them."""
from __future__ import annotations

import importlib
import os
import threading
from pathlib import Path
from typing import Any, Optional

import numpy as np

from ..errors import ConfigurationError, ProviderError
from ..models import Scope
from . import SCOPE_KEYS, config_keys, scope_items

KEYS = frozenset({"url", "token", "collection_name", "embedding_model_dims", "metric_type", "db_name", "path"})
FIELDS = ("id", "vector", *SCOPE_KEYS)
MAX_TOPK = 16384  # a Milvus server refuses a larger limit

# Milvus Lite serves a .db folder from a gRPC server inside this process, one per folder and shared by every
# client of it; pymilvus never stops it, and it holds the folder's lock until it stops. The last engine on a
# folder stops it, so that another process (or a later open) can have the folder.
_lite_users: dict[str, int] = {}
_lite_lock = threading.Lock()


def _quote(value: str) -> str:
    """A string literal of Milvus's filter expressions (the escapes both Milvus and Milvus Lite read)."""
    escaped = value.replace("\\", "\\\\").replace('"', '\\"')
    return '"' + escaped.replace("\n", "\\n").replace("\r", "\\r").replace("\t", "\\t") + '"'


def _where(scope: Scope) -> str:
    return " and ".join(f"{key} == {_quote(value)}" for key, value in scope_items(scope).items())


class MilvusEngine:
    LOCAL_KEY = "path"  # where it keeps its folder when run embedded (config.vector_engine)

    def __init__(self, config: dict[str, Any]):
        config = config_keys(dict(config), KEYS, "milvus")
        try:  # pymilvus ships no type information
            pymilvus = importlib.import_module("pymilvus")
        except ImportError as exc:
            raise ConfigurationError("vector_store 'milvus' needs pymilvus: pip install 'memlane[milvus]'") from exc
        self._types = pymilvus.DataType
        self.collection = str(config.get("collection_name") or "memlane")
        metric = str(config.get("metric_type") or "COSINE").upper()
        if metric not in ("COSINE", "IP"):  # memlane's vectors are unit length: IP is the cosine too
            raise ConfigurationError(f"vector_store 'milvus': metric_type {metric!r} is not supported; memlane "
                                     "scores by cosine similarity: use COSINE (the default) or IP")
        self._metric = metric
        uri = str(config.get("url") or "")
        if not uri:
            if not config.get("path"):
                raise ConfigurationError("vector_store 'milvus' needs a path (Milvus Lite) or a url")
            uri = str(config["path"])
            uri = uri if uri.endswith(".db") else str(Path(uri) / "milvus.db")
        lite = uri.endswith(".db")  # pymilvus's own test for Milvus Lite
        if not lite and "://" not in uri and not uri.startswith("unix:"):
            uri = f"http://{uri}"  # a bare host[:port], as mem0's documentation shows
        self._lite: Optional[str] = os.path.abspath(uri) if lite else None
        if self._lite:
            Path(self._lite).parent.mkdir(parents=True, exist_ok=True)
            with _lite_lock:
                _lite_users[self._lite] = _lite_users.get(self._lite, 0) + 1
        self._client: Any = None
        try:
            self._client = pymilvus.MilvusClient(uri=self._lite or uri, token=str(config.get("token") or ""),
                                                 db_name=str(config.get("db_name") or ""))
            self._dims = self._open()
        except Exception as exc:
            self.close()
            if isinstance(exc, ConfigurationError):
                raise
            if not lite:
                raise ProviderError(f"vector_store 'milvus' at {uri}: {type(exc).__name__}: {exc}",
                                    provider="milvus") from exc
            raise ConfigurationError(f"vector_store 'milvus' (Milvus Lite, {uri}): {type(exc).__name__}: {exc} "
                                     "(Milvus Lite serves one process at a time: is the folder open in another? "
                                     "Use a Milvus server for several)") from exc

    def _open(self) -> Optional[int]:
        """The dimension of the existing collection (loaded for search), or None when there is none."""
        if not self._client.has_collection(self.collection):
            return None
        fields = {f["name"]: f for f in self._client.describe_collection(self.collection)["fields"]}
        if set(fields) != set(FIELDS):
            raise ConfigurationError(f"vector_store 'milvus': collection {self.collection!r} exists with other "
                                     f"fields ({', '.join(sorted(fields))}); choose another collection_name")
        self._client.load_collection(self.collection)  # a collection on a restarted Lite server is released
        return int(fields["vector"]["params"]["dim"])

    def _ensure(self, dims: int) -> None:
        if self._dims == dims:
            return
        if self._dims is not None:  # another space (a reindex to another embedder): the old vectors go
            self._client.drop_collection(self.collection)
        types, client = self._types, self._client
        schema = client.create_schema(auto_id=False, enable_dynamic_field=False)
        schema.add_field("id", types.VARCHAR, is_primary=True, max_length=512)
        schema.add_field("vector", types.FLOAT_VECTOR, dim=dims)
        for key in SCOPE_KEYS:  # max_length is in bytes: 255 characters of UTF-8
            schema.add_field(key, types.VARCHAR, max_length=1024)
        index = client.prepare_index_params()
        # Lite: exact search (its AUTOINDEX is HNSW where faiss is installed); a server picks its own index
        index.add_index("vector", index_type="FLAT" if self._lite else "AUTOINDEX", metric_type=self._metric)
        # Strong: a search sees every write acknowledged before it (a server defaults to Bounded staleness)
        client.create_collection(self.collection, schema=schema, consistency_level="Strong")
        # not waited for: pymilvus polls with a call Milvus Lite lacks, and an empty collection's index is at once
        client.create_index(self.collection, index, sync=False)
        client.load_collection(self.collection)
        self._dims = dims

    def upsert(self, records: list[tuple[str, np.ndarray, Scope]]) -> None:
        if not records:
            return
        self._ensure(int(records[0][1].shape[0]))
        self._client.upsert(self.collection, [
            {"id": mid, "vector": np.asarray(vec, dtype=np.float32).tolist(),
             **{key: getattr(scope, key) or "" for key in SCOPE_KEYS}} for mid, vec, scope in records])

    def delete(self, ids: list[str]) -> None:
        if ids and self._dims is not None:
            self._client.delete(self.collection, ids=list(ids))

    def clear(self, scope: Optional[Scope]) -> None:
        if self._dims is None:
            return
        where = "" if scope is None else _where(scope)
        if not where:
            self._client.drop_collection(self.collection)
            self._dims = None
        else:
            self._client.delete(self.collection, filter=where)

    def search(self, vector: np.ndarray, scope: Scope, k: int) -> list[tuple[str, float]]:
        if self._dims is None or k <= 0:
            return []
        found = self._client.search(self.collection, data=[np.asarray(vector, dtype=np.float32).tolist()],
                                    limit=min(k, MAX_TOPK), filter=_where(scope), output_fields=["id"],
                                    search_params={"metric_type": self._metric})
        return [(str(hit["id"]), float(hit["distance"])) for hit in found[0]]  # COSINE and IP: the similarity

    def count(self) -> int:
        if self._dims is None:
            return 0
        return int(self._client.query(self.collection, filter="", output_fields=["count(*)"])[0]["count(*)"])

    def close(self) -> None:
        try:
            if self._client is not None:
                self._client.close()
        finally:
            self._release()

    def _release(self) -> None:
        if not self._lite:
            return
        path, self._lite = self._lite, None
        with _lite_lock:
            users = _lite_users.pop(path, 1) - 1
            if users > 0:
                _lite_users[path] = users
                return
            try:
                servers = importlib.import_module("milvus_lite.server_manager").server_manager_instance
            except ImportError:  # then pymilvus could not have started one
                return
            servers.release_server(path)
