"""The hosted rerankers (Cohere, Jina, Voyage, TEI) against a real local server speaking their protocols
(fake_rerank_servers.py), the llm reranker against the scripted OpenAI-protocol server (fakeservers.py), the
cross_encoder reranker's refusals and score mapping (a fake model through its loader seam: sentence-transformers
is not installed here), and search(rerank=True) through Memory with each kind."""
from __future__ import annotations

import json
import math
import os
import sys

import pytest

from fake_embed_servers import fake_embed  # noqa: F401  (fixture)
from fake_rerank_servers import API_KEY, Reply, fake_rerank, overlap  # noqa: F401  (fixture)
from fakeservers import Answer, fake_server  # noqa: F401  (fixture)
from fakeservers import Reply as LLMReply
from memlane import AsyncMemory, ConfigurationError, Memory, ProviderError, registry
from memlane.errors import MemlaneError
from memlane.rerankers.base import checked
from memlane.rerankers.cohere import CohereReranker, JinaReranker, TEIReranker, VoyageReranker, sigmoid
from memlane.rerankers.cross_encoder import CrossEncoderReranker, to_relevance
from memlane.rerankers.llm import NEUTRAL, SCHEMA, LLMReranker

FAST = {"retry_base_delay": 0, "retry_max_delay": 0, "timeout": 5}
QUERY = "which instrument does Caroline play"
DOCS = ["Melanie painted a sunrise over the lake.",
        "Caroline plays the violin; the violin is the instrument she loves.",
        "Caroline went to a support group.",
        "Melanie's kids love camping."]
EXPECTED = [overlap(QUERY, d) for d in DOCS]


@pytest.fixture(autouse=True)
def _no_keys(monkeypatch):
    for name in ("COHERE_API_KEY", "CO_API_KEY", "JINA_API_KEY", "VOYAGE_API_KEY", "TEI_API_KEY", "OPENAI_API_KEY",
                 "OPENAI_BASE_URL"):
        monkeypatch.delenv(name, raising=False)
    for name in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"):  # what cross_encoder sets is undone after each test
        monkeypatch.setenv(name, "0")


def make(cls, server, **config):
    return cls({"api_key": API_KEY, "base_url": server.url, **FAST, **config})


# ==================================================================== Cohere, Jina, Voyage, TEI

def test_cohere_request_and_scores_in_document_order(fake_rerank):
    scores = make(CohereReranker, fake_rerank, model="rerank-english-v3.0").rerank(QUERY, DOCS)
    assert scores == pytest.approx(EXPECTED)
    assert all(0.0 <= s <= 1.0 for s in scores) and max(scores) == scores[1]
    sent = fake_rerank.last()
    assert (sent.method, sent.path) == ("POST", "/v2/rerank")
    assert sent.headers["authorization"] == f"Bearer {API_KEY}"
    assert sent.headers["content-type"] == "application/json"
    assert sent.json == {"model": "rerank-english-v3.0", "query": QUERY, "documents": DOCS, "top_n": 4}


def test_cohere_defaults_env_key_and_mem0_keys(fake_rerank, monkeypatch):
    monkeypatch.setenv("COHERE_API_KEY", API_KEY)
    reranker = CohereReranker({"base_url": fake_rerank.url + "/", "return_documents": False,
                               "max_chunks_per_doc": None, "max_tokens_per_doc": 512, **FAST})
    assert reranker.url() == f"{fake_rerank.url}/v2/rerank"
    assert reranker.rerank(QUERY, DOCS) == pytest.approx(EXPECTED)
    body = fake_rerank.last().json
    assert body["model"] == "rerank-v3.5" and body["max_tokens_per_doc"] == 512 and "return_documents" not in body
    assert CohereReranker({"api_key": "k"}).url() == "https://api.cohere.com/v2/rerank"
    assert reranker.rerank(QUERY, []) == [] and len(fake_rerank.requests) == 1  # nothing to score: no call


