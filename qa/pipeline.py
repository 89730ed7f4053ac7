"""Answer one question end to end: rewrite a follow-up, retrieve, highlight, cite.

This is the single function the CLI, the app and the evaluation share, so what is measured
is what users get.
"""

from __future__ import annotations

import datetime as dt

from embeddings.store import Filters
from qa.answer import Answer, build_answer
from qa.conversation import contextualize
from qa.retrieve import Retriever


def ask(retriever: Retriever, question: str, previous_queries: list[str] | None = None,
        k: int | None = None, filters: Filters = Filters(), as_of: str | None = None) -> Answer:
    """The cited answer to ``question``.

    Args:
        retriever: an opened index with its encoder and settings.
        question: as typed.
        previous_queries: the queries searched earlier in this conversation, oldest first;
            a follow-up that leans on them is rewritten (``Answer.searched`` shows how).
        k: passages to show (default ``settings.k``).
        filters: date range and sources.
        as_of: the day asked (YYYY-MM-DD; default today): articles published near it are
            preferred among about equally relevant ones.
    """
    if not question or not question.strip():
        raise ValueError("the question is empty")
    searched = contextualize(question, list(previous_queries or []))
    as_of = as_of or dt.date.today().isoformat()
    hits = retriever.search(searched, k=k, filters=filters, focus=question, as_of=as_of)
    return build_answer(question, searched, hits, retriever.settings)
