"""Real local HTTP servers speaking the Pinecone and Weaviate APIs that memlane's engines call, holding the
vectors in memory and searching them for real (cosine, the filter applied inside the search).

Pinecone (API version 2025-04; every call needs `Api-Key`, and an `X-Pinecone-API-Version` it knows if sent):
  control plane   GET /indexes, GET|DELETE /indexes/{name}, POST /indexes {name, dimension, metric, spec}
                  (a new index is "Initializing" until described `ready_after` times, as a real one takes a while)
  each index      its own server (the host the control plane names, without a scheme, as Pinecone does):
                  POST /vectors/upsert {vectors, namespace?}, POST /query {vector, topK, filter?, namespace?},
                  POST /vectors/delete {ids | deleteAll | filter, namespace?} (404 on a namespace that holds
                  nothing: an emptied namespace is dropped), POST /describe_index_stats
Weaviate (auto-schema off: only declared properties are accepted; a bearer key when `api_key` is set):
  GET|DELETE /v1/schema/{class}, POST /v1/schema, POST /v1/batch/objects (200 with each object's own errors),
  DELETE /v1/batch/objects {match: {class, where}} (at most `query_max` per call, as QUERY_MAXIMUM_RESULTS),
  DELETE /v1/objects/{class}/{uuid}, GET /v1/objects?class=&limit=&include=vector, POST /v1/graphql with
  `Get` (nearVector, where, limit; properties and _additional {id distance}) and `Aggregate { meta { count } }`
  (GraphQL errors come back in a 200, as Weaviate sends them).

Requests are checked as the services check them and answered 400/401/404/422 otherwise. Every request is
recorded (`requests`); `fail(Reply(...), path=...)` answers the next requests whose path starts with `path`
with the given replies, in order.
"""
from __future__ import annotations

import json
import re
import threading
import uuid
from collections import deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from local_http import LocalHTTPServer, QuickHandler
from typing import Any, Callable, Optional
from urllib.parse import parse_qs, unquote, urlsplit

import numpy as np
import pytest

PINECONE_KEY = "pc-test-key"
WEAVIATE_KEY = "wv-test-key"
PINECONE_VERSIONS = {"2024-07", "2024-10", "2025-01", "2025-04", "2025-10"}


@dataclass
class Reply:
    status: int
    body: Any = None  # dict/list -> JSON, bytes as they are, None -> empty
    headers: dict[str, str] = field(default_factory=dict)


@dataclass
class Recorded:
    server: str  # "control", an index name, or "weaviate"
    method: str
    path: str
    headers: dict[str, str]
    json: Any


def _HTTP(answer: Callable[[str, str, dict[str, str], Any], Reply]) -> LocalHTTPServer:
    """One server on 127.0.0.1 handing every request to `answer`."""
    return LocalHTTPServer(_handler(answer))


def _handler(answer: Callable[[str, str, dict[str, str], Any], Reply]) -> type[BaseHTTPRequestHandler]:
    class Handler(QuickHandler):
        def _any(self) -> None:
            raw = self.read_body()
            try:
                body = json.loads(raw) if raw else None
            except ValueError:
                body = ValueError  # unreadable JSON: the handlers answer 400
            reply = answer(self.command, self.path, self.header_map(), body)
            payload = b"" if reply.body is None else (
                reply.body if isinstance(reply.body, bytes) else json.dumps(reply.body).encode())
            self.send(reply.status, reply.headers, payload, "application/json" if payload else None)

        do_GET = do_POST = do_DELETE = do_PUT = do_PATCH = _any

    return Handler


class _Fake:
    """What both fakes share: the record of requests and the scripted failures."""

    def __init__(self) -> None:
        self.requests: list[Recorded] = []
        self._script: deque[tuple[str, Reply]] = deque()
        self._lock = threading.RLock()

    def fail(self, *replies: Reply, path: str = "") -> None:
        self._script.extend((path, r) for r in replies)

    def _record(self, rec: Recorded) -> Optional[Reply]:
        """Records the request; the scripted reply that answers it, if any."""
        with self._lock:
            self.requests.append(rec)
            if self._script and rec.path.startswith(self._script[0][0]):
                return self._script.popleft()[1]
        return None

    def sent(self, path: str, server: Optional[str] = None) -> list[Recorded]:
        return [r for r in self.requests if r.path.startswith(path) and server in (None, r.server)]


