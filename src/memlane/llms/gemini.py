"""Google Gemini (the Gemini Developer API): POST {base}/v1beta/models/{model}:generateContent, authenticated by
the `x-goog-api-key` header.

System messages become `systemInstruction`; the others become `contents` with the roles user and model. A
schema is passed in `generationConfig` with responseMimeType "application/json": as `responseJsonSchema`
(JSON Schema, the default) or, with structured_output "response_schema", as `responseSchema` (the OpenAPI
subset older models take; the schema is converted: ["integer", "null"] -> nullable, no additionalProperties).

Config keys (mem0's names): `model` (default gemini-flash-latest; a leading "models/" is accepted),
`api_key` (else GEMINI_API_KEY, else GOOGLE_API_KEY), `gemini_base_url` (else GEMINI_BASE_URL, else
https://generativelanguage.googleapis.com; the same key the Gemini embedder takes), `temperature` (default 0),
`max_tokens` (maxOutputTokens, default 2000), `top_p`, `top_k` (sent only when set), `thinking_budget`
(thinkingConfig.thinkingBudget; 0 turns thinking off on models that allow it), `structured_output`
("json_schema" | "response_schema" | "json" | "none"), `extra_headers`, `timeout`, `max_retries`,
`retry_base_delay`, `retry_max_delay`. Vertex AI (mem0's `vertexai`, `project`, `location`) is not supported.
"""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from urllib.parse import quote

from ..errors import ConfigurationError, LLMError
from ..http import HTTPCall, HTTPProvider, HTTPResult, RetryPolicy
from ..provider_config import MEM0_LLM_KEYS, ProviderConfig
from .base import LLMRequest, LLMResponse

DEFAULT_MODEL = "gemini-flash-latest"
DEFAULT_BASE_URL = "https://generativelanguage.googleapis.com"
STRUCTURED_MODES = ("json_schema", "response_schema", "json", "none")
# mem0's Vertex AI keys: vertexai itself is refused, these two mean nothing without it.
IGNORED_MEM0_KEYS = MEM0_LLM_KEYS + ("project", "location")
BLOCKED = ("SAFETY", "RECITATION", "BLOCKLIST", "PROHIBITED_CONTENT", "SPII", "IMAGE_SAFETY")
# Fields of Gemini's Schema object (an OpenAPI 3.0 subset); anything else is dropped by to_openapi_schema.
OPENAPI_FIELDS = ("type", "format", "title", "description", "nullable", "enum", "maxItems", "minItems",
                  "properties", "required", "minProperties", "maxProperties", "minLength", "maxLength",
                  "pattern", "example", "anyOf", "propertyOrdering", "default", "items", "minimum", "maximum")


def to_openapi_schema(schema: Any) -> Any:
    """A JSON schema rewritten for Gemini's `responseSchema`: type lists with "null" become `nullable`,
    unsupported keywords (additionalProperties, $schema, ...) are dropped, properties keep their order."""
    if not isinstance(schema, dict):
        return schema
    out: dict[str, Any] = {}
    for key, value in schema.items():
        if key not in OPENAPI_FIELDS:
            continue
        if key == "type" and isinstance(value, list):
            kinds = [v for v in value if v != "null"]
            if len(kinds) != len(value):
                out["nullable"] = True
            if len(kinds) == 1:
                value = kinds[0]
            else:
                out["anyOf"] = [{"type": str(k).upper()} for k in kinds]
                continue
        if key == "type":
            value = str(value).upper()
        elif key == "properties" and isinstance(value, dict):
            value = {name: to_openapi_schema(sub) for name, sub in value.items()}
            out.setdefault("propertyOrdering", list(value))
        elif key == "items":
            value = to_openapi_schema(value)
        elif key == "anyOf" and isinstance(value, list):
            value = [to_openapi_schema(sub) for sub in value]
        out[key] = value
    return out


