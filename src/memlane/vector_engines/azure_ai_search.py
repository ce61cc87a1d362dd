"""Azure AI Search as the vector engine, over its REST API (api-version 2024-07-01) with memlane.http (no SDK).

The index has a key field `id`, the memory id (`memory_id`, retrievable), the scope ids as filterable strings
and a `Collection(Edm.Single)` vector field (`Collection(Edm.Half)` with use_float16) under an hnsw profile
with the cosine metric, optionally compressed (scalar or binary quantization). Writes go to `docs/index`
(`mergeOrUpload` with every scope field set, so a scope id that went is cleared; `delete`), search to
`docs/search` with one vector query and an OData filter on the scope ids applied before the neighbours are
chosen (`vectorFilterMode: preFilter`, unless configured otherwise); `docs/$count` counts. Azure scores
cosine as 1 / (1 + (1 - cos)), turned back into cosine here.

Document keys may hold only letters, digits, `_`, `-` and `=`, and must not start with `_`: a memory id
that is not such a key (without `=`) is stored under `k=` + its URL-safe base64, which no plain id can equal.

Config keys are mem0's: `service_name` (https://{service_name}.search.windows.net), `api_key` (an admin key,
sent as `api-key`), `collection_name` (the index: lowercase letters, digits and dashes), `embedding_model_dims`
(checked by the store), `compression_type` (scalar / binary), `use_float16`, `vector_filter_mode` (preFilter /
postFilter) and `hybrid_search` (accepted; memlane's search is already hybrid: the keyword half stays in the
embedded store). memlane's own: `base_url` (the whole service address, e.g. a local test server; wins over
service_name), `api_version`, and `timeout`, `max_retries`, `retry_base_delay`, `retry_max_delay`
(memlane.http).

Limits: Azure indexes in near real time (about a second), with no refresh to wait for, so a vector search
right after a write may miss it (the keyword half still finds it); one search asks for at most 1,000
neighbours; deleting a scope lists its keys first (the service has no delete-by-query).
"""
from __future__ import annotations

import base64
import re
from typing import Any, Optional
from urllib.parse import quote

import numpy as np

from ..errors import ConfigurationError, ProviderError
from ..http import HTTPResult
from ..models import Scope
from . import SCOPE_KEYS, scope_items
from .rest import RETRY_KEYS, IndexEngine, json_body

API_VERSION = "2024-07-01"
KEYS = frozenset({"collection_name", "service_name", "api_key", "embedding_model_dims", "compression_type",
                  "use_float16", "hybrid_search", "vector_filter_mode", "base_url", "api_version",
                  *RETRY_KEYS})
FIELD = "vector"
PROFILE, ALGORITHM, COMPRESSION = "memlane-vector-profile", "memlane-hnsw", "memlane-compression"
BATCH = 1000  # documents per docs/index call (the service's cap)
MAX_K = 1000
PLAIN_KEY = re.compile(r"[A-Za-z0-9\-][A-Za-z0-9_\-]*")
INDEX_NAME = re.compile(r"[a-z0-9][a-z0-9-]{0,126}[a-z0-9]")


def document_key(memory_id: str) -> str:
    """The memory id as an Azure document key (see the module docstring)."""
    if PLAIN_KEY.fullmatch(memory_id) and len(memory_id) <= 1024:
        return memory_id
    return "k=" + base64.urlsafe_b64encode(memory_id.encode()).decode().rstrip("=")


def odata_filter(scope: Scope) -> Optional[str]:
    """The scope ids as an OData filter; a quote in an id is doubled, as OData string literals escape it."""
    terms = [f"{key} eq '{value.replace(chr(39), chr(39) * 2)}'" for key, value in scope_items(scope).items()]
    return " and ".join(terms) or None


