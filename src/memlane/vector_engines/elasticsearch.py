"""Elasticsearch 8 and OpenSearch 2/3 as the vector engine, spoken over their REST APIs with memlane.http (no
client library: the two differ only in the index mapping and the kNN query).

  Elasticsearch  `dense_vector` (dims, index true, similarity cosine); search with the top-level `knn`
                 {field, query_vector, k, num_candidates, filter}; `_score` = (1 + cos) / 2.
  OpenSearch     `knn_vector` with an hnsw `method` (engine lucene or faiss, space_type cosinesimil) in an
                 index with `index.knn: true`; search with the `knn` query {vector, k, filter};
                 `_score` = (2 - d) / 2 with d = 1 - cos, the same (1 + cos) / 2.

The scope ids are keyword fields and the scope filter goes inside the kNN search (a pre-filter: k hits of the
scope, never k hits then filtered). Writes are `_bulk` with refresh=wait_for, and scope deletes
`_delete_by_query` with refresh, so a read sees the write before it. The document `_id` is the memory id.
Scores come back as cosine similarity. One search asks for at most 10,000 neighbours (both services' cap).

Config keys are mem0's: `collection_name` (the index), `host` (with or without a scheme) and `port`, `user` /
`password` (basic auth), `api_key` (`Authorization: ApiKey ...`), `cloud_id` (Elastic Cloud), `verify_certs`,
`ca_certs`, `use_ssl` (the scheme when `host` has none), `headers`, `auto_create_index`,
`embedding_model_dims` (checked by the store), and for OpenSearch `http_auth` (a (user, password) pair),
`auto_refresh`, `connection_class` and `pool_maxsize` (opensearch-py's, accepted and not used). memlane's own:
`base_url` (the whole address, e.g. a local test server: it wins over host / port / cloud_id), OpenSearch's
`engine` (lucene, the default, or faiss), and `timeout`, `max_retries`, `retry_base_delay`, `retry_max_delay`
(memlane.http: 429 and 5xx are retried with backoff). Defaults that differ from mem0's OpenSearch ones:
`verify_certs` is true, and `auto_refresh` is true (writes wait for the refresh; false, for OpenSearch
Serverless, which has no refresh, means a search may miss the writes of the last second).
"""
from __future__ import annotations

import base64
import json
import re
import ssl
from typing import Any, Optional
from urllib.parse import quote, urlsplit

import numpy as np

from ..errors import ConfigurationError, ProviderError
from ..models import Scope
from . import SCOPE_KEYS, scope_items
from .rest import RETRY_KEYS, IndexEngine

COMMON_KEYS = frozenset({"collection_name", "host", "port", "user", "password", "api_key", "embedding_model_dims",
                         "verify_certs", "use_ssl", "base_url", *RETRY_KEYS})
FIELD = "vector"
MAX_K = 10_000  # index.max_result_window and the kNN caps of both services
BAD_INDEX_CHARS = re.compile(r'[\\/*?"<>| ,#:A-Z]')


def check_index_name(name: str, provider: str) -> str:
    """Both services' rules for index names: lowercase, none of \\ / * ? " < > | space , # :, not starting
    with - _ +, not . or .., at most 255 bytes."""
    if not name or BAD_INDEX_CHARS.search(name) or name[0] in "-_+" or name in (".", "..") or \
            len(name.encode()) > 255:
        raise ConfigurationError(f"vector_store '{provider}': collection_name {name!r} is not a valid index name "
                                 "(lowercase, no \\ / * ? \" < > | space , # :, not starting with - _ +)")
    return name


def cloud_url(cloud_id: str) -> str:
    """Elastic Cloud's id, `name:base64(host$es_uuid$kibana_uuid)`, as the deployment's https address."""
    try:
        decoded = base64.b64decode(cloud_id.split(":", 1)[-1]).decode()
        host, es_uuid = decoded.split("$")[:2]
    except (ValueError, UnicodeDecodeError) as exc:
        raise ConfigurationError(f"vector_store 'elasticsearch': cloud_id is not an Elastic Cloud id ({exc})") from exc
    host, _, port = host.partition(":")
    return f"https://{es_uuid}.{host}:{port or 443}"


