"""Find the passages that answer a question: dense + BM25 candidates, fused, rescored by sentence.

The pipeline for one query (``Retriever.search``):

1. dense: the query's vector against FAISS, top ``candidates`` by cosine;
2. lexical: BM25 over passage text and title (SQLite FTS5), top ``candidates``;
3. fusion: every candidate gets both scores; BM25 is divided by the best BM25 of the
   query (so 1.0 = best lexical match), raised to ``lexical_power`` and mixed with the cosine:
   ``dense_weight * cosine + (1 - dense_weight) * (bm25 / max_bm25) ** lexical_power``;
4. sentence rescoring: the top ``rescore_depth`` are rescored with their best single
   sentence's cosine to the query, since a passage that contains one sentence answering the
   question beats one that is vaguely about it.

The pure functions (``fts_query``, ``fuse``, ``rrf``) take plain numbers and ids; ``Hit``
carries a passage with its article and every score behind its rank.
"""

from __future__ import annotations

import re
import threading
from collections import OrderedDict
from dataclasses import dataclass

import numpy as np

from embeddings.encoder import Encoder
from embeddings.indexer import LoadedIndex
from embeddings.passages import split_sentences
from embeddings.store import Filters, StoredPassage
from qa.settings import Settings

STOPWORDS = frozenset("""
a about above after again against all am an and any are aren't as at be because been before
being below between both but by can could did do does doing down during each few for from
further had has have having he her here hers herself him himself his how i if in into is
it its itself just me more most my myself no nor not now of off on once only or other our
ours ourselves out over own same she should so some such than that the their theirs them
themselves then there these they this those through to too under until up very was we were
what when where which while who whom why will with would you your yours yourself yourselves
""".split())

_WORD = re.compile(r"\w+", re.UNICODE)


@dataclass(frozen=True)
class Hit:
    """One retrieved passage and the scores that ranked it.

    ``score`` is the final ranking score; ``relevance`` is the absolute evidence that the
    passage answers the query (the best sentence's cosine, or the passage's when sentences
    were not scored), the figure the "not covered" threshold applies to.
    """

    passage: StoredPassage
    score: float
    dense: float
    lexical: float
    sentence: float | None = None
    best_sentence: tuple[int, int] | None = None  # offsets within passage.text

    @property
    def relevance(self) -> float:
        return self.sentence if self.sentence is not None else self.dense


def content_words(text: str) -> list[str]:
    """Lower-cased words of ``text`` minus stopwords, in order, without repeats.

    Upper-case acronyms are kept even when they spell a stopword ("IS" for Islamic State).
    """
    seen: dict[str, None] = {}
    for word in _WORD.findall(text):
        w = word.lower()
        acronym = len(word) > 1 and word.isupper()  # "IS", "US", "SDF" are names, not stopwords
        if acronym or (w not in STOPWORDS and (len(w) > 1 or w.isdigit())):
            seen.setdefault(w, None)
    return list(seen)


def fts_query(text: str) -> str:
    """An FTS5 expression that ORs the query's content words (quoted, so none is an operator).

    >>> fts_query("Where does IS still hold villages?")
    '"is" OR "still" OR "hold" OR "villages"'
    """
    return " OR ".join(f'"{w}"' for w in content_words(text))


def fuse(dense: dict[int, float], lexical: dict[int, float], dense_weight: float,
         lexical_power: float = 1.0) -> dict[int, float]:
    """Weighted sum of cosine and max-normalised BM25 for every candidate id.

    BM25 is divided by the query's best BM25 and raised to ``lexical_power``: above 1 this
    keeps the credit for passages that match the query's words nearly as well as the best
    one and takes it from passages that share only a word or two, where the cosine says more.
    """
    top = max(lexical.values(), default=0.0)
    ids = set(dense) | set(lexical)
    return {i: dense_weight * dense.get(i, 0.0)
            + (1 - dense_weight) * ((lexical.get(i, 0.0) / top) ** lexical_power if top > 0 else 0.0)
            for i in ids}


def rrf(rankings: list[list[int]], c: int = 60) -> dict[int, float]:
    """Reciprocal rank fusion: ``sum 1 / (c + rank)`` over the rankings an id appears in."""
    scores: dict[int, float] = {}
    for ranking in rankings:
        for rank, pid in enumerate(ranking, start=1):
            scores[pid] = scores.get(pid, 0.0) + 1.0 / (c + rank)
    return scores


