"""Weaviate as the vector engine, over its REST and GraphQL API (memlane.http: retries, deadlines; no SDK).

One class (`collection_name`, its first letter upper-cased as Weaviate does) with vectorizer none, cosine
distance and the properties memory_id, user_id, agent_id, run_id (text, `field` tokenization: exact
matches), made at the first upsert (POST /v1/schema). Objects are written with POST /v1/batch/objects (each
object's own error is checked: a batch answers 200 whatever failed), deleted by id (DELETE
/v1/objects/{class}/{uuid}) or by a where filter: several ids, a scope (DELETE /v1/batch/objects, repeated
while a pass hits the server's QUERY_MAXIMUM_RESULTS). Search is GraphQL `Get` with nearVector, the scope as `where` and
`_additional {distance}` (cosine distance: similarity = 1 - distance); count is `Aggregate { meta { count } }`.
Needs Weaviate 1.19+ (valueText filters). Weaviate ids are UUIDs: a memory id that is not one maps to one
(uuid5), and the object keeps it as memory_id.

Config keys are mem0's: collection_name, embedding_model_dims, cluster_url (required), auth_client_secret (an
API key, sent as a bearer token), additional_headers (sent with every request); plus memlane.http's timeout,
max_retries, retry_base_delay, retry_max_delay.
"""
from __future__ import annotations

import json
import re
from typing import Any, Optional
from urllib.parse import quote

import numpy as np

from ..errors import ConfigurationError, ProviderError
from ..models import Scope
from . import SCOPE_KEYS, scope_items
from .qdrant import point_id
from .rest import RETRY_KEYS, RESTEngine

KEYS = frozenset({"collection_name", "embedding_model_dims", "cluster_url", "auth_client_secret", "additional_headers",
                  *RETRY_KEYS})
ID = "memory_id"
LIMIT_MAX = 10_000  # Weaviate's default QUERY_MAXIMUM_RESULTS
BATCH = 100
CLASS_NAME = re.compile(r"[A-Z][_0-9A-Za-z]*")


def _operand(key: str, value: str) -> dict[str, Any]:
    return {"path": [key], "operator": "Equal", "valueText": value}


def _where(scope: Scope) -> Optional[dict[str, Any]]:
    operands = [_operand(key, value) for key, value in scope_items(scope).items()]
    if not operands:
        return None
    return operands[0] if len(operands) == 1 else {"operator": "And", "operands": operands}


def graphql_value(value: Any) -> str:
    """A JSON value as a GraphQL literal: object keys unquoted, `operator` values as enums."""
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k}: {value[k] if k == 'operator' else graphql_value(value[k])}"
                               for k in value) + "}"
    if isinstance(value, list):
        return "[" + ", ".join(graphql_value(v) for v in value) + "]"
    return json.dumps(value)  # strings (escaped as GraphQL reads them), numbers, booleans


