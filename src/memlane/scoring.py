"""Hybrid relevance: dense cosine and BM25 mapped to [0, 1] and mixed, so a score means the same thing on
every backend and `threshold` is meaningful. Pure functions."""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Optional

_WORD = re.compile(r"\w+", re.UNICODE)
# Function words carry no topic; dropping them keeps OR-queries from matching every row.
STOPWORDS = frozenset("""
a an and are as at be been but by did do does for from had has have he her hers him his how i if in into is
it its me my of on or our ours she so than that the their them then there these they this those to was we
were what when where which who whom why will with would you your yours about after again also am any can
could did does doing each few more most other some such too very just only own same over under up down out
off once here all both nor not no should now ever
""".split())


def query_terms(text: str, max_terms: int = 32) -> list[str]:
    """Distinct lower-cased content words of a query, in order, for the keyword index."""
    seen: dict[str, None] = {}
    for word in _WORD.findall(text.lower()):
        if word not in STOPWORDS and word not in seen:
            seen[word] = None
    return list(seen)[:max_terms]


@dataclass(frozen=True)
class FusionWeights:
    """Weights of the evidence behind a score; the defaults come from the LOCOMO ablation in docs/benchmarks.md."""

    dense: float = 0.47
    keyword: float = 0.48
    # A memory said by the person the query names ("When did Melanie ...?") gets this share.
    actor: float = 0.05
    # When the query names a date ("on 7 July, 2023"), a memory whose event time is that day gets this share
    # (half of it within a named month); the weight counts only for queries that name a date.
    date: float = 0.2
    # BM25 is unbounded; b / (b + bm25_half) maps it to [0, 1), reaching 0.5 at bm25_half.
    bm25_half: float = 12.0


def keyword_score(bm25: float, weights: FusionWeights) -> float:
    return bm25 / (bm25 + weights.bm25_half) if bm25 > 0 else 0.0


def named_actor(query: str, actors: set[str]) -> str | None:
    """The one actor (speaker name) the query mentions as a word, if exactly one."""
    words = set(_WORD.findall(query.casefold()))
    named = {a for a in actors if a and all(w in words for w in _WORD.findall(a.casefold()))}
    return named.pop() if len(named) == 1 else None


def fuse(dense: dict[str, float], keyword: dict[str, float], actor_match: set[str],
         weights: FusionWeights, dated: Optional[dict[str, float]] = None) -> dict[str, float]:
    """Combined score in [0, 1] for every id in either map (a missing keyword score counts as 0).

    Keyword evidence is half absolute (BM25 saturated at bm25_half) and half relative to the query's best
    keyword match: BM25 magnitudes depend on the corpus (small scopes give small values), and the relative
    half keeps a clear keyword winner from drowning there (it helped on LOCOMO: docs/benchmarks.md).
    `dated` (only when the query names a date) maps ids to their share (query_dates.date_share)."""
    total = weights.dense + weights.keyword + weights.actor + (weights.date if dated is not None else 0.0)
    best = max(keyword.values(), default=0.0)
    out = {}
    for key in dense.keys() | keyword.keys():
        d = min(1.0, max(0.0, dense.get(key, 0.0)))
        b = keyword.get(key, 0.0)
        k = 0.5 * keyword_score(b, weights) + (0.5 * b / best if best > 0 else 0.0)
        a = 1.0 if key in actor_match else 0.0
        t = dated.get(key, 0.0) if dated is not None else 0.0
        out[key] = (weights.dense * d + weights.keyword * k + weights.actor * a + weights.date * t) / total
    return out
