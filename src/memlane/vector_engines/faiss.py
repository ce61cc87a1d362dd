"""FAISS as the vector engine, in a folder (`path`): an exact index (IndexIDMap over IndexFlatIP, or IndexFlatL2
for distance_strategy "euclidean"), held in memory. FAISS stores no payloads, so a SQLite sidecar in the folder
keeps, per record, the integer label FAISS knows it by, the memory id, the scope ids and the vector; each write
is one sidecar transaction, so a crash loses nothing that was acknowledged. The index is saved beside it on
close, stamped with the sidecar's write count; an index that missed writes (a crash) is rebuilt from the
sidecar on open. A scoped search hands FAISS the scope's labels as an IDSelector: the top k is taken within
the scope, never globally and filtered afterwards. One Memory (one process) holds a collection at a time."""
from __future__ import annotations

import contextlib
import importlib
import os
import sqlite3
import threading
from pathlib import Path
from typing import Any, Optional

import numpy as np

from ..errors import ConfigurationError
from ..models import Scope
from . import config_keys, scope_items

KEYS = frozenset({"collection_name", "path", "distance_strategy", "normalize_L2", "embedding_model_dims"})
STRATEGIES = ("cosine", "inner_product", "euclidean")
CHUNK = 900  # bound values per IN (...): below SQLite's oldest limit of 999

SCHEMA = """
CREATE TABLE IF NOT EXISTS vectors (label INTEGER PRIMARY KEY, id TEXT NOT NULL UNIQUE,
                                    user_id TEXT, agent_id TEXT, run_id TEXT, vector BLOB NOT NULL);
CREATE INDEX IF NOT EXISTS vectors_user ON vectors(user_id);
CREATE INDEX IF NOT EXISTS vectors_agent ON vectors(agent_id);
CREATE INDEX IF NOT EXISTS vectors_run ON vectors(run_id);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
"""