class SentenceScorer:
    """Cosine of each sentence of a passage to a query, with sentence vectors cached per passage."""

    def __init__(self, encoder: Encoder, cache_size: int = 20000):
        self.encoder = encoder
        self._cache: OrderedDict[int, tuple[list[tuple[int, int]], np.ndarray]] = OrderedDict()
        self._cache_size = cache_size
        self._lock = threading.Lock()  # the chat answers several people on threads

    def sentences(self, passages: list[StoredPassage]) -> list[tuple[list[tuple[int, int]], np.ndarray]]:
        with self._lock:
            return self._sentences(passages)

    def _sentences(self, passages: list[StoredPassage]) -> list[tuple[list[tuple[int, int]], np.ndarray]]:
        missing = [p for p in passages if p.id not in self._cache]
        if missing:
            spans = [split_sentences(p.text) or [(0, len(p.text))] for p in missing]
            texts = [p.text[a:b] for p, ss in zip(missing, spans) for a, b in ss]
            vectors = self.encoder.encode(texts)
            offset = 0
            for p, ss in zip(missing, spans):
                self._cache[p.id] = (ss, vectors[offset:offset + len(ss)])
                offset += len(ss)
        out = []
        for p in passages:
            self._cache.move_to_end(p.id)
            out.append(self._cache[p.id])
        while len(self._cache) > self._cache_size:
            self._cache.popitem(last=False)
        return out

    def score(self, query_vector: np.ndarray, passages: list[StoredPassage]) -> list[list[tuple[int, int, float]]]:
        """``[(start, end, cosine)]`` for every sentence of every passage."""
        result = []
        for spans, vectors in self.sentences(passages):
            sims = vectors @ query_vector
            result.append([(a, b, float(s)) for (a, b), s in zip(spans, sims)])
        return result


class Retriever:
    """Searches one opened index with one encoder under one ``Settings``."""

    def __init__(self, index: LoadedIndex, encoder: Encoder, settings: Settings,
                 sentences: SentenceScorer | None = None):
        """``sentences`` may be shared with an earlier retriever: passage ids are never reused."""
        self.index = index
        self.encoder = encoder
        self.settings = settings
        self.sentences = sentences or SentenceScorer(encoder)

    def search(self, query: str, k: int | None = None, filters: Filters = Filters(),
               method: str | None = None, query_vector: np.ndarray | None = None) -> list[Hit]:
        """The ``k`` best passages for ``query``, best first (empty if nothing matches).

        ``query_vector`` is the encoded query when the caller already has it.
        """
        s = self.settings
        k = s.k if k is None else k
        method = method or s.fusion
        store = self.index.store
        allowed = store.passage_ids(filters) if filters else None
        if allowed is not None and not allowed:
            return []
        qvec = self.encoder.encode([query])[0] if query_vector is None else query_vector
        depth = max(s.candidates, k)
        dense = dict(self.index.vectors.search(qvec, depth, allowed)) if method != "lexical" else {}
        lexical = dict(store.lexical_search(fts_query(query), depth, filters, s.title_weight)) \
            if method != "dense" else {}
        if method == "lexical":
            ranked = lexical
        elif method == "dense":
            ranked = dense
        elif method == "rrf":
            ranked = rrf([sorted(dense, key=dense.get, reverse=True),
                          sorted(lexical, key=lexical.get, reverse=True)])
        else:
            ranked = fuse(self.complete_cosines(qvec, dense, lexical), lexical, s.dense_weight,
                          s.lexical_power)
        order = sorted(ranked, key=lambda i: (-ranked[i], i))
        if not order:
            return []
        if method != "hybrid" or s.sentence_weight <= 0:
            order = order[:k]
            passages = store.passages(order)
            dense = self.complete_cosines(qvec, dense, dict.fromkeys(order))
            return [Hit(passages[i], ranked[i], dense.get(i, 0.0), lexical.get(i, 0.0)) for i in order]
        return self._rescore(qvec, order[:max(s.rescore_depth, k)], ranked, dense, lexical)[:k]

    def complete_cosines(self, qvec: np.ndarray, dense: dict[int, float], others: dict) -> dict[int, float]:
        """``dense`` plus the cosine of every id in ``others`` it lacks (candidates only BM25 found)."""
        missing = [i for i in others if i not in dense]
        if not missing:
            return dense
        return {**dense, **dict(self.index.vectors.search(qvec, len(missing), missing))}

    def _rescore(self, qvec, order, fused, dense, lexical) -> list[Hit]:
        passages = self.index.store.passages(order)
        plist = [passages[i] for i in order]
        w = self.settings.sentence_weight
        top_lex = max(lexical.values(), default=0.0)
        hits = []
        for p, sentences in zip(plist, self.sentences.score(qvec, plist)):
            a, b, best = max(sentences, key=lambda t: t[2])
            hits.append(Hit(p, (1 - w) * fused[p.id] + w * best, dense.get(p.id, 0.0),
                            lexical.get(p.id, 0.0) / top_lex if top_lex else 0.0, best, (a, b)))
        hits.sort(key=lambda h: (-h.score, h.passage.id))
        return hits
