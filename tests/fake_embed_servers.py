"""Real local HTTP servers speaking the embedding APIs memlane's embedders call: OpenAI (/embeddings), Azure
OpenAI (/openai/deployments/{d}/embeddings), Ollama (/api/embed), Gemini (/v1beta/models/{m}:batchEmbedContents),
Bedrock InvokeModel (/model/{id}/invoke, SigV4 checked) and Vertex AI (/v1/projects/{p}/locations/{l}/publishers/
google/models/{m}:predict, a bearer token required). One server answers all of them, on 127.0.0.1.

Every request is recorded (method, path, query, headers, JSON body). Vectors are deterministic: seeded by the
text and the dimension (`fake_vector`), deliberately not unit length, of the size the request asks for (or the
model's usual size, or `default_dim`). Failures are scripted in order with `fail(...)`:

    server.fail(Reply(429, headers={"Retry-After": "0"}))   # one 429, then normal answers
    server.fail(Reply(500), Reply(500))
    server.fail(WRONG_DIM)                                   # vectors one dimension too long
    server.fail(MALFORMED)                                   # 200 with a body that is not JSON
"""
from __future__ import annotations

import hashlib
import json
import random
import re
import threading
from collections import deque
from dataclasses import dataclass, field
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler
from local_http import LocalHTTPServer, QuickHandler
from typing import Any, Optional
from urllib.parse import parse_qs, unquote, urlsplit

import numpy as np
import pytest

from memlane.aws_sigv4 import sign

WRONG_DIM = "wrong_dim"
MALFORMED = "malformed"

OPENAI_DIMS = {"text-embedding-3-small": 1536, "text-embedding-3-large": 3072, "text-embedding-ada-002": 1536}
OLLAMA_DIMS = {"nomic-embed-text": 768, "mxbai-embed-large": 1024}
GEMINI_DIMS = {"gemini-embedding-001": 3072, "text-embedding-004": 768}
VERTEX_DIMS = {"gemini-embedding-001": 3072, "text-embedding-005": 768}
AWS_SECRET = "fake-secret-key"


def fake_vector(text: str, dim: int) -> np.ndarray:
    """The server's vector for `text` at `dim` dimensions (not normalised: norms vary with the text)."""
    seed = int.from_bytes(hashlib.sha256(f"{dim}\x00{text}".encode()).digest()[:8], "little")
    rng = np.random.default_rng(seed)
    return (rng.standard_normal(dim) * (1 + seed % 7)).astype(np.float32)


def unit(text: str, dim: int) -> np.ndarray:
    v = fake_vector(text, dim)
    return v / np.linalg.norm(v)


@dataclass
class Reply:
    status: int
    body: Any = None  # dict -> JSON, bytes as they are
    headers: dict[str, str] = field(default_factory=dict)


@dataclass
class Recorded:
    method: str
    path: str  # as received on the wire (percent-encoding kept)
    query: dict[str, list[str]]
    headers: dict[str, str]  # names lower-cased
    raw: bytes
    json: Any
    signature_ok: Optional[bool] = None  # Bedrock only: the SigV4 signature checked against the wire request


