"""The one fusion implementation: each method on hand-made scores, and the retriever and the
tuning ranking alike."""

import numpy as np
import pytest

from embeddings.indexer import update_index
from embeddings.reader import open_index
from qa import fusion
from qa.retrieve import Retriever, ages_in_days, best_sentence_score
from qa.settings import Settings
from qa.tune import SENTENCE_LEXICAL, _rank_of_first, _Scored

W = fusion.Weights(dense_weight=0.5, lexical_power=1.0, sentence_weight=0.0, rescore_depth=50)


def test_fuse_mixes_cosine_and_normalised_bm25():
    fused = fusion.fuse(np.array([0.8, 0.4, 0.0]), np.array([0.0, 1.0, 0.5]), W)
    assert fused.tolist() == pytest.approx([0.4, 0.7, 0.25])


def test_lexical_power_sharpens_partial_bm25_matches():
    fused = fusion.fuse(np.array([0.8, 0.4, 0.0]), np.array([0.0, 1.0, 0.5]), fusion.Weights(0.5, 2.0))
    assert fused.tolist() == pytest.approx([0.4, 0.7, 0.125])


def test_rrf_sums_reciprocal_ranks_and_skips_candidates_without_a_query_word():
    scores = fusion.rrf(np.array([0.9, 0.5, 0.1]), np.array([0.0, 1.0, 0.5]), c=60)
    assert scores.tolist() == pytest.approx([1 / 61, 1 / 62 + 1 / 61, 1 / 63 + 1 / 62])


def test_each_method_orders_by_its_own_score():
    dense, lexical = np.array([0.9, 0.5, 0.1]), np.array([0.0, 1.0, 0.5])
    assert fusion.rank("dense", dense, lexical, None, W)[0].tolist() == [0, 1, 2]
    assert fusion.rank("lexical", dense, lexical, None, W)[0].tolist() == [1, 2]  # 0 has no query word
    assert fusion.rank("rrf", dense, lexical, None, W)[0].tolist() == [1, 2, 0]
    assert fusion.rank("hybrid", dense, lexical, None, W)[0].tolist() == [1, 0, 2]


def test_sentence_rescoring_reorders_only_the_top_depth():
    dense, lexical = np.array([0.9, 0.8, 0.7, 0.6]), np.zeros(4)
    sentence = np.array([0.0, 0.0, 1.0, 1.0])
    weights = fusion.Weights(1.0, 1.0, sentence_weight=0.9, rescore_depth=3)
    order, scores = fusion.rank("hybrid", dense, lexical, sentence, weights)
    assert order.tolist() == [2, 0, 1, 3]  # 3 is beyond the depth: not lifted
    assert scores[2] == pytest.approx(0.1 * 0.7 + 0.9)
    assert fusion.rescore_positions("hybrid", dense, lexical, weights).tolist() == [0, 1, 2]
    assert fusion.rescore_positions("dense", dense, lexical, weights).tolist() == []


def test_ties_keep_candidate_order():
    order, _ = fusion.rank("dense", np.array([0.5, 0.5, 0.5]), np.zeros(3), None, W)
    assert order.tolist() == [0, 1, 2]


def test_unknown_method_is_an_error():
    with pytest.raises(ValueError, match="unknown retrieval method"):
        fusion.rank("semantic", np.zeros(1), np.zeros(1), None, W)


@pytest.mark.parametrize("weights", [(0.4, 3.0, 0.7, 50, 0.0), (0.7, 1.0, 0.3, 2, 0.2), (0.2, 2.0, 0.0, 50, 0.1),
                                     (0.5, 2.0, 0.8, 50, 0.3)])
@pytest.mark.parametrize("as_of,recency", [(None, (0.0, 30.0)), ("2018-05-04", (0.3, 30.0)),
                                           ("2018-05-04", (0.5, 1.0))])
def test_retriever_and_tuning_rank_alike(corpus, index_settings, fake_encoder, weights, as_of, recency):
    """The arrays tuning scores every setting on give the retriever's own ranking."""
    update_index([corpus], index_settings, fake_encoder)
    index = open_index(index_settings, fake_encoder.identity, fake_encoder.dimension)
    dw, power, sw, depth, beta = weights
    settings = Settings(index=index_settings, dense_weight=dw, lexical_power=power, sentence_weight=sw,
                        rescore_depth=depth, sentence_lexical=beta, recency=recency[0], recency_days=recency[1])
    retriever = Retriever(index, fake_encoder, settings)
    try:
        for query in ("ferry strike crew", "library wing cost", "villages Syria Euphrates", "dawn queue"):
            qvec = fake_encoder.encode([query])[0]
            hits = retriever.search(query, k=50, as_of=as_of)
            found = retriever.candidates(query, qvec)
            evidence = retriever.sentence_evidence(qvec, retriever.index.store.passages(found.ids.tolist()),
                                                   retriever.query_terms(query))
            best = {beta: np.array([best_sentence_score(evidence[int(i)], fusion.Weights(sentence_lexical=beta))
                                    for i in found.ids]) for beta in SENTENCE_LEXICAL}
            for target in (h.passage.id for h in hits[:5]):
                scored = _Scored("a", found.ids, found.dense, found.lexical, best, found.ids == target,
                                 ages_in_days(found.ids, retriever.index.store.passages(found.ids.tolist()), as_of))
                want = [h.passage.id for h in hits].index(target) + 1
                assert _rank_of_first(scored, dw, sw, depth, power, beta, recency) == want, (query, target)
    finally:
        index.close()
