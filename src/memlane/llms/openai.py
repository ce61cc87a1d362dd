"""OpenAI chat completions, and every server that speaks it (vLLM, LM Studio, Groq, Together, DeepSeek,
xAI, OpenRouter: see PRESETS). Config keys follow mem0: model, api_key, openai_base_url (or the
OPENAI_BASE_URL environment variable), temperature, max_tokens, top_p; plus `structured_output`
("json_schema" | "json_object" | "tool" | "none"), `reasoning_effort`, `is_reasoning_model` (overrides the
name-based guess), `timeout`, `max_retries`, `retry_base_delay`, `retry_max_delay`, `extra_headers`."""
from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any, Optional

from ..errors import ConfigurationError, LLMError
from ..http import HTTPCall, HTTPProvider, HTTPResult, RetryPolicy
from ..provider_config import MEM0_LLM_KEYS, ProviderConfig
from .base import LLMRequest, LLMResponse

DEFAULT_MODEL = "gpt-4.1-nano"
STRUCTURED_MODES = ("json_schema", "json_object", "tool", "none")
# mem0's OpenRouter and other keys with no meaning here (accepted, not used).
IGNORED_MEM0_KEYS = MEM0_LLM_KEYS + ("models", "route", "site_url", "app_name")
# OpenAI-compatible services: default base URL, the env var holding the key, the preset's base-URL config key
# (as mem0 names it), and the structured-output mode the service supports.
PRESETS: dict[str, dict[str, Any]] = {
    "openai": {"base_url": "https://api.openai.com/v1", "key_env": "OPENAI_API_KEY",
               "url_keys": ("openai_base_url",), "url_env": "OPENAI_BASE_URL", "structured": "json_schema"},
    "vllm": {"base_url": "http://localhost:8000/v1", "key_env": "VLLM_API_KEY", "url_keys": ("vllm_base_url",),
             "url_env": "VLLM_BASE_URL", "structured": "json_schema", "key_optional": True,
             "model": None},
    "lmstudio": {"base_url": "http://localhost:1234/v1", "key_env": "LMSTUDIO_API_KEY",
                 "url_keys": ("lmstudio_base_url",), "url_env": "LMSTUDIO_BASE_URL",
                 "structured": "json_schema", "key_optional": True, "model": None},
    "groq": {"base_url": "https://api.groq.com/openai/v1", "key_env": "GROQ_API_KEY", "url_keys": (),
             "structured": "json_object", "model": "llama-3.3-70b-versatile"},
    "together": {"base_url": "https://api.together.xyz/v1", "key_env": "TOGETHER_API_KEY", "url_keys": (),
                 "structured": "json_object", "model": "meta-llama/Llama-3.3-70B-Instruct-Turbo"},
    "deepseek": {"base_url": "https://api.deepseek.com/v1", "key_env": "DEEPSEEK_API_KEY",
                 "url_keys": ("deepseek_base_url",), "structured": "json_object", "model": "deepseek-chat"},
    "xai": {"base_url": "https://api.x.ai/v1", "key_env": "XAI_API_KEY", "url_keys": ("xai_base_url",),
            "structured": "json_schema", "model": "grok-3-mini"},
    "openrouter": {"base_url": "https://openrouter.ai/api/v1", "key_env": "OPENROUTER_API_KEY",
                   "url_keys": ("openrouter_base_url",), "structured": "json_schema",
                   "model": "openai/gpt-4.1-nano"},
}


def is_reasoning_model(model: str) -> bool:
    """o-series and gpt-5 take max_completion_tokens and reject temperature/top_p."""
    name = model.split("/")[-1].lower()
    return name.startswith(("o1", "o3", "o4", "gpt-5"))


