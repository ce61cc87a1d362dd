"""Providers under hostile servers and configs: `timeout` is a deadline for a whole attempt (a server that
trickles its answer cannot hold a call), Retry-After in both of its forms, one reading of OLLAMA_HOST for the
Ollama LLM and embedder, and config keys that would be accepted and then ignored are refused."""
from __future__ import annotations

import asyncio
import importlib.util
import json
import socket
import socketserver
import threading
import time
from datetime import datetime, timedelta, timezone
from email.utils import formatdate

import pytest

from fakeservers import Answer, FakeServer, Reply
from memlane import Memory
from memlane.config import MemoryConfig
from memlane.embeddings.ollama import OllamaEmbedder
from memlane.errors import ConfigurationError, ProviderError
from memlane.http import RetryPolicy, retry_after_seconds
from memlane.llms.base import LLMRequest
from memlane.llms.ollama import OllamaLLM
from memlane.llms.openai import OpenAILLM
from memlane.ollama_host import ollama_base_url, parse_ollama_host

needs_litellm = pytest.mark.skipif(importlib.util.find_spec("litellm") is None, reason="litellm is not installed")

CHAT_BODY = json.dumps({"id": "c1", "object": "chat.completion", "model": "m", "choices": [
    {"index": 0, "message": {"role": "assistant", "content": "ok"}, "finish_reason": "stop"}],
    "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2}}).encode()
EMBED_BODY = json.dumps({"embeddings": [[1.0, 0.0, 0.0]]}).encode()
# Generous: an unbounded call would take minutes (bodies of ~200 bytes at 0.3 s a byte).
BOUND = 5.0


class TrickleServer:
    """A real HTTP/1.1 server on 127.0.0.1 that answers every request with `body`, sending its bytes one at a
    time every `interval` seconds; with trickle_headers the status line and headers come that way too. It
    records when each request arrived and stops writing once the client is gone or the server stops."""

    def __init__(self, body: bytes, interval: float, trickle_headers: bool = False):
        self.arrivals: list[float] = []
        self._stopping = threading.Event()
        outer = self

        class Handler(socketserver.StreamRequestHandler):
            def handle(self) -> None:
                head = b""
                while b"\r\n\r\n" not in head:
                    chunk = self.request.recv(65536)
                    if not chunk:
                        return
                    head += chunk
                head, _, rest = head.partition(b"\r\n\r\n")
                length = 0
                for line in head.split(b"\r\n")[1:]:
                    name, _, value = line.partition(b":")
                    if name.strip().lower() == b"content-length":
                        length = int(value)
                while len(rest) < length:
                    chunk = self.request.recv(65536)
                    if not chunk:
                        return
                    rest += chunk
                outer.arrivals.append(time.monotonic())
                status = (b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n"
                          b"content-length: %d\r\nconnection: close\r\n\r\n" % len(body))
                try:
                    if trickle_headers:
                        outer._trickle(self.request, status, interval)
                    else:
                        self.request.sendall(status)
                    outer._trickle(self.request, body, interval)
                except OSError:
                    pass  # the client gave up: the point of the test

        self._server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05},
                                        daemon=True)
        self._thread.start()

    def _trickle(self, sock: socket.socket, data: bytes, interval: float) -> None:
        for i in range(len(data)):
            if self._stopping.wait(interval):
                return
            sock.sendall(data[i:i + 1])

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def stop(self) -> None:
        self._stopping.set()
        self._server.shutdown()
        self._server.server_close()


@pytest.fixture
def trickle():
    servers: list[TrickleServer] = []

    def start(body: bytes, interval: float = 0.3, trickle_headers: bool = False) -> TrickleServer:
        servers.append(TrickleServer(body, interval, trickle_headers))
        return servers[-1]
    yield start
    for server in servers:
        server.stop()


@pytest.fixture
def fake_server():
    server = FakeServer().start()
    yield server
    server.stop()


def chat_request() -> LLMRequest:
    return LLMRequest(messages=[{"role": "user", "content": "hi"}])


def openai_llm(url: str, **config) -> OpenAILLM:
    return OpenAILLM({"api_key": "sk-test", "openai_base_url": f"{url}/v1", "model": "gpt-4.1-mini",
                      "max_retries": 0, "timeout": 1.0, **config})


def ollama_embedder(url: str, **config) -> OllamaEmbedder:
    return OllamaEmbedder({"ollama_base_url": url, "embedding_dims": 3, "max_retries": 0, "timeout": 1.0,
                           **config})


def run_call(kind: str, mode: str, url: str, **config):
    """One provider call, sync or async; the LLM and the embedder both go through memlane.http."""
    if kind == "llm":
        provider = openai_llm(url, **config)
        if mode == "sync":
            return provider.generate(chat_request())
        return asyncio.run(provider.agenerate(chat_request()))
    embedder = ollama_embedder(url, **config)
    if mode == "sync":
        return embedder.embed(["hello"])
    return asyncio.run(embedder.aembed(["hello"]))


