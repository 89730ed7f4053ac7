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
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from embeddings.encoder import Encoder
from qa import fusion
from qa.evaluate import _workdir, as_of_filter, build_index, contains_answer, load_squad, normalize_answer
from qa.retrieve import Retriever, ages_in_days, best_sentence_score
from qa.settings import Settings

DENSE_WEIGHTS = (0.2, 0.3, 0.4, 0.5, 0.6, 0.7)
SENTENCE_WEIGHTS = (0.0, 0.3, 0.5, 0.6, 0.7, 0.8, 0.9)
RESCORE_DEPTHS = (30, 50)
LEXICAL_POWERS = (1.0, 2.0, 3.0)
SENTENCE_LEXICAL = (0.0, 0.1, 0.2, 0.3, 0.4, 0.6)


@dataclass
class _Scored:
    article: str
    ids: np.ndarray        # candidate passage ids
    dense: np.ndarray      # cosine
    lexical: np.ndarray    # BM25 / best BM25 of the query
    sentence: dict         # sentence_lexical -> best sentence score of each candidate
    relevant: np.ndarray   # passage contains a gold answer
    age: np.ndarray | None = None  # days from each candidate's date to the day asked (news)


def _rank_of_first(scored: _Scored, dw: float, sw: float, depth: int, power: float,
                   beta: float = 0.0, recency: tuple[float, float] = (0.0, 30.0)) -> int | None:
    ranked, _ = fusion.rank("hybrid", scored.dense, scored.lexical, scored.sentence[beta],
                            fusion.Weights(dw, power, sw, depth, beta, *recency), scored.age)
    hits = np.nonzero(scored.relevant[ranked])[0]
    return int(hits[0]) + 1 if len(hits) else None


def _metrics(ranks: list[int | None]) -> dict:
    n = max(len(ranks), 1)
    return {"r1": sum(1 for r in ranks if r and r <= 1) / n, "r5": sum(1 for r in ranks if r and r <= 5) / n,
            "r20": sum(1 for r in ranks if r and r <= 20) / n,
            "mrr10": sum(1 / r for r in ranks if r and r <= 10) / n, "questions": len(ranks)}


KEYS = ("dense_weight", "sentence_weight", "rescore_depth", "lexical_power", "sentence_lexical")


def cross_validate(paths: list[Path], settings: Settings, encoder: Encoder, folds: int = 4,
                   progress: bool = True, work_dir: Path | None = None) -> dict:
    """Per-fold chosen weights and held-out figures for each question set, and pooled ones."""
    sets = {Path(p).name: score_questions(Path(p), settings, encoder, progress,
                                          Path(work_dir) / Path(p).stem if work_dir else None) for p in paths}
    report = choose_weights(sets, settings, folds)
    report["datasets"] = [str(p) for p in paths]
    return report


def score_questions(path: Path, settings: Settings, encoder: Encoder, progress: bool = True,
                    work_dir: Path | None = None) -> list[_Scored]:
    """Every question's candidates with their cosine, BM25 and best-sentence scores.

    Questions are grouped for the folds by the week they were asked about when the set says
    (news), else by article (SQuAD).
    """
    from tqdm import tqdm

    lines, questions = load_squad(path)
    with _workdir(work_dir) as tmp:
        index, settings = build_index(lines, settings, encoder, tmp, progress)
        retriever = Retriever(index, encoder, settings)
        qvecs = encoder.encode([q.text for q in questions], progress=progress)
        scored = []
        for q, qvec in tqdm(list(zip(questions, qvecs)), desc="scoring", disable=not progress):
            found = retriever.candidates(q.text, qvec, as_of_filter(q))
            if found is None:
                continue
            passages = index.store.passages(found.ids.tolist())
            evidence = retriever.sentence_evidence(qvec, passages, retriever.query_terms(q.text))
            best = {beta: np.array([best_sentence_score(evidence[int(i)], fusion.Weights(sentence_lexical=beta))
                                    for i in found.ids]) for beta in SENTENCE_LEXICAL}
            golds = [normalize_answer(a) for a in q.answers]
            scored.append(_Scored(q.asked_on or q.article, found.ids, found.dense, found.lexical, best,
                                  np.array([contains_answer(passages[int(i)].text, golds) for i in found.ids]),
                                  ages_in_days(found.ids, passages, q.asked_on)))
        index.close()
    return scored


