"""The MCP server (memlane.mcp), driven by the official SDK's own client (`mcp.Client`): over stdio (the
`memlane mcp` command as a subprocess) and over streamable HTTP (uvicorn on a loopback port, real HTTP);
and the client configurations of docs/mcp.md, started exactly as written."""
from __future__ import annotations

import json
import os
import re
import shlex
import socket
import sys
import threading
import time
from pathlib import Path
from typing import Any, Iterator

import pytest

pytest.importorskip("mcp")

import httpx  # noqa: E402
from mcp import Client, StdioServerParameters  # noqa: E402
from mcp_types.version import HANDSHAKE_PROTOCOL_VERSIONS, MODERN_PROTOCOL_VERSIONS  # noqa: E402

from memlane import Memory  # noqa: E402
from memlane.config import MemoryConfig, ProviderConfig  # noqa: E402
from memlane.errors import ConfigurationError, MemlaneError  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
TOOLS = {"add_memory", "search_memories", "list_memories", "get_memory", "update_memory", "delete_memory",
         "delete_all_memories", "memory_history", "list_relations"}
DEFAULT_USER = "default-user"
MISSING = "00000000-0000-4000-8000-000000000000"


@pytest.fixture(autouse=True)
def _no_llm(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("MEMLANE_LLM", "none")
    monkeypatch.setenv("MEMLANE_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("MEMLANE_MCP_USER", raising=False)


def _env(tmp_path: Path) -> dict[str, str]:
    """The subprocess's environment: this one, no LLM, a private home, the venv's bin first on PATH."""
    env = {k: v for k, v in os.environ.items() if k != "MEMLANE_MCP_USER"}
    env.update(MEMLANE_LLM="none", MEMLANE_HOME=str(tmp_path / "home"),
               PATH=os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")]))
    return env


def _memory(path: Path) -> Memory:
    return Memory(MemoryConfig(vector_store=ProviderConfig(provider="sqlite", config={"path": str(path)})))


async def _ok(client: Client, tool: str, **arguments: Any) -> dict[str, Any]:
    result = await client.call_tool(tool, arguments)
    assert not result.is_error, (tool, result.content)
    assert isinstance(result.structured_content, dict)
    return result.structured_content


async def _error(client: Client, tool: str, **arguments: Any) -> str:
    result = await client.call_tool(tool, arguments)
    assert result.is_error, (tool, result.structured_content)
    text = " ".join(getattr(block, "text", "") for block in result.content)
    assert "Traceback" not in text and 'File "' not in text
    return text


async def exercise(client: Client) -> None:
    """Every tool, the resource, scope isolation and the errors, against a server whose default user is
    DEFAULT_USER and which has no LLM."""
    tools = await client.list_tools()
    assert {t.name for t in tools.tools} == TOOLS
    add = next(t for t in tools.tools if t.name == "add_memory")
    assert {"user_id", "agent_id", "run_id", "text"} <= set(add.input_schema["properties"])
    assert add.input_schema["properties"]["user_id"]["description"]
    assert "ctx" not in add.input_schema["properties"]

    # add: verbatim (infer=False) without an LLM; the default user when no scope is named
    added = await _ok(client, "add_memory", text="I am allergic to peanuts", user_id="alice",
                      metadata={"topic": "health"})
    [alice_item] = added["results"]
    assert alice_item["event"] == "ADD" and alice_item["memory"] == "I am allergic to peanuts"
    alice_id = alice_item["id"]
    bob_id = (await _ok(client, "add_memory", text="Bob plays the cello every evening",
                        user_id="bob"))["results"][0]["id"]
    mine = (await _ok(client, "add_memory", text="My favourite city is Lisbon"))["results"][0]["id"]
    assert (await _ok(client, "get_memory", memory_id=mine))["user_id"] == DEFAULT_USER
    listed = await _ok(client, "list_memories")
    assert [m["id"] for m in listed["results"]] == [mine] and listed["total"] == 1

    # search and list stay within the scope
    found = await _ok(client, "search_memories", query="peanut allergy", user_id="alice")
    assert [r["id"] for r in found["results"]] == [alice_id] and 0 <= found["results"][0]["score"] <= 1
    cello = await _ok(client, "search_memories", query="cello", user_id="alice")
    assert {r["id"] for r in cello["results"]} <= {alice_id}  # nothing of bob's
    assert bob_id not in {r["id"] for r in (await _ok(client, "search_memories", query="cello"))["results"]}
    filtered = await _ok(client, "list_memories", user_id="alice", filters={"topic": "health"})
    assert [m["id"] for m in filtered["results"]] == [alice_id]

    # id tools: another user's memory is "not found", as an unknown id is
    got = await _ok(client, "get_memory", memory_id=alice_id, user_id="alice")
    assert got["memory"] == "I am allergic to peanuts" and got["metadata"] == {"topic": "health"}
    for tool, extra in [("get_memory", {}), ("update_memory", {"text": "hacked"}), ("delete_memory", {}),
                        ("memory_history", {})]:
        message = await _error(client, tool, memory_id=alice_id, user_id="bob", **extra)
        assert f"memory {alice_id} not found for user bob" in message
    assert "not found" in await _error(client, "get_memory", memory_id=alice_id)  # the default user's scope
    message = await _error(client, "get_memory", memory_id=MISSING, user_id="alice")
    assert f"memory {MISSING} not found" in message
    assert "not-an-id" in await _error(client, "get_memory", memory_id="not-an-id", user_id="alice")
    assert "needs a new text or metadata" in await _error(client, "update_memory", memory_id=alice_id,
                                                          user_id="alice")
    assert "graph memory is not configured" in await _error(client, "list_relations", user_id="alice")

    # update and history
    await _ok(client, "update_memory", memory_id=alice_id, user_id="alice", text="I am allergic to tree nuts")
    assert (await _ok(client, "get_memory", memory_id=alice_id, user_id="alice"))["memory"] == (
        "I am allergic to tree nuts")
    history = (await _ok(client, "memory_history", memory_id=alice_id, user_id="alice"))["results"]
    assert [h["event"] for h in history] == ["ADD", "UPDATE"]
    assert history[1]["old_memory"] == "I am allergic to peanuts"

    # the resource template per scope
    templates = {t.uri_template for t in (await client.list_resource_templates()).resource_templates}
    assert "memlane://users/{user_id}/memories" in templates
    read = await client.read_resource("memlane://users/alice/memories")
    content = json.loads(read.contents[0].text)  # type: ignore[union-attr]
    assert [m["id"] for m in content["results"]] == [alice_id] and content["total"] == 1
    assert json.loads((await client.read_resource("memlane://users/nobody/memories"))
                      .contents[0].text)["total"] == 0  # type: ignore[union-attr]

    # deletes: bob's memory survives alice's calls; delete_all empties one scope only
    assert (await _ok(client, "get_memory", memory_id=bob_id, user_id="bob"))["id"] == bob_id
    await _ok(client, "delete_memory", memory_id=alice_id, user_id="alice")
    assert "not found" in await _error(client, "get_memory", memory_id=alice_id, user_id="alice")
    await _ok(client, "delete_all_memories", user_id="bob")
    assert (await _ok(client, "list_memories", user_id="bob"))["total"] == 0
    assert (await _ok(client, "list_memories"))["total"] == 1
    # arguments the schema refuses come back as tool errors too
    assert "limit" in await _error(client, "search_memories", query="x", limit=0)


# ------------------------------------------------------------------ stdio


async def test_stdio_every_tool(tmp_path: Path) -> None:
    """Over the initialize handshake (mode="legacy"), as the desktop clients speak it today."""
    params = StdioServerParameters(
        command=sys.executable, args=["-m", "memlane.cli", "mcp", "--db", str(tmp_path / "m.db"),
                                      "--user", DEFAULT_USER], env=_env(tmp_path))
    async with Client(params, mode="legacy") as client:
        assert client.server_info is not None and client.server_info.name == "memlane"
        assert client.protocol_version in HANDSHAKE_PROTOCOL_VERSIONS
        await exercise(client)
        read = await client.read_resource("memlane://memories")  # the default user's, listed as a resource
        assert json.loads(read.contents[0].text)["total"] == 1  # type: ignore[union-attr]
        assert "memlane://memories" in {str(r.uri) for r in (await client.list_resources()).resources}
    assert (tmp_path / "m.db").exists()


# ------------------------------------------------------------------ HTTP


class _Uvicorn:
    """An ASGI app served by uvicorn on a free loopback port, in a thread."""

    def __init__(self, app: Any):
        import uvicorn

        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="on"))
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [self.sock]}, daemon=True)

    def __enter__(self) -> "_Uvicorn":
        self.thread.start()
        deadline = time.monotonic() + 20
        while not self.server.started:
            assert self.thread.is_alive() and time.monotonic() < deadline, "uvicorn did not start"
            time.sleep(0.02)
        return self

    def __exit__(self, *exc: Any) -> None:
        self.server.should_exit = True
        self.thread.join(10)
        self.sock.close()

    def url(self, path: str = "/mcp") -> str:
        return f"http://127.0.0.1:{self.port}{path}"


