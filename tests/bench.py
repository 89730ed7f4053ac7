"""``make bench``: speed, memory and disk figures, each next to a baseline measured in the same run.

Rows (the targets are those of the "real news archive on two cores" work):

* indexing: ``update_index`` end to end on SQuAD half-a (real passages) against plain
  ``SentenceTransformer.encode`` of the same passages in fp32 with default settings;
* the answer path at 100k and 1M passages: full ``ask()`` for the first questions after the
  index is opened in a fresh process, against dense-only search in the same index;
* adding one article to the 100k-passage index, against that article's own encoding time;
* resident memory per passage at 1M, against fp32 flat vectors (1,536 B);
* disk per passage (store, vector file, manifest);
* ``qa serve`` start to first answer on the seed corpus.

The 100k and 1M corpora are generated: passages of five sentences sampled from SQuAD half-a
(real text, so BM25 sees real words; every sentence recurs, so posting lists are longer
than in a real archive: a pessimistic case), random unit vectors for passages and
sentences (the latency of exact and IVF search does not depend on their values) and
for story signatures (no two articles are copies, as the generated text is not), questions
from SQuAD. Needs ``../shared/data``. ``--quick`` skips the 1M corpus.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
SQUAD = ROOT.parent / "shared" / "data" / "squad-v1.1-dev-half-a.json"
ROWS: list[tuple[str, str, str, str]] = []  # figure, measured, baseline, target


def row(figure: str, measured: str, baseline: str, target: str) -> None:
    ROWS.append((figure, measured, baseline, target))
    print(f"  {figure}: {measured}  |  baseline {baseline}  |  target {target}", flush=True)


def rss() -> int:
    """Resident memory of this process now, in bytes."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    return 0


def settings_for(index_dir: Path, **overrides):
    from qa.cli import _cache_dir
    from qa.settings import Settings
    from embeddings.settings import IndexSettings

    return Settings(index=IndexSettings(index_dir=index_dir, model_cache=_cache_dir(), **overrides))


# -- indexing -------------------------------------------------------------------------------

def bench_indexing(tmp: Path) -> None:
    from qa.evaluate import load_squad
    from embeddings.encoder import model_path
    from embeddings.indexer import update_index
    from embeddings.reader import encoder_for
    from embeddings.store import Store

    print("indexing SQuAD half-a (real passages):", flush=True)
    lines, _ = load_squad(SQUAD)
    source = tmp / "squad.jsonl"
    source.write_text("\n".join(lines) + "\n", encoding="utf-8")
    figures = {}
    for mode in ("in-context", "separate"):
        settings = settings_for(tmp / f"index-{mode}", sentence_vectors=mode)
        encoder = encoder_for(settings.index)
        encoder.load()
        encoder.encode(["warm up"])
        start = time.perf_counter()
        report = update_index([source], settings.index, encoder)
        figures[mode] = (report.passages_encoded, time.perf_counter() - start, encoder.identity)
    with Store(tmp / "index-in-context" / "store.sqlite") as store:
        ids, stored = store.vectors()
        texts = [p.text for p in store.passages(ids.tolist()).values()]
        texts = [store.passages([int(i)])[int(i)].text for i in ids]
    from sentence_transformers import SentenceTransformer

    model = SentenceTransformer(str(model_path()), device="cpu")
    model.encode(texts[:16])
    start = time.perf_counter()
    reference = model.encode(texts, normalize_embeddings=True)
    baseline = len(texts) / (time.perf_counter() - start)
    cosine = float((reference * stored).sum(axis=1).min())
    for mode, (n, seconds, identity) in figures.items():
        rate = n / seconds
        default = " (default)" if mode == "in-context" else ""
        row(f"qa index, {n} passages, {identity['backend']} {identity['precision']}, sentence vectors "
            f"{mode}{default}", f"{rate:.1f} passages/s = x{rate / baseline:.2f}",
            f"plain SentenceTransformer.encode fp32 {baseline:.1f} passages/s", ">= x2.5")
    row("min cosine of stored passage vectors to fp32", f"{cosine:.5f}", "fp32 = 1", ">= 0.999")


# -- generated archives -------------------------------------------------------------------------

def squad_text():
    from embeddings.passages import split_sentences
    from qa.evaluate import load_squad

    data = json.loads(SQUAD.read_text(encoding="utf-8"))["data"]
    sentences = [p["context"][a:b] for art in data for p in art["paragraphs"]
                 for a, b in split_sentences(p["context"])]
    return sentences, [q.text for q in load_squad(SQUAD)[1]]


