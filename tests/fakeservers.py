"""Real local HTTP servers that speak the LLM providers' protocols, for tests (stdlib http.server in a thread).

One `FakeServer` answers every protocol, told apart by the path, as the real services lay them out:

  OpenAI        POST .../chat/completions                         (any base: /v1, /openai/v1, ...)
  Azure OpenAI  POST /openai/deployments/{deployment}/chat/completions?api-version=...
  Anthropic     POST /v1/messages
  Gemini        POST /v1beta/models/{model}:generateContent
  Ollama        POST /api/chat
  Bedrock       POST /model/{modelId}/converse                    (SigV4 or bearer token)

Every request is recorded (`server.requests`: method, path, query, headers, body, json) before it is answered.
Answers come from a script: `server.script(...)` queues steps, used one per request, in order:

  Answer(text=..., data=..., prompt_tokens=..., completion_tokens=...)
      a success in the protocol and structured-output mode of the request it answers: a tool call when the
      request forced a tool, JSON text when it asked for JSON, plain text otherwise;
  Reply(status, body, headers, delay)
      exactly this (429 with retry-after, 500, a malformed body...); `delay` sleeps first, so a delay longer
      than the client's timeout makes a timeout.

With the script empty, a request gets Answer(). Requests are also checked the way the real services check
them, and a violation is answered with the service's error status and shape instead of the script's next
step: OpenAI rejects max_tokens and temperature for reasoning models and non-strict schemas in strict
json_schema mode; Azure wants api-version and a key; Anthropic wants x-api-key, anthropic-version,
max_tokens and only user/assistant roles; Gemini wants a key, user/model roles and a JSON mime type with a
schema; Ollama streams NDJSON unless stream is false; Bedrock verifies the SigV4 signature (with botocore's
signer when it is installed, an implementation independent of memlane's) and wants alternating roles.
"""
from __future__ import annotations

import hashlib
import hmac
import json
import re
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from local_http import QuickHandler
from typing import Any, Optional, Union
from urllib.parse import parse_qsl, unquote, urlsplit

import pytest

AWS_ACCESS_KEY = "AKIDEXAMPLE"
AWS_SECRET_KEY = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"
REASONING_PREFIXES = ("o1", "o3", "o4", "gpt-5")


@dataclass
class Reply:
    status: int = 200
    body: Any = None  # dict or list: sent as JSON; str or bytes: sent as is
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0


@dataclass
class Answer:
    text: str = "ok"
    data: Any = None  # the structured answer, for requests that ask for one
    prompt_tokens: int = 11
    completion_tokens: int = 7
    delay: float = 0.0


@dataclass
class Received:
    protocol: str
    method: str
    path: str  # decoded, without the query
    raw_path: str  # as it came on the wire, with the query
    query: dict[str, str]
    headers: dict[str, str]  # names lower-cased
    body: bytes
    at: float = field(default_factory=time.monotonic)  # when it arrived, to measure waits on the server side

    @property
    def json(self) -> Any:
        try:
            return json.loads(self.body) if self.body else None
        except ValueError:
            return None


Step = Union[Reply, Answer]


def protocol_of(path: str) -> str:
    if path.startswith("/openai/deployments/") and path.endswith("/chat/completions"):
        return "azure"
    if path.endswith("/chat/completions"):
        return "openai"
    if path == "/v1/messages":
        return "anthropic"
    if re.fullmatch(r"/v1(beta)?/models/[^/]+:generateContent", path):
        return "gemini"
    if path == "/api/chat":
        return "ollama"
    if re.fullmatch(r"/model/[^/]+/converse", path):
        return "bedrock"
    return "unknown"


# ------------------------------------------------------------------------------------------ protocol errors

