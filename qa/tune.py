"""Choose the hybrid fusion weights by cross-validation across articles.

For every question the candidates' cosine, BM25 and best-sentence scores are computed once,
by the retriever's own ``candidates`` and ``sentence_scores``; each weight setting is then
``qa.fusion.rank``, the function the retriever ranks with, over those arrays. Articles are
split into folds; for each fold the weights that maximise MRR@10 on the other folds are
chosen and scored on the held-out fold, so the reported figures come from articles the
weights never saw.
"""

from __future__ import annotations

import itertools
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from embeddings.encoder import Encoder
from qa import fusion
from qa.evaluate import build_index, contains_answer, load_squad, normalize_answer
from qa.retrieve import Retriever
from qa.settings import Settings

DENSE_WEIGHTS = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8)
SENTENCE_WEIGHTS = (0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8)
RESCORE_DEPTHS = (20, 30, 50)
LEXICAL_POWERS = (1.0, 1.5, 2.0, 3.0)


@dataclass
class _Scored:
    article: str
    ids: np.ndarray        # candidate passage ids
    dense: np.ndarray      # cosine
    lexical: np.ndarray    # BM25 / best BM25 of the query
    sentence: np.ndarray   # best sentence cosine
    relevant: np.ndarray   # passage contains a gold answer


def _rank_of_first(scored: _Scored, dw: float, sw: float, depth: int, power: float) -> int | None:
    ranked, _ = fusion.rank("hybrid", scored.dense, scored.lexical, scored.sentence,
                            fusion.Weights(dw, power, sw, depth))
    hits = np.nonzero(scored.relevant[ranked])[0]
    return int(hits[0]) + 1 if len(hits) else None


def _metrics(ranks: list[int | None]) -> dict:
    n = max(len(ranks), 1)
    return {"r1": sum(1 for r in ranks if r and r <= 1) / n, "r5": sum(1 for r in ranks if r and r <= 5) / n,
            "r20": sum(1 for r in ranks if r and r <= 20) / n,
            "mrr10": sum(1 / r for r in ranks if r and r <= 10) / n, "questions": len(ranks)}


def cross_validate(path: Path, settings: Settings, encoder: Encoder, folds: int = 4,
                   progress: bool = True) -> dict:
    """Per-fold chosen weights and held-out figures, plus the pooled held-out figures."""
    report = choose_weights(score_questions(path, settings, encoder, progress), settings, folds)
    report["dataset"] = str(path)
    return report


def score_questions(path: Path, settings: Settings, encoder: Encoder, progress: bool = True) -> list[_Scored]:
    """Every question's candidates with their cosine, BM25 and best-sentence scores."""
    from tqdm import tqdm

    lines, questions = load_squad(path)
    with tempfile.TemporaryDirectory(prefix="qa-tune-") as tmp:
        index, settings = build_index(lines, settings, encoder, Path(tmp), progress)
        retriever = Retriever(index, encoder, settings)
        qvecs = encoder.encode([q.text for q in questions], progress=progress)
        scored = []
        for q, qvec in tqdm(list(zip(questions, qvecs)), desc="scoring", disable=not progress):
            found = retriever.candidates(q.text, qvec)
            sentences = retriever.sentence_scores(qvec, found.ids)
            passages = index.store.passages(found.ids.tolist())
            golds = [normalize_answer(a) for a in q.answers]
            scored.append(_Scored(
                q.article, found.ids, found.dense, found.lexical,
                np.array([max(sentences[int(i)], default=0.0) for i in found.ids]),
                np.array([contains_answer(passages[int(i)].text, golds) for i in found.ids])))
        index.close()
    return scored


def choose_weights(scored: list[_Scored], settings: Settings, folds: int = 4) -> dict:
    """Grid-search the weights on all folds but one, report that one; once per fold."""
    articles = sorted({s.article for s in scored})
    fold_of = {a: n % folds for n, a in enumerate(articles)}
    grid = list(itertools.product(DENSE_WEIGHTS, SENTENCE_WEIGHTS, RESCORE_DEPTHS, LEXICAL_POWERS))
    ranks = {w: [_rank_of_first(s, *w) for s in scored] for w in grid}
    report, pooled = {"folds": []}, []
    for f in range(folds):
        train = [i for i, s in enumerate(scored) if fold_of[s.article] != f]
        test = [i for i, s in enumerate(scored) if fold_of[s.article] == f]
        best = max(grid, key=lambda w: _metrics([ranks[w][i] for i in train])["mrr10"])
        held_out = [ranks[best][i] for i in test]
        pooled.extend(held_out)
        report["folds"].append({"dense_weight": best[0], "sentence_weight": best[1], "rescore_depth": best[2],
                                "lexical_power": best[3],
                                "train": _metrics([ranks[best][i] for i in train]),
                                "test": _metrics(held_out),
                                "test_articles": [a for a in articles if fold_of[a] == f]})
    report["held_out"] = _metrics(pooled)
    everything = max(grid, key=lambda w: _metrics(ranks[w])["mrr10"])
    report["best_on_all"] = {"dense_weight": everything[0], "sentence_weight": everything[1],
                             "rescore_depth": everything[2],
                             "lexical_power": everything[3], **_metrics(ranks[everything])}
    current = (settings.dense_weight, settings.sentence_weight, settings.rescore_depth, settings.lexical_power)
    if current in ranks:
        report["current"] = {"dense_weight": current[0], "sentence_weight": current[1],
                             "rescore_depth": current[2],
                             "lexical_power": current[3], **_metrics(ranks[current])}
    report["grid_all"] = {f"dw={dw} sw={sw} depth={d} power={p}": _metrics(r)
                          for (dw, sw, d, p), r in ranks.items()}
    report["questions"] = len(scored)
    return report


def format_cv(report: dict) -> str:
    """Per-fold choices and held-out figures as a table."""
    def name(w):
        return (f"dw={w['dense_weight']} sw={w['sentence_weight']} depth={w['rescore_depth']} "
                f"power={w['lexical_power']}")

    def row(label, m):
        return (f"{label:<52} {m['r1']:>7.3f} {m['r5']:>7.3f} {m['r20']:>7.3f} {m['mrr10']:>7.3f} "
                f"{m['questions']:>6}")
    lines = [f"{'':<52} {'ansR@1':>7} {'ansR@5':>7} {'ansR@20':>7} {'MRR@10':>7} {'qs':>6}"]
    for n, f in enumerate(report["folds"], 1):
        lines += [row(f"fold {n} train, {name(f)}", f["train"]), row(f"fold {n} held out", f["test"])]
    lines.append(row("held out, pooled", report["held_out"]))
    lines.append(row(f"best on all, {name(report['best_on_all'])}", report["best_on_all"]))
    if "current" in report:
        lines.append(row(f"default, {name(report['current'])}", report["current"]))
    return "\n".join(lines)
