#!/usr/bin/env python3
"""Fit and check the map from memlane's fused score to a calibrated relevance (memlane/calibration.py).

    python bench/calibrate.py [--data DIR] [--recollect] [--cache FILE] [--top 50]
                              [--out bench/results/calibration.json] [--write-map [FILE]]

1. Collect (once; cached in --cache, reused unless --recollect): the LOCOMO conversations are ingested exactly
   as bench/locomo.py does (its loader and MemlaneRetriever, imported), every category 1-4 question is searched
   within its conversation with limit=--top, without and with the maxsim reranker, and each result's RAW fused
   (or reranker-mixed) score is kept with its label: 1 when the result's dia_id is in the question's evidence.
   The same questions are asked in smaller scopes cut from the conversations (each session; windows of 10 and
   of 5 turns), wherever one scope holds all of a question's evidence. The packaged calibration is switched off
   while collecting (raw_scores()). Exact-repeat probes too: stored turns searched with their own text (exact;
   without the speaker prefix; lower-cased without punctuation), in the 5 large scopes and in small scopes
   (1 to 100 memories) of a second store.
2. Fit candidate maps of the fused score to P(evidence): isotonic regression (pool-adjacent-violators,
   interpolated between block centroids) or logistic curves, one map for all scopes or one per bucket of scope
   sizes (the number of candidates a search ranks, capped at SIZE_CAP), and check each leave-one-conversation-
   out: fit on 4 conversations, score the 5th (log-loss, Brier, expected calibration error, reliability table;
   precision / recall of thresholds 0.3 / 0.5 / 0.7 at limit 10 and 50), per kind of scope. Of the models tied
   on held-out log-loss (within TIE), the one with the lowest held-out ECE is fitted on all 5 conversations and
   written with --write-map.
3. Exact matches: measure what the near-exact rule of memlane.calibration does on the probes, check that no
   LOCOMO question is a near-exact match of a turn of its conversation (so the rule never touches the
   calibration data), and evaluate the alternative that was dropped: a monotone map of the fused score anchored
   at 0.9 where exact repeats land.

No constant is tuned to an individual question; the choices (family, thresholds reported) are made on held-out
aggregates and listed in the results.
"""
from __future__ import annotations

import argparse
import gzip
import json
import math
import re
import sys
import tempfile
import time
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable, Iterator, Optional

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import locomo  # noqa: E402  (bench/locomo.py: loader, MemlaneRetriever, Progress, machine, git_commit)

ROOT = locomo.ROOT
DEFAULT_CACHE = ROOT / "bench" / "results" / "tmp" / "calibration-scores.json.gz"
DEFAULT_OUT = ROOT / "bench" / "results" / "calibration.json"
PACKAGED_MAP = ROOT / "src" / "memlane" / "_data" / "calibration.json"
THRESHOLDS = (0.3, 0.5, 0.7)
LIMITS = (10, 50)
NEAR_EXACT_FLOOR = 0.9     # written into the map; memlane.calibration reads it
IDENTITY_BLEND = 1e-3      # share of the identity mixed into a fitted map so it rises strictly (no ties)
MIN_BLOCK = 30             # isotonic steps rest on at least this many results (standard error <= 0.09)
THIN = 2e-4                # breakpoints that interpolation reproduces this closely are dropped
SMALL_SIZES = (1, 2, 5, 10, 30, 100)
SMALL_SCOPES_PER_SIZE = 3
PROBES_PER_SCOPE = 20
PROBE_EVERY = 5            # large scopes: every 5th stored turn is probed
TIE = 0.005                # held-out log-losses this close (relative) count as tied; ECE decides
WINDOWS = (5, 10)          # smaller scopes: windows of this many turns (and whole sessions)
PARTITION_ORDER = ("conversation", "session", "window10", "window5")
SIZE_CAP = 50              # memlane.calibration: scopes of this many candidates or more count as large
SIZE_BUCKETS = ((1, 8), (8, 16), (16, 32), (32, 50), (50, 51))  # a map per bucket of scope sizes
ANCHOR_RAMP = 0.02         # the dropped monotone anchor: ramp width below the anchor


# ------------------------------------------------------------------ collection

@contextmanager
def raw_scores() -> Iterator[None]:
    """Memory.search scores results with memlane.calibration.result_scores; with the identity map and no
    near-exact floor that is the fused (or reranker-mixed) score itself."""
    from memlane import calibration
    saved = calibration._SIZES, calibration._MAPS, calibration.NEAR_EXACT_FLOOR
    calibration._SIZES, calibration._MAPS = [1.0], [(np.array([0.0, 1.0]), np.array([0.0, 1.0]))]
    calibration.NEAR_EXACT_FLOOR = 0.0
    try:
        yield
    finally:
        calibration._SIZES, calibration._MAPS, calibration.NEAR_EXACT_FLOOR = saved


