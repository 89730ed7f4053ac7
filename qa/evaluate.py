"""Evaluate retrieval on a SQuAD-format question set, through exactly the app's pipeline.

Each SQuAD article becomes one indexed article (title = the Wikipedia title, paragraphs
separated by blank lines form the body; keyed by its ``url`` when the file gives one, as the
news sets do, since titles of regular round-ups repeat), split and encoded with the
configured settings, in a temporary index (or ``work_dir``, reused when run again). Every
question is then asked through ``Retriever.search`` and scored; a question with an
``asked_on`` date (the news sets) is asked as of that date, so articles published later
cannot be found:

* ansR@k: a gold answer appears in one of the top k passages, as whole tokens after SQuAD
  normalisation ("Etna" is not found in "Vietnam", nor "India" in "Indiana");
* MRR@10: 1 / rank of the first passage containing a gold answer (0 beyond 10);
* answer line: the share of questions whose one-line answer (what the user reads first)
  contains a gold answer;
* not covered: the share of these answerable questions the "not covered" rule would refuse;
* off-topic refused (``off_topic``: questions written about other articles, asked of this
  index): the share the rule refuses, which it should; a question whose answer one of its
  top three passages holds anyway is left out of it.
"""

from __future__ import annotations

import contextlib
import functools
import json
import re
import tempfile
import time
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from embeddings.encoder import Encoder
from embeddings.reader import open_index
from embeddings.store import Filters
from qa.answer import best_evidence, is_covered
from qa.fusion import METHODS
from qa.pipeline import cited_answer
from qa.retrieve import Retriever
from qa.settings import Settings

KS = tuple(range(1, 21))


@dataclass(frozen=True)
class Question:
    id: str
    article: str                  # the key of the article it was written on
    text: str
    answers: tuple[str, ...]
    asked_on: str | None = None   # YYYY-MM-DD: the day it was asked (news sets)


_PUNCTUATION = re.compile(r"[^\w\s]|_")
_IN_NUMBER = re.compile(r"(?<=\d)[^\w\s](?=\d)")  # "1,000", "3.5", "10:30" stay one token
_ARTICLES = re.compile(r"\b(a|an|the)\b")


@functools.lru_cache(maxsize=65536)  # passages recur across questions
def normalize_answer(text: str) -> str:
    """SQuAD's normalisation: lower case, no punctuation, no articles, single spaces.

    Punctuation is any character that is neither a letter, a digit nor a space, so the
    curly quotes and dashes of news text go too (SQuAD's own script removes ASCII
    punctuation only, which left ``“trump`` as a token). It ends a token, as in DPR's
    tokenizer, instead of vanishing: deleted, it glued ``Taiwan’s`` into ``taiwans`` and
    ``Trump–Biden`` into ``trumpbiden``, where neither name could then be found. Inside a
    number it still vanishes, so "1" is not found in "1,000":

    >>> normalize_answer("“The Trump–Biden debate,” she said.")
    'trump biden debate she said'
    >>> normalize_answer("It cost $1,000.")
    'it cost 1000'
    """
    text = _ARTICLES.sub(" ", _PUNCTUATION.sub(" ", _IN_NUMBER.sub("", text.lower())))
    return " ".join(text.split())


def contains_answer(text: str, golds: list[str]) -> bool:
    """True when one of the normalised gold answers occurs in the normalised ``text`` as
    whole tokens (as DPR's ``has_answer`` checks).

    >>> contains_answer("A volcano in Vietnam.", [normalize_answer("Etna")])
    False
    >>> contains_answer("Mount Etna erupted.", [normalize_answer("Etna")])
    True
    """
    padded = f" {normalize_answer(text)} "
    return any(g and f" {g} " in padded for g in golds)


def load_squad(path: Path, limit: int | None = None, articles: set[str] | None = None):
    """``(articles as jsonl lines, questions)``; ``limit`` keeps an evenly spread subset.

    An article is keyed by its ``url`` when it has one, else by its title; its ``date`` and
    ``url`` are kept, and so is a question's ``asked_on``.
    """
    data = json.loads(Path(path).read_text(encoding="utf-8"))["data"]
    lines, questions = [], []
    for art in data:
        key = art.get("url") or art["title"]
        if articles is not None and key not in articles:
            continue
        body = "\n\n".join(p["context"].strip() for p in art["paragraphs"])
        lines.append(json.dumps({"id": key, "title": art["title"].replace("_", " "), "text": body,
                                 "date": art.get("date"), "url": art.get("url")}))
        for p in art["paragraphs"]:
            for qa in p["qas"]:
                questions.append(Question(qa["id"], key, qa["question"], tuple(a["text"] for a in qa["answers"]),
                                          qa.get("asked_on")))
    if limit is not None and limit < len(questions):
        step = len(questions) / limit
        questions = [questions[int(i * step)] for i in range(limit)]
    return lines, questions


