"""Reranking: the pure MaxSim scoring, the packaged reranker on the real local model, and search() with a
reranker through Memory / AsyncMemory on a real SQLite file."""
import asyncio
import math

import numpy as np
import pytest

from memlane import AsyncMemory, ConfigurationError, Memory, ProviderError, ValidationError, register_provider
from memlane.config import MemoryConfig, ProviderConfig, RetrievalConfig
from memlane.pipeline import retrieval
from memlane.rerankers.maxsim import MaxSimReranker, content_rows, relevance, unit_rows

FACTS = [("Caroline", "I play the violin, mostly classical pieces."),
         ("Melanie", "I painted a sunrise over the lake last weekend."),
         ("Caroline", "I'm researching adoption agencies; I want to give a kid a loving home."),
         ("Melanie", "My kids love the camping trips we take every summer."),
         ("Caroline", "I went to an LGBTQ support group yesterday and it was so powerful.")]


def config(path, reranker=None, **retrieval):
    return MemoryConfig(vector_store=ProviderConfig(provider="sqlite", config={"path": str(path)}),
                        llm=ProviderConfig(provider="none"), reranker=reranker,
                        retrieval=RetrievalConfig(**retrieval))


def seed(m):
    m.add([{"role": "user", "content": text, "name": name} for name, text in FACTS], user_id="u", infer=False)


def axis(i, dim=8):
    v = np.zeros(dim, dtype=np.float32)
    v[i] = 1.0
    return v


# ------------------------------------------------------------------ pure scoring

def test_relevance_weights_query_tokens_by_rarity_among_the_candidates():
    query = np.vstack([axis(0), axis(1)])  # token 0 matches everywhere, token 1 only in the last document
    common = [np.vstack([axis(0), axis(5)]) for _ in range(4)]
    rare = np.vstack([axis(1), axis(6)])
    scores = relevance(query, [*common, rare])
    assert scores[-1] > max(scores[:-1])
    # without rarity weighting both kinds would tie at 0.5
    assert scores[0] < 0.5 < scores[-1]
    assert all(0.0 <= s <= 1.0 for s in scores)


def test_relevance_falls_back_to_equal_weights_and_handles_empty_input():
    query = np.vstack([axis(0), axis(1)])
    docs = [np.vstack([axis(0), axis(1)]), np.vstack([axis(0), axis(1)])]  # every token present everywhere
    assert relevance(query, docs) == pytest.approx([1.0, 1.0])
    assert relevance(query, []) == []
    assert relevance(np.zeros((0, 8), dtype=np.float32), docs) == [0.0, 0.0]
    # a document with no content tokens is simply irrelevant, and anti-correlated tokens clip at 0
    assert relevance(query, [np.zeros((0, 8), dtype=np.float32), -docs[0]]) == [0.0, 0.0]


def test_content_rows_drop_special_tokens_punctuation_and_stopwords():
    tokens = ["[CLS]", "what", "did", "melanie", "paint", "##ed", "?", "[SEP]"]
    assert [tokens[i] for i in content_rows(tokens)] == ["melanie", "paint", "##ed"]
    only_stopwords = ["[CLS]", "what", "is", "it", "?", "[SEP]"]
    assert [only_stopwords[i] for i in content_rows(only_stopwords)] == ["what", "is", "it", "?"]
    assert np.allclose(np.linalg.norm(unit_rows(np.array([[3.0, 4.0], [0.0, 2.0]])), axis=1), 1.0)


# ------------------------------------------------------------------ real model

def test_token_states_are_what_embed_pools():
    from memlane.embeddings.local import LocalEmbedder
    e = LocalEmbedder()
    texts = ["hi", "Melanie painted a sunrise over the lake last weekend.", "ok"]
    out = e.token_states(texts)
    assert [t[0][0] for t in out] == ["[CLS]"] * 3 and [t[0][-1] for t in out] == ["[SEP]"] * 3
    pooled = np.vstack([s.mean(axis=0) for _, s in out])
    pooled /= np.linalg.norm(pooled, axis=1, keepdims=True)
    assert np.allclose(pooled, e.embed(texts), atol=1e-5)
    assert all(s.shape == (len(t), 384) for t, s in out)
    assert e.token_states([]) == []
    with pytest.raises(ValidationError):
        e.token_states("not a list")


@pytest.mark.parametrize("query, best", [("What instrument does Caroline play?", 0),
                                         ("What did Melanie paint?", 1),
                                         ("Which agencies is Caroline looking into?", 2)])
