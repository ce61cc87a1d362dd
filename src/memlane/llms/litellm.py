"""Any model LiteLLM can reach (100+ providers), through the `litellm` package (pip install 'memlane[litellm]').

litellm.completion / acompletion do the I/O; memlane keeps the retry decisions (LiteLLM's own retries are turned
off) so that 429 with Retry-After, 5xx, timeouts and connection errors are retried with the same bounded,
jittered backoff as memlane's HTTP providers, and other errors raise ProviderError at once. `timeout` is a
deadline for each attempt as there: LiteLLM's own timeout bounds each socket read only, so the caller waits
under asyncio.wait_for, or (sync) for a worker thread that runs the call.

A schema is sent as response_format {"type": "json_schema"} when LiteLLM says the model supports it
(structured_output "auto", the default), else as {"type": "json_object"}; "json_schema", "json_object",
"tool" (a forced function call, whose arguments become LLMResponse.data) and "none" can be chosen.

Config keys (mem0's names where it has them): `model` (LiteLLM's "provider/model" name; default
gpt-4.1-nano), `api_key`, `api_base` (or `base_url`), `temperature` (default 0), `max_tokens` (default 2000;
sent as max_completion_tokens to o-series and gpt-5 models, which get no temperature or top_p), `top_p`,
`reasoning_effort`, `structured_output`, `extra_headers`, `litellm_kwargs` (more keyword arguments for
litellm.completion, e.g. {"api_version": ...} or {"aws_region_name": ...}), `timeout`, `max_retries`,
`retry_base_delay`, `retry_max_delay`. Provider credentials may also come from the environment variables
LiteLLM reads (OPENAI_API_KEY, ANTHROPIC_API_KEY, ...).
"""
from __future__ import annotations

import asyncio
import contextvars
import json
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Generator, Optional, Union

from ..drive import adrive, drive
from ..errors import LLMError, ProviderError, missing_extra
from ..http import RETRY_STATUS, DeadlineExceeded, RetryPolicy, Sleep
from ..provider_config import MEM0_LLM_KEYS, ProviderConfig
from .base import LLMRequest, LLMResponse
from .openai import is_reasoning_model

DEFAULT_MODEL = "gpt-4.1-nano"
STRUCTURED_MODES = ("auto", "json_schema", "json_object", "tool", "none")
# top_k: LiteLLM has no common parameter for it (pass it in litellm_kwargs where a provider takes it).
IGNORED_MEM0_KEYS = MEM0_LLM_KEYS + ("top_k",)


@dataclass
class Completion:
    """One call of litellm.completion with these keyword arguments (the step the exchange yields)."""
    kwargs: dict[str, Any]


def _retry_after(exc: BaseException) -> Optional[str]:
    for headers in (getattr(exc, "litellm_response_headers", None), getattr(exc, "headers", None),
                    getattr(getattr(exc, "response", None), "headers", None)):
        try:
            value = headers.get("retry-after") if headers is not None else None
        except AttributeError:
            value = None
        if value:
            return str(value)
    return None


def _call_within(timeout: float, fn: Any, kwargs: dict[str, Any]) -> Any:
    """fn(**kwargs), waited for at most `timeout` seconds. A blocking call cannot be interrupted, so it runs in
    a thread of its own that is left to finish (LiteLLM's per-read timeout ends a stalled one) when the
    deadline passes first."""
    box: dict[str, Any] = {}
    done = threading.Event()
    context = contextvars.copy_context()  # LiteLLM's callbacks see the caller's context

    def run() -> None:
        try:
            box["value"] = context.run(fn, **kwargs)
        except BaseException as exc:  # handed to the caller, who decides
            box["error"] = exc
        finally:
            done.set()

    threading.Thread(target=run, name="memlane-litellm-call", daemon=True).start()
    if not done.wait(timeout):
        raise DeadlineExceeded(timeout)
    if "error" in box:
        raise box["error"]
    return box["value"]