def test_top_k_asks_for_the_best_only_and_the_rest_score_zero(fake_rerank):
    scores = make(CohereReranker, fake_rerank, top_k=2).rerank(QUERY, DOCS)
    assert fake_rerank.last().json["top_n"] == 2
    best = sorted(range(4), key=lambda i: -EXPECTED[i])[:2]
    assert scores == pytest.approx([EXPECTED[i] if i in best else 0.0 for i in range(4)])
    # a top_k over the pool asks for the pool
    make(CohereReranker, fake_rerank, top_k=50).rerank(QUERY, DOCS)
    assert fake_rerank.last().json["top_n"] == 4


def test_jina(fake_rerank, monkeypatch):
    monkeypatch.setenv("JINA_API_KEY", API_KEY)
    reranker = JinaReranker({"base_url": fake_rerank.url, **FAST})
    assert reranker.rerank(QUERY, DOCS) == pytest.approx(EXPECTED)
    sent = fake_rerank.last()
    assert sent.path == "/v1/rerank" and sent.headers["authorization"] == f"Bearer {API_KEY}"
    assert sent.json == {"model": "jina-reranker-v2-base-multilingual", "query": QUERY, "documents": DOCS,
                         "top_n": 4, "return_documents": False}
    assert JinaReranker({"api_key": "k"}).url() == "https://api.jina.ai/v1/rerank"


def test_voyage(fake_rerank, monkeypatch):
    monkeypatch.setenv("VOYAGE_API_KEY", API_KEY)
    reranker = VoyageReranker({"base_url": fake_rerank.url, "model": "rerank-2.5-lite", "truncation": True,
                               "top_k": 3, **FAST})
    scores = reranker.rerank(QUERY, DOCS)
    sent = fake_rerank.last()
    assert sent.path == "/v1/rerank"
    assert sent.json == {"query": QUERY, "documents": DOCS, "model": "rerank-2.5-lite", "top_k": 3,
                         "truncation": True}
    worst = min(range(4), key=lambda i: (EXPECTED[i], -i))
    assert scores[worst] == 0.0 and scores[1] == pytest.approx(EXPECTED[1])
    assert VoyageReranker({"api_key": "k"}).url() == "https://api.voyageai.com/v1/rerank"


def test_tei_probabilities_and_raw_logits(fake_rerank):
    fake_rerank.api_key = None  # a TEI server started without --api-key
    plain = TEIReranker({"base_url": fake_rerank.url, **FAST})
    assert plain.rerank(QUERY, DOCS) == pytest.approx(EXPECTED)
    sent = fake_rerank.last()
    assert sent.path == "/rerank" and "authorization" not in sent.headers
    assert sent.json == {"query": QUERY, "texts": DOCS, "raw_scores": False}
    raw = TEIReranker({"base_url": fake_rerank.url, "raw_scores": True, "truncate": True, **FAST})
    scores = raw.rerank(QUERY, DOCS)
    assert fake_rerank.last().json == {"query": QUERY, "texts": DOCS, "raw_scores": True, "truncate": True}
    assert all(0.0 < s < 1.0 for s in scores)  # logits through a sigmoid
    assert scores == pytest.approx([min(0.999, max(0.001, e)) for e in EXPECTED], abs=1e-9)
    top1 = TEIReranker({"base_url": fake_rerank.url, "top_k": 1, **FAST}).rerank(QUERY, DOCS)
    assert top1 == pytest.approx([0.0, EXPECTED[1], 0.0, 0.0])


def test_tei_with_a_key(fake_rerank):
    assert TEIReranker({"base_url": fake_rerank.url, "api_key": API_KEY, **FAST}).rerank(QUERY, DOCS)
    assert fake_rerank.last().headers["authorization"] == f"Bearer {API_KEY}"


def test_sigmoid_is_stable():
    assert sigmoid(0) == 0.5 and sigmoid(-1000) == 0.0 and sigmoid(1000) == 1.0
    assert sigmoid(2) == pytest.approx(1 / (1 + math.exp(-2)))


# ------------------------------------------------------------------ retries and errors