def as_of_filter(question: Question) -> Filters:
    """Only what could have been read on the day the question was asked (if it says)."""
    return Filters(as_of=question.asked_on)


@contextlib.contextmanager
def _workdir(work_dir: Path | None):
    """``work_dir`` (kept, so a second run re-encodes nothing), or a temporary folder."""
    if work_dir is not None:
        Path(work_dir).mkdir(parents=True, exist_ok=True)
        yield Path(work_dir)
        return
    with tempfile.TemporaryDirectory(prefix="qa-eval-") as tmp:
        yield Path(tmp)


def build_index(lines: list[str], settings: Settings, encoder: Encoder, workdir: Path,
                progress: bool = True):
    """Index the articles into ``workdir`` (incrementally); returns the opened index."""
    from embeddings.indexer import update_index

    src = workdir / "articles"
    src.mkdir(exist_ok=True)
    (src / "articles.jsonl").unlink(missing_ok=True)
    for n in range(0, len(lines), 1000):  # under the per-file size limit
        (src / f"{n // 1000:05d}.jsonl").write_text("\n".join(lines[n:n + 1000]) + "\n", encoding="utf-8")
    index_settings = replace(settings.index, index_dir=workdir / "index")
    update_index([src], index_settings, encoder, progress=progress)
    return open_index(index_settings, encoder.identity, encoder.dimension), replace(settings, index=index_settings)


def score_method(retriever: Retriever, questions: list[Question], method: str,
                 progress: bool = True) -> dict:
    """Recall@1..20, MRR@10, answer-line accuracy, not-covered share and time for one method."""
    from tqdm import tqdm

    first_hit = []  # rank (1-based) of the first passage holding an answer, or None
    evidence = []  # what the "not covered" rule reads, per question
    refused = answered = 0
    seconds = 0.0
    for q in tqdm(questions, desc=f"{method:>8}", disable=not progress, leave=False):
        start = time.perf_counter()
        hits = retriever.search(q.text, k=max(KS), method=method, filters=as_of_filter(q), as_of=q.asked_on)
        seconds += time.perf_counter() - start
        golds = [normalize_answer(a) for a in q.answers]
        rank = next((r for r, h in enumerate(hits, 1) if contains_answer(h.passage.text, golds)), None)
        first_hit.append(rank)
        answer = cited_answer(retriever, q.text, q.text, hits)  # quoted from the first answer_sources, as ask()
        answered += answer.covered and contains_answer(answer.quote, golds)  # not its "[2]"
        if method == "hybrid":
            evidence.append(best_evidence(hits))
            refused += not is_covered(hits, retriever.settings)
    n = len(questions)
    recall = {k: sum(1 for r in first_hit if r is not None and r <= k) / n for k in KS}
    mrr = sum(1 / r for r in first_hit if r is not None and r <= 10) / n
    return {"method": method, "questions": n, "recall": recall, "mrr10": mrr, "answer_line": answered / n,
            "not_covered": refused / n if method == "hybrid" else None,
            "evidence_percentiles": _percentiles(evidence, (1, 2, 5, 50)),
            "seconds": seconds, "ms_per_question": 1000 * seconds / n, "ranks": first_hit}


def off_topic_refusal(retriever: Retriever, questions: list[Question], progress: bool = True) -> dict:
    """Ask questions written about other articles (none of them indexed here) the way the app
    does (the default method, any date) and count how many the "not covered" rule refuses.
    A question whose gold answer one of its top three passages holds is left out: this index
    answers it by chance ("Who won?" and "France").
    """
    from tqdm import tqdm

    considered = refused = 0
    evidence = []
    for q in tqdm(questions, desc="off-topic", disable=not progress, leave=False):
        hits = retriever.search(q.text)
        golds = [normalize_answer(a) for a in q.answers]
        if any(contains_answer(h.passage.text, golds) for h in hits[:3]):
            continue
        considered += 1
        refused += not is_covered(hits, retriever.settings)
        evidence.append(best_evidence(hits))
    return {"questions": len(questions), "considered": considered,
            "refused": refused / considered if considered else None,
            "evidence_percentiles": _percentiles(evidence, (50, 90, 95, 99))}


