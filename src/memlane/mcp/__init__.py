"""memlane as an MCP server (Model Context Protocol): tools and resources on the official `mcp` SDK.

Needs the `mcp` extra (`pip install 'memlane[mcp]'`). `memlane mcp` serves it over stdio; `http_app()` and
`mount()` give the streamable-HTTP endpoint for `memlane serve --mcp`. See docs/mcp.md.
"""
from .server import USER_ENV, Tenant, build_server
from .transports import MCPHttpApp, http_app, mount, run_stdio

__all__ = ["USER_ENV", "MCPHttpApp", "Tenant", "build_server", "http_app", "mount", "run_stdio"]
