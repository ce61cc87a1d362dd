"""Pinecone as the vector engine, over its REST API (memlane.http: retries, deadlines; no SDK to install).

The control plane (https://api.pinecone.io, or `extra_params.host`) finds the index named `collection_name`,
or creates it at the first upsert (`serverless_config`, else `pod_config`, else serverless aws/us-west-2 as
mem0 does; `metric` cosine) and waits until it is ready. The data plane is the index's own host:
/vectors/upsert, /query with a metadata `filter` ($eq on each scope key), /vectors/delete by ids, by filter
or deleteAll, /describe_index_stats. Records are the memory id, its vector and its scope ids as metadata,
in `namespace` (else the default one). Every call sends `Api-Key` and pins `X-Pinecone-API-Version`.

Config keys are mem0's: collection_name, embedding_model_dims, api_key (else PINECONE_API_KEY), environment
(a pod index's, when pod_config has none), serverless_config, pod_config, metric (cosine or dotproduct: the
vectors are unit length, so both are the cosine), batch_size, namespace, extra_params (`host`,
`additional_headers`); hybrid_search is accepted and not used (keyword search is the embedded store's BM25);
plus memlane.http's timeout, max_retries, retry_base_delay, retry_max_delay.
"""
from __future__ import annotations

import re
import time
from typing import Any, Optional
from urllib.parse import quote, urlsplit

import numpy as np

from ..errors import ConfigurationError, ProviderError
from ..models import Scope
from . import scope_items
from .rest import RETRY_KEYS, RESTEngine

API_VERSION = "2025-04"
CONTROL_URL = "https://api.pinecone.io"
KEYS = frozenset({"collection_name", "embedding_model_dims", "client", "api_key", "environment", "serverless_config",
                  "pod_config", "hybrid_search", "metric", "batch_size", "extra_params", "namespace", *RETRY_KEYS})
METRICS = ("cosine", "dotproduct")
TOP_K_MAX = 10_000  # Pinecone's limit on topK
DELETE_MAX = 1_000  # ids per delete request
READY_WAIT = 300.0  # seconds a new index may take to become ready
INDEX_NAME = re.compile(r"[a-z0-9](?:[a-z0-9-]{0,43}[a-z0-9])?")