def _error(protocol: str, status: int, message: str, kind: str = "") -> Reply:
    if protocol in ("openai", "azure"):
        return Reply(status, {"error": {"message": message, "type": kind or "invalid_request_error",
                                        "param": None, "code": None}})
    if protocol == "anthropic":
        return Reply(status, {"type": "error", "error": {"type": kind or "invalid_request_error",
                                                         "message": message}})
    if protocol == "gemini":
        return Reply(status, {"error": {"code": status, "message": message, "status": kind or "INVALID_ARGUMENT"}})
    if protocol == "bedrock":
        return Reply(status, {"message": message}, {"x-amzn-errortype": kind or "ValidationException"})
    return Reply(status, {"error": message})


def _strict_schema_problem(schema: Any, where: str = "schema") -> Optional[str]:
    """What OpenAI's strict structured outputs reject: objects must list every property as required and
    set additionalProperties false."""
    if not isinstance(schema, dict):
        return None
    if schema.get("type") == "object" or "properties" in schema:
        props = schema.get("properties") or {}
        if schema.get("additionalProperties") is not False:
            return f"In context={where}, 'additionalProperties' is required to be supplied and to be false"
        missing = [name for name in props if name not in (schema.get("required") or [])]
        if missing:
            return f"In context={where}, 'required' is required to include every key; missing {missing}"
        for name, sub in props.items():
            problem = _strict_schema_problem(sub, f"{where}.{name}")
            if problem:
                return problem
    if "items" in schema:
        return _strict_schema_problem(schema["items"], f"{where}.items")
    return None


def _check_openai(req: Received, body: dict) -> Optional[Reply]:
    p = req.protocol
    if req.protocol == "azure":
        if "api-version" not in req.query:
            return _error(p, 404, "Resource not found")
        if not req.headers.get("api-key") and not req.headers.get("authorization", "").startswith("Bearer "):
            return _error(p, 401, "Access denied due to invalid subscription key or wrong API endpoint.",
                          "invalid_api_key")
    if not isinstance(body.get("messages"), list) or not body["messages"]:
        return _error(p, 400, "'messages' must be a non-empty array")
    if req.protocol == "openai" and not body.get("model"):
        return _error(p, 400, "you must provide a model parameter")
    for m in body["messages"]:
        if m.get("role") not in ("system", "developer", "user", "assistant", "tool"):
            return _error(p, 400, f"Invalid value: '{m.get('role')}'. Supported values are: 'system', "
                                  "'assistant', 'user', 'tool', and 'developer'.")
    model = str(body.get("model") or "").split("/")[-1].lower()
    if model.startswith(REASONING_PREFIXES):
        if "max_tokens" in body:
            return _error(p, 400, "Unsupported parameter: 'max_tokens' is not supported with this model. "
                                  "Use 'max_completion_tokens' instead.", "unsupported_parameter")
        if body.get("temperature") not in (None, 1):
            return _error(p, 400, "Unsupported value: 'temperature' does not support 0 with this model. Only "
                                  "the default (1) value is supported.", "unsupported_value")
    fmt = body.get("response_format")
    if isinstance(fmt, dict) and fmt.get("type") == "json_schema":
        spec = fmt.get("json_schema") or {}
        if not spec.get("name") or not isinstance(spec.get("schema"), dict):
            return _error(p, 400, "Missing required parameter: 'response_format.json_schema.name'/'schema'.")
        if spec.get("strict"):
            problem = _strict_schema_problem(spec["schema"])
            if problem:
                return _error(p, 400, f"Invalid schema for response_format '{spec['name']}': {problem}.")
    choice = body.get("tool_choice")
    if isinstance(choice, dict):
        name = (choice.get("function") or {}).get("name")
        names = [(t.get("function") or {}).get("name") for t in body.get("tools") or []]
        if name not in names:
            return _error(p, 400, f"Invalid value for 'tool_choice': function '{name}' not in tools.")
    return None


