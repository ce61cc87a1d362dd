"""Typed exceptions. Everything memlane raises on purpose derives from MemlaneError."""
from __future__ import annotations

from typing import Any


class MemlaneError(Exception):
    """Base class of every error memlane raises on purpose."""


class ValidationError(MemlaneError, ValueError):
    """The caller passed something memlane cannot accept (bad id, empty message, unknown filter operator...)."""


class NotFoundError(MemlaneError, KeyError, ValueError):
    """A memory id (or an entity, for delete_users) that does not exist in this store. A KeyError, and a
    ValueError as well: mem0 raises ValueError for an unknown id, so code written for it catches this."""

    def __str__(self) -> str:  # KeyError quotes its message; keep it readable
        return str(self.args[0]) if self.args else "not found"


class ConflictError(MemlaneError):
    """A write was planned against a state of the store that changed before it could commit (another
    caller updated or deleted the same memory); nothing was written. `ids` names the memories involved."""

    def __init__(self, message: str, *, ids: tuple[str, ...] = ()):
        super().__init__(message)
        self.ids = tuple(ids)


class InternalError(MemlaneError):
    """A bug in memlane or a dependency surfaced as an unexpected exception (kept as __cause__); nothing was
    written. Please report it."""


class ConfigurationError(MemlaneError):
    """The configuration is invalid or names something that is not installed."""


class ProviderError(MemlaneError):
    """An external provider (LLM, embedder, store) failed."""

    def __init__(self, message: str, *, provider: str | None = None, status: int | None = None):
        super().__init__(message)
        self.provider = provider
        self.status = status


class LLMError(ProviderError):
    """The LLM failed or answered something that does not validate; `raw_output` holds what it said."""

    def __init__(self, message: str, *, raw_output: Any = None, provider: str | None = None,
                 status: int | None = None):
        super().__init__(message, provider=provider, status=status)
        self.raw_output = raw_output


class DimensionMismatchError(ConfigurationError):
    """The store was created with vectors of another dimension than the configured embedder gives."""


def missing_extra(package: str, extra: str) -> ConfigurationError:
    """The ImportError-style message for an optional dependency, naming the extra to install."""
    return ConfigurationError(
        f"{package!r} is not installed; install it with: pip install 'memlane[{extra}]'"
    )
