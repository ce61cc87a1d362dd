"""The pure parts of ranking: fusion bounds, relative keyword evidence, actor naming, dates named in a query,
and contextual indexing and the date boost observed through search."""
from datetime import date, datetime, timedelta, timezone

import pytest

from memlane import Memory
from memlane.pipeline import retrieval
from memlane.config import RetrievalConfig
from memlane.query_dates import date_share, named_dates
from memlane.scoring import FusionWeights, fuse, keyword_score, named_actor, query_terms

from conftest import config_for, seed


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


def fused_scores(monkeypatch):
    """Searches return the fused score itself, not its calibration (calibration.py, test_calibration.py)."""
    monkeypatch.setattr(retrieval, "result_scores", lambda query, ranked, n: [s for _, _, s in ranked])


def test_a_reply_is_found_through_the_turn_before_it(memory, monkeypatch):
    # "Yes, twice!" alone says nothing about Japan; contextual indexing makes the question behind it count.
    ids = seed(memory, ["Have you ever been to Japan?", "Yes, twice!", "I bought a new bike today."],
               user_id="ctx")
    calibrated = [h["id"] for h in memory.search("Japan trips", user_id="ctx", limit=3)["results"]]
    fused_scores(monkeypatch)
    scores = {h["id"]: h["score"] for h in memory.search("Japan trips", user_id="ctx", limit=3)["results"]}
    # without contextual indexing the two score alike (fused 0.044 vs 0.038); with it the reply is clearly ahead
    assert scores[ids[1]] > scores[ids[2]] + 0.1
    assert calibrated == sorted(scores, key=lambda i: -scores[i])  # calibration keeps the order


@pytest.mark.parametrize("query, spans", [
    ("What did Gina find on 1 February, 2023?", [("2023-02-01", "2023-02-01", 1.0)]),
    ("the painting shown on October 13th, 2023", [("2023-10-13", "2023-10-13", 1.0)]),
    ("on the 3rd of Sept. 2024", [("2024-09-03", "2024-09-03", 1.0)]),
    ("between 2023-07-07 and 2024-02", [("2023-07-07", "2023-07-07", 1.0), ("2024-02-01", "2024-02-29", 0.5)]),
    ("which class did she start in December 2023?", [("2023-12-01", "2023-12-31", 0.5)]),
    ("in Feb 2023", [("2023-02-01", "2023-02-28", 0.5)]),
    ("on 30 February 2023", []),  # no such day, and not taken as the month either
    ("what did I do in May, or last week, or in 2023?", []),  # no year, relative, a year alone
])
def test_named_dates_are_the_absolute_days_and_months_a_query_names(query, spans):
    assert named_dates(query) == spans


@pytest.mark.parametrize("query, spans", [  # today: Wednesday 2 December 2026
    ("what did I say yesterday?", [("2026-12-01", "2026-12-01", 1.0)]),
    ("what did we plan today", [("2026-12-02", "2026-12-02", 1.0)]),
    ("three days ago", [("2026-11-29", "2026-11-29", 1.0)]),
    ("something from 10 days ago", [("2026-11-22", "2026-11-22", 1.0)]),
    ("last week", [("2026-11-23", "2026-11-29", 0.5)]),  # the calendar week before, Monday to Sunday
    ("this week", [("2026-11-30", "2026-12-06", 0.5)]),
    ("two weeks ago", [("2026-11-16", "2026-11-22", 0.5)]),
    ("last month", [("2026-11-01", "2026-11-30", 0.5)]),
    ("this month", [("2026-12-01", "2026-12-31", 0.5)]),
    ("last weekend", [("2026-11-28", "2026-11-29", 1.0)]),
    ("this weekend", [("2026-11-28", "2026-11-29", 1.0)]),  # on a Wednesday: the one just gone
    # an absolute date anchors the relative words, so they are not read against today
    ("What did Maria do last weekend before April 10, 2023?", [("2023-04-10", "2023-04-10", 1.0)]),
    ("the weekly meeting, an hour ago", []),
])
def test_relative_dates_are_read_against_today(query, spans):
    assert named_dates(query, date(2026, 12, 2)) == spans
    assert named_dates(query) == [s for s in spans if s[0].startswith("2023")]  # no today: absolute only


