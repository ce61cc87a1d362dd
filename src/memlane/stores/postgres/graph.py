"""Graph memory in PostgreSQL (tables graph_entities, graph_relations: migrations.py), with the semantics
of stores/sqlite_graph.py: the store calls write() inside apply()'s transaction and the reads from its read
methods. SQLite serialises every writer; here graph writes take a transaction-level advisory lock on the
collection instead, so the merge below (one entity per name, one current relation per triple) holds
however adds interleave. memory_ids / message_ids are jsonb arrays."""
from __future__ import annotations

import json
from typing import Any, Optional

import numpy as np
from psycopg import Cursor

from ...models import ChangeSet, GraphEntity, GraphRelation, Scope
from ..base import within_hops
from ..graph_sql import scope_sql, valid_sql

ENTITY_COLUMNS = "id, name, norm, type, user_id, agent_id, run_id, created_at, embedding"
RELATION_COLUMNS = ("id, source, relationship, target, user_id, agent_id, run_id, valid_from, valid_to, "
                    "created_at, memory_ids, message_ids")
LOCK = "memlane.graph."


def array(value: Any) -> np.ndarray:
    """A float32 copy of a `vector` value (pgvector's loader gives a Vector object)."""
    return np.array(value.to_numpy() if hasattr(value, "to_numpy") else value, dtype=np.float32)


def _entity(row: tuple) -> GraphEntity:
    vec = row[8]
    return GraphEntity(id=row[0], name=row[1], norm=row[2], type=row[3], user_id=row[4], agent_id=row[5],
                       run_id=row[6], created_at=row[7],
                       embedding=None if vec is None else array(vec))


def _relation(row: tuple) -> GraphRelation:
    return GraphRelation(id=row[0], source_id=row[1], relationship=row[2], target_id=row[3], user_id=row[4],
                         agent_id=row[5], run_id=row[6], valid_from=row[7], valid_to=row[8], created_at=row[9],
                         memory_ids=list(row[10]), message_ids=list(row[11]))


def entities(cur: Cursor[Any], scope: Scope, with_embeddings: bool) -> list[GraphEntity]:
    where, params = scope_sql(scope, "%s")
    cols = ENTITY_COLUMNS if with_embeddings else ENTITY_COLUMNS.replace("embedding", "NULL")
    cur.execute(f"SELECT {cols} FROM graph_entities WHERE {where} ORDER BY pk", params)
    return [_entity(r) for r in cur.fetchall()]


def relations(cur: Cursor[Any], scope: Scope, as_of: Optional[str], entity_ids: Optional[list[str]],
              hops: int, ended: bool = False) -> list[GraphRelation]:
    """The scope's relations valid at `as_of` (every one, ended too, when `ended`): all of them (entity_ids
    None), or those within `hops` of the entities (1: touching one of them; 2: also touching their
    neighbours)."""
    where, params = scope_sql(scope, "%s")
    valid, valid_params = valid_sql(as_of, ended, "%s")
    base = f"SELECT {RELATION_COLUMNS} FROM graph_relations WHERE {where} AND {valid}"
    if entity_ids is None:
        cur.execute(base + " ORDER BY pk", params + valid_params)
        return [_relation(r) for r in cur.fetchall()]

    def touching(ids: list[str]) -> list[GraphRelation]:
        cur.execute(f"{base} AND (source = ANY(%s) OR target = ANY(%s)) ORDER BY pk",
                    params + valid_params + [ids, ids])
        return [_relation(row) for row in cur.fetchall()]

    return within_hops(entity_ids, hops, touching)


def _vector(vector: Optional[np.ndarray]) -> Optional[np.ndarray]:
    return None if vector is None else np.asarray(vector, dtype=np.float32).reshape(-1)


def _touches_graph(changes: ChangeSet) -> bool:
    return bool(changes.graph_clear or changes.graph_edited or changes.graph_entities or changes.graph_relations
                or changes.graph_support or changes.graph_ends)


