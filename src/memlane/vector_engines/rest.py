"""What the vector engines spoken over REST share (Elasticsearch / OpenSearch, Azure AI Search, Pinecone,
Weaviate): memlane.http's retried exchange (an HTTPProvider), the config read with the retry keys, one JSON
reader for the answers, a 404 read as "missing" where the caller says so, and the VectorEngine calls' common
part (nothing to do before the index exists; the index made for the vectors' size before a write; k capped).

A subclass gives `headers`, `_url` (unless its calls name whole URLs), `_present`, `_ensure` and the five
engine-specific halves `_write`, `_delete`, `_clear`, `_search`, `_count`."""
from __future__ import annotations

import threading
from typing import Any, Callable, Optional

import numpy as np

from ..errors import ProviderError
from ..http import HTTPCall, HTTPProvider, HTTPResult, RetryPolicy
from ..models import Scope
from ..provider_config import ProviderConfig
from . import config_keys

RETRY_KEYS = ("timeout", "max_retries", "retry_base_delay", "retry_max_delay")  # memlane.http's


def json_body(result: HTTPResult, provider: str) -> Any:
    """A JSON answer; an empty one (a 204, a delete's bare 200) is {}, anything else that is no JSON an error."""
    if not result.body.strip():
        return {}
    try:
        return result.json()
    except ValueError as exc:
        raise ProviderError(f"{provider} answered HTTP {result.status} with no JSON: {result.body[:200]!r}",
                            provider=provider) from exc


class RESTEngine(HTTPProvider):
    """A VectorEngine over a REST API. `config`: the engine's config, its keys checked against `keys` (mem0's
    names, with RETRY_KEYS); the retry keys are read here, the rest by the subclass (from `self.cfg`, a
    ProviderConfig, or from the dict)."""

    name = "rest"
    max_k = 10_000  # the most neighbours one search asks for

    def __init__(self, config: dict[str, Any], keys: frozenset[str]):
        config_keys(dict(config), keys, self.name)
        self.cfg = ProviderConfig(config, self.name, "vector_store")
        super().__init__(RetryPolicy.from_config(self.cfg))
        self.headers: dict[str, str] = {}
        self._lock = threading.Lock()  # one index creation at a time
        self._dims: Optional[int] = None

    # ---------------------------------------------------------------- one request

    def _url(self, path: str) -> str:
        return path

    def _request(self, method: str, path: str, body: Any = None, *, content: Optional[bytes] = None,
                 headers: Optional[dict[str, str]] = None, missing_ok: bool = False,
                 parse: Optional[Callable[[HTTPResult], Any]] = None) -> Any:
        """The answer of one call (retried by memlane.http), JSON unless `parse` reads it; None for a 404 when
        `missing_ok`."""
        call = HTTPCall(method, self._url(path), {**self.headers, **(headers or {})}, json=body, content=content)
        try:
            return self.call(call, parse or self._json)
        except ProviderError as exc:
            if missing_ok and exc.status == 404:
                return None
            raise

    def _json(self, result: HTTPResult) -> Any:
        return json_body(result, self.name)

    # ---------------------------------------------------------------- VectorEngine

    def _present(self) -> bool:
        """Whether the index exists (asked of the service on first use, so that memlane opens while it is down)."""
        raise NotImplementedError

    def _ensure(self, dims: int) -> None:
        """The index, made for `dims`-dimension vectors when it is missing or holds another size."""
        raise NotImplementedError

    def upsert(self, records: list[tuple[str, np.ndarray, Scope]]) -> None:
        if records:
            dims = int(records[0][1].shape[0])
            self._ensure(dims)
            self._write(records, dims)

    def delete(self, ids: list[str]) -> None:
        if ids and self._present():
            self._delete(ids)

    def clear(self, scope: Optional[Scope]) -> None:
        if self._present():
            self._clear(scope)

    def search(self, vector: np.ndarray, scope: Scope, k: int) -> list[tuple[str, float]]:
        if k <= 0 or not self._present():
            return []
        return self._search([float(x) for x in vector], scope, min(k, self.max_k))

    def count(self) -> int:
        return self._count() if self._present() else 0

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None

    def _write(self, records: list[tuple[str, np.ndarray, Scope]], dims: int) -> None:
        raise NotImplementedError

    def _delete(self, ids: list[str]) -> None:
        raise NotImplementedError

    def _clear(self, scope: Optional[Scope]) -> None:
        raise NotImplementedError

    def _search(self, vector: list[float], scope: Scope, k: int) -> list[tuple[str, float]]:
        raise NotImplementedError

    def _count(self) -> int:
        raise NotImplementedError


class IndexEngine(RESTEngine):
    """An engine whose index's vector size is read once (Elasticsearch / OpenSearch, Azure AI Search); an index
    found missing stays missing until this engine makes it."""

    def __init__(self, config: dict[str, Any], keys: frozenset[str]):
        super().__init__(config, keys)
        self._known = False  # read on first use, so that memlane opens while the service is down

    def _read_dims(self) -> Optional[int]:
        """The index's vector size as the service says (-1: no vector field; None: no index)."""
        raise NotImplementedError

    def _index_dims(self) -> Optional[int]:
        if not self._known:
            self._dims, self._known = self._read_dims(), True
        return self._dims

    def _present(self) -> bool:
        return self._index_dims() is not None
