"""A provider's config dict, read in one place: each provider takes the keys it knows (with defaults, aliases
and environment fallbacks) and calls `done()`, which drops the mem0 keys it was told to ignore and the keys
mem0 dumps as None when unset, and refuses whatever is left (a typo must not be silently ignored).

    cfg = ProviderConfig(config, "ollama", "llm", ignored=MEM0_LLM_KEYS)
    model = cfg.first("model", default="llama3.1")
    base = cfg.first("ollama_base_url", "base_url")         # either name; the first one set wins
    api_key = cfg.first("api_key", env=("OLLAMA_API_KEY",))
    cfg.done()                                               # ConfigurationError: unknown ollama llm config keys: ...
"""
from __future__ import annotations

import os
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Callable, Optional, TypeVar

from .errors import ConfigurationError

# mem0 config keys with no meaning to any memlane LLM / HTTP embedder (accepted, not used).
MEM0_LLM_KEYS = ("enable_vision", "vision_details", "http_client_proxies")
MEM0_EMBEDDER_KEYS = ("http_client_proxies", "memory_add_embedding_type", "memory_update_embedding_type",
                      "memory_search_embedding_type")

N = TypeVar("N", int, float)
D = TypeVar("D")


class ProviderConfig:
    """One provider's config, consumed key by key. `provider` and `kind` ("llm", "embedder", "reranker") name
    it in errors; `section` is the name of the dict for nested ones (azure_kwargs)."""

    def __init__(self, config: Optional[Mapping[str, Any]], provider: str, kind: str, *,
                 ignored: Iterable[str] = (), section: str = "config"):
        self.provider, self.kind = provider, kind
        self.label = f"{provider} {kind}"
        self.section = section
        if config is not None and not isinstance(config, Mapping):
            raise self.error(f"{section} must be a dict, not {type(config).__name__}")
        self._left: dict[str, Any] = dict(config or {})  # a copy: the caller's dict is never changed
        self._ignored = frozenset(ignored)

    def error(self, message: str) -> ConfigurationError:
        return ConfigurationError(f"{self.label}: {message}")

    def take(self, key: str, default: Any = None) -> Any:
        """The value as given (None included, so that e.g. temperature=None can mean "do not send"), else
        `default`."""
        return self._left.pop(key, default)

    def first(self, *keys: str, env: Sequence[str] = (), default: Any = None) -> Any:
        """The first of `keys` set to something truthy, else the first non-empty environment variable of
        `env`, else `default`. Every key is consumed, so giving two aliases is not an unknown key."""
        values = [self._left.pop(key, None) for key in keys]
        found = next((v for v in values if v), None) or next((os.environ[e] for e in env if os.environ.get(e)), None)
        return found or default

    def choice(self, key: str, options: Sequence[str], default: str) -> str:
        value = self._left.pop(key, default)
        if value not in options:
            raise self.error(f"{key} must be one of {', '.join(options)}, not {value!r}")
        return value

    def mapping(self, key: str) -> dict[str, Any]:
        """A dict-valued key (headers, model_kwargs...) as a new dict; unset or None is empty."""
        value = self._left.pop(key, None)
        if value is None:
            return {}
        if not isinstance(value, Mapping):
            raise self.error(f"{key} must be a dict, not {type(value).__name__}")
        return dict(value)

    def nested(self, key: str, *, ignored: Iterable[str] = ()) -> "ProviderConfig":
        """A nested dict (azure_kwargs) read the same way; its done() names the section."""
        return ProviderConfig(self.mapping(key), self.provider, self.kind, ignored=ignored, section=key)

    def number(self, key: str, default: D, kind: Callable[[Any], N]) -> N | D:
        """`kind(value)` (int or float); unset or None is `default`."""
        value = self._left.pop(key, None)
        if value is None:
            return default
        try:
            return kind(value)
        except (TypeError, ValueError):
            raise self.error(f"{key} must be a number, not {value!r}") from None

    def positive_int(self, key: str) -> Optional[int]:
        """A whole number > 0 (3.0 and "3" are accepted, 2.5 and True are not), or None when unset."""
        value = self._left.pop(key, None)
        if value is None:
            return None
        try:
            number = int(value)
        except (TypeError, ValueError):
            number = 0
        if number <= 0 or (isinstance(value, float) and value != number) or isinstance(value, bool):
            raise self.error(f"{key} must be a positive integer, not {value!r}")
        return number

    def rest(self) -> dict[str, Any]:
        """Everything not taken yet, handed on to another reader that checks it (nothing is left here)."""
        left, self._left = self._left, {}
        return left

    def done(self) -> None:
        """Refuse what no one took, except the ignored mem0 keys and keys mem0 dumps as None when unset."""
        unknown = sorted(str(k) for k, v in self._left.items() if v is not None and k not in self._ignored)
        if unknown:
            raise ConfigurationError(f"unknown {self.label} {self.section} keys: {', '.join(unknown)}")

