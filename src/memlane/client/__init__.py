"""MemoryClient / AsyncMemoryClient: memlane's API on a `memlane serve` server, over httpx."""
from .api import AsyncMemoryClient, MemoryClient
from .core import AuthenticationError, PermissionDeniedError, RateLimitError

__all__ = ["MemoryClient", "AsyncMemoryClient", "AuthenticationError", "PermissionDeniedError", "RateLimitError"]
