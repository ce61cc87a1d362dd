"""Redis or Valkey as the vector engine, through the search module's FT.* commands (Redis 8 / Redis Stack's
Query Engine, RediSearch; Valkey with a search module). One hash per memory under `memlane:<collection>:`,
holding its id, scope ids (TAG fields) and float32 vector; one index named `collection_name` over them.

Config keys are mem0's: `redis_url` (provider "redis") or `valkey_url` (provider "valkey"),
`collection_name`, `embedding_model_dims`, and valkey's `index_type` ("hnsw" / "flat"), `hnsw_m`,
`hnsw_ef_construction`, `hnsw_ef_runtime` and `timezone` (accepted, unused: timestamps stay in the store).

The scope is a TAG filter inside the KNN query. TAG fields are CASESENSITIVE, and split on a control
character (scope ids cannot hold one) rather than on ",", so "a,b" stays one id; every hit is checked
against the scope again, since the server trims blanks around tag values. One search returns at most
10,000 hits (Redis Stack's default MAXSEARCHRESULTS), so memlane's filter sees at most that many candidates."""
from __future__ import annotations

import importlib
from typing import Any, Optional

import numpy as np

from ..errors import ConfigurationError
from ..models import Scope
from . import SCOPE_KEYS, config_keys, scope_items

KEYS = frozenset({"redis_url", "valkey_url", "collection_name", "embedding_model_dims", "timezone", "index_type",
                  "hnsw_m", "hnsw_ef_construction", "hnsw_ef_runtime"})
ID = "memory_id"
VECTOR = "embedding"
SEPARATOR = "\x1f"  # scope ids are printable (inputs.py), so this never splits one
RETURNED = (ID, *SCOPE_KEYS, "__dist")
BATCH = 500
MAX_HITS = 10_000  # Redis Stack's default MAXSEARCHRESULTS: a larger LIMIT is an error there


def tag_escape(value: str) -> str:
    """A TAG query value: ASCII punctuation and blanks escaped; other characters as they are (a backslash
    before a multi-byte character breaks the match). Blanks around the value are trimmed, as the index
    trims them."""
    return "".join(c if c.isalnum() or c == "_" or ord(c) > 127 else "\\" + c for c in value.strip())


def scope_query(scope: Scope) -> str:
    clauses = [f"@{key}:{{{tag_escape(value)}}}" for key, value in scope_items(scope).items() if value.strip()]
    return f"({' '.join(clauses)})" if clauses else "*"


def _text(value: Any) -> str:
    return value.decode("utf-8") if isinstance(value, bytes) else str(value)


def _docs(reply: Any) -> list[dict[str, str]]:
    """FT.SEARCH's documents as {field: value}, from a RESP2 (flat list) or RESP3 (map) reply."""
    if isinstance(reply, dict):
        results = {_text(k): v for k, v in reply.items()}.get("results", [])
        out = []
        for doc in results:
            doc = {_text(k): v for k, v in doc.items()}
            attrs = doc.get("extra_attributes") or {}
            out.append({_text(k): _text(v) for k, v in attrs.items()})
        return out
    out = []
    for fields in reply[2::2]:  # total, key, fields, key, fields...
        out.append({_text(fields[i]): _text(fields[i + 1]) for i in range(0, len(fields) - 1, 2)})
    return out


def _info_value(reply: Any, names: tuple[str, ...]) -> Optional[Any]:
    """The value after the first of `names` anywhere in an FT.INFO reply (its layout differs between
    RediSearch versions and valkey-search, and between RESP2 lists and RESP3 maps)."""
    if isinstance(reply, dict):
        reply = [x for pair in reply.items() for x in pair]
    if not isinstance(reply, (list, tuple)):
        return None
    for i, item in enumerate(reply):
        if isinstance(item, (bytes, str)) and _text(item).lower() in names and i + 1 < len(reply):
            return reply[i + 1]
        if isinstance(item, (list, tuple, dict)):
            found = _info_value(item, names)
            if found is not None:
                return found
    return None


def _missing_index(exc: Exception) -> bool:
    message = str(exc).lower()
    return "unknown index" in message or "no such index" in message or "not found" in message


