"""Graph memory in the SQLite file (tables graph_entities, graph_relations: sqlite_migrations.graph). The
store calls write() inside apply()'s transaction, so the graph and the memories never disagree, and the
reads below from its read methods."""
from __future__ import annotations

import json
import sqlite3
from typing import Optional

import numpy as np

from ..models import ChangeSet, GraphEntity, GraphRelation, Scope
from .base import within_hops
from .graph_sql import scope_sql, valid_sql

ENTITY_COLUMNS = "id, name, norm, type, user_id, agent_id, run_id, created_at, embedding"
RELATION_COLUMNS = ("id, source, relationship, target, user_id, agent_id, run_id, valid_from, valid_to, "
                    "created_at, memory_ids, message_ids")
# The relations that hold a memory id (memory_ids is a JSON array).
_HOLDING = "EXISTS (SELECT 1 FROM json_each(memory_ids) WHERE value = ?)"


def _entity(row: tuple) -> GraphEntity:
    blob = row[8]
    return GraphEntity(id=row[0], name=row[1], norm=row[2], type=row[3], user_id=row[4], agent_id=row[5],
                       run_id=row[6], created_at=row[7],
                       embedding=None if blob is None else np.frombuffer(blob, dtype=np.float32).copy())


def _relation(row: tuple) -> GraphRelation:
    return GraphRelation(id=row[0], source_id=row[1], relationship=row[2], target_id=row[3], user_id=row[4],
                         agent_id=row[5], run_id=row[6], valid_from=row[7], valid_to=row[8], created_at=row[9],
                         memory_ids=json.loads(row[10]), message_ids=json.loads(row[11]))


def entities(conn: sqlite3.Connection, scope: Scope, with_embeddings: bool) -> list[GraphEntity]:
    where, params = scope_sql(scope, "?")
    cols = ENTITY_COLUMNS if with_embeddings else ENTITY_COLUMNS.replace("embedding", "NULL")
    return [_entity(r) for r in conn.execute(f"SELECT {cols} FROM graph_entities WHERE {where} ORDER BY pk",
                                             params)]


def relations(conn: sqlite3.Connection, scope: Scope, as_of: Optional[str], entity_ids: Optional[list[str]],
              hops: int, ended: bool = False) -> list[GraphRelation]:
    """The scope's relations valid at `as_of` (every one, ended too, when `ended`): all of them (entity_ids
    None), or those within `hops` of the entities (1: touching one of them; 2: also touching their
    neighbours)."""
    where, params = scope_sql(scope, "?")
    valid, valid_params = valid_sql(as_of, ended, "?")
    base = f"SELECT {RELATION_COLUMNS} FROM graph_relations WHERE {where} AND {valid}"
    if entity_ids is None:
        return [_relation(r) for r in conn.execute(base + " ORDER BY pk", params + valid_params)]

    def touching(ids: list[str]) -> list[GraphRelation]:
        marks = ",".join("?" * len(ids))
        return [_relation(row) for row in conn.execute(
            f"{base} AND (source IN ({marks}) OR target IN ({marks})) ORDER BY pk",
            params + valid_params + ids + ids)]

    return within_hops(entity_ids, hops, touching)


def _blob(vector: Optional[np.ndarray]) -> Optional[bytes]:
    return None if vector is None else np.asarray(vector, dtype=np.float32).reshape(-1).tobytes()


def write(conn: sqlite3.Connection, changes: ChangeSet) -> None:
    """The ChangeSet's graph part, and the cascade of its memory deletes, inside the caller's transaction."""
    for scope in changes.graph_clear:
        where, params = scope_sql(scope, "?")
        conn.execute(f"DELETE FROM graph_relations WHERE {where}", params)
        conn.execute(f"DELETE FROM graph_entities WHERE {where}", params)
    # first, so that the relations this change adds or supports are not among those ended
    supported = sorted(changes.graph_support)
    marks = ",".join("?" * len(supported))
    for memory_id, at in changes.graph_edited.items():
        conn.execute("UPDATE graph_relations SET valid_to = ? WHERE valid_to IS NULL AND memory_ids = ?"
                     f" AND id NOT IN ({marks})", [at, json.dumps([memory_id]), *supported])
    # An add plans against the graph it read; another add in the scope may have committed the same entity
    # or relation since. Merging here, inside the write transaction, keeps one node per name and one
    # current relation per triple however adds interleave.
    same: dict[str, str] = {}
    for e in changes.graph_entities:
        found = conn.execute("SELECT id FROM graph_entities WHERE norm = ? AND user_id IS ? AND agent_id IS ? "
                             "AND run_id IS ?", (e.norm, e.user_id, e.agent_id, e.run_id)).fetchone()
        if found is not None:
            same[e.id] = found[0]
            continue
        conn.execute(f"INSERT INTO graph_entities ({ENTITY_COLUMNS}) VALUES (?,?,?,?,?,?,?,?,?)",
                     (e.id, e.name, e.norm, e.type, e.user_id, e.agent_id, e.run_id, e.created_at,
                      _blob(e.embedding)))
    support = dict(changes.graph_support)
    for r in changes.graph_relations:
        source, target = same.get(r.source_id, r.source_id), same.get(r.target_id, r.target_id)
        found = conn.execute("SELECT id FROM graph_relations WHERE source = ? AND relationship = ? AND target = ? "
                             "AND user_id IS ? AND agent_id IS ? AND run_id IS ? AND valid_to IS NULL",
                             (source, r.relationship, target, r.user_id, r.agent_id, r.run_id)).fetchone()
        if found is not None and r.valid_to is None:
            old = support.get(found[0], ([], []))
            support[found[0]] = (old[0] + r.memory_ids, old[1] + r.message_ids)
            continue
        conn.execute(f"INSERT INTO graph_relations ({RELATION_COLUMNS}) VALUES (?,?,?,?,?,?,?,?,?,?,?,?)",
                     (r.id, source, r.relationship, target, r.user_id, r.agent_id, r.run_id, r.valid_from,
                      r.valid_to, r.created_at, json.dumps(r.memory_ids), json.dumps(r.message_ids)))
    for rid, (memory_ids, message_ids) in support.items():
        row = conn.execute("SELECT memory_ids, message_ids FROM graph_relations WHERE id = ?", (rid,)).fetchone()
        if row is None:  # removed meanwhile (its memories deleted): nothing to support
            continue
        merged = (list(dict.fromkeys(json.loads(row[0]) + memory_ids)),
                  list(dict.fromkeys(json.loads(row[1]) + message_ids)))
        conn.execute("UPDATE graph_relations SET memory_ids = ?, message_ids = ? WHERE id = ?",
                     (json.dumps(merged[0]), json.dumps(merged[1]), rid))
    conn.executemany("UPDATE graph_relations SET valid_to = ? WHERE id = ? AND valid_to IS NULL",
                     [(at, rid) for rid, at in changes.graph_ends.items()])
    for memory_id in changes.deletes:
        conn.execute("UPDATE graph_relations SET memory_ids = (SELECT json_group_array(value) FROM "
                     f"json_each(graph_relations.memory_ids) WHERE value != ?) WHERE {_HOLDING}",
                     (memory_id, memory_id))
    if changes.deletes:
        conn.execute("DELETE FROM graph_relations WHERE memory_ids = '[]'")


def clear(conn: sqlite3.Connection) -> None:
    conn.execute("DELETE FROM graph_relations")
    conn.execute("DELETE FROM graph_entities")