class _SearchEngine(IndexEngine):
    """What Elasticsearch and OpenSearch share; the subclasses give the mapping and the kNN query."""

    name = "elasticsearch"
    keys = COMMON_KEYS
    default_ssl = True
    max_k = MAX_K

    def __init__(self, config: dict[str, Any]):
        super().__init__(config, self.keys)
        if config.get("custom_search_query") is not None:
            raise ConfigurationError(f"vector_store '{self.name}': custom_search_query is not supported (memlane "
                                     "builds the kNN query, with the scope filter inside it)")
        self.index = check_index_name(str(config.get("collection_name") or "memlane"), self.name)
        self.base_url = self._base_url(config).rstrip("/")
        self.headers = {"content-type": "application/json", "accept": "application/json",
                        **self._auth(config), **{str(k): str(v) for k, v in (config.get("headers") or {}).items()}}
        ca_certs = config.get("ca_certs")
        self.verify = ssl.create_default_context(cafile=str(ca_certs)) if ca_certs else \
            bool(config.get("verify_certs", True))
        self._auto_create = bool(config.get("auto_create_index", True))
        self._refresh = "wait_for" if config.get("auto_refresh", True) else None

    # ---------------------------------------------------------------- config

    def _base_url(self, config: dict[str, Any]) -> str:
        if config.get("base_url"):
            return str(config["base_url"])
        if config.get("cloud_id"):
            return cloud_url(str(config["cloud_id"]))
        host = str(config.get("host") or "localhost")
        if "://" not in host:
            host = ("https" if config.get("use_ssl", self.default_ssl) else "http") + "://" + host
        parts = urlsplit(host)
        if parts.port is None:  # mem0 joins host and port; a host that names its port keeps it
            host = f"{parts.scheme}://{parts.netloc}:{int(config.get('port') or 9200)}{parts.path}"
        return host

    def _auth(self, config: dict[str, Any]) -> dict[str, str]:
        user, password = config.get("user"), config.get("password")
        if config.get("http_auth") is not None:
            pair = config["http_auth"]
            if not (isinstance(pair, (tuple, list)) and len(pair) == 2):
                raise ConfigurationError(f"vector_store '{self.name}': http_auth must be a (user, password) pair "
                                         "(request signers such as AWSV4SignerAuth are opensearch-py's)")
            user, password = pair
        if config.get("api_key"):
            return {"authorization": f"ApiKey {config['api_key']}"}
        if user and password:
            token = base64.b64encode(f"{user}:{password}".encode()).decode()
            return {"authorization": f"Basic {token}"}
        return {}

    def _url(self, path: str) -> str:
        return f"{self.base_url}/{quote(self.index)}{path}"

    # ---------------------------------------------------------------- the index

    def mapping(self, dims: int) -> dict[str, Any]:
        raise NotImplementedError

    def knn_query(self, vector: list[float], k: int, where: Optional[dict[str, Any]]) -> dict[str, Any]:
        raise NotImplementedError

    def _read_dims(self) -> Optional[int]:
        found = self._request("GET", "", missing_ok=True)
        if not found:
            return None
        index: dict[str, Any] = next(iter(found.values()), {})  # {name: {mappings, settings, aliases}}
        props = index.get("mappings", {}).get("properties", {}).get(FIELD, {})
        dims = props.get("dims", props.get("dimension"))
        return int(dims) if dims else -1  # -1: an index without our vector field

    def _ensure(self, dims: int) -> None:
        with self._lock:
            if self._known and self._dims == dims:
                return
            self._dims, self._known = self._read_dims(), True  # another process may have made it meanwhile
            if self._dims == dims:
                return
            if not self._auto_create:
                raise ConfigurationError(f"vector_store '{self.name}': index {self.index!r} has no {dims}-dimension "
                                         f"'{FIELD}' field and auto_create_index is false")
            if self._dims is not None:  # another space (a reindex to another embedder): the old vectors go
                self._request("DELETE", "", missing_ok=True)
            try:
                self._request("PUT", "", self.mapping(dims))
            except ProviderError as exc:
                if exc.status != 400 or "already_exists" not in str(exc):
                    raise
            self._dims = dims

    # ---------------------------------------------------------------- VectorEngine

    def _write(self, records: list[tuple[str, np.ndarray, Scope]], dims: int) -> None:
        lines: list[Any] = []
        for mid, vec, scope in records:
            lines += [{"index": {"_id": mid}}, {FIELD: [float(x) for x in vec], **scope_items(scope)}]
        self._bulk(lines)

    def _delete(self, ids: list[str]) -> None:
        self._bulk([{"delete": {"_id": mid}} for mid in ids])

    def _bulk(self, lines: list[Any]) -> None:
        content = "".join(json.dumps(line, separators=(",", ":")) + "\n" for line in lines).encode()
        query = f"?refresh={self._refresh}" if self._refresh else ""
        answer = self._request("POST", f"/_bulk{query}", content=content,
                               headers={"content-type": "application/x-ndjson"})
        if answer.get("errors"):  # a delete of a missing id is "not_found" without an error: idempotent
            failed = [item for row in answer.get("items", []) for item in row.values() if item.get("error")]
            raise ProviderError(f"{self.name}: bulk write failed for {len(failed)} document(s): "
                                f"{json.dumps(failed[0].get('error'))[:300] if failed else answer}",
                                provider=self.name)

    def _clear(self, scope: Optional[Scope]) -> None:
        where = _scope_filter(scope) if scope is not None else None
        query = {"bool": where} if where else {"match_all": {}}
        # the index stays (another instance may be writing to it); a new space replaces it in _ensure
        self._request("POST", "/_delete_by_query?refresh=true&conflicts=proceed", {"query": query}, missing_ok=True)

    def _search(self, vector: list[float], scope: Scope, k: int) -> list[tuple[str, float]]:
        found = self._request("POST", "/_search", self.knn_query(vector, k, _scope_filter(scope)), missing_ok=True)
        hits = (found or {}).get("hits", {}).get("hits", [])
        # both services score cosine as (1 + cos) / 2
        return [(hit["_id"], max(-1.0, min(1.0, 2.0 * float(hit["_score"]) - 1.0))) for hit in hits]

    def _count(self) -> int:
        found = self._request("GET", "/_count", missing_ok=True)
        return int(found["count"]) if found else 0