class FakeEmbedServer:
    def __init__(self, default_dim: int = 24):
        self.default_dim = default_dim
        self.requests: list[Recorded] = []
        self.script: deque = deque()
        self.shuffle = False  # OpenAI: answer rows out of order (each carries its index)
        self.delay = 0.0
        self._lock = threading.Lock()
        self._http = LocalHTTPServer(_handler(self))

    @property
    def url(self) -> str:
        return self._http.url

    def fail(self, *replies: Any) -> None:
        self.script.extend(replies)

    def close(self) -> None:
        self._http.close()

    def bodies(self) -> list[Any]:
        return [r.json for r in self.requests]

    # ---------------------------------------------------------------- protocol

    def answer(self, rec: Recorded) -> Reply:
        with self._lock:
            self.requests.append(rec)
            scripted = self.script.popleft() if self.script else None
        if isinstance(scripted, Reply):
            return scripted
        if scripted == MALFORMED:
            return Reply(200, b'{"data": [{"embedding": [0.1, 0.')
        bump = 1 if scripted == WRONG_DIM else 0
        path = rec.path
        try:
            if path.endswith("/embeddings"):
                return self.openai(rec, bump)
            if path == "/api/embed":
                return self.ollama(rec, bump)
            if path.endswith(":batchEmbedContents"):
                return self.gemini(rec, bump)
            if path.startswith("/model/") and path.endswith("/invoke"):
                return self.bedrock(rec, bump)
            if path.endswith(":predict"):
                return self.vertex(rec, bump)
        except (KeyError, TypeError, ValueError) as exc:
            return Reply(400, {"error": {"message": f"bad request: {exc!r}"}})
        return Reply(404, {"error": {"message": f"no route {path}"}})

    def openai(self, rec: Recorded, bump: int) -> Reply:
        body = rec.json
        inputs = body["input"] if isinstance(body["input"], list) else [body["input"]]
        if len(inputs) > 2048:
            return Reply(400, {"error": {"message": "'$.input' must have at most 2048 items"}})
        if any(not isinstance(t, str) or t == "" for t in inputs):
            return Reply(400, {"error": {"message": "'$.input' is invalid"}})
        dim = body.get("dimensions") or OPENAI_DIMS.get(body.get("model"), self.default_dim)
        rows = [{"object": "embedding", "index": i, "embedding": fake_vector(t, dim + bump).tolist()}
                for i, t in enumerate(inputs)]
        if self.shuffle:
            random.Random(len(rows)).shuffle(rows)
        return Reply(200, {"object": "list", "data": rows, "model": body.get("model"),
                           "usage": {"prompt_tokens": len(inputs), "total_tokens": len(inputs)}})

    def ollama(self, rec: Recorded, bump: int) -> Reply:
        body = rec.json
        inputs = body["input"] if isinstance(body["input"], list) else [body["input"]]
        dim = OLLAMA_DIMS.get(body["model"].removesuffix(":latest"), self.default_dim)
        return Reply(200, {"model": body["model"], "embeddings": [fake_vector(t, dim + bump).tolist()
                                                                  for t in inputs]})

    def gemini(self, rec: Recorded, bump: int) -> Reply:
        model = unquote(re.fullmatch(r"/v1beta/models/(.+):batchEmbedContents", rec.path).group(1))
        requests = rec.json["requests"]
        if len(requests) > 100:
            return Reply(400, {"error": {"code": 400, "status": "INVALID_ARGUMENT",
                                         "message": "at most 100 requests can be in one batch"}})
        out = []
        for r in requests:
            if r["model"] != f"models/{model}":
                return Reply(400, {"error": {"message": f"model {r['model']} does not match the URL's"}})
            dim = r.get("outputDimensionality") or GEMINI_DIMS.get(model, self.default_dim)
            out.append({"values": fake_vector(r["content"]["parts"][0]["text"], dim + bump).tolist()})
        return Reply(200, {"embeddings": out})

    def bedrock(self, rec: Recorded, bump: int) -> Reply:
        rec.signature_ok = check_sigv4(rec)
        if not rec.signature_ok:
            return Reply(403, {"message": "The request signature we calculated does not match the signature "
                                          "you provided."})
        model = unquote(rec.path[len("/model/"):-len("/invoke")])
        body = rec.json
        if "titan-embed-text" in model:
            dim = body.get("dimensions") or (1024 if "v2" in model else 1536)
            return Reply(200, {"embedding": fake_vector(body["inputText"], dim + bump).tolist(),
                               "inputTextTokenCount": 3})
        if "cohere.embed" in model:
            texts = body["texts"]
            if len(texts) > 96 or body.get("input_type") not in ("search_document", "search_query"):
                return Reply(400, {"message": "Malformed input request"})
            dim = body.get("output_dimension") or (1536 if "v4" in model else 1024)
            vectors = [fake_vector(t, dim + bump).tolist() for t in texts]
            if body.get("embedding_types"):
                return Reply(200, {"id": "x", "texts": texts, "embeddings": {"float": vectors},
                                   "response_type": "embeddings_by_type"})
            return Reply(200, {"id": "x", "texts": texts, "embeddings": vectors,
                               "response_type": "embeddings_floats"})
        return Reply(400, {"message": f"unknown model {model}"})


    def vertex(self, rec: Recorded, bump: int) -> Reply:
        """Vertex AI's :predict for text embedding models (the publisher model's REST path)."""
        match = re.fullmatch(r"/v1/projects/([^/]+)/locations/([^/]+)/publishers/google/models/(.+):predict", rec.path)
        if not match:
            return Reply(404, {"error": {"code": 404, "status": "NOT_FOUND", "message": f"no route {rec.path}"}})
        if not rec.headers.get("authorization", "").startswith("Bearer "):
            return Reply(401, {"error": {"code": 401, "status": "UNAUTHENTICATED",
                                         "message": "Request is missing required authentication credential."}})
        model = unquote(match.group(3))
        instances = rec.json["instances"]
        limit = 1 if model.startswith("gemini-embedding") else 250
        if len(instances) > limit:
            return Reply(400, {"error": {"code": 400, "status": "INVALID_ARGUMENT",
                                         "message": f"Unable to submit request because {model} supports at most "
                                                    f"{limit} instances per request."}})
        dim = ((rec.json.get("parameters") or {}).get("outputDimensionality")
               or VERTEX_DIMS.get(model, self.default_dim))
        return Reply(200, {"predictions": [
            {"embeddings": {"values": fake_vector(i["content"], dim + bump).tolist(),
                            "statistics": {"truncated": False, "token_count": len(i["content"].split())}}}
            for i in instances], "metadata": {"billableCharacterCount": 1}})


