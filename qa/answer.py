"""Turn ranked hits into a cited answer: numbered sources, highlighted sentences, a one-line quote.

Nothing here is generated: the one-line answer quotes the best sentence of the top few passages,
and each source shows its passage with the sentence(s) that best answer the question marked
by offsets into the passage. When the best evidence is below ``Settings.min_evidence`` the
answer says the articles don't seem to cover the question and shows the nearest passages
only as "closest matches".
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field, replace

import numpy as np

from qa.dates import MONTH_NAMES, DateWindow
from qa.entities import asked_kind, asked_types, names_asked
from qa.retrieve import STOPWORDS, Hit, QueryTerms
from qa.settings import Settings

NOT_COVERED = "The indexed articles don't seem to cover this."
HIGHLIGHT_MARGIN = 0.05  # other sentences within this cosine of a passage's best are marked too

_WORD = re.compile(r"\w+(?:['’.-]\w+)*")
_ASKS_WHO = re.compile(r"\bwho(?:m|se)?\b", re.IGNORECASE)
_ASKS_WHEN = re.compile(r"\bwhen\b|\b(?:what|which) (?:year|month|day|date)\b", re.IGNORECASE)
_YEAR = re.compile(r"(?:1\d|20)\d\d")
_MONTHS = frozenset(MONTH_NAMES)
_WEEKDAYS = frozenset("monday tuesday wednesday thursday friday saturday sunday".split())
_NOT_NAMES = _MONTHS | _WEEKDAYS
KIND_FLOOR = 0.2  # a name's cosine to the asked kind counts only above this (about what unrelated pairs get)
HEADLINE_WORDS = 5  # a title this long reports something; a shorter one names a topic ("Genghis Khan")
Tagger = Callable[[list[str]], "list[list[tuple[str, str]]] | None"]  # qa.entities.tag: (text, label) per text


@dataclass(frozen=True)
class Source:
    """A numbered citation: the passage shown and the spans of it to highlight."""

    number: int
    hit: Hit
    highlights: tuple[tuple[int, int], ...]  # offsets within hit.passage.text

    def segments(self) -> list[tuple[str, bool]]:
        """The passage text cut into ``(text, highlighted)`` pieces, in order.

        >>> from types import SimpleNamespace as N
        >>> Source(1, N(passage=N(text="One. Two. Three.")), ((5, 9),)).segments()
        [('One. ', False), ('Two.', True), (' Three.', False)]
        """
        text, cursor, parts = self.hit.passage.text, 0, []
        for a, b in self.highlights:
            if a > cursor:
                parts.append((text[cursor:a], False))
            parts.append((text[a:b], True))
            cursor = b
        if cursor < len(text):
            parts.append((text[cursor:], False))
        return parts

    @property
    def also_line(self) -> str:
        """``also published by: AP (https://…), Reuters (2018-05-03)``, or "" for a story
        only one outlet carried."""
        names = []
        for m in self.hit.also:
            name = m.source or (m.title if len(m.title) <= 60 else m.title[:59].rstrip() + "…")
            names.append(f"{name} ({m.url or m.date})" if (m.url or m.date) else name)
        return f"also published by: {', '.join(names)}" if names else ""

    @property
    def label(self) -> str:
        """``Title (2018-05-02)`` as shown next to the citation number."""
        p = self.hit.passage
        return f"{p.title} ({p.date})" if p.date else p.title


@dataclass(frozen=True)
class Answer:
    """What the user sees for one question."""

    question: str
    searched: str                 # the query actually searched (differs for rewritten follow-ups)
    covered: bool
    text: str                     # the one-line answer, or NOT_COVERED
    sources: tuple[Source, ...] = field(default_factory=tuple)
    window: DateWindow | None = None  # the dates searched, when the question named some
    notes: tuple[str, ...] = ()       # what the reader should know: the dates searched, words no article holds
    quoted: int | None = None         # the number of the source the one-line answer quotes
    quote: str = ""                   # the quoted sentence alone, without quotation marks or citation

    def shown(self, k: int) -> "Answer":
        """This answer with its first ``k`` sources, and the quoted one when it comes later."""
        return replace(self, sources=self.sources[:max(k, self.quoted or 0)])

    def to_dict(self) -> dict:
        return {
            "question": self.question,
            "searched": self.searched,
            "covered": self.covered,
            "answer": self.text,
            "quoted_source": self.quoted,
            "quote": self.quote,
            "date_window": self.window.to_dict() if self.window else None,
            "notes": list(self.notes),
            "sources": [{
                "number": s.number,
                "title": s.hit.passage.title,
                "date": s.hit.passage.date,
                "source": s.hit.passage.source,
                "url": s.hit.passage.url,
                "path": s.hit.passage.path,
                "article_id": s.hit.passage.article_id,
                "passage_id": s.hit.passage.id,
                "start": s.hit.passage.start,
                "end": s.hit.passage.end,
                "text": s.hit.passage.text,
                "highlights": [{"start": a, "end": b, "text": s.hit.passage.text[a:b]}
                               for a, b in s.highlights],
                "scores": {"final": s.hit.score, "dense": s.hit.dense, "lexical": s.hit.lexical,
                           "sentence": s.hit.relevance},
                "story": s.hit.passage.story,
                "also_published_by": [{"title": m.title, "date": m.date, "source": m.source, "url": m.url,
                                       "article_id": m.id} for m in s.hit.also],
            } for s in self.sources],
        }


def best_evidence(hits: list[Hit]) -> float:
    """What the "not covered" rule reads: the best ``Hit.evidence`` among the top three."""
    return max((h.evidence for h in hits[:3]), default=0.0)


def is_covered(hits: list[Hit], settings: Settings) -> bool:
    """True when one of the top three hits has a sentence good enough to be called an answer
    (``best_evidence`` at least ``settings.min_evidence``)."""
    return bool(hits) and best_evidence(hits) >= settings.min_evidence


def build_answer(question: str, searched: str, hits: list[Hit], settings: Settings,
                 encode: Callable[[list[str]], np.ndarray] | None = None,
                 terms: QueryTerms | None = None, tag: Tagger | None = None) -> Answer:
    """Number the hits in order, mark their best sentences and quote the best of the top few.

    Args:
        question: as the user typed it.
        searched: the query that produced ``hits``.
        hits: ranked passages, best first, each with its sentences' scores; all are sources,
            and the one-line answer reads the first ``settings.answer_sources`` of them.
        settings: ``min_evidence`` decides between an answer and "not covered".
        encode: the encoder's ``encode`` (unit vectors), for the asked-kind evidence of
            ``answer_sentence``; without it that evidence is left out.
        terms: the question's words in this index (``Retriever.query_terms``), for the
            distinctive coverage of ``answer_sentence``; without them each sentence's stored
            coverage is used.
        tag: a named-entity tagger (``qa.entities.tag``), for the asked-type evidence of
            ``answer_sentence``; without it that evidence is left out.
    """
    sources = []
    for n, hit in enumerate(hits, start=1):
        scored = list(zip(hit.passage.sentences, hit.sentences))
        best = max((s for _, s in scored), default=0.0)
        floor = max(best - HIGHLIGHT_MARGIN, min(best, settings.min_evidence))
        marked = tuple(span for span, s in scored if s >= floor)
        sources.append(Source(n, hit, marked))
    covered = is_covered(hits, settings)
    if not covered:
        return Answer(question, searched, False, NOT_COVERED, tuple(sources))
    number, span = answer_sentence(sources[:settings.answer_sources], settings, question, encode, terms, tag)
    source = sources[number - 1]
    if span is None:
        quote = source.hit.passage.text
    else:
        quote = source.hit.passage.text[span[0]:span[1]]
        if span not in source.highlights:  # the quoted sentence is always marked where it is cited
            sources[number - 1] = Source(number, source.hit, tuple(sorted(source.highlights + (span,))))
    quote = " ".join(quote.split())
    return Answer(question, searched, True, f"“{quote}” [{number}]", tuple(sources), quoted=number, quote=quote)


def answer_sentence(sources: list[Source], settings: Settings, question: str = "",
                    encode: Callable[[list[str]], np.ndarray] | None = None,
                    terms: QueryTerms | None = None,
                    tag: Tagger | None = None) -> tuple[int, tuple[int, int] | None]:
    """The source number and span of the sentence the one-line answer quotes (``(1, None)``,
    the whole top passage, when no passage has sentences).

    Each sentence of the top ``answer_passages`` passages is scored by its cosine, plus
    ``answer_lexical`` x its coverage of the question's words (``distinctive_coverage``
    when ``terms`` are given: the words every candidate holds count less), plus ``answer_type`` x
    ``answer_type_cue``, plus two kinds of evidence about the names it holds that the
    question lacks (``sentence_names``), the answer a reader would look for:

    - ``answer_kind`` x how well its best name fits what a "which X" / "what X" question asks
      for (the cosine of the name to X above ``KIND_FLOOR``: "Botswana" to "African
      country"), which needs ``encode``;
    - ``answer_redundancy`` x how many of all the sources' articles name its most repeated
      name (0 for one article, 1 for five or more): the answer to a news question is
      usually reported by more than one story;
    - ``answer_headline`` x the share of the sources whose headline names one of its names
      (``_headline_agreement``): a news headline states what happened ("Florida six-week
      abortion ban to start as state Supreme Court clears ...");
    - ``answer_entity`` x whether it names an entity of the type the question asks for (a
      person, team or group for "who", a place for "where" or "which country", a date, a
      number: ``qa.entities.asked_types``) with a word the question lacks; needs ``tag``.

    Only sentences that could still win once these are added have their names encoded or
    tagged.
    See docs/evaluation.md for what each term gives.
    """
    asked = {_plain(w) for w in _WORD.findall(question)}
    common = {w for s in sources for w in _WORD.findall(s.hit.passage.text) if w.islower()}
    named = sources if settings.answer_redundancy else sources[:settings.answer_passages]
    names_of = {s.number: [sentence_names(s.hit.passage.text[a:b], asked, common)  # per sentence, once
                           for a, b in s.hit.passage.sentences or ((0, len(s.hit.passage.text)),)]
                for s in named}
    where, names, scores, texts = [], [], [], []  # per candidate sentence: (source number, span), names, score, text
    stored, found = [], []  # per candidate sentence: its stored coverage, the question words it holds
    for source in sources[:settings.answer_passages]:
        hit = source.hit
        coverage = hit.sentence_coverage or (0.0,) * len(hit.sentence_cosines)
        holds = terms.found(hit.passage.text, hit.passage.sentences) if terms is not None else None
        for n, (span, cos, words) in enumerate(zip(hit.passage.sentences, hit.sentence_cosines, coverage)):
            sentence = hit.passage.text[span[0]:span[1]]
            score = cos
            if settings.answer_type and question:
                score += settings.answer_type * answer_type_cue(question, sentence)
            where.append((source.number, tuple(span)))
            texts.append(sentence)
            names.append(names_of[source.number][n])
            scores.append(score)
            stored.append(words)
            found.append(holds[n] if holds is not None else set())
    if not scores:
        return 1, None
    distinct = terms is not None and settings.answer_distinct and float(terms.weights.sum()) > 0
    coverage = distinctive_coverage(found, terms.weights, settings.answer_distinct) if distinct else np.array(stored)
    scores = np.array(scores) + settings.answer_lexical * coverage
    if settings.answer_redundancy:
        scores += settings.answer_redundancy * _redundancy(names, sources, names_of)
    if settings.answer_headline:
        scores += settings.answer_headline * _headline_agreement(names, sources, asked, common)
    kind = asked_kind(question) if settings.answer_kind and encode is not None else None
    if kind:
        # only a sentence within reach of the best can still win: encode no other's names
        reach = scores > scores.max() - settings.answer_kind * (1 - KIND_FLOOR)
        scores += settings.answer_kind * _kind_fit(kind, names, reach, encode)
    types = asked_types(question) if settings.answer_entity and tag is not None else None
    if types:
        scores += settings.answer_entity * _entity_fit(question, types, texts, scores, settings.answer_entity, tag)
    return where[int(np.argmax(scores))]  # the first of equals


def distinctive_coverage(found: list[set[int]], idf: np.ndarray, distinct: float) -> np.ndarray:
    """Per candidate sentence, its share of the question's words, each weighted by its IDF,
    with ``distinct`` of that weight moved to the words that tell the candidates apart:
    a word's IDF times the share of the candidates that lack it (``1 - holding / (n + 1)``).
    The words every candidate holds, often the story's own subject, then count less than
    the ones that only the answer holds.

    >>> idf = np.array([1.0, 1.0])  # "council" in all three candidates, "head" in one
    >>> distinctive_coverage([{0}, {0}, {0, 1}], idf, 0.0).round(3).tolist()
    [0.5, 0.5, 1.0]
    >>> distinctive_coverage([{0}, {0}, {0, 1}], idf, 0.5).round(3).tolist()
    [0.375, 0.375, 1.0]
    """
    holding = np.zeros(len(idf))
    for words in found:
        holding[list(words)] += 1
    telling = idf * (1 - holding / (len(found) + 1))
    weight = (1 - distinct) * idf / idf.sum() + distinct * telling / max(telling.sum(), 1e-9)
    return np.array([weight[list(words)].sum() for words in found])


def _redundancy(names: list[list[str]], sources: list[Source], names_of: dict[int, list[list[str]]]) -> np.ndarray:
    """Per candidate sentence: how many of the sources' articles name its most repeated
    name word, as 0 (one article) to 1 (five or more). ``names_of``: per source number, the
    names of each of its sentences."""
    words_of = {}  # article id -> the name words of its passages here
    for s in sources:
        words_of.setdefault(s.hit.passage.article_id, set()).update(
            _plain(w) for sentence in names_of[s.number] for name in sentence for w in name.split())
    articles = Counter(w for words in words_of.values() for w in words)
    most = np.array([max((articles[_plain(w)] for n in ns for w in n.split()), default=0) for ns in names])
    return np.where(most > 1, (np.minimum(most, 5) - 1) / 4, 0.0)


def _headline_agreement(names: list[list[str]], sources: list[Source], asked: set[str],
                        common: set[str]) -> np.ndarray:
    """Per candidate sentence: the share of ``sources`` whose headline names one of its name
    words (the most named one). Only titles of ``HEADLINE_WORDS`` words or more count: a
    shorter one names a topic (an encyclopedia's "Genghis Khan"), which says nothing about
    which sentence answers.

    >>> from types import SimpleNamespace as N
    >>> heads = ["Florida six-week abortion ban to start as court clears it", "Abortion", "Florida ban news today"]
    >>> sources = [N(hit=N(passage=N(title=t))) for t in heads]
    >>> _headline_agreement([["Florida"], ["Georgia"], []], sources, {"abortion", "ban"}, set()).round(3).tolist()
    [0.333, 0.0, 0.0]
    """
    heads = [{_plain(w) for name in sentence_names(s.hit.passage.title, asked, common) for w in name.split()}
             for s in sources if len(_WORD.findall(s.hit.passage.title)) >= HEADLINE_WORDS]
    if not heads:
        return np.zeros(len(names))
    return np.array([max((sum(_plain(w) in h for h in heads) for name in ns for w in name.split()), default=0)
                     for ns in names]) / len(sources)


def _kind_fit(kind: str, names: list[list[str]], reach: np.ndarray,
              encode: Callable[[list[str]], np.ndarray]) -> np.ndarray:
    """Per candidate sentence within ``reach``: its best name's cosine to ``kind`` above
    ``KIND_FLOOR`` (0 for the others), from one batch through ``encode``."""
    fit = np.zeros(len(names))
    unique = sorted({n for ns, r in zip(names, reach) if r for n in ns})
    if not unique:
        return fit
    vectors = encode([kind] + unique)
    cosine = dict(zip(unique, (vectors[1:] @ vectors[0]).tolist()))
    for i, ns in enumerate(names):
        if reach[i] and ns:
            fit[i] = max(max(cosine[n] for n in ns) - KIND_FLOOR, 0.0)
    return fit


def _entity_fit(question: str, types: frozenset[str], texts: list[str], scores: np.ndarray,
                weight: float, tag: Tagger) -> np.ndarray:
    """Per candidate sentence: 1.0 when it names an entity of ``types`` the question lacks
    (``qa.entities.names_asked``). Only the sentences within ``weight`` of the best, which
    the bonus can still make win, are tagged; the others (and all, without a tagger) get 0."""
    fit = np.zeros(len(texts))
    reach = np.flatnonzero(scores >= scores.max() - weight)
    entities = tag([texts[i] for i in reach])
    if entities is not None:
        fit[reach] = names_asked(question, types, entities)
    return fit


def sentence_names(text: str, asked: set[str], common: set[str]) -> list[str]:
    """The names and numbers in ``text`` that the question lacks: runs of capitalised words
    or words with digits, none of them a question word (``asked``, as ``_plain`` gives them),
    a stopword, a month or a weekday. A capitalised first word counts only when it is not
    also found lower-case nearby (``common``), so "Though" opening a sentence is no name.

    >>> sentence_names("Though small, it was found at Botswana's Karowe mine in 2024.", {"found"}, {"though"})
    ["Botswana's Karowe", '2024']
    """
    names, run = [], []
    for i, w in enumerate(_WORD.findall(text)):
        plain = _plain(w)
        named = plain not in asked and plain not in STOPWORDS and plain not in _NOT_NAMES and (
            (w[:1].isupper() and (i > 0 or plain not in common)) or any(c.isdigit() for c in w))
        if named:
            run.append(w)
        elif run:
            names.append(" ".join(run))
            run = []
    if run:
        names.append(" ".join(run))
    return names


def _plain(word: str) -> str:
    """Lower case, without a possessive 's."""
    word = word.lower()
    return word[:-2] if word.endswith(("'s", "’s")) else word


def answer_type_cue(question: str, sentence: str) -> float:
    """Whether ``sentence`` holds the kind of thing the question asks for, beyond what the
    question already names (1.0 or 0.0): for "who", a name of two or more capitalised words
    the question lacks (a person's or an organisation's; stopwords, weekdays and months are
    not name words); for "when" / "what year", a year or a (capitalised) month the question
    lacks; 0 for other questions. A tie-breaker between sentences that match the question
    about equally well (docs/evaluation.md):

    >>> q = "Who leads the Deir el-Zour Military Council?"
    >>> answer_type_cue(q, "The SDF's Deir el-Zour Military Council said on Tuesday it would press on.")
    0.0
    >>> answer_type_cue(q, "Deir el-Zour Military Council head Ahmed Abu Khawla said so.")
    1.0
    >>> answer_type_cue("When did the ferry resume?", "The ferry resumed in March 2018.")
    1.0
    >>> answer_type_cue("When did the ferry resume?", "The ferry may resume soon.")
    0.0
    """
    asked = {w.lower() for w in _WORD.findall(question)}
    words = _WORD.findall(sentence)
    if _ASKS_WHO.search(question):
        run = 0  # capitalised name words in a row
        for w in words:
            lower = w.lower()
            named = w[:1].isupper() and lower not in asked and lower not in _NOT_NAMES and lower not in STOPWORDS
            run = run + 1 if named else 0
            if run == 2:
                return 1.0
        return 0.0
    if _ASKS_WHEN.search(question):
        return float(any((_YEAR.fullmatch(w) or (w[:1].isupper() and w.lower() in _MONTHS))  # not "it may rain"
                         and w.lower() not in asked for w in words))
    return 0.0