# ============================================================================ timeout is a deadline

@pytest.mark.parametrize("mode", ["sync", "async"])
@pytest.mark.parametrize("kind", ["llm", "embedder"])
def test_a_trickled_body_cannot_outlast_the_timeout(trickle, kind, mode):
    server = trickle((CHAT_BODY if kind == "llm" else EMBED_BODY) + b" " * 200)
    start = time.monotonic()
    with pytest.raises(ProviderError, match="timed out after 1 attempts"):
        run_call(kind, mode, server.url)
    assert time.monotonic() - start < BOUND
    assert len(server.arrivals) == 1


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_trickled_headers_cannot_outlast_the_timeout(trickle, mode):
    server = trickle(CHAT_BODY, trickle_headers=True)  # ~90 header bytes: 27 s unbounded
    start = time.monotonic()
    with pytest.raises(ProviderError, match="timed out"):
        run_call("llm", mode, server.url)
    assert time.monotonic() - start < BOUND


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_each_retry_gets_a_fresh_deadline(trickle, mode):
    server = trickle(EMBED_BODY + b" " * 200)
    with pytest.raises(ProviderError, match="timed out after 2 attempts"):
        run_call("embedder", mode, server.url, max_retries=1, retry_base_delay=0, retry_max_delay=0)
    assert len(server.arrivals) == 2


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_a_slow_answer_inside_the_deadline_still_arrives(trickle, mode):
    server = trickle(EMBED_BODY, interval=0.02)  # ~0.6 s in many small reads, well inside 10 s
    out = run_call("embedder", mode, server.url, timeout=10.0)
    assert out.shape == (1, 3) and out[0, 0] == pytest.approx(1.0)


@needs_litellm
@pytest.mark.parametrize("mode", ["sync", "async"])
def test_litellm_calls_are_bounded_too(trickle, monkeypatch, mode):
    monkeypatch.setenv("LITELLM_LOCAL_MODEL_COST_MAP", "True")  # no fetch from GitHub at import
    from memlane.llms.litellm import LiteLLM
    server = trickle(CHAT_BODY + b" " * 200)
    llm = LiteLLM({"model": "openai/fake-model", "api_key": "sk-lite", "api_base": f"{server.url}/v1",
                   "max_retries": 0, "timeout": 1.0, "structured_output": "none"})
    start = time.monotonic()
    with pytest.raises(ProviderError, match="timed out after 1 attempts"):
        if mode == "sync":
            llm.generate(chat_request())
        else:
            asyncio.run(llm.agenerate(chat_request()))
    assert time.monotonic() - start < BOUND


# ============================================================================ Retry-After

NOW = datetime(2015, 10, 21, 7, 28, 0, tzinfo=timezone.utc)


@pytest.mark.parametrize("value, seconds", [
    ("120", 120.0), ("0", 0.0), (" 2.5 ", 2.5), ("-5", 0.0),
    ("Wed, 21 Oct 2015 07:28:30 GMT", 30.0),          # IMF-fixdate, the form servers send
    ("Wednesday, 21-Oct-15 07:28:30 GMT", 30.0),      # the obsolete forms HTTP still asks clients to read
    ("Wed Oct 21 07:28:30 2015", 30.0),
    ("Wed, 21 Oct 2015 07:27:00 GMT", 0.0),           # already past: retry now
    (None, None), ("", None), ("soon", None), ("nan", None), ("Wed, 32 Oct 2015 07:28:30 GMT", None),
])
def test_retry_after_forms(value, seconds):
    assert retry_after_seconds(value, now=NOW) == seconds


def test_retry_after_is_capped_like_the_backoff():
    policy = RetryPolicy(max_delay=7.0)
    far = formatdate((datetime.now(timezone.utc) + timedelta(hours=1)).timestamp(), usegmt=True)
    assert policy.delay(0, far) == 7.0
    assert policy.delay(0, "3600") == 7.0
    assert policy.delay(0, "Wed, 21 Oct 2015 07:28:00 GMT") == 0.0
    assert 0 <= policy.delay(0, "garbage") <= policy.base_delay  # unreadable: the usual jittered backoff


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_an_http_date_retry_after_is_waited_for(fake_server, mode):
    # Whole seconds on the wire: +3 s from now is at least 2 s ahead once truncated.
    when = formatdate(time.time() + 3, usegmt=True)
    fake_server.script(Reply(429, {"error": {"message": "slow down"}}, headers={"retry-after": when}),
                       Answer(text="fine"))
    response = run_call("llm", mode, fake_server.url, max_retries=1, timeout=10.0, retry_max_delay=10.0,
                        retry_base_delay=0.0)
    assert response.content == "fine"
    first, second = fake_server.requests
    assert second.at - first.at >= 1.0  # measured where the requests arrive


