"""HTTP for providers, sans-I/O: a provider turns a request into an `HTTPCall` and a response body into a
result (pure); `exchange` decides retries (bounded exponential backoff with full jitter on timeouts,
connection errors, 429 and 5xx, honouring Retry-After); `send_sync` / `send_async` are the only I/O.

The configured `timeout` is a deadline for each attempt: connecting, sending and reading the whole response
must finish within it. httpx's own timeouts bound each socket operation, so a server trickling its answer a
byte at a time would otherwise hold a call for as long as it liked. Async calls run under asyncio.wait_for;
sync calls give every socket connect, read and write at most the time left before the deadline (a wrapper
around httpcore's network backend), and check the deadline between body chunks as well."""
from __future__ import annotations

import asyncio
import contextvars
import json
import math
import random
import time
import weakref
from dataclasses import dataclass, field
from datetime import datetime, timezone
from email.utils import parsedate_to_datetime
from typing import Any, Callable, Generator, Optional, Union

import httpx

from .drive import adrive, drive
from .errors import ProviderError
from .provider_config import ProviderConfig

try:  # httpx's transport; absent from a future httpx, where only the between-chunks check remains
    import httpcore
except ImportError:  # pragma: no cover
    httpcore = None  # type: ignore[assignment]

RETRY_STATUS = frozenset({408, 409, 425, 429, 500, 502, 503, 504, 529})


@dataclass
class HTTPCall:
    method: str
    url: str
    headers: dict[str, str] = field(default_factory=dict)
    json: Any = None
    content: Optional[bytes] = None  # a pre-serialised body (signed requests); wins over `json`


@dataclass
class HTTPResult:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class Sleep:
    seconds: float


class DeadlineExceeded(httpx.TimeoutException):
    """One attempt (connect, send, whole response) outlasted the configured timeout."""

    def __init__(self, timeout: float):
        super().__init__(f"no complete response within the {timeout:g} s timeout")


def retry_after_seconds(value: Optional[str], now: Optional[datetime] = None) -> Optional[float]:
    """Seconds to wait from a Retry-After header: delta-seconds or an HTTP date (RFC 9110 10.2.3; a date
    already past means now). None when absent or unreadable, for the caller's own backoff."""
    if not value:
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError, OverflowError):
            return None
        if when.tzinfo is None:  # "-0000" parses without a zone; HTTP dates are always UTC
            when = when.replace(tzinfo=timezone.utc)
        seconds = (when - (now or datetime.now(timezone.utc))).total_seconds()
    if math.isnan(seconds):
        return None
    return max(0.0, seconds)


@dataclass
class RetryPolicy:
    max_retries: int = 3
    base_delay: float = 0.5
    max_delay: float = 20.0
    timeout: float = 60.0  # per attempt, the whole exchange (see the module docstring)

    @classmethod
    def from_config(cls, config: ProviderConfig) -> "RetryPolicy":
        """Takes mem0-style keys: `max_retries`, `timeout`, `retry_base_delay`, `retry_max_delay`."""
        return cls(max_retries=config.number("max_retries", 3, int),
                   timeout=config.number("timeout", 60.0, float) or 60.0,
                   base_delay=config.number("retry_base_delay", 0.5, float),
                   max_delay=config.number("retry_max_delay", 20.0, float))

    def delay(self, attempt: int, retry_after: Optional[str]) -> float:
        seconds = retry_after_seconds(retry_after)
        if seconds is not None:
            return min(self.max_delay, seconds)
        return random.uniform(0, min(self.max_delay, self.base_delay * 2 ** attempt))


def _error_text(result: HTTPResult) -> str:
    text = result.body[:500].decode("utf-8", "replace")
    return text.strip() or "(empty body)"


