"""The chat app: escaping of article text, and the served app through gradio_client."""

import os
import socket
import subprocess
import sys
import time

import pytest

from app import render_answer, searched_queries
from embeddings.store import StoredPassage
from qa.answer import Answer, Source
from qa.retrieve import Hit
from tests.conftest import ROOT, SEED


def passage(text, title="T <b>bold</b>"):
    return StoredPassage(1, "a", 0, 0, len(text), text, title, "2020-01-01", "Src", "https://x.example/?a=1&b=2", "/p")


def test_article_text_is_escaped():
    text = 'Hello <script>alert(1)</script> and <img src=x onerror="alert(2)"> end.'
    hit = Hit(passage(text), 1.0, 0.9, 1.0, 0.9, (0, 5))
    answer = Answer("q", "q", True, "“Hello <script>” [1]", (Source(1, hit, ((6, 31),)),))
    rendered = render_answer(answer)
    joined = " ".join(m["content"] for m in rendered) + " ".join(
        m.get("metadata", {}).get("title", "") for m in rendered)
    assert "<script>" not in joined and "<img" not in joined
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in joined
    assert "<mark>&lt;script&gt;alert(1)&lt;/script&gt;</mark>" in joined
    assert "&amp;b=2" in joined
    assert "T &lt;b&gt;bold" in joined


def test_follow_up_queries_are_replayed_from_history():
    queries = searched_queries(["Which alliance launched the final stage against IS?", "Who is backing them?"])
    assert queries[0] == "Which alliance launched the final stage against IS?"
    assert "alliance" in queries[1] and queries[1].endswith("Who is backing them?")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.model
def test_served_app_answers_through_gradio_client(tmp_path):
    from gradio_client import Client

    index_dir = tmp_path / "index"
    env = {**os.environ, "QA_INDEX_DIR": str(index_dir), "HF_HUB_OFFLINE": "1"}
    subprocess.run([sys.executable, "-m", "qa.cli", "index", str(SEED.parent)], cwd=ROOT, env=env,
                   check=True, capture_output=True, timeout=300)
    port = free_port()
    server = subprocess.Popen([sys.executable, "-m", "qa.cli", "serve", "--port", str(port)], cwd=ROOT,
                              env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.time() + 120
        while True:
            try:
                client = Client(f"http://127.0.0.1:{port}/", verbose=False)
                break
            except Exception:
                if time.time() > deadline or server.poll() is not None:
                    raise AssertionError("the app did not start")
                time.sleep(1)
        reply = client.predict("Where does IS still hold villages?", 3, api_name="/ask")
        assert reply[0]["content"].startswith("“IS holds dozens of villages")
        assert reply[1]["metadata"]["title"].startswith("[1] ")
        assert "<mark>IS holds dozens of villages" in reply[1]["content"]
        off = client.predict("How do I bake sourdough bread?", 3, api_name="/ask")
        assert off[0]["content"].startswith("The indexed articles don")
    finally:
        server.terminate()
        server.wait(timeout=30)
