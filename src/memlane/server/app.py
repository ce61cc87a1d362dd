"""The ASGI app: `create_app(settings)`. Native routes under /api (routes_native.py), mem0 platform routes
(routes_mem0.py), health, metrics, and `mount_mcp(app, asgi_app)` for an MCP server at /mcp."""
from __future__ import annotations

import json
import logging
import os
from contextlib import asynccontextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, AsyncIterator, Awaitable, Callable, MutableMapping, Optional

try:
    import anyio.to_thread
    from fastapi import Depends, FastAPI, Request
    from fastapi.exceptions import RequestValidationError
    from fastapi.middleware.cors import CORSMiddleware
    from fastapi.responses import JSONResponse, PlainTextResponse
    from fastapi.security import APIKeyHeader
except ImportError as exc:  # pragma: no cover - depends on the environment
    from ..errors import missing_extra
    raise missing_extra("fastapi", "server") from exc

from ..config import MemoryConfig, default_home
from ..errors import (ConfigurationError, ConflictError, InternalError, LLMError, MemlaneError, NotFoundError,
                      ProviderError, ValidationError)
from .keys import ApiKey, KeyStore
from .metrics import Metrics
from .ratelimit import RateLimiter
from .service import Forbidden, Principal, Unauthorized
from .tenants import Tenants

log = logging.getLogger("memlane.server")
NO_AUTH_TENANT = "default"
SETTINGS_ENV = "MEMLANE_SERVE_SETTINGS"


@dataclass
class ServerSettings:
    home: Optional[str] = None  # $MEMLANE_HOME (default ~/.memlane)
    config: Optional[dict[str, Any]] = None  # a mem0-style config dict; None: the CLI's default config
    no_auth: bool = False
    host: str = "127.0.0.1"
    rate_limit: float = 50.0  # requests a second per key (0: off), burst twice that
    max_body_bytes: int = 1_048_576
    cors_origins: list[str] = field(default_factory=list)
    mcp: bool = False  # also serve MCP (streamable HTTP) at /mcp, with the same keys (needs memlane[mcp])

    def home_path(self) -> Path:
        return Path(self.home) if self.home else default_home()

    def memory_config(self) -> MemoryConfig:
        return MemoryConfig.from_mem0(self.config) if self.config is not None else MemoryConfig()

    def to_env(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_env(cls) -> "ServerSettings":
        return cls(**json.loads(os.environ[SETTINGS_ENV]))


# ------------------------------------------------------------------ errors: status and body

ERROR_SCHEMA = {"type": "object", "properties": {"detail": {}, "error": {"type": "string"}}, "required": ["detail"]}


def _err(description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": ERROR_SCHEMA}}}


ERRORS: dict[int | str, dict[str, Any]] = {
    400: _err("bad input (memlane's ValidationError or ConfigurationError)"),
    401: _err("no API key, or not a live one"),
    403: _err("the key may not do this (not admin, or outside its user_ids)"),
    404: _err("not found (or not this key's)"),
    409: _err("a conflicting write; nothing was written"),
    413: _err("request body too large"),
    422: _err("the request does not match the schema"),
    429: _err("rate limited; see Retry-After"),
    500: _err("internal error"),
    502: _err("a provider (LLM, embedder) failed"),
}


def status_of(exc: MemlaneError) -> int:
    if isinstance(exc, Unauthorized):
        return 401
    if isinstance(exc, Forbidden):
        return 403
    if isinstance(exc, NotFoundError):
        return 404
    if isinstance(exc, ConflictError):
        return 409
    if isinstance(exc, (ValidationError, ConfigurationError)):
        return 400
    if isinstance(exc, (ProviderError, LLMError)):
        return 502
    return 500


def error_response(status: int, detail: Any, error: str, headers: Optional[dict[str, str]] = None) -> JSONResponse:
    return JSONResponse({"detail": detail, "error": error}, status_code=status, headers=headers)


class RateLimited(MemlaneError):
    def __init__(self, retry_after: int):
        super().__init__(f"rate limited: retry after {retry_after} s")
        self.retry_after = retry_after


# ------------------------------------------------------------------ body size

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Any]]
Send = Callable[[Any], Awaitable[None]]