def _check_anthropic(req: Received, body: dict) -> Optional[Reply]:
    p = req.protocol
    if not req.headers.get("x-api-key"):
        return _error(p, 401, "x-api-key header is required", "authentication_error")
    if not req.headers.get("anthropic-version"):
        return _error(p, 400, "anthropic-version: header is required")
    if not isinstance(body.get("max_tokens"), int):
        return _error(p, 400, "max_tokens: Field required")
    if not body.get("model"):
        return _error(p, 400, "model: Field required")
    for i, m in enumerate(body.get("messages") or []):
        if m.get("role") not in ("user", "assistant"):
            return _error(p, 400, f"messages.{i}.role: Input should be 'user' or 'assistant'")
    if "system" in body and not isinstance(body["system"], (str, list)):
        return _error(p, 400, "system: Input should be a valid string or list")
    choice = body.get("tool_choice")
    if isinstance(choice, dict) and choice.get("type") == "tool":
        tools = {t.get("name"): t for t in body.get("tools") or []}
        if choice.get("name") not in tools:
            return _error(p, 400, f"tool_choice: tool '{choice.get('name')}' not found in tools")
        if (tools[choice["name"]].get("input_schema") or {}).get("type") != "object":
            return _error(p, 400, "tools.0.input_schema.type: Input should be 'object'")
    return None


def _check_gemini(req: Received, body: dict) -> Optional[Reply]:
    p = req.protocol
    if not req.headers.get("x-goog-api-key") and "key" not in req.query:
        return _error(p, 403, "Method doesn't allow unregistered callers (callers without established identity). "
                              "Please use API Key or other form of API consumer identity to call this API.",
                      "PERMISSION_DENIED")
    contents = body.get("contents")
    if not isinstance(contents, list) or not contents:
        return _error(p, 400, "* GenerateContentRequest.contents: contents is not specified")
    for i, c in enumerate(contents):
        if c.get("role") not in ("user", "model"):
            return _error(p, 400, f"Please use a valid role: user, model. (contents[{i}].role={c.get('role')!r})")
        if not c.get("parts"):
            return _error(p, 400, f"* GenerateContentRequest.contents[{i}].parts: contents.parts must not be empty.")
    config = body.get("generationConfig") or {}
    if "responseSchema" in config and "responseJsonSchema" in config:
        return _error(p, 400, "responseSchema and responseJsonSchema cannot both be set")
    if ("responseSchema" in config or "responseJsonSchema" in config) and \
            config.get("responseMimeType") != "application/json":
        return _error(p, 400, "* GenerateContentRequest.generation_config.response_mime_type: must be "
                              "application/json when a response schema is set")
    return None


def _check_bedrock(server: "FakeServer", req: Received, body: dict) -> Optional[Reply]:
    p = req.protocol
    problem = server.check_bedrock_auth(req)
    if problem:
        return problem
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        return _error(p, 400, "The messages field is required")
    if messages[0].get("role") != "user":
        return _error(p, 400, "A conversation must start with a user message. Try again with a conversation "
                              "that starts with a user message.")
    for before, after in zip(messages, messages[1:]):
        if before.get("role") == after.get("role"):
            return _error(p, 400, "A conversation must alternate between user and assistant roles.")
    for m in messages:
        if m.get("role") not in ("user", "assistant") or not isinstance(m.get("content"), list):
            return _error(p, 400, "Malformed input request: messages must have role user|assistant and "
                                  "a list of content blocks")
    unknown = set(body.get("inferenceConfig") or {}) - {"maxTokens", "temperature", "topP", "stopSequences"}
    if unknown:
        return _error(p, 400, f"Malformed input request: extraneous key [{sorted(unknown)[0]}] is not permitted")
    tools = body.get("toolConfig")
    if tools:
        names = [(t.get("toolSpec") or {}).get("name") for t in tools.get("tools") or []]
        forced = ((tools.get("toolChoice") or {}).get("tool") or {}).get("name")
        if forced and forced not in names:
            return _error(p, 400, f"The tool {forced} in toolChoice is not among the tools")
    return None


# ------------------------------------------------------------------------------------------ answers

