"""Real local HTTP servers speaking the REST protocols of the search services memlane's vector engines call
(src/memlane/vector_engines/elasticsearch.py and azure_ai_search.py), each holding its indexes in memory and
doing a real, exact cosine search with the filter applied before the neighbours are chosen:

  FakeElasticsearch("elasticsearch")  Elasticsearch 8: PUT/GET/DELETE /{index} (a `dense_vector` mapping),
      POST /{index}/_bulk (NDJSON; index / create / delete), POST /{index}/_search with the top-level `knn`
      {field, query_vector, k, num_candidates, filter}, POST /{index}/_delete_by_query, GET /{index}/_count,
      POST /{index}/_refresh; `_score` = (1 + cos) / 2; auth `ApiKey` or `Basic` as configured (401 otherwise).
  FakeElasticsearch("opensearch")  OpenSearch: the same routes, a `knn_vector` mapping (hnsw, engine lucene /
      faiss / nmslib, space cosinesimil) in an index with `index.knn: true`, the `knn` query
      {field: {vector, k, filter}} (a filter needs lucene or faiss); `_score` = (2 - (1 - cos)) / 2.
  FakeAzureSearch  Azure AI Search, api-version 2024-07-01 only: PUT/GET/DELETE /indexes/{name} (fields, a
      vector profile -> hnsw / exhaustiveKnn algorithm, compressions), POST docs/index (upload / merge /
      mergeOrUpload / delete, per-document status, 207 when some fail), POST docs/search (vectorQueries, an
      OData filter of `field eq 'literal'` clauses joined by `and`, vectorFilterMode, select, top, skip),
      GET docs/$count (text/plain); `@search.score` = 1 / (1 + (1 - cos)); `api-key` (401 missing, 403 wrong).

Requests are validated as the services validate them (shapes, dimensions, caps, field kinds) and answered
400 / 401 / 404 with the service's error body otherwise. Every request is recorded (Recorded); scripted
replies (fail(Reply...)) answer the next requests, in order, before anything else.
"""
from __future__ import annotations

import base64
import json
import re
import threading
from collections import deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from local_http import LocalHTTPServer, QuickHandler
from typing import Any, Optional
from urllib.parse import parse_qsl, unquote, urlsplit

import numpy as np
import pytest

ES_API_KEY = "es-test-key"
AZURE_API_KEY = "az-admin-key"
AZURE_API_VERSION = "2024-07-01"


@dataclass
class Reply:
    status: int
    body: Any = None  # dict/list -> JSON, str/bytes as they are
    headers: dict[str, str] = field(default_factory=dict)


@dataclass
class Recorded:
    method: str
    path: str  # without the query string, percent-decoded
    query: dict[str, str]
    headers: dict[str, str]
    body: Any  # parsed JSON, a list of parsed NDJSON lines, or None
    raw: bytes


class BadRequest(Exception):
    def __init__(self, reply: Reply):
        super().__init__(reply.status)
        self.reply = reply


def cosine(a: Any, b: Any) -> float:
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    norms = float(np.linalg.norm(a) * np.linalg.norm(b))
    return float(a @ b) / norms if norms else 0.0


class _Server:
    """The HTTP plumbing: a ThreadingHTTPServer on 127.0.0.1, the record of requests, the script."""

    def __init__(self) -> None:
        self.requests: list[Recorded] = []
        self.script: deque = deque()
        self.lock = threading.RLock()
        self._http = LocalHTTPServer(_handler(self))

    @property
    def url(self) -> str:
        return self._http.url

    @property
    def port(self) -> int:
        return self._http.port

    def fail(self, *replies: Reply) -> None:
        self.script.extend(replies)

    def close(self) -> None:
        self._http.close()

    def sent(self, method: Optional[str] = None, path_suffix: str = "") -> list[Recorded]:
        return [r for r in self.requests if (method is None or r.method == method) and r.path.endswith(path_suffix)]

    def receive(self, rec: Recorded) -> Reply:
        with self.lock:
            self.requests.append(rec)
            if self.script:
                return self.script.popleft()
            try:
                return self.answer(rec)
            except BadRequest as bad:
                return bad.reply

    def answer(self, rec: Recorded) -> Reply:
        raise NotImplementedError

    def parse_body(self, headers: dict[str, str], raw: bytes) -> Any:
        if not raw:
            return None
        try:
            return json.loads(raw)
        except ValueError:
            return None