_PUNCT = re.compile(r"[^\w\s]", re.UNICODE)


def variants(text: str, speaker: Optional[str]) -> dict[str, str]:
    """Exact and near-exact repeats of a stored text."""
    bare = text[len(speaker) + 2:] if speaker and text.startswith(speaker + ": ") else text
    out = {"exact": text}
    if bare != text:
        out["no_speaker"] = bare
    out["normalised"] = " ".join(_PUNCT.sub(" ", bare.lower()).split())
    return out


def probe(memory, target: str, query: str, scope: str) -> Optional[dict[str, Any]]:
    """Search `query`; the raw score and rank of the best result holding the probed text, the best other."""
    if not query.strip():
        return None
    hits = memory.search(query, user_id=scope, limit=10)["results"]
    mine = [(rank, h["score"]) for rank, h in enumerate(hits) if h["memory"] == target]
    other = [h["score"] for h in hits if h["memory"] != target]
    return {"score": mine[0][1] if mine else None, "rank": mine[0][0] if mine else None,
            "best_other": other[0] if other else None}


def partitions(conv: locomo.Conversation) -> dict[str, list[tuple[str, list[locomo.Turn]]]]:
    """Smaller scopes cut from a conversation: each session, and consecutive windows of WINDOWS turns within a
    session (a last window shorter than half is joined to the one before): (scope name, turns)."""
    out: dict[str, list[tuple[str, list[locomo.Turn]]]] = {"session": [], **{f"window{w}": [] for w in WINDOWS}}
    for n, turns in conv.sessions.items():
        out["session"].append((f"{conv.id}-s{n}", turns))
        for w in WINDOWS:
            chunks = [turns[i:i + w] for i in range(0, len(turns), w)]
            if len(chunks) > 1 and len(chunks[-1]) < w / 2:
                last = chunks.pop()
                chunks[-1] = chunks[-1] + last
            out[f"window{w}"] += [(f"{conv.id}-s{n}-w{w}-{j}", c) for j, c in enumerate(chunks)]
    return out


def collect_partitions(memory, convs: list[locomo.Conversation], top: int) -> list[dict[str, Any]]:
    """Store every partition of every conversation (partitions()) in `memory`, one scope each, and ask each
    question whose evidence lies in one scope of a partition within that scope. Rows as collect()'s questions,
    plus the partition, the scope's size and n = the number of results (all candidates when the scope holds
    fewer than `top`: what memlane.calibration reads as the scope size)."""
    out = []
    progress = locomo.Progress(sum(len(c.turns) for c in convs) * (1 + len(WINDOWS)), "ingest (smaller scopes)")
    for conv in convs:
        for part, scopes in partitions(conv).items():
            where: dict[str, tuple[str, int]] = {}
            dia_of: dict[str, str] = {}
            for scope, turns in scopes:
                msgs = [{"role": "user", "content": t.text, "name": t.speaker} for t in turns]
                res = memory.add(msgs, user_id=scope, infer=False, timestamp=turns[0].timestamp)["results"]
                assert [r["memory"] for r in res] == [t.text for t in turns]
                dia_of.update((r["id"], t.dia_id) for r, t in zip(res, turns))
                where.update((t.dia_id, (scope, len(turns))) for t in turns)
                progress.update(len(turns))
            for qi, q in enumerate(conv.questions):
                homes = {where[e] for e in q.evidence if e in where}
                if len(homes) != 1:
                    continue
                (scope, size), gold = homes.pop(), set(q.evidence)
                hits = memory.search(q.question, user_id=scope, limit=top)["results"]
                out.append({"conv": conv.id, "q": qi, "category": q.category, "evidence": len(gold),
                            "partition": part, "scope_size": size, "n": len(hits),
                            "results": [[round(h["score"], 6), int(dia_of.get(h["id"]) in gold)] for h in hits]})
    progress.close()
    return out