def generate_index(index_dir: Path, passages: int, encoder, sentences: list[str], seed: int = 0) -> float:
    """An index of ``passages`` generated passages (14 per article), built through the store."""
    from embeddings.articles import Article
    from embeddings.passages import Passage
    from embeddings.reader import STORE_FILE, expected_build, save_derived, vectors_from_store
    from embeddings.store import Store
    from embeddings.stories import PERMUTATIONS, pack

    settings = settings_for(index_dir).index
    build = expected_build(settings, encoder.identity, encoder.dimension)
    rng = np.random.default_rng(seed)
    dim = encoder.dimension
    sources = ["Harbour Times", "Daily Ledger", "Wire Service", "Evening Post", "City Herald"]
    start = time.perf_counter()
    index_dir.mkdir(parents=True, exist_ok=True)
    with Store(index_dir / STORE_FILE) as store:
        batch, stories, made, n_article = [], {}, 0, 0
        while made < passages:
            count = min(14, passages - made)
            picks = rng.integers(0, len(sentences), (count, 5))
            texts, spans = [], []
            for row_ in picks:
                parts, offsets, at = [], [], 0
                for j in row_:
                    parts.append(sentences[j])
                    offsets.append((at, at + len(sentences[j])))
                    at += len(sentences[j]) + 1
                texts.append(" ".join(parts))
                spans.append(tuple(offsets))
            body = "\n\n".join(texts)
            day = int(rng.integers(0, 3650))
            date = np.datetime64("2015-01-01") + np.timedelta64(day, "D")
            aid = f"gen{n_article:08d}"
            article = Article(aid, f"generated#{aid}", "/generated", f"Generated story {n_article}", body,
                              str(date), sources[n_article % len(sources)], None)
            plist, at = [], 0
            for n, (text, ss) in enumerate(zip(texts, spans)):
                plist.append(Passage(aid, n, at, at + len(text), text, ss))
                at += len(text) + 2
            vectors = _unit(rng.standard_normal((count, dim)).astype(np.float32))
            sentence_vectors = [_unit(rng.standard_normal((len(ss), dim)).astype(np.float32)) for ss in spans]
            batch.append((article, plist, vectors, sentence_vectors))
            # a story signature as update_index stores one (random values: no two are copies),
            # so adding an article loads a grouping of this size instead of computing it
            stories[aid] = (aid, pack(rng.integers(0, 2 ** 32, PERMUTATIONS, dtype=np.uint64),
                                     len(body.split()) - 4))
            made += count
            n_article += 1
            if len(batch) >= 1000 or made >= passages:
                store.apply([], batch, build, ["/generated"], stories)
                batch, stories = [], {}
        store.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        save_derived(index_dir, store, vectors_from_store(store, settings))
    return time.perf_counter() - start


def _unit(v: np.ndarray) -> np.ndarray:
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def disk_bytes(index_dir: Path) -> int:
    return sum(p.stat().st_size for p in index_dir.iterdir() if p.is_file())


def measure_answers(index_dir: Path, questions: list[str]) -> dict:
    """In a fresh process: open the index, ask each question once (the first questions after
    start), then dense-only search for as many other questions; resident memory around it."""
    code = ("import json, sys; from tests.bench import _answer_child; "
            "print(json.dumps(_answer_child(sys.argv[1], json.loads(sys.stdin.read()))))")
    out = subprocess.run([sys.executable, "-c", code, str(index_dir)], input=json.dumps(questions),
                         capture_output=True, text=True, cwd=ROOT, check=True, timeout=1800)
    return json.loads(out.stdout.strip().splitlines()[-1])


def _answer_child(index_dir: str, questions: list[str]) -> dict:
    from embeddings.reader import encoder_for, open_index
    from qa import entities
    from qa.pipeline import ask
    from qa.retrieve import Retriever

    settings = settings_for(Path(index_dir))
    encoder = encoder_for(settings.index)
    encoder.encode(["warm up"])  # the model is loaded once at start, as `qa serve` does
    entities.tag(["Warm up."])  # and the entity tagger
    before = rss()
    start = time.perf_counter()
    index = open_index(settings.index, encoder.identity, encoder.dimension)
    open_seconds = time.perf_counter() - start
    retriever = Retriever(index, encoder, settings)
    half = len(questions) // 2
    full, dense, lexical = [], [], []
    for q in questions[:half]:
        t = time.perf_counter()
        ask(retriever, q)
        full.append(1000 * (time.perf_counter() - t))
    for q in questions[half:]:
        t = time.perf_counter()
        retriever.search(q, method="dense")
        dense.append(1000 * (time.perf_counter() - t))
    from qa.retrieve import content_words, match_any

    store = index.store
    for q in questions[:half]:  # the BM25 part of each ask(): choosing words, then FTS5
        t = time.perf_counter()
        words = store.lexical_words(content_words(q), settings.lexical_postings)
        store.lexical_search(match_any(words), settings.candidates, title_weight=settings.title_weight)
        lexical.append(1000 * (time.perf_counter() - t))
    after = rss()
    passages = index.store.counts()["passages"]
    return {"passages": passages, "kind": index.vectors.kind, "open_s": open_seconds,
            "ask": _percentiles(full), "dense": _percentiles(dense), "lexical": _percentiles(lexical),
            "rss_per_passage": (after - before) / max(passages, 1)}


def _percentiles(ms: list[float]) -> dict:
    return {"p50": float(np.percentile(ms, 50)), "p95": float(np.percentile(ms, 95)), "n": len(ms)}


