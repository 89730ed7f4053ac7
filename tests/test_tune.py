"""Cross-validated choice of the fusion weights, on hand-made candidate scores."""

import numpy as np

from qa.settings import Settings
from qa.tune import _Scored, choose_weights, format_cv


def question(article, dense, lexical, sentence, relevant):
    n = len(dense)
    return _Scored(article, np.arange(n), np.array(dense), np.array(lexical), np.array(sentence),
                   np.array(relevant))


def test_weights_are_chosen_on_other_folds_and_reported_on_the_held_out_one():
    # Lexical picks the answer (passage 0), dense prefers passage 1: any grid point that
    # leans on BM25 ranks the answer first; leaning on the cosine ranks it second.
    scored = [question(f"article{a}", [0.2, 0.9], [1.0, 0.0], [0.1, 0.1], [True, False])
              for a in range(8) for _ in range(3)]
    report = choose_weights(scored, Settings(), folds=4)
    assert len(report["folds"]) == 4
    for fold in report["folds"]:
        assert fold["dense_weight"] <= 0.4  # weights that lean on BM25 win
        assert fold["test"]["mrr10"] == 1.0 and fold["test"]["questions"] == 6
        assert len(fold["test_articles"]) == 2
    assert report["held_out"]["r1"] == 1.0 and report["held_out"]["questions"] == 24
    assert "held out, pooled" in format_cv(report)


def test_held_out_figures_can_be_worse_than_training_ones():
    # Three articles reward BM25, one rewards the cosine: the weights learnt without the odd
    # one out fail on it, and the pooled held-out figure must show that.
    scored = [question(f"lex{i}", [0.2, 0.9], [1.0, 0.0], [0.0, 0.0], [True, False]) for i in range(3)]
    scored.append(question("den", [0.9, 0.2], [0.0, 1.0], [0.0, 0.0], [True, False]))
    report = choose_weights(scored, Settings(), folds=4)
    assert report["held_out"]["r1"] == 0.75
    assert max(f["train"]["r1"] for f in report["folds"]) == 1.0
