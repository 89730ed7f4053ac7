"""Dates in questions: "last week", "in March 2025", "since January", "latest" become a window.

A phrase is found by its shape (a relative expression, a month or day with an optional
year, an ISO date, a year, each with the preposition before it); what it means is left to
``dateparser``, relative to the day the question is asked, which also says whether it names
a day, a week, a month or a year. The preposition turns that span into the window searched:

>>> import datetime as dt
>>> find_window("What happened in March 2025?", dt.date(2026, 11, 25)).label
'2025-03-01 – 2025-03-31'
>>> find_window("Any news since January?", dt.date(2026, 11, 25)).label
'2026-01-01 – 2026-11-25'

"Latest", "most recent", "newest", "recently" set no window; ``wants_latest`` tells the
caller to prefer the newest sources among equally relevant ones.
"""

from __future__ import annotations

import calendar
import datetime as dt
import functools
import re
from dataclasses import dataclass, replace

MONTH_NAMES = ("january", "february", "march", "april", "may", "june", "july", "august", "september",
               "october", "november", "december")
_MONTHS = "|".join(MONTH_NAMES) + "|jan|feb|mar|apr|jun|jul|aug|sep|sept|oct|nov|dec"
_NUMBER = r"(?:\d+|a|an|one|two|three|four|five|six|seven|eight|nine|ten|a few|few)"
_UNIT = r"(?:day|week|month|year)s?"
_ORDINAL = r"\d{1,2}(?:st|nd|rd|th)?"
_PREPOSITION = r"(?:(in|during|on|since|before|after|from|until|till|by|as of|over)\s+(?:the\s+)?)?"
_RELATIVE = (rf"yesterday|today|tonight|this (?:week|month|year)|last (?:week|month|year)|"
             rf"{_NUMBER} {_UNIT} ago|(?:past|last) {_NUMBER} {_UNIT}")
_ABSOLUTE = (rf"(?:{_ORDINAL} )?(?:{_MONTHS})\.?(?: {_ORDINAL})?(?:,? (?:19|20)\d{{2}})?|"
             r"\d{4}-\d{2}-\d{2}|(?:19|20)\d{2}")
_PHRASE = re.compile(rf"\b{_PREPOSITION}({_RELATIVE}|{_ABSOLUTE})\b", re.IGNORECASE)
_LATEST = re.compile(r"\b(latest|most recent|newest|most recently|recently|lately)\b", re.IGNORECASE)
_HAS_YEAR = re.compile(r"(?:19|20)\d{2}")
_NAMES_MONTH = re.compile(rf"\b(?:{_MONTHS})\b", re.IGNORECASE)
_WORDS = {"a": 1, "an": 1, "one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7,
          "eight": 8, "nine": 9, "ten": 10, "a few": 3, "few": 3}


@dataclass(frozen=True)
class DateWindow:
    """The days a question asks about (either end may be open)."""

    since: str | None        # YYYY-MM-DD
    until: str | None
    phrase: str              # as written in the question
    relative: bool           # counted from the day asked (so it can be counted from another day)
    shifted_from: str | None = None  # the window first asked for, when this one was counted back

    @property
    def label(self) -> str:
        return f"{self.since or '…'} – {self.until or '…'}"

    def to_dict(self) -> dict:
        return {"since": self.since, "until": self.until, "phrase": self.phrase,
                "shifted_from": self.shifted_from}


def wants_latest(question: str) -> bool:
    """Whether the question asks for the newest news ("latest", "most recent", ...)."""
    return bool(_LATEST.search(question))


def without_dates(question: str, window: DateWindow | None) -> str:
    """``question`` less the words read as dates: the window's phrase and "latest".

    >>> without_dates("What is the latest on the ferry since May 2?", find_window("since May 2", dt.date(2026, 5, 9)))
    'What is the   on the ferry  ?'
    """
    text = question.replace(window.phrase, " ") if window else question
    return _LATEST.sub(" ", text)


