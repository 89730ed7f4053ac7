"""Choose the hybrid fusion weights by cross-validation across articles.

For every question the candidates' cosine, BM25 and best-sentence scores are computed once;
each weight setting is then just arithmetic. Articles are split into folds; for each fold the
weights that maximise MRR@10 on the other folds are chosen and scored on the held-out fold,
so the reported figures come from articles the weights never saw.
"""

from __future__ import annotations

import itertools
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from embeddings.encoder import Encoder
from qa.evaluate import build_index, load_squad, normalize_answer
from qa.retrieve import Retriever, fts_query
from qa.settings import Settings

DENSE_WEIGHTS = (0.3, 0.4, 0.5, 0.6, 0.7)
SENTENCE_WEIGHTS = (0.0, 0.1, 0.2, 0.3, 0.4, 0.5)


@dataclass
class _Scored:
    article: str
    ids: np.ndarray        # candidate passage ids
    dense: np.ndarray      # cosine
    lexical: np.ndarray    # BM25 / best BM25 of the query
    sentence: np.ndarray   # best sentence cosine
    relevant: np.ndarray   # passage contains a gold answer


def _rank_of_first(scored: _Scored, dw: float, sw: float, depth: int) -> int | None:
    fused = dw * scored.dense + (1 - dw) * scored.lexical
    order = np.argsort(-fused, kind="stable")
    top, rest = order[:depth], order[depth:]
    final = (1 - sw) * fused[top] + sw * scored.sentence[top]
    ranked = np.concatenate([top[np.argsort(-final, kind="stable")], rest])
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
    from tqdm import tqdm

    lines, questions = load_squad(path)
    with tempfile.TemporaryDirectory(prefix="qa-tune-") as tmp:
        index, settings = build_index(lines, settings, encoder, Path(tmp), progress)
        retriever = Retriever(index, encoder, settings)
        qvecs = encoder.encode([q.text for q in questions], progress=progress)
        scored = []
        for q, qvec in tqdm(list(zip(questions, qvecs)), desc="scoring", disable=not progress):
            dense = dict(index.vectors.search(qvec, settings.candidates))
            lexical = dict(index.store.lexical_search(fts_query(q.text), settings.candidates,
                                                      title_weight=settings.title_weight))
            missing = [i for i in lexical if i not in dense]
            if missing:
                dense.update(index.vectors.search(qvec, len(missing), missing))
            ids = sorted(dense)
            passages = index.store.passages(ids)
            plist = [passages[i] for i in ids]
            best = [max(s for _, _, s in sents) for sents in retriever.sentences.score(qvec, plist)]
            top = max(lexical.values(), default=0.0)
            golds = [normalize_answer(a) for a in q.answers]
            scored.append(_Scored(
                q.article, np.array(ids), np.array([dense[i] for i in ids]),
                np.array([lexical.get(i, 0.0) / top if top else 0.0 for i in ids]), np.array(best),
                np.array([any(g and g in normalize_answer(p.text) for g in golds) for p in plist])))
        index.close()

    articles = sorted({s.article for s in scored})
    fold_of = {a: n % folds for n, a in enumerate(articles)}
    grid = list(itertools.product(DENSE_WEIGHTS, SENTENCE_WEIGHTS))
    ranks = {w: [_rank_of_first(s, *w, settings.rescore_depth) for s in scored] for w in grid}
    report, pooled = {"folds": []}, []
    for f in range(folds):
        train = [i for i, s in enumerate(scored) if fold_of[s.article] != f]
        test = [i for i, s in enumerate(scored) if fold_of[s.article] == f]
        best = max(grid, key=lambda w: _metrics([ranks[w][i] for i in train])["mrr10"])
        held_out = [ranks[best][i] for i in test]
        pooled.extend(held_out)
        report["folds"].append({"dense_weight": best[0], "sentence_weight": best[1],
                                "train": _metrics([ranks[best][i] for i in train]),
                                "test": _metrics(held_out),
                                "test_articles": [a for a in articles if fold_of[a] == f]})
    report["held_out"] = _metrics(pooled)
    report["grid_all"] = {f"{dw}/{sw}": _metrics(r) for (dw, sw), r in ranks.items()}
    return report