def cosine(a: np.ndarray, b: np.ndarray) -> float:
    na, nb = float(np.linalg.norm(a)), float(np.linalg.norm(b))
    return float(np.dot(a, b)) / (na * nb) if na and nb else 0.0


def _numbers(values: Any) -> bool:
    return isinstance(values, list) and bool(values) and all(
        isinstance(x, (int, float)) and not isinstance(x, bool) for x in values)


# ====================================================================== Pinecone

class PineconeError(Exception):
    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status


PC_OPS = {"$eq", "$ne", "$gt", "$gte", "$lt", "$lte", "$in", "$nin", "$exists"}


def pinecone_matches(flt: dict[str, Any], metadata: dict[str, Any]) -> bool:
    """Pinecone's metadata filter language (a bare value is $eq; several keys are ANDed)."""
    if not isinstance(flt, dict):
        raise PineconeError(400, f"filter must be an object, not {flt!r}")
    for key, cond in flt.items():
        if key in ("$and", "$or"):
            if not isinstance(cond, list) or not cond:
                raise PineconeError(400, f"{key} needs a non-empty list")
            results = [pinecone_matches(c, metadata) for c in cond]
            if not (all(results) if key == "$and" else any(results)):
                return False
            continue
        if key.startswith("$"):
            raise PineconeError(400, f"unknown filter operator {key}")
        if not isinstance(cond, dict):
            cond = {"$eq": cond}
        for op, value in cond.items():
            if op not in PC_OPS:
                raise PineconeError(400, f"unknown filter operator {op}")
            if not _compare(op, metadata, key, value):
                return False
    return True


def _compare(op: str, metadata: dict[str, Any], key: str, value: Any) -> bool:
    have = metadata.get(key)
    if op == "$exists":
        return (key in metadata) == bool(value)
    if op in ("$eq", "$ne"):
        return (have == value) == (op == "$eq")
    if op in ("$in", "$nin"):
        return (have in value) == (op == "$in")
    if have is None:
        return False
    return {"$gt": have > value, "$gte": have >= value, "$lt": have < value, "$lte": have <= value}[op]