def test_maxsim_reranker_scores_the_answer_highest(query, best):
    scores = MaxSimReranker().rerank(query, [text for _, text in FACTS])
    assert len(scores) == len(FACTS) and all(0 <= s <= 1 for s in scores)
    assert int(np.argmax(scores)) == best


def test_maxsim_reranker_config_is_checked():
    with pytest.raises(ConfigurationError, match="unknown maxsim reranker config keys: colour"):
        MaxSimReranker({"colour": "red"})
    with pytest.raises(ConfigurationError, match="match_threshold"):
        MaxSimReranker({"match_threshold": 2})
    for bad in (-1, 2.5, True, "10"):
        with pytest.raises(ConfigurationError, match="cache_size"):
            MaxSimReranker({"cache_size": bad})
    assert MaxSimReranker().rerank("anything", []) == []


class CountingEncoder:
    """The real local encoder, recording which texts each call encodes."""

    def __init__(self, encoder):
        self.encoder, self.calls = encoder, []

    def token_states(self, texts):
        self.calls.append(list(texts))
        return self.encoder.token_states(texts)


def counting(reranker):
    reranker._encoder = CountingEncoder(reranker._encoder)
    return reranker._encoder


def test_maxsim_reranker_encodes_a_candidate_once_and_scores_it_alike_from_the_cache():
    docs = [text for _, text in FACTS]
    cold = MaxSimReranker({"cache_size": 0})
    cached = MaxSimReranker()
    seen = counting(cached)
    query = "What instrument does Caroline play?"
    first = cached.rerank(query, docs)
    assert seen.calls == [[query, *docs]]
    again = cached.rerank(query, docs)
    assert seen.calls[-1] == [query]  # every candidate came from the cache
    other = "What did Melanie paint?"
    mixed = cached.rerank(other, docs[:2] + ["A brand new memory about pottery."])
    assert seen.calls[-1] == [other, "A brand new memory about pottery."]
    np.testing.assert_allclose(first, cold.rerank(query, docs), atol=1e-3)
    assert again == first
    np.testing.assert_allclose(mixed, cold.rerank(other, docs[:2] + ["A brand new memory about pottery."]),
                               atol=1e-3)


def test_maxsim_reranker_cache_is_bounded_and_can_be_turned_off():
    docs = [text for _, text in FACTS]
    small = MaxSimReranker({"cache_size": 2})
    seen = counting(small)
    scores = small.rerank("Who plays the violin?", docs)
    assert len(small._cache) == 2
    small.rerank("Who plays the violin?", docs)
    assert seen.calls[-1] == ["Who plays the violin?", *docs[:3]]  # the two newest were kept
    np.testing.assert_allclose(small.rerank("Who plays the violin?", docs), scores, atol=1e-3)
    off = MaxSimReranker({"cache_size": 0})
    seen_off = counting(off)
    off.rerank("Who plays the violin?", docs)
    off.rerank("Who plays the violin?", docs)
    assert seen_off.calls == [["Who plays the violin?", *docs]] * 2 and not off._cache


def test_maxsim_reranker_scores_repeated_candidates_each_time():
    r = MaxSimReranker()
    docs = [FACTS[0][1], FACTS[1][1], FACTS[0][1]]
    scores = r.rerank("What instrument does Caroline play?", docs)
    assert len(scores) == 3 and scores[0] == scores[2] and scores[0] > scores[1]


# ------------------------------------------------------------------ search with a reranker

class KeywordReranker:
    """Relevance 1 for documents containing `word`, else 0: makes the blend's effect exact to check."""

    calls = []

    def __init__(self, cfg):
        self.word = cfg.get("word", "violin")

    def rerank(self, query, documents):
        KeywordReranker.calls.append((query, list(documents)))
        return [1.0 if self.word in d else 0.0 for d in documents]


register_provider("reranker", "test-keyword", KeywordReranker)


def test_search_blends_reranker_relevance_into_scores(tmp_path, monkeypatch):
    # the blend itself, before calibration (a monotone map of it: calibration.py, test_calibration.py)
    monkeypatch.setattr(retrieval, "result_scores", lambda query, ranked, n: [s for _, _, s in ranked])
    with Memory(config(tmp_path / "r.db", ProviderConfig(provider="test-keyword", config={"word": "camping"}),
                       rerank_weight=0.5)) as m:
        seed(m)
        query = "What does Caroline do for fun?"
        plain = {r["id"]: r["score"] for r in m.search(query, user_id="u", rerank=False)["results"]}
        KeywordReranker.calls.clear()
        results = m.search(query, user_id="u")["results"]  # reranks by default once configured
        assert len(KeywordReranker.calls) == 1 and KeywordReranker.calls[0][0] == query
        assert "camping" in results[0]["memory"]
        for r in results:
            rel = 1.0 if "camping" in r["memory"] else 0.0
            assert r["score"] == pytest.approx((plain[r["id"]] + 0.5 * rel) / 1.5, abs=2e-6)
        assert [r["score"] for r in results] == sorted((r["score"] for r in results), reverse=True)
        # threshold applies to the blended score
        cut = results[0]["score"] - 1e-4
        assert [r["id"] for r in m.search(query, user_id="u", threshold=cut)["results"]] == [results[0]["id"]]