def write(cur: Cursor[Any], changes: ChangeSet, schema: str) -> None:
    """The ChangeSet's graph part, and the cascade of its memory deletes, inside the caller's transaction."""
    if _touches_graph(changes):
        cur.execute("SELECT pg_advisory_xact_lock(hashtextextended(%s, 0))", (LOCK + schema,))
    for scope in changes.graph_clear:
        where, params = scope_sql(scope, "%s")
        cur.execute(f"DELETE FROM graph_relations WHERE {where}", params)
        cur.execute(f"DELETE FROM graph_entities WHERE {where}", params)
    # first, so that the relations this change adds or supports are not among those ended
    supported = sorted(changes.graph_support)
    for memory_id, at in changes.graph_edited.items():
        cur.execute("UPDATE graph_relations SET valid_to = %s WHERE valid_to IS NULL AND memory_ids = %s::jsonb "
                    "AND NOT (id = ANY(%s::text[]))", (at, json.dumps([memory_id]), supported))
    # An add plans against the graph it read; another add in the scope may have committed the same entity
    # or relation since. Merging here, under the lock, keeps one node per name and one current relation
    # per triple however adds interleave.
    same: dict[str, str] = {}
    for e in changes.graph_entities:
        cur.execute("SELECT id FROM graph_entities WHERE norm = %s AND user_id IS NOT DISTINCT FROM %s::text AND "
                    "agent_id IS NOT DISTINCT FROM %s::text AND run_id IS NOT DISTINCT FROM %s::text",
                    (e.norm, e.user_id, e.agent_id, e.run_id))
        found = cur.fetchone()
        if found is not None:
            same[e.id] = found[0]
            continue
        cur.execute(f"INSERT INTO graph_entities ({ENTITY_COLUMNS}) VALUES (%s,%s,%s,%s,%s,%s,%s,%s,%s)",
                    (e.id, e.name, e.norm, e.type, e.user_id, e.agent_id, e.run_id, e.created_at,
                     _vector(e.embedding)))
    support = dict(changes.graph_support)
    for r in changes.graph_relations:
        source, target = same.get(r.source_id, r.source_id), same.get(r.target_id, r.target_id)
        cur.execute("SELECT id FROM graph_relations WHERE source = %s AND relationship = %s AND target = %s AND "
                    "user_id IS NOT DISTINCT FROM %s::text AND agent_id IS NOT DISTINCT FROM %s::text AND "
                    "run_id IS NOT DISTINCT FROM %s::text AND valid_to IS NULL",
                    (source, r.relationship, target, r.user_id, r.agent_id, r.run_id))
        found = cur.fetchone()
        if found is not None and r.valid_to is None:
            old = support.get(found[0], ([], []))
            support[found[0]] = (old[0] + r.memory_ids, old[1] + r.message_ids)
            continue
        cur.execute(f"INSERT INTO graph_relations ({RELATION_COLUMNS}) VALUES "
                    "(%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s::jsonb,%s::jsonb)",
                    (r.id, source, r.relationship, target, r.user_id, r.agent_id, r.run_id, r.valid_from,
                     r.valid_to, r.created_at, json.dumps(r.memory_ids), json.dumps(r.message_ids)))
    for rid, (memory_ids, message_ids) in support.items():
        cur.execute("SELECT memory_ids, message_ids FROM graph_relations WHERE id = %s", (rid,))
        row = cur.fetchone()
        if row is None:  # removed meanwhile (its memories deleted): nothing to support
            continue
        merged = (list(dict.fromkeys(list(row[0]) + memory_ids)), list(dict.fromkeys(list(row[1]) + message_ids)))
        cur.execute("UPDATE graph_relations SET memory_ids = %s::jsonb, message_ids = %s::jsonb WHERE id = %s",
                    (json.dumps(merged[0]), json.dumps(merged[1]), rid))
    for rid, at in changes.graph_ends.items():
        cur.execute("UPDATE graph_relations SET valid_to = %s WHERE id = %s AND valid_to IS NULL", (at, rid))
    if changes.deletes:
        # jsonb `-` drops every element equal to the id; `?` finds the relations that hold it
        for memory_id in changes.deletes:
            cur.execute("UPDATE graph_relations SET memory_ids = memory_ids - %s::text WHERE memory_ids ? %s::text",
                        (memory_id, memory_id))
        cur.execute("DELETE FROM graph_relations WHERE memory_ids = '[]'::jsonb")


def clear(cur: Cursor[Any]) -> None:
    cur.execute("DELETE FROM graph_relations")
    cur.execute("DELETE FROM graph_entities")
