"""Neo4j (and other Bolt servers) as graph memory's engine, through the official `neo4j` driver
(`pip install memlane[neo4j]`). Config (mem0's keys): url (bolt://host:7687 or neo4j://...), username,
password, database. Queries are the shared Cypher (cypher.py), each in its own managed transaction.

Indexes are created with Neo4j 5's syntax; a Bolt server that does not take it (FalkorDB's Bolt listener,
which the tests use) runs without them, which costs speed, not correctness.
"""
from __future__ import annotations

import logging
from typing import Any, Optional

from ..errors import ConfigurationError, ProviderError
from ..provider_config import ProviderConfig
from .cypher import ENTITY, RELATES, CypherGraph

log = logging.getLogger("memlane.graph")

_INDEXES = [f"CREATE INDEX memlane_entity_{p} IF NOT EXISTS FOR (n:{ENTITY}) ON (n.{p})"
            for p in ("id", "norm", "user_id", "agent_id", "run_id")] + \
           [f"CREATE INDEX memlane_relates_{p} IF NOT EXISTS FOR ()-[r:{RELATES}]-() ON (r.{p})"
            for p in ("id", "user_id", "agent_id", "run_id")]


class Neo4jGraph(CypherGraph):
    def __init__(self, config: Optional[dict[str, Any]] = None):
        cfg = ProviderConfig(config, "neo4j", "graph_store", ignored=("base_label",))
        url = cfg.first("url", env=("NEO4J_URL",), default="bolt://localhost:7687")
        username = cfg.first("username", env=("NEO4J_USERNAME",))
        password = cfg.first("password", env=("NEO4J_PASSWORD",))
        self._database = cfg.first("database")
        cfg.done()
        try:
            import neo4j
        except ImportError as exc:
            raise ConfigurationError("graph_store 'neo4j' needs the neo4j driver: pip install 'memlane[neo4j]'") \
                from exc
        try:
            auth = (username, password or "") if username else None
            self._driver = neo4j.GraphDatabase.driver(url, auth=auth)
            self._driver.verify_connectivity()
        except Exception as exc:
            raise ProviderError(f"neo4j: cannot connect to {url}: {type(exc).__name__}: {exc}",
                                provider="neo4j") from exc
        super().__init__(self._query)
        for statement in _INDEXES:
            try:
                self._query(statement, {})
            except Exception as exc:  # another dialect's server: see the module's docstring
                log.debug("neo4j: index not created (%s): %s", statement, exc)

    def _query(self, query: str, params: dict[str, Any]) -> list[list[Any]]:
        def work(tx: Any) -> list[list[Any]]:
            return [list(record.values()) for record in tx.run(query, params)]

        with self._driver.session(database=self._database) as session:
            return session.execute_write(work)

    def close(self) -> None:
        self._driver.close()