def choose_weights(sets: dict[str, list[_Scored]], settings: Settings, folds: int = 4) -> dict:
    """Grid-search the weights on all folds but one, report that one; once per fold.

    Each set's groups (articles, or weeks) are dealt into ``folds`` folds, and fold ``f`` of
    every set is held out together. A setting is scored on the training folds by the worse
    of the sets: its MRR@10 on a set divided by the best MRR@10 any setting reaches there,
    so a setting must hold on every kind of question, not on the average.
    """
    grid = list(itertools.product(DENSE_WEIGHTS, SENTENCE_WEIGHTS, RESCORE_DEPTHS, LEXICAL_POWERS, SENTENCE_LEXICAL))
    recency = (settings.recency, settings.recency_days)  # held at the setting (see docs/evaluation.md)
    fold_of, ranks = {}, {}
    for name, scored in sets.items():
        groups = sorted({s.article for s in scored})
        fold_of[name] = [groups.index(s.article) % folds for s in scored]
        ranks[name] = {w: [_rank_of_first(s, *w, recency=recency) for s in scored] for w in grid}

    def choose(part):
        return _worse_set_best({name: {w: _metrics([ranks[name][w][i] for i in part(name)])["mrr10"]
                                       for w in grid} for name in sets})

    def named(w):
        return dict(zip(KEYS, w))

    report = {"folds": [], "held_out": {}, "grid": len(grid)}
    pooled = {name: [] for name in sets}
    for f in range(folds):
        train = lambda name: [i for i, g in enumerate(fold_of[name]) if g != f]  # noqa: E731
        test = lambda name: [i for i, g in enumerate(fold_of[name]) if g == f]  # noqa: E731
        best = choose(train)
        entry = {**named(best), "sets": {}}
        for name in sets:
            held = [ranks[name][best][i] for i in test(name)]
            pooled[name].extend(held)
            entry["sets"][name] = {"train": _metrics([ranks[name][best][i] for i in train(name)]),
                                   "test": _metrics(held)}
        report["folds"].append(entry)
    report["held_out"] = {name: _metrics(r) for name, r in pooled.items()}
    everything = choose(lambda name: range(len(sets[name])))
    report["best_on_all"] = {**named(everything),
                             "sets": {name: _metrics(ranks[name][everything]) for name in sets}}
    current = (settings.dense_weight, settings.sentence_weight, settings.rescore_depth, settings.lexical_power,
               settings.sentence_lexical)
    if current in grid:
        report["current"] = {**named(current), "sets": {name: _metrics(ranks[name][current]) for name in sets}}
    report["grid_all"] = {name: {" ".join(f"{k}={v}" for k, v in named(w).items()): _metrics(ranks[name][w])
                                 for w in grid} for name in sets}
    report["questions"] = {name: len(s) for name, s in sets.items()}
    return report


def _worse_set_best(per_set: dict[str, dict]) -> tuple:
    """The setting whose worse set does best, each set's MRR@10 taken relative to the best
    any setting reaches on it (ties: the first setting of the grid).

    >>> _worse_set_best({"squad": {"A": 0.93, "B": 0.92}, "news": {"A": 0.30, "B": 0.40}})
    'B'
    """
    top = {name: max(v.values()) or 1.0 for name, v in per_set.items()}
    settings = list(next(iter(per_set.values())))
    return max(settings, key=lambda w: min(v[w] / top[name] for name, v in per_set.items()))


def format_cv(report: dict) -> str:
    """Per-fold choices and held-out figures as a table."""
    def name(w):
        return (f"dw={w['dense_weight']} sw={w['sentence_weight']} depth={w['rescore_depth']} "
                f"power={w['lexical_power']} slex={w['sentence_lexical']}")

    def row(label, m):
        return (f"{label:<70} {m['r1']:>7.3f} {m['r5']:>7.3f} {m['r20']:>7.3f} {m['mrr10']:>7.3f} "
                f"{m['questions']:>6}")
    lines = [f"{'':<70} {'ansR@1':>7} {'ansR@5':>7} {'ansR@20':>7} {'MRR@10':>7} {'qs':>6}"]
    for n, f in enumerate(report["folds"], 1):
        lines.append(f"fold {n}: chosen on the other folds: {name(f)}")
        for set_name, m in f["sets"].items():
            lines.append(row(f"  {set_name} held out", m["test"]))
    for set_name, m in report["held_out"].items():
        lines.append(row(f"{set_name}: held out, pooled", m))
    lines.append(f"best on all: {name(report['best_on_all'])}")
    for set_name, m in report["best_on_all"]["sets"].items():
        lines.append(row(f"  {set_name}", m))
    if "current" in report:
        lines.append(f"default: {name(report['current'])}")
        for set_name, m in report["current"]["sets"].items():
            lines.append(row(f"  {set_name}", m))
    return "\n".join(lines)
