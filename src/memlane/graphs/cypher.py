"""Graph memory's writes and reads in Cypher, shared by the FalkorDB and Neo4j drivers: each driver only runs
a query with parameters and returns its rows (`Runner`), and creates its indexes.

Entities are (:MemlaneEntity) nodes, relations [:MEMLANE_RELATES] edges with the relationship as a property (a
relationship type cannot be a query parameter, and memlane never builds Cypher from text). Nodes and edges carry
the scope's ids; `skey` is the exact scope (None ids included) that entity merging matches on. `ord` keeps the
order of one write's entities and relations (their created_at is equal), as the SQLite store's insertion order.
Every step of apply() is idempotent, so an outbox entry may be applied twice (outbox.py).
"""
from __future__ import annotations

import json
from typing import Any, Callable, Optional

from ..models import GraphEntity, GraphRelation, Scope
from ..stores.base import within_hops
from .outbox import decode_vector

# The most items a list parameter carries in one query (FalkorDB's Bolt listener fails on large requests).
CHUNK = 100
# (query, parameters) -> rows
Runner = Callable[[str, dict[str, Any]], list[list[Any]]]

ENTITY = "MemlaneEntity"
RELATES = "MEMLANE_RELATES"
SCOPE_KEYS = ("user_id", "agent_id", "run_id")
_REL_FIELDS = ("r.id, s.id, r.relationship, t.id, r.user_id, r.agent_id, r.run_id, r.valid_from, r.valid_to, "
               "r.created_at, r.memory_ids, r.message_ids")


def scope_key(user_id: Optional[str], agent_id: Optional[str], run_id: Optional[str]) -> str:
    return json.dumps([user_id, agent_id, run_id])


def _scope_where(var: str, scope: Scope, params: dict[str, Any]) -> str:
    """The scope's rows: each id it fixes matches (a None id matches any)."""
    parts = []
    for key in SCOPE_KEYS:
        value = getattr(scope, key)
        if value is not None:
            params[f"scope_{key}"] = value
            parts.append(f"{var}.{key} = $scope_{key}")
    return " AND ".join(parts) or "true"


def _valid_where(as_of: Optional[str], params: dict[str, Any], ended: bool = False) -> str:
    if ended:
        return "true"
    if as_of is None:
        return "r.valid_to IS NULL"
    params["as_of"] = as_of
    return "(r.valid_from IS NULL OR r.valid_from <= $as_of) AND (r.valid_to IS NULL OR r.valid_to > $as_of)"


def _relation(row: list[Any]) -> GraphRelation:
    return GraphRelation(id=row[0], source_id=row[1], relationship=row[2], target_id=row[3], user_id=row[4],
                         agent_id=row[5], run_id=row[6], valid_from=row[7], valid_to=row[8], created_at=row[9],
                         memory_ids=list(row[10] or []), message_ids=list(row[11] or []))


def _merged(old: list[str], new: list[str]) -> list[str]:
    return list(dict.fromkeys([*old, *new]))


