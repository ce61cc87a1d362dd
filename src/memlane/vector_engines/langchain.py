"""Any LangChain VectorStore as the vector engine (mem0's shape: `{"provider": "langchain", "config":
{"client": <VectorStore>}}`; `collection_name` is accepted and unused, the store is already one collection).

Each memory is one Document: page_content its id, metadata {memory_id, user_id, agent_id, run_id} (the scope
ids it has), id its memory id, and memlane's vector (never one the store computes: it must be the space
memlane's embedder searches in). What the store must support:

- writes with a given vector: `add_embeddings(text_embeddings, metadatas=, ids=)` (FAISS has it), or a store
  built with `PassThroughEmbeddings()` from this module, which hands `add_documents` memlane's vectors;
- `add_documents(..., ids=)` and `delete(ids=)` (a missing id is no error);
- `similarity_search_with_score_by_vector(vector, k=, filter=)` returning cosine similarity as the score
  (higher is better), as InMemoryVectorStore does. The scope goes in `filter` as InMemoryVectorStore's
  callable, or as a {key: value} dict for a store whose `filter` is not typed as a callable; a store that
  refuses the filter is asked without it. Every hit is checked against the scope here, and the search asks
  for more until k hits pass, so a store that filters loosely (or not at all) still gives exact results;
- for clear() and count(), InMemoryVectorStore's `store` dict, else a search sweep (clear only).

An in-memory store starts empty in each process: after opening memlane on one that already has memories,
call `Memory.engine_status(repair=True)` to load them into it."""
from __future__ import annotations

import importlib
import inspect
import logging
import threading
from typing import Any, Callable, Optional

import numpy as np

from ..errors import ConfigurationError, ProviderError
from ..models import Scope
from . import config_keys, scope_items

log = logging.getLogger("memlane.vectors")

KEYS = frozenset({"client", "collection_name", "embedding_model_dims"})  # the embedded store checks the dims
ID = "memory_id"
BATCH = 500

try:  # a real Embeddings where langchain_core is installed, so stores that check the type accept it
    _Base: Any = importlib.import_module("langchain_core.embeddings").Embeddings
except ImportError:
    _Base = object


class PassThroughEmbeddings(_Base):
    """The embedding function to build a LangChain store with when it has no add_embeddings: it returns
    the vectors memlane hands it for the documents being added (whose page_content is the memory id), and
    embeds nothing else: memlane searches by vector."""

    def __init__(self) -> None:
        self._pending: dict[str, list[float]] = {}

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        missing = [t for t in texts if t not in self._pending]
        if missing:
            raise ValueError(f"PassThroughEmbeddings embeds only what memlane adds (not {missing[0]!r})")
        return [self._pending[t] for t in texts]

    def embed_query(self, text: str) -> list[float]:
        raise ValueError("PassThroughEmbeddings cannot embed a query: search this store by vector")


def _takes_callable_filter(method: Callable[..., Any]) -> bool:
    try:
        param = inspect.signature(method).parameters.get("filter")
    except (TypeError, ValueError):
        return False
    return param is not None and "Callable" in str(param.annotation)