class PineconeIndex:
    def __init__(self, fake: "FakePinecone", name: str, dimension: int, metric: str, spec: dict[str, Any]):
        self.fake, self.name, self.dimension, self.metric, self.spec = fake, name, dimension, metric, spec
        self.namespaces: dict[str, dict[str, tuple[np.ndarray, dict[str, Any]]]] = {}
        self.describes = 0
        self.http = _HTTP(self.answer)

    def model(self) -> dict[str, Any]:
        ready = self.describes >= self.fake.ready_after
        return {"name": self.name, "dimension": self.dimension, "metric": self.metric, "host": self.http.host,
                "spec": self.spec, "vector_type": "dense", "deletion_protection": "disabled", "tags": None,
                "status": {"ready": ready, "state": "Ready" if ready else "Initializing"}}

    def answer(self, method: str, path: str, headers: dict[str, str], body: Any) -> Reply:
        rec = Recorded(self.name, method, path, headers, body)
        scripted = self.fake._record(rec)
        if scripted is not None:
            return scripted
        refused = self.fake.refuse(headers)
        if refused is not None:
            return refused
        if body is ValueError or (method == "POST" and not isinstance(body, dict)):
            return Reply(400, {"code": 3, "message": "request body is not a JSON object", "details": []})
        routes = {("POST", "/vectors/upsert"): self.upsert, ("POST", "/query"): self.query,
                  ("POST", "/vectors/delete"): self.delete, ("POST", "/describe_index_stats"): self.stats,
                  ("GET", "/describe_index_stats"): self.stats}
        route = routes.get((method, urlsplit(path).path))
        if route is None:
            return Reply(404, {"code": 5, "message": f"no route {method} {path}", "details": []})
        try:
            with self.fake._lock:
                return Reply(200, route(body or {}))
        except PineconeError as exc:
            return Reply(exc.status, {"code": 3 if exc.status == 400 else 5, "message": str(exc), "details": []})

    def _vector(self, values: Any) -> np.ndarray:
        if not _numbers(values):
            raise PineconeError(400, "values must be a non-empty list of numbers")
        if len(values) != self.dimension:
            raise PineconeError(400, f"Vector dimension {len(values)} does not match the dimension of the index "
                                     f"{self.dimension}")
        return np.asarray(values, dtype=np.float32)

    @staticmethod
    def _namespace(body: dict[str, Any]) -> str:
        ns = body.get("namespace")
        if ns is not None and not isinstance(ns, str):
            raise PineconeError(400, "namespace must be a string")
        return ns or "__default__"

    def upsert(self, body: dict[str, Any]) -> dict[str, Any]:
        vectors = body.get("vectors")
        if not isinstance(vectors, list) or not 1 <= len(vectors) <= 1000:
            raise PineconeError(400, "vectors must be a list of 1 to 1000 records")
        rows = []
        for v in vectors:
            if not isinstance(v, dict) or not isinstance(v.get("id"), str) or not 1 <= len(v["id"]) <= 512:
                raise PineconeError(400, f"each vector needs a string id of 1-512 characters: {v!r}")
            metadata = v.get("metadata") or {}
            if not isinstance(metadata, dict) or not all(
                    isinstance(x, (str, int, float, bool)) or (isinstance(x, list) and all(isinstance(s, str)
                                                                                         for s in x))
                    for x in metadata.values()):
                raise PineconeError(400, f"metadata values must be strings, numbers, booleans or lists of "
                                         f"strings: {metadata!r}")
            rows.append((v["id"], self._vector(v.get("values")), metadata))
        space = self.namespaces.setdefault(self._namespace(body), {})
        for vid, vec, metadata in rows:
            space[vid] = (vec, metadata)
        return {"upsertedCount": len(rows)}

    def query(self, body: dict[str, Any]) -> dict[str, Any]:
        top_k = body.get("topK")
        if not isinstance(top_k, int) or isinstance(top_k, bool) or not 1 <= top_k <= 10000:
            raise PineconeError(400, "topK must be an integer from 1 to 10000")
        if ("vector" in body) == ("id" in body):
            raise PineconeError(400, "exactly one of vector or id must be provided")
        space = self.namespaces.get(self._namespace(body), {})
        query = self._vector(body["vector"]) if "vector" in body else space[body["id"]][0]
        flt = body.get("filter")
        scored = []
        for vid, (vec, metadata) in space.items():
            if flt is not None and not pinecone_matches(flt, metadata):  # the filter inside the search
                continue
            if self.metric == "cosine":
                score = cosine(query, vec)
            elif self.metric == "dotproduct":
                score = float(np.dot(query, vec))
            else:
                score = float(np.sum((query - vec) ** 2))
            scored.append((score, vid, metadata))
        scored.sort(key=lambda t: (t[0] if self.metric == "euclidean" else -t[0], t[1]))
        matches = [{"id": vid, "score": score, "values": [],
                    **({"metadata": metadata} if body.get("includeMetadata") else {})}
                   for score, vid, metadata in scored[:top_k]]
        return {"matches": matches, "namespace": body.get("namespace") or "", "usage": {"readUnits": 1}}

    def delete(self, body: dict[str, Any]) -> dict[str, Any]:
        given = [k for k in ("ids", "filter") if body.get(k) is not None] + (["deleteAll"] if body.get("deleteAll")
                                                                             else [])
        if len(given) != 1:
            raise PineconeError(400, "exactly one of ids, deleteAll or filter must be provided")
        ns = self._namespace(body)
        if ns not in self.namespaces:
            raise PineconeError(404, "Namespace not found")
        space = self.namespaces[ns]
        if given == ["ids"]:
            ids = body["ids"]
            if not isinstance(ids, list) or not 1 <= len(ids) <= 1000 or not all(isinstance(i, str) for i in ids):
                raise PineconeError(400, "ids must be a list of 1 to 1000 strings")
            for i in ids:
                space.pop(i, None)
        elif given == ["filter"]:
            for vid in [v for v, (_, metadata) in space.items() if pinecone_matches(body["filter"], metadata)]:
                del space[vid]
        else:
            space.clear()
        if not space:
            del self.namespaces[ns]
        return {}

    def stats(self, body: dict[str, Any]) -> dict[str, Any]:
        counts = {ns: len(space) for ns, space in self.namespaces.items() if space}
        return {"namespaces": {ns: {"vectorCount": n} for ns, n in counts.items()}, "dimension": self.dimension,
                "indexFullness": 0.0, "totalVectorCount": sum(counts.values()), "metric": self.metric,
                "vectorType": "dense"}

    def vectors(self, namespace: str = "__default__") -> dict[str, tuple[np.ndarray, dict[str, Any]]]:
        return self.namespaces.get(namespace, {})


