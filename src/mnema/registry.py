"""Provider registry: maps (kind, name) to a factory, so new providers never touch the core.

Built-in providers are named by import path and imported on first use, so an optional dependency
that is not installed only matters to someone who asks for that provider.
"""
from __future__ import annotations

import importlib
from typing import Any, Callable

from .errors import ConfigurationError

KINDS = ("llm", "embedder", "vector_store", "graph_store", "reranker")

Factory = Callable[[dict[str, Any]], Any]

_BUILTIN: dict[str, dict[str, str]] = {
    "embedder": {
        "local": "mnema.embeddings.local:LocalEmbedder",
        "openai": "mnema.embeddings.openai:OpenAIEmbedder",
        "azure_openai": "mnema.embeddings.azure_openai:AzureOpenAIEmbedder",
        "ollama": "mnema.embeddings.ollama:OllamaEmbedder",
        "huggingface": "mnema.embeddings.huggingface:HuggingFaceEmbedder",
        "gemini": "mnema.embeddings.gemini:GeminiEmbedder",
        "aws_bedrock": "mnema.embeddings.aws_bedrock:BedrockEmbedder",
    },
    "vector_store": {
        "sqlite": "mnema.stores.sqlite:SQLiteStore",
    },
    "llm": {
        "openai": "mnema.llms.openai:OpenAILLM",
        "vllm": "mnema.llms.openai:VLLMLLM",
        "lmstudio": "mnema.llms.openai:LMStudioLLM",
        "groq": "mnema.llms.openai:GroqLLM",
        "together": "mnema.llms.openai:TogetherLLM",
        "deepseek": "mnema.llms.openai:DeepSeekLLM",
        "xai": "mnema.llms.openai:XAILLM",
        "openrouter": "mnema.llms.openai:OpenRouterLLM",
        "azure_openai": "mnema.llms.azure_openai:AzureOpenAILLM",
        "anthropic": "mnema.llms.anthropic:AnthropicLLM",
        "gemini": "mnema.llms.gemini:GeminiLLM",
        "ollama": "mnema.llms.ollama:OllamaLLM",
        "litellm": "mnema.llms.litellm:LiteLLM",
        "aws_bedrock": "mnema.llms.aws_bedrock:BedrockLLM",
    },
    "graph_store": {},
    "reranker": {
        "maxsim": "mnema.rerankers.maxsim:MaxSimReranker",
    },
}
_registered: dict[str, dict[str, Factory | str]] = {kind: {} for kind in KINDS}


def register_provider(kind: str, name: str, factory: Factory | str) -> None:
    """Register `factory` (a callable taking the provider's config dict, or "module:attr") as `name`."""
    if kind not in KINDS:
        raise ConfigurationError(f"unknown provider kind {kind!r}; expected one of {', '.join(KINDS)}")
    if not name or not isinstance(name, str):
        raise ConfigurationError("a provider name must be a non-empty string")
    _registered[kind][name] = factory


def available(kind: str) -> list[str]:
    return sorted(set(_BUILTIN.get(kind, {})) | set(_registered.get(kind, {})))


def _resolve(target: str) -> Factory:
    module_name, _, attr = target.partition(":")
    module = importlib.import_module(module_name)  # ConfigurationError for missing extras is raised inside
    return getattr(module, attr)


def create(kind: str, name: str, config: dict[str, Any] | None = None) -> Any:
    """Instantiate provider `name` of `kind` with its config dict."""
    if kind not in KINDS:
        raise ConfigurationError(f"unknown provider kind {kind!r}")
    factory: Factory | str | None = _registered[kind].get(name) or _BUILTIN.get(kind, {}).get(name)
    if factory is None:
        raise ConfigurationError(
            f"unknown {kind} provider {name!r}; available: {', '.join(available(kind)) or 'none'}"
            " (register your own with mnema.register_provider)"
        )
    if isinstance(factory, str):
        factory = _resolve(factory)
    return factory(dict(config or {}))