def check_sigv4(rec: Recorded) -> bool:
    """Recompute the signature from the request as received, with the server's copy of the secret key."""
    auth = rec.headers.get("authorization", "")
    match = re.fullmatch(r"AWS4-HMAC-SHA256 Credential=([^/]+)/(\d{8})/([^/]+)/([^/]+)/aws4_request, "
                         r"SignedHeaders=([^,]+), Signature=([0-9a-f]{64})", auth)
    if not match:
        return False
    access, _date, region, service, signed, _signature = match.groups()
    names = signed.split(";")
    if "host" not in names or "x-amz-date" not in names:
        return False
    headers = {n: rec.headers[n] for n in names if n not in ("host", "x-amz-date", "x-amz-security-token")}
    when = datetime.strptime(rec.headers["x-amz-date"], "%Y%m%dT%H%M%SZ").replace(tzinfo=timezone.utc)
    again = sign(rec.method, f"http://{rec.headers['host']}{rec.path}", headers, rec.raw, access, AWS_SECRET,
                 rec.headers.get("x-amz-security-token"), region, service, when)
    return again["authorization"] == auth


def _handler(server: FakeEmbedServer) -> type[BaseHTTPRequestHandler]:
    class Handler(QuickHandler):
        def do_POST(self) -> None:
            raw = self.read_body()
            parts = urlsplit(self.path)
            try:
                body = json.loads(raw) if raw else None
            except ValueError:
                body = None
            reply = server.answer(Recorded(self.command, parts.path, parse_qs(parts.query), self.header_map(), raw,
                                           body))
            payload = reply.body if isinstance(reply.body, bytes) else json.dumps(reply.body or {}).encode()
            self.send(reply.status, reply.headers, payload, "application/json")

    return Handler


@pytest.fixture
def fake_embed():
    server = FakeEmbedServer()
    yield server
    server.close()