class FakePinecone(_Fake):
    """The control plane at `url`; each index it creates listens on a port of its own."""

    def __init__(self, api_key: str = PINECONE_KEY, ready_after: int = 1):
        super().__init__()
        self.api_key, self.ready_after = api_key, ready_after
        self.indexes: dict[str, PineconeIndex] = {}
        self.control = _HTTP(self.answer)

    @property
    def url(self) -> str:
        return f"http://{self.control.host}"

    def close(self) -> None:
        for index in self.indexes.values():
            index.http.close()
        self.control.close()

    def refuse(self, headers: dict[str, str]) -> Optional[Reply]:
        if headers.get("api-key") != self.api_key:
            return Reply(401, {"error": {"code": "UNAUTHENTICATED", "message": "Invalid API Key"}, "status": 401})
        version = headers.get("x-pinecone-api-version")
        if version is not None and version not in PINECONE_VERSIONS:
            return Reply(400, {"error": {"code": "INVALID_ARGUMENT", "message": f"unknown API version {version}"},
                               "status": 400})
        return None

    @staticmethod
    def _error(status: int, code: str, message: str) -> Reply:
        return Reply(status, {"error": {"code": code, "message": message}, "status": status})

    def answer(self, method: str, path: str, headers: dict[str, str], body: Any) -> Reply:
        scripted = self._record(Recorded("control", method, path, headers, body))
        if scripted is not None:
            return scripted
        refused = self.refuse(headers)
        if refused is not None:
            return refused
        parts = [unquote(p) for p in urlsplit(path).path.strip("/").split("/")]
        with self._lock:
            if parts == ["indexes"] and method == "GET":
                return Reply(200, {"indexes": [i.model() for i in self.indexes.values()]})
            if parts == ["indexes"] and method == "POST":
                return self.create(body)
            if len(parts) == 2 and parts[0] == "indexes" and method in ("GET", "DELETE"):
                index = self.indexes.get(parts[1])
                if index is None:
                    return self._error(404, "NOT_FOUND", f"Resource {parts[1]} not found")
                if method == "DELETE":
                    del self.indexes[parts[1]]
                    index.http.close()
                    return Reply(202)
                index.describes += 1
                return Reply(200, index.model())
        return self._error(404, "NOT_FOUND", f"no route {method} {path}")

    def create(self, body: Any) -> Reply:
        if not isinstance(body, dict):
            return self._error(400, "INVALID_ARGUMENT", "body must be a JSON object")
        name, dimension, metric = body.get("name"), body.get("dimension"), body.get("metric", "cosine")
        spec = body.get("spec")
        problems = []
        if not isinstance(name, str) or not re.fullmatch(r"[a-z0-9](?:[a-z0-9-]{0,43}[a-z0-9])?", name):
            problems.append("name must be 1-45 lower-case alphanumeric characters or '-'")
        if not isinstance(dimension, int) or isinstance(dimension, bool) or not 1 <= dimension <= 20000:
            problems.append("dimension must be an integer from 1 to 20000")
        if metric not in ("cosine", "euclidean", "dotproduct"):
            problems.append("metric must be cosine, euclidean or dotproduct")
        if not isinstance(spec, dict) or len(spec) != 1 or not (
                isinstance(spec.get("serverless"), dict) and {"cloud", "region"} <= set(spec["serverless"])
                and spec["serverless"]["cloud"] in ("aws", "gcp", "azure")
                or isinstance(spec.get("pod"), dict) and {"environment", "pod_type"} <= set(spec["pod"])):
            problems.append("spec must be {serverless: {cloud, region}} or {pod: {environment, pod_type, ...}}")
        if problems:
            return self._error(400, "INVALID_ARGUMENT", "; ".join(problems))
        if name in self.indexes:
            return self._error(409, "ALREADY_EXISTS", f"Resource {name} already exists")
        index = self.indexes[name] = PineconeIndex(self, name, dimension, metric, spec)
        return Reply(201, index.model())