@pytest.fixture
def memory(tmp_path: Path) -> Iterator[Memory]:
    with _memory(tmp_path / "http.db") as m:
        yield m


async def test_http_every_tool(memory: Memory) -> None:
    """Over the protocol's current version (mode "auto" finds it with server/discover)."""
    from memlane.mcp import http_app

    with _Uvicorn(http_app(memory, default_user_id=DEFAULT_USER)) as served:
        async with Client(served.url()) as client:
            assert client.protocol_version in MODERN_PROTOCOL_VERSIONS
            await exercise(client)


def _client(url: str, key: str, mode: Any = "auto") -> Client:
    from mcp.client.streamable_http import streamable_http_client
    from mcp.shared._httpx_utils import create_mcp_http_client

    http = create_mcp_http_client(headers={"Authorization": f"Bearer {key}"})
    return Client(streamable_http_client(url, http_client=http), mode=mode)


class Unauthorized(MemlaneError):
    pass


class RateLimited(MemlaneError):
    retry_after = 7


async def test_http_mounted_with_keys(tmp_path: Path) -> None:
    """mount() in a Starlette app: each request's key picks the tenant (a store of its own); a key bound to
    user_ids reaches only them; no key or a bad one is an HTTP error before the protocol."""
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import PlainTextResponse
    from starlette.routing import Route

    from memlane.mcp import mount
    from memlane.mcp.server import Tenant

    with _memory(tmp_path / "a.db") as store_a, _memory(tmp_path / "b.db") as store_b:
        keys = {"key-a": Tenant(store_a), "key-b": Tenant(store_b, frozenset({"carol"}))}

        def authenticate(request: Request) -> Tenant:
            key = request.headers.get("authorization", "").removeprefix("Bearer ")
            if key == "slow-down":
                raise RateLimited("too many requests")
            if key not in keys:
                raise Unauthorized("an API key is required")
            return keys[key]

        app = Starlette(routes=[Route("/healthz", lambda request: PlainTextResponse("ok"))])
        mount(app, "/mcp", authenticate=authenticate)
        with _Uvicorn(app) as served:
            assert httpx.get(served.url("/healthz")).text == "ok"
            init = {"jsonrpc": "2.0", "id": 1, "method": "initialize",
                    "params": {"protocolVersion": "2025-06-18", "capabilities": {},
                               "clientInfo": {"name": "t", "version": "1"}}}
            headers = {"Accept": "application/json, text/event-stream"}
            refused = httpx.post(served.url(), json=init, headers=headers)
            assert refused.status_code == 401 and refused.json()["error"] == "an API key is required"
            limited = httpx.post(served.url(), json=init, headers={**headers, "Authorization": "Bearer slow-down"})
            assert limited.status_code == 429 and limited.headers["retry-after"] == "7"

            # the handshake era: a session (Mcp-Session-Id) whose every POST is authenticated again
            async with _client(served.url(), "key-a", mode="legacy") as a:
                await _ok(a, "add_memory", text="Tenant A's secret plan", user_id="carol")
                assert (await _ok(a, "list_memories", user_id="carol"))["total"] == 1
            async with _client(served.url(), "key-b", mode="legacy") as b:
                assert (await _ok(b, "list_memories", user_id="carol"))["total"] == 0  # another store
                carol = (await _ok(b, "add_memory", text="Carol likes jazz", user_id="carol"))["results"][0]["id"]
                message = await _error(b, "list_memories", user_id="dave")
                assert "user_ids" in message
                assert "user_ids" in await _error(b, "search_memories", query="jazz")  # no user named
                assert (await _ok(b, "get_memory", memory_id=carol, user_id="carol"))["memory"] == "Carol likes jazz"
                with pytest.raises(Exception, match="no such resource"):
                    await b.read_resource("memlane://users/dave/memories")
            assert store_b.get_all(user_id="carol")["total"] == 1
            assert store_a.get_all(user_id="carol")["total"] == 1


