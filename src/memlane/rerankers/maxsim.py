"""The packaged reranker: late interaction (ColBERT-style MaxSim) over the token states of the local
all-MiniLM-L6-v2, so it needs no download and no model beyond the embedder's.

Each query word-piece is matched to its most similar token of a candidate (cosine of contextual states);
a candidate's relevance is the weighted mean of those best matches. The weights are an inverse document
frequency over the candidates themselves: a query token that matches well in most candidates (the
person everyone's memories mention, "favorite", ...) separates nothing, one that matches in a few does.
What it adds on LOCOMO, and what it costs: docs/benchmarks.md, bench/results/locomo-rerank.json.

Cost: a candidate is encoded at query time, so the pool size (`retrieval.rerank_pool`) is the latency knob.
Its content-token states depend on its text alone, so they are kept in a bounded in-process cache keyed by the
text (float16, the form they are always scored in, so a cached and a fresh candidate score alike): searches of
one user's memories meet the same candidates again and skip their encoding.
"""
from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from collections.abc import Mapping
from typing import Any

import numpy as np

from ..provider_config import ProviderConfig
from ..scoring import STOPWORDS

# A query token counts as present in a candidate when its best cosine there exceeds this (for the IDF).
MATCH_THRESHOLD = 0.7
# Candidates whose token states are kept (a LOCOMO turn: 17 content tokens, 13 KB, so ~27 MB when full);
# 0 turns the cache off.
CACHE_SIZE = 2048
_SPECIAL = frozenset({"[CLS]", "[SEP]", "[PAD]", "[UNK]"})


def content_rows(tokens: list[str]) -> list[int]:
    """Rows of the tokens that carry content: word pieces that are not special, punctuation or stopwords."""
    rows = [i for i, t in enumerate(tokens)
            if t not in _SPECIAL and (t.startswith("##") or (t.isalnum() and t.lower() not in STOPWORDS))]
    return rows or [i for i, t in enumerate(tokens) if t not in _SPECIAL]


def unit_rows(states: np.ndarray) -> np.ndarray:
    return states / np.maximum(np.linalg.norm(states, axis=1, keepdims=True), 1e-12)


def relevance(query: np.ndarray, documents: list[np.ndarray], match_threshold: float = MATCH_THRESHOLD) -> list[float]:
    """MaxSim relevance in [0, 1] of each document (tokens x dim, unit rows) to the query (same shape)."""
    if not documents:
        return []
    if len(query) == 0:
        return [0.0] * len(documents)
    best = np.array([(query @ d.T).max(axis=1) if len(d) else np.zeros(len(query)) for d in documents])
    present = (best > match_threshold).sum(axis=0)
    idf = np.maximum(np.log((len(documents) + 1) / (present + 0.5)), 0.0)
    weights = idf / idf.sum() if idf.sum() > 0 else np.full(len(query), 1.0 / len(query))
    return np.clip(best @ weights, 0.0, 1.0).tolist()


class MaxSimReranker:
    """Config: `match_threshold` (default 0.7), `cache_size` (candidates whose token states are kept,
    default 2048; 0 turns it off), and the local embedder's `model_path` and `threads`."""

    def __init__(self, config: Mapping[str, Any] | None = None):
        from ..embeddings.local import LocalEmbedder
        cfg = ProviderConfig(config, "maxsim", "reranker")
        threshold = cfg.take("match_threshold", MATCH_THRESHOLD)
        if not isinstance(threshold, (int, float)) or isinstance(threshold, bool) or not -1 <= threshold <= 1:
            raise cfg.error("match_threshold must be a number in [-1, 1]")
        self.match_threshold = float(threshold)
        cache_size = cfg.take("cache_size", CACHE_SIZE)
        if not isinstance(cache_size, int) or isinstance(cache_size, bool) or cache_size < 0:
            raise cfg.error("cache_size must be a whole number >= 0")
        self.cache_size = cache_size
        model = {"model_path": cfg.take("model_path"), "threads": cfg.take("threads")}
        cfg.done()
        self._encoder = LocalEmbedder(model)  # shares the embedder's onnxruntime session when both are local
        self._cache: OrderedDict[bytes, np.ndarray] = OrderedDict()
        self._lock = threading.Lock()  # AsyncMemory reranks in worker threads

    def rerank(self, query: str, documents: list[str]) -> list[float]:
        if not documents:
            return []
        keys = [hashlib.blake2b(d.encode("utf-8"), digest_size=16).digest() for d in documents]
        with self._lock:
            known = {k: self._cache[k] for k in keys if k in self._cache}
            for k in known:
                self._cache.move_to_end(k)
        missing = list({k: d for k, d in zip(keys, documents) if k not in known}.items())
        encoded = self._encoder.token_states([query, *(d for _, d in missing)])
        tokens, states = encoded[0]
        fresh = {k: _document_matrix(t, st) for (k, _), (t, st) in zip(missing, encoded[1:])}
        if self.cache_size:
            with self._lock:
                self._cache.update(fresh)
                while len(self._cache) > self.cache_size:
                    self._cache.popitem(last=False)
        matrices = {**known, **fresh}
        return relevance(unit_rows(states[content_rows(tokens)]),
                         [matrices[k].astype(np.float32) for k in keys], self.match_threshold)


def _document_matrix(tokens: list[str], states: np.ndarray) -> np.ndarray:
    """A candidate's unit content-token states, in the float16 form they are kept and scored in."""
    return unit_rows(states[content_rows(tokens)]).astype(np.float16)
