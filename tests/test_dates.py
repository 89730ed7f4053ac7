"""Dates in questions become the window searched (relative to the day asked)."""

from __future__ import annotations

import datetime as dt

import pytest

from qa.dates import counted_back, find_window, wants_latest

TODAY = dt.date(2026, 11, 25)  # a Wednesday


@pytest.mark.parametrize("question, since, until, relative", [
    ("What happened yesterday in Syria?", "2026-11-24", "2026-11-24", True),
    ("Any news today?", "2026-11-25", "2026-11-25", True),
    ("What happened last week?", "2026-11-16", "2026-11-22", True),          # the calendar week before
    ("What did the council decide this week?", "2026-11-23", "2026-11-25", True),
    ("Who won the vote last month?", "2026-10-01", "2026-10-31", True),
    ("What changed this month?", "2026-11-01", "2026-11-25", True),
    ("What did the SDF do last year?", "2025-01-01", "2025-12-31", True),
    ("How many storms this year?", "2026-01-01", "2026-11-25", True),
    ("What did the SDF announce in 2018?", "2018-01-01", "2018-12-31", False),
    ("What happened in March 2025?", "2025-03-01", "2025-03-31", False),
    ("What happened in March?", "2026-03-01", "2026-03-31", True),          # the most recent March
    ("What has happened since January?", "2026-01-01", "2026-11-25", True),
    ("What was said before 2019?", None, "2018-12-31", False),
    ("What changed after May 2020?", "2020-06-01", "2026-11-25", False),
    ("What happened on 3 March 2025?", "2025-03-03", "2025-03-03", False),
    ("What was reported on 2024-02-16?", "2024-02-16", "2024-02-16", False),
    ("What happened two weeks ago?", "2026-11-09", "2026-11-15", True),
    ("What happened 10 days ago?", "2026-11-15", "2026-11-15", True),
    ("What happened in the past 3 days?", "2026-11-22", "2026-11-25", True),
    ("What happened during 2016?", "2016-01-01", "2016-12-31", False),
    ("What was known until April 2018?", None, "2018-04-30", False),
    ("How did the March 3, 2025 vote go?", "2025-03-03", "2025-03-03", False),
])
def test_a_date_phrase_becomes_a_window(question, since, until, relative):
    window = find_window(question, TODAY)
    assert (window.since, window.until, window.relative) == (since, until, relative)
    assert window.phrase.lower() in question.lower()


@pytest.mark.parametrize("question", [
    "May I ask who leads the council?",       # "May" the verb is not a month
    "Where does IS still hold villages?",
    "What is the latest on Syria?",          # latest: no window (see wants_latest)
])
def test_no_window_without_a_date(question):
    assert find_window(question, TODAY) is None


@pytest.mark.parametrize("question, latest", [
    ("What is the latest on Syria?", True), ("What are the most recent figures?", True),
    ("Who recently joined the coalition?", True), ("Who leads the council?", False),
])
def test_latest_is_recognised(question, latest):
    assert wants_latest(question) is latest


def test_a_relative_window_is_counted_back_from_the_newest_article_and_a_named_one_is_not():
    last_week = find_window("What happened last week?", TODAY)
    moved = counted_back(last_week, dt.date(2018, 5, 2))
    assert (moved.since, moved.until, moved.shifted_from) == ("2018-04-26", "2018-05-02", "2026-11-16 – 2026-11-22")
    assert counted_back(find_window("in March 2025", TODAY), dt.date(2018, 5, 2)) is None
    assert counted_back(last_week, dt.date(2026, 11, 24)) is None  # the window already reaches it


@pytest.mark.parametrize("phrase, since, until", [
    ("in January", "2024-01-01", "2024-01-31"),     # not the 31 days up to the newest article
    ("since January", "2024-01-01", "2024-02-23"),
    ("on 3 March", "2023-03-03", "2023-03-03"),      # the latest 3 March up to it
    ("in February", "2024-02-01", "2024-02-23"),
])
def test_a_month_named_without_a_year_is_read_again_as_of_the_newest_article(phrase, since, until):
    moved = counted_back(find_window(f"What happened {phrase}?", dt.date(2026, 12, 1)), dt.date(2024, 2, 23))
    assert (moved.since, moved.until) == (since, until)
    assert moved.phrase == phrase and moved.shifted_from