def _forced_tool(req: Received, body: dict) -> Optional[str]:
    p = req.protocol
    if p in ("openai", "azure"):
        choice = body.get("tool_choice")
        return (choice.get("function") or {}).get("name") if isinstance(choice, dict) else None
    if p == "anthropic":
        choice = body.get("tool_choice") or {}
        return choice.get("name") if choice.get("type") == "tool" else None
    if p == "bedrock":
        return (((body.get("toolConfig") or {}).get("toolChoice") or {}).get("tool") or {}).get("name")
    return None


def _render(req: Received, body: dict, answer: Answer) -> Reply:
    p = req.protocol
    tool = _forced_tool(req, body)
    structured = answer.data is not None
    text = json.dumps(answer.data) if structured else answer.text
    pt, ct = answer.prompt_tokens, answer.completion_tokens
    if p in ("openai", "azure"):
        message: dict[str, Any] = {"role": "assistant", "content": text, "refusal": None}
        finish = "stop"
        if tool and structured:
            message["content"] = None
            message["tool_calls"] = [{"id": "call_1", "type": "function",
                                      "function": {"name": tool, "arguments": json.dumps(answer.data)}}]
            finish = "tool_calls"
        model = body.get("model") or req.path.split("/")[3]
        return Reply(200, {"id": "chatcmpl-1", "object": "chat.completion", "created": int(time.time()),
                           "model": model, "choices": [{"index": 0, "message": message, "finish_reason": finish}],
                           "usage": {"prompt_tokens": pt, "completion_tokens": ct, "total_tokens": pt + ct}})
    if p == "anthropic":
        if tool and structured:
            content = [{"type": "tool_use", "id": "toolu_1", "name": tool, "input": answer.data}]
            stop = "tool_use"
        else:
            content, stop = [{"type": "text", "text": text}], "end_turn"
        return Reply(200, {"id": "msg_1", "type": "message", "role": "assistant", "model": body.get("model"),
                           "content": content, "stop_reason": stop, "stop_sequence": None,
                           "usage": {"input_tokens": pt, "output_tokens": ct}})
    if p == "gemini":
        model = req.path.split("/")[-1].split(":")[0]
        return Reply(200, {"candidates": [{"content": {"role": "model", "parts": [{"text": text}]},
                                           "finishReason": "STOP", "index": 0}],
                           "usageMetadata": {"promptTokenCount": pt, "candidatesTokenCount": ct,
                                             "totalTokenCount": pt + ct},
                           "modelVersion": model, "responseId": "resp-1"})
    if p == "ollama":
        return Reply(200, {"model": body.get("model"), "created_at": datetime.now(timezone.utc).isoformat(),
                           "message": {"role": "assistant", "content": text}, "done": True,
                           "done_reason": "stop", "total_duration": 1000, "prompt_eval_count": pt,
                           "eval_count": ct})
    if p == "bedrock":
        if tool and structured:
            content = [{"toolUse": {"toolUseId": "tooluse_1", "name": tool, "input": answer.data}}]
            stop = "tool_use"
        else:
            content, stop = [{"text": text}], "end_turn"
        return Reply(200, {"output": {"message": {"role": "assistant", "content": content}}, "stopReason": stop,
                           "usage": {"inputTokens": pt, "outputTokens": ct, "totalTokens": pt + ct},
                           "metrics": {"latencyMs": 5}})
    return Reply(404, {"error": f"no fake protocol at {req.path}"})


def _ollama_stream(body: dict, answer: Answer) -> Reply:
    """What Ollama sends when `stream` is not false: one JSON object per line."""
    lines = [json.dumps({"model": body.get("model"), "message": {"role": "assistant", "content": ch},
                         "done": False}) for ch in answer.text]
    lines.append(json.dumps({"model": body.get("model"), "message": {"role": "assistant", "content": ""},
                             "done": True, "prompt_eval_count": answer.prompt_tokens,
                             "eval_count": answer.completion_tokens}))
    return Reply(200, "\n".join(lines) + "\n", {"content-type": "application/x-ndjson"})


# ------------------------------------------------------------------------------------------ SigV4 check