# ============================================================================ OLLAMA_HOST

OLLAMA_HOSTS = [
    (None, "http://localhost:11434"),
    ("", "http://localhost:11434"),
    ("gpu-box", "http://gpu-box:11434"),
    ("gpu-box:8080", "http://gpu-box:8080"),
    (":8080", "http://localhost:8080"),
    ("http://gpu-box", "http://gpu-box:80"),             # as Ollama's clients read it: the scheme's port
    ("https://gpu-box", "https://gpu-box:443"),
    ("http://gpu-box:11434/", "http://gpu-box:11434"),
    ("https://ollama.example.com:8443/prefix/", "https://ollama.example.com:8443/prefix"),
    ("gpu-box/prefix", "http://gpu-box:11434/prefix"),
    ("0.0.0.0", "http://127.0.0.1:11434"),               # a listen address: reached on the loopback
    ("0.0.0.0:1234", "http://127.0.0.1:1234"),
    ("[::1]", "http://[::1]:11434"),
    ("[::1]:9000", "http://[::1]:9000"),
    ("::1", "http://[::1]:11434"),
    ("[::]", "http://[::1]:11434"),
    ("https://[2001:db8::1]:9000", "https://[2001:db8::1]:9000"),
    ("  http://10.0.0.5:11434  ", "http://10.0.0.5:11434"),
]


@pytest.mark.parametrize("value, expected", OLLAMA_HOSTS)
def test_the_ollama_llm_and_embedder_read_ollama_host_alike(monkeypatch, value, expected):
    assert parse_ollama_host(value) == expected
    if value is None:
        monkeypatch.delenv("OLLAMA_HOST", raising=False)
    else:
        monkeypatch.setenv("OLLAMA_HOST", value)
    assert OllamaLLM({}).base_url == OllamaEmbedder({}).base_url == expected
    if value:  # the same value configured, not from the environment
        monkeypatch.setenv("OLLAMA_HOST", "elsewhere")
        assert (OllamaLLM({"ollama_base_url": value}).base_url ==
                OllamaEmbedder({"ollama_base_url": value}).base_url == expected)


@pytest.mark.parametrize("value", ["ftp://gpu-box", "gpu-box:port", "[::1", "http://gpu-box:99999"])
def test_an_unreadable_ollama_host_is_a_configuration_error(monkeypatch, value):
    monkeypatch.setenv("OLLAMA_HOST", value)
    for provider in (OllamaLLM, OllamaEmbedder):
        with pytest.raises(ConfigurationError, match="Ollama host"):
            provider({})


def test_ollama_base_url_wins_over_the_environment(monkeypatch):
    monkeypatch.setenv("OLLAMA_HOST", "from-env")
    assert ollama_base_url("configured:1") == "http://configured:1"
    assert ollama_base_url(None) == "http://from-env:11434"
    both = {"ollama_base_url": "http://a:1", "base_url": "http://b:2"}  # both given: mem0's key wins
    assert OllamaLLM(dict(both)).base_url == OllamaEmbedder(dict(both)).base_url == "http://a:1"


# ============================================================================ accepted-then-ignored config

def test_mem0_version_v1_1_is_accepted():
    assert MemoryConfig.from_mem0({"version": "v1.1"}).version == "v1.1"
    assert MemoryConfig.from_mem0({"version": None}).version is None
    assert MemoryConfig().version == "v1.1"


@pytest.mark.parametrize("data, key", [
    ({"version": "v1.0"}, "version"),
    ({"version": "v2"}, "version"),
    ({"graph_store": {"provider": "neptune", "config": {"endpoint": "x"}}}, "graph_store"),
    ({"graph_store": {"provider": "kuzu"}}, "graph_store"),
    ({"custom_update_memory_prompt": "Only ever ADD."}, "custom_update_memory_prompt"),
])
def test_config_keys_memlane_would_ignore_are_refused(tmp_path, data, key):
    with pytest.raises(ConfigurationError, match=key) as info:
        MemoryConfig.from_mem0(data)
    assert "not supported" in str(info.value)
    with pytest.raises(ConfigurationError, match=key):
        MemoryConfig(**data)
    with pytest.raises(ConfigurationError, match=key):  # the public entry point says the same
        Memory({"vector_store": {"provider": "sqlite", "config": {"path": str(tmp_path / "m.db")}}, **data})


def test_unset_mem0_keys_are_fine():
    # mem0 dumps unset keys as None.
    config = MemoryConfig.from_mem0({"graph_store": None, "custom_update_memory_prompt": None})
    assert config.graph_store is None and config.custom_update_memory_prompt is None
