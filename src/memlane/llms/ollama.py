"""Ollama's native chat API: POST {base}/api/chat with stream false. A schema goes in `format` (Ollama
constrains the output to it); temperature and max_tokens go in `options` (temperature, num_predict).

Config keys (mem0's names): `model` (default llama3.1), `ollama_base_url` (else OLLAMA_HOST, read by
Ollama's rules as in memlane/ollama_host.py, else http://localhost:11434), `temperature` (default 0),
`max_tokens` (num_predict, default 2000), `top_p`, `top_k` (sent only when set), `options` (more Ollama
options, e.g. {"num_ctx": 8192}: Ollama's default context is small and it truncates long prompts silently),
`keep_alive`, `think` (for thinking models), `structured_output` ("schema" | "json" | "none"), `api_key`
(optional bearer token for a proxy or ollama.com; else OLLAMA_API_KEY), `timeout`, `max_retries`,
`retry_base_delay`, `retry_max_delay`. No API key is needed for a local server.
"""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..errors import LLMError
from ..http import HTTPCall, HTTPProvider, HTTPResult, RetryPolicy
from ..ollama_host import ollama_base_url
from ..provider_config import MEM0_LLM_KEYS, ProviderConfig
from .base import LLMRequest, LLMResponse

DEFAULT_MODEL = "llama3.1"
STRUCTURED_MODES = ("schema", "json", "none")


class OllamaLLM(HTTPProvider):
    name = "ollama"

    def __init__(self, config: Mapping[str, Any] | None = None):
        cfg = ProviderConfig(config, self.name, "llm", ignored=MEM0_LLM_KEYS + ("reasoning_effort",))
        super().__init__(RetryPolicy.from_config(cfg))
        self.model = cfg.first("model", default=DEFAULT_MODEL)
        self.base_url = ollama_base_url(cfg.first("ollama_base_url", "base_url"))
        self.api_key = cfg.first("api_key", env=("OLLAMA_API_KEY",))
        self.temperature = cfg.take("temperature", 0.0)
        self.max_tokens = cfg.take("max_tokens", 2000)
        self.top_p = cfg.take("top_p")
        self.top_k = cfg.take("top_k")
        self.options = cfg.mapping("options")
        self.keep_alive = cfg.take("keep_alive")
        self.think = cfg.take("think")
        self.structured = cfg.choice("structured_output", STRUCTURED_MODES, "schema")
        cfg.done()

    # ---------------------------------------------------------------- pure

    def build(self, request: LLMRequest) -> HTTPCall:
        options: dict[str, Any] = {}
        temperature = request.temperature if request.temperature is not None else self.temperature
        if temperature is not None:
            options["temperature"] = temperature
        max_tokens = request.max_tokens or self.max_tokens
        if max_tokens:
            options["num_predict"] = max_tokens
        if self.top_p is not None:
            options["top_p"] = self.top_p
        if self.top_k is not None:
            options["top_k"] = self.top_k
        options.update(self.options)
        messages = [{"role": m.get("role", "user"), "content": m["content"]} for m in request.messages]
        body: dict[str, Any] = {"model": self.model, "messages": messages, "stream": False, "options": options}
        if request.schema is not None and self.structured != "none":
            body["format"] = request.schema if self.structured == "schema" else "json"
        if self.keep_alive is not None:
            body["keep_alive"] = self.keep_alive
        if self.think is not None:
            body["think"] = self.think
        headers = {"content-type": "application/json"}
        if self.api_key:
            headers["authorization"] = f"Bearer {self.api_key}"
        return HTTPCall("POST", f"{self.base_url}/api/chat", headers, body)

    def parse(self, result: HTTPResult) -> LLMResponse:
        try:
            payload = result.json()
        except ValueError as exc:
            raise LLMError(f"ollama: unexpected response shape: {exc!r}", raw_output=result.body[:2000],
                           provider=self.name) from exc
        message = payload.get("message") if isinstance(payload, dict) else None
        if not isinstance(message, dict):
            error = payload.get("error") if isinstance(payload, dict) else None
            raise LLMError(f"ollama: {error}" if error else "ollama: unexpected response shape: no 'message'",
                           raw_output=result.body[:2000], provider=self.name)
        content = message.get("content") or ""
        return LLMResponse(content=content, data=None, prompt_tokens=int(payload.get("prompt_eval_count") or 0),
                           completion_tokens=int(payload.get("eval_count") or 0),
                           model=payload.get("model") or self.model, raw=payload)

    # ---------------------------------------------------------------- I/O

    def generate(self, request: LLMRequest) -> LLMResponse:
        return self.call(self.build(request), self.parse)

    async def agenerate(self, request: LLMRequest) -> LLMResponse:
        return await self.acall(self.build(request), self.parse)