class AzureAISearchEngine(IndexEngine):
    name = "azure_ai_search"
    max_k = MAX_K

    def __init__(self, config: dict[str, Any]):
        super().__init__(config, KEYS)
        self.index = str(config.get("collection_name") or "memlane")
        if not INDEX_NAME.fullmatch(self.index):
            raise ConfigurationError(f"vector_store '{self.name}': collection_name {self.index!r} is not a valid "
                                     "index name (2-128 lowercase letters, digits and dashes, no dash "
                                     "first or last)")
        base_url = config.get("base_url") or (
            f"https://{config['service_name']}.search.windows.net" if config.get("service_name") else None)
        if not base_url:
            raise ConfigurationError(f"vector_store '{self.name}' needs service_name (or base_url)")
        if not config.get("api_key"):
            raise ConfigurationError(f"vector_store '{self.name}' needs api_key (an admin key of the service)")
        self.base_url = str(base_url).rstrip("/")
        self.api_version = str(config.get("api_version") or API_VERSION)
        self.headers = {"api-key": str(config["api_key"]), "content-type": "application/json",
                        "accept": "application/json"}
        compression = config.get("compression_type")
        if compression is not None and str(compression).lower() not in ("scalar", "binary"):
            raise ConfigurationError(f"vector_store '{self.name}': compression_type must be scalar, binary or "
                                     f"None, not {compression!r}")
        self.compression = str(compression).lower() if compression else None
        self.float16 = bool(config.get("use_float16", False))
        self.filter_mode = str(config.get("vector_filter_mode") or "preFilter")
        if self.filter_mode not in ("preFilter", "postFilter"):
            raise ConfigurationError(f"vector_store '{self.name}': vector_filter_mode must be preFilter or "
                                     f"postFilter, not {self.filter_mode!r}")

    def _url(self, path: str) -> str:
        return f"{self.base_url}/indexes/{quote(self.index)}{path}?api-version={self.api_version}"

    # ---------------------------------------------------------------- the index

    def definition(self, dims: int) -> dict[str, Any]:
        def string(name: str, **flags: bool) -> dict[str, Any]:
            return {"name": name, "type": "Edm.String", "searchable": False, "filterable": False,
                    "retrievable": False, "sortable": False, "facetable": False, **flags}
        profile: dict[str, Any] = {"name": PROFILE, "algorithm": ALGORITHM}
        search: dict[str, Any] = {"algorithms": [{"name": ALGORITHM, "kind": "hnsw",
                                                  "hnswParameters": {"metric": "cosine"}}], "profiles": [profile]}
        if self.compression:
            profile["compression"] = COMPRESSION
            kind = "scalarQuantization" if self.compression == "scalar" else "binaryQuantization"
            search["compressions"] = [{"name": COMPRESSION, "kind": kind}]
        return {"name": self.index, "fields": [
            string("id", key=True, filterable=True, retrievable=True), string("memory_id", retrievable=True),
            *(string(key, filterable=True) for key in SCOPE_KEYS),
            {"name": FIELD, "type": "Collection(Edm.Half)" if self.float16 else "Collection(Edm.Single)",
             "searchable": True, "retrievable": False, "dimensions": dims, "vectorSearchProfile": PROFILE}],
            "vectorSearch": search}

    def _read_dims(self) -> Optional[int]:
        found = self._request("GET", "", missing_ok=True)
        if not found:
            return None
        field: dict[str, Any] = next((f for f in found.get("fields", []) if f.get("name") == FIELD), {})
        return int(field.get("dimensions") or -1)  # -1: an index without our vector field

    def _ensure(self, dims: int, force: bool = False) -> None:
        with self._lock:
            if self._known and self._dims == dims and not force:
                return
            self._dims, self._known = self._read_dims(), True  # another process may have made it meanwhile
            if self._dims == dims:
                return
            if self._dims is not None:  # another space (a reindex to another embedder): the old vectors go
                self._request("DELETE", "", missing_ok=True, parse=_nothing)
            self._request("PUT", "", self.definition(dims), parse=_nothing)
            self._dims = dims

    # ---------------------------------------------------------------- VectorEngine

    def _write(self, records: list[tuple[str, np.ndarray, Scope]], dims: int) -> None:
        for start in range(0, len(records), BATCH):
            docs = [{"@search.action": "mergeOrUpload", "id": document_key(mid), "memory_id": mid,
                     **{key: getattr(scope, key) for key in SCOPE_KEYS}, FIELD: [float(x) for x in vec]}
                    for mid, vec, scope in records[start:start + BATCH]]
            try:
                self._index(docs)
            except ProviderError as exc:
                if exc.status != 404:
                    raise
                self._ensure(dims, force=True)  # the index went (another instance cleared it): made again
                self._index(docs)

    def _delete(self, ids: list[str]) -> None:
        for start in range(0, len(ids), BATCH):
            docs = [{"@search.action": "delete", "id": document_key(mid)} for mid in ids[start:start + BATCH]]
            self._request("POST", "/docs/index", {"value": docs}, missing_ok=True, parse=_indexed)

    def _index(self, docs: list[dict[str, Any]]) -> None:
        self._request("POST", "/docs/index", {"value": docs}, parse=_indexed)

    def _clear(self, scope: Optional[Scope]) -> None:
        where = odata_filter(scope) if scope is not None else None
        if where is None:  # everything: the index goes, and is made again on the next write
            with self._lock:
                self._request("DELETE", "", missing_ok=True, parse=_nothing)
                self._dims = None
            return
        keys: list[str] = []
        while True:  # the keys first, then the deletes: paging while deleting would skip some
            page = self._request("POST", "/docs/search", {"search": "*", "filter": where, "select": "id",
                                                          "top": BATCH, "skip": len(keys)}, missing_ok=True)
            rows = (page or {}).get("value", [])
            keys += [row["id"] for row in rows]
            if len(rows) < BATCH:
                break
        for start in range(0, len(keys), BATCH):
            docs = [{"@search.action": "delete", "id": key} for key in keys[start:start + BATCH]]
            self._request("POST", "/docs/index", {"value": docs}, missing_ok=True, parse=_indexed)

    def _search(self, vector: list[float], scope: Scope, k: int) -> list[tuple[str, float]]:
        body: dict[str, Any] = {"select": "memory_id", "top": k, "vectorFilterMode": self.filter_mode,
                                "vectorQueries": [{"kind": "vector", "vector": vector, "k": k, "fields": FIELD}]}
        where = odata_filter(scope)
        if where:
            body["filter"] = where
        found = self._request("POST", "/docs/search", body, missing_ok=True)
        # @search.score = 1 / (1 + cosine distance), so cos = 2 - 1 / score
        return [(row["memory_id"], max(-1.0, min(1.0, 2.0 - 1.0 / float(row["@search.score"]))))
                for row in (found or {}).get("value", [])]

    def _count(self) -> int:
        return int(self._request("GET", "/docs/$count", missing_ok=True, parse=_number) or 0)


def _nothing(result: HTTPResult) -> None:
    return None


def _number(result: HTTPResult) -> int:
    """docs/$count answers a bare number as text/plain (with a byte-order mark at times)."""
    try:
        return int(result.body.decode("utf-8-sig").strip())
    except ValueError as exc:
        raise ProviderError(f"azure_ai_search: $count answered {result.body[:100]!r}",
                            provider="azure_ai_search") from exc


def _indexed(result: HTTPResult) -> None:
    """docs/index answers 200, or 207 when some documents failed: each one has its own status."""
    failed = [row for row in json_body(result, "azure_ai_search").get("value", []) if not row.get("status")]
    if failed:
        raise ProviderError(f"azure_ai_search: {len(failed)} document(s) not indexed, first "
                            f"{failed[0].get('key')!r}: {failed[0].get('errorMessage')}", provider="azure_ai_search")
