"""Dates a query names, for time-aware search: the days and months it names ("on 7 July, 2023", "in
December 2023", "2023-07-07"), and, when it names none, days relative to today ("yesterday", "3 days
ago", "last week", "this month"). Pure functions; search() passes today's date. A memory whose event time
falls in a span gets that span's share of the date weight (scoring.fuse).
"""
from __future__ import annotations

import calendar
import re
from datetime import date, timedelta
from typing import Optional

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


def named_dates(query: str, today: Optional[date] = None) -> list[DateSpan]:
    """The days and months a query names, as (first day, last day, share): a day 1.0, a week or month 0.5.
    Dates relative to `today` count only when no absolute date is named (in "the week before 3 August,
    2023" the week is that date's, not this one). A month or year alone ("in May") is not matched."""
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
    if not spans and today is not None:
        spans = relative_dates(query, today)
    return spans


_COUNT = r"(\d{1,3}|a|an|one|two|three|four|five|six|seven|eight|nine|ten)"
_NUMBERS = {"a": 1, "an": 1, "one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7,
            "eight": 8, "nine": 9, "ten": 10}
_TODAY = re.compile(r"\btoday\b", re.I)
_YESTERDAY = re.compile(r"\byesterday\b", re.I)
_DAYS_AGO = re.compile(rf"\b{_COUNT}\s+days?\s+ago\b", re.I)
_WEEKS_AGO = re.compile(rf"\b{_COUNT}\s+weeks?\s+ago\b", re.I)
_WEEK = re.compile(r"\b(this|last)\s+week\b", re.I)
_WEEKEND = re.compile(r"\b(this|last)\s+weekend\b", re.I)
_MONTH_REL = re.compile(r"\b(this|last)\s+month\b", re.I)


def relative_dates(query: str, today: date) -> list[DateSpan]:
    """Spans of "today", "yesterday", "N days ago" (a day each), "this/last week", "N weeks ago",
    "this/last month" (calendar weeks from Monday and months, share 0.5) and "this/last weekend"."""
    spans: list[DateSpan] = []

    def day(d: date, share: float = 1.0, last: Optional[date] = None) -> None:
        spans.append((d.isoformat(), (last or d).isoformat(), share))

    def count(word: str) -> int:
        return int(word) if word.isdigit() else _NUMBERS[word.lower()]

    monday = today - timedelta(days=today.weekday())
    for _ in _TODAY.finditer(query):
        day(today)
    for _ in _YESTERDAY.finditer(query):
        day(today - timedelta(days=1))
    for m in _DAYS_AGO.finditer(query):
        day(today - timedelta(days=count(m[1])))
    for m in _WEEKS_AGO.finditer(query):
        start = monday - timedelta(weeks=count(m[1]))
        day(start, 0.5, start + timedelta(days=6))
    for m in _WEEK.finditer(query):
        start = monday if m[1].lower() == "this" else monday - timedelta(weeks=1)
        day(start, 0.5, start + timedelta(days=6))
    for m in _WEEKEND.finditer(query):
        saturday = monday + timedelta(days=5)
        if m[1].lower() == "last" or saturday > today:  # "this weekend" before it comes: the one just gone
            saturday -= timedelta(weeks=1)
        day(saturday, 1.0, saturday + timedelta(days=1))
    for m in _MONTH_REL.finditer(query):
        first = today.replace(day=1)
        if m[1].lower() == "last":
            first = (first - timedelta(days=1)).replace(day=1)
        day(first, 0.5, first.replace(day=calendar.monthrange(first.year, first.month)[1]))
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
