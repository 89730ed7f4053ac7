"""``make load``: the served chat under concurrent users.

Builds a 200-article index from SQuAD half-a paragraphs (four paragraphs an article, real
text and real questions), starts ``qa serve`` on loopback, and drives ``/ask`` with 20
concurrent ``gradio_client`` users asking 25 questions each. Prints errors, wrong answers (no
gold answer in any of the sources shown), latency p50/p95 and questions per second.
Goal on the 2-core development machine: 0 errors, p95 <= 1 s, >= 20 questions/s.
Needs ``../shared/data``.
"""

from __future__ import annotations

import argparse
import html
import json
import re
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
SQUAD = ROOT.parent / "shared" / "data" / "squad-v1.1-dev-half-a.json"


def write_articles(folder: Path, articles: int, per_article: int = 4) -> list[tuple[str, list[str]]]:
    """``articles`` files of ``per_article`` SQuAD paragraphs; the questions about them."""
    from qa.evaluate import normalize_answer

    data = json.loads(SQUAD.read_text(encoding="utf-8"))["data"]
    paragraphs = [(art["title"], p) for art in data for p in art["paragraphs"]]
    folder.mkdir(parents=True)
    questions = []
    for n in range(articles):
        chunk = paragraphs[n * per_article:(n + 1) * per_article]
        if not chunk:
            break
        title = f"{chunk[0][0].replace('_', ' ')} ({n + 1})"
        body = "\n\n".join(p["context"] for _, p in chunk)
        day = 1 + n % 28
        (folder / f"article-{n:03d}.txt").write_text(f"title: {title}\ndate: 2020-02-{day:02d}\n\n{body}\n",
                                                      encoding="utf-8")
        for _, p in chunk:
            for qa in p["qas"]:
                questions.append((qa["question"], [normalize_answer(a["text"]) for a in qa["answers"]]))
    return questions


def shown_text(reply: list[dict]) -> str:
    """The reply's messages as the reader sees them (tags dropped, character references read)."""
    return html.unescape(re.sub(r"<[^>]+>", " ", " ".join(m.get("content") or "" for m in reply)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--users", type=int, default=20)
    parser.add_argument("--questions", type=int, default=25, help="per user")
    parser.add_argument("--articles", type=int, default=200)
    args = parser.parse_args()
    if not SQUAD.exists():
        sys.exit(f"make load needs {SQUAD} (the shared data beside the checkout)")
    from gradio_client import Client

    from qa.evaluate import contains_answer
    from tests.conftest import served_app

    with tempfile.TemporaryDirectory(prefix="qa-load-") as name:
        tmp = Path(name)
        questions = write_articles(tmp / "articles", args.articles)
        start = time.perf_counter()
        with served_app(tmp, articles=[tmp / "articles"]) as url:  # indexes, then serves on loopback
            print(f"indexed {args.articles} articles and started qa serve in {time.perf_counter() - start:.0f} s",
                  flush=True)
            rng = np.random.default_rng(0)
            picked = [questions[i] for i in rng.choice(len(questions), args.users * args.questions, replace=False)]
            latencies, errors, wrong = [], [], 0
            lock = threading.Lock()
            # ssl_verify=False: the server is plain http on loopback, so there is nothing to
            # verify, and gradio_client otherwise builds two certificate-loading httpx clients
            # per question (21 ms of CPU each, measured): on two cores the load generator then
            # took 1.25 cores and halved the server's throughput.
            clients = [Client(url, verbose=False, ssl_verify=False) for _ in range(args.users)]

            def user(n: int) -> None:
                nonlocal wrong
                for question, golds in picked[n * args.questions:(n + 1) * args.questions]:
                    t = time.perf_counter()
                    try:
                        reply = clients[n].predict(question, 5, "", "", [], api_name="/ask")
                    except Exception as e:  # noqa: BLE001 - every failure is counted and shown
                        with lock:
                            errors.append(f"{type(e).__name__}: {e}")
                        continue
                    seconds = time.perf_counter() - t
                    with lock:
                        latencies.append(seconds)
                        wrong += not contains_answer(shown_text(reply), golds)

            started = time.perf_counter()
            threads = [threading.Thread(target=user, args=(n,)) for n in range(args.users)]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            wall = time.perf_counter() - started
    asked = args.users * args.questions
    ms = np.array(latencies) * 1000
    print(f"{args.users} users x {args.questions} questions = {asked} through /ask in {wall:.1f} s")
    print(f"errors: {len(errors)}" + (f" (first: {errors[0]})" if errors else ""))
    print(f"wrong answers (no gold answer in the sources shown): {wrong} of {len(latencies)}")
    if len(ms):
        print(f"latency: p50 {np.percentile(ms, 50):.0f} ms, p95 {np.percentile(ms, 95):.0f} ms, "
              f"max {ms.max():.0f} ms  |  target p95 <= 1000 ms")
    print(f"throughput: {len(latencies) / wall:.1f} questions/s  |  target >= 20")


if __name__ == "__main__":
    main()
