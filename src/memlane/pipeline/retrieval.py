"""search(): dense and keyword candidates per scope, fused (scoring.py), optionally reranked, and
calibrated (calibration.py); with graph memory, the relations near the query."""
from __future__ import annotations

from datetime import date
from typing import Any

import numpy as np

from .. import filters as F
from .. import graph as G
from .. import inputs
from ..effects import Embed, Rerank, Store
from ..errors import ValidationError
from ..models import MemoryItem, MemoryRecord
from ..rerankers.base import checked
from ..query_dates import date_share, named_dates
from ..calibration import result_scores, scope_size
from ..scoring import fuse, named_actor, query_terms
from ..settings import Op, Settings
from .common import log, visible


RERANK_WITHOUT_RERANKER = ("memlane: search(rerank=True) but no reranker is configured: searching without one "
                           "(as mem0 does); configure reranker={'provider': 'maxsim'} to rerank")


def search(settings: Settings, query: Any, *, user_id: Any = None, agent_id: Any = None, run_id: Any = None,
           filters: Any = None, limit: Any = None, threshold: Any = None, rerank: Any = None, top_k: Any = None,
           show_expired: Any = False, as_of: Any = None) -> Op:
    text = inputs.query(query, settings.max_message_chars)
    when = G.as_of(as_of)
    where = visible(inputs.scoped_filter(user_id, agent_id, run_id, filters),
                    inputs.flag(show_expired, "show_expired"))
    # The scopes the arguments and filters fix (several for an OR of scopes or an `in` list of ids); the
    # store reads each one's partition, and a memory found under several keeps its best score.
    scopes = F.scope_cover(where)
    k = inputs.limit_or_top_k(limit, top_k, 10, maximum=1000)
    cut = inputs.threshold(threshold)
    if rerank is not None and not isinstance(rerank, bool):
        raise ValidationError(f"rerank must be true, false or omitted, not {rerank!r}")
    if rerank and not settings.reranker_configured:  # mem0 code passes rerank=True whether or not one exists
        log.debug(RERANK_WITHOUT_RERANKER)
        rerank = False
    rerank = settings.reranker_configured if rerank is None else rerank
    pool = max(settings.min_candidates, settings.candidate_factor * k)
    vector = (yield Embed([text], "search"))[0]
    terms = query_terms(text)
    dense: dict[str, float] = {}
    keyword: dict[str, float] = {}
    for scope in scopes:
        for mid, score in (yield Store.vector_search(vector, scope, where, pool)):
            dense[mid] = max(score, dense.get(mid, score))
        for mid, score in (yield Store.keyword_search(terms, scope, where, pool)):
            keyword[mid] = max(score, keyword.get(mid, score))
    candidates = list(dict.fromkeys([*dense, *keyword]))
    records = {r.id: r for r in (yield Store.get(candidates, with_embeddings=True))}
    # Exact dense scores from the stored vectors: keyword-only hits get one, and a store may rank with a
    # compact copy (the SQLite store scans float16 vectors).
    dense = {mid: float(np.dot(records[mid].embedding, vector)) for mid in candidates if mid in records}
    actor = named_actor(text, {r.actor_id for r in records.values() if r.actor_id})
    actor_match = {mid for mid, r in records.items() if actor is not None and r.actor_id == actor}
    today = date.fromisoformat(inputs.now_iso()[:10])  # UTC, as created_at
    spans = named_dates(text, today) if settings.weights.date > 0 else []
    # a memory's day is its event time (when it was said), else when it was stored
    dated = {mid: date_share((r.timestamp or r.created_at)[:10], spans) for mid, r in records.items()} if spans \
        else None
    scores = fuse(dense, keyword, actor_match, settings.weights, dated)
    ranked = sorted(((i, s) for i, s in scores.items() if i in records), key=lambda kv: (-kv[1], kv[0]))
    if rerank and ranked:
        ranked = yield from reranked(settings, text, ranked, records, k)
    # The returned score is calibrated (calibration.py): the probability that a result is evidence, given the
    # scope's size (the candidate count, when below the pool), a near-exact match at least 0.9, never above the
    # result before it; the order stays the ranking's, and a threshold keeps a prefix of it.
    head = ranked[:k]
    final = result_scores(text, [(records[i].memory, records[i].actor_id, s) for i, s in head],
                          scope_size(len(records), pool))
    results = [MemoryItem.from_record(records[i], score=round(f, 6)).to_dict()
               for (i, _), f in zip(head, final) if cut is None or f >= cut]
    # reading the graph needs no LLM: a process without one (the CLI, a dashboard) sees what others wrote
    relations = (yield from G.search_relations(scopes, text, vector, when, k)) if settings.graph_requested else []
    return {"results": results, "relations": relations}


def reranked(settings: Settings, query: str, ranked: list[tuple[str, float]], records: dict[str, MemoryRecord],
             limit: int) -> Op:
    """The best fused candidates rescored by the reranker: (fused + w * relevance) / (1 + w), in [0, 1].
    Only these can be returned (the pool is at least `limit`), so the rest are dropped."""
    head = ranked[:max(settings.rerank_pool, limit)]
    relevance = checked((yield Rerank(query, [records[i].memory for i, _ in head])), len(head))
    w = settings.rerank_weight
    return sorted(((i, (s + w * r) / (1 + w)) for (i, s), r in zip(head, relevance)),
                  key=lambda kv: (-kv[1], kv[0]))