class OpenAILLM(HTTPProvider):
    preset = "openai"

    def __init__(self, config: Mapping[str, Any] | None = None):
        self.name = self.preset
        cfg = ProviderConfig(config, self.name, "llm", ignored=IGNORED_MEM0_KEYS)
        super().__init__(RetryPolicy.from_config(cfg))
        self._configure_endpoint(cfg)  # model, base_url, api_key, default_structured
        self.temperature = cfg.take("temperature", 0.0)
        self.max_tokens = cfg.take("max_tokens", 2000)
        self.top_p = cfg.take("top_p")
        self.reasoning_effort = cfg.take("reasoning_effort")
        # mem0's override of the name-based guess, for deployments whose name does not tell (Azure).
        self.reasoning_override: Optional[bool] = cfg.take("is_reasoning_model")
        self.structured = cfg.choice("structured_output", STRUCTURED_MODES, self.default_structured)
        self.extra_headers = cfg.mapping("extra_headers")
        cfg.done()

    def _configure_endpoint(self, config: ProviderConfig) -> None:
        """Takes the keys that say where to send requests and how to authenticate (subclasses override)."""
        preset = PRESETS[self.preset]
        self.model = config.first("model", default=preset.get("model", DEFAULT_MODEL) or DEFAULT_MODEL)
        url_env = (preset["url_env"],) if preset.get("url_env") else ()
        self.base_url = config.first(*preset["url_keys"], "base_url", env=url_env,
                                     default=preset["base_url"]).rstrip("/")
        self.api_key = config.first("api_key", env=(preset["key_env"],))
        if not self.api_key and not preset.get("key_optional"):
            raise ConfigurationError(f"{self.preset}: no API key; set {preset['key_env']} or config api_key")
        self.default_structured = preset["structured"]

    @property
    def reasoning(self) -> bool:
        return self.reasoning_override if self.reasoning_override is not None else is_reasoning_model(self.model)

    # ---------------------------------------------------------------- pure

    def headers(self) -> dict[str, str]:
        headers = {"content-type": "application/json", **self.extra_headers}
        if self.api_key:
            headers["authorization"] = f"Bearer {self.api_key}"
        return headers

    def url(self) -> str:
        return f"{self.base_url}/chat/completions"

    def build(self, request: LLMRequest) -> HTTPCall:
        body: dict[str, Any] = {"model": self.model, "messages": request.messages}
        max_tokens = request.max_tokens or self.max_tokens
        if self.reasoning:
            if max_tokens:
                body["max_completion_tokens"] = max_tokens
            if self.reasoning_effort:
                body["reasoning_effort"] = self.reasoning_effort
        else:
            temperature = request.temperature if request.temperature is not None else self.temperature
            if temperature is not None:
                body["temperature"] = temperature
            if max_tokens:
                body["max_tokens"] = max_tokens
            if self.top_p is not None:
                body["top_p"] = self.top_p
        if request.schema is not None:
            if self.structured == "json_schema":
                body["response_format"] = {"type": "json_schema", "json_schema": {
                    "name": request.schema_name, "schema": request.schema, "strict": True}}
            elif self.structured == "json_object":
                body["response_format"] = {"type": "json_object"}
            elif self.structured == "tool":
                body["tools"] = [{"type": "function", "function": {
                    "name": request.schema_name, "description": "Record the answer.",
                    "parameters": request.schema}}]
                body["tool_choice"] = {"type": "function", "function": {"name": request.schema_name}}
        return HTTPCall("POST", self.url(), self.headers(), body)

    def parse(self, result: HTTPResult) -> LLMResponse:
        try:
            payload = result.json()
            choice = payload["choices"][0]
            message = choice["message"]
        except (ValueError, KeyError, IndexError, TypeError) as exc:
            raise LLMError(f"{self.name}: unexpected response shape: {exc!r}", raw_output=result.body[:2000],
                           provider=self.name) from exc
        if message.get("refusal"):
            raise LLMError(f"{self.name}: the model refused: {message['refusal']}", raw_output=message,
                           provider=self.name)
        data: Optional[Any] = None
        content = message.get("content") or ""
        calls = message.get("tool_calls") or []
        if calls:
            content = calls[0].get("function", {}).get("arguments") or ""
            try:
                data = json.loads(content)
            except ValueError:
                data = None  # the caller's strict parser reports it, with the raw text
        usage = payload.get("usage") or {}
        return LLMResponse(content=content, data=data, prompt_tokens=int(usage.get("prompt_tokens") or 0),
                           completion_tokens=int(usage.get("completion_tokens") or 0),
                           model=payload.get("model"), raw=payload)

    # ---------------------------------------------------------------- I/O

    def generate(self, request: LLMRequest) -> LLMResponse:
        return self.call(self.build(request), self.parse)

    async def agenerate(self, request: LLMRequest) -> LLMResponse:
        return await self.acall(self.build(request), self.parse)


def _preset_class(preset_name: str) -> type[OpenAILLM]:
    return type(f"{preset_name.title()}LLM", (OpenAILLM,), {"preset": preset_name})


VLLMLLM = _preset_class("vllm")
LMStudioLLM = _preset_class("lmstudio")
GroqLLM = _preset_class("groq")
TogetherLLM = _preset_class("together")
DeepSeekLLM = _preset_class("deepseek")
XAILLM = _preset_class("xai")
OpenRouterLLM = _preset_class("openrouter")
