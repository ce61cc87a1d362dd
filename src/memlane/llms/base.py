"""The LLM interface: one request (chat messages + optional JSON schema) in, one response out."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Optional, Protocol, runtime_checkable


@dataclass
class LLMRequest:
    # [{"role": "system"|"user"|"assistant", "content": str}]; the content of a request to describe an image
    # (llm config enable_vision) is OpenAI-style parts: [{"type": "text", ...}, {"type": "image_url", ...}]
    messages: list[dict[str, Any]]
    # JSON schema the answer must follow; providers use their structured-output mode for it when they have one.
    schema: Optional[dict[str, Any]] = None
    schema_name: str = "response"
    temperature: Optional[float] = 0.0
    max_tokens: Optional[int] = None


@dataclass
class LLMResponse:
    content: str  # the text answer; with a schema, JSON text
    data: Any = None  # the parsed object, when the provider returned structured output (tool arguments)
    prompt_tokens: int = 0
    completion_tokens: int = 0
    model: Optional[str] = None
    raw: Any = field(default=None, repr=False)


@runtime_checkable
class LLM(Protocol):
    def generate(self, request: LLMRequest) -> LLMResponse: ...
