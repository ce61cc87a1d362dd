"""FalkorDB as graph memory's engine, through its Python client (`pip install memlane[falkordb]`).

Config (mem0's keys): url (redis://[user:password@]host:port) or host/port, username, password, and database,
the graph's name (default "memlane"). FalkorDB builds an index in the background: the driver waits until
db.indexes() reports each of its indexes operational before the first query.
"""
from __future__ import annotations

import time
from typing import Any, Optional

from ..errors import ConfigurationError, ProviderError
from ..provider_config import ProviderConfig
from .cypher import ENTITY, RELATES, CypherGraph

# How long to wait for a new index to become usable.
INDEX_WAIT_SECONDS = 30.0
_INDEXES = ((f"(n:{ENTITY})", "n", ("id", "norm", "user_id", "agent_id", "run_id")),
            (f"()-[r:{RELATES}]-()", "r", ("id", "user_id", "agent_id", "run_id")))


class FalkorDBGraph(CypherGraph):
    def __init__(self, config: Optional[dict[str, Any]] = None):
        cfg = ProviderConfig(config, "falkordb", "graph_store")
        url = cfg.first("url")
        host = cfg.first("host", default="localhost")
        port = int(cfg.number("port", 6379, int))
        username, password = cfg.first("username"), cfg.first("password")
        database = cfg.first("database", default="memlane")
        cfg.done()
        try:
            from falkordb import FalkorDB
        except ImportError as exc:
            raise ConfigurationError("graph_store 'falkordb' needs the falkordb client: "
                                     "pip install 'memlane[falkordb]'") from exc
        try:
            if url:
                self._db = FalkorDB.from_url(url)
            else:
                self._db = FalkorDB(host=host, port=port, username=username, password=password)
            self._graph = self._db.select_graph(database)
            super().__init__(self._query)
            self._ensure_indexes()
        except ConfigurationError:
            raise
        except Exception as exc:
            raise ProviderError(f"falkordb: cannot open graph {database!r}: {type(exc).__name__}: {exc}",
                                provider="falkordb") from exc

    def _query(self, query: str, params: dict[str, Any]) -> list[list[Any]]:
        return list(self._graph.query(query, params).result_set)

    def _ensure_indexes(self) -> None:
        for pattern, var, properties in _INDEXES:
            have = self._indexed(pattern)
            for prop in properties:
                if prop not in have:
                    self._query(f"CREATE INDEX FOR {pattern} ON ({var}.{prop})", {})
        deadline = time.monotonic() + INDEX_WAIT_SECONDS
        while any(status.casefold() != "operational" for status in self._statuses()):
            if time.monotonic() > deadline:
                raise ProviderError("falkordb: indexes not operational after "
                                    f"{INDEX_WAIT_SECONDS:.0f} s", provider="falkordb")
            time.sleep(0.01)

    def _rows(self) -> list[list[Any]]:
        return self._query("CALL db.indexes() YIELD label, properties, status RETURN label, properties, status", {})

    def _indexed(self, pattern: str) -> set[str]:
        label = ENTITY if ENTITY in pattern else RELATES
        return {p for row in self._rows() if row[0] == label for p in row[1]}

    def _statuses(self) -> list[str]:
        return [str(row[2]) for row in self._rows() if row[0] in (ENTITY, RELATES)]

    def close(self) -> None:
        self._db.close()
