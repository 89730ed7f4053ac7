"""Make a follow-up question searchable on its own by folding in the previous question.

"Who is backing them?" after "Which alliance launched the final stage against IS?" says
nothing about the alliance; searched alone it finds anything about backing. When a
question leans on the conversation (it has a pronoun or demonstrative, or fewer than three
content words), the previous searched query's content words that the new question lacks
are prepended. The rewritten query is what both retrievers see, and what the user is shown.

A short question naming something no indexed passage mentions ("What is the capital of
Peru?" after questions about Syria) starts a new topic instead: folded into the Syria
question it would be answered with Syria's capital, while on its own it is "not covered".
A name the archive does hold ("What about Raqqa?") is still read as a follow-up.

>>> contextualize("Who is backing them?", ["Which alliance launched the final stage against IS?"])
'alliance launched final stage IS — Who is backing them?'
"""

from __future__ import annotations

import re
from typing import Callable

from qa.retrieve import content_words

ANAPHORA = frozenset("""
he him his she her hers it its they them their theirs this that these those there such
former latter
""".split())
QUANTITY_WORDS = frozenset({"many", "much"})
_WORD = re.compile(r"[\w']+")
MAX_CARRIED = 8
SEPARATOR = " — "


def needs_context(question: str) -> bool:
    """Whether ``question`` leans on the conversation: a pronoun or demonstrative, or fewer
    than three content words besides "many" and "much" (which ask how many, not about what).

    >>> needs_context("How many planes were grounded?"), needs_context("How many people live in Lima?")
    (True, False)
    """
    words = [w.lower() for w in _WORD.findall(question)]
    topical = [w for w in content_words(question) if w not in QUANTITY_WORDS]
    return any(w in ANAPHORA for w in words) or len(topical) < 3


def names(question: str, is_word: Callable[[str], bool] | None = None) -> list[str]:
    """The capitalised words of ``question`` after its first, lower-cased: what it names
    (``typed_names`` says what stands for them in a question typed without capitals).

    >>> names("What is the capital of Peru? And of the US?")
    ['peru', 'us']
    """
    return [w.lower() for w in typed_names(question, is_word)]


def typed_names(question: str, is_word: Callable[[str], bool] | None = None) -> list[str]:
    """``names`` as typed, each at its first capitalised use.

    A question typed without capitals has no names to tell apart: with ``is_word`` (the
    model's vocabulary: ``WordPieceTokenizer.is_word``), its content words that are not
    whole words of it stand for them.

    >>> typed_names("Did the Harbour board meet the harbour master of Skerryvore?")
    ['Harbour', 'Skerryvore']
    >>> typed_names("did the harbour master meet skerryvore's board?", lambda w: w != "skerryvore")
    ['skerryvore']
    """
    words = content_words(question)
    if is_word is not None and question == question.lower():  # no capitals, so no capitalised names
        return [w for w in words if w.isalpha() and not is_word(w)]
    kept = set(words)
    found: dict[str, str] = {}
    for w in _WORD.findall(question)[1:]:
        if w[0].isupper() and w.lower() in kept:
            found.setdefault(w.lower(), w)
    return list(found.values())


def contextualize(question: str, previous_queries: list[str],
                  indexed: Callable[[list[str]], list[bool]] | None = None,
                  is_word: Callable[[str], bool] | None = None) -> str:
    """The query to search for ``question`` given the queries searched before it (oldest first).

    ``indexed(words)`` says which of ``words`` some indexed passage holds; with it, a question
    naming something none holds is searched as it is. ``is_word``: see ``typed_names``.
    """
    question = question.strip()
    if not previous_queries or not needs_context(question):
        return question
    named = names(question, is_word)
    if indexed is not None and named and not all(indexed(named)):
        return question
    previous = previous_queries[-1].split(SEPARATOR)[0] if SEPARATOR in previous_queries[-1] \
        else previous_queries[-1]
    asked = set(content_words(question))
    keep = {w for w in content_words(previous) if w not in asked}
    carried = [w for w in _WORD.findall(previous) if w.lower() in keep]
    seen, unique = set(), []
    for w in carried:
        if w.lower() not in seen:
            seen.add(w.lower())
            unique.append(w)
    if not unique:
        return question
    return " ".join(unique[:MAX_CARRIED]) + SEPARATOR + question
