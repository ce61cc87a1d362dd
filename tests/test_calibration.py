"""Calibrated scores (memlane/calibration.py, bench/calibrate.py, docs/benchmarks.md "Calibrated scores"): the
packaged map is monotone and in [0, 1], an exact repeat of a stored memory scores at least 0.9 through
Memory.search, a threshold keeps a prefix of the ranking, and the held-out numbers behind the map exist."""
import json
from pathlib import Path

import numpy as np
import pytest

from memlane import calibration
from memlane.pipeline import retrieval
from memlane.calibration import (NEAR_EXACT_FLOOR, SIZE_CAP, calibrated, load, result_scores, same_words,
                                 scope_size, words)

from conftest import seed

ROOT = Path(__file__).resolve().parent.parent
FACTS = ["I play the violin in a community orchestra", "I am allergic to peanuts and shellfish",
         "My sister lives in Lisbon", "I started learning Japanese last spring. It is hard but fun!",
         "My favourite food is ramen", "I work as a nurse at the city hospital"]
GRID = np.linspace(-0.1, 1.1, 2401)
SIZES = [1, 2, 3, 5, 7, 10, 15, 21, 30, 37, 45, 50, 51, 200, 10_000]


@pytest.mark.parametrize("n", SIZES)
def test_the_map_rises_strictly_and_stays_in_the_unit_interval(n):
    values = np.array([calibrated(r, n) for r in GRID])
    inside = (GRID >= 0) & (GRID <= 1)
    assert np.all(np.diff(values[inside]) > 0)  # strictly: no two fused scores become a tie
    assert np.all((values >= 0) & (values <= 1))
    assert calibrated(-0.5, n) == calibrated(0.0, n) and calibrated(1.5, n) == calibrated(1.0, n)


def test_sizes_between_fitted_ones_mix_their_neighbours_and_larger_ones_use_the_cap():
    assert calibrated(0.6, 10_000) == calibrated(0.6, SIZE_CAP) == calibrated(0.6)
    lo, hi = calibration._SIZES[0], calibration._SIZES[1]
    mid = float(np.sqrt(lo * hi))  # halfway in log(size)
    assert calibrated(0.6, mid) == pytest.approx((calibrated(0.6, lo) + calibrated(0.6, hi)) / 2, abs=1e-12)
    assert calibrated(0.6, 1) == calibrated(0.6, lo)  # below the smallest fitted size: its map


def test_the_packaged_map_is_what_the_benchmark_fitted():
    packaged = json.loads((ROOT / "src" / "memlane" / "_data" / "calibration.json").read_text())
    results = json.loads((ROOT / "bench" / "results" / "calibration.json").read_text())
    assert packaged["sizes"] == results["map"]["sizes"] and packaged["maps"] == results["map"]["maps"]
    assert packaged["model"] == results["chosen"] and packaged["near_exact_floor"] == NEAR_EXACT_FLOOR == 0.9


def test_held_out_numbers_exist_for_every_kind_of_scope_and_threshold():
    results = json.loads((ROOT / "bench" / "results" / "calibration.json").read_text())
    chosen = results["leave_one_out"][results["chosen"]]
    assert set(chosen["per_conversation"]) == set(results["conversations"]) and len(results["conversations"]) == 5
    assert set(chosen["per_partition"]) == {"conversation", "session", "window10", "window5"}
    for part in chosen["per_partition"].values():
        assert part["reliability"] and part["ece"] < 0.02
        for limit in ("10", "50"):
            assert {"0.3", "0.5", "0.7"} <= set(part["thresholds"][limit])
            assert all(row["precision"] is not None and 0 <= row["recall"] <= 1
                       for t, row in part["thresholds"][limit].items() if t != "0.0")
    assert results["near_exact"]["locomo_question_turn_pairs_matched"] == 0  # the floor never touched the fit


@pytest.mark.parametrize("data", [
    {"sizes": [50], "maps": [{"x": [0.0, 0.5, 1.0], "y": [0.0, 0.4, 0.4]}]},  # flat: would create ties
    {"sizes": [50], "maps": [{"x": [0.0, 0.5, 1.0], "y": [0.0, 0.6, 0.5]}]},  # falls: would reorder
    {"sizes": [50], "maps": [{"x": [0.1, 1.0], "y": [0.0, 1.0]}]},            # does not start at 0
    {"sizes": [50], "maps": [{"x": [0.0, 1.0], "y": [0.0, 1.2]}]},            # leaves [0, 1]
    {"sizes": [50, 10], "maps": [{"x": [0.0, 1.0], "y": [0.0, 1.0]}] * 2},    # sizes out of order
    {"sizes": [5, 50], "maps": [{"x": [0.0, 1.0], "y": [0.0, 1.0]}]},         # a size without a map
])
def test_a_map_that_could_reorder_results_is_refused(data):
    with pytest.raises(ValueError):
        load(data)