def _botocore_signature(req: Received, signed: list[str], access: str, secret: str, token: Optional[str],
                        amz_date: str, region: str, service: str) -> Optional[str]:
    """The signature botocore computes for the request as received (None without botocore)."""
    try:
        from botocore.auth import SigV4Auth
        from botocore.awsrequest import AWSRequest
        from botocore.credentials import Credentials
    except ImportError:
        return None
    url = f"http://{req.headers['host']}{req.raw_path}"
    request = AWSRequest(method=req.method, url=url, data=req.body,
                         headers={name: req.headers[name] for name in signed if name in req.headers})
    request.context["timestamp"] = amz_date
    auth = SigV4Auth(Credentials(access, secret, token), service, region)
    canonical = auth.canonical_request(request)
    return auth.signature(auth.string_to_sign(request, canonical), request)


def _memlane_signature(req: Received, signed: list[str], secret: str, amz_date: str, region: str,
                     service: str) -> str:
    from memlane.aws_sigv4 import ALGORITHM, canonical_request, signing_key
    url = f"http://{req.headers['host']}{req.raw_path}"
    canonical, _ = canonical_request(req.method, url, {name: req.headers.get(name, "") for name in signed},
                                     hashlib.sha256(req.body).hexdigest())
    scope = f"{amz_date[:8]}/{region}/{service}/aws4_request"
    to_sign = "\n".join([ALGORITHM, amz_date, scope, hashlib.sha256(canonical.encode()).hexdigest()])
    return hmac.new(signing_key(secret, amz_date[:8], region, service), to_sign.encode(),
                    hashlib.sha256).hexdigest()


_AUTH = re.compile(r"AWS4-HMAC-SHA256 Credential=([^/]+)/(\d{8})/([^/]+)/([^/]+)/aws4_request, "
                   r"SignedHeaders=([a-z0-9;\-]+), Signature=([0-9a-f]{64})$")


# ------------------------------------------------------------------------------------------ the server

