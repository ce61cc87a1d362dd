"""memlane: long-term memory for LLM applications."""
from .config import MemoryConfig, ProviderConfig
from .errors import (ConfigurationError, ConflictError, DimensionMismatchError, InternalError, LLMError,
                     MemlaneError, NotFoundError, ProviderError, ValidationError)
from .memory import AsyncMemory, Memory
from .registry import register_provider

__version__ = "0.1.0"
__all__ = ["Memory", "AsyncMemory", "MemoryConfig", "ProviderConfig", "register_provider", "MemlaneError",
           "ValidationError", "NotFoundError", "ConfigurationError", "ConflictError", "DimensionMismatchError",
           "ProviderError", "LLMError", "InternalError"]


def __getattr__(name: str) -> object:
    # The HTTP client (memlane serve's) loads on first use: `import memlane` stays as light as it was.
    if name in ("MemoryClient", "AsyncMemoryClient"):
        from . import client
        return getattr(client, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