def _handler(server: _Server) -> type[BaseHTTPRequestHandler]:
    class Handler(QuickHandler):
        def handle_any(self) -> None:
            raw = self.read_body()
            headers = self.header_map()
            parts = urlsplit(self.path)
            rec = Recorded(self.command, unquote(parts.path), dict(parse_qsl(parts.query, keep_blank_values=True)),
                           headers, server.parse_body(headers, raw), raw)
            reply = server.receive(rec)
            if isinstance(reply.body, (bytes, str)):
                payload = reply.body.encode() if isinstance(reply.body, str) else reply.body
                kind = "text/plain"
            else:
                payload = b"" if reply.body is None else json.dumps(reply.body).encode()
                kind = "application/json"
            self.send(reply.status, reply.headers, payload, kind)

        do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = handle_any

    return Handler


# ====================================================================== Elasticsearch / OpenSearch

def es_error(status: int, kind: str, reason: str, **extra: Any) -> Reply:
    cause = {"type": kind, "reason": reason, **extra}
    return Reply(status, {"error": {"root_cause": [cause], **cause}, "status": status})


def bad(kind: str, reason: str) -> BadRequest:
    return BadRequest(es_error(400, kind, reason))


@dataclass
class EsIndex:
    mappings: dict[str, Any]
    settings: dict[str, Any]
    docs: dict[str, dict[str, Any]] = field(default_factory=dict)
    version: int = 0


INDEX_NAME = re.compile(r'[^\\/*?"<>| ,#:A-Z]+')