class PineconeEngine(RESTEngine):
    """Calls name whole URLs: the control plane's, or the index's host."""

    name = "pinecone"
    max_k = TOP_K_MAX

    def __init__(self, config: dict[str, Any]):
        super().__init__(config, KEYS)
        cfg = self.cfg
        if cfg.take("client") is not None:
            raise ConfigurationError("pinecone vector_store: a client object is not supported (memlane speaks "
                                     "Pinecone's REST API itself); give api_key")
        self.index_name = str(cfg.take("collection_name") or "memlane")
        if not INDEX_NAME.fullmatch(self.index_name):
            raise ConfigurationError(f"pinecone vector_store: collection_name {self.index_name!r} is no Pinecone "
                                     "index name (1-45 lower-case letters, digits or '-')")
        api_key = cfg.first("api_key", env=("PINECONE_API_KEY",))
        if not api_key:
            raise ConfigurationError("pinecone vector_store: no API key; set PINECONE_API_KEY or config api_key")
        self.metric = str(cfg.take("metric") or "cosine")
        if self.metric not in METRICS:
            raise ConfigurationError(f"pinecone vector_store: metric must be one of {', '.join(METRICS)} "
                                     f"(memlane ranks by cosine), not {self.metric!r}")
        self.namespace: Optional[str] = cfg.take("namespace") or None
        self.batch_size = cfg.positive_int("batch_size") or 100
        self.spec = self._spec(cfg.mapping("serverless_config"), cfg.mapping("pod_config"), cfg.take("environment"))
        extra = cfg.nested("extra_params")
        self.control_url = str(extra.take("host") or CONTROL_URL).rstrip("/")
        self.headers = {"Api-Key": str(api_key), "X-Pinecone-API-Version": API_VERSION,
                        "Content-Type": "application/json", "Accept": "application/json",
                        **{str(k): str(v) for k, v in extra.mapping("additional_headers").items()}}
        extra.done()
        for key in ("hybrid_search", "embedding_model_dims"):
            cfg.take(key)
        cfg.done()
        self._host: Optional[str] = None  # the index's data-plane URL, once found

    @staticmethod
    def _spec(serverless: dict[str, Any], pod: dict[str, Any], environment: Any) -> dict[str, Any]:
        if serverless and pod:
            raise ConfigurationError("pinecone vector_store: give serverless_config or pod_config, not both")
        if pod:
            return {"pod": {"environment": environment, **pod} if environment else pod}
        return {"serverless": serverless or {"cloud": "aws", "region": "us-west-2"}}

    # ---------------------------------------------------------------- the index

    def _describe(self) -> Optional[dict[str, Any]]:
        return self._request("GET", f"{self.control_url}/indexes/{quote(self.index_name)}", missing_ok=True)

    def _found(self, index: dict[str, Any]) -> None:
        host = str(index["host"])
        if "://" not in host:  # Pinecone gives a bare host; a local server (Pinecone Local) speaks plain http
            host = f"{urlsplit(self.control_url).scheme or 'https'}://{host}"
        self._host, self._dims = host.rstrip("/"), int(index["dimension"])
        if index.get("metric") not in METRICS:
            raise ConfigurationError(f"pinecone vector_store: index {self.index_name!r} ranks by "
                                     f"{index.get('metric')!r}; memlane needs cosine (or dotproduct)")

    def _present(self) -> bool:
        """Whether the index exists (its host is then known)."""
        with self._lock:
            if self._host is None:
                index = self._describe()
                if index is not None:
                    self._found(self._ready(index))
            return self._host is not None

    def _ready(self, index: dict[str, Any]) -> dict[str, Any]:
        deadline, pause = time.monotonic() + READY_WAIT, 0.1
        while not (index.get("status") or {}).get("ready"):
            if time.monotonic() > deadline:
                raise ProviderError(f"pinecone: index {self.index_name!r} not ready after {READY_WAIT:g} s",
                                    provider=self.name)
            time.sleep(pause)
            pause = min(pause * 2, 2.0)
            index = self._describe() or index
        return index

    def _ensure(self, dims: int) -> None:
        self._present()
        with self._lock:
            if self._host is not None and self._dims == dims:
                return
            if self._host is not None:  # another space (a reindex to another embedder)
                if self.namespace:  # other namespaces may live in this index: never drop it for them
                    raise ProviderError(f"pinecone: index {self.index_name!r} holds {self._dims}-dimensional "
                                        f"vectors, not {dims}; use another collection_name", provider=self.name)
                self._drop()
            body = {"name": self.index_name, "dimension": dims, "metric": self.metric, "spec": self.spec,
                    "deletion_protection": "disabled"}
            try:
                created = self._request("POST", f"{self.control_url}/indexes", body)
            except ProviderError as exc:
                if exc.status != 409:  # 409: another process created it meanwhile
                    raise
                created = self._describe()
            self._found(self._ready(created or {}))

    def _drop(self) -> None:
        self._request("DELETE", f"{self.control_url}/indexes/{quote(self.index_name)}", missing_ok=True)
        deadline = time.monotonic() + READY_WAIT
        while self._describe() is not None:  # deletion takes a while; the name is taken until it is done
            if time.monotonic() > deadline:
                raise ProviderError(f"pinecone: index {self.index_name!r} still there after {READY_WAIT:g} s",
                                    provider=self.name)
            time.sleep(0.2)
        self._host, self._dims = None, None

    def _data(self, path: str, body: dict[str, Any], missing_ok: bool = False) -> Any:
        if self.namespace and path != "/describe_index_stats":  # that one reports every namespace
            body = {**body, "namespace": self.namespace}
        return self._request("POST", f"{self._host}{path}", body, missing_ok=missing_ok)

    # ---------------------------------------------------------------- the engine

    def _write(self, records: list[tuple[str, np.ndarray, Scope]], dims: int) -> None:
        for start in range(0, len(records), self.batch_size):
            vectors = [{"id": mid, "values": [float(x) for x in vec], "metadata": scope_items(scope)}
                       for mid, vec, scope in records[start:start + self.batch_size]]
            self._data("/vectors/upsert", {"vectors": vectors})

    def _delete(self, ids: list[str]) -> None:
        for start in range(0, len(ids), DELETE_MAX):
            self._data("/vectors/delete", {"ids": ids[start:start + DELETE_MAX]}, missing_ok=True)

    @staticmethod
    def _filter(scope: Scope) -> Optional[dict[str, Any]]:
        items = scope_items(scope)
        return {key: {"$eq": value} for key, value in items.items()} if items else None

    def _clear(self, scope: Optional[Scope]) -> None:
        where = None if scope is None else self._filter(scope)
        # 404: the namespace holds nothing (Pinecone drops an emptied namespace)
        self._data("/vectors/delete", {"deleteAll": True} if where is None else {"filter": where}, missing_ok=True)

    def _search(self, vector: list[float], scope: Scope, k: int) -> list[tuple[str, float]]:
        body: dict[str, Any] = {"vector": vector, "topK": k, "includeValues": False, "includeMetadata": False}
        where = self._filter(scope)
        if where is not None:
            body["filter"] = where
        found = self._data("/query", body)
        return [(str(m["id"]), float(m["score"])) for m in found.get("matches") or []]

    def _count(self) -> int:
        stats = self._data("/describe_index_stats", {})
        if self.namespace:
            return int(((stats.get("namespaces") or {}).get(self.namespace) or {}).get("vectorCount") or 0)
        return int(stats.get("totalVectorCount") or 0)