def test_rerank_pool_is_at_least_the_limit(tmp_path):
    with Memory(config(tmp_path / "p.db", ProviderConfig(provider="test-keyword"), rerank_pool=2)) as m:
        seed(m)
        KeywordReranker.calls.clear()
        assert len(m.search("hobbies", user_id="u", limit=4)["results"]) == 4
        assert len(KeywordReranker.calls[-1][1]) == 4
        m.search("hobbies", user_id="u", limit=1)
        assert len(KeywordReranker.calls[-1][1]) == 2


def test_rerank_argument_is_checked(tmp_path):
    with Memory(config(tmp_path / "n.db")) as m:
        seed(m)
        # mem0 code passes rerank=True whether or not a reranker exists: without one, no reranking
        assert m.search("violin", user_id="u", rerank=True) == m.search("violin", user_id="u", rerank=False)
        with pytest.raises(ValidationError, match="rerank must be"):
            m.search("violin", user_id="u", rerank="yes")
        assert m.search("violin", user_id="u", rerank=False)["results"]
    with pytest.raises(ConfigurationError, match="unknown reranker provider 'nope'"):
        Memory(config(tmp_path / "x.db", ProviderConfig(provider="nope")))


class BrokenReranker:
    def __init__(self, cfg):
        self.answer = cfg["answer"]

    def rerank(self, query, documents):
        return self.answer(documents)


register_provider("reranker", "test-broken", BrokenReranker)


@pytest.mark.parametrize("answer, message", [(lambda d: [0.5] * (len(d) - 1), "scores for"),
                                             (lambda d: [math.nan] * len(d), "NaN"),
                                             (lambda d: ["high"] * len(d), "non-numeric")])
def test_a_misbehaving_reranker_is_a_provider_error_not_a_wrong_answer(tmp_path, answer, message):
    with Memory(config(tmp_path / "b.db", ProviderConfig(provider="test-broken", config={"answer": answer}))) as m:
        seed(m)
        with pytest.raises(ProviderError, match=message):
            m.search("violin", user_id="u")
        assert m.get_all(user_id="u")["total"] == len(FACTS)  # nothing touched


def test_packaged_reranker_through_search(tmp_path):
    with Memory(config(tmp_path / "m.db", ProviderConfig(provider="maxsim"))) as m:
        seed(m)
        results = m.search("What instrument does Caroline play?", user_id="u", limit=3)["results"]
        assert "violin" in results[0]["memory"]
        assert all(0 <= r["score"] <= 1 for r in results)


class AsyncOnlyReranker:
    seen = []

    def __init__(self, cfg):
        pass

    def rerank(self, query, documents):
        raise AssertionError("AsyncMemory must use arerank when a reranker offers it")

    async def arerank(self, query, documents):
        await asyncio.sleep(0)
        AsyncOnlyReranker.seen.append(len(documents))
        return [1.0 if "sunrise" in d else 0.0 for d in documents]


register_provider("reranker", "test-async", AsyncOnlyReranker)


async def test_async_memory_reranks_with_arerank_or_in_a_thread(tmp_path):
    AsyncOnlyReranker.seen.clear()  # class-level record: start empty however often this file runs
    m = AsyncMemory(config(tmp_path / "a.db", ProviderConfig(provider="test-async")))
    try:
        await m.add([{"role": "user", "content": t, "name": n} for n, t in FACTS], user_id="u", infer=False)
        results = (await m.search("What does Caroline do for fun?", user_id="u"))["results"]
        assert "sunrise" in results[0]["memory"] and AsyncOnlyReranker.seen == [len(FACTS)]
    finally:
        m.close()
    m = AsyncMemory(config(tmp_path / "b.db", ProviderConfig(provider="test-keyword", config={"word": "summer"})))
    try:
        await m.add([{"role": "user", "content": t, "name": n} for n, t in FACTS], user_id="u", infer=False)
        results = (await m.search("What does Caroline do for fun?", user_id="u"))["results"]
        assert "summer" in results[0]["memory"]
    finally:
        m.close()
