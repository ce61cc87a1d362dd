"""Calibrated relevance: what search() returns as `score`, and what `threshold` cuts on.

Two rules, both pure (the maps' breakpoints are read once, at import, from _data/calibration.json):

1. `calibrated(fused, n)`: the probability that a result is evidence for the query, given its fused score
   (scoring.fuse, or the reranker's mix of it) and how many memories the search ranked (its candidates,
   capped at SIZE_CAP: a fused score of 0.6 is the answer more often among 10 memories than among 500).
   Isotonic regression per scope size, fitted on LOCOMO by bench/calibrate.py and checked on conversations
   the fit did not see (docs/benchmarks.md, "Calibrated scores"). For a given search, `n` is fixed and the
   map is strictly increasing in the fused score, so it never reorders results.
2. A near-exact match (the query and the memory have the same words in the same order, ignoring case,
   punctuation, spacing and a leading speaker name) scores at least NEAR_EXACT_FLOOR (0.9): 0.9 + 0.1 x its
   calibrated score; never more than the result ranked above it, so scores follow the ranking's order.

The fused score alone cannot carry rule 2: an exact repeat of a stored sentence gets a fused score of 0.55 to
0.9 (lower in small scopes, where BM25 values are small, and for multi-sentence memories), the same range as
the best result of an ordinary question, which is evidence about half the time.
"""
from __future__ import annotations

import json
import math
import re
from bisect import bisect_left
from importlib import resources
from typing import Any, Optional, Sequence

import numpy as np

_WORD = re.compile(r"\w+", re.UNICODE)


def load(data: dict[str, Any]) -> tuple[list[float], list[tuple[np.ndarray, np.ndarray]]]:
    """(scope sizes, one (x, y) breakpoint map per size) from the data file, checked: sizes increasing; each
    map's x from 0 to 1, x and y strictly increasing, y in [0, 1]."""
    sizes = [float(s) for s in data["sizes"]]
    maps = []
    for m in data["maps"]:
        x = np.asarray(m["x"], dtype=np.float64)
        y = np.asarray(m["y"], dtype=np.float64)
        if (x.ndim != 1 or x.shape != y.shape or len(x) < 2 or x[0] != 0.0 or x[-1] != 1.0
                or not np.all(np.diff(x) > 0) or not np.all(np.diff(y) > 0) or y[0] < 0.0 or y[-1] > 1.0):
            raise ValueError("calibration map: x must run from 0 to 1, x and y strictly increasing, y in [0, 1]")
        maps.append((x, y))
    if not sizes or len(sizes) != len(maps) or sizes[0] < 1 or any(b <= a for a, b in zip(sizes, sizes[1:])):
        raise ValueError("calibration map: one map per scope size, sizes increasing from at least 1")
    return sizes, maps


INFO: dict[str, Any] = json.loads(resources.files("memlane").joinpath("_data/calibration.json")
                                  .read_text(encoding="utf-8"))
_SIZES, _MAPS = load(INFO)
SIZE_CAP: int = int(INFO["size_cap"])
NEAR_EXACT_FLOOR: float = float(INFO["near_exact_floor"])


def calibrated(raw: float, n: float = SIZE_CAP) -> float:
    """The calibrated score in [0, 1] of a fused score (clipped to [0, 1]) among `n` candidates: between two
    fitted scope sizes the two maps are mixed linearly in log(n); below the first or above the last, the
    nearest is used. Strictly increasing in `raw` for any `n`."""
    r = min(1.0, max(0.0, float(raw)))
    m = min(max(float(n), _SIZES[0]), _SIZES[-1])
    j = bisect_left(_SIZES, m)
    if j == 0 or _SIZES[j] == m:
        return float(np.interp(r, *_MAPS[j]))
    t = (math.log(m) - math.log(_SIZES[j - 1])) / (math.log(_SIZES[j]) - math.log(_SIZES[j - 1]))
    return float((1 - t) * np.interp(r, *_MAPS[j - 1]) + t * np.interp(r, *_MAPS[j]))


def scope_size(candidates: int, pool: int) -> int:
    """What `n` a search passes: its candidate count, which is the whole scope (all it can rank) when that
    holds fewer memories than the `pool` each retriever was asked for; a full pool means a large scope."""
    return SIZE_CAP if candidates >= pool else min(candidates, SIZE_CAP)


def words(text: str) -> list[str]:
    return _WORD.findall(text.casefold())


def same_words(query: list[str], memory: str, actor: Optional[str] = None) -> bool:
    """Whether a memory's text has exactly the query's words (from words()), in order; a leading speaker
    name ("Caroline: ...", the memory's actor) may be on either side or both."""
    if not query:
        return False
    m = words(memory)
    if m == query:
        return True
    a = words(actor) if actor else []
    if not a:
        return False
    q = query[len(a):] if query[:len(a)] == a else query
    m = m[len(a):] if m[:len(a)] == a else m
    return bool(q) and q == m


def result_scores(query: str, ranked: Sequence[tuple[str, Optional[str], float]], n: float = SIZE_CAP
                  ) -> list[float]:
    """Scores for results in ranked order, given (memory text, actor, fused score) for each and the scope
    size `n` (scope_size()): calibrated, near-exact matches raised to at least NEAR_EXACT_FLOOR, none above
    the one ranked before it (so scores never disagree with the order; a threshold keeps a prefix)."""
    q = words(query)
    out: list[float] = []
    for memory, actor, raw in ranked:
        score = calibrated(raw, n)
        # a cheap length check first: near-exact texts are about as long as each other
        if len(memory) <= 2 * len(query) + 64 and len(query) <= 2 * len(memory) + 64 \
                and same_words(q, memory, actor):
            score = NEAR_EXACT_FLOOR + (1.0 - NEAR_EXACT_FLOOR) * score
        if out and score > out[-1]:
            score = out[-1]
        out.append(score)
    return out