class LangChainEngine:
    def __init__(self, config: dict[str, Any]):
        config = config_keys(dict(config), KEYS, "langchain")
        try:
            vectorstores = importlib.import_module("langchain_core.vectorstores")
            self._document = importlib.import_module("langchain_core.documents").Document
        except ImportError as exc:
            raise ConfigurationError("vector_store 'langchain' needs langchain-core: "
                                     "pip install 'memlane[langchain]'") from exc
        store = config.get("client")
        if not isinstance(store, vectorstores.VectorStore):
            raise ConfigurationError("vector_store 'langchain' needs config.client: a LangChain VectorStore "
                                     f"(got {type(store).__name__})")
        self._store = store
        self._embeddings = getattr(store, "embeddings", None)
        self._add_embeddings = getattr(store, "add_embeddings", None)
        if not callable(self._add_embeddings) and not isinstance(self._embeddings, PassThroughEmbeddings):
            raise ConfigurationError(
                f"vector_store 'langchain': {type(store).__name__} has no add_embeddings, so memlane cannot give "
                "it its vectors: build it with memlane.vector_engines.langchain.PassThroughEmbeddings()")
        search = getattr(store, "similarity_search_with_score_by_vector", None)
        if not callable(search):
            raise ConfigurationError(f"vector_store 'langchain': {type(store).__name__} has no "
                                     "similarity_search_with_score_by_vector")
        self._search = search
        self._callable_filter = _takes_callable_filter(search)
        self._filter_works = True
        self._dims: Optional[int] = None
        self._lock = threading.RLock()  # LangChain stores are not thread-safe (InMemoryVectorStore's dict)

    # ------------------------------------------------------------ writes

    def upsert(self, records: list[tuple[str, np.ndarray, Scope]]) -> None:
        if not records:
            return
        ids = [mid for mid, _, _ in records]
        vectors = [[float(x) for x in vec] for _, vec, _ in records]
        metadatas = [{ID: mid, **scope_items(scope)} for mid, _, scope in records]
        with self._lock:
            self._store.delete(ids=ids)  # a store that appends on a known id would keep the old vector
            if callable(self._add_embeddings):
                self._add_embeddings(list(zip(ids, vectors)), metadatas=metadatas, ids=ids)
            else:
                embeddings = self._embeddings
                assert isinstance(embeddings, PassThroughEmbeddings)
                embeddings._pending = dict(zip(ids, vectors))
                try:
                    self._store.add_documents([self._document(page_content=mid, metadata=meta, id=mid)
                                               for mid, meta in zip(ids, metadatas)], ids=ids)
                finally:
                    embeddings._pending = {}
            self._dims = len(vectors[0])

    def delete(self, ids: list[str]) -> None:
        if ids:
            with self._lock:
                self._store.delete(ids=list(ids))

    def clear(self, scope: Optional[Scope]) -> None:
        with self._lock:
            held = self._held()
            if held is not None:
                want = scope_items(scope) if scope is not None else {}
                gone = [mid for mid, meta in held.items() if all(meta.get(k) == v for k, v in want.items())]
                for start in range(0, len(gone), BATCH):
                    self._store.delete(ids=gone[start:start + BATCH])
                return
            if self._dims is None:
                raise ProviderError("vector_store 'langchain': this store cannot list its documents, and no "
                                    "vector was added yet to sweep it with")
            probe = np.zeros(self._dims, dtype=np.float32)
            probe[0] = 1.0
            last: list[str] = []
            while found := [mid for mid, _ in self.search(probe, scope or Scope(), BATCH)]:
                if found == last:
                    raise ProviderError("vector_store 'langchain': the store still finds what it deleted")
                self._store.delete(ids=found)
                last = found

    # ------------------------------------------------------------ reads

    def _held(self) -> Optional[dict[str, dict[str, Any]]]:
        """memlane's documents as {memory id: metadata}, where the store shows them (InMemoryVectorStore)."""
        docs = getattr(self._store, "store", None)
        if not isinstance(docs, dict):
            return None
        out = {}
        for doc in docs.values():
            meta = doc.get("metadata") if isinstance(doc, dict) else None
            if isinstance(meta, dict) and isinstance(meta.get(ID), str):
                out[meta[ID]] = meta
        return out

    def _filter(self, want: dict[str, str]) -> Any:
        if not want:
            return None
        if self._callable_filter:
            return lambda doc: all(doc.metadata.get(k) == v for k, v in want.items())
        return dict(want)

    def _query(self, vector: list[float], want: dict[str, str], k: int) -> list[tuple[Any, float]]:
        where = self._filter(want) if self._filter_works else None
        if where is None:
            return list(self._search(vector, k=k))
        try:
            return list(self._search(vector, k=k, filter=where))
        except (TypeError, ValueError, NotImplementedError) as exc:
            log.warning("vector_store 'langchain': %s refused the scope filter (%s: %s); filtering its hits "
                        "instead", type(self._store).__name__, type(exc).__name__, exc)
            self._filter_works = False
            return list(self._search(vector, k=k))

    def search(self, vector: np.ndarray, scope: Scope, k: int) -> list[tuple[str, float]]:
        if k <= 0:
            return []
        want = scope_items(scope)
        query = [float(x) for x in vector]
        ask = k
        with self._lock:
            while True:
                found = self._query(query, want, ask)
                hits = [(doc.metadata[ID], float(score)) for doc, score in found
                        if isinstance(doc.metadata.get(ID), str)
                        and all(doc.metadata.get(key) == value for key, value in want.items())]
                if len(hits) >= k or len(found) < ask:
                    return hits[:k]
                ask *= 4

    def count(self) -> int:
        with self._lock:
            held = self._held()
        if held is None:
            raise ProviderError(f"vector_store 'langchain': {type(self._store).__name__} cannot count its "
                                "documents")
        return len(held)

    def close(self) -> None:
        pass  # the store is the caller's: it stays open
