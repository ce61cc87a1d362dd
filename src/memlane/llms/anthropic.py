"""Anthropic Messages API: POST {base}/v1/messages with `x-api-key` and `anthropic-version: 2023-06-01`.

System messages go to the top-level `system` field (joined by blank lines); the others keep their order as
user/assistant turns. A schema becomes one tool the model is forced to call (tool_choice {"type": "tool"}),
whose `input` is the answer: LLMResponse.data holds it and content its JSON text.

Config keys (mem0's names): `model` (default claude-haiku-4-5), `api_key` (else ANTHROPIC_API_KEY),
`anthropic_base_url` (else ANTHROPIC_BASE_URL, else https://api.anthropic.com), `temperature` (default 0),
`max_tokens` (the API requires it; default 2000), `top_p` and `top_k` (sent only when set: recent models
refuse temperature and top_p together), `structured_output` ("tool" | "none"), `extra_headers` (e.g. an
`anthropic-beta` header), `timeout`, `max_retries`, `retry_base_delay`, `retry_max_delay`.
"""
from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any, Optional

from ..errors import ConfigurationError, LLMError
from ..http import HTTPCall, HTTPProvider, HTTPResult, RetryPolicy
from ..provider_config import MEM0_LLM_KEYS, ProviderConfig
from .base import LLMRequest, LLMResponse

DEFAULT_MODEL = "claude-haiku-4-5"
DEFAULT_BASE_URL = "https://api.anthropic.com"
API_VERSION = "2023-06-01"
STRUCTURED_MODES = ("tool", "none")


class AnthropicLLM(HTTPProvider):
    name = "anthropic"

    def __init__(self, config: Mapping[str, Any] | None = None):
        cfg = ProviderConfig(config, self.name, "llm", ignored=MEM0_LLM_KEYS + ("reasoning_effort",))
        super().__init__(RetryPolicy.from_config(cfg))
        self.model = cfg.first("model", default=DEFAULT_MODEL)
        self.api_key = cfg.first("api_key", env=("ANTHROPIC_API_KEY",))
        if not self.api_key:
            raise ConfigurationError("anthropic: no API key; set ANTHROPIC_API_KEY or config api_key")
        self.base_url = cfg.first("anthropic_base_url", "base_url", env=("ANTHROPIC_BASE_URL",),
                                  default=DEFAULT_BASE_URL).rstrip("/")
        self.temperature = cfg.take("temperature", 0.0)
        self.max_tokens = cfg.number("max_tokens", 2000, int) or 2000
        self.top_p = cfg.take("top_p")
        self.top_k = cfg.take("top_k")
        self.structured = cfg.choice("structured_output", STRUCTURED_MODES, "tool")
        self.extra_headers = cfg.mapping("extra_headers")
        cfg.done()

    # ---------------------------------------------------------------- pure

    def headers(self) -> dict[str, str]:
        return {"content-type": "application/json", "anthropic-version": API_VERSION, **self.extra_headers,
                "x-api-key": self.api_key}

    def build(self, request: LLMRequest) -> HTTPCall:
        system = [m["content"] for m in request.messages if m.get("role") == "system"]
        turns = [{"role": "assistant" if m.get("role") == "assistant" else "user", "content": m["content"]}
                 for m in request.messages if m.get("role") != "system"]
        body: dict[str, Any] = {"model": self.model, "max_tokens": request.max_tokens or self.max_tokens,
                                "messages": turns}
        if system:
            body["system"] = "\n\n".join(system)
        temperature = request.temperature if request.temperature is not None else self.temperature
        if temperature is not None:
            body["temperature"] = temperature
        if self.top_p is not None:
            body["top_p"] = self.top_p
        if self.top_k is not None:
            body["top_k"] = self.top_k
        if request.schema is not None and self.structured == "tool":
            body["tools"] = [{"name": request.schema_name, "description": "Record the answer.",
                              "input_schema": request.schema}]
            body["tool_choice"] = {"type": "tool", "name": request.schema_name}
        return HTTPCall("POST", f"{self.base_url}/v1/messages", self.headers(), body)

    def parse(self, result: HTTPResult) -> LLMResponse:
        try:
            payload = result.json()
            blocks = payload["content"]
            if not isinstance(blocks, list):
                raise TypeError("content is not a list")
        except (ValueError, KeyError, TypeError) as exc:
            raise LLMError(f"anthropic: unexpected response shape: {exc!r}", raw_output=result.body[:2000],
                           provider=self.name) from exc
        if payload.get("stop_reason") == "refusal":
            raise LLMError("anthropic: the model refused", raw_output=payload, provider=self.name)
        data: Optional[Any] = None
        texts = []
        for block in blocks:
            if not isinstance(block, dict):
                continue
            if block.get("type") == "tool_use" and data is None:
                data = block.get("input")
            elif block.get("type") == "text":
                texts.append(block.get("text") or "")
        content = json.dumps(data, ensure_ascii=False) if data is not None else "".join(texts)
        usage = payload.get("usage") or {}
        # input_tokens leaves out what was read from or written to the prompt cache; count all of it.
        prompt = sum(int(usage.get(key) or 0) for key in ("input_tokens", "cache_creation_input_tokens",
                                                            "cache_read_input_tokens"))
        return LLMResponse(content=content, data=data, prompt_tokens=prompt,
                           completion_tokens=int(usage.get("output_tokens") or 0), model=payload.get("model"),
                           raw=payload)

    # ---------------------------------------------------------------- I/O

    def generate(self, request: LLMRequest) -> LLMResponse:
        return self.call(self.build(request), self.parse)

    async def agenerate(self, request: LLMRequest) -> LLMResponse:
        return await self.acall(self.build(request), self.parse)