# ====================================================================== Weaviate

class GraphQLError(Exception):
    pass


TOKEN = re.compile(r'\s*(?:(?P<punct>[{}()\[\]:,])|(?P<name>[_A-Za-z][_0-9A-Za-z]*)|(?P<string>"(?:[^"\\]|\\.)*")'
                   r'|(?P<number>-?\d+(?:\.\d+)?(?:[eE][+-]?\d+)?))')


class Enum(str):
    """A GraphQL enum value (And, Equal...), told apart from a string."""


def parse_graphql(text: str) -> list[tuple[str, dict[str, Any], list]]:
    """The selection set of an anonymous query: [(field, arguments, selections)], recursively."""
    tokens: list[tuple[str, Any]] = []
    pos, text = 0, text.strip()
    while pos < len(text):
        m = TOKEN.match(text, pos)
        if not m or m.end() == pos:
            raise GraphQLError(f"Syntax Error: unexpected character at {pos}")
        pos = m.end()
        kind = m.lastgroup
        value = m.group(kind)  # type: ignore[arg-type]
        tokens.append((kind, json.loads(value) if kind in ("string", "number") else value))  # type: ignore[arg-type]
    at = [0]

    def peek() -> tuple[str, Any]:
        return tokens[at[0]] if at[0] < len(tokens) else ("end", None)

    def take(expected: Optional[str] = None) -> Any:
        kind, value = peek()
        if kind == "end" or (expected is not None and value != expected):
            raise GraphQLError(f"Syntax Error: expected {expected or 'a token'}, found {value!r}")
        at[0] += 1
        return value

    def comma() -> None:
        if peek() == ("punct", ","):
            take()

    def value() -> Any:
        kind, v = peek()
        if v == "{":
            take("{")
            out = {}
            while peek()[1] != "}":
                key = take()
                take(":")
                out[key] = value()
                comma()
            take("}")
            return out
        if v == "[":
            take("[")
            items = []
            while peek()[1] != "]":
                items.append(value())
                comma()
            take("]")
            return items
        take()
        if kind == "name":
            return {"true": True, "false": False, "null": None}.get(v, Enum(v))
        return v

    def selections() -> list:
        take("{")
        out = []
        while peek()[1] != "}":
            name, args, sub = take(), {}, []
            if peek()[1] == "(":
                take("(")
                while peek()[1] != ")":
                    key = take()
                    take(":")
                    args[key] = value()
                    comma()
                take(")")
            if peek()[1] == "{":
                sub = selections()
            out.append((name, args, sub))
            comma()
        take("}")
        return out

    if peek() == ("name", "query"):
        take()
    result = selections()
    if peek()[0] != "end":
        raise GraphQLError("Syntax Error: unexpected text after the query")
    return result


