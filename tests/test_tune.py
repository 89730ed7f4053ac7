"""Cross-validated choice of the fusion weights, on hand-made candidate scores."""

import numpy as np

from qa.settings import Settings
from qa.tune import SENTENCE_LEXICAL, _Scored, _worse_set_best, choose_weights, format_cv


def question(group, dense, lexical, sentence, relevant):
    n = len(dense)
    return _Scored(group, np.arange(n), np.array(dense), np.array(lexical),
                   {beta: np.array(sentence) for beta in SENTENCE_LEXICAL}, np.array(relevant))


def test_weights_are_chosen_on_other_folds_and_reported_on_the_held_out_one():
    # Lexical picks the answer (passage 0), dense prefers passage 1: any grid point that
    # leans on BM25 ranks the answer first; leaning on the cosine ranks it second.
    scored = [question(f"article{a}", [0.2, 0.9], [1.0, 0.0], [0.1, 0.1], [True, False])
              for a in range(8) for _ in range(3)]
    report = choose_weights({"squad": scored}, Settings(), folds=4)
    assert len(report["folds"]) == 4
    for fold in report["folds"]:
        assert fold["dense_weight"] <= 0.4  # weights that lean on BM25 win
        assert fold["sets"]["squad"]["test"]["mrr10"] == 1.0 and fold["sets"]["squad"]["test"]["questions"] == 6
    assert report["held_out"]["squad"]["r1"] == 1.0 and report["held_out"]["squad"]["questions"] == 24
    assert "held out, pooled" in format_cv(report)


def test_held_out_figures_can_be_worse_than_training_ones():
    # Three articles reward BM25, one rewards the cosine: the weights learnt without the odd
    # one out fail on it, and the pooled held-out figure must show that.
    scored = [question(f"lex{i}", [0.2, 0.9], [1.0, 0.0], [0.0, 0.0], [True, False]) for i in range(3)]
    scored.append(question("den", [0.9, 0.2], [0.0, 1.0], [0.0, 0.0], [True, False]))
    report = choose_weights({"squad": scored}, Settings(), folds=4)
    assert report["held_out"]["squad"]["r1"] == 0.75
    assert max(f["sets"]["squad"]["train"]["r1"] for f in report["folds"]) == 1.0


def test_the_setting_chosen_holds_on_the_worse_set_not_the_average():
    """A serves the big set a little better and the small one much worse: the mean over
    questions would take A; the worse-set rule takes B."""
    per_set = {"squad": {"A": 0.930, "B": 0.925}, "news": {"A": 0.30, "B": 0.40}}
    assert _worse_set_best(per_set) == "B"
    assert _worse_set_best({"squad": per_set["squad"]}) == "A"
