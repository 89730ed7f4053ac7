"""Split an article's body into passages that fit the embedding model, with exact offsets.

Sentences come from blingfire (a fast finite-state sentence breaker) run per paragraph,
with its one common slip in news text undone: no sentence starts right after a title or
"v." ("Sen. Caryn Tyson", "Roe v. Wade"). Passages are whole sentences packed greedily up
to the model's word-piece limit, counted with the model's own tokenizer (each paragraph is
tokenised once). Each passage records its character offsets into the body, so
``body[p.start:p.end] == p.text``, and the spans of its sentences, which the index encodes
and the answer highlights.

Packing rules:
    * a passage never exceeds ``max_tokens`` word pieces, ``[CLS]`` and ``[SEP]`` included;
    * at a paragraph break the passage ends once it holds ``target_tokens``, or when the
      next paragraph would not fit whole, so short paragraphs are merged and long ones kept whole;
    * when a paragraph must be split, the next passage repeats the last
      ``overlap_sentences`` sentence(s);
    * a single sentence longer than the limit is cut at word boundaries.

Example (``load_tokenizer`` is the packaged model's):
    >>> from embeddings.encoder import load_tokenizer
    >>> tok = load_tokenizer()
    >>> body = "One sentence here. Another one.\\n\\nA new paragraph."
    >>> [p.text for p in split_passages("a1", body, tok, max_tokens=12, target_tokens=8)]
    ['One sentence here. Another one.', 'A new paragraph.']
"""

from __future__ import annotations

import bisect
import re
from dataclasses import dataclass
from typing import Protocol

import numpy as np

SPECIAL_TOKENS = 2  # [CLS] and [SEP]
_PARAGRAPH = re.compile(r"\S(?:.*?\S)??(?=\n[ \t]*\n|\s*\Z)", re.DOTALL)
# Titles and "v." are followed by a name, not by a new sentence (pysbd's English
# "prepositive" abbreviations). Case matters: "he said no. Then..." does end a sentence.
_NO_BREAK_AFTER = re.compile(
    r"(?:\A|[\s(\"“‘'])(?:Adm|Brig|Capt|Cmdr|Col|Cpl|Det|Dr|Gen|Gov|Lt|Maj|Messrs|Mr|Mrs|Ms|Mt|"
    r"Prof|Rep|Reps|Rev|Sen|Sens|Sgt|St|Supt|v|vs)\.\s*\Z")


_ABBREVIATION_WINDOW = 24  # "Messrs." and its surrounding spaces fit well within it


class Tokenizer(Protocol):
    """The part of a word-piece tokenizer the splitter needs (see ``Encoder.tokenizer``)."""

    def word_pieces(self, text: str) -> list[tuple[int, int, bool]]:
        """``(start, end, is_continuation)`` per word piece, special tokens excluded."""


@dataclass(frozen=True)
class Passage:
    """A span of an article's body: ``text == body[start:end]``.

    ``sentences`` are the ``(start, end)`` offsets of its sentences within ``text``.
    """

    article_id: str
    ordinal: int
    start: int
    end: int
    text: str
    sentences: tuple[tuple[int, int], ...] = ()


@dataclass(frozen=True)
class _Unit:
    start: int
    end: int
    tokens: int
    paragraph: int


def paragraphs(text: str) -> list[tuple[int, int]]:
    """``(start, end)`` of each paragraph: blocks separated by blank lines, trimmed."""
    return [m.span() for m in _PARAGRAPH.finditer(text)]


def split_sentences(text: str) -> list[tuple[int, int]]:
    """``(start, end)`` of each sentence, trimmed of surrounding whitespace.

    Sentences never cross a paragraph break, and together they cover every non-space
    character of ``text``: blingfire decides where sentences start, the text between two
    starts is one sentence.

    >>> text = "Sen. Caryn Tyson spoke. Roe v. Wade fell."
    >>> [text[a:b] for a, b in split_sentences(text)]
    ['Sen. Caryn Tyson spoke.', 'Roe v. Wade fell.']
    """
    return [span for _, spans in _paragraph_sentences(text) for span in spans]


