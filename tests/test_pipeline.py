"""ask(): dates in the question become the window searched; the answer says what it did."""

from __future__ import annotations

import pytest

from embeddings.indexer import update_index
from embeddings.reader import open_index
from embeddings.store import Filters
from qa.pipeline import ask
from qa.retrieve import Retriever
from qa.settings import Settings

HARBOUR = "title: {title}\ndate: {date}\nsource: Harbour Times\n\nThe harbour board met to decide the ferry timetable. {extra}\n"
EXTRA = ["Members chose a winter timetable after hearing from crews, pilots and island councillors.",
         "A summer timetable was agreed with two extra sailings on Saturdays and a new Sunday service.",
         "Passengers will get a late crossing from June, the chair said, once the new crew is trained."]


@pytest.fixture
def retriever(tmp_path, index_settings, fake_encoder):
    folder = tmp_path / "news"
    folder.mkdir()
    for n, (date, extra) in enumerate(zip(["2018-03-05", "2018-04-30", "2018-05-02"], EXTRA)):
        (folder / f"a{n}.txt").write_text(HARBOUR.format(title=f"Timetable {date}", date=date, extra=extra),
                                          encoding="utf-8")
    update_index([folder], index_settings, fake_encoder)
    index = open_index(index_settings, fake_encoder.identity, fake_encoder.dimension)
    yield Retriever(index, fake_encoder, Settings(index=index_settings, min_evidence=-1.0))
    index.close()


def dates(answer):
    return sorted(s.hit.passage.date for s in answer.sources)


def test_a_named_window_is_searched_and_shown(retriever):
    answer = ask(retriever, "What did the harbour board decide in March 2018?", as_of="2026-11-25")
    assert dates(answer) == ["2018-03-05"]
    assert (answer.window.since, answer.window.until, answer.window.phrase) == ("2018-03-01", "2018-03-31",
                                                                               "in March 2018")
    assert answer.to_dict()["date_window"] == {"since": "2018-03-01", "until": "2018-03-31",
                                               "phrase": "in March 2018", "shifted_from": None}


def test_an_empty_relative_window_is_counted_back_from_the_newest_article(retriever):
    answer = ask(retriever, "What did the harbour board decide last week?", as_of="2026-11-25")
    assert dates(answer) == ["2018-04-30", "2018-05-02"]  # the week up to the newest article
    assert answer.window.label == "2018-04-26 – 2018-05-02"
    assert answer.window.shifted_from == "2026-11-16 – 2026-11-22"
    assert answer.notes == ("Nothing indexed falls in 2026-11-16 – 2026-11-22 (“last week”). The newest article "
                            "is from 2018-05-02, so this searched the same window counted back from it: "
                            "2018-04-26 – 2018-05-02.",)


def test_a_month_without_a_year_is_that_month_before_the_newest_article(retriever):
    answer = ask(retriever, "What did the harbour board decide in March?", as_of="2026-11-25")
    assert answer.window.label == "2018-03-01 – 2018-03-31" and dates(answer) == ["2018-03-05"]
    empty = ask(retriever, "What did the harbour board decide in January?", as_of="2026-11-25")
    assert empty.window is None
    assert empty.notes == ("Nothing indexed falls in 2026-01-01 – 2026-01-31 (“in January”), nor in 2018-01-01 – "
                           "2018-01-31, the same window counted back from the newest article (2018-05-02). These "
                           "are the best matches from any date.",)


def test_an_empty_named_window_says_so_and_answers_from_any_date(retriever):
    answer = ask(retriever, "What did the harbour board decide in March 2025?", as_of="2026-11-25")
    assert answer.window is None and len(answer.sources) == 3
    assert answer.notes == ("Nothing indexed falls in 2025-03-01 – 2025-03-31 (“in March 2025”); the newest article "
                            "is from 2018-05-02. These are the best matches from any date.",)