# ------------------------------------------------------------------ docs/mcp.md, as written


def _doc_commands() -> list[list[str]]:
    """Every local server command docs/mcp.md gives: the JSON configurations' command + args, and the
    `claude mcp add ... -- COMMAND` lines."""
    text = (ROOT / "docs" / "mcp.md").read_text()
    commands = []
    for block in re.findall(r"```json\n(.*?)```", text, re.S):
        for name, entry in json.loads(block)["mcpServers"].items():
            assert name == "memlane"
            commands.append([entry["command"], *entry["args"]])
    for block in re.findall(r"```bash\n(.*?)```", text, re.S):
        for line in block.splitlines():
            if line.startswith("claude mcp add") and " -- " in line:
                commands.append(shlex.split(line.split(" -- ", 1)[1]))
    assert len(commands) >= 3
    return commands


async def test_docs_configurations_start_the_server(tmp_path: Path) -> None:
    distinct = {tuple(c) for c in _doc_commands()}
    for command, *args in sorted(distinct):
        params = StdioServerParameters(command=command, args=args, env=_env(tmp_path))
        async with Client(params, mode="legacy") as client:  # initialize, as the clients send it
            assert client.server_info is not None and client.server_info.name == "memlane"
            assert {t.name for t in (await client.list_tools()).tools} == TOOLS


