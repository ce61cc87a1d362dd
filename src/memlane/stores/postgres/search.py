"""The PostgreSQL store's two rankings, run inside the caller's transaction.

Vector: cosine distance, the scope and filter in the same WHERE. A scope of up to EXACT_SCAN_ROWS rows is
ranked exactly (read through its btree index and sorted; the ORDER BY is an expression the HNSW index
cannot serve); a larger one goes through the HNSW index with pgvector's iterative scan (relaxed order),
which keeps walking the graph until k rows pass the scope and filter. Exact is the choice while it costs
about what the index does, since it never misses a row (the measurement is beside EXACT_SCAN_ROWS).

Keyword: BM25 computed in SQL with the scope's own statistics, as scope_bm25.py gives SQLite: the idf
of a lexeme is Lucene's log(1 + (N - n + 0.5) / (n + 0.5)) over the scope's N rows and the n holding it,
a term in the context column counts CONTEXT_WEIGHT of one in the memory, and length is normalised by
the scope's average document length (k1, b as FTS5's bm25())."""
from __future__ import annotations

from typing import Any, Optional

import numpy as np
from psycopg import Cursor

K1 = 1.2
B = 0.75
CONTEXT_WEIGHT = 0.5  # as the SQLite store's CONTEXT_BM25_WEIGHT
# Measured, 5,000-row scope of 10,000 random 384-d vectors: exact 10 ms recall 1.0; HNSW 7 ms recall@10 0.85.
EXACT_SCAN_ROWS = 10_000
EF_SEARCH = 100  # the index's candidate list; pgvector's default (40) gave recall@10 0.71 in that measurement
EF_SEARCH_MAX = 1000  # pgvector's bound on hnsw.ef_search


def vector(cur: Cursor[Any], query: np.ndarray, scope: Optional[tuple[str, str]], where: str, params: list[Any],
           k: int) -> list[tuple[str, float]]:
    """Up to k (id, cosine similarity) pairs; `scope` is (scope column, id) or None, and `where` holds it."""
    distance = "embedding <=> %s"
    if scope is not None and _small(cur, scope[0], scope[1]):
        distance = "(embedding <=> %s) + 0"  # not the indexed expression: an exact scan of the scope
    cur.execute("SELECT set_config('hnsw.iterative_scan', 'relaxed_order', true), "
                "set_config('hnsw.ef_search', %s, true)", (str(min(max(EF_SEARCH, 2 * k), EF_SEARCH_MAX)),))
    # relaxed order: the index may give rows slightly out of order, so the k it found are sorted again
    cur.execute(f"WITH nearest AS MATERIALIZED (SELECT pk, id, embedding <=> %s AS distance FROM memories "
                f"WHERE {where} ORDER BY {distance} LIMIT %s) "
                "SELECT id, (1 - distance)::float8 FROM nearest ORDER BY distance, pk", [query] + params + [query, k])
    return [(row[0], float(row[1])) for row in cur.fetchall()]


def _small(cur: Cursor[Any], kind: str, value: str) -> bool:
    """Whether the scope (`kind` a scope column) holds at most EXACT_SCAN_ROWS memories."""
    cur.execute(f"SELECT count(*) FROM (SELECT 1 FROM memories WHERE {kind} = %s LIMIT %s) AS s",
                (value, EXACT_SCAN_ROWS + 1))
    row = cur.fetchone()
    return row is not None and row[0] <= EXACT_SCAN_ROWS


def lexemes(cur: Cursor[Any], terms: list[str]) -> list[str]:
    """The index's lexemes of the query terms (stemmed as the memories were); a term of several words
    gives each of its words."""
    cur.execute("SELECT DISTINCT u.lexeme FROM unnest(%s::text[]) AS t(term), "
                "unnest(to_tsvector('memlane_text', t.term)) AS u ORDER BY 1", (terms,))
    return [row[0] for row in cur.fetchall()]


def _tsquery(words: list[str]) -> str:
    """An OR of the lexemes, each quoted (tsquery text: quotes and backslashes doubled inside)."""
    return " | ".join("'" + w.replace("\\", "\\\\").replace("'", "''") + "'" for w in words)


def keyword(cur: Cursor[Any], words: list[str], kind: str, value: str, where: str, params: list[Any],
            k: int) -> list[tuple[str, float]]:
    """Up to k (id, BM25) pairs of the scope (`kind` = `value`, kind a scope column) matching `where`.
    A scope of up to EXACT_SCAN_ROWS rows is read through its btree index and matched row by row
    (ts_match_vq is @@ in a form the GIN index cannot serve): left to itself the planner ANDs in a GIN
    bitmap of every row of the table that holds any of the words, which for common ones costs more than
    the whole scope (docs/design.md). A larger scope uses the GIN index."""
    match = "m.terms @@ %s::tsquery" if not _small(cur, kind, value) else "ts_match_vq(m.terms, %s::tsquery)"
    cur.execute(
        f"""WITH matched AS MATERIALIZED (
    SELECT m.pk, m.id, m.doc_len, u.lexeme, ({where}) AS ok,
           (SELECT sum(CASE WHEN w = 'B' THEN {CONTEXT_WEIGHT} ELSE 1.0 END) FROM unnest(u.weights) AS w) AS f
    FROM memories AS m CROSS JOIN LATERAL unnest(m.terms) AS u
    WHERE m.{kind} = %s AND {match} AND u.lexeme = ANY(%s::text[])),
scope AS (SELECT count(*) AS n, coalesce(avg(doc_len), 0) AS avgdl FROM memories WHERE {kind} = %s),
df AS (SELECT lexeme, count(*) AS hits FROM matched GROUP BY lexeme)
SELECT mt.id, greatest(0.0, sum(
    ln(1 + (greatest(s.n, df.hits) - df.hits + 0.5) / (df.hits + 0.5))
    * mt.f * {K1 + 1} / (mt.f + {K1} * (1 - {B} + {B} * mt.doc_len / greatest(s.avgdl, 1)))))::float8 AS score
FROM matched AS mt JOIN df USING (lexeme) CROSS JOIN scope AS s
WHERE mt.ok GROUP BY mt.pk, mt.id ORDER BY score DESC, mt.pk LIMIT %s""",
        params + [value, _tsquery(words), words, value, k])
    return [(row[0], float(row[1])) for row in cur.fetchall()]
