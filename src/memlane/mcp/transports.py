"""The MCP server's transports: stdio (`memlane mcp`) and streamable HTTP (an ASGI app to mount at /mcp)."""
from __future__ import annotations

from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import TYPE_CHECKING, Any, AsyncIterator, Callable, Optional

from ..errors import MemlaneError, NotFoundError, ValidationError
from .server import TENANT_KEY, MemorySource, RequestMemory, _require_sdk, build_server

if TYPE_CHECKING:
    from mcp.server import MCPServer
    from mcp.server.transport_security import TransportSecuritySettings
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.types import Receive, Scope, Send

    from ..config import MemoryConfig


class MCPHttpApp:
    """The streamable-HTTP MCP endpoint as an ASGI app that answers on whatever path it is mounted at.

    Its session manager must run while it serves: served on its own (uvicorn), it handles the ASGI lifespan
    itself; mounted in another app, enter `lifespan()` in that app's lifespan (mount() does this).

    `authenticate(request)`, when given, runs (in a worker thread) before each HTTP request reaches the
    protocol: what it returns (a Memory, or a tenant with .memory and .user_ids) is what that request's tool
    calls act on; a MemlaneError it raises is answered with an HTTP error (401, or 403 Forbidden, 429
    RateLimited with Retry-After, by the error's class name) and a JSON body {"error", "type"}."""

    def __init__(self, server: MCPServer, *, json_response: bool = False, stateless: bool = False,
                 host: str = "127.0.0.1", transport_security: Optional[TransportSecuritySettings] = None,
                 authenticate: Optional[Callable[[Request], Any]] = None):
        self.server = server
        self._authenticate = authenticate
        # Builds the session manager; host is the SDK's: a loopback host turns on its DNS-rebinding check.
        self._app = server.streamable_http_app(streamable_http_path="/", json_response=json_response,
                                               stateless_http=stateless, host=host,
                                               transport_security=transport_security)
        self.session_manager = server.session_manager

    def lifespan(self) -> AbstractAsyncContextManager[None]:
        """Run the session manager (once per app) for as long as the context is entered."""
        return self.session_manager.run()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self._app(scope, receive, send)  # the SDK's app runs the session manager in its lifespan
            return
        if self._authenticate is not None and scope["type"] == "http":
            import anyio.to_thread
            from starlette.requests import Request
            from starlette.responses import JSONResponse

            try:
                tenant = await anyio.to_thread.run_sync(self._authenticate, Request(scope, receive))
            except MemlaneError as exc:
                status, headers = _http_status(exc)
                await JSONResponse({"error": str(exc), "type": type(exc).__name__}, status_code=status,
                                   headers=headers)(scope, receive, send)
                return
            scope.setdefault("state", {})[TENANT_KEY] = tenant
        await self.session_manager.handle_request(scope, receive, send)


def _http_status(exc: MemlaneError) -> tuple[int, dict[str, str]]:
    name = type(exc).__name__
    if name == "RateLimited":
        retry = getattr(exc, "retry_after", None)
        return 429, ({} if retry is None else {"Retry-After": str(retry)})
    if name == "Forbidden":
        return 403, {}
    if isinstance(exc, NotFoundError):
        return 404, {}
    if isinstance(exc, ValidationError):
        return 400, {}
    return 401, {}


def http_app(memory_for: Optional[MemorySource] = None, *, authenticate: Optional[Callable[[Request], Any]] = None,
             memory_for_request: Optional[RequestMemory] = None, default_user_id: Optional[str] = None,
             json_response: bool = False, stateless: bool = False, host: str = "127.0.0.1",
             transport_security: Optional[TransportSecuritySettings] = None) -> MCPHttpApp:
    """The streamable-HTTP ASGI app of an MCP server. Its tool calls act on, first found:
    `memory_for_request(request)` (the request that carried the call; a Memory or a tenant with .memory and
    .user_ids); what `authenticate(request)` returned for that request (see MCPHttpApp: it also answers
    401/403/429 before the protocol); `memory_for` (a Memory, or a callable returning one).

    `host` is where the server listens: for a loopback host the SDK accepts only loopback Host and Origin
    headers (DNS-rebinding protection), unless `transport_security` says otherwise."""
    _require_sdk()
    if memory_for is None and memory_for_request is None and authenticate is None:
        raise ValidationError("http_app needs memory_for, memory_for_request or authenticate")
    server = build_server(memory_for, default_user_id=default_user_id, memory_for_request=memory_for_request,
                          http_only=memory_for is None)
    return MCPHttpApp(server, json_response=json_response, stateless=stateless, host=host,
                      transport_security=transport_security, authenticate=authenticate)


def mount(app: Starlette, path: str = "/mcp", **options: Any) -> MCPHttpApp:
    """Serve MCP at `path` of a Starlette or FastAPI app: one call. Adds the route (the exact path, every
    method: POST, GET and DELETE are the protocol's) and runs the session manager in the app's lifespan.
    `options` are http_app()'s. Middleware of the app (the key check) runs before it."""
    from starlette.routing import Route

    endpoint = http_app(**options)
    app.router.routes.append(Route(path, endpoint=endpoint))
    outer = app.router.lifespan_context

    @asynccontextmanager
    async def lifespan(a: Any) -> AsyncIterator[Any]:
        async with endpoint.lifespan():
            async with outer(a) as state:
                yield state

    app.router.lifespan_context = lifespan
    return endpoint


def run_stdio(config: Optional[MemoryConfig] = None, *, user_id: Optional[str] = None) -> None:
    """Serve MCP on stdin/stdout until the client closes them (`memlane mcp`). The Memory is opened first,
    so a bad configuration or database fails before the protocol starts."""
    _require_sdk()
    from ..memory import Memory

    with Memory(config) as memory:
        build_server(memory, default_user_id=user_id).run("stdio")