def bench_archive(tmp: Path, passages: int, sentences: list[str], questions: list[str], encoder) -> None:
    label = f"{passages // 1000}k" if passages < 1_000_000 else f"{passages // 1_000_000}M"
    print(f"generated archive of {passages:,} passages:", flush=True)
    index_dir = tmp / f"archive-{label}"
    seconds = generate_index(index_dir, passages, encoder, sentences)
    print(f"  (generated and stored in {seconds:.0f} s)", flush=True)
    rng = np.random.default_rng(1)
    asked = [questions[i] for i in rng.choice(len(questions), 200, replace=False)]
    m = measure_answers(index_dir, asked)
    a, d, lx = m["ask"], m["dense"], m["lexical"]
    targets = "p50 <= 30 ms, p95 <= 60 ms" if passages <= 100_000 else "p50 <= 100 ms"
    row(f"{label}: full ask(), first {a['n']} questions after start ({m['kind']} vectors)",
        f"p50 {a['p50']:.1f} ms, p95 {a['p95']:.1f} ms",
        f"dense-only search p50 {d['p50']:.1f} ms, p95 {d['p95']:.1f} ms (x{a['p50'] / d['p50']:.1f})", targets)
    row(f"{label}: BM25 part of ask() (words within {settings_for(index_dir).lexical_postings:,} postings)",
        f"p50 {lx['p50']:.1f} ms, p95 {lx['p95']:.1f} ms", "-", "flat in archive size")
    row(f"{label}: resident memory per passage", f"{m['rss_per_passage']:.0f} B",
        "fp32 flat vectors 1536 B", "<= 2 KB at 1M")
    row(f"{label}: disk per passage", f"{disk_bytes(index_dir) / passages:.0f} B", "-", "<= 8 KB")
    row(f"{label}: opening the index", f"{m['open_s']:.2f} s", "-", "-")
    if passages <= 100_000:
        bench_add_one(tmp, index_dir, encoder)
    import shutil

    shutil.rmtree(index_dir)


def bench_add_one(tmp: Path, index_dir: Path, encoder) -> None:
    from embeddings.indexer import update_index
    from embeddings.passages import split_passages

    seed = (ROOT / "seeds").glob("*.txt")
    article = tmp / "new-article.txt"
    article.write_text(next(seed).read_text(encoding="utf-8"), encoding="utf-8")
    settings = settings_for(index_dir)
    encoder.encode_passages(["Warm up."], [((0, 8),)])  # the model is compiled once a process, as in qa serve
    start = time.perf_counter()
    report = update_index([article], settings.index, encoder)
    total = time.perf_counter() - start
    from embeddings.articles import load_articles

    [a] = load_articles(article)
    passages = split_passages(a.id, a.body, encoder.tokenizer, 256, 128, 1)
    start = time.perf_counter()
    encoder.encode_passages([p.text for p in passages], [p.sentences for p in passages])
    encoding = time.perf_counter() - start
    row(f"add one article ({report.passages_encoded} passages) to the 100k index",
        f"{total:.2f} s = {total - encoding:.2f} s beyond its encoding",
        f"its encoding {encoding:.2f} s", "<= 1 s beyond its encoding")


# -- serve --------------------------------------------------------------------------------

def bench_serve(tmp: Path) -> None:
    import socket
    import urllib.request

    from gradio_client import Client

    env = {**os.environ, "QA_INDEX_DIR": str(tmp / "seed-index"), "QA_UPLOADS_DIR": str(tmp / "uploads")}
    subprocess.run([sys.executable, "-m", "qa.cli", "index", str(ROOT / "seeds")], env=env, cwd=ROOT,
                   check=True, capture_output=True, timeout=600)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    start = time.perf_counter()
    server = subprocess.Popen([sys.executable, "-m", "qa.cli", "serve", "--port", str(port)], env=env, cwd=ROOT,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}/"
    try:
        while True:
            try:
                urllib.request.urlopen(url, timeout=2)
                break
            except OSError:
                if time.perf_counter() - start > 300:
                    raise RuntimeError("qa serve did not start")
                time.sleep(0.1)
        reply = Client(url, verbose=False).predict("Where does IS still hold villages?", 3, "", "", [],
                                                   api_name="/ask")
        seconds = time.perf_counter() - start
        assert "villages" in reply[0]["content"], reply
    finally:
        server.terminate()
        server.wait(30)
    row("qa serve start to first answer, seed corpus", f"{seconds:.1f} s", "-", "<= 10 s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="skip the 1M-passage archive")
    args = parser.parse_args()
    if not SQUAD.exists():
        sys.exit(f"make bench needs {SQUAD} (the shared data beside the checkout)")
    from embeddings.reader import encoder_for

    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="qa-bench-") as name:
        tmp = Path(name)
        bench_indexing(tmp)
        sentences, questions = squad_text()
        encoder = encoder_for(settings_for(tmp / "unused").index)
        for size in (100_000,) if args.quick else (100_000, 1_000_000):
            bench_archive(tmp, size, sentences, questions, encoder)
        bench_serve(tmp)
    print(f"\n| figure | measured | baseline (same run) | target |\n|---|---|---|---|")
    for r in ROWS:
        print("| " + " | ".join(r) + " |")
    print(f"\nbench took {time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
