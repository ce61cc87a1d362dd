"""memlane serve --mcp: the MCP server (memlane.mcp) at /mcp behind the same API keys."""
import httpx
import pytest

from memlane.server import ServerSettings
from memlane.server.background import serve_in_thread
from memlane.server.keys import KeyStore

pytest.importorskip("memlane.mcp")  # the MCP server is its own module (and extra)
pytest.importorskip("mcp")

INIT = {"jsonrpc": "2.0", "id": 1, "method": "initialize",
        "params": {"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "t", "version": "0"}}}
HEADERS = {"Accept": "application/json, text/event-stream", "Content-Type": "application/json"}


def test_mcp_mounted_with_the_servers_keys(tmp_path):
    secret, _ = KeyStore(tmp_path / "keys.db").create("acme")
    with serve_in_thread(ServerSettings(home=str(tmp_path), mcp=True, rate_limit=0)) as url:
        assert httpx.post(url + "/mcp", json=INIT, headers=HEADERS).status_code == 401
        r = httpx.post(url + "/mcp", json=INIT, headers={**HEADERS, "Authorization": f"Token {secret}"})
        assert r.status_code == 200, r.text
        assert "serverInfo" in r.text
        assert httpx.get(url + "/api/users", headers={"Authorization": f"Token {secret}"}).status_code == 200