class FakeElasticsearch(_Server):
    """`flavor` "elasticsearch" or "opensearch"; `api_key`, or `user` and `password` (Basic), or neither (an
    unsecured cluster)."""

    def __init__(self, flavor: str = "elasticsearch", api_key: Optional[str] = ES_API_KEY,
                 user: Optional[str] = None, password: Optional[str] = None):
        assert flavor in ("elasticsearch", "opensearch")
        self.flavor = flavor
        self.api_key, self.user, self.password = api_key, user, password
        self.indices: dict[str, EsIndex] = {}
        super().__init__()

    @property
    def opensearch(self) -> bool:
        return self.flavor == "opensearch"

    def parse_body(self, headers: dict[str, str], raw: bytes) -> Any:
        if "ndjson" in headers.get("content-type", ""):
            try:
                return [json.loads(line) for line in raw.decode().split("\n") if line.strip()]
            except ValueError:
                return None
        return super().parse_body(headers, raw)

    def authorized(self, rec: Recorded) -> bool:
        given = rec.headers.get("authorization", "")
        if self.api_key:
            return given == f"ApiKey {self.api_key}"
        if self.user:
            return given == "Basic " + base64.b64encode(f"{self.user}:{self.password}".encode()).decode()
        return True

    def answer(self, rec: Recorded) -> Reply:
        if not self.authorized(rec):
            return Reply(401, es_error(401, "security_exception",
                                       f"missing authentication credentials for REST request [{rec.path}]").body,
                         {"www-authenticate": 'Basic realm="security", ApiKey'})
        parts = [p for p in rec.path.split("/") if p]
        if not parts:
            return Reply(200, {"name": "fake", "version": {"number": "3.1.0" if self.opensearch else "8.15.0",
                                                           "distribution": self.flavor}})
        name, action = parts[0], "/".join(parts[1:])
        routes = {("", "GET"): self.get_index, ("", "HEAD"): self.get_index, ("", "PUT"): self.create_index,
                  ("", "DELETE"): self.delete_index, ("_bulk", "POST"): self.bulk, ("_bulk", "PUT"): self.bulk,
                  ("_search", "POST"): self.search, ("_search", "GET"): self.search,
                  ("_delete_by_query", "POST"): self.delete_by_query, ("_count", "GET"): self.count,
                  ("_count", "POST"): self.count, ("_refresh", "POST"): self.refresh}
        route = routes.get((action, rec.method))
        if route is None:
            return es_error(405 if action in {a for a, _ in routes} else 400, "illegal_argument_exception",
                            f"no handler for uri [{rec.path}] and method [{rec.method}]")
        if action != "" or rec.method != "PUT":
            if action != "_bulk" and name not in self.indices:
                return es_error(404, "index_not_found_exception", f"no such index [{name}]", index=name)
        return route(name, rec)

    # ---------------------------------------------------------------- indexes

    def get_index(self, name: str, rec: Recorded) -> Reply:
        index = self.indices[name]
        return Reply(200, {name: {"aliases": {}, "mappings": index.mappings, "settings": {"index": index.settings}}})

    def create_index(self, name: str, rec: Recorded) -> Reply:
        if not INDEX_NAME.fullmatch(name) or name[0] in "-_+":
            return es_error(400, "invalid_index_name_exception", f"Invalid index name [{name}]", index=name)
        if name in self.indices:
            return es_error(400, "resource_already_exists_exception", f"index [{name}] already exists", index=name)
        body = rec.body or {}
        if not isinstance(body, dict) or set(body) - {"mappings", "settings", "aliases"}:
            return es_error(400, "parse_exception", "unknown key in the index body")
        settings = dict((body.get("settings") or {}).get("index", body.get("settings") or {}))
        mappings = body.get("mappings") or {"properties": {}}
        for fname, spec in mappings.get("properties", {}).items():
            self.check_field(fname, spec, settings)
        self.indices[name] = EsIndex(mappings, settings)
        return Reply(200, {"acknowledged": True, "shards_acknowledged": True, "index": name})

    def check_field(self, fname: str, spec: dict[str, Any], settings: dict[str, Any]) -> None:
        kind = spec.get("type")
        if kind in ("keyword", "text", "long", "float", "boolean"):
            return
        if kind == "dense_vector" and not self.opensearch:
            dims = spec.get("dims")
            if not isinstance(dims, int) or not 1 <= dims <= 4096:
                raise bad("mapper_parsing_exception", f"The number of dimensions for field [{fname}] should be "
                          "in the range [1, 4096]")
            if spec.get("similarity", "cosine") not in ("cosine", "dot_product", "l2_norm", "max_inner_product"):
                raise bad("mapper_parsing_exception", f"Unknown similarity [{spec.get('similarity')}]")
            return
        if kind == "knn_vector" and self.opensearch:
            dims = spec.get("dimension")
            if not isinstance(dims, int) or not 1 <= dims <= 16000:
                raise bad("mapper_parsing_exception", f"Dimension value missing or out of range for vector: {fname}")
            method = spec.get("method") or {}
            if method.get("name") != "hnsw" or method.get("engine", "faiss") not in ("lucene", "faiss", "nmslib"):
                raise bad("mapper_parsing_exception", f"Invalid method for field [{fname}]: {method}")
            if method.get("space_type", spec.get("space_type", "l2")) not in ("cosinesimil", "l2", "innerproduct"):
                raise bad("mapper_parsing_exception", f"Invalid space_type for field [{fname}]")
            if str(settings.get("knn")).lower() != "true":
                raise bad("illegal_argument_exception", f"Cannot create a knn_vector field [{fname}] with an index "
                          "that does not have index.knn: true")  # (approximate search needs it)
            return
        raise bad("mapper_parsing_exception", f"No handler for type [{kind}] declared on field [{fname}]")

    def delete_index(self, name: str, rec: Recorded) -> Reply:
        del self.indices[name]
        return Reply(200, {"acknowledged": True})

    def refresh(self, name: str, rec: Recorded) -> Reply:
        return Reply(200, {"_shards": {"total": 1, "successful": 1, "failed": 0}})

    def vector_field(self, index: EsIndex, fname: str) -> Optional[dict[str, Any]]:
        spec = index.mappings.get("properties", {}).get(fname)
        want = "knn_vector" if self.opensearch else "dense_vector"
        return spec if spec and spec.get("type") == want else None

    @staticmethod
    def dims(spec: dict[str, Any]) -> int:
        return int(spec.get("dims", spec.get("dimension", 0)))

    def similarity(self, spec: dict[str, Any]) -> str:
        if self.opensearch:
            return str((spec.get("method") or {}).get("space_type", spec.get("space_type", "l2")))
        return str(spec.get("similarity", "cosine"))

    # ---------------------------------------------------------------- documents

    def bulk(self, name: str, rec: Recorded) -> Reply:
        kind = rec.headers.get("content-type", "")
        if not any(k in kind for k in ("application/x-ndjson", "application/json")):
            return es_error(406, "illegal_argument_exception", f"Content-Type header [{kind}] is not supported")
        if rec.query.get("refresh", "false") not in ("", "true", "false", "wait_for"):
            raise bad("illegal_argument_exception", f"Unknown value for refresh: [{rec.query['refresh']}].")
        if not rec.raw.endswith(b"\n") or not isinstance(rec.body, list):
            raise bad("illegal_argument_exception", "The bulk request must be terminated by a newline [\\n]")
        if name not in self.indices:  # auto-created, with a dynamic mapping (no vector field)
            self.indices[name] = EsIndex({"properties": {}}, {})
        index = self.indices[name]
        lines, items = list(rec.body), []
        while lines:
            action = lines.pop(0)
            if not isinstance(action, dict) or len(action) != 1 or next(iter(action)) not in (
                    "index", "create", "delete"):
                raise bad("illegal_argument_exception", f"Malformed action/metadata line [{action}]")
            op, meta = next(iter(action.items()))
            doc_id = str(meta.get("_id"))
            if op == "delete":
                found = index.docs.pop(doc_id, None) is not None
                items.append({op: {"_index": name, "_id": doc_id, "result": "deleted" if found else "not_found",
                                   "status": 200 if found else 404}})
                continue
            source = lines.pop(0) if lines else None
            error = self.check_source(index, doc_id, source)
            if error is None and op == "create" and doc_id in index.docs:
                error = (409, {"type": "version_conflict_engine_exception",
                               "reason": f"[{doc_id}]: version conflict, document already exists"})
            if error is not None:
                items.append({op: {"_index": name, "_id": doc_id, "status": error[0], "error": error[1]}})
                continue
            existed = doc_id in index.docs
            index.docs[doc_id] = dict(source or {})
            index.version += 1
            items.append({op: {"_index": name, "_id": doc_id, "_version": index.version,
                               "result": "updated" if existed else "created", "status": 200 if existed else 201}})
        return Reply(200, {"took": 1, "errors": any("error" in next(iter(i.values())) for i in items),
                           "items": items})

    def check_source(self, index: EsIndex, doc_id: str, source: Any) -> Optional[tuple[int, dict[str, Any]]]:
        if not isinstance(source, dict):
            return 400, {"type": "mapper_parsing_exception", "reason": "failed to parse: not an object"}
        for fname, value in source.items():
            spec = index.mappings.get("properties", {}).get(fname)
            if spec is None:
                continue
            if spec.get("type") in ("dense_vector", "knn_vector"):
                dims = self.dims(spec)
                if not isinstance(value, list) or len(value) != dims:
                    return 400, {"type": "mapper_parsing_exception", "reason": (
                        f"The [{spec['type']}] field [{fname}] in doc [{doc_id}] has a different number of "
                        f"dimensions [{len(value) if isinstance(value, list) else 0}] than defined in the "
                        f"mapping [{dims}]")}
                if self.similarity(spec) in ("cosine", "cosinesimil") and not any(value):
                    return 400, {"type": "mapper_parsing_exception",
                                 "reason": f"The [cosine] similarity does not support vectors with zero magnitude "
                                           f"(doc [{doc_id}])"}
            elif spec.get("type") == "keyword" and not isinstance(value, str):
                return 400, {"type": "mapper_parsing_exception", "reason": f"failed to parse field [{fname}]"}
        return None

    # ---------------------------------------------------------------- queries

    def matches(self, query: Any, doc: dict[str, Any]) -> bool:
        """term / terms / match_all / bool (filter, must, must_not) over the documents' fields."""
        if isinstance(query, list):
            return all(self.matches(q, doc) for q in query)
        if not isinstance(query, dict) or len(query) != 1:
            raise bad("parsing_exception", f"malformed query [{query}]")
        kind, spec = next(iter(query.items()))
        if kind == "match_all":
            return True
        if kind == "term":
            (fname, value), = spec.items()
            value = value.get("value") if isinstance(value, dict) else value
            return doc.get(fname) == value
        if kind == "terms":
            (fname, values), = spec.items()
            return doc.get(fname) in values
        if kind == "bool":
            if set(spec) - {"filter", "must", "must_not", "should"}:
                raise bad("parsing_exception", f"[bool] query does not support {sorted(spec)}")
            ok = all(self.matches(spec[key], doc) for key in ("filter", "must") if key in spec)
            return ok and not any(self.matches(q, doc) for q in _listed(spec.get("must_not", [])))
        raise bad("parsing_exception", f"unknown query [{kind}]")

    def knn(self, index: EsIndex, fname: Any, vector: Any, k: Any, where: Any) -> list[tuple[str, float]]:
        spec = self.vector_field(index, fname) if isinstance(fname, str) else None
        if spec is None:
            raise bad("illegal_argument_exception", f"field [{fname}] does not exist in the mapping or is not a "
                      f"{'knn_vector' if self.opensearch else 'dense_vector'} field")
        if not isinstance(vector, list) or len(vector) != self.dims(spec):
            raise bad("illegal_argument_exception", f"the query vector has a different dimension "
                      f"[{len(vector) if isinstance(vector, list) else 0}] than the index vectors [{self.dims(spec)}]")
        if not isinstance(k, int) or isinstance(k, bool) or not 1 <= k <= 10_000:
            raise bad("illegal_argument_exception", f"[k] must be between 1 and 10000, got [{k}]")
        if self.similarity(spec) not in ("cosine", "cosinesimil"):
            raise bad("illegal_argument_exception", "this fake scores cosine only")
        pool = [(doc_id, doc) for doc_id, doc in index.docs.items() if isinstance(doc.get(fname), list)
                and (where is None or self.matches(where, doc))]  # the filter first: k hits of the filter
        scored = sorted(((doc_id, cosine(vector, doc[fname])) for doc_id, doc in pool), key=lambda t: (-t[1], t[0]))
        return scored[:k]

    def search(self, name: str, rec: Recorded) -> Reply:
        index, body = self.indices[name], rec.body or {}
        if not isinstance(body, dict):
            raise bad("parse_exception", "request body is required")
        allowed = {"query", "size", "from", "_source"} | (set() if self.opensearch else {"knn"})
        unknown = set(body) - allowed
        if unknown:
            raise bad("parsing_exception", f"Unknown key for a START_OBJECT in [{sorted(unknown)[0]}].")
        if "knn" in body:
            knn = body["knn"]
            if not isinstance(knn, dict) or set(knn) - {"field", "query_vector", "k", "num_candidates", "filter"}:
                raise bad("x_content_parse_exception", f"[knn] unknown field in {sorted(knn)}")
            k, candidates = knn.get("k"), knn.get("num_candidates")
            if not isinstance(candidates, int) or candidates > 10_000:
                raise bad("illegal_argument_exception", "[num_candidates] cannot exceed [10000]")
            if isinstance(k, int) and candidates < k:
                raise bad("illegal_argument_exception", "[num_candidates] cannot be less than [k]")
            hits = self.knn(index, knn.get("field"), knn.get("query_vector"), k, knn.get("filter"))
            if "query" in body:
                raise bad("illegal_argument_exception", "this fake does not combine knn with a query")
        elif isinstance(body.get("query"), dict) and "knn" in body["query"]:
            if not self.opensearch:
                raise bad("parsing_exception", "[knn] query needs query_vector (an 8.12+ form this fake does not "
                          "speak)")
            (fname, spec), = body["query"]["knn"].items()
            if not isinstance(spec, dict) or set(spec) - {"vector", "k", "filter"}:
                raise bad("parsing_exception", f"[knn] unknown field in {sorted(spec)}")
            field_spec = self.vector_field(index, fname) or {}
            if "filter" in spec and (field_spec.get("method") or {}).get("engine") not in ("lucene", "faiss"):
                raise bad("illegal_argument_exception", "Engine [nmslib] does not support filters")
            hits = self.knn(index, fname, spec.get("vector"), spec.get("k"), spec.get("filter"))
        else:
            query = body.get("query", {"match_all": {}})
            hits = [(doc_id, 0.0) for doc_id, doc in index.docs.items() if self.matches(query, doc)]
        start, size = int(body.get("from", 0)), int(body.get("size", 10))
        shown = hits[start:start + size]
        wanted = body.get("_source", True)

        def source(doc: dict[str, Any]) -> Any:
            if wanted is False:
                return None
            return {k: v for k, v in doc.items() if wanted is True or k in _listed(wanted)}
        rows = []
        for doc_id, cos in shown:
            row: dict[str, Any] = {"_index": name, "_id": doc_id, "_score": (1.0 + cos) / 2.0}
            if wanted is not False:
                row["_source"] = source(index.docs[doc_id])
            rows.append(row)
        return Reply(200, {"took": 1, "timed_out": False,
                           "_shards": {"total": 1, "successful": 1, "skipped": 0, "failed": 0},
                           "hits": {"total": {"value": len(hits), "relation": "eq"},
                                    "max_score": rows[0]["_score"] if rows else None, "hits": rows}})

    def delete_by_query(self, name: str, rec: Recorded) -> Reply:
        index, body = self.indices[name], rec.body
        if not isinstance(body, dict) or "query" not in body:
            raise bad("action_request_validation_exception", "Validation Failed: 1: query is missing;")
        if rec.query.get("conflicts", "abort") not in ("abort", "proceed"):
            raise bad("illegal_argument_exception", "conflicts may only be \"proceed\" or \"abort\"")
        gone = [doc_id for doc_id, doc in index.docs.items() if self.matches(body["query"], doc)]
        for doc_id in gone:
            del index.docs[doc_id]
        return Reply(200, {"took": 1, "timed_out": False, "total": len(gone), "deleted": len(gone), "batches": 1,
                           "version_conflicts": 0, "noops": 0, "failures": []})

    def count(self, name: str, rec: Recorded) -> Reply:
        index, query = self.indices[name], (rec.body or {}).get("query", {"match_all": {}})
        return Reply(200, {"count": sum(self.matches(query, d) for d in index.docs.values()),
                           "_shards": {"total": 1, "successful": 1, "skipped": 0, "failed": 0}})