def _percentiles(values: list[float], ps: tuple[int, ...]) -> dict | None:
    return {p: float(np.percentile(values, p)) for p in ps} if values else None


def evaluate_squad(path: Path, settings: Settings, encoder: Encoder, methods=METHODS,
                   limit: int | None = None, progress: bool = True, work_dir: Path | None = None,
                   off_topic: Path | None = None) -> dict:
    """Index ``path`` (in ``work_dir``, else a temporary folder) and score each method; with
    ``off_topic`` (a SQuAD-format file about other articles), also how many of its questions
    the "not covered" rule refuses here (``off_topic_refusal``)."""
    lines, questions = load_squad(path, limit)
    strangers = load_squad(off_topic)[1] if off_topic is not None else None
    with _workdir(work_dir) as tmp:
        started = time.perf_counter()
        index, settings = build_index(lines, settings, encoder, tmp, progress)
        build_seconds = time.perf_counter() - started
        try:
            retriever = Retriever(index, encoder, settings)
            results = [score_method(retriever, questions, m, progress) for m in methods]
            refusal = off_topic_refusal(retriever, strangers, progress) if strangers is not None else None
            passages = index.store.counts()["passages"]
        finally:
            index.close()
    report = {"dataset": str(path), "articles": len(lines), "passages": passages,
              "questions": len(questions), "index_seconds": build_seconds,
              "settings": _settings_dict(settings), "results": results}
    if refusal is not None:
        report["off_topic"] = {"dataset": str(off_topic), **refusal}
    return report


def format_table(report: dict) -> str:
    """The report as a fixed-width table."""
    lines = [f"{report['questions']} questions, {report['articles']} articles, "
             f"{report['passages']} passages (indexed in {report['index_seconds']:.0f} s)",
             f"{'method':<9} {'ansR@1':>7} {'ansR@5':>7} {'ansR@20':>7} {'MRR@10':>7} "
             f"{'answer':>7} {'not cov.':>8} {'ms/q':>6}"]
    for r in report["results"]:
        nc = f"{r['not_covered']:.3f}" if r["not_covered"] is not None else "-"
        lines.append(f"{r['method']:<9} {r['recall'][1]:>7.3f} {r['recall'][5]:>7.3f} "
                     f"{r['recall'][20]:>7.3f} {r['mrr10']:>7.3f} {r['answer_line']:>7.3f} {nc:>8} "
                     f"{r['ms_per_question']:>6.1f}")
    lines.append("answer: share of questions whose one-line answer holds a gold answer; "
                 "ms/q: search time per question (no cache: every question costs the same)")
    off = report.get("off_topic")
    if off:
        refused = f"{off['refused']:.3f}" if off["refused"] is not None else "-"
        lines.append(f"off-topic ({Path(off['dataset']).name}): {refused} refused of {off['considered']} questions "
                     f"({off['questions'] - off['considered']} left out: a top-3 passage holds their answer)")
    return "\n".join(lines)


def save_report(report: dict, out: Path) -> Path:
    """Write the JSON report and a recall@k plot (``OUT`` with ``.png``) beside it."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    slim = {**report, "results": [{k: v for k, v in r.items() if k != "ranks"} for r in report["results"]]}
    out.write_text(json.dumps(slim, indent=2) + "\n", encoding="utf-8")
    plot = out.with_suffix(".png")
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    for r in report["results"]:
        ax.plot(KS, [r["recall"][k] for k in KS], marker=".", label=r["method"])
    ax.set_xlabel("k (passages retrieved)")
    ax.set_ylabel("answer recall@k")
    ax.set_xticks([1, 5, 10, 15, 20])
    ax.grid(alpha=0.3)
    ax.legend()
    ax.set_title(f"{Path(report['dataset']).name}: {report['questions']} questions")
    fig.tight_layout()
    fig.savefig(plot, dpi=110)
    plt.close(fig)
    return plot


def _settings_dict(settings: Settings) -> dict:
    serving = ("index", "uploads_dir", "web_dir", "upload_budget_mb", "web_rebuild")  # not retrieval settings
    d = {k: v for k, v in settings.__dict__.items() if k not in serving}
    d["chunker"] = settings.index.chunker()
    return d
