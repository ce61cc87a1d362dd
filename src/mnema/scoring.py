"""Hybrid relevance: dense cosine and BM25 mapped to [0, 1] and mixed, so a score means the same thing on
every backend and `threshold` is meaningful. Pure functions."""
from __future__ import annotations

import calendar
import re
from dataclasses import dataclass
from datetime import date
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
    """Weights of the evidence behind a score; the defaults come from the LOCOMO ablation in the README."""

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
    half keeps a clear keyword winner from drowning there. LOCOMO: +0.003 R@10, +0.011 R@5 over absolute.
    `dated` (only when the query names a date) maps ids to their date_share."""
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


# ------------------------------------------------------------------ dates named in a query

_MONTH = (r"(jan(?:uary)?|feb(?:ruary)?|mar(?:ch)?|apr(?:il)?|may|june?|july?|aug(?:ust)?|sep(?:t(?:ember)?)?"
          r"|oct(?:ober)?|nov(?:ember)?|dec(?:ember)?)\.?")
_ORD = r"(?:st|nd|rd|th)?"
_DAY_MONTH_YEAR = re.compile(rf"\b(\d{{1,2}}){_ORD}(?:\s+of)?\s+{_MONTH},?\s+(\d{{4}})\b", re.I)
_MONTH_DAY_YEAR = re.compile(rf"\b{_MONTH}\s+(\d{{1,2}}){_ORD},?\s+(\d{{4}})\b", re.I)
_MONTH_YEAR = re.compile(rf"\b{_MONTH},?\s+(\d{{4}})\b", re.I)
_ISO_DAY = re.compile(r"\b(\d{4})-(\d{2})-(\d{2})\b")
_ISO_MONTH = re.compile(r"\b(\d{4})-(\d{2})\b(?!-\d)")
_MONTHS = "jan feb mar apr may jun jul aug sep oct nov dec".split()
DateSpan = tuple[str, str, float]  # first day, last day (ISO), share


def named_dates(query: str) -> list[DateSpan]:
    """The calendar days and months a query names, as (first day, last day, share): a day 1.0, a month 0.5.
    Only absolute dates count; "last week" or "in May" need a reference time and a year search lacks."""
    spans: list[DateSpan] = []
    rest = query
    for pattern, order in ((_DAY_MONTH_YEAR, "dmy"), (_MONTH_DAY_YEAR, "mdy"), (_ISO_DAY, "ymd")):
        for m in pattern.finditer(rest):
            parts = dict(zip(order, m.groups()))
            day = _day(parts["y"], parts["m"], parts["d"])
            if day:
                spans.append((day, day, 1.0))
        rest = pattern.sub(" ", rest)  # a day's month is not named again as a month
    for pattern, order in ((_MONTH_YEAR, "my"), (_ISO_MONTH, "ym")):
        for m in pattern.finditer(rest):
            parts = dict(zip(order, m.groups()))
            first = _day(parts["y"], parts["m"], "1")
            if first:
                last = calendar.monthrange(int(parts["y"]), int(first[5:7]))[1]
                spans.append((first, first[:8] + f"{last:02d}", 0.5))
        rest = pattern.sub(" ", rest)
    return spans


def _day(year: str, month: str, day: str) -> Optional[str]:
    month_no = int(month) if month.isdigit() else _MONTHS.index(month[:3].lower()) + 1
    try:
        return date(int(year), month_no, int(day)).isoformat()
    except ValueError:  # 30 February, month 13
        return None


def date_share(day: str, spans: list[DateSpan]) -> float:
    """How much of the date weight a memory whose event time falls on `day` (ISO) gets."""
    return max((share for first, last, share in spans if first <= day <= last), default=0.0)