class WeaviateClass:
    def __init__(self, definition: dict[str, Any]):
        self.definition = definition
        self.properties = {p["name"]: p for p in definition.get("properties") or []}
        self.distance = (definition.get("vectorIndexConfig") or {}).get("distance", "cosine")
        self.objects: dict[str, dict[str, Any]] = {}
        self.dims: Optional[int] = None  # fixed by the first vector, as the HNSW index is

    def matches(self, where: Any, obj: dict[str, Any]) -> bool:
        if not isinstance(where, dict) or "operator" not in where:
            raise GraphQLError(f"invalid where filter {where!r}")
        op = str(where["operator"])
        if op in ("And", "Or"):
            operands = where.get("operands")
            if not isinstance(operands, list) or not operands:
                raise GraphQLError(f"operator {op} needs operands")
            results = [self.matches(o, obj) for o in operands]
            return all(results) if op == "And" else any(results)
        path = where.get("path")
        if not isinstance(path, list) or len(path) != 1:
            raise GraphQLError(f"invalid path {path!r}")
        key = path[0]
        if key != "id" and key not in self.properties:
            raise GraphQLError(f"no such prop with name '{key}' found in class '{self.definition['class']}' in "
                               "the schema")
        have = obj["id"] if key == "id" else obj["properties"].get(key)
        if op in ("Equal", "NotEqual"):
            wanted = where.get("valueText", where.get("valueString"))
            if wanted is None:
                raise GraphQLError(f"operator {op} on {key} needs valueText")
            return (have == wanted) == (op == "Equal")
        if op == "ContainsAny":
            wanted = where.get("valueTextArray")
            if not isinstance(wanted, list):
                raise GraphQLError("ContainsAny needs valueTextArray")
            return have in wanted
        raise GraphQLError(f"unsupported operator {op}")

    def distance_to(self, query: np.ndarray, vector: np.ndarray) -> float:
        if self.distance == "cosine":
            return 1.0 - cosine(query, vector)
        if self.distance == "dot":
            return -float(np.dot(query, vector))
        return float(np.sum((query - vector) ** 2))