class LiteLLM:
    name = "litellm"

    def __init__(self, config: Mapping[str, Any] | None = None):
        try:
            import litellm
        except ImportError:
            raise missing_extra("litellm", "litellm") from None
        self._litellm = litellm
        cfg = ProviderConfig(config, self.name, "llm", ignored=IGNORED_MEM0_KEYS)
        self.policy = RetryPolicy.from_config(cfg)
        self.model = cfg.first("model", default=DEFAULT_MODEL)
        self.api_key = cfg.take("api_key")
        self.api_base = cfg.first("api_base", "base_url")
        self.temperature = cfg.take("temperature", 0.0)
        self.max_tokens = cfg.take("max_tokens", 2000)
        self.top_p = cfg.take("top_p")
        self.reasoning_effort = cfg.take("reasoning_effort")
        self.structured = cfg.choice("structured_output", STRUCTURED_MODES, "auto")
        self.extra_headers = cfg.mapping("extra_headers")
        self.litellm_kwargs = cfg.mapping("litellm_kwargs")
        cfg.done()

    # ---------------------------------------------------------------- pure

    def _schema_mode(self) -> str:
        if self.structured != "auto":
            return self.structured
        try:
            supported = self._litellm.supports_response_schema(model=self.model)
        except Exception:  # unknown model or provider: LiteLLM cannot tell
            supported = False
        return "json_schema" if supported else "json_object"

    def build(self, request: LLMRequest) -> dict[str, Any]:
        kwargs: dict[str, Any] = {"model": self.model, "messages": request.messages,
                                  "timeout": self.policy.timeout, "num_retries": 0, "max_retries": 0}
        max_tokens = request.max_tokens or self.max_tokens
        if is_reasoning_model(self.model):
            if max_tokens:
                kwargs["max_completion_tokens"] = max_tokens
            if self.reasoning_effort:
                kwargs["reasoning_effort"] = self.reasoning_effort
        else:
            temperature = request.temperature if request.temperature is not None else self.temperature
            if temperature is not None:
                kwargs["temperature"] = temperature
            if max_tokens:
                kwargs["max_tokens"] = max_tokens
            if self.top_p is not None:
                kwargs["top_p"] = self.top_p
        if self.api_key:
            kwargs["api_key"] = self.api_key
        if self.api_base:
            kwargs["api_base"] = self.api_base
        if self.extra_headers:
            kwargs["extra_headers"] = self.extra_headers
        if request.schema is not None:
            mode = self._schema_mode()
            if mode == "json_schema":
                kwargs["response_format"] = {"type": "json_schema", "json_schema": {
                    "name": request.schema_name, "schema": request.schema, "strict": True}}
            elif mode == "json_object":
                kwargs["response_format"] = {"type": "json_object"}
            elif mode == "tool":
                kwargs["tools"] = [{"type": "function", "function": {
                    "name": request.schema_name, "description": "Record the answer.", "parameters": request.schema}}]
                kwargs["tool_choice"] = {"type": "function", "function": {"name": request.schema_name}}
        kwargs.update(self.litellm_kwargs)
        return kwargs

    def parse(self, response: Any) -> LLMResponse:
        try:
            message = response.choices[0].message
        except (AttributeError, IndexError, TypeError) as exc:
            raise LLMError(f"litellm: unexpected response shape: {exc!r}", raw_output=response,
                           provider=self.name) from exc
        content = getattr(message, "content", None) or ""
        data: Optional[Any] = None
        calls = getattr(message, "tool_calls", None) or []
        if calls:
            content = getattr(calls[0].function, "arguments", None) or ""
            try:
                data = json.loads(content)
            except ValueError:
                data = None  # the caller's strict parser reports it, with the raw text
        usage = getattr(response, "usage", None)
        return LLMResponse(content=content, data=data,
                           prompt_tokens=int(getattr(usage, "prompt_tokens", 0) or 0),
                           completion_tokens=int(getattr(usage, "completion_tokens", 0) or 0),
                           model=getattr(response, "model", None), raw=response)

    def exchange(self, kwargs: dict[str, Any]) -> Generator[Union[Completion, Sleep], Any, LLMResponse]:
        """The retry decisions of memlane.http.exchange, for errors raised by LiteLLM."""
        errors = self._litellm.exceptions
        attempt = 0
        while True:
            try:
                response = yield Completion(kwargs)
            except (errors.Timeout, errors.APIConnectionError, DeadlineExceeded) as exc:
                if attempt >= self.policy.max_retries:
                    kind = "timed out" if isinstance(exc, (errors.Timeout, DeadlineExceeded)) else "failed"
                    raise ProviderError(f"litellm: request {kind} after {attempt + 1} attempts: {exc}",
                                        provider=self.name) from exc
                yield Sleep(self.policy.delay(attempt, None))
                attempt += 1
                continue
            except Exception as exc:
                status = getattr(exc, "status_code", None)
                if not isinstance(status, int):
                    raise
                if status in RETRY_STATUS and attempt < self.policy.max_retries:
                    yield Sleep(self.policy.delay(attempt, _retry_after(exc)))
                    attempt += 1
                    continue
                raise ProviderError(f"litellm: HTTP {status} after {attempt + 1} attempt(s): {exc}",
                                    provider=self.name, status=status) from exc
            return self.parse(response)

    # ---------------------------------------------------------------- I/O

    def generate(self, request: LLMRequest) -> LLMResponse:
        def perform(step: Union[Completion, Sleep]) -> Any:
            if isinstance(step, Sleep):
                time.sleep(step.seconds)
                return None
            return _call_within(self.policy.timeout, self._litellm.completion, step.kwargs)
        return drive(self.exchange(self.build(request)), perform)

    async def agenerate(self, request: LLMRequest) -> LLMResponse:
        async def perform(step: Union[Completion, Sleep]) -> Any:
            if isinstance(step, Sleep):
                await asyncio.sleep(step.seconds)
                return None
            try:
                return await asyncio.wait_for(self._litellm.acompletion(**step.kwargs), self.policy.timeout)
            except asyncio.TimeoutError as exc:  # wait_for's; LiteLLM raises its own Timeout type
                raise DeadlineExceeded(self.policy.timeout) from exc
        return await adrive(self.exchange(self.build(request)), perform)
