"""The pure parts of ranking: fusion bounds, relative keyword evidence, actor naming, and contextual
indexing observed through search."""
import pytest

from mnema.scoring import FusionWeights, fuse, keyword_score, named_actor, query_terms

from conftest import seed


def test_fused_scores_stay_in_unit_interval_and_order_by_evidence():
    w = FusionWeights()
    scores = fuse({"a": 1.7, "b": -0.3, "c": 0.5}, {"a": 1e9, "c": 3.0, "d": 0.5}, {"a", "d"}, w)
    assert set(scores) == {"a", "b", "c", "d"}
    assert all(0.0 <= s <= 1.0 for s in scores.values())
    assert scores["a"] == pytest.approx(1.0, abs=1e-6)  # every kind of evidence at its maximum
    assert scores["b"] == 0.0  # negative cosine, no keyword, no actor
    assert scores["a"] > scores["c"] > scores["b"]


def test_best_keyword_match_counts_even_when_bm25_is_small():
    # In a small scope BM25 values are small; the relative half keeps the one real keyword hit ahead.
    w = FusionWeights()
    small = fuse({"hit": 0.10, "miss": 0.30}, {"hit": 0.7}, set(), w)
    absolute_only = w.keyword * 0.5 * keyword_score(0.7, w) / (w.dense + w.keyword + w.actor)
    assert small["hit"] > small["miss"]
    assert small["hit"] - w.dense * 0.10 / (w.dense + w.keyword + w.actor) > absolute_only


def test_named_actor_needs_exactly_one_speaker_named_as_a_word():
    actors = {"Caroline", "Melanie", "Jo Ann"}
    assert named_actor("When did Melanie paint a sunrise?", actors) == "Melanie"
    assert named_actor("what did jo ann say", actors) == "Jo Ann"
    assert named_actor("Did Caroline and Melanie meet?", actors) is None
    assert named_actor("Carolines plans", actors) is None


def test_query_terms_drop_function_words_and_repeats():
    assert query_terms("Where did I go when I went to Lisbon, Lisbon?") == ["go", "went", "lisbon"]


def test_a_reply_is_found_through_the_turn_before_it(memory):
    # "Yes, twice!" alone says nothing about Japan; contextual indexing makes the question behind it count.
    ids = seed(memory, ["Have you ever been to Japan?", "Yes, twice!", "I bought a new bike today."],
               user_id="ctx")
    scores = {h["id"]: h["score"] for h in memory.search("Japan trips", user_id="ctx", limit=3)["results"]}
    # without contextual indexing the two score alike (0.044 vs 0.038); with it the reply is clearly ahead
    assert scores[ids[1]] > scores[ids[2]] + 0.1