def body_limit(app: Any, limit: int) -> Any:
    async def wrapped(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await app(scope, receive, send)
            return
        declared = dict(scope.get("headers") or []).get(b"content-length")
        too_big = declared is not None and declared.isdigit() and int(declared) > limit
        chunks: list[Any] = []
        if not too_big and scope.get("method") in ("POST", "PUT", "PATCH", "DELETE"):
            size = 0
            while True:  # read it all here (bounded), then replay it to the app
                message = await receive()
                chunks.append(message)
                if message["type"] != "http.request":
                    break
                size += len(message.get("body", b""))
                if size > limit:
                    too_big = True
                    break
                if not message.get("more_body"):
                    break
        if too_big:
            response = error_response(413, f"request body over {limit} bytes", "ValidationError")
            await response(scope, receive, send)
            return

        async def replay() -> Any:
            return chunks.pop(0) if chunks else await receive()
        await app(scope, replay if chunks else receive, send)
    return wrapped


# ------------------------------------------------------------------ the app

api_key_header = APIKeyHeader(name="Authorization", auto_error=False,
                              description="`Token <key>` (mem0's client), `Bearer <key>`, or the key alone")


class State:
    def __init__(self, settings: ServerSettings):
        if settings.no_auth and settings.host not in ("127.0.0.1", "localhost", "::1"):
            raise ConfigurationError("--no-auth is only allowed on 127.0.0.1 (loopback)")
        self.settings = settings
        home = settings.home_path()
        self.keys = KeyStore(home / "keys.db")
        self.tenants = Tenants(settings.memory_config(), home)
        self.limiter = RateLimiter(settings.rate_limit)
        self.metrics = Metrics()
        self.metrics.gauges["memlane_tenants_open"] = lambda: float(len(self.tenants.opened()))
        self.metrics.gauges["memlane_jobs_pending"] = self._jobs_pending

    def _jobs_pending(self) -> float:
        """Background adds queued or running, over the tenants this process has open."""
        opened = (self.tenants.peek(t) for t in self.tenants.opened())
        return float(sum(m.pending_jobs() for m in opened if m is not None))

    def principal(self, authorization: Optional[str]) -> Principal:
        """The request's key, its tenant's Memory and its user_ids; Unauthorized or RateLimited if not."""
        key = self.authenticate(authorization)
        return Principal(key.tenant, key.id, key.admin, key.user_ids, self.tenants.get(key.tenant))

    def authenticate(self, authorization: Optional[str]) -> ApiKey:
        if self.settings.no_auth:
            return ApiKey("no-auth", NO_AUTH_TENANT, admin=True)
        if not authorization:
            raise Unauthorized("an API key is required: Authorization: Token <key>")
        secret = authorization.strip()
        scheme, _, rest = secret.partition(" ")
        if rest and scheme.lower() in ("token", "bearer"):
            secret = rest.strip()
        key = self.keys.verify(secret)
        if key is None:
            raise Unauthorized("invalid or revoked API key")
        wait = self.limiter.check(key.id)
        if wait is not None:
            raise RateLimited(wait)
        return key

    def close(self) -> None:
        self.tenants.close()
        self.keys.close()


def create_app(settings: Optional[ServerSettings] = None) -> FastAPI:
    settings = settings or ServerSettings()
    state = State(settings)
    if settings.no_auth:
        log.warning("memlane serve: --no-auth: EVERY REQUEST IS TRUSTED, with no API key, as tenant %r. "
                    "Loopback only; never expose this port.", NO_AUTH_TENANT)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        try:
            yield
        finally:
            state.close()

    app = FastAPI(title="memlane", version=_version(), lifespan=lifespan,
                  description="Long-term memory for LLM applications: memlane's API and mem0's platform routes. "
                              "Every route but health, metrics and these docs takes an API key.")
    app.state.memlane = state

    async def principal(authorization: Optional[str] = Depends(api_key_header)) -> Principal:
        # On the event loop, not a worker thread: the key lookup is one indexed read, cheaper than a thread
        # hop; opening a tenant's store (its first request) goes to a thread.
        key = state.authenticate(authorization)
        memory = state.tenants.peek(key.tenant)
        if memory is None:
            memory = await anyio.to_thread.run_sync(state.tenants.get, key.tenant)
        return Principal(key.tenant, key.id, key.admin, key.user_ids, memory)

    @app.exception_handler(MemlaneError)
    async def memlane_error(request: Request, exc: MemlaneError) -> JSONResponse:
        if isinstance(exc, RateLimited):
            return error_response(429, str(exc), "RateLimited", {"Retry-After": str(exc.retry_after)})
        status = status_of(exc)
        if status == 500:
            log.error("internal error on %s %s", request.method, request.url.path, exc_info=exc)
        return error_response(status, str(exc), type(exc).__name__)

    @app.exception_handler(RequestValidationError)
    async def invalid_request(request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = [{"loc": list(e.get("loc", ())), "msg": str(e.get("msg", "")), "type": str(e.get("type", ""))}
                  for e in exc.errors()]
        return error_response(422, errors, "ValidationError")

    @app.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.error("unexpected error on %s %s", request.method, request.url.path, exc_info=exc)
        return error_response(500, "internal error", InternalError.__name__)

    @app.get("/healthz", tags=["health"], responses={200: {"description": "the process answers"}})
    def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/readyz", tags=["health"], responses={200: {"description": "keys and stores open"},
                                                    503: _err("not ready")})
    def readyz() -> Any:
        try:
            state.keys.list(tenant="")
        except Exception as exc:  # noqa: BLE001 - a readiness probe reports, it does not raise
            return error_response(503, f"keys database: {exc}", "NotReady")
        return {"status": "ready", "tenants_open": len(state.tenants.opened())}

    @app.get("/metrics", tags=["health"], response_class=PlainTextResponse,
             responses={200: {"description": "Prometheus text",
                              "content": {"text/plain": {"schema": {"type": "string"}}}}})
    def metrics() -> PlainTextResponse:
        return PlainTextResponse(state.metrics.render(), media_type="text/plain; version=0.0.4")

    from . import routes_mem0, routes_native
    app.include_router(routes_native.router(principal, state))
    app.include_router(routes_mem0.router(principal, state))
    from .ui import mount_ui
    mount_ui(app)  # the dashboard at / and /ui/* (static files, no key; the page calls /api with one)

    if settings.mcp:
        import importlib
        mount = importlib.import_module("memlane.mcp").mount  # the MCP server; its SDK is the mcp extra

        def authenticate(request: Request) -> Principal:
            return state.principal(request.headers.get("authorization"))
        mount(app, "/mcp", authenticate=authenticate, host=settings.host)

    app.add_middleware(_Raw, wrap=lambda inner: body_limit(inner, settings.max_body_bytes))
    if settings.cors_origins:
        app.add_middleware(CORSMiddleware, allow_origins=settings.cors_origins, allow_methods=["*"],
                           allow_headers=["*"])
    app.add_middleware(_Raw, wrap=state.metrics.middleware)
    return app


class _Raw:
    """Adapts a function (app -> app) to Starlette's add_middleware."""

    def __init__(self, app: Any, wrap: Callable[[Any], Any]):
        self._app = wrap(app)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self._app(scope, receive, send)


def mount_mcp(app: FastAPI, asgi_app: Any, path: str = "/mcp") -> None:
    """Mount any ASGI app at /mcp (ServerSettings(mcp=True) mounts memlane.mcp's with the server's keys).
    `app.state.memlane.principal(authorization header)` gives a request's Principal: its tenant's Memory
    (.memory) and the key's .user_ids; it raises Unauthorized / Forbidden / RateLimited (MemlaneErrors)."""
    app.mount(path, asgi_app)


def factory() -> FastAPI:
    """For `uvicorn --factory` and `memlane serve --workers N`: the settings come from MEMLANE_SERVE_SETTINGS."""
    return create_app(ServerSettings.from_env())


def _version() -> str:
    from .. import __version__
    return __version__