class FakeWeaviate(_Fake):
    def __init__(self, api_key: Optional[str] = WEAVIATE_KEY, query_max: int = 10_000):
        super().__init__()
        self.api_key, self.query_max = api_key, query_max
        self.classes: dict[str, WeaviateClass] = {}
        self.http = _HTTP(self.answer)

    @property
    def url(self) -> str:
        return f"http://{self.http.host}"

    def close(self) -> None:
        self.http.close()

    @staticmethod
    def _error(status: int, message: str) -> Reply:
        return Reply(status, {"error": [{"message": message}]})

    def answer(self, method: str, path: str, headers: dict[str, str], body: Any) -> Reply:
        scripted = self._record(Recorded("weaviate", method, path, headers, body))
        if scripted is not None:
            return scripted
        if self.api_key and headers.get("authorization") != f"Bearer {self.api_key}":
            return Reply(401, {"code": 401, "message": "anonymous access not enabled, please provide an auth "
                                                       "scheme such as OIDC or API key"})
        if body is ValueError:
            return self._error(400, "request body is not JSON")
        url = urlsplit(path)
        parts = [unquote(p) for p in url.path.strip("/").split("/")]
        with self._lock:
            if parts[:2] == ["v1", "schema"]:
                return self.schema(method, parts[2:], body)
            if parts == ["v1", "batch", "objects"] and method == "POST":
                return self.batch(body)
            if parts == ["v1", "batch", "objects"] and method == "DELETE":
                return self.batch_delete(body)
            if parts == ["v1", "objects"] and method == "GET":
                return self.list_objects(parse_qs(url.query))
            if len(parts) == 4 and parts[:2] == ["v1", "objects"] and method == "DELETE":
                cls = self.classes.get(parts[2])
                if cls is None or cls.objects.pop(parts[3], None) is None:
                    return Reply(404)
                return Reply(204)
            if parts == ["v1", "graphql"] and method == "POST":
                return Reply(200, self.graphql(body))
        return self._error(404, f"no route {method} {path}")

    def schema(self, method: str, rest: list[str], body: Any) -> Reply:
        if not rest and method == "GET":
            return Reply(200, {"classes": [c.definition for c in self.classes.values()]})
        if not rest and method == "POST":
            if not isinstance(body, dict) or not isinstance(body.get("class"), str):
                return self._error(422, "class name is required")
            name = body["class"][:1].upper() + body["class"][1:]  # as Weaviate stores it
            if not re.fullmatch(r"[A-Z][_0-9A-Za-z]*", name):
                return self._error(422, f"'{body['class']}' is not a valid class name")
            if name in self.classes:
                return self._error(422, f'class name "{name}" already exists')
            if body.get("vectorizer", "none") != "none":
                return self._error(422, f"no module with name \"{body['vectorizer']}\" present")
            for prop in body.get("properties") or []:
                if not isinstance(prop, dict) or not re.fullmatch(r"[_A-Za-z][_0-9A-Za-z]*", str(prop.get("name"))) \
                        or not isinstance(prop.get("dataType"), list):
                    return self._error(422, f"invalid property {prop!r}")
            distance = (body.get("vectorIndexConfig") or {}).get("distance", "cosine")
            if distance not in ("cosine", "dot", "l2-squared"):
                return self._error(422, f"unsupported distance {distance!r}")
            definition = {**body, "class": name}
            self.classes[name] = WeaviateClass(definition)
            return Reply(200, definition)
        if len(rest) == 1 and method == "GET":
            cls = self.classes.get(rest[0])
            return Reply(200, cls.definition) if cls else Reply(404)
        if len(rest) == 1 and method == "DELETE":
            self.classes.pop(rest[0], None)
            return Reply(200)
        return self._error(404, "no such schema route")

    def batch(self, body: Any) -> Reply:
        if not isinstance(body, dict) or not isinstance(body.get("objects"), list):
            return self._error(422, "body must be {objects: [...]}")
        out = []
        for obj in body["objects"]:
            error = self._put(obj) if isinstance(obj, dict) else "object must be a JSON object"
            result = {"errors": {"error": [{"message": error}]}} if error else {}
            out.append({**(obj if isinstance(obj, dict) else {}), "result": result})
        return Reply(200, out)

    def _put(self, obj: dict[str, Any]) -> Optional[str]:
        """Writes one object (replacing one of the same id); the error message, if any."""
        cls = self.classes.get(str(obj.get("class")))
        if cls is None:
            return f"class {obj.get('class')!r} not present in schema"
        try:
            oid = str(uuid.UUID(str(obj.get("id"))))
        except ValueError:
            return f"invalid UUID {obj.get('id')!r}"
        vector = obj.get("vector")
        if not _numbers(vector):
            return "vectorizer none: a vector is required"
        if cls.dims is not None and len(vector) != cls.dims:
            return (f"new node has a vector with length {len(vector)}. Existing nodes have vectors with length "
                    f"{cls.dims}")
        properties = obj.get("properties") or {}
        for key, value in properties.items():
            prop = cls.properties.get(key)
            if prop is None:
                return f"no such prop with name '{key}' found in class '{cls.definition['class']}' in the schema"
            if prop["dataType"] == ["text"] and not isinstance(value, str):
                return f"invalid text property '{key}' on class '{cls.definition['class']}': not a string"
        cls.dims = len(vector)
        cls.objects[oid] = {"id": oid, "class": cls.definition["class"], "properties": dict(properties),
                            "vector": np.asarray(vector, dtype=np.float32)}
        return None

    def batch_delete(self, body: Any) -> Reply:
        match = body.get("match") if isinstance(body, dict) else None
        if not isinstance(match, dict) or "where" not in match:
            return self._error(422, "match.class and match.where are required")
        cls = self.classes.get(str(match.get("class")))
        if cls is None:
            return self._error(422, f"class {match.get('class')!r} not found in schema")
        try:
            hits = [oid for oid, obj in cls.objects.items() if cls.matches(match["where"], obj)]
        except GraphQLError as exc:
            return self._error(422, str(exc))
        hits = hits[:self.query_max]
        if not body.get("dryRun"):
            for oid in hits:
                del cls.objects[oid]
        return Reply(200, {"match": match, "output": body.get("output", "minimal"), "dryRun": bool(body.get("dryRun")),
                           "results": {"matches": len(hits), "limit": self.query_max, "successful": len(hits),
                                       "failed": 0, "objects": None}})

    def list_objects(self, query: dict[str, list[str]]) -> Reply:
        cls = self.classes.get((query.get("class") or [""])[0])
        if cls is None:
            return self._error(404, "class not found")
        limit = int((query.get("limit") or ["25"])[0])
        with_vector = "vector" in (query.get("include") or [""])[0].split(",")
        objects = [{"class": o["class"], "id": o["id"], "properties": o["properties"],
                    **({"vector": o["vector"].tolist()} if with_vector else {})}
                   for o in list(cls.objects.values())[:limit]]
        return Reply(200, {"objects": objects, "totalResults": len(objects)})

    # ---------------------------------------------------------------- GraphQL

    def graphql(self, body: Any) -> dict[str, Any]:
        if not isinstance(body, dict) or not isinstance(body.get("query"), str):
            return {"errors": [{"message": "a query is required"}]}
        try:
            [(operation, _, targets)] = parse_graphql(body["query"])
            if operation not in ("Get", "Aggregate"):
                raise GraphQLError(f'Cannot query field "{operation}" on type "WeaviateObj".')
            data = {}
            for name, args, fields in targets:
                cls = self.classes.get(name)
                if cls is None:
                    raise GraphQLError(f'Cannot query field "{name}" on type "{operation}ObjectsObj".')
                data[name] = (self.get if operation == "Get" else self.aggregate)(cls, args, fields)
            return {"data": {operation: data}}
        except (GraphQLError, ValueError) as exc:
            return {"data": None, "errors": [{"message": str(exc), "locations": [{"line": 1, "column": 1}]}]}

    def _filtered(self, cls: WeaviateClass, args: dict[str, Any]) -> list[dict[str, Any]]:
        where = args.get("where")
        return [o for o in cls.objects.values() if where is None or cls.matches(where, o)]

    def get(self, cls: WeaviateClass, args: dict[str, Any], fields: list) -> list[dict[str, Any]]:
        unknown = set(args) - {"nearVector", "where", "limit"}
        if unknown:
            raise GraphQLError(f"Unknown argument \"{sorted(unknown)[0]}\"")
        limit = args.get("limit", 10)
        if not isinstance(limit, int) or limit < 1 or limit > self.query_max:
            raise GraphQLError(f"limit must be from 1 to {self.query_max}")
        candidates = self._filtered(cls, args)  # the filter inside the search (a pre-filter, as Weaviate's)
        scored = [(None, o) for o in candidates]
        if "nearVector" in args:
            vector = (args["nearVector"] or {}).get("vector")
            if not _numbers(vector):
                raise GraphQLError("nearVector needs a vector")
            if cls.dims is not None and len(vector) != cls.dims:
                raise GraphQLError(f"vector search: vector lengths don't match: {len(vector)} vs {cls.dims}")
            query = np.asarray(vector, dtype=np.float32)
            scored = sorted(((cls.distance_to(query, o["vector"]), o) for o in candidates),
                            key=lambda t: (t[0], t[1]["id"]))
        rows = []
        for distance, obj in scored[:limit]:
            row: dict[str, Any] = {}
            for name, _, sub in fields:
                if name == "_additional":
                    extra = {"id": obj["id"], "distance": distance, "vector": obj["vector"].tolist()}
                    row[name] = {n: extra[n] for n, _, _ in sub if n in extra}
                elif name in cls.properties:
                    row[name] = obj["properties"].get(name)
                else:
                    raise GraphQLError(f'Cannot query field "{name}" on type "{cls.definition["class"]}".')
            rows.append(row)
        return rows

    def aggregate(self, cls: WeaviateClass, args: dict[str, Any], fields: list) -> list[dict[str, Any]]:
        if [f[0] for f in fields] != ["meta"] or [f[0] for f in fields[0][2]] != ["count"]:
            raise GraphQLError("only meta { count } is served here")
        return [{"meta": {"count": len(self._filtered(cls, args))}}]


# ====================================================================== fixtures

@pytest.fixture
def fake_pinecone():
    server = FakePinecone()
    yield server
    server.close()


@pytest.fixture
def fake_weaviate():
    server = FakeWeaviate()
    yield server
    server.close()