class GeminiLLM(HTTPProvider):
    name = "gemini"

    def __init__(self, config: Mapping[str, Any] | None = None):
        cfg = ProviderConfig(config, self.name, "llm", ignored=IGNORED_MEM0_KEYS)
        super().__init__(RetryPolicy.from_config(cfg))
        model = cfg.first("model", default=DEFAULT_MODEL)
        self.model = model[len("models/"):] if model.startswith("models/") else model
        self.api_key = cfg.first("api_key", env=("GEMINI_API_KEY", "GOOGLE_API_KEY"))
        if not self.api_key:
            raise ConfigurationError("gemini: no API key; set GEMINI_API_KEY (or GOOGLE_API_KEY) or config api_key")
        self.base_url = cfg.first("gemini_base_url", "base_url", env=("GEMINI_BASE_URL",),
                                  default=DEFAULT_BASE_URL).rstrip("/")
        self.temperature = cfg.take("temperature", 0.0)
        self.max_tokens = cfg.take("max_tokens", 2000)
        self.top_p = cfg.take("top_p")
        self.top_k = cfg.take("top_k")
        self.thinking_budget = cfg.take("thinking_budget")
        self.structured = cfg.choice("structured_output", STRUCTURED_MODES, "json_schema")
        self.extra_headers = cfg.mapping("extra_headers")
        if cfg.take("vertexai"):
            raise ConfigurationError("gemini: Vertex AI is not supported; use a Gemini API key "
                                     "(https://aistudio.google.com/apikey)")
        cfg.done()

    # ---------------------------------------------------------------- pure

    def url(self) -> str:
        return f"{self.base_url}/v1beta/models/{quote(self.model, safe='')}:generateContent"

    def build(self, request: LLMRequest) -> HTTPCall:
        system = [m["content"] for m in request.messages if m.get("role") == "system"]
        contents = [{"role": "model" if m.get("role") == "assistant" else "user", "parts": [{"text": m["content"]}]}
                    for m in request.messages if m.get("role") != "system"]
        generation: dict[str, Any] = {}
        temperature = request.temperature if request.temperature is not None else self.temperature
        if temperature is not None:
            generation["temperature"] = temperature
        max_tokens = request.max_tokens or self.max_tokens
        if max_tokens:
            generation["maxOutputTokens"] = max_tokens
        if self.top_p is not None:
            generation["topP"] = self.top_p
        if self.top_k is not None:
            generation["topK"] = self.top_k
        if self.thinking_budget is not None:
            generation["thinkingConfig"] = {"thinkingBudget": self.thinking_budget}
        if request.schema is not None and self.structured != "none":
            generation["responseMimeType"] = "application/json"
            if self.structured == "json_schema":
                generation["responseJsonSchema"] = request.schema
            elif self.structured == "response_schema":
                generation["responseSchema"] = to_openapi_schema(request.schema)
        body: dict[str, Any] = {"contents": contents, "generationConfig": generation}
        if system:
            body["systemInstruction"] = {"parts": [{"text": "\n\n".join(system)}]}
        headers = {"content-type": "application/json", **self.extra_headers, "x-goog-api-key": self.api_key}
        return HTTPCall("POST", self.url(), headers, body)

    def parse(self, result: HTTPResult) -> LLMResponse:
        try:
            payload = result.json()
            candidates = payload.get("candidates") or []
        except (ValueError, AttributeError) as exc:
            raise LLMError(f"gemini: unexpected response shape: {exc!r}", raw_output=result.body[:2000],
                           provider=self.name) from exc
        if not candidates:
            reason = (payload.get("promptFeedback") or {}).get("blockReason") or "no candidates"
            raise LLMError(f"gemini: no answer ({reason})", raw_output=payload, provider=self.name)
        candidate = candidates[0] if isinstance(candidates[0], dict) else {}
        parts = (candidate.get("content") or {}).get("parts") or []
        text = "".join(p.get("text") or "" for p in parts if isinstance(p, dict) and not p.get("thought"))
        if not text and candidate.get("finishReason") in BLOCKED:
            raise LLMError(f"gemini: the answer was blocked ({candidate['finishReason']})", raw_output=payload,
                           provider=self.name)
        usage = payload.get("usageMetadata") or {}
        completion = int(usage.get("candidatesTokenCount") or 0) + int(usage.get("thoughtsTokenCount") or 0)
        return LLMResponse(content=text, data=None, prompt_tokens=int(usage.get("promptTokenCount") or 0),
                           completion_tokens=completion, model=payload.get("modelVersion") or self.model,
                           raw=payload)

    # ---------------------------------------------------------------- I/O

    def generate(self, request: LLMRequest) -> LLMResponse:
        return self.call(self.build(request), self.parse)

    async def agenerate(self, request: LLMRequest) -> LLMResponse:
        return await self.acall(self.build(request), self.parse)