class FakeServer:
    def __init__(self) -> None:
        self.requests: list[Received] = []
        self._script: list[Step] = []
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self.aws_credentials: dict[str, str] = {AWS_ACCESS_KEY: AWS_SECRET_KEY}
        self.bedrock_tokens: set[str] = set()
        self.sigv4_verifier = ""  # "botocore" or "memlane": who checked the last signature
        self.signature_checks = 0
        server = self

        class Handler(QuickHandler):
            def do_GET(self) -> None:
                server._handle(self)

            def do_POST(self) -> None:
                server._handle(self)

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.01},
                                        daemon=True)

    @property
    def url(self) -> str:
        host, port = self._httpd.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> "FakeServer":
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopping.set()
        self._httpd.shutdown()
        self._httpd.server_close()

    def script(self, *steps: Step) -> None:
        with self._lock:
            self._script.extend(steps)

    def last(self, protocol: Optional[str] = None) -> Received:
        matching = [r for r in self.requests if protocol is None or r.protocol == protocol]
        assert matching, f"no {protocol or ''} request received"
        return matching[-1]

    # ---------------------------------------------------------------- checks

    def check_bedrock_auth(self, req: Received) -> Optional[Reply]:
        auth = req.headers.get("authorization", "")
        if auth.startswith("Bearer "):
            if auth[len("Bearer "):] in self.bedrock_tokens:
                return None
            return _error("bedrock", 403, "Invalid API key", "UnrecognizedClientException")
        match = _AUTH.match(auth)
        if not match:
            return _error("bedrock", 403, "Missing Authentication Token", "MissingAuthenticationTokenException")
        access, date, region, service, signed_list, signature = match.groups()
        signed = signed_list.split(";")
        if access not in self.aws_credentials:
            return _error("bedrock", 403, "The security token included in the request is invalid.",
                          "UnrecognizedClientException")
        if service != "bedrock" or "host" not in signed or "x-amz-date" not in signed:
            return _error("bedrock", 403, "Credential should be scoped to correct service: 'bedrock'.",
                          "InvalidSignatureException")
        amz_date = req.headers.get("x-amz-date", "")
        try:
            when = datetime.strptime(amz_date, "%Y%m%dT%H%M%SZ").replace(tzinfo=timezone.utc)
        except ValueError:
            return _error("bedrock", 403, "Invalid x-amz-date", "InvalidSignatureException")
        if abs((datetime.now(timezone.utc) - when).total_seconds()) > 900 or date != amz_date[:8]:
            return _error("bedrock", 403, "Signature expired", "InvalidSignatureException")
        unsigned = [name for name in ("content-type", "x-amz-security-token") if name in req.headers
                    and name not in signed]
        if unsigned:
            return _error("bedrock", 403, f"Header {unsigned[0]} must be signed", "InvalidSignatureException")
        secret = self.aws_credentials[access]
        token = req.headers.get("x-amz-security-token")
        expected = _botocore_signature(req, signed, access, secret, token, amz_date, region, service)
        self.sigv4_verifier = "botocore"
        if expected is None:
            expected = _memlane_signature(req, signed, secret, amz_date, region, service)
            self.sigv4_verifier = "memlane"
        self.signature_checks += 1
        if not hmac.compare_digest(expected, signature):
            return _error("bedrock", 403, "The request signature we calculated does not match the signature "
                                          "you provided. Check your AWS Secret Access Key and signing method.",
                          "InvalidSignatureException")
        return None

    def _check(self, req: Received, body: Any) -> Optional[Reply]:
        if req.protocol == "unknown":
            return Reply(404, {"error": f"not found: {req.path}"})
        if req.method != "POST":
            return _error(req.protocol, 405, "Method not allowed")
        if not isinstance(body, dict):
            return _error(req.protocol, 400, "the body is not a JSON object")
        if req.protocol in ("openai", "azure"):
            return _check_openai(req, body)
        if req.protocol == "anthropic":
            return _check_anthropic(req, body)
        if req.protocol == "gemini":
            return _check_gemini(req, body)
        if req.protocol == "bedrock":
            return _check_bedrock(self, req, body)
        if req.protocol == "ollama" and not body.get("model"):
            return _error("ollama", 400, "model is required")
        return None

    # ---------------------------------------------------------------- serving

    def _handle(self, handler: BaseHTTPRequestHandler) -> None:
        length = int(handler.headers.get("content-length") or 0)
        raw = handler.rfile.read(length) if length else b""
        parts = urlsplit(handler.path)
        req = Received(protocol=protocol_of(parts.path), method=handler.command,
                       path=unquote(parts.path), raw_path=handler.path, query=dict(parse_qsl(parts.query)),
                       headers={k.lower(): v for k, v in handler.headers.items()}, body=raw)
        with self._lock:
            self.requests.append(req)
            step: Step = self._script.pop(0) if self._script else Answer()
        body = req.json
        reply = self._check(req, body)
        if reply is None:
            if isinstance(step, Answer):
                if req.protocol == "ollama" and body.get("stream") is not False:
                    reply = _ollama_stream(body, step)
                else:
                    reply = _render(req, body, step)
                reply.delay = step.delay
            else:
                reply = step
        if reply.delay and self._stopping.wait(reply.delay):
            return
        payload = reply.body
        if isinstance(payload, (dict, list)):
            payload = json.dumps(payload).encode()
        elif isinstance(payload, str):
            payload = payload.encode()
        payload = payload or b""
        try:
            handler.send_response(reply.status)
            headers = {"content-type": "application/json", **{k.lower(): v for k, v in reply.headers.items()}}
            for name, value in headers.items():
                handler.send_header(name, value)
            handler.send_header("content-length", str(len(payload)))
            handler.end_headers()
            handler.wfile.write(payload)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client gave up (timeout)


@pytest.fixture
def fake_server():
    server = FakeServer().start()
    try:
        yield server
    finally:
        server.stop()