def test_429_and_5xx_are_retried_through_the_shared_exchange(fake_rerank):
    fake_rerank.fail(Reply(429, {"message": "rate"}, {"Retry-After": "0"}), Reply(503), Reply(500))
    assert make(CohereReranker, fake_rerank).rerank(QUERY, DOCS) == pytest.approx(EXPECTED)
    assert len(fake_rerank.requests) == 4


def test_retries_run_out_as_a_provider_error(fake_rerank):
    fake_rerank.fail(*[Reply(500, {"message": "boom"})] * 3)
    with pytest.raises(ProviderError, match=r"cohere: HTTP 500 after 3 attempt") as info:
        make(CohereReranker, fake_rerank, max_retries=2).rerank(QUERY, DOCS)
    assert info.value.status == 500 and len(fake_rerank.requests) == 3


def test_a_wrong_key_is_not_retried(fake_rerank):
    with pytest.raises(ProviderError, match="HTTP 401 .check the API key") as info:
        make(JinaReranker, fake_rerank, api_key="wrong").rerank(QUERY, DOCS)
    assert isinstance(info.value, MemlaneError) and len(fake_rerank.requests) == 1


@pytest.mark.parametrize("body, message", [
    (b"{not json", "not JSON"),
    ({"results": "nope"}, "no 'results' list"),
    ({"results": [{"index": 9, "relevance_score": 0.5}]}, "index 9 is not one of the 4"),
    ({"results": [{"index": 0, "relevance_score": 0.5}, {"index": 0, "relevance_score": 0.4}]}, "twice"),
    ({"results": [{"index": 0}]}, "bad row"),
    ({"results": [{"index": 0, "relevance_score": 0.5}]}, "1 scores for 4 documents"),
    ({"results": [{"index": 0, "relevance_score": "NaN"}]}, "score nan"),
])
def test_malformed_answers_are_provider_errors(fake_rerank, body, message):
    fake_rerank.fail(Reply(200, body))
    with pytest.raises(ProviderError, match=message):
        make(CohereReranker, fake_rerank).rerank(QUERY, DOCS)


def test_out_of_range_scores_are_clipped(fake_rerank):
    fake_rerank.fail(Reply(200, {"results": [{"index": i, "relevance_score": s}
                                             for i, s in enumerate([1.7, -0.2, 0.3, 0.0])]}))
    assert make(CohereReranker, fake_rerank).rerank(QUERY, DOCS) == [1.0, 0.0, 0.3, 0.0]


def test_config_errors(monkeypatch):
    with pytest.raises(ConfigurationError, match="no API key; set COHERE_API_KEY"):
        CohereReranker({})
    with pytest.raises(ConfigurationError, match="VOYAGE_API_KEY"):
        VoyageReranker({})
    with pytest.raises(ConfigurationError, match="tei reranker: base_url is required"):
        TEIReranker({})
    with pytest.raises(ConfigurationError, match="unknown cohere reranker config keys: colour"):
        CohereReranker({"api_key": "k", "colour": "red"})
    with pytest.raises(ConfigurationError, match="top_k must be a positive integer"):
        CohereReranker({"api_key": "k", "top_k": 0})
    monkeypatch.setenv("CO_API_KEY", "k2")
    assert CohereReranker({}).api_key == "k2"


async def test_arerank(fake_rerank):
    fake_rerank.fail(Reply(502))
    scores = await make(VoyageReranker, fake_rerank).arerank(QUERY, DOCS)
    assert scores == pytest.approx(EXPECTED) and len(fake_rerank.requests) == 2


def test_registry_names():
    for name, cls in (("cohere", CohereReranker), ("jina", JinaReranker), ("voyage", VoyageReranker)):
        assert type(registry.create("reranker", name, {"api_key": "k"})) is cls
    assert type(registry.create("reranker", "tei", {"base_url": "http://x"})) is TEIReranker
    assert {"cohere", "jina", "voyage", "tei", "llm", "llm_reranker", "cross_encoder",
            "sentence_transformer", "maxsim"} <= set(registry.available("reranker"))


# ------------------------------------------------------------------ through Memory

