"""Rank a query's candidate passages from their scores: the one fusion implementation.

Pure functions over arrays, called by ``Retriever.search`` for one question and by
``qa/tune.py`` for thousands, so what is tuned is exactly what runs. For one query, each
candidate ``i`` carries:

* ``dense[i]``: the cosine of its passage vector to the query;
* ``lexical[i]``: its BM25 divided by the best BM25 of the query (1.0 = the best lexical
  match, 0.0 = no query word); always this scale, whatever the method;
* ``sentence[i]``: the best score of one of its sentences, a sentence's score being
  ``cosine + sentence_lexical * coverage`` (``sentence_scores``): its vector's cosine to
  the query, plus the IDF-weighted share of the query's words it holds.

Methods:

* ``dense``, ``lexical``: one score alone;
* ``rrf``: reciprocal rank fusion of the dense and lexical rankings;
* ``hybrid`` (the default): ``fused = w_d * dense + (1 - w_d) * lexical ** power``; the top
  ``rescore_depth`` by ``fused`` are then rescored ``(1 - w_s) * fused + w_s * sentence``,
  since a passage with one sentence that answers the question beats one vaguely about it.

Ties are broken by candidate position (candidates come in ascending passage id).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

METHODS = ("lexical", "dense", "rrf", "hybrid")
RRF_C = 60


@dataclass(frozen=True)
class Weights:
    """The hybrid's weights (``Settings`` holds the defaults; ``qa/tune.py`` searches them)."""

    dense_weight: float = 0.4
    lexical_power: float = 3.0
    sentence_weight: float = 0.7
    rescore_depth: int = 50
    sentence_lexical: float = 0.0
    recency: float = 0.0          # the bonus of a passage published the day the question is asked
    recency_days: float = 30.0    # the bonus falls to 1/e at this age


def recency_bonus(age_days: np.ndarray, weights: Weights) -> np.ndarray:
    """``recency * exp(-|age| / recency_days)`` for each candidate; 0 where the date is
    unknown (NaN). A date after the day asked counts by its distance too.

    >>> recency_bonus(np.array([0.0, 30.0, -30.0, np.nan]), Weights(recency=0.3, recency_days=30)).round(3).tolist()
    [0.3, 0.11, 0.11, 0.0]
    """
    age = np.abs(np.asarray(age_days, float))
    return np.where(np.isnan(age), 0.0, weights.recency * np.exp(-np.nan_to_num(age) / weights.recency_days))


def sentence_scores(cosines: np.ndarray, coverage: np.ndarray, weights: Weights) -> np.ndarray:
    """Each sentence's score: its cosine plus ``sentence_lexical`` times its query-word coverage.

    >>> sentence_scores(np.array([0.5, 0.4]), np.array([0.0, 1.0]), Weights(sentence_lexical=0.2)).tolist()
    [0.5, 0.6000000000000001]
    """
    return np.asarray(cosines, float) + weights.sentence_lexical * np.asarray(coverage, float)


def check_method(method: str) -> str:
    if method not in METHODS:
        raise ValueError(f"unknown retrieval method {method!r}: use one of {', '.join(METHODS)}")
    return method


def fuse(dense: np.ndarray, lexical: np.ndarray, weights: Weights) -> np.ndarray:
    """``w_d * cosine + (1 - w_d) * lexical ** power`` for every candidate.

    Raising the normalised BM25 to a power above 1 keeps the credit for passages that match
    the query's words nearly as well as the best one and takes it from passages that share
    only a word or two, where the cosine says more.

    >>> fuse(np.array([0.8, 0.4, 0.0]), np.array([0.0, 1.0, 0.5]), Weights(0.5, 1.0)).round(3).tolist()
    [0.4, 0.7, 0.25]
    """
    return weights.dense_weight * dense + (1 - weights.dense_weight) * np.power(lexical, weights.lexical_power)


def rrf(dense: np.ndarray, lexical: np.ndarray, c: int = RRF_C) -> np.ndarray:
    """Reciprocal rank fusion: ``sum 1 / (c + rank)`` over the two rankings a candidate is in
    (a candidate with no query word is not in the lexical ranking)."""
    scores = np.zeros(len(dense))
    for values, present in ((dense, np.ones(len(dense), bool)), (lexical, lexical > 0)):
        order = _order(values)
        order = order[present[order]]
        scores[order] += 1.0 / (c + np.arange(1, len(order) + 1))
    return scores


def needs_sentences(method: str, weights: Weights) -> bool:
    """Whether ranking by ``method`` reads sentence scores (only the hybrid's rescoring does)."""
    return method == "hybrid" and weights.sentence_weight > 0


def rank(method: str, dense: np.ndarray, lexical: np.ndarray, sentence: np.ndarray | None,
         weights: Weights, age_days: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Candidates best first, as positions into the arrays, and the score each is ranked by.

    ``sentence`` is needed by the hybrid when ``weights.sentence_weight > 0``; only its
    entries for the top ``rescore_depth`` fused candidates are read. ``age_days``: how long
    before the question each candidate was published (NaN: unknown); the hybrid adds
    ``recency_bonus`` to the top ``rescore_depth`` when it is given. The lexical method
    leaves out candidates without a query word, as BM25 would never return them.
    """
    check_method(method)
    dense, lexical = np.asarray(dense, float), np.asarray(lexical, float)
    if method == "dense":
        return _order(dense), dense
    if method == "lexical":
        order = _order(lexical)
        return order[lexical[order] > 0], lexical
    if method == "rrf":
        scores = rrf(dense, lexical)
        return _order(scores), scores
    fused = fuse(dense, lexical, weights)
    order = _order(fused)
    dated = age_days is not None and weights.recency > 0
    if not (needs_sentences(method, weights) or dated):
        return order, fused
    top, rest = order[:weights.rescore_depth], order[weights.rescore_depth:]
    final = fused.copy()
    if needs_sentences(method, weights):
        w = weights.sentence_weight
        final[top] = (1 - w) * fused[top] + w * np.asarray(sentence, float)[top]
    if dated:
        final[top] += recency_bonus(np.asarray(age_days, float)[top], weights)
    return np.concatenate([top[_order(final[top])], rest]), final


def rescore_positions(method: str, dense: np.ndarray, lexical: np.ndarray, weights: Weights) -> np.ndarray:
    """The candidates whose sentence scores and dates ``rank`` reads (the top ``rescore_depth`` fused)."""
    if not (needs_sentences(method, weights) or (method == "hybrid" and weights.recency > 0)):
        return np.zeros(0, dtype=np.int64)
    return _order(fuse(np.asarray(dense, float), np.asarray(lexical, float), weights))[:weights.rescore_depth]


def _order(values: np.ndarray) -> np.ndarray:
    """Positions by descending value; equal values keep their order (stable)."""
    return np.argsort(-np.asarray(values, float), kind="stable")
