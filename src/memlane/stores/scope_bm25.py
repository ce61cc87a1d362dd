"""BM25 with a scope's own statistics. FTS5's bm25() takes the inverse document frequency from the whole
table: with scope-keyed terms (scoped_terms.py) a term's document count n is already the scope's, but the
document total N is every tenant's, so idf = log((N - n + 0.5) / (n + 0.5)) barely separates a word in
half of this user's memories (their own name, say) from a word in two of them once other tenants fill the
table. search() therefore scores each query term on its own, divides FTS5's idf out and multiplies the
scope's in. (The average document length stays the table's; it only scales term frequency.)

The scope idf is Lucene's log(1 + (N - n + 0.5) / (n + 0.5)), which stays positive when a word is in most
of a small scope's memories, where FTS5's formula would zero it.
"""
from __future__ import annotations

import math


def fts5_idf(total: int, hits: int) -> float:
    """The idf FTS5's bm25() used (fts5_aux.c), including its floor."""
    idf = math.log((total - hits + 0.5) / (hits + 0.5))
    return idf if idf > 0 else 1e-6


def scope_idf(total: int, hits: int) -> float:
    return math.log(1 + (total - hits + 0.5) / (hits + 0.5))


def read_varint(data: bytes, at: int) -> tuple[int, int]:
    """SQLite's varint (big-endian, 7 bits per byte, the 9th byte whole); returns (value, next offset)."""
    value = 0
    for i in range(8):
        byte = data[at + i]
        value = (value << 7) | (byte & 0x7F)
        if not byte & 0x80:
            return value, at + i + 1
    return (value << 8) | data[at + 8], at + 9


def fts5_row_count(averages: bytes | None) -> int:
    """The row count FTS5 keeps in its averages record (row id 1 of the %_data table); 0 when empty."""
    if not averages:
        return 0
    return read_varint(averages, 0)[0]
