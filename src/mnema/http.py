"""HTTP for providers, sans-I/O: a provider turns a request into an `HTTPCall` and a response body into a
result (pure); `exchange` decides retries (bounded exponential backoff with full jitter on timeouts,
connection errors, 429 and 5xx, honouring Retry-After); `send_sync` / `send_async` are the only I/O."""
from __future__ import annotations

import asyncio
import json
import random
import time
import weakref
from dataclasses import dataclass, field
from typing import Any, Callable, Generator, Optional, Union

import httpx

from .drive import adrive, drive
from .errors import ProviderError

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


@dataclass
class RetryPolicy:
    max_retries: int = 3
    base_delay: float = 0.5
    max_delay: float = 20.0
    timeout: float = 60.0

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> "RetryPolicy":
        """Pops mem0-style keys: `max_retries`, `timeout`, `retry_base_delay`, `retry_max_delay`."""
        return cls(max_retries=int(config.pop("max_retries", 3)),
                   timeout=float(config.pop("timeout", 60.0) or 60.0),
                   base_delay=float(config.pop("retry_base_delay", 0.5)),
                   max_delay=float(config.pop("retry_max_delay", 20.0)))

    def delay(self, attempt: int, retry_after: Optional[str]) -> float:
        if retry_after:
            try:
                return min(self.max_delay, max(0.0, float(retry_after)))
            except ValueError:
                pass
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


def _request_kwargs(call: HTTPCall) -> dict[str, Any]:
    kwargs: dict[str, Any] = {"headers": call.headers}
    if call.content is not None:
        kwargs["content"] = call.content
    elif call.json is not None:
        kwargs["json"] = call.json
    return kwargs


def _result(r: httpx.Response) -> HTTPResult:
    return HTTPResult(r.status_code, {k.lower(): v for k, v in r.headers.items()}, r.content)


def send_sync(gen: Generator, client: httpx.Client) -> Any:
    def perform(step: Union[HTTPCall, Sleep]) -> Optional[HTTPResult]:
        if isinstance(step, Sleep):
            time.sleep(step.seconds)
            return None
        return _result(client.request(step.method, step.url, **_request_kwargs(step)))
    return drive(gen, perform)


async def send_async(gen: Generator, client: httpx.AsyncClient) -> Any:
    async def perform(step: Union[HTTPCall, Sleep]) -> Optional[HTTPResult]:
        if isinstance(step, Sleep):
            await asyncio.sleep(step.seconds)
            return None
        return _result(await client.request(step.method, step.url, **_request_kwargs(step)))
    return await adrive(gen, perform)


class HTTPProvider:
    """Base for providers spoken over HTTP: subclasses implement `build_*` and `parse_*` (pure)."""

    name = "http"

    def __init__(self, policy: RetryPolicy):
        self.policy = policy
        self._client: Optional[httpx.Client] = None
        self._aclients: "weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, httpx.AsyncClient]" = (
            weakref.WeakKeyDictionary())

    @property
    def client(self) -> httpx.Client:
        if self._client is None:
            self._client = httpx.Client(timeout=self.policy.timeout)
        return self._client

    @property
    def aclient(self) -> httpx.AsyncClient:
        # An AsyncClient's connections belong to the event loop that opened them: one client per loop.
        loop = asyncio.get_running_loop()
        client = self._aclients.get(loop)
        if client is None:
            client = self._aclients[loop] = httpx.AsyncClient(timeout=self.policy.timeout)
        return client

    def call(self, call: HTTPCall, parse: Callable[[HTTPResult], Any]) -> Any:
        return send_sync(exchange(call, self.policy, self.name, parse), self.client)

    async def acall(self, call: HTTPCall, parse: Callable[[HTTPResult], Any]) -> Any:
        return await send_async(exchange(call, self.policy, self.name, parse), self.aclient)