def exchange(call: HTTPCall, policy: RetryPolicy, provider: str,
             parse: Callable[[HTTPResult], Any]) -> Generator[Union[HTTPCall, Sleep], Any, Any]:
    """Yields the call (gets an HTTPResult back, or a transport exception thrown in) and sleeps between
    retries; returns parse(result) for a 2xx, raises ProviderError otherwise."""
    attempt = 0
    while True:
        try:
            result: HTTPResult = yield call
        except (httpx.TimeoutException, httpx.TransportError) as exc:
            if attempt >= policy.max_retries:
                kind = "timed out" if isinstance(exc, httpx.TimeoutException) else "failed"
                raise ProviderError(f"{provider}: request {kind} after {attempt + 1} attempts: {exc!r}",
                                    provider=provider) from exc
            yield Sleep(policy.delay(attempt, None))
            attempt += 1
            continue
        if 200 <= result.status < 300:
            return parse(result)
        if result.status in RETRY_STATUS and attempt < policy.max_retries:
            yield Sleep(policy.delay(attempt, result.headers.get("retry-after")))
            attempt += 1
            continue
        hint = {401: " (check the API key)", 403: " (check the API key's permissions)",
                404: " (check the model name and base URL)", 429: " (rate limited)"}.get(result.status, "")
        raise ProviderError(f"{provider}: HTTP {result.status}{hint} after {attempt + 1} attempt(s): "
                            f"{_error_text(result)}", provider=provider, status=result.status)


# ---------------------------------------------------------------- the sync deadline

# (deadline on time.monotonic(), timeout) of the attempt this thread is making, read by the socket wrapper.
_DEADLINE: contextvars.ContextVar[Optional[tuple[float, float]]] = contextvars.ContextVar(
    "memlane_http_deadline", default=None)


def _clamp(timeout: Optional[float], expired: type) -> Optional[float]:
    """A socket operation's timeout, cut to the time left before the attempt's deadline."""
    current = _DEADLINE.get()
    if current is None:
        return timeout
    deadline, total = current
    left = deadline - time.monotonic()
    if left <= 0:
        raise expired(str(DeadlineExceeded(total)))
    return left if timeout is None else min(timeout, left)


if httpcore is not None:
    class _DeadlineStream(httpcore.NetworkStream):
        def __init__(self, stream: Any):
            self._stream = stream

        def read(self, max_bytes: int, timeout: Optional[float] = None) -> bytes:
            return self._stream.read(max_bytes, _clamp(timeout, httpcore.ReadTimeout))

        def write(self, buffer: bytes, timeout: Optional[float] = None) -> None:
            self._stream.write(buffer, _clamp(timeout, httpcore.WriteTimeout))

        def close(self) -> None:
            self._stream.close()

        def start_tls(self, ssl_context: Any, server_hostname: Optional[str] = None,
                      timeout: Optional[float] = None) -> Any:
            return _DeadlineStream(self._stream.start_tls(ssl_context, server_hostname,
                                                          _clamp(timeout, httpcore.ConnectTimeout)))

        def get_extra_info(self, info: str) -> Any:
            return self._stream.get_extra_info(info)

    class _DeadlineBackend(httpcore.NetworkBackend):
        def __init__(self, backend: Any):
            self._backend = backend

        def connect_tcp(self, host: str, port: int, timeout: Optional[float] = None,
                        local_address: Optional[str] = None, socket_options: Any = None) -> Any:
            return _DeadlineStream(self._backend.connect_tcp(
                host, port, _clamp(timeout, httpcore.ConnectTimeout), local_address, socket_options))

        def connect_unix_socket(self, path: str, timeout: Optional[float] = None,
                                socket_options: Any = None) -> Any:
            return _DeadlineStream(self._backend.connect_unix_socket(
                path, _clamp(timeout, httpcore.ConnectTimeout), socket_options))

        def sleep(self, seconds: float) -> None:
            self._backend.sleep(seconds)


def deadline_client(timeout: float, verify: Any = True) -> httpx.Client:
    """An httpx.Client whose sockets honour the attempt deadline. httpx has no public hook for a network
    backend, so the wrapper goes into its transports' pools (httpx 0.2x with httpcore 1.x); where that
    layout is not found the client still works, bounded by the between-chunks check alone. `verify`:
    httpx's TLS verification (False, or an ssl.SSLContext with the server's CA)."""
    client = httpx.Client(timeout=timeout, verify=verify)
    if httpcore is not None:
        transports = [getattr(client, "_transport", None), *getattr(client, "_mounts", {}).values()]
        for transport in transports:
            pool = getattr(transport, "_pool", None)
            backend = getattr(pool, "_network_backend", None)
            if backend is not None and not isinstance(backend, _DeadlineBackend):
                pool._network_backend = _DeadlineBackend(backend)  # type: ignore[union-attr]
    return client