def test_a_window_that_matches_less_well_than_older_articles_is_not_imposed(tmp_path, index_settings, fake_encoder):
    folder = tmp_path / "mixed"
    folder.mkdir()
    (folder / "ferry.txt").write_text(HARBOUR.format(title="Ferry timetable", date="2018-04-20", extra=EXTRA[0]),
                                      encoding="utf-8")
    (folder / "library.txt").write_text("title: Library wing opens\ndate: 2018-05-02\n\nThe city library "
                                        "opened a new wing with a reading room for children.\n", encoding="utf-8")
    update_index([folder], index_settings, fake_encoder)
    index = open_index(index_settings, fake_encoder.identity, fake_encoder.dimension)
    retriever = Retriever(index, fake_encoder, Settings(index=index_settings, min_evidence=-1.0))
    answer = ask(retriever, "What did the harbour board decide about the ferry timetable yesterday?",
                 as_of="2018-05-03")
    assert answer.window is None and answer.sources[0].hit.passage.title == "Ferry timetable"
    assert answer.notes == ("Articles from 2018-05-02 – 2018-05-02 (“yesterday”) match this less well than older "
                            "ones, so these are the best matches from any date.",)
    index.close()


def test_an_undated_collection_ignores_dates_in_questions_and_says_so(corpus, index_settings, fake_encoder,
                                                                      tmp_path):
    folder = tmp_path / "undated"
    folder.mkdir()
    (folder / "library.md").write_text("# City library opens new wing\n\nThe wing cost 4 million dollars.\n",
                                       encoding="utf-8")
    update_index([folder], index_settings, fake_encoder)
    index = open_index(index_settings, fake_encoder.identity, fake_encoder.dimension)
    retriever = Retriever(index, fake_encoder, Settings(index=index_settings, min_evidence=-1.0))
    answer = ask(retriever, "What did the library wing cost in 2018?", as_of="2026-11-25")
    assert answer.sources and answer.notes == (
        "No indexed article carries a date, so “in 2018” could not narrow the search.",)
    index.close()


def test_dates_set_by_the_user_win_over_dates_in_the_question(retriever):
    answer = ask(retriever, "What did the harbour board decide in March 2018?", as_of="2026-11-25",
                 filters=Filters(since="2018-04-01"))
    assert answer.window is None and "2018-03-05" not in dates(answer)


def test_latest_prefers_the_newest_and_says_when_it_is_old(retriever):
    plain = ask(retriever, "What did the harbour board decide about the timetable?", as_of="2018-03-06")
    latest = ask(retriever, "What did the harbour board decide about the timetable latest?", as_of="2018-03-06")
    assert plain.sources[0].hit.passage.date == "2018-03-05"  # near the day asked
    assert latest.sources[0].hit.passage.date == "2018-05-02"  # the newest, among equally relevant ones
    old = ask(retriever, "What is the latest on the timetable?", as_of="2026-11-25")
    assert old.notes == ("The newest source cited is from 2018-05-02; nothing more recent on this was found.",)


def test_the_answer_names_what_the_question_names_and_no_article_holds(retriever):
    answer = ask(retriever, "Did the Harbour board cancel the Tuesday ferry to Skerryvore?", as_of="2018-05-03")
    assert answer.notes == ("No indexed article mentions “Tuesday” or “Skerryvore”: "
                            "these passages match the rest of the question.",)  # "cancel" is no name
    assert answer.to_dict()["notes"] == list(answer.notes)
    assert ask(retriever, "What did the Harbour board decide about the ferry?", as_of="2018-05-03").notes == ()
    typed = ask(retriever, "did the harbour board cancel the tuesday ferry to skerryvore?", as_of="2018-05-03")
    assert typed.notes == ("No indexed article mentions “skerryvore”: these passages match the rest "
                           "of the question.",)  # no capitals: "tuesday" is a word of the model's vocabulary
    assert ask(retriever, "what did the harbour board decide about the ferry?", as_of="2018-05-03").notes == ()
    new_topic = ask(retriever, "what about skerryvore?", ["What did the Harbour board decide about the ferry?"],
                    as_of="2018-05-03")
    assert new_topic.searched == "what about skerryvore?"  # not folded into the ferry question
    unknown = ask(retriever, "Where is Skerryvore Lighthouse?", as_of="2018-05-03")
    assert unknown.notes == ("No indexed article mentions “Skerryvore” or “Lighthouse”.",)
    dated = ask(retriever, "What did the Harbour board decide in March?", as_of="2018-05-03")
    assert dated.window and dated.notes == ()  # "March" was read as a date, not searched for
    both = ask(retriever, "Did the Harbour board cancel the Skerryvore ferry last week?", as_of="2026-11-25")
    assert both.notes[0].startswith("No indexed article mentions “Skerryvore”")  # before the dates' note
    assert both.notes[1].startswith("Nothing indexed falls in 2026-11-16 – 2026-11-22 (“last week”)")
