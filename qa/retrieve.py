"""Find the passages that answer a question: dense + BM25 candidates, fused, rescored by sentence.

The pipeline for one query (``Retriever.search``):

1. candidates: the query's vector against the vector index (top ``candidates`` by cosine)
   and BM25 over passage text and title (SQLite FTS5, top ``candidates``), merged; a
   candidate only BM25 found gets its cosine from the vector index, one only the vector
   search found counts 0 on BM25 (looking its BM25 up cost 18 ms a question and did not
   help: docs/evaluation.md, "Measured and not taken");
2. ranking: ``qa.fusion.rank`` (the hybrid fuses cosine and normalised BM25, then rescores
   the best with their best sentence);
3. sentence scores come from the sentence vectors stored with each passage at index time:
   a question costs one encoding (the question), two searches and arithmetic.

``Hit`` carries a passage with its article and every score behind its rank, including the
score of each of its sentences, which the answer uses to quote and highlight.
"""

from __future__ import annotations

import datetime as dt
import functools
import re
from dataclasses import dataclass

import numpy as np

from embeddings.encoder import Encoder
from embeddings.reader import LoadedIndex
from embeddings.store import ArticleRef, Filters, StoredPassage
from qa import fusion
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

    Attributes:
        score: the score it was ranked by (the method's own scale).
        dense: the cosine of the passage vector to the query.
        lexical: its BM25 divided by the query's best BM25 (0 to 1; 0: no query word).
        sentences: the score of each sentence of ``passage.sentences``, in order
            (``qa.fusion.sentence_scores``: cosine plus weighted query-word coverage).
        sentence_cosines: each sentence's cosine alone.
        sentence_coverage: each sentence's share of the question's words (IDF-weighted;
            zeros when ``sentence_lexical`` is 0).
        also: the other articles of the same story (near-identical copies published by
            other outlets, ``embeddings/stories.py``), oldest first.
    """

    passage: StoredPassage
    score: float
    dense: float
    lexical: float
    sentences: tuple[float, ...] = ()
    sentence_cosines: tuple[float, ...] = ()
    sentence_coverage: tuple[float, ...] = ()
    also: tuple[ArticleRef, ...] = ()  # the other copies of its wire story (other outlets)

    @property
    def best_sentence(self) -> int | None:
        """Index into ``passage.sentences`` of the best-scoring sentence."""
        return int(np.argmax(self.sentences)) if self.sentences else None

    @property
    def relevance(self) -> float:
        """The semantic evidence that the passage answers the query, which a date window
        named in the question is judged by: its best sentence's cosine (the passage's cosine
        if it has none)."""
        return max(self.sentence_cosines) if self.sentence_cosines else self.dense

    @property
    def evidence(self) -> float:
        """What the "not covered" rule reads: its best sentence's score (``sentences``: the
        cosine plus the weighted share of the question's words it holds; the passage's
        cosine if it has none). A question whose words the articles lack scores low even
        where a sentence is loosely about the same thing (docs/evaluation.md)."""
        return max(self.sentences) if self.sentences else self.dense


@dataclass(frozen=True)
class QueryTerms:
    """The question's words as a sentence is checked for them: a prefix to find in it (the
    word's beginning it shares with its FTS5 stem: "villages" -> "villag", "military" ->
    "militar") and a weight (the stem's IDF in this index)."""

    prefixes: tuple[str, ...]
    weights: np.ndarray
    pattern: re.Pattern | None
    order: tuple[int, ...] = ()  # the word each group of ``pattern`` stands for (longest first)

    def coverage(self, text: str, spans) -> np.ndarray:
        """Per ``(start, end)`` span of ``text``: the weighted share of the words it holds."""
        out = np.zeros(len(spans))
        total = float(self.weights.sum())
        if total <= 0:
            return out
        for n, words in enumerate(self.found(text, spans)):
            out[n] = sum(self.weights[w] for w in words) / total
        return out

    def found(self, text: str, spans) -> list[set[int]]:
        """Per ``(start, end)`` span of ``text``: which of the words (their positions in
        ``prefixes``) it holds."""
        found = [set() for _ in spans]
        if self.pattern is None or not len(spans):
            return found
        starts = np.array([a for a, _ in spans])
        for m in self.pattern.finditer(text):
            n = int(np.searchsorted(starts, m.start(), side="right")) - 1
            if n >= 0 and m.start() < spans[n][1]:
                found[n].add(self.order[m.lastindex - 1])
        return found


@dataclass(frozen=True)
class SentenceEvidence:
    """Per sentence of a passage: its vector's cosine to the query and its query-word coverage."""

    cosines: np.ndarray
    coverage: np.ndarray


@dataclass(frozen=True)
class Candidates:
    """A query's candidates (ascending passage ids) with the scores ``qa.fusion`` ranks by."""

    ids: np.ndarray
    dense: np.ndarray
    lexical: np.ndarray


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
    return match_any(content_words(text))


def match_any(words: list[str]) -> str:
    """An FTS5 expression matching any of ``words`` (each quoted, so none is an operator)."""
    return " OR ".join(f'"{w}"' for w in words)


class Retriever:
    """Searches one opened index with one encoder under one ``Settings``."""

    def __init__(self, index: LoadedIndex, encoder: Encoder, settings: Settings):
        self.index = index
        self.encoder = encoder
        self.settings = settings
        self._passages = None  # the snapshot's passage count, for IDF

    def search(self, query: str, k: int | None = None, filters: Filters = Filters(),
               method: str | None = None, query_vector: np.ndarray | None = None,
               focus: str | None = None, as_of: str | None = None) -> list[Hit]:
        """The ``k`` best passages for ``query``, best first (empty if nothing matches).

        ``query_vector`` is the encoded query when the caller already has it. ``focus`` is
        the text whose words sentences are credited for holding (default ``query``): for a
        follow-up, the question as typed, so the earlier turns folded into ``query`` steer
        the search but do not make their own sentences the answer. ``as_of`` (YYYY-MM-DD):
        the day the question is asked; the hybrid prefers articles published near it (near
        the end of the date window instead when ``filters.until`` is earlier).
        """
        s = self.settings
        k = s.k if k is None else k
        method = fusion.check_method(method or s.fusion)
        qvec = self.encoder.encode([query])[0] if query_vector is None else query_vector
        found = self.candidates(query, qvec, filters, max(s.candidates, k), method)
        if found is None or not len(found.ids):
            return []
        weights = s.weights()
        terms = self.query_terms(focus or query) if weights.sentence_lexical > 0 else None
        rescored = [int(i) for i in found.ids[fusion.rescore_positions(method, found.dense, found.lexical, weights)]]
        passages = self.index.store.passages(rescored)
        evidence = self.sentence_evidence(qvec, passages, terms)
        best = np.array([best_sentence_score(evidence.get(int(i)), weights) for i in found.ids])
        ages = ages_in_days(found.ids, passages, _reference_day(as_of, filters))
        order, scores = fusion.rank(method, found.dense, found.lexical, best, weights, ages)
        order = self._distinct(order, found.ids, passages, k)
        top = [int(found.ids[i]) for i in order]
        more = {pid: passages[pid] for pid in top if pid not in evidence}
        evidence.update(self.sentence_evidence(qvec, more, terms))
        members = self.index.store.story_members([passages[p].story for p in top if passages[p].story])
        hits = []
        for i in order:
            pid = int(found.ids[i])
            e, p = evidence[pid], passages[pid]
            also = tuple(m for m in members.get(p.story, ()) if m.id != p.article_id)
            hits.append(Hit(p, float(scores[i]), float(found.dense[i]), float(found.lexical[i]),
                            tuple(float(x) for x in fusion.sentence_scores(e.cosines, e.coverage, weights)),
                            tuple(float(x) for x in e.cosines), tuple(float(x) for x in e.coverage), also))
        return hits

    def _distinct(self, order: np.ndarray, ids: np.ndarray, passages: dict[int, StoredPassage],
                  k: int) -> list[int]:
        """The first ``k`` positions of ``order`` that show something new: a story is cited
        from one article only (its other copies, the same wire report in other papers, are
        listed with it as ``Hit.also``), and a passage text already shown is skipped (the same
        article saved under two names). Reads into ``passages`` the ones it looks at."""
        chosen, seen, cited_from, at = [], set(), {}, 0
        while len(chosen) < k and at < len(order):
            batch = [int(ids[i]) for i in order[at:at + k + 5]]
            passages.update(self.index.store.passages([pid for pid in batch if pid not in passages]))
            for i in order[at:at + k + 5]:
                p = passages[int(ids[i])]
                text = " ".join(p.text.split())
                story = p.story or p.article_id
                if text not in seen and cited_from.setdefault(story, p.article_id) == p.article_id:
                    seen.add(text)
                    chosen.append(i)
                    if len(chosen) == k:
                        break
            at += k + 5
        return chosen

    def query_terms(self, query: str) -> QueryTerms:
        """The question's content words with their IDF in this index, to find in sentences."""
        words = content_words(query)
        counts = self.index.store.term_counts(words)
        total = max(self.passage_count, 1)
        prefixes, weights = [], []
        for word, (stems, docs) in zip(words, counts):
            stem = stems[0] if stems else word
            shared = len(_common_prefix(word, stem))
            prefixes.append(word[:max(shared, min(3, len(word)))])
            weights.append(float(np.log(1 + total / (1 + docs))))
        order = sorted(range(len(prefixes)), key=lambda n: -len(prefixes[n]))  # "leader" before "lead"
        pattern = re.compile(r"\b(?:" + "|".join(f"({re.escape(prefixes[n])})" for n in order) + ")",
                             re.IGNORECASE) if prefixes else None
        return QueryTerms(tuple(prefixes), np.array(weights), pattern, tuple(order))

    def indexed(self, words: list[str]) -> list[bool]:
        """Per word: whether some indexed passage holds it (by its FTS5 stem)."""
        return [docs > 0 for _, docs in self.index.store.term_counts(words)]

    @property
    def passage_count(self) -> int:
        if self._passages is None:
            self._passages = self.index.store.counts()["passages"]
        return self._passages

    def candidates(self, query: str, qvec: np.ndarray, filters: Filters = Filters(),
                   depth: int | None = None, method: str = "hybrid") -> Candidates | None:
        """The top ``depth`` passages by cosine and by BM25: each BM25 candidate with its
        cosine, each cosine-only candidate with BM25 0.

        ``method`` "dense" skips BM25 and "lexical" the vector search (the cosines of the
        BM25 candidates are still looked up). Returns None when the filters leave no passage.
        """
        depth = depth or self.settings.candidates
        store = self.index.store
        vectors = self.index.vectors
        dense = {}
        if getattr(vectors, "filters_natively", False):  # Milvus: the filter runs on the server
            if method != "lexical":
                found = vectors.search(qvec, depth, None, filters)
                held = store.existing([i for i, _ in found])  # the shared collection may be ahead of this snapshot
                dense = {i: score for i, score in found if i in held}
        else:
            allowed = store.passage_ids(filters) if filters else None
            if allowed is not None and not len(allowed):
                return None
            dense = dict(vectors.search(qvec, depth, allowed)) if method != "lexical" else {}
        lexical = {}
        if method != "dense":
            words = store.lexical_words(content_words(query), self.settings.lexical_postings)
            lexical = dict(store.lexical_search(match_any(words), depth, filters, self.settings.title_weight))
        missing = [i for i in lexical if i not in dense]
        if missing:
            dense.update(vectors.scores(qvec, missing))
        if not dense and not lexical:
            return None
        ids = np.array(sorted(set(dense) | set(lexical)), dtype=np.int64)
        top = max(lexical.values(), default=0.0)
        return Candidates(ids, np.array([dense.get(int(i), 0.0) for i in ids]),
                          np.array([lexical.get(int(i), 0.0) / top if top > 0 else 0.0 for i in ids]))

    def sentence_evidence(self, qvec: np.ndarray, passages: dict[int, StoredPassage],
                          terms: QueryTerms | None) -> dict[int, SentenceEvidence]:
        """Per passage: each stored sentence vector's cosine to the query, and each sentence's
        coverage of the query's words (zeros when ``terms`` is None)."""
        stored = self.index.store.sentences(list(passages))
        out = {}
        for pid, (spans, vectors) in stored.items():
            coverage = terms.coverage(passages[pid].text, spans) if terms else np.zeros(len(spans))
            out[pid] = SentenceEvidence(vectors @ qvec, coverage)
        return out


def _reference_day(as_of: str | None, filters: Filters) -> str | None:
    """The day recency is measured from: ``as_of``, or the end of an earlier date window."""
    if as_of and filters.until and filters.until < as_of:
        return filters.until
    return as_of


def ages_in_days(ids: np.ndarray, passages: dict[int, StoredPassage], as_of: str | None) -> np.ndarray | None:
    """Days from each candidate's article date to ``as_of`` (NaN: undated or not read)."""
    if as_of is None:
        return None
    day = dt.date.fromisoformat(as_of).toordinal()
    ages = np.full(len(ids), np.nan)
    for n, pid in enumerate(ids.tolist()):
        p = passages.get(pid)
        if p is not None and p.date:
            ages[n] = day - _ordinal(p.date)
    return ages


@functools.lru_cache(maxsize=4096)
def _ordinal(date: str) -> int:
    return dt.date.fromisoformat(date).toordinal()


def best_sentence_score(evidence: SentenceEvidence | None, weights: fusion.Weights) -> float:
    """A candidate's best sentence score (0 when it has no sentences), as the ranking reads it."""
    if evidence is None or not len(evidence.cosines):
        return 0.0
    return float(fusion.sentence_scores(evidence.cosines, evidence.coverage, weights).max())


def _common_prefix(a: str, b: str) -> str:
    n = 0
    while n < min(len(a), len(b)) and a[n] == b[n]:
        n += 1
    return a[:n]
