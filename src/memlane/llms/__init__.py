from .base import LLM, LLMRequest, LLMResponse

__all__ = ["LLM", "LLMRequest", "LLMResponse"]