def sentence_starts(text: str) -> list[int]:
    """Where blingfire starts each sentence of ``text`` (character offsets, ascending).

    Calls blingfire's C function ``TextToSentencesWithOffsets`` (the library's own, as its
    Python wrapper does) and maps its UTF-8 byte offsets to characters with numpy: the
    wrapper maps them in a Python loop over every byte, which took 3% of indexing.
    """
    import ctypes

    import blingfire

    data = text.encode("utf-8")
    if not data:
        return []
    out = ctypes.create_string_buffer(len(data) * 2)
    starts = (ctypes.c_int32 * (len(data) * 2))()
    ends = (ctypes.c_int32 * (len(data) * 2))()
    n = blingfire.blingfire.TextToSentencesWithOffsets(ctypes.c_char_p(data), ctypes.c_int(len(data)),
                                                        ctypes.byref(out), ctypes.byref(starts),
                                                        ctypes.byref(ends), ctypes.c_int(len(out)))
    if n < 0 or n > len(out):
        return [0]
    sentences = out.value.count(b"\n") + 1
    first_bytes = np.frombuffer(starts, dtype=np.int32, count=sentences)
    is_char_start = (np.frombuffer(data, dtype=np.uint8) & 0xC0) != 0x80
    char_of_byte = np.cumsum(is_char_start) - 1
    return sorted(set(char_of_byte[np.clip(first_bytes, 0, len(data) - 1)].tolist()))


def _paragraph_sentences(text: str) -> list[tuple[int, list[tuple[int, int]]]]:
    """Per paragraph (numbered), its sentence spans; blingfire runs once over the whole text."""
    # Only the text just before a break can hold the abbreviation; searching from 0 would
    # make long articles quadratic. (``\A`` still means the text's real start.)
    breaks = [a for a in sentence_starts(text)
              if a > 0 and not _NO_BREAK_AFTER.search(text, max(0, a - _ABBREVIATION_WINDOW), a)]
    out = []
    for n, (p_start, p_end) in enumerate(paragraphs(text)):
        lo, hi = bisect.bisect_right(breaks, p_start), bisect.bisect_left(breaks, p_end)
        starts = [p_start] + breaks[lo:hi]
        spans = []
        for a, b in zip(starts, starts[1:] + [p_end]):
            piece = text[a:b]
            lead = len(piece) - len(piece.lstrip())
            trail = len(piece.rstrip())
            if trail > lead:
                spans.append((a + lead, a + trail))
        out.append((n, spans))
    return out


def split_passages(
    article_id: str,
    body: str,
    tokenizer: Tokenizer,
    max_tokens: int = 256,
    target_tokens: int = 256,
    overlap_sentences: int = 1,
) -> list[Passage]:
    """Split ``body`` into passages; see the module docstring for the rules.

    Args:
        article_id: recorded on each passage.
        body: the article text the offsets refer to.
        tokenizer: the embedding model's tokenizer; counts decide the sizes.
        max_tokens: hard limit per passage, special tokens included.
        target_tokens: size at which a passage stops at the next paragraph break.
        overlap_sentences: sentences repeated when a paragraph is split across passages.
    """
    budget = max_tokens - SPECIAL_TOKENS
    if budget < 1:
        raise ValueError("max_tokens must leave room for at least one word piece")
    units = _units(body, tokenizer, budget)
    para_tokens: dict[int, int] = {}
    for u in units:
        para_tokens[u.paragraph] = para_tokens.get(u.paragraph, 0) + u.tokens

    passages: list[Passage] = []
    i = 0
    while i < len(units):
        j, total = i, 0
        while j < len(units):
            u = units[j]
            if j > i:
                if total + u.tokens > budget:
                    break
                new_paragraph = u.paragraph != units[j - 1].paragraph
                if new_paragraph and (total >= target_tokens or total + para_tokens[u.paragraph] > budget):
                    break
            total += u.tokens
            j += 1
        # The word pieces of sentences apart from each other add up exactly (the tokenizer
        # splits at whitespace); where two touch (a cut inside a word) the span's count can
        # differ from the sum, so count it and shrink until it fits.
        if any(units[x].end == units[x + 1].start for x in range(i, j - 1)):
            while j > i + 1 and _count(tokenizer, body[units[i].start:units[j - 1].end]) > budget:
                j -= 1
        start, end = units[i].start, units[j - 1].end
        sentences = tuple((u.start - start, u.end - start) for u in units[i:j])
        passages.append(Passage(article_id, len(passages), start, end, body[start:end], sentences))
        if j >= len(units):
            break
        split_paragraph = units[j].paragraph == units[j - 1].paragraph
        i = max(j - overlap_sentences, i + 1) if split_paragraph else j
    return passages