def _listed(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


# ====================================================================== Azure AI Search

def az_error(status: int, message: str, code: str = "") -> Reply:
    return Reply(status, {"error": {"code": code, "message": message}})


def az_bad(message: str) -> BadRequest:
    return BadRequest(az_error(400, message))


AZ_INDEX_NAME = re.compile(r"[a-z0-9][a-z0-9-]{0,126}[a-z0-9]")
AZ_KEY = re.compile(r"[A-Za-z0-9\-=][A-Za-z0-9_\-=]*")
AZ_TYPES = ("Edm.String", "Edm.Int32", "Edm.Int64", "Edm.Double", "Edm.Boolean", "Edm.DateTimeOffset",
            "Collection(Edm.Single)", "Collection(Edm.Half)", "Collection(Edm.String)")
ODATA_CLAUSE = re.compile(r"\s*([A-Za-z][A-Za-z0-9_]*)\s+eq\s+'((?:[^']|'')*)'\s*")


@dataclass
class AzIndex:
    definition: dict[str, Any]
    docs: dict[str, dict[str, Any]] = field(default_factory=dict)

    @property
    def fields(self) -> dict[str, dict[str, Any]]:
        return {f["name"]: f for f in self.definition["fields"]}

    @property
    def key(self) -> str:
        return next(f["name"] for f in self.definition["fields"] if f.get("key"))


class FakeAzureSearch(_Server):
    def __init__(self, api_key: str = AZURE_API_KEY, service: str = "fake-search"):
        self.api_key, self.service = api_key, service
        self.indexes: dict[str, AzIndex] = {}
        super().__init__()

    def answer(self, rec: Recorded) -> Reply:
        if "api-key" not in rec.headers:
            return Reply(401, None)
        if rec.headers["api-key"] != self.api_key:
            return Reply(403, None)
        if rec.query.get("api-version") != AZURE_API_VERSION:
            return az_error(400, "Invalid or missing api-version query string parameter.")
        parts = [p for p in rec.path.split("/") if p]
        if len(parts) < 2 or parts[0] != "indexes":
            return az_error(404, f"Resource {rec.path} not found.")
        name, action = parts[1], "/".join(parts[2:])
        if rec.method == "PUT" and action == "":
            return self.put_index(name, rec.body)
        if name not in self.indexes:
            return az_error(404, f"No index with the name '{name}' was found in the service '{self.service}'.")
        index = self.indexes[name]
        if action == "" and rec.method == "GET":
            return Reply(200, index.definition)
        if action == "" and rec.method == "DELETE":
            del self.indexes[name]
            return Reply(204, None)
        if action == "docs/index" and rec.method == "POST":
            return self.index_docs(index, rec.body)
        if action == "docs/search" and rec.method == "POST":
            return self.search(name, index, rec.body)
        if action == "docs/$count" and rec.method == "GET":
            return Reply(200, str(len(index.docs)))
        return az_error(404, f"Resource {rec.path} not found.")

    # ---------------------------------------------------------------- indexes

    def put_index(self, name: str, body: Any) -> Reply:
        if not isinstance(body, dict) or body.get("name") != name:
            raise az_bad("The index name in the request body must match the index name in the URL.")
        if not AZ_INDEX_NAME.fullmatch(name):
            raise az_bad(f"Invalid index name '{name}': only lowercase letters, digits or dashes, not starting or "
                         "ending with a dash, at most 128 characters.")
        fields = body.get("fields")
        if not isinstance(fields, list) or not fields:
            raise az_bad("The request is invalid. Details: index.fields : An index must have at least one field.")
        keys = [f for f in fields if f.get("key")]
        if len(keys) != 1 or keys[0].get("type") != "Edm.String":
            raise az_bad("The request is invalid. Details: index.fields : one key field of type Edm.String.")
        search = body.get("vectorSearch") or {}
        algorithms = {a.get("name"): a for a in search.get("algorithms", [])}
        compressions = {c.get("name"): c for c in search.get("compressions", [])}
        profiles = {p.get("name"): p for p in search.get("profiles", [])}
        for a in algorithms.values():
            if a.get("kind") not in ("hnsw", "exhaustiveKnn"):
                raise az_bad(f"Unknown vector search algorithm kind '{a.get('kind')}'.")
            params = a.get("hnswParameters") or a.get("exhaustiveKnnParameters") or {}
            if params.get("metric", "cosine") != "cosine":
                raise az_bad("This fake scores the cosine metric only.")
        for c in compressions.values():
            if c.get("kind") not in ("scalarQuantization", "binaryQuantization"):
                raise az_bad(f"Unknown vector compression kind '{c.get('kind')}'.")
        for p in profiles.values():
            if p.get("algorithm") not in algorithms or (p.get("compression") and p["compression"] not in compressions):
                raise az_bad(f"Vector profile '{p.get('name')}' names an algorithm or compression that is not "
                             "defined.")
        for f in fields:
            if f.get("type") not in AZ_TYPES or not re.fullmatch(r"[A-Za-z][A-Za-z0-9_]*", str(f.get("name"))):
                raise az_bad(f"Invalid field '{f.get('name')}' of type '{f.get('type')}'.")
            if f["type"] in ("Collection(Edm.Single)", "Collection(Edm.Half)"):
                dims = f.get("dimensions")
                if not isinstance(dims, int) or not 2 <= dims <= 3072:
                    raise az_bad(f"Vector field '{f['name']}' must have 'dimensions' between 2 and 3072.")
                if f.get("vectorSearchProfile") not in profiles or f.get("searchable") is False:
                    raise az_bad(f"Vector field '{f['name']}' must be searchable with a defined vectorSearchProfile.")
                if f.get("filterable") or f.get("sortable") or f.get("facetable"):
                    raise az_bad(f"Vector field '{f['name']}' cannot be filterable, sortable or facetable.")
        existing = self.indexes.get(name)
        if existing is not None:
            if existing.fields != {f["name"]: f for f in fields}:
                raise az_bad("Existing field(s) cannot be changed; delete and recreate the index.")
            existing.definition = body
            return Reply(204, None)
        self.indexes[name] = AzIndex(dict(body))
        return Reply(201, body)

    # ---------------------------------------------------------------- documents

    def index_docs(self, index: AzIndex, body: Any) -> Reply:
        if not isinstance(body, dict) or not isinstance(body.get("value"), list):
            raise az_bad("The request is invalid. Details: value : the batch must hold a 'value' array.")
        if len(body["value"]) > 1000:
            return az_error(413, "The request is too large: at most 1000 documents per batch.")
        fields, key_name, results, any_failed = index.fields, index.key, [], False
        for doc in body["value"]:
            action = doc.get("@search.action", "upload")
            if action not in ("upload", "merge", "mergeOrUpload", "delete"):
                raise az_bad(f"Invalid @search.action '{action}'.")
            for fname, value in doc.items():
                if fname == "@search.action":
                    continue
                spec = fields.get(fname)
                if spec is None:
                    raise az_bad(f"The request is invalid. Details: The property '{fname}' does not exist on type "
                                 "'search.documentFields'. Make sure to only use property names that are defined "
                                 "by the type.")
                if "dimensions" in spec and value is not None and (not isinstance(value, list)
                                                                    or len(value) != spec["dimensions"]):
                    raise az_bad(f"The vector field '{fname}' must have dimension {spec['dimensions']}, "
                                 f"not {len(value) if isinstance(value, list) else 0}.")
                if spec["type"] == "Edm.String" and value is not None and not isinstance(value, str):
                    raise az_bad(f"Cannot convert the literal '{value}' to the expected type 'Edm.String'.")
            key = doc.get(key_name)
            if not isinstance(key, str) or not AZ_KEY.fullmatch(key) or len(key) > 1024:
                results.append({"key": key, "status": False, "statusCode": 400, "errorMessage": (
                    f"Invalid document key: '{key}'. Keys can only contain letters, digits, underscore (_), dash "
                    "(-), or equal sign (=), and cannot start with an underscore.")})
                any_failed = True
                continue
            values = {k: v for k, v in doc.items() if k != "@search.action"}
            status = 200
            if action == "delete":
                index.docs.pop(key, None)
            elif action == "upload" or (action == "mergeOrUpload" and key not in index.docs):
                status = 200 if key in index.docs else 201
                index.docs[key] = values
            elif key not in index.docs:  # merge
                results.append({"key": key, "status": False, "statusCode": 404, "errorMessage": "Document not found."})
                any_failed = True
                continue
            else:
                index.docs[key] = {**index.docs[key], **values}
            results.append({"key": key, "status": True, "statusCode": status, "errorMessage": None})
        return Reply(207 if any_failed else 200, {"value": results})

    # ---------------------------------------------------------------- queries

    def parse_filter(self, index: AzIndex, text: Any) -> list[tuple[str, str]]:
        """`field eq 'literal'` clauses joined by `and` (a quote inside a literal is doubled)."""
        if text is None:
            return []
        if not isinstance(text, str):
            raise az_bad("Invalid expression: the filter must be a string.")
        clauses, rest = [], text
        while True:
            m = ODATA_CLAUSE.match(rest)
            if not m:
                raise az_bad(f"Invalid expression: Syntax error at position {len(text) - len(rest)} in '{text}'.")
            fname, literal = m.group(1), m.group(2).replace("''", "'")
            spec = index.fields.get(fname)
            if spec is None:
                raise az_bad(f"Invalid expression: Could not find a property named '{fname}' on type "
                             "'search.document'.")
            if not spec.get("filterable", True):
                raise az_bad(f"Invalid expression: The field '{fname}' is not filterable. Only filterable fields "
                             "can be used in filter expressions.")
            clauses.append((fname, literal))
            rest = rest[m.end():]
            if not rest:
                return clauses
            if not rest.startswith("and "):
                raise az_bad(f"Invalid expression: Syntax error at position {len(text) - len(rest)} in '{text}'.")
            rest = rest[4:]

    def search(self, name: str, index: AzIndex, body: Any) -> Reply:
        if not isinstance(body, dict):
            raise az_bad("The request is invalid: a JSON body is required.")
        allowed = {"search", "filter", "select", "top", "skip", "count", "vectorQueries", "vectorFilterMode",
                   "orderby", "searchFields", "queryType", "searchMode"}
        unknown = set(body) - allowed
        if unknown:
            raise az_bad(f"Invalid request: the parameter '{sorted(unknown)[0]}' is not recognized.")
        top, skip = body.get("top", 50), body.get("skip", 0)
        if not isinstance(top, int) or not 0 <= top <= 1000 or not isinstance(skip, int) or not 0 <= skip <= 100000:
            raise az_bad("Invalid request: top must be within [0, 1000] and skip within [0, 100000].")
        clauses = self.parse_filter(index, body.get("filter"))
        mode = body.get("vectorFilterMode", "preFilter")
        if mode not in ("preFilter", "postFilter"):
            raise az_bad(f"Invalid vectorFilterMode '{mode}'.")

        def passes(doc: dict[str, Any]) -> bool:
            return all(doc.get(f) == v for f, v in clauses)
        queries = body.get("vectorQueries") or []
        if len(queries) > 1:
            raise az_bad("This fake answers one vector query at a time.")
        if queries:
            q = queries[0]
            spec = index.fields.get(q.get("fields", ""))
            if q.get("kind") != "vector" or spec is None or "dimensions" not in spec:
                raise az_bad("Invalid vector query: kind must be 'vector' and 'fields' a vector field.")
            vector, k = q.get("vector"), q.get("k", 50)
            if not isinstance(vector, list) or len(vector) != spec["dimensions"]:
                raise az_bad(f"The vector query's dimension {len(vector) if isinstance(vector, list) else 0} does "
                             f"not match the field's {spec['dimensions']}.")
            if not isinstance(k, int) or k < 1:
                raise az_bad("Invalid vector query: k must be a positive integer.")
            pool = [(key, doc) for key, doc in index.docs.items() if isinstance(doc.get(spec["name"]), list)
                    and (mode == "postFilter" or passes(doc))]
            scored = sorted(((key, cosine(vector, doc[spec["name"]])) for key, doc in pool),
                            key=lambda t: (-t[1], t[0]))[:k]
            if mode == "postFilter":
                scored = [(key, cos) for key, cos in scored if passes(index.docs[key])]
            hits = [(key, 1.0 / (1.0 + (1.0 - cos))) for key, cos in scored]
        else:
            if body.get("search", "*") != "*":
                raise az_bad("This fake answers search='*' only.")
            hits = [(key, 1.0) for key, doc in index.docs.items() if passes(doc)]
        select = [s.strip() for s in str(body.get("select", "*")).split(",")]
        for s in select:
            if s != "*" and not index.fields.get(s, {}).get("retrievable", True):
                raise az_bad(f"Invalid expression: The field '{s}' is not retrievable.")
        rows = []
        for key, score in hits[skip:skip + top]:
            doc = index.docs[key]
            shown = {f: doc.get(f) for f, spec in index.fields.items()
                     if spec.get("retrievable", True) and ("*" in select or f in select)}
            rows.append({"@search.score": score, **shown})
        answer: dict[str, Any] = {"@odata.context": f"{self.url}/indexes('{name}')/$metadata#docs(*)", "value": rows}
        if body.get("count"):
            answer["@odata.count"] = len(hits)
        return Reply(200, answer)


# ====================================================================== fixtures

@pytest.fixture
def fake_elasticsearch():
    server = FakeElasticsearch("elasticsearch")
    yield server
    server.close()


@pytest.fixture
def fake_opensearch():
    server = FakeElasticsearch("opensearch", api_key=None, user="admin", password="Str0ng!pass")
    yield server
    server.close()


@pytest.fixture
def fake_azure_search():
    server = FakeAzureSearch()
    yield server
    server.close()