def find_window(question: str, today: dt.date) -> DateWindow | None:
    """The date window a phrase in ``question`` names, counted from ``today``; None if none."""
    for match in _PHRASE.finditer(question):
        preposition, phrase = (match.group(1) or "").lower(), match.group(2)
        bare_month = re.fullmatch(rf"(?:{_MONTHS})\.?", phrase, re.IGNORECASE)
        if bare_month and not preposition:
            continue  # "may" is usually a verb; "in May" is a month
        span = _span(phrase, today)
        if span is None:
            continue
        start, end = span
        if preposition == "since" or preposition == "from":
            start, end = start, today
        elif preposition == "after":
            start, end = end + dt.timedelta(days=1), today
        elif preposition == "before":
            start, end = None, start - dt.timedelta(days=1)
        elif preposition in ("until", "till", "by"):
            start = None
        if end is not None and end > today:
            end = today  # nothing is published tomorrow
        relative = not _HAS_YEAR.search(phrase)
        return DateWindow(start.isoformat() if start else None, end.isoformat() if end else None,
                          match.group(0).strip(), relative)
    return None


def counted_back(window: DateWindow, newest: dt.date) -> DateWindow | None:
    """The same window moved back so that it ends on ``newest`` (the newest article's day),
    for an archive of old news: "what happened last week?" then means the week up to its
    newest article. A month named without a year ("in January", "since March 3") is read
    again as of ``newest``: the latest such month up to it, still a calendar month. None for
    a window named by its dates ("in March 2025") or one that already reaches ``newest``.

    >>> counted_back(find_window("What happened in January?", dt.date(2026, 12, 1)), dt.date(2024, 2, 23)).label
    '2024-01-01 – 2024-01-31'
    """
    if not window.relative or window.until is None or dt.date.fromisoformat(window.until) <= newest:
        return None
    if _NAMES_MONTH.search(window.phrase):
        moved = find_window(window.phrase, newest)
        return replace(moved, shifted_from=window.label) if moved else None
    shift = dt.date.fromisoformat(window.until) - newest
    since = (dt.date.fromisoformat(window.since) - shift).isoformat() if window.since else None
    return replace(window, since=since, until=newest.isoformat(), shifted_from=window.label)


@functools.lru_cache(maxsize=8)
def _parser(today: dt.date):
    from dateparser.date import DateDataParser

    base = dt.datetime.combine(today, dt.time(12))
    return DateDataParser(languages=["en"], settings={"RELATIVE_BASE": base, "PREFER_DATES_FROM": "past"})


def _span(phrase: str, today: dt.date) -> tuple[dt.date, dt.date] | None:
    """The first and last day ``phrase`` names, counted from ``today``."""
    text = " ".join(phrase.lower().split())
    if text == "tonight":
        return today, today
    within = re.fullmatch(rf"(?:past|last) ({_NUMBER}) ({_UNIT})", text)  # "the past 3 days": up to today
    if within:
        count = int(within.group(1)) if within.group(1).isdigit() else _WORDS[within.group(1)]
        start = _parse(f"{count} {within.group(2)} ago", today)
        return (start[0], today) if start else None
    parsed = _parse(text, today)
    if parsed is None:
        return None
    day, period = parsed
    if period == "year":
        start, end = dt.date(day.year, 1, 1), dt.date(day.year, 12, 31)
    elif period == "month":
        start = day.replace(day=1)
        end = day.replace(day=calendar.monthrange(day.year, day.month)[1])
    elif period == "week":
        start = day - dt.timedelta(days=day.weekday())
        end = start + dt.timedelta(days=6)
    else:
        start = end = day
    return start, end


def _parse(text: str, today: dt.date) -> tuple[dt.date, str] | None:
    """``dateparser``'s reading of ``text``: a day in it and what it names (day/week/month/year)."""
    data = _parser(today).get_date_data(text)
    if data is None or data.date_obj is None:
        return None
    return data.date_obj.date(), data.period or "day"
