"""Answer one question end to end: rewrite a follow-up, read its dates, retrieve, highlight, cite.

This is the single function the CLI and the app share. ``qa eval`` scores the same search and
answer (``Retriever.search``, ``cited_answer``) with each question's own date filter; how
reading dates from questions moves the figures is measured separately (docs/evaluation.md).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import replace

from embeddings.store import Filters
from qa import entities
from qa.answer import Answer, build_answer
from qa.conversation import contextualize, typed_names
from qa.dates import DateWindow, counted_back, find_window, wants_latest, without_dates
from qa.retrieve import Retriever, content_words


def ask(retriever: Retriever, question: str, previous_queries: list[str] | None = None,
        k: int | None = None, filters: Filters = Filters(), as_of: str | None = None,
        read_dates: bool = True) -> Answer:
    """The cited answer to ``question``.

    Args:
        retriever: an opened index with its encoder and settings.
        question: as typed.
        previous_queries: the queries searched earlier in this conversation, oldest first;
            a follow-up that leans on them is rewritten (``Answer.searched`` shows how).
        k: passages to show (default ``settings.k``).
        filters: date range and sources. A date range given here wins over dates in the
            question.
        as_of: the day asked (YYYY-MM-DD; default today): articles published near it are
            preferred among about equally relevant ones, and dates in the question ("last
            week") are counted from it.
        read_dates: turn dates in the question into the date range searched (``qa.dates``).
            When nothing indexed falls in a relative window, the same window counted back
            from the newest article is searched instead. When the window's best passages
            match less well than the best from any date (by more than
            ``settings.window_margin``), the answer comes from any date: an article's date
            is when it was published, not when what it tells happened, and a hard filter
            lost answers on news questions ("this week" asked of a week's quiz:
            docs/evaluation.md). The answer says what it did. "Latest" prefers the newest.

    When no indexed article holds a name the question holds, a note says so (``missing_note``).

    The one-line answer is chosen from the top ``settings.answer_sources`` passages whatever
    ``k`` is, so showing fewer or more passages does not change it.
    """
    if is_blank(question):
        raise ValueError("the question is empty")
    shown = k or retriever.settings.k
    depth = max(shown, retriever.settings.answer_sources)
    as_of = as_of or dt.date.today().isoformat()
    window = None
    if read_dates and not (filters.since or filters.until):
        window = find_window(question, dt.date.fromisoformat(as_of))
    answer = _answer(retriever, question, previous_queries, depth, filters, as_of, window, read_dates).shown(shown)
    note = missing_note(retriever, without_dates(question, window) if read_dates else question)
    return replace(answer, notes=(note,) + answer.notes) if note else answer  # first: it says most


def is_blank(question: str | None) -> bool:
    """True when ``question`` holds no letter or digit (empty, spaces, punctuation,
    control or zero-width characters): there is nothing to search for.

    >>> is_blank(" \\x00\\u200b?"), is_blank("Who won?")
    (True, False)
    """
    return not question or not any(ch.isalnum() for ch in question)


def missing_note(retriever: Retriever, question: str) -> str | None:
    """What the reader should know when no indexed article holds a name the question holds
    (a capitalised word after its first: "Houthis", or a misspelling such as "Merceds"): the
    passages then match only the rest of the question. None when every name is indexed.

    Names only: a common word missing from a small archive ("still") says little. In a
    question typed without capitals the words that are not whole words of the model's
    vocabulary stand for names ("houthis", "goverment": ``typed_names``).
    """
    named = typed_names(question, retriever.encoder.tokenizer.is_word)
    missing = [w for w, held in zip(named, retriever.indexed(named)) if not held]
    return _missing_text(missing, len(content_words(question))) if missing else None


def _missing_text(missing: list[str], words: int) -> str:
    """The note naming ``missing`` (as typed), of a question with ``words`` content words.

    >>> _missing_text(["Houthis"], 3)
    'No indexed article mentions “Houthis”: these passages match the rest of the question.'
    >>> _missing_text(["Skerryvore", "Bedigo"], 2)
    'No indexed article mentions “Skerryvore” or “Bedigo”.'
    """
    named = ", ".join(f"“{w}”" for w in missing[:-1]) + (" or " if len(missing) > 1 else "") + f"“{missing[-1]}”"
    rest = ": these passages match the rest of the question." if len(missing) < words else "."
    return f"No indexed article mentions {named}{rest}"


def _answer(retriever: Retriever, question: str, previous_queries: list[str] | None, k: int,
            filters: Filters, as_of: str, window: DateWindow | None, read_dates: bool) -> Answer:
    """``ask`` with ``k`` sources, all of which the one-line answer reads; ``window``: the
    dates the question names."""
    searched = contextualize(question, list(previous_queries or []), retriever.indexed,
                             retriever.encoder.tokenizer.is_word)
    if window is None:
        latest = read_dates and wants_latest(question)
        newest = retriever.index.store.newest_date(filters) if latest else None
        hits = retriever.search(searched, k=k, filters=filters, focus=question, as_of=newest or as_of)
        answer = cited_answer(retriever, question, searched, hits)
        cited = max((s.hit.passage.date for s in answer.sources if s.hit.passage.date), default=None)
        stale = dt.date.fromisoformat(as_of) - dt.timedelta(days=retriever.settings.recency_days)
        if latest and cited and cited < stale.isoformat():
            answer = replace(answer, notes=(f"The newest source cited is from {cited}; nothing more recent "
                                            f"on this was found.",))
        return answer
    everywhere = retriever.search(searched, k=k, filters=filters, focus=question, as_of=as_of)
    within = _search_in(retriever, searched, question, k, filters, window, as_of)
    notes = []
    if not within:
        newest = retriever.index.store.newest_date(filters)
        if newest is None:
            notes.append(f"No indexed article carries a date, so “{window.phrase}” could not narrow the search.")
            return replace(cited_answer(retriever, question, searched, everywhere), notes=tuple(notes))
        moved = counted_back(window, dt.date.fromisoformat(newest))
        within = _search_in(retriever, searched, question, k, filters, moved, as_of) if moved else []
        if not within:
            tried = (f", nor in {moved.label}, the same window counted back from the newest article ({newest})"
                     if moved else f"; the newest article is from {newest}")
            notes.append(f"Nothing indexed falls in {window.label} (“{window.phrase}”){tried}. "
                         f"These are the best matches from any date.")
            return replace(cited_answer(retriever, question, searched, everywhere), notes=tuple(notes))
        notes.append(f"Nothing indexed falls in {window.label} (“{window.phrase}”). The newest article is from "
                     f"{newest}, so this searched the same window counted back from it: {moved.label}.")
        window = moved
    if _best(within) < _best(everywhere) - retriever.settings.window_margin:
        notes.append(f"Articles from {window.label} (“{window.phrase}”) match this less well than older ones, "
                     f"so these are the best matches from any date.")
        return replace(cited_answer(retriever, question, searched, everywhere), notes=tuple(notes))
    answer = cited_answer(retriever, question, searched, within)
    return replace(answer, window=window, notes=tuple(notes))


def cited_answer(retriever: Retriever, question: str, searched: str, hits) -> Answer:
    """``build_answer`` with what the retriever knows: its encoder (for the asked kind) and the
    question's words in its index (for distinctive coverage), and the entity tagger (for the
    asked type). ``qa eval`` quotes through this too."""
    return build_answer(question, searched, hits, retriever.settings, retriever.encoder.encode,
                        retriever.query_terms(question), entities.tag)


def _best(hits) -> float:
    """What a date window is judged by: the best relevance among the top three."""
    return max((h.relevance for h in hits[:3]), default=0.0)


def _search_in(retriever: Retriever, searched: str, question: str, k: int | None, filters: Filters,
               window: DateWindow, as_of: str):
    dated = replace(filters, since=window.since, until=window.until)
    return retriever.search(searched, k=k, filters=dated, focus=question, as_of=as_of)