# ---------------------------------------------------------------- I/O

def _request_kwargs(call: HTTPCall) -> dict[str, Any]:
    kwargs: dict[str, Any] = {"headers": call.headers}
    if call.content is not None:
        kwargs["content"] = call.content
    elif call.json is not None:
        kwargs["json"] = call.json
    return kwargs


def _result(r: httpx.Response) -> HTTPResult:
    return HTTPResult(r.status_code, {k.lower(): v for k, v in r.headers.items()}, r.content)


def _attempt_sync(client: httpx.Client, call: HTTPCall, timeout: float) -> HTTPResult:
    deadline = time.monotonic() + timeout
    token = _DEADLINE.set((deadline, timeout))
    try:
        # The per-request timeout bounds the wait for a pooled connection too, which is no socket operation.
        with client.stream(call.method, call.url, timeout=timeout, **_request_kwargs(call)) as response:
            body = bytearray()
            for chunk in response.iter_bytes():
                body += chunk
                if time.monotonic() > deadline:
                    raise DeadlineExceeded(timeout)
            return HTTPResult(response.status_code, {k.lower(): v for k, v in response.headers.items()},
                              bytes(body))
    finally:
        _DEADLINE.reset(token)


async def _attempt_async(client: httpx.AsyncClient, call: HTTPCall, timeout: float) -> HTTPResult:
    async def attempt() -> HTTPResult:
        return _result(await client.request(call.method, call.url, **_request_kwargs(call)))
    try:
        return await asyncio.wait_for(attempt(), timeout)
    except asyncio.TimeoutError as exc:  # wait_for's; httpx raises its own types, not this
        raise DeadlineExceeded(timeout) from exc


def send_sync(gen: Generator, client: httpx.Client, timeout: float = 60.0) -> Any:
    def perform(step: Union[HTTPCall, Sleep]) -> Optional[HTTPResult]:
        if isinstance(step, Sleep):
            time.sleep(step.seconds)
            return None
        return _attempt_sync(client, step, timeout)
    return drive(gen, perform)


async def send_async(gen: Generator, client: httpx.AsyncClient, timeout: float = 60.0) -> Any:
    async def perform(step: Union[HTTPCall, Sleep]) -> Optional[HTTPResult]:
        if isinstance(step, Sleep):
            await asyncio.sleep(step.seconds)
            return None
        return await _attempt_async(client, step, timeout)
    return await adrive(gen, perform)


class HTTPProvider:
    """Base for providers spoken over HTTP: subclasses implement `build_*` and `parse_*` (pure). `verify`:
    httpx's TLS verification for both clients (see deadline_client); a subclass may set it before first use."""

    name = "http"
    verify: Any = True

    def __init__(self, policy: RetryPolicy):
        self.policy = policy
        self._client: Optional[httpx.Client] = None
        self._aclients: "weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, httpx.AsyncClient]" = (
            weakref.WeakKeyDictionary())

    @property
    def client(self) -> httpx.Client:
        if self._client is None:
            self._client = deadline_client(self.policy.timeout, verify=self.verify)
        return self._client

    @property
    def aclient(self) -> httpx.AsyncClient:
        # An AsyncClient's connections belong to the event loop that opened them: one client per loop.
        loop = asyncio.get_running_loop()
        client = self._aclients.get(loop)
        if client is None:
            client = self._aclients[loop] = httpx.AsyncClient(timeout=self.policy.timeout, verify=self.verify)
        return client

    def call(self, call: HTTPCall, parse: Callable[[HTTPResult], Any]) -> Any:
        return send_sync(exchange(call, self.policy, self.name, parse), self.client, self.policy.timeout)

    async def acall(self, call: HTTPCall, parse: Callable[[HTTPResult], Any]) -> Any:
        return await send_async(exchange(call, self.policy, self.name, parse), self.aclient,
                                self.policy.timeout)
