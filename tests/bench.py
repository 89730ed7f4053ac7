"""``make bench``: speed figures, each with a baseline measured in the same process.

* question latency: BM25 alone (baseline) vs the full ``ask()`` the app runs, the first time
  (sentence vectors of the rescored passages still to compute) and again (cached);
* FAISS single-query search over 20,000 random vectors: 2 OpenMP threads (baseline) vs 1;
* passage encoding throughput with the packaged model (fp32, the shipped setting).

Figures vary with the machine and its load; compare ratios within one run.
"""

from __future__ import annotations

import resource
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np

from embeddings.encoder import SentenceTransformerEncoder
from embeddings.indexer import open_index, update_index
from embeddings.settings import IndexSettings
from embeddings.vector_index import FaissIndex
from qa.pipeline import ask
from qa.retrieve import Retriever
from qa.settings import Settings
from qa.evaluate import load_squad
from tests.conftest import SQUAD
from tests.test_seed_questions import OFF_TOPIC, ON_TOPIC

SEEDS = Path(__file__).resolve().parent.parent / "seeds"


def timed(fn, repeat: int) -> float:
    """Median milliseconds of ``fn()`` over ``repeat`` runs (after one warm-up)."""
    fn()
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(1000 * (time.perf_counter() - start))
    return statistics.median(times)


def bench_questions(encoder) -> None:
    """On 3 SQuAD articles when ../shared is there (seed questions on the seed otherwise)."""
    with tempfile.TemporaryDirectory() as tmp:
        settings = Settings(index=IndexSettings(index_dir=Path(tmp) / "index"))
        if SQUAD.exists():
            lines, questions = load_squad(SQUAD)
            keep = {q.article for q in questions[:1]} | {q.article for q in questions[-1:]}
            keep |= {questions[len(questions) // 2].article}
            lines, questions = load_squad(SQUAD, articles=keep)
            questions = [q.text for q in questions[::max(1, len(questions) // 60)]]
            (Path(tmp) / "a.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
            update_index([Path(tmp) / "a.jsonl"], settings.index, encoder)
            where = f"3 SQuAD articles, {len(questions)} of their questions"
        else:
            questions = [q for q, *_ in ON_TOPIC] + list(OFF_TOPIC)
            update_index([SEEDS], settings.index, encoder)
            where = f"the seed article, {len(questions)} questions"
        index = open_index(settings.index, encoder.identity, encoder.dimension)
        retriever = Retriever(index, encoder, settings)
        passages = index.store.counts()["passages"]
        lexical = timed(lambda: [retriever.search(q, method="lexical") for q in questions], 3) / len(questions)
        start = time.perf_counter()
        for q in questions:  # sentence vectors not cached yet: what a fresh corpus costs
            ask(retriever, q)
        cold = 1000 * (time.perf_counter() - start) / len(questions)
        warm = timed(lambda: [ask(retriever, q) for q in questions], 3) / len(questions)
        index.close()
    print(f"questions ({where}; {passages} passages):")
    print(f"  BM25 only (baseline)           {lexical:7.1f} ms/question")
    print(f"  ask(), sentence cache cold     {cold:7.1f} ms/question   x{cold / lexical:.1f} of baseline")
    print(f"  ask(), sentence cache warm     {warm:7.1f} ms/question   x{warm / lexical:.1f} of baseline")


def bench_faiss() -> None:
    import faiss

    rng = np.random.default_rng(0)
    vectors = rng.standard_normal((20_000, 384)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    index = FaissIndex(384)
    index.append(np.arange(len(vectors)), vectors)
    queries = vectors[:200] + 0.01

    def run(threads: int) -> float:
        def go():
            for q in queries:
                faiss.omp_set_num_threads(threads)
                index._index.search(q[None, :], 50)
        return timed(go, 5) / len(queries)

    two, one = run(2), run(1)
    print("FAISS flat search, 20,000 x 384, k = 50, one query at a time:")
    print(f"  2 threads (baseline)  {two:7.3f} ms/query")
    print(f"  1 thread (shipped)    {one:7.3f} ms/query   x{two / one:.2f} faster")


def bench_encoding(encoder) -> None:
    text = (SEEDS / "000_12a2af69bb612d53.txt").read_text(encoding="utf-8")
    paragraphs = [p for p in text.split("\n\n") if p.strip()]
    passages = (paragraphs * (64 // len(paragraphs) + 1))[:64]
    encoder.encode(passages[:8])  # load the model first
    start = time.perf_counter()
    encoder.encode(passages)
    seconds = time.perf_counter() - start
    print(f"encoding {len(passages)} news paragraphs (fp32, batch {encoder.batch_size}): "
          f"{len(passages) / seconds:.1f} passages/s")


def main() -> None:
    encoder = SentenceTransformerEncoder()
    bench_questions(encoder)
    bench_faiss()
    bench_encoding(encoder)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"peak resident memory of this process: {peak:.0f} MiB")


if __name__ == "__main__":
    main()