@pytest.mark.parametrize("query, memory, actor, same", [
    ("I am allergic to peanuts", "I am allergic to peanuts", None, True),
    ("i am ALLERGIC to peanuts!!", "I am allergic to peanuts.", None, True),
    ("Thanks, Mel!", "Caroline: Thanks, Mel!", "Caroline", True),
    ("Caroline: Thanks, Mel!", "Thanks, Mel!", "Caroline", True),
    ("Thanks, Mel!", "Caroline: Thanks, Mel!", None, False),   # the prefix counts unless it names the actor
    ("I am allergic to peanuts", "I am allergic to peanuts and shellfish", None, False),
    ("allergic I am to peanuts", "I am allergic to peanuts", None, False),  # same words, another order
    ("?!", "...", None, False),                                  # no words at all is not a match
])
def test_near_exact_means_the_same_words_in_the_same_order(query, memory, actor, same):
    assert same_words(words(query), memory, actor) is same


def test_result_scores_raise_near_exact_matches_but_never_above_the_result_before():
    raws = [0.62, 0.55, 0.30]
    plain = result_scores("what do I play?", [("I play the violin", None, r) for r in raws], 50)
    assert plain == [calibrated(r, 50) for r in raws]
    exact_first = result_scores("I play the violin", [("I play the violin", None, 0.62),
                                                      ("I play chess", None, 0.55)], 50)
    assert exact_first[0] == pytest.approx(NEAR_EXACT_FLOOR + (1 - NEAR_EXACT_FLOOR) * calibrated(0.62, 50))
    assert exact_first[1] == calibrated(0.55, 50)
    exact_second = result_scores("I play the violin", [("I play the violin in a band", None, 0.62),
                                                       ("I play the violin", None, 0.55)], 50)
    assert exact_second[1] == exact_second[0] == calibrated(0.62, 50)  # capped: the order is the ranking's


def test_scope_size_is_the_candidate_count_until_the_pool_fills():
    assert scope_size(4, 50) == 4 and scope_size(49, 200) == 49
    assert scope_size(50, 50) == SIZE_CAP and scope_size(120, 200) == SIZE_CAP and scope_size(90, 80) == SIZE_CAP


def fused_scores(monkeypatch):
    monkeypatch.setattr(retrieval, "result_scores", lambda query, ranked, n: [s for _, _, s in ranked])


@pytest.mark.parametrize("extra", [0, 60])  # a scope of 6 memories, and one of 66
def test_an_exact_repeat_of_a_stored_memory_scores_at_least_0_9(memory, extra):
    filler = [f"Note {i}: the {w} meeting moved to room {i}" for i, w in
              zip(range(extra), ["budget", "design", "hiring", "review", "planning", "launch"] * 10)]
    ids = seed(memory, FACTS + filler, user_id="u")
    for mid, fact in zip(ids, FACTS):
        for query in (fact, fact.upper().rstrip("!").replace(".", " ,")):
            hits = memory.search(query, user_id="u")["results"]
            assert hits[0]["id"] == mid and hits[0]["score"] >= 0.9, (query, hits[0])
            assert all(h["score"] < 0.9 for h in hits[1:])
            kept = memory.search(query, user_id="u", threshold=0.5)["results"]
            assert kept and kept[0]["id"] == mid  # mem0's threshold keeps the exact match


def test_calibration_never_changes_the_order_and_a_threshold_keeps_a_prefix(memory, monkeypatch):
    seed(memory, FACTS, user_id="u")
    queries = ["What am I allergic to?", "Where does my sister live?", "music", "food", "hospital job",
               FACTS[0]]
    calibrated_runs = {q: memory.search(q, user_id="u")["results"] for q in queries}
    fused_scores(monkeypatch)
    for q in queries:
        fused = memory.search(q, user_id="u")["results"]
        assert [h["id"] for h in calibrated_runs[q]] == [h["id"] for h in fused]
        scores = [h["score"] for h in calibrated_runs[q]]
        assert scores == sorted(scores, reverse=True) and all(0 <= s <= 1 for s in scores)
    monkeypatch.undo()
    for q in queries:
        full = calibrated_runs[q]
        for cut in (0.0, 0.3, 0.5, 0.7, 0.9, 1.0):
            kept = memory.search(q, user_id="u", threshold=cut)["results"]
            assert [h["id"] for h in kept] == [h["id"] for h in full if h["score"] >= cut]
            assert [h["id"] for h in kept] == [h["id"] for h in full][:len(kept)]


def test_a_relevant_memory_in_a_small_scope_is_scored_as_likely_not_near_zero(memory):
    seed(memory, FACTS, user_id="u")
    top = memory.search("What am I allergic to?", user_id="u")["results"]
    assert top[0]["memory"] == FACTS[1] and top[0]["score"] > 10 * top[1]["score"]