def test_a_sunday_has_this_weekend_and_january_has_last_december():
    assert named_dates("this weekend", date(2026, 11, 29)) == [("2026-11-28", "2026-11-29", 1.0)]
    assert named_dates("last month", date(2027, 1, 15)) == [("2026-12-01", "2026-12-31", 0.5)]


def test_date_share_is_the_best_span_containing_the_day():
    spans = [("2023-07-01", "2023-07-31", 0.5), ("2023-07-07", "2023-07-07", 1.0)]
    assert [date_share(d, spans) for d in ("2023-07-07", "2023-07-08", "2023-08-01")] == [1.0, 0.5, 0.0]


def test_the_date_weight_counts_only_when_the_query_names_a_date():
    w = FusionWeights()
    dense, keyword = {"a": 0.8, "b": 0.6}, {"b": 2.0}
    plain = fuse(dense, keyword, set(), w)
    undated = FusionWeights(date=0.0)
    assert plain == fuse(dense, keyword, set(), undated)  # scores of undated queries do not change
    dated = fuse(dense, keyword, set(), w, {"a": 0.0, "b": 1.0})
    assert all(0.0 <= s <= 1.0 for s in dated.values())
    assert dated["b"] == pytest.approx((plain["b"] * (w.dense + w.keyword + w.actor) + w.date)
                                       / (w.dense + w.keyword + w.actor + w.date))
    assert fuse({"a": 1.0}, {"a": 1e9}, {"a"}, w, {"a": 1.0})["a"] == pytest.approx(1.0, abs=1e-6)


def test_a_memory_from_the_day_the_query_names_ranks_first(tmp_path):
    def ranked(date_weight):
        config = config_for(tmp_path / f"m{date_weight}.db")
        config.retrieval = RetrievalConfig(date_weight=date_weight)
        with Memory(config) as m:
            m.add("I went hiking in the hills with my friends", user_id="u", infer=False,
                  timestamp="2023-08-01T10:00:00+00:00")
            m.add("We went hiking in the hills", user_id="u", infer=False, timestamp="2023-07-07T18:30:00+00:00")
            return [[r["memory"] for r in m.search(q, user_id="u")["results"]]
                    for q in ("Where did I go hiking with friends on 7 July, 2023?",
                              "Where did I go hiking with friends in July 2023?")]
    on_day, in_month = ranked(0.0)
    assert on_day[0] == in_month[0] == "I went hiking in the hills with my friends"
    on_day, in_month = ranked(FusionWeights.date)
    assert on_day[0] == in_month[0] == "We went hiking in the hills"


def test_a_memory_without_event_time_is_dated_by_when_it_was_stored(memory):
    memory.add("I went hiking in the hills with my friends", user_id="u", infer=False,
               timestamp="2023-08-01T10:00:00+00:00")
    [stored] = memory.add("We went hiking in the hills", user_id="u", infer=False)["results"]  # no event time
    today = datetime.fromisoformat(memory.get(stored["id"])["created_at"])
    query = f"Where did I go hiking with friends on {today.day} {today:%B}, {today.year}?"
    assert memory.search(query, user_id="u")["results"][0]["memory"] == "We went hiking in the hills"


def test_yesterday_is_read_against_the_clock(memory):
    yesterday = datetime.now(timezone.utc) - timedelta(days=1)
    memory.add("I went hiking in the hills with my friends", user_id="u", infer=False,
               timestamp="2023-08-01T10:00:00+00:00")
    memory.add("We went hiking in the hills", user_id="u", infer=False, timestamp=yesterday.isoformat())
    top = memory.search("Where did I go hiking with friends yesterday?", user_id="u")["results"][0]
    assert top["memory"] == "We went hiking in the hills"