class CypherGraph:
    """GraphEngine over a Cypher runner (outbox.GraphEngine)."""

    def __init__(self, run: Runner):
        self.run = run

    # ------------------------------------------------------------------ reads

    def entities(self, scope: Scope, with_embeddings: bool) -> list[GraphEntity]:
        params: dict[str, Any] = {}
        where = _scope_where("n", scope, params)
        embedding = "n.embedding" if with_embeddings else "null"
        rows = self.run(f"MATCH (n:{ENTITY}) WHERE {where} RETURN n.id, n.name, n.norm, n.type, n.user_id, "
                        f"n.agent_id, n.run_id, n.created_at, {embedding} ORDER BY n.created_at, n.ord, n.id",
                        params)
        return [GraphEntity(id=r[0], name=r[1], norm=r[2], type=r[3] or "", user_id=r[4], agent_id=r[5],
                            run_id=r[6], created_at=r[7],
                            embedding=decode_vector(r[8]))
                for r in rows]

    def relations(self, scope: Scope, as_of: Optional[str], entity_ids: Optional[list[str]],
                  hops: int, ended: bool = False) -> list[GraphRelation]:
        """As the SQLite store's: all of the scope's relations valid at `as_of` (every one when `ended`),
        or those within `hops`."""
        params: dict[str, Any] = {}
        where = f"{_scope_where('r', scope, params)} AND {_valid_where(as_of, params, ended)}"
        base = f"MATCH (s:{ENTITY})-[r:{RELATES}]->(t:{ENTITY}) WHERE {where}"
        order = "ORDER BY r.created_at, r.ord, r.id"
        if entity_ids is None:
            return [_relation(row) for row in self.run(f"{base} RETURN {_REL_FIELDS} {order}", params)]

        def touching(ids: list[str]) -> list[GraphRelation]:
            return [_relation(row) for start in range(0, len(ids), CHUNK) for row in
                    self.run(f"{base} AND (s.id IN $ids OR t.id IN $ids) RETURN {_REL_FIELDS} {order}",
                             {**params, "ids": ids[start:start + CHUNK]})]

        return within_hops(entity_ids, hops, touching)

    # ------------------------------------------------------------------ writes

    def clear(self) -> None:
        self.run(f"MATCH (n:{ENTITY}) DETACH DELETE n", {})

    def apply(self, payload: dict[str, Any]) -> None:
        """An outbox payload (outbox.payload), in the order the SQLite store writes the same changes."""
        if payload.get("reset"):
            self.clear()
        for scope in payload.get("clear", []):
            params: dict[str, Any] = {}
            self.run(f"MATCH (n:{ENTITY}) WHERE {_scope_where('n', Scope(**scope), params)} DETACH DELETE n",
                     params)
        supported = list(payload.get("support", {}))
        keep = supported + [r["id"] for r in payload.get("relations", [])]
        for memory_id, at in payload.get("edited", {}).items():
            self.run(f"MATCH ()-[r:{RELATES}]->() WHERE r.valid_to IS NULL AND size(r.memory_ids) = 1 "
                     "AND r.memory_ids[0] = $memory_id AND NOT r.id IN $keep SET r.valid_to = $at",
                     {"memory_id": memory_id, "keep": keep, "at": at})
        same = {e["id"]: self._entity(i, e) for i, e in enumerate(payload.get("entities", []))}
        support = {rid: (list(m), list(g)) for rid, (m, g) in payload.get("support", {}).items()}
        for i, r in enumerate(payload.get("relations", [])):
            self._relation(i, r, same, support)
        for rid, (memory_ids, message_ids) in support.items():
            rows = self.run(f"MATCH ()-[r:{RELATES}]->() WHERE r.id = $id RETURN r.memory_ids, r.message_ids",
                            {"id": rid})
            if rows:  # else removed meanwhile (its memories deleted): nothing to support
                self.run(f"MATCH ()-[r:{RELATES}]->() WHERE r.id = $id SET r.memory_ids = $m, r.message_ids = $g",
                         {"id": rid, "m": _merged(list(rows[0][0] or []), memory_ids),
                          "g": _merged(list(rows[0][1] or []), message_ids)})
        ends = [{"id": rid, "at": at} for rid, at in payload.get("ends", {}).items()]
        for start in range(0, len(ends), CHUNK):
            self.run(f"UNWIND $ends AS e MATCH ()-[r:{RELATES}]->() WHERE r.id = e.id AND r.valid_to IS NULL "
                     "SET r.valid_to = e.at", {"ends": ends[start:start + CHUNK]})
        deletes = payload.get("deletes", [])
        for start in range(0, len(deletes), CHUNK):
            self.run(f"MATCH ()-[r:{RELATES}]->() WHERE any(m IN r.memory_ids WHERE m IN $ids) "
                     "SET r.memory_ids = [m IN r.memory_ids WHERE NOT m IN $ids]",
                     {"ids": deletes[start:start + CHUNK]})
        if deletes:
            self.run(f"MATCH ()-[r:{RELATES}]->() WHERE size(r.memory_ids) = 0 DELETE r", {})

    def _entity(self, ord_: int, e: dict[str, Any]) -> str:
        """The id of the scope's entity with this normalised name: an existing one (written by a racing add,
        or by an earlier apply of this payload), else this one, created."""
        skey = scope_key(e["user_id"], e["agent_id"], e["run_id"])
        rows = self.run(f"MERGE (n:{ENTITY} {{skey: $skey, norm: $norm}}) ON CREATE SET n.id = $id, "
                        "n.name = $name, n.type = $type, n.user_id = $user_id, n.agent_id = $agent_id, "
                        "n.run_id = $run_id, n.created_at = $created_at, n.ord = $ord, n.embedding = $embedding "
                        "RETURN n.id", {**e, "skey": skey, "ord": ord_})
        return rows[0][0]

    def _relation(self, ord_: int, r: dict[str, Any], same: dict[str, str],
                  support: dict[str, tuple[list[str], list[str]]]) -> None:
        source, target = same.get(r["source_id"], r["source_id"]), same.get(r["target_id"], r["target_id"])
        if self.run(f"MATCH ()-[r:{RELATES}]->() WHERE r.id = $id RETURN r.id", {"id": r["id"]}):
            return  # applied before
        found = self.run(f"MATCH (s:{ENTITY})-[r:{RELATES}]->(t:{ENTITY}) WHERE s.id = $s AND t.id = $t AND "
                         "r.relationship = $relationship AND r.valid_to IS NULL RETURN r.id",
                         {"s": source, "t": target, "relationship": r["relationship"]})
        if found and r["valid_to"] is None:
            old = support.get(found[0][0], ([], []))
            support[found[0][0]] = (old[0] + r["memory_ids"], old[1] + r["message_ids"])
            return
        self.run(f"MATCH (s:{ENTITY}), (t:{ENTITY}) WHERE s.id = $s AND t.id = $t "
                 f"CREATE (s)-[r:{RELATES} {{id: $id, relationship: $relationship, user_id: $user_id, "
                 "agent_id: $agent_id, run_id: $run_id, valid_from: $valid_from, valid_to: $valid_to, "
                 "created_at: $created_at, ord: $ord, memory_ids: $memory_ids, message_ids: $message_ids}]->(t)",
                 {**{k: v for k, v in r.items() if k not in ("source_id", "target_id")}, "s": source, "t": target,
                  "ord": ord_})