def collect(data_dir: Path, top: int, limit_conversations: Optional[int] = None) -> dict[str, Any]:
    from memlane import Memory
    from memlane.config import MemoryConfig, ProviderConfig
    from memlane.scoring import FusionWeights

    report = locomo.DataReport()
    convs = locomo.load(data_dir, limit_conversations, report)
    started = time.perf_counter()
    out: dict[str, Any] = {"top": top, "reranker": "maxsim", "weights": asdict(FusionWeights()), "questions": [],
                           "probes": [], "conversations": [c.id for c in convs], **locomo.git_commit()}
    with tempfile.TemporaryDirectory(prefix="memlane-calibrate-") as tmpdir, raw_scores():
        retriever = locomo.MemlaneRetriever(tmpdir, rerank=True)  # the maxsim reranker, used only when asked
        try:
            progress = locomo.Progress(sum(len(c.turns) for c in convs), "ingest")
            for conv in convs:
                retriever.ingest(conv, progress)
            progress.close()
            memory = retriever.memory
            progress = locomo.Progress(sum(len(c.questions) for c in convs), "questions", unit="question")
            for conv in convs:
                for qi, q in enumerate(conv.questions):
                    gold = set(q.evidence)
                    rows: dict[str, list[list[float]]] = {}
                    for mode in ("fused", "reranked"):
                        hits = memory.search(q.question, user_id=conv.id, limit=top,
                                             rerank=mode == "reranked")["results"]
                        rows[mode] = [[round(h["score"], 6), int(retriever.dia_of.get(h["id"]) in gold)]
                                      for h in hits]
                    out["questions"].append({"conv": conv.id, "q": qi, "category": q.category,
                                             "evidence": len(gold), "results": rows["fused"],
                                             "reranked": rows["reranked"]})
                    progress.update(1)
            progress.close()
            out["smaller_scopes"] = collect_partitions(memory, convs, top)
            # exact-repeat probes in the large scopes (one per conversation, ~550 turns)
            sample = [(conv, t) for conv in convs for i, t in enumerate(conv.turns) if i % PROBE_EVERY == 0]
            progress = locomo.Progress(len(sample), "probes (large scopes)", unit="turn")
            for conv, t in sample:
                for kind, query in variants(t.text, t.speaker).items():
                    row = probe(memory, t.text, query, conv.id)
                    if row is not None:
                        out["probes"].append({"scope_size": len(conv.turns), "style": "turns", "kind": kind,
                                              **row})
                progress.update(1)
            progress.close()
        finally:
            retriever.close()

        # small scopes in a second store: consecutive turns of the conversations, stored as LOCOMO stores them
        # ("turns": speaker name, session date) and as a bare user message ("plain", like tests' seed())
        config = MemoryConfig(vector_store=ProviderConfig(provider="sqlite",
                                                          config={"path": str(Path(tmpdir) / "small.db")}),
                              llm=ProviderConfig(provider="none"))
        small = Memory(config)
        try:
            pool = [t for conv in convs for t in conv.turns]
            start = 0
            jobs = []
            for size in SMALL_SIZES:
                for j in range(SMALL_SCOPES_PER_SIZE):
                    jobs.append((size, j, [pool[(start + i) % len(pool)] for i in range(size)]))
                    start += size + 37  # the next scope starts elsewhere in the conversations
            progress = locomo.Progress(len(jobs) * 2, "probes (small scopes)", unit="scope")
            for size, j, turns in jobs:
                for style in ("turns", "plain"):
                    scope = f"small-{style}-{size}-{j}"
                    if style == "turns":
                        msgs = [{"role": "user", "content": t.text, "name": t.speaker} for t in turns]
                        res = small.add(msgs, user_id=scope, infer=False, timestamp=turns[0].timestamp)
                    else:
                        msgs = [{"role": "user", "content": t.text} for t in turns]
                        res = small.add(msgs, user_id=scope, infer=False)
                    assert [r["memory"] for r in res["results"]] == [t.text for t in turns]
                    step = max(1, len(turns) // PROBES_PER_SCOPE)
                    for t in turns[::step][:PROBES_PER_SCOPE]:
                        for kind, query in variants(t.text, t.speaker).items():
                            row = probe(small, t.text, query, scope)
                            if row is not None:
                                out["probes"].append({"scope_size": size, "style": style, "kind": kind, **row})
                    progress.update(1)
            progress.close()
        finally:
            small.close()
    out["collect_s"] = round(time.perf_counter() - started, 1)
    out["machine"] = locomo.machine()
    return out


# ------------------------------------------------------------------ maps: breakpoints (x, y), x from 0 to 1

Map = tuple[np.ndarray, np.ndarray]


def apply(m: Map, r: np.ndarray) -> np.ndarray:
    return np.interp(np.clip(np.asarray(r, dtype=np.float64), 0.0, 1.0), m[0], m[1])


def thinned(x: np.ndarray, y: np.ndarray) -> Map:
    """Strictly increasing breakpoints (identity blend), without those the interpolation reproduces."""
    y = (1 - IDENTITY_BLEND) * y + IDENTITY_BLEND * x
    keep = [0]
    for i in range(1, len(x) - 1):
        j = keep[-1]
        between = y[j] + (y[i + 1] - y[j]) * (x[i] - x[j]) / (x[i + 1] - x[j])
        if abs(between - y[i]) > THIN:
            keep.append(i)
    keep.append(len(x) - 1)
    xs, ys = np.round(x[keep], 6), np.round(y[keep], 6)
    assert xs[0] == 0.0 and xs[-1] == 1.0 and np.all(np.diff(xs) > 0) and np.all(np.diff(ys) > 0)
    return xs, ys


def pav(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Isotonic (non-decreasing) least-squares fit of y on x by pool-adjacent-violators.
    Returns the blocks (none lighter than MIN_BLOCK): weighted centroid of x, fitted value (strictly
    increasing), weight."""
    order = np.argsort(x, kind="stable")
    xs, ys = x[order], y[order].astype(np.float64)
    ux, start = np.unique(xs, return_index=True)  # equal x values start as one block: a function of x
    w = np.diff(np.append(start, len(xs))).astype(np.float64)
    s = np.add.reduceat(ys, start)
    sx = np.add.reduceat(xs, start)
    vals: list[float] = []
    wts: list[float] = []
    sums: list[float] = []
    sxs: list[float] = []
    for i in range(len(ux)):
        vals.append(s[i] / w[i])
        wts.append(w[i])
        sums.append(s[i])
        sxs.append(sx[i])
        while len(vals) > 1 and vals[-2] >= vals[-1]:
            sm, wt, sxx = sums.pop() + sums[-1], wts.pop() + wts[-1], sxs.pop() + sxs[-1]
            vals.pop()
            sums[-1], wts[-1], sxs[-1], vals[-1] = sm, wt, sxx, sm / wt
    # a step resting on a handful of results (the top one: 5 results, all evidence) is noise: merge every block
    # lighter than MIN_BLOCK into the neighbour closer in value (merging neighbours keeps the values increasing)
    while len(wts) > 1 and min(wts) < MIN_BLOCK:
        i = int(np.argmin(wts))
        j = i - 1 if i == len(wts) - 1 or (i > 0 and vals[i] - vals[i - 1] <= vals[i + 1] - vals[i]) else i + 1
        lo, hi = min(i, j), max(i, j)
        sums[lo] += sums[hi]
        wts[lo] += wts[hi]
        sxs[lo] += sxs[hi]
        vals[lo] = sums[lo] / wts[lo]
        del sums[hi], wts[hi], sxs[hi], vals[hi]
    wa = np.array(wts)
    return np.array(sxs) / wa, np.array(vals), wa


def isotonic(x: np.ndarray, y: np.ndarray) -> Map:
    """Straight lines between the PAV blocks' centroids, and from (0, 0) to the first and from the last to
    (1, 1): a fused score of 0 is no evidence of anything, 1 is every kind of evidence at its maximum (no
    LOCOMO result comes near it; the top of the map is an extrapolation)."""
    cx, cy, _ = pav(x, y)
    inner = (cx > 0) & (cx < 1)
    return thinned(np.concatenate([[0.0], cx[inner], [1.0]]), np.concatenate([[0.0], cy[inner], [1.0]]))


def logistic_fit(x: np.ndarray, y: np.ndarray, iters: int = 100) -> tuple[float, float]:
    """p = sigmoid(a + b x), maximum likelihood by Newton's method."""
    a, b = 0.0, 0.0
    X = np.stack([np.ones_like(x), x], axis=1)
    for _ in range(iters):
        p = 1 / (1 + np.exp(-(a + b * x)))
        step = np.linalg.solve(X.T @ (X * (p * (1 - p))[:, None]) + 1e-9 * np.eye(2), X.T @ (y - p))
        a, b = a + step[0], b + step[1]
        if np.abs(step).max() < 1e-10:
            break
    return float(a), float(b)


GRID = np.linspace(0.0, 1.0, 401)


def logistic(x: np.ndarray, y: np.ndarray) -> Map:
    a, b = logistic_fit(x, y)
    return thinned(GRID, 1 / (1 + np.exp(-(a + b * GRID))))


def _logit(v: np.ndarray) -> np.ndarray:
    v = np.clip(v, 1e-4, 1 - 1e-4)
    return np.log(v / (1 - v))


def logistic_logit(x: np.ndarray, y: np.ndarray) -> Map:
    """sigmoid(a + b logit(x)): a power law in the odds, which bends where a plain logistic cannot."""
    a, b = logistic_fit(_logit(x), y)
    return thinned(GRID, 1 / (1 + np.exp(-(a + b * _logit(GRID)))))


FAMILIES: dict[str, Callable[[np.ndarray, np.ndarray], Map]] = {
    "isotonic": isotonic, "logistic": logistic, "logistic_logit": logistic_logit}


def anchored(m: Map, anchor: float) -> Map:
    """The dropped alternative: `m` below anchor - ANCHOR_RAMP, a straight ramp to NEAR_EXACT_FLOOR at the
    anchor, straight on to 1 at a fused score of 1 (monotone in the fused score alone)."""
    lo = anchor - ANCHOR_RAMP
    below = m[0] < lo
    x = np.concatenate([m[0][below], [lo, anchor, 1.0]])
    y = np.concatenate([m[1][below], [float(apply(m, np.array([lo]))[0]), NEAR_EXACT_FLOOR, 1.0]])
    return x, y


# ------------------------------------------------------------------ maps by scope size

Predictor = Callable[[np.ndarray, int], np.ndarray]


def n_of(q: dict[str, Any]) -> int:
    """The scope size a question's search saw, as memlane.calibration reads it: the number of candidates,
    capped at SIZE_CAP (every candidate is a result here, limit 50; conversation scopes hold ~550 turns)."""
    return min(int(q.get("n", len(q["results"]))), SIZE_CAP)


@dataclass
class Sized:
    """One map per scope-size node; between nodes, the two maps' values mixed linearly in log(size) (what
    memlane.calibration.calibrated does); outside, the nearest node's map. Strictly increasing in the score."""
    nodes: list[float]
    maps: list[Map]

    def __call__(self, x: np.ndarray, n: int) -> np.ndarray:
        m = min(max(float(n), self.nodes[0]), self.nodes[-1])
        j = int(np.searchsorted(self.nodes, m))
        if j == 0 or self.nodes[j] == m:
            return apply(self.maps[j], x)
        t = (math.log(m) - math.log(self.nodes[j - 1])) / (math.log(self.nodes[j]) - math.log(self.nodes[j - 1]))
        return (1 - t) * apply(self.maps[j - 1], x) + t * apply(self.maps[j], x)


def sized(family: Callable[[np.ndarray, np.ndarray], Map]) -> Callable[[list[dict[str, Any]], str], Sized]:
    """Fit `family` within each SIZE_BUCKETS bucket; the node is the bucket's geometric mean size (by result)."""
    def fit(rows: list[dict[str, Any]], key: str = "results") -> Sized:
        nodes, maps = [], []
        for lo, hi in SIZE_BUCKETS:
            sel = [q for q in rows if lo <= n_of(q) < hi]
            if not sel:
                continue
            x, y = flatten(sel, key)
            sizes = np.concatenate([np.full(len(q[key]), n_of(q), dtype=np.float64) for q in sel])
            nodes.append(round(float(np.exp(np.log(sizes).mean())), 3))
            maps.append(family(x, y))
        return Sized(nodes, maps)
    return fit


def single(family: Callable[[np.ndarray, np.ndarray], Map], partitions: Optional[set[str]] = None
           ) -> Callable[[list[dict[str, Any]], str], Sized]:
    """One map for every scope size, fitted on the rows of `partitions` (all when None)."""
    def fit(rows: list[dict[str, Any]], key: str = "results") -> Sized:
        sel = [q for q in rows if partitions is None or q["partition"] in partitions]
        return Sized([float(SIZE_CAP)], [family(*flatten(sel, key))])
    return fit


# ------------------------------------------------------------------ evaluation

def flatten(questions: list[dict[str, Any]], key: str = "results") -> tuple[np.ndarray, np.ndarray]:
    a = np.array([r for q in questions for r in q[key]], dtype=np.float64).reshape(-1, 2)
    return a[:, 0], a[:, 1]


BINS = (0.0, 0.05, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0001)


def bins(p: np.ndarray) -> Iterator[tuple[float, float, np.ndarray]]:
    for lo, hi in zip(BINS[:-1], BINS[1:]):
        m = (p >= lo) & (p < hi)
        if m.any():
            yield lo, hi, m


def reliability(p: np.ndarray, y: np.ndarray) -> list[dict[str, Any]]:
    return [{"bin": f"[{lo:.2f}, {min(hi, 1.0):.2f}{']' if hi > 1 else ')'}", "n": int(m.sum()),
             "mean_score": round(float(p[m].mean()), 4), "evidence_rate": round(float(y[m].mean()), 4)}
            for lo, hi, m in bins(p)]


def metrics(p: np.ndarray, y: np.ndarray) -> dict[str, float]:
    pc = np.clip(p, 1e-6, 1 - 1e-6)
    ece = sum(abs(float(p[m].mean() - y[m].mean())) * m.sum() for _, _, m in bins(p)) / len(p)
    return {"n": int(len(p)), "log_loss": round(float(-np.mean(y * np.log(pc) + (1 - y) * np.log(1 - pc))), 5),
            "brier": round(float(np.mean((p - y) ** 2)), 5), "ece": round(float(ece), 5),
            "mean_score": round(float(p.mean()), 4), "evidence_rate": round(float(y.mean()), 4)}


def threshold_table(scored: list[dict[str, Any]], limit: int) -> dict[str, dict[str, Any]]:
    """For each threshold, at `limit`: precision (evidence among the kept results, pooled), recall (mean over
    questions of the share of their evidence kept), results kept per search, share of searches left empty."""
    out = {}
    for t in (0.0, *THRESHOLDS):
        kept = hits = empty = 0
        recalls = []
        for q in scored:
            rows = [r for r in q["results"][:limit] if r[0] >= t]
            kept += len(rows)
            h = sum(int(r[1]) for r in rows)
            hits += h
            recalls.append(h / q["evidence"])
            empty += not rows
        out[f"{t:.1f}"] = {"precision": round(hits / kept, 4) if kept else None,
                           "recall": round(float(np.mean(recalls)), 4),
                           "kept_per_search": round(kept / len(scored), 3),
                           "empty_searches": round(empty / len(scored), 4)}
    return out


def summary(scored: list[dict[str, Any]]) -> dict[str, Any]:
    p, y = flatten(scored)
    return {**metrics(p, y), "questions": len(scored), "reliability": reliability(p, y),
            "thresholds": {str(limit): threshold_table(scored, limit) for limit in LIMITS},
            "top_result_at_least_0.9": round(float(np.mean([q["results"][0][0] >= 0.9 for q in scored])), 4)}


def held_out(rows: list[dict[str, Any]], convs: list[str], fit: Callable[[list[dict[str, Any]], str], Sized],
             key: str = "results", fit_key: str = "results") -> dict[str, Any]:
    """Leave one conversation out: fit on the other conversations' rows (`fit_key` scores), score the held-out
    rows' `key` scores; metrics pooled, per conversation and per partition (scope kind)."""
    scored: list[dict[str, Any]] = []
    for held in convs:
        predict = fit([q for q in rows if q["conv"] != held], fit_key)
        for q in rows:
            if q["conv"] == held and q.get(key):
                x, y = flatten([q], key)
                scored.append({**q, "results": np.stack([predict(x, n_of(q)), y], axis=1).tolist()})
    parts = sorted({q["partition"] for q in scored}, key=lambda s: PARTITION_ORDER.index(s))
    pooled = summary(scored)
    return {"pooled": {k: pooled[k] for k in ("n", "log_loss", "brier", "ece", "mean_score", "evidence_rate")},
            "per_conversation": {c: metrics(*flatten([q for q in scored if q["conv"] == c])) for c in convs},
            "per_partition": {part: summary([q for q in scored if q["partition"] == part]) for part in parts}}


# ------------------------------------------------------------------ exact matches

def near_exact_checks(data_dir: Path, convs: list[str]) -> dict[str, Any]:
    """What memlane's near-exact rule matches on the data: (question, turn of its conversation) pairs (should be
    none, so the rule never touches the calibration data), and each kind of repeat of every turn."""
    from memlane.calibration import same_words, words
    loaded = [c for c in locomo.load(data_dir, None, locomo.DataReport()) if c.id in convs]
    kinds: dict[str, list[bool]] = {}
    for c in loaded:
        for t in c.turns:
            for kind, query in variants(t.text, t.speaker).items():
                kinds.setdefault(kind, []).append(same_words(words(query), t.text, t.speaker))
    return {"locomo_question_turn_pairs_matched": sum(same_words(words(q.question), t.text, t.speaker)
                                                      for c in loaded for q in c.questions for t in c.turns),
            "repeats_matched": {k: round(float(np.mean(v)), 4) for k, v in kinds.items()}}


def probe_summary(probes: list[dict[str, Any]], predict: Sized, anchor_map: Map) -> list[dict[str, Any]]:
    """Per kind of repeat, style and scope size: raw fused scores, and the packaged score (near-exact rule:
    0.9 + 0.1 x calibrated when ranked first; else capped by the result above) next to the dropped anchor's."""
    groups: dict[tuple, list[dict[str, Any]]] = {}
    for p in probes:
        groups.setdefault((p["kind"], p["style"], p["scope_size"] if p["scope_size"] <= 100 else "large"),
                          []).append(p)
    out = []
    for (kind, style, size), rows in sorted(groups.items(), key=lambda kv: (kv[0][0], kv[0][1], str(kv[0][2]))):
        n = min(rows[0]["scope_size"], SIZE_CAP)
        s = np.array([r["score"] if r["score"] is not None else 0.0 for r in rows])
        p = predict(s, n)
        floor = NEAR_EXACT_FLOOR + (1 - NEAR_EXACT_FLOOR) * p
        final = np.where([r["rank"] == 0 for r in rows], floor,
                         np.minimum(floor, predict(np.array([r["best_other"] or 0.0 for r in rows]), n)))
        out.append({"kind": kind, "style": style, "scope_size": size, "n": len(rows),
                    "ranked_first": round(sum(r["rank"] == 0 for r in rows) / len(rows), 4),
                    "fused_min": round(float(s.min()), 4), "fused_median": round(float(np.median(s)), 4),
                    "calibrated_median": round(float(np.median(p)), 4),
                    "score_min": round(float(final.min()), 4), "score_median": round(float(np.median(final)), 4),
                    "score_at_least_0.9": round(float(np.mean(final >= NEAR_EXACT_FLOOR)), 4),
                    "anchor_alternative_at_least_0.9": round(float(np.mean(apply(anchor_map, s) >= 0.9)), 4)})
    return out


# ------------------------------------------------------------------ main

MODELS: dict[str, Callable[[list[dict[str, Any]], str], Sized]] = {
    "isotonic, conversation scopes": single(isotonic, {"conversation"}),
    "logistic, conversation scopes": single(logistic, {"conversation"}),
    "logistic_logit, conversation scopes": single(logistic_logit, {"conversation"}),
    "isotonic, all scopes pooled": single(isotonic),
    "isotonic by scope size": sized(isotonic),
    "logistic_logit by scope size": sized(logistic_logit),
}


def main(argv: Optional[list[str]] = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", default=str(ROOT.parent / "shared" / "datasets" / "locomo"))
    ap.add_argument("--cache", default=str(DEFAULT_CACHE))
    ap.add_argument("--recollect", action="store_true", help="search again even if the cache exists")
    ap.add_argument("--top", type=int, default=50, help="results kept per question (default 50)")
    ap.add_argument("--limit-conversations", type=int, default=None, metavar="N",
                    help="collect from the first N conversations only (a smoke test; not for the packaged map)")
    ap.add_argument("--out", default=str(DEFAULT_OUT))
    ap.add_argument("--write-map", nargs="?", const=str(PACKAGED_MAP), default=None, metavar="FILE",
                    help=f"write the final map (default {PACKAGED_MAP.relative_to(ROOT)})")
    args = ap.parse_args(argv)

    cache = Path(args.cache)
    if cache.exists() and not args.recollect:
        data = json.loads(gzip.decompress(cache.read_bytes()))
        print(f"raw scores from {cache} (collected at {str(data.get('commit'))[:10]})", file=sys.stderr)
    else:
        data = collect(Path(args.data), args.top, args.limit_conversations)
        cache.parent.mkdir(parents=True, exist_ok=True)
        cache.write_bytes(gzip.compress(json.dumps(data).encode()))
    from memlane.scoring import FusionWeights
    if data["weights"] != asdict(FusionWeights()):
        print("warning: the fusion weights changed since the raw scores were collected; use --recollect",
              file=sys.stderr)
    convs = data["conversations"]
    turns = {c.id: len(c.turns) for c in locomo.load(Path(args.data), None, locomo.DataReport())}
    conversation = [{**q, "partition": "conversation", "scope_size": turns[q["conv"]]} for q in data["questions"]]
    rows = conversation + data["smaller_scopes"]

    models = {name: held_out(rows, convs, fit) for name, fit in MODELS.items()}
    # log-loss and Brier are dominated by the many results far below any threshold; among the models within TIE
    # of the best held-out log-loss, the best calibrated one (lowest held-out ECE) is chosen
    best = min(m["pooled"]["log_loss"] for m in models.values())
    chosen = min((name for name, m in models.items() if m["pooled"]["log_loss"] <= best * (1 + TIE)),
                 key=lambda name: models[name]["pooled"]["ece"])
    fit = MODELS[chosen]
    final = fit(rows, "results")

    # reranked searches (conversation scopes): the same map on the mixed score (what ships), and a map of their own
    rerank = {"same_map": held_out(conversation, convs, fit, key="reranked"),
              "own_map": held_out(conversation, convs, single(isotonic, {"conversation"}), key="reranked",
                                  fit_key="reranked")}

    exact = np.array([p["score"] for p in data["probes"] if p["kind"] == "exact" and p["score"] is not None])
    anchor = round(float(exact.min()), 4)

    def anchor_fit(r: list[dict[str, Any]], key: str = "results") -> Sized:
        return Sized([float(SIZE_CAP)], [anchored(isotonic(*flatten(r, key)), anchor)])
    alternative = held_out(conversation, convs, anchor_fit)
    x_conv, y_conv = flatten(conversation)
    checks = near_exact_checks(Path(args.data), convs)
    counts = {part: {"questions": len(qs), "pairs": sum(len(q["results"]) for q in qs),
                     "scope_sizes_p10_p50_p90": np.percentile([q["scope_size"] for q in qs],
                                                              [10, 50, 90]).round(1).tolist()}
              for part in PARTITION_ORDER if (qs := [q for q in rows if q["partition"] == part])}

    result = {
        "benchmark": "locomo-score-calibration", "conversations": convs,
        "label": "result's dia_id is in the question's evidence", "results_per_question": data["top"],
        "scopes": {"conversation": "one scope per conversation (~550 turns), as bench/locomo.py",
                   "session": "one scope per session (10-47 turns)",
                   **{f"window{w}": f"consecutive windows of {w} turns within a session" for w in WINDOWS},
                   "asked": "each question in every scope that holds all its evidence", "counts": counts},
        "size_cap": SIZE_CAP, "size_buckets": SIZE_BUCKETS,
        "fused_score_as_probability": summary([{**q, "results": [[min(1.0, max(0.0, s)), lab]
                                                                   for s, lab in q["results"]]}
                                               for q in conversation]),
        "leave_one_out": models, "chosen": chosen,
        "chosen_because": f"lowest held-out ECE among the models within {TIE:.1%} of the best held-out log-loss",
        "reranked": {"reranker": data.get("reranker"), **rerank},
        "near_exact": {"floor": NEAR_EXACT_FLOOR, **checks,
                       "probes": probe_summary(data["probes"], final,
                                               anchored(isotonic(x_conv, y_conv), anchor))},
        "dropped_monotone_anchor": {"anchor": anchor, "anchor_is": "lowest fused score of an exact repeat",
                                    "ramp": ANCHOR_RAMP, **alternative},
        "map": {"sizes": final.nodes, "maps": [{"x": m[0].tolist(), "y": m[1].tolist()} for m in final.maps]},
        "raw_scores_commit": data.get("commit"), "raw_scores_src_dirty": data.get("src_dirty"),
        "raw_scores_note": data.get("collected_from"), "collect_s": data.get("collect_s"),
        "machine": data.get("machine"), "argv": sys.argv[1:],
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=1) + "\n", encoding="utf-8")
    if args.write_map:
        Path(args.write_map).write_text(json.dumps({
            **result["map"], "size_cap": SIZE_CAP, "near_exact_floor": NEAR_EXACT_FLOOR, "model": chosen,
            "fitted_on": f"LOCOMO {', '.join(convs)}: every category 1-4 question in scopes of 5 turns to a whole "
                         f"conversation, top {data['top']} results",
            "made_by": "bench/calibrate.py --write-map; docs/benchmarks.md, Calibrated scores"}) + "\n",
            encoding="utf-8")
    print(report(result))
    return 0


def report(res: dict[str, Any]) -> str:
    def row(name: str, m: dict[str, Any]) -> str:
        return f"{name:<40}{m['log_loss']:>9.4f}{m['brier']:>9.4f}{m['ece']:>9.4f}"
    lines = ["calibration on LOCOMO " + ", ".join(res["conversations"]), ""]
    for part, c in res["scopes"]["counts"].items():
        lines.append(f"  {part:<13}{c['questions']:>5} questions {c['pairs']:>6} pairs, scope sizes "
                     f"p10/p50/p90 {c['scope_sizes_p10_p50_p90']}")
    lines += ["", f"{'leave-one-conversation-out, all scopes':<40}{'log-loss':>9}{'Brier':>9}{'ECE':>9}"]
    lines += [row(name, r["pooled"]) for name, r in res["leave_one_out"].items()]
    lines += ["", "per scope kind (ECE):"]
    for name, r in res["leave_one_out"].items():
        lines.append(f"  {name:<40}" + "".join(f"{part} {v['ece']:.4f}  " for part, v in r["per_partition"].items()))
    lines += ["", row("fused score read as probability (conv.)", res["fused_score_as_probability"]),
              row("reranked, same map", res["reranked"]["same_map"]["pooled"]),
              row("reranked, own map", res["reranked"]["own_map"]["pooled"]),
              row("dropped: monotone exact anchor (conv.)", res["dropped_monotone_anchor"]["pooled"]),
              "", f"chosen: {res['chosen']}"]
    chosen = res["leave_one_out"][res["chosen"]]
    for part, v in chosen["per_partition"].items():
        lines += ["", f"{part}: held-out reliability"]
        for b in v["reliability"]:
            lines.append(f"  {b['bin']:<14} n={b['n']:>6}  score {b['mean_score']:.3f}  "
                         f"evidence {b['evidence_rate']:.3f}")
        lines.append(f"{part}: held-out thresholds, limit 10")
        for t, w in v["thresholds"]["10"].items():
            lines.append(f"  >= {t}: precision {w['precision']}, recall {w['recall']}, "
                         f"kept/search {w['kept_per_search']}, empty {w['empty_searches']}")
    alt = res["dropped_monotone_anchor"]["per_partition"]["conversation"]
    lines += ["", f"dropped anchor ({res['dropped_monotone_anchor']['anchor']}): top result >= 0.9 in "
                  f"{alt['top_result_at_least_0.9']:.3f} of searches; limit 10 thresholds:"]
    for t, w in alt["thresholds"]["10"].items():
        lines.append(f"  >= {t}: precision {w['precision']}, recall {w['recall']}, kept/search {w['kept_per_search']}")
    ne = res["near_exact"]
    lines += ["", f"near-exact rule: floor {ne['floor']}; LOCOMO question/turn pairs it matches: "
                  f"{ne['locomo_question_turn_pairs_matched']}; repeats it matches: {ne['repeats_matched']}"]
    for p in ne["probes"]:
        lines.append(f"  {p['kind']:<11}{p['style']:<7}{str(p['scope_size']):>6} n={p['n']:>4} first "
                     f"{p['ranked_first']:.3f} fused min {p['fused_min']:.3f} med {p['fused_median']:.3f} | score min "
                     f"{p['score_min']:.3f} >=0.9 {p['score_at_least_0.9']:.3f} | anchor >=0.9 "
                     f"{p['anchor_alternative_at_least_0.9']:.3f}")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