def _scope_filter(scope: Scope) -> Optional[dict[str, Any]]:
    """The scope ids as term filters on the keyword fields (a bool query's body), or None for no scope."""
    terms = [{"term": {key: value}} for key, value in scope_items(scope).items()]
    return {"filter": terms} if terms else None


def _keywords() -> dict[str, Any]:
    return {key: {"type": "keyword"} for key in SCOPE_KEYS}


class ElasticsearchEngine(_SearchEngine):
    name = "elasticsearch"
    keys = COMMON_KEYS | {"cloud_id", "ca_certs", "auto_create_index", "custom_search_query", "headers"}

    def mapping(self, dims: int) -> dict[str, Any]:
        return {"mappings": {"properties": {
            FIELD: {"type": "dense_vector", "dims": dims, "index": True, "similarity": "cosine"}, **_keywords()}}}

    def knn_query(self, vector: list[float], k: int, where: Optional[dict[str, Any]]) -> dict[str, Any]:
        knn: dict[str, Any] = {"field": FIELD, "query_vector": vector, "k": k,
                               "num_candidates": min(MAX_K, max(100, 2 * k))}
        if where:
            knn["filter"] = {"bool": where}
        return {"knn": knn, "size": k, "_source": False}


class OpenSearchEngine(_SearchEngine):
    name = "opensearch"
    keys = COMMON_KEYS | {"http_auth", "connection_class", "pool_maxsize", "auto_refresh", "engine"}
    default_ssl = False  # mem0's default for OpenSearch

    def __init__(self, config: dict[str, Any]):
        engine = str(config.get("engine") or "lucene")
        if engine not in ("lucene", "faiss"):  # the two that filter inside the kNN search
            raise ConfigurationError(f"vector_store 'opensearch': engine must be lucene or faiss, not {engine!r}")
        self.engine = engine
        super().__init__(config)

    def mapping(self, dims: int) -> dict[str, Any]:
        method = {"name": "hnsw", "engine": self.engine, "space_type": "cosinesimil"}
        return {"settings": {"index": {"knn": True}}, "mappings": {"properties": {
            FIELD: {"type": "knn_vector", "dimension": dims, "method": method}, **_keywords()}}}

    def knn_query(self, vector: list[float], k: int, where: Optional[dict[str, Any]]) -> dict[str, Any]:
        knn: dict[str, Any] = {"vector": vector, "k": k}
        if where:
            knn["filter"] = {"bool": where}
        return {"size": k, "_source": False, "query": {"knn": {FIELD: knn}}}