# ------------------------------------------------------------------ without the SDK


def test_missing_sdk_names_the_extra(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
                                     tmp_path: Path) -> None:
    from memlane import cli
    from memlane.mcp import build_server

    monkeypatch.setitem(sys.modules, "mcp.server", None)
    with pytest.raises(ConfigurationError, match=re.escape("memlane[mcp]")):
        build_server(lambda: None)  # type: ignore[arg-type,return-value]
    assert cli.main(["mcp", "--db", str(tmp_path / "x.db")]) == cli.EXIT_BAD_INPUT
    assert "memlane[mcp]" in capsys.readouterr().err
    assert not (tmp_path / "x.db").exists()  # refused before opening anything


def test_cli_help_lists_mcp(capsys: pytest.CaptureFixture[str]) -> None:
    from memlane import cli

    with pytest.raises(SystemExit):
        cli.main(["mcp", "--help"])
    out = capsys.readouterr().out
    assert "--user" in out and "--db" in out and "MEMLANE_MCP_USER" in out


# ------------------------------------------------------------------ behind the REST server's keys


async def test_mounted_in_the_rest_server(tmp_path: Path) -> None:
    """mount() on the REST app (memlane.server): its API keys pick the tenant's store, a key bound to
    user_ids reaches only those users, a missing key is a 401 before the protocol, the REST routes still
    answer."""
    server = pytest.importorskip("memlane.server")
    from memlane.mcp import mount

    app = server.create_app(server.ServerSettings(home=str(tmp_path / "serve"), rate_limit=0))
    state = app.state.memlane
    mount(app, "/mcp", authenticate=lambda request: state.principal(request.headers.get("authorization")))
    full, _ = state.keys.create("acme")
    bound, _ = state.keys.create("acme", user_ids=["carol"])
    other, _ = state.keys.create("globex")
    with _Uvicorn(app) as served:
        assert httpx.get(served.url("/healthz")).json() == {"status": "ok"}
        refused = httpx.post(served.url(), json={"jsonrpc": "2.0", "id": 1, "method": "ping"},
                             headers={"Accept": "application/json, text/event-stream"})
        assert refused.status_code == 401
        async with _client(served.url(), full) as client:
            dave = (await _ok(client, "add_memory", text="Dave owns a red bike", user_id="dave"))["results"][0]["id"]
            await _ok(client, "add_memory", text="Carol plays chess", user_id="carol")
        async with _client(served.url(), bound) as client:
            assert (await _ok(client, "list_memories", user_id="carol"))["total"] == 1
            assert "user_ids" in await _error(client, "list_memories", user_id="dave")
            assert "not found" in await _error(client, "get_memory", memory_id=dave, user_id="carol")
        async with _client(served.url(), other) as client:
            assert (await _ok(client, "list_memories", user_id="dave"))["total"] == 0
        rest = httpx.get(served.url("/api/memories"), params={"user_id": "dave"},
                         headers={"Authorization": f"Token {full}"})
        assert rest.status_code == 200, rest.text