def _count(tokenizer: Tokenizer, text: str) -> int:
    return len(tokenizer.word_pieces(text))


def _units(body: str, tokenizer: Tokenizer, budget: int) -> list[_Unit]:
    """Sentences with their word-piece counts; over-long sentences cut into pieces.

    The body is tokenised once; a sentence's count is the number of pieces it holds.
    """
    units = []
    piece_starts = [a for a, _, _ in tokenizer.word_pieces(body)]
    for n, spans in _paragraph_sentences(body):
        for start, end in spans:
            lo, hi = bisect.bisect_left(piece_starts, start), bisect.bisect_left(piece_starts, end)
            if hi - lo <= budget:
                units.append(_Unit(start, end, hi - lo, n))
                continue
            sentence = body[start:end]
            for a, b, count in _cut(sentence, tokenizer.word_pieces(sentence), budget, tokenizer):
                units.append(_Unit(start + a, start + b, count, n))
    return units


def _cut(text: str, pieces: list[tuple[int, int, bool]], budget: int,
         tokenizer: Tokenizer) -> list[tuple[int, int, int]]:
    """Cut one over-long sentence into windows of at most ``budget`` pieces at word starts.

    The windows tile the sentence: each runs from its first piece to the next window's
    first piece, so characters the tokenizer drops (control or private-use ones) are not lost.
    """
    cuts = []  # index of the first piece of each window
    i = 0
    while i < len(pieces):
        cuts.append(i)
        j = min(i + budget, len(pieces))
        if j < len(pieces):
            k = j
            while k > i + 1 and pieces[k][2]:  # do not start the next window mid-word
                k -= 1
            j = k if k > i + 1 else j
        # A window that starts mid-word is re-tokenised differently; check the real count.
        while j > i + 1 and _count(tokenizer, text[pieces[i][0]:pieces[j - 1][1]]) > budget:
            j -= 1
        i = j
    bounds = [0] + [pieces[c][0] for c in cuts[1:]] + [len(text)]
    windows = []
    for a, b in zip(bounds, bounds[1:]):
        piece = text[a:b]
        a, b = a + len(piece) - len(piece.lstrip()), a + len(piece.rstrip())
        if b > a:
            windows.append((a, b, _count(tokenizer, text[a:b])))
    return windows


def with_context(title: str, passage: Passage, tokenizer, max_pieces: int) -> tuple[str, tuple[tuple[int, int], ...]]:
    """The text the model reads for ``passage`` with its article's ``title`` in front (cut to
    ``max_pieces`` word pieces), and the passage's sentence spans shifted into that text.

    >>> class Tok:  # one word piece per word
    ...     def word_pieces(self, text):
    ...         import re
    ...         return [(m.start(), m.end(), False) for m in re.finditer(r"\\S+", text)]
    >>> with_context("Bridge reopens after repairs", Passage("a", 0, 0, 9, "It opened.", ((0, 10),)), Tok(), 2)
    ('Bridge reopens\\nIt opened.', ((15, 25),))
    """
    pieces = tokenizer.word_pieces(title)
    if not pieces:
        return passage.text, passage.sentences
    cut = pieces[min(max_pieces, len(pieces)) - 1][1]
    prefix = title[:cut].strip() + "\n"
    shift = len(prefix)
    return prefix + passage.text, tuple((a + shift, b + shift) for a, b in passage.sentences)