class RedisEngine:
    def __init__(self, config: dict[str, Any]):
        config = config_keys(dict(config), KEYS, "redis/valkey")
        try:
            redis = importlib.import_module("redis")
        except ImportError as exc:
            raise ConfigurationError("vector_store 'redis' / 'valkey' needs the redis client: "
                                     "pip install 'memlane[redis]'") from exc
        self._errors = redis.exceptions
        if config.get("redis_url") and config.get("valkey_url"):
            raise ConfigurationError("vector_store 'redis' / 'valkey': give redis_url or valkey_url, not both")
        url = config.get("redis_url") or config.get("valkey_url")
        if not url:
            raise ConfigurationError("vector_store 'redis' needs redis_url ('valkey': valkey_url), "
                                     "e.g. redis://localhost:6379")
        self.index = str(config.get("collection_name") or "memlane")
        self.prefix = f"memlane:{self.index}:"
        index_type = str(config.get("index_type") or "hnsw").upper()
        if index_type not in ("HNSW", "FLAT"):
            raise ConfigurationError(f"vector_store 'redis' / 'valkey': index_type must be hnsw or flat, "
                                     f"not {config.get('index_type')!r}")
        self._algorithm = index_type
        self._hnsw = [("M", config.get("hnsw_m")), ("EF_CONSTRUCTION", config.get("hnsw_ef_construction")),
                      ("EF_RUNTIME", config.get("hnsw_ef_runtime"))]
        self._ef_runtime = config.get("hnsw_ef_runtime") if index_type == "HNSW" else None
        self._client = redis.Redis.from_url(str(url))
        self._dims: Optional[int] = None
        try:
            self._dims = self._read_dims()
        except self._errors.ConnectionError:  # down now: the outbox catches it up once it answers
            pass

    # ------------------------------------------------------------ the index

    def _read_dims(self) -> Optional[int]:
        try:
            info = self._client.execute_command("FT.INFO", self.index)
        except self._errors.ResponseError as exc:
            if "unknown command" in str(exc).lower():
                raise ConfigurationError("vector_store 'redis' / 'valkey': the server has no search module "
                                         "(FT.* commands): use Redis 8, Redis Stack or Valkey with "
                                         "valkey-search") from exc
            if _missing_index(exc):
                return None
            raise
        dims = _info_value(info, ("dim", "dimensions"))
        return int(_text(dims)) if dims is not None else None

    def _ensure(self, dims: int) -> None:
        self._dims = self._read_dims()  # asked each time: a restarted server without persistence has none
        if self._dims == dims:
            return
        if self._dims is not None:  # another space (a reindex to another embedder): the old vectors go
            self._drop()
        params: list[Any] = ["TYPE", "FLOAT32", "DIM", dims, "DISTANCE_METRIC", "COSINE"]
        if self._algorithm == "HNSW":
            params += [x for name, value in self._hnsw if value is not None for x in (name, int(value))]
        tags = [x for key in (ID, *SCOPE_KEYS) for x in (key, "TAG", "SEPARATOR", SEPARATOR, "CASESENSITIVE")]
        self._client.execute_command("FT.CREATE", self.index, "ON", "HASH", "PREFIX", 1, self.prefix, "SCHEMA",
                                     *tags, VECTOR, "VECTOR", self._algorithm, len(params), *params)
        self._dims = dims

    def _keys(self) -> list[bytes]:
        pattern = "".join("\\" + c if c in "*?[]\\" else c for c in self.prefix) + "*"
        return list(self._client.scan_iter(match=pattern, count=1000))

    def _drop(self) -> None:
        """Every record and the index (FT.DROPINDEX's DD is RediSearch's only: the keys go by SCAN)."""
        keys = self._keys()
        for start in range(0, len(keys), BATCH):
            self._client.delete(*keys[start:start + BATCH])
        try:
            self._client.execute_command("FT.DROPINDEX", self.index)
        except self._errors.ResponseError as exc:
            if not _missing_index(exc):
                raise
        self._dims = None

    # ------------------------------------------------------------ the engine

    def upsert(self, records: list[tuple[str, np.ndarray, Scope]]) -> None:
        if not records:
            return
        self._ensure(int(records[0][1].shape[0]))
        pipe = self._client.pipeline(transaction=True)
        for mid, vec, scope in records:
            key = self.prefix + mid
            pipe.delete(key)  # a scope id the memory no longer has must not stay behind
            pipe.hset(key, mapping={ID: mid, **scope_items(scope),
                                    VECTOR: np.asarray(vec, dtype=np.float32).tobytes()})
        pipe.execute()

    def delete(self, ids: list[str]) -> None:
        for start in range(0, len(ids), BATCH):
            self._client.delete(*(self.prefix + i for i in ids[start:start + BATCH]))

    def clear(self, scope: Optional[Scope]) -> None:
        if scope is None or not scope_items(scope):
            self._drop()
            return
        if self._dims is None:
            self._dims = self._read_dims()
        if self._dims is None:
            return
        probe = np.zeros(self._dims, dtype=np.float32)
        probe[0] = 1.0
        while found := self.search(probe, scope, BATCH):  # valkey-search answers KNN queries only
            self.delete([mid for mid, _ in found])

    def search(self, vector: np.ndarray, scope: Scope, k: int) -> list[tuple[str, float]]:
        if k <= 0:
            return []
        if self._dims is None:
            self._dims = self._read_dims()
            if self._dims is None:
                return []
        want = scope_items(scope)
        blob = np.asarray(vector, dtype=np.float32).tobytes()
        ask = min(k, MAX_HITS)
        while True:  # the in-query filter can let through ids that differ in surrounding blanks only
            docs = self._knn(blob, scope, ask)
            hits = [(d[ID], 1.0 - float(d["__dist"])) for d in docs
                    if all(d.get(key) == value for key, value in want.items())]
            if len(hits) >= k or len(docs) < ask or ask == MAX_HITS:
                break
            ask = min(ask * 4, MAX_HITS)
        hits.sort(key=lambda hit: -hit[1])
        return hits[:k]

    def _knn(self, blob: bytes, scope: Scope, k: int) -> list[dict[str, str]]:
        ef = f" EF_RUNTIME {int(self._ef_runtime)}" if self._ef_runtime else ""
        query = f"{scope_query(scope)}=>[KNN {k} @{VECTOR} $vec{ef} AS __dist]"
        try:
            reply = self._client.execute_command(
                "FT.SEARCH", self.index, query, "PARAMS", 2, "vec", blob,
                "RETURN", len(RETURNED), *RETURNED, "LIMIT", 0, k, "DIALECT", 2)
        except self._errors.ResponseError as exc:
            if _missing_index(exc):  # dropped meanwhile (another client's reset)
                self._dims = None
                return []
            raise
        return _docs(reply)

    def count(self) -> int:
        try:
            info = self._client.execute_command("FT.INFO", self.index)
        except self._errors.ResponseError as exc:
            if _missing_index(exc):
                return 0
            raise
        found = _info_value(info, ("num_docs",))
        return int(float(_text(found))) if found is not None else 0

    def close(self) -> None:
        self._client.close()
