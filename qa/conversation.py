"""Make a follow-up question searchable on its own by folding in the previous question.

"Who is backing them?" after "Which alliance launched the final stage against IS?" says
nothing about the alliance; searched alone it finds anything about backing. When a
question leans on the conversation (it has a pronoun or demonstrative, or fewer than three
content words), the previous searched query's content words that the new question lacks
are prepended. The rewritten query is what both retrievers see, and what the user is shown.

>>> contextualize("Who is backing them?", ["Which alliance launched the final stage against IS?"])
'alliance launched final stage IS — Who is backing them?'
"""

from __future__ import annotations

import re

from qa.retrieve import content_words

ANAPHORA = frozenset("""
he him his she her hers it its they them their theirs this that these those there such
former latter
""".split())
_WORD = re.compile(r"[\w']+")
MAX_CARRIED = 8
SEPARATOR = " — "


def needs_context(question: str) -> bool:
    words = [w.lower() for w in _WORD.findall(question)]
    return any(w in ANAPHORA for w in words) or len(content_words(question)) < 3


def contextualize(question: str, previous_queries: list[str]) -> str:
    """The query to search for ``question`` given the queries searched before it (oldest first)."""
    question = question.strip()
    if not previous_queries or not needs_context(question):
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