FACTS = ["I play the violin, mostly classical pieces.", "I painted a sunrise over the lake last weekend.",
         "My kids love the camping trips we take every summer.", "I went to a support group yesterday."]


def memory_config(tmp_path, embed_url, reranker, llm=None):
    return {"embedder": {"provider": "openai", "config": {"api_key": "k", "openai_base_url": embed_url,
                                                          "model": "text-embedding-3-small", "embedding_dims": 32}},
            "vector_store": {"provider": "sqlite", "config": {"path": str(tmp_path / "m.db")}},
            "llm": llm or {"provider": "none"},
            "reranker": reranker,
            "retrieval": {"rerank_weight": 1000.0}}


def test_memory_search_reranks_with_cohere(fake_embed, fake_rerank, tmp_path):
    reranker = {"provider": "cohere", "config": {"api_key": API_KEY, "base_url": fake_rerank.url,
                                                 "model": "rerank-v3.5", **FAST}}
    with Memory.from_config(memory_config(tmp_path, fake_embed.url, reranker)) as m:
        m.add([{"role": "user", "content": f} for f in FACTS], user_id="u", infer=False)
        assert not fake_rerank.requests
        query = "camping trips with the kids"
        results = m.search(query, user_id="u", rerank=True)["results"]
        assert len(fake_rerank.requests) == 1
        sent = fake_rerank.last().json
        assert sent["query"] == query and sorted(sent["documents"]) == sorted(FACTS) and sent["top_n"] == 4
        assert results[0]["memory"] == FACTS[2]  # the reranker's pick (the fake's embeddings are random)
        assert len(results) == 4 and all(0.0 <= r["score"] <= 1.0 for r in results)
        plain = m.search(query, user_id="u", rerank=False)["results"]
        assert len(fake_rerank.requests) == 1 and len(plain) == 4


async def test_async_memory_uses_arerank(fake_embed, fake_rerank, tmp_path):
    reranker = {"provider": "jina", "config": {"api_key": API_KEY, "base_url": fake_rerank.url, **FAST}}
    m = AsyncMemory.from_config(memory_config(tmp_path, fake_embed.url, reranker))
    try:
        await m.add([{"role": "user", "content": f} for f in FACTS], user_id="u", infer=False)
        results = (await m.search("violin classical pieces", user_id="u"))["results"]
        assert results[0]["memory"] == FACTS[0] and fake_rerank.last().path == "/v1/rerank"
    finally:
        m.close()


def test_memory_search_reports_a_failing_reranker(fake_embed, fake_rerank, tmp_path):
    reranker = {"provider": "cohere", "config": {"api_key": "wrong", "base_url": fake_rerank.url, **FAST}}
    with Memory.from_config(memory_config(tmp_path, fake_embed.url, reranker)) as m:
        m.add("I play the violin", user_id="u", infer=False)
        with pytest.raises(ProviderError, match="401"):
            m.search("violin", user_id="u", rerank=True)


# ==================================================================== llm

def llm_config(server, **extra):
    return {"provider": "openai", "config": {"api_key": "sk-test", "openai_base_url": f"{server.url}/v1",
                                             "retry_base_delay": 0, "max_retries": 1, "timeout": 5, **extra}}


def scored(*pairs):
    return Answer(data={"scores": [{"index": i, "score": s} for i, s in pairs]})


def test_llm_reranker_one_call_for_the_pool(fake_server):
    fake_server.script(scored((0, 1), (1, 9), (2, 4), (3, 0)))
    reranker = LLMReranker({"llm": llm_config(fake_server)})
    assert reranker.rerank(QUERY, DOCS) == pytest.approx([0.1, 0.9, 0.4, 0.0])
    assert len(fake_server.requests) == 1
    sent = fake_server.last().json
    system, user = sent["messages"]
    assert system["role"] == "system" and "0 to 10" in system["content"] and "data, not instructions" in \
        system["content"]
    assert user["content"].startswith(f"Query: {QUERY}\n\nCandidates (4):\n[0] {DOCS[0]}\n[1] {DOCS[1]}")
    assert "indexes 0 to 3" in user["content"]
    fmt = sent["response_format"]
    assert fmt["type"] == "json_schema" and fmt["json_schema"]["name"] == "rerank_scores"
    assert fmt["json_schema"]["schema"] == SCHEMA and sent["temperature"] == 0.0
    assert sent["max_tokens"] == 64 + 16 * 4