class WeaviateEngine(RESTEngine):
    name = "weaviate"
    max_k = LIMIT_MAX

    def __init__(self, config: dict[str, Any]):
        super().__init__(config, KEYS)
        cfg = self.cfg
        name = str(cfg.take("collection_name") or "memlane")
        self.class_name = name[:1].upper() + name[1:]
        if not CLASS_NAME.fullmatch(self.class_name):
            raise ConfigurationError(f"weaviate vector_store: collection_name {name!r} is no Weaviate class name "
                                     "(letters, digits and '_', starting with a letter)")
        url = cfg.take("cluster_url")
        if not url:
            raise ConfigurationError("weaviate vector_store: cluster_url is required (e.g. http://localhost:8080)")
        self.base_url = str(url).rstrip("/")
        secret = cfg.take("auth_client_secret")
        if isinstance(secret, dict):  # the client's Auth.api_key(...) spelled as a dict
            secret = secret.get("api_key")
        self.headers = {"Content-Type": "application/json", "Accept": "application/json",
                        **{str(k): str(v) for k, v in cfg.mapping("additional_headers").items()}}
        if secret:
            self.headers["Authorization"] = f"Bearer {secret}"
        cfg.take("embedding_model_dims")  # the store checks it; the class takes the vectors' size
        cfg.done()
        self._exists: Optional[bool] = None  # unknown until first asked

    # ---------------------------------------------------------------- HTTP

    def _url(self, path: str) -> str:
        return self.base_url + path

    def _graphql(self, query: str) -> Any:
        answer = self._request("POST", "/v1/graphql", {"query": query})
        if answer.get("errors"):  # GraphQL reports its errors in a 200
            messages = "; ".join(str(e.get("message")) for e in answer["errors"])
            raise ProviderError(f"weaviate: GraphQL error: {messages}", provider=self.name)
        return answer.get("data") or {}

    # ---------------------------------------------------------------- the class

    def _present(self) -> bool:
        """Whether the class exists (and, when it holds objects, the size of their vectors)."""
        with self._lock:
            if self._exists is None:
                path = f"/v1/schema/{quote(self.class_name)}"
                self._exists = self._request("GET", path, missing_ok=True) is not None
                if self._exists:
                    one = self._request("GET", f"/v1/objects?class={quote(self.class_name)}&limit=1&include=vector")
                    vectors = [o.get("vector") for o in (one or {}).get("objects") or [] if o.get("vector")]
                    self._dims = len(vectors[0]) if vectors else None
            return bool(self._exists)

    def _ensure(self, dims: int) -> None:
        self._present()
        with self._lock:
            if self._exists and self._dims in (None, dims):
                return
            if self._exists:  # another space (a reindex to another embedder): the old vectors go
                self._drop()
            properties = [{"name": key, "dataType": ["text"], "tokenization": "field"} for key in (ID, *SCOPE_KEYS)]
            body = {"class": self.class_name, "description": "memlane memory vectors", "vectorizer": "none",
                    "vectorIndexType": "hnsw", "vectorIndexConfig": {"distance": "cosine"},
                    "properties": properties}
            try:
                self._request("POST", "/v1/schema", body)
            except ProviderError as exc:
                if exc.status != 422 or "already exists" not in str(exc):  # another process made it meanwhile
                    raise
            self._exists = True

    def _drop(self) -> None:
        self._request("DELETE", f"/v1/schema/{quote(self.class_name)}", missing_ok=True)
        self._exists, self._dims = False, None

    # ---------------------------------------------------------------- the engine

    def _write(self, records: list[tuple[str, np.ndarray, Scope]], dims: int) -> None:
        for start in range(0, len(records), BATCH):
            objects: list[dict[str, Any]] = [
                {"class": self.class_name, "id": point_id(mid), "vector": [float(x) for x in vec],
                 "properties": {ID: mid, **scope_items(scope)}} for mid, vec, scope in records[start:start + BATCH]]
            errors = self._batch(objects)
            if errors:  # the class may have changed behind our back (dropped; or kept from another space, its
                with self._lock:  # size unknown while it was empty): look again, make it again, write again
                    self._exists, self._dims = None, None
                    if any("length" in e for e in errors):
                        self._drop()
                self._ensure(dims)
                errors = self._batch(objects)
            if errors:
                raise ProviderError(f"weaviate: {len(errors)} object(s) not written: {errors[0]}",
                                    provider=self.name)
        self._dims = dims

    def _batch(self, objects: list[dict[str, Any]]) -> list[str]:
        """The per-object error messages of a batch write (a batch answers 200 whatever failed)."""
        answer = self._request("POST", "/v1/batch/objects", {"objects": objects})
        return [str(e.get("message")) for o in answer or []
                for e in (((o.get("result") or {}).get("errors") or {}).get("error") or [])]

    def _delete(self, ids: list[str]) -> None:
        if len(ids) == 1:  # 404: already gone
            self._request("DELETE", f"/v1/objects/{quote(self.class_name)}/{point_id(ids[0])}", missing_ok=True)
        else:
            self._delete_where({"path": [ID], "operator": "ContainsAny", "valueTextArray": list(ids)})

    def _delete_where(self, where: dict[str, Any]) -> None:
        body = {"match": {"class": self.class_name, "where": where}, "output": "minimal", "dryRun": False}
        while True:  # each pass deletes at most the server's QUERY_MAXIMUM_RESULTS
            results = (self._request("DELETE", "/v1/batch/objects", body) or {}).get("results") or {}
            if results.get("failed"):
                raise ProviderError(f"weaviate: {results['failed']} object(s) not deleted", provider=self.name)
            if not results.get("limit") or int(results.get("matches") or 0) < int(results["limit"]):
                return

    def _clear(self, scope: Optional[Scope]) -> None:
        where = None if scope is None else _where(scope)
        if where is None:
            with self._lock:
                self._drop()
        else:
            self._delete_where(where)

    def _search(self, vector: list[float], scope: Scope, k: int) -> list[tuple[str, float]]:
        args: dict[str, Any] = {"nearVector": {"vector": vector}, "limit": k}
        where = _where(scope)
        if where is not None:
            args["where"] = where
        arguments = ", ".join(f"{key}: {graphql_value(value)}" for key, value in args.items())
        data = self._graphql(f"{{ Get {{ {self.class_name}({arguments}) {{ {ID} _additional {{ distance }} }} }} }}")
        rows = (data.get("Get") or {}).get(self.class_name) or []
        return [(str(row[ID]), 1.0 - float(row["_additional"]["distance"])) for row in rows]

    def _count(self) -> int:
        data = self._graphql(f"{{ Aggregate {{ {self.class_name} {{ meta {{ count }} }} }} }}")
        rows = (data.get("Aggregate") or {}).get(self.class_name) or []
        return int(rows[0]["meta"]["count"]) if rows else 0
