"""A real local HTTP server speaking the hosted rerank APIs memlane's rerankers call, told apart by the path:

  Cohere  POST /v2/rerank  {model, query, documents, top_n, max_tokens_per_doc?} -> {id, results, meta}
  Jina    POST /v1/rerank  {model, query, documents, top_n, return_documents}    -> {model, results, usage}
          (a body with `top_k` instead of `top_n` is Voyage's:)
  Voyage  POST /v1/rerank  {query, documents, model, top_k, truncation?}         -> {object, data, model, usage}
  TEI     POST /rerank     {query, texts, raw_scores, truncate?}                 -> [{index, score}]

Relevance is deterministic: the share of the query's words found in the document (`overlap`); the hosted
APIs return it ranked best first and cut to top_n / top_k, as they do; TEI returns every text, best first,
as a probability, or as a logit (`logit`) when raw_scores is true. Requests are checked as the services
check them (a bearer key when `api_key` is set, the required fields, documents that are strings) and
answered 422/400/401 otherwise. Every request is recorded; failures are scripted in order with fail(Reply...).
"""
from __future__ import annotations

import json
import math
import re
import threading
from collections import deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from local_http import LocalHTTPServer, QuickHandler
from typing import Any, Optional

import pytest

API_KEY = "rk-test"


def words(text: str) -> set[str]:
    return set(re.findall(r"[a-z0-9]+", text.lower()))


def overlap(query: str, document: str) -> float:
    q = words(query)
    return len(q & words(document)) / len(q) if q else 0.0


def logit(query: str, document: str) -> float:
    """TEI's raw score: a logit whose sigmoid is the overlap (clamped away from 0 and 1)."""
    p = min(0.999, max(0.001, overlap(query, document)))
    return math.log(p / (1 - p))


@dataclass
class Reply:
    status: int
    body: Any = None  # dict/list -> JSON, bytes as they are
    headers: dict[str, str] = field(default_factory=dict)


@dataclass
class Recorded:
    method: str
    path: str
    headers: dict[str, str]
    json: Any


class FakeRerankServer:
    def __init__(self, api_key: Optional[str] = API_KEY):
        self.api_key = api_key
        self.requests: list[Recorded] = []
        self.script: deque = deque()
        self._lock = threading.Lock()
        self._http = LocalHTTPServer(_handler(self))

    @property
    def url(self) -> str:
        return self._http.url

    def fail(self, *replies: Reply) -> None:
        self.script.extend(replies)

    def close(self) -> None:
        self._http.close()

    def last(self) -> Recorded:
        return self.requests[-1]

    # ---------------------------------------------------------------- protocol

    def answer(self, rec: Recorded) -> Reply:
        with self._lock:
            self.requests.append(rec)
            scripted = self.script.popleft() if self.script else None
        if scripted is not None:
            return scripted
        if self.api_key and rec.headers.get("authorization") != f"Bearer {self.api_key}":
            return Reply(401, {"message": "invalid api token"})
        body = rec.json
        if not isinstance(body, dict):
            return Reply(400, {"message": "invalid request body"})
        if rec.path == "/rerank":
            return self.tei(body)
        documents = body.get("documents")
        if not isinstance(body.get("query"), str) or not isinstance(documents, list) or \
                not all(isinstance(d, str) for d in documents) or not body.get("model"):
            return Reply(422, {"message": "query, documents (strings) and model are required"})
        if rec.path == "/v2/rerank":
            return Reply(200, {"id": "r-1", "results": self.ranked(body, body.get("top_n")),
                               "meta": {"api_version": {"version": "2"}, "billed_units": {"search_units": 1}}})
        if rec.path == "/v1/rerank" and "top_k" in body:
            return Reply(200, {"object": "list", "data": self.ranked(body, body.get("top_k")),
                               "model": body["model"], "usage": {"total_tokens": 10}})
        if rec.path == "/v1/rerank":
            return Reply(200, {"model": body["model"], "results": self.ranked(body, body.get("top_n")),
                               "usage": {"total_tokens": 10}})
        return Reply(404, {"message": f"no route {rec.path}"})

    @staticmethod
    def ranked(body: dict, top: Any) -> list[dict]:
        rows = [{"index": i, "relevance_score": overlap(body["query"], d)} for i, d in enumerate(body["documents"])]
        rows.sort(key=lambda r: (-r["relevance_score"], r["index"]))
        return rows[:top] if isinstance(top, int) else rows

    @staticmethod
    def tei(body: dict) -> Reply:
        texts = body.get("texts")
        if not isinstance(body.get("query"), str) or not isinstance(texts, list):
            return Reply(422, {"error": "Input validation error: `query` and `texts` are required",
                               "error_type": "Validation"})
        raw = bool(body.get("raw_scores"))
        rows = [{"index": i, "score": logit(body["query"], t) if raw else overlap(body["query"], t)}
                for i, t in enumerate(texts)]
        rows.sort(key=lambda r: -r["score"])
        return Reply(200, rows)


def _handler(server: FakeRerankServer) -> type[BaseHTTPRequestHandler]:
    class Handler(QuickHandler):
        def do_POST(self) -> None:
            raw = self.read_body()
            try:
                body = json.loads(raw) if raw else None
            except ValueError:
                body = None
            reply = server.answer(Recorded(self.command, self.path, self.header_map(), body))
            payload = reply.body if isinstance(reply.body, bytes) else json.dumps(reply.body).encode()
            self.send(reply.status, reply.headers, payload, "application/json")

    return Handler


@pytest.fixture
def fake_rerank():
    server = FakeRerankServer()
    yield server
    server.close()