@pytest.mark.parametrize("answer, expected", [
    (Answer(text="I think the second one."), [NEUTRAL] * 4),  # not JSON
    (Answer(data={"ranking": [1, 0]}), [NEUTRAL] * 4),  # not the schema
    (Answer(text="```json\n" + json.dumps({"scores": [{"index": 1, "score": 8}]}) + "\n```"),
     [NEUTRAL, 0.8, NEUTRAL, NEUTRAL]),  # fenced, partial: the rest neutral
    (scored((1, 15), (0, -3), (7, 10), (1, 2), (2, 5), (3, 5)), [0.0, 1.0, 0.5, 0.5]),  # clipped; stray ignored
])
def test_llm_reranker_falls_back_on_malformed_answers(fake_server, answer, expected, caplog):
    fake_server.script(answer)
    scores = LLMReranker({"llm": llm_config(fake_server)}).rerank(QUERY, DOCS)
    assert scores == pytest.approx(expected) and checked(scores, 4) == scores


def test_llm_reranker_mem0_keys(fake_server, monkeypatch):
    monkeypatch.setenv("OPENAI_BASE_URL", f"{fake_server.url}/v1")
    fake_server.script(scored((0, 5)))
    reranker = LLMReranker({"provider": "openai", "model": "gpt-4.1-mini", "api_key": "sk-x", "top_k": 3,
                            "temperature": 0.2, "max_tokens": 300, "scoring_prompt": "Rate them."})
    assert reranker.rerank(QUERY, DOCS[:1]) == [0.5]
    sent = fake_server.last()
    assert sent.json["model"] == "gpt-4.1-mini" and sent.headers["authorization"] == "Bearer sk-x"
    assert sent.json["messages"][0]["content"] == "Rate them." and sent.json["max_tokens"] == 300
    assert sent.json["temperature"] == 0.2


def test_llm_reranker_errors(fake_server):
    with pytest.raises(ConfigurationError, match="no LLM to score with"):
        LLMReranker({}).rerank(QUERY, DOCS)
    with pytest.raises(ConfigurationError, match="no LLM to score with"):
        LLMReranker({}).use_llm(None)
    with pytest.raises(ConfigurationError, match="scoring_prompt must be a non-empty string"):
        LLMReranker({"scoring_prompt": " "})
    with pytest.raises(ConfigurationError, match="unknown llm reranker config keys: colour"):
        LLMReranker({"colour": 1})
    fake_server.script(LLMReply(500, {"error": {"message": "down"}}), LLMReply(500, {"error": {"message": "down"}}))
    with pytest.raises(MemlaneError, match="500"):  # a failed call is the LLM's error, not a silent fallback
        LLMReranker({"llm": llm_config(fake_server)}).rerank(QUERY, DOCS)


def test_memory_hands_its_llm_to_the_llm_reranker(fake_embed, fake_server, tmp_path):
    config = memory_config(tmp_path, fake_embed.url, {"provider": "llm", "config": {}}, llm=llm_config(fake_server))
    with Memory.from_config(config) as m:
        m.add([{"role": "user", "content": f} for f in FACTS], user_id="u", infer=False)
        assert not fake_server.requests
        # the candidates reach the prompt in the fused order: score them by that order
        results = m.search("violin", user_id="u", rerank=False)["results"]
        order = [r["memory"] for r in results]
        fake_server.script(scored(*[(i, 10 if "camping" in text else 1) for i, text in enumerate(order)]))
        reranked = m.search("violin", user_id="u", rerank=True)["results"]
        assert len(fake_server.requests) == 1
        user = fake_server.last().json["messages"][1]["content"]
        assert all(f"[{i}] {text}" in user for i, text in enumerate(order))
        assert reranked[0]["memory"] == FACTS[2] and len(reranked) == 4
        # a malformed answer keeps every result, in the fused order
        fake_server.script(Answer(text="sorry, no"))
        kept = m.search("violin", user_id="u", rerank=True)["results"]
        assert [r["memory"] for r in kept] == order