class FaissEngine:
    LOCAL_KEY = "path"  # where it keeps its folder when run embedded (config.vector_engine)

    def __init__(self, config: dict[str, Any]):
        config = config_keys(dict(config), KEYS, "faiss")
        try:  # faiss ships no type stubs
            self._faiss = importlib.import_module("faiss")
        except ImportError as exc:
            raise ConfigurationError("vector_store 'faiss' needs faiss-cpu: pip install 'memlane[faiss]'") from exc
        strategy = str(config.get("distance_strategy") or "cosine").lower()
        if strategy not in STRATEGIES:
            raise ConfigurationError(f"vector_store 'faiss': distance_strategy {strategy!r} is not one of "
                                     f"{', '.join(STRATEGIES)}")
        # memlane's vectors are unit length (normalize_L2 is always in effect): every strategy ranks by cosine
        self._l2 = strategy == "euclidean"
        if not config.get("path"):
            raise ConfigurationError("vector_store 'faiss' needs a path (a folder)")
        folder = Path(config["path"])
        folder.mkdir(parents=True, exist_ok=True)
        name = str(config.get("collection_name") or "memlane")
        self._index_file = folder / f"{name}.faiss"
        self._lock = threading.Lock()  # a FAISS index is not safe to search while it is written
        self._lock_file = _exclusive(folder / f"{name}.lock")
        try:
            self._db = sqlite3.connect(folder / f"{name}.sqlite", check_same_thread=False, isolation_level=None)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.executescript(SCHEMA)
            dims = self._meta("dims")
            self._dims: Optional[int] = int(dims) if dims else None
            self._index: Any = self._load() if self._dims else None
        except BaseException:
            self._lock_file.close()
            raise

    # ------------------------------------------------------------ the sidecar and the saved index

    def _meta(self, key: str) -> Optional[str]:
        row = self._db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return None if row is None else str(row[0])

    def _set(self, key: str, value: object) -> None:
        self._db.execute("INSERT INTO meta(key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value = "
                         "excluded.value", (key, str(value)))

    @contextlib.contextmanager
    def _write(self) -> Any:
        """One sidecar transaction that counts as a write (the saved index no longer matches it)."""
        self._db.execute("BEGIN IMMEDIATE")
        try:
            yield
            self._set("writes", int(self._meta("writes") or 0) + 1)
            self._db.execute("COMMIT")
        except BaseException:
            self._db.execute("ROLLBACK")
            raise

    def _new_index(self, dims: int) -> Any:
        faiss = self._faiss
        return faiss.IndexIDMap(faiss.IndexFlatL2(dims) if self._l2 else faiss.IndexFlatIP(dims))

    def _stamp(self) -> str:
        """What a saved index must have been saved with to be read: the write count, the metric, the size."""
        return f"{self._meta('writes') or 0}:{'l2' if self._l2 else 'ip'}:{self._dims}"

    def _load(self) -> Any:
        """The saved index if it holds every write and the strategy asked for; else one built from the sidecar."""
        faiss, dims = self._faiss, int(self._dims or 0)
        if self._meta("saved") == self._stamp() and self._index_file.exists():
            return faiss.read_index(str(self._index_file))
        index = self._new_index(dims)
        rows = self._db.execute("SELECT label, vector FROM vectors").fetchall()
        if rows:
            index.add_with_ids(np.frombuffer(b"".join(v for _, v in rows), dtype=np.float32).reshape(-1, dims),
                               np.array([label for label, _ in rows], dtype=np.int64))
        return index

    def _save(self) -> None:
        """Write the index beside the sidecar (atomically: a torn file is never read), then stamp it."""
        if self._index is None:
            return
        stamp = self._stamp()
        if self._meta("saved") == stamp:
            return
        partial = self._index_file.with_suffix(".faiss.partial")
        self._faiss.write_index(self._index, str(partial))
        os.replace(partial, self._index_file)
        self._set("saved", stamp)

    def _reset(self, dims: Optional[int]) -> None:
        with self._write():
            self._db.execute("DELETE FROM vectors")
            self._set("dims", dims or "")
        self._dims = dims
        self._index = self._new_index(dims) if dims else None

    # ------------------------------------------------------------ the engine

    def upsert(self, records: list[tuple[str, np.ndarray, Scope]]) -> None:
        if not records:
            return
        latest = {mid: (np.asarray(vec, dtype=np.float32).reshape(-1), scope) for mid, vec, scope in records}
        dims = int(next(iter(latest.values()))[0].shape[0])
        with self._lock:
            if self._dims != dims:  # another space (a reindex to another embedder): the old vectors go
                self._reset(dims)
            with self._write():
                replaced = list(self._labels_of(list(latest)).values())  # an upsert replaces (same label)
                self._db.executemany(
                    "INSERT INTO vectors(id, user_id, agent_id, run_id, vector) VALUES (?, ?, ?, ?, ?) "
                    "ON CONFLICT(id) DO UPDATE SET user_id = excluded.user_id, agent_id = excluded.agent_id, "
                    "run_id = excluded.run_id, vector = excluded.vector",
                    [(mid, scope.user_id, scope.agent_id, scope.run_id, vec.tobytes())
                     for mid, (vec, scope) in latest.items()])
                labels = self._labels_of(list(latest))
            self._remove(replaced)
            self._index.add_with_ids(np.stack([vec for vec, _ in latest.values()]),
                                     np.array([labels[mid] for mid in latest], dtype=np.int64))

    def _pairs(self, select: str, column: str, values: list[Any]) -> dict[Any, Any]:
        """`select` ("a, b") of the rows whose `column` is among `values`, as {a: b}, in chunks of bound values."""
        out: dict[Any, Any] = {}
        for start in range(0, len(values), CHUNK):
            chunk = values[start:start + CHUNK]
            out.update(self._db.execute(f"SELECT {select} FROM vectors WHERE {column} IN "
                                        f"({', '.join('?' * len(chunk))})", chunk).fetchall())
        return out

    def _labels_of(self, ids: list[str]) -> dict[str, int]:
        return self._pairs("id, label", "id", ids)

    def delete(self, ids: list[str]) -> None:
        with self._lock:
            if not ids or self._index is None:
                return
            with self._write():
                labels = list(self._labels_of(list(ids)).values())
                self._db.executemany("DELETE FROM vectors WHERE label = ?", [(label,) for label in labels])
            self._remove(labels)

    def _remove(self, labels: list[int]) -> None:
        if labels:
            self._index.remove_ids(self._faiss.IDSelectorBatch(np.array(labels, dtype=np.int64)))

    def _scope_labels(self, scope: Scope) -> list[int]:
        items = scope_items(scope)
        where = " AND ".join(f"{key} = ?" for key in items)  # the keys are SCOPE_KEYS, the values bound
        return [label for (label,) in self._db.execute(f"SELECT label FROM vectors WHERE {where}",
                                                        list(items.values()))]

    def clear(self, scope: Optional[Scope]) -> None:
        with self._lock:
            if self._index is None:
                return
            if scope is None or not scope_items(scope):
                self._reset(None)
                return
            with self._write():
                labels = self._scope_labels(scope)
                self._db.executemany("DELETE FROM vectors WHERE label = ?", [(label,) for label in labels])
            self._remove(labels)

    def search(self, vector: np.ndarray, scope: Scope, k: int) -> list[tuple[str, float]]:
        with self._lock:
            if self._index is None or k <= 0 or self._index.ntotal == 0:
                return []
            params = None
            if scope_items(scope):  # the scope's labels, as a selector FAISS applies while it ranks
                labels = self._scope_labels(scope)
                if not labels:
                    return []
                params = self._faiss.SearchParameters(sel=self._faiss.IDSelectorBatch(
                    np.array(labels, dtype=np.int64)))
                k = min(k, len(labels))
            query = np.asarray(vector, dtype=np.float32).reshape(1, -1)
            scores, found = self._index.search(query, min(k, int(self._index.ntotal)), params=params)
            pairs = [(int(label), float(score)) for label, score in zip(found[0], scores[0]) if label >= 0]
            names = self._ids_of([label for label, _ in pairs])
        # L2 gives the squared distance: between unit vectors it is 2 - 2 cos
        return [(names[label], 1.0 - score / 2 if self._l2 else score) for label, score in pairs]

    def _ids_of(self, labels: list[int]) -> dict[int, str]:
        return self._pairs("label, id", "label", labels)

    def count(self) -> int:
        with self._lock:
            return 0 if self._index is None else int(self._index.ntotal)

    def close(self) -> None:
        with self._lock:
            try:
                self._save()
            finally:
                self._db.close()
                self._lock_file.close()


def _exclusive(path: Path) -> Any:
    """An open lock file this process holds alone (released when it closes, or when the process dies)."""
    handle = open(path, "a+")  # held for the engine's lifetime
    try:
        import fcntl
    except ImportError:  # Windows: no advisory locks here; one Memory per folder is the user's to keep
        return handle
    try:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as exc:
        handle.close()
        raise ConfigurationError(f"vector_store 'faiss': {path.parent} is open in another Memory or process "
                                 "(a FAISS index lives in one process's memory; for several, use a server "
                                 "engine such as milvus or qdrant)") from exc
    return handle