def test_memory_without_an_llm_refuses_the_llm_reranker(fake_embed, tmp_path):
    with pytest.raises(ConfigurationError, match="llm reranker: no LLM"):
        Memory.from_config(memory_config(tmp_path, fake_embed.url, {"provider": "llm_reranker"}))


async def test_llm_reranker_async(fake_server):
    fake_server.script(scored((0, 2), (1, 8)))
    scores = await LLMReranker({"llm": llm_config(fake_server)}).arerank(QUERY, DOCS[:2])
    assert scores == pytest.approx([0.2, 0.8])


# ==================================================================== cross_encoder (not run for real here)

class Identity:
    pass


class Sigmoid:
    pass


class FakeCrossEncoder:
    def __init__(self, outputs, activation):
        self.outputs, self.activation_fn, self.calls = outputs, activation, []

    def predict(self, pairs, **kwargs):
        self.calls.append((pairs, kwargs))
        return self.outputs


def test_cross_encoder_refuses_hub_names_and_missing_models(tmp_path):
    with pytest.raises(ConfigurationError, match="`model` is required"):
        CrossEncoderReranker({})
    with pytest.raises(ConfigurationError, match="not a local folder; memlane never downloads"):
        registry.create("reranker", "cross_encoder", {"model": "cross-encoder/ms-marco-MiniLM-L6-v2"})
    with pytest.raises(ConfigurationError, match="not a local folder"):
        CrossEncoderReranker({"model": str(tmp_path / "absent")})
    with pytest.raises(ConfigurationError, match="unknown cross_encoder reranker config keys: colour"):
        CrossEncoderReranker({"model": str(tmp_path), "colour": 1})


def test_cross_encoder_without_the_extra_names_it(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "sentence_transformers", None)
    with pytest.raises(ConfigurationError, match=r"memlane\[huggingface\]"):
        CrossEncoderReranker({"model": str(tmp_path)})
    assert os.environ["HF_HUB_OFFLINE"] == "1" and os.environ["TRANSFORMERS_OFFLINE"] == "1"


def test_cross_encoder_maps_logits_and_probabilities(tmp_path):
    seen = {}

    def loader(path, device, max_length):
        seen.update(path=path, device=device, max_length=max_length)
        return FakeCrossEncoder([2.0, -1.0, 0.0], Identity())

    reranker = CrossEncoderReranker({"model": str(tmp_path), "device": "cpu", "max_length": 256, "batch_size": 8,
                                     "show_progress_bar": True, "top_k": 5}, loader=loader)
    assert seen == {"path": str(tmp_path), "device": "cpu", "max_length": 256}
    assert reranker.rerank("q", ["a", "b", "c"]) == pytest.approx([sigmoid(2.0), sigmoid(-1.0), 0.5])
    pairs, kwargs = reranker._model.calls[0]
    assert pairs == [("q", "a"), ("q", "b"), ("q", "c")]
    assert kwargs == {"batch_size": 8, "show_progress_bar": False, "convert_to_numpy": True}
    assert reranker.rerank("q", []) == []
    probs = CrossEncoderReranker({"model": str(tmp_path)}, loader=lambda *a: FakeCrossEncoder([0.9, 0.1], Sigmoid()))
    assert probs.probabilities and probs.rerank("q", ["a", "b"]) == pytest.approx([0.9, 0.1])


def test_cross_encoder_score_shapes():
    assert to_relevance([[0.8, 0.2], [0.3, 0.7]], 2, True) == pytest.approx([0.2, 0.7])  # last label
    with pytest.raises(ProviderError, match="scores for 3 documents"):
        to_relevance([0.1, 0.2], 3, True)
    with pytest.raises(ProviderError, match="NaN"):
        to_relevance([float("nan")], 1, False)
