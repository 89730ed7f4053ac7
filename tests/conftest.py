"""Shared fixtures: a deterministic fake encoder, the seed article, temporary index settings."""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
import pytest

from embeddings.settings import IndexSettings

ROOT = Path(__file__).resolve().parent.parent
SEED = ROOT / "seeds" / "000_12a2af69bb612d53.txt"
SHARED = ROOT.parent / "shared"
SQUAD = SHARED / "data" / "squad-v1.1-dev-half-a.json"


class FakeEncoder:
    """Bag of hashed words -> unit vector. Deterministic, instant, and counts what it encodes.

    It has the real model's tokenizer (the splitter counts word pieces with it); each
    sentence vector is the sentence's own bag of words.
    """

    identity = {"name": "fake-bag-of-words", "sha256": "0" * 64, "backend": "fake", "precision": "fp32"}
    dimension = 64

    def __init__(self):
        from embeddings.encoder import load_tokenizer

        self.calls = 0
        self.texts: list[str] = []
        self.tokenizer = load_tokenizer()

    def encode_passages(self, texts, sentences, progress=False):
        vectors = self.encode(texts)
        return vectors, [self._bag([t[a:b] for a, b in spans]) for t, spans in zip(texts, sentences)]

    def encode(self, texts, progress=False):
        self.calls += 1
        self.texts.extend(texts)
        return self._bag(texts)

    def _bag(self, texts):
        out = np.zeros((len(texts), self.dimension), dtype=np.float32)
        for row, text in enumerate(texts):
            for word in re.findall(r"\w+", text.lower()):
                h = int(hashlib.md5(word.encode()).hexdigest(), 16)
                out[row, h % self.dimension] += 1.0 if (h >> 8) % 2 else -1.0
            norm = np.linalg.norm(out[row])
            out[row] = out[row] / norm if norm else 1.0 / np.sqrt(self.dimension)
        return out


@pytest.fixture
def fake_encoder():
    return FakeEncoder()


@pytest.fixture
def index_settings(tmp_path):
    return IndexSettings(index_dir=tmp_path / "index")


@pytest.fixture
def corpus(tmp_path):
    """A folder with the seed article and two short articles."""
    folder = tmp_path / "articles"
    folder.mkdir()
    shutil.copy(SEED, folder / SEED.name)
    (folder / "ferry.txt").write_text(
        "title: Ferry service resumes\ndate: 2018-05-03\nsource: Harbour Times\n\n"
        "The island ferry resumed service on Thursday after a two-week strike by crew members.\n\n"
        "Passengers queued at dawn for the first crossing.\n", encoding="utf-8")
    (folder / "library.md").write_text(
        "# City library opens new wing\n\nThe city library opened a new wing with a children's "
        "reading room and a makerspace.\n\nThe wing cost 4 million dollars.\n", encoding="utf-8")
    return folder


def real_settings(index_dir=Path("index"), **overrides) -> IndexSettings:
    """The shipped index settings, with the model cache the CLI uses."""
    from qa.cli import _cache_dir

    return IndexSettings(index_dir=index_dir, model_cache=_cache_dir(), **overrides)


@pytest.fixture(scope="session")
def real_encoder():
    """The shipped encoder (OpenVINO in bf16 where the CPU has it)."""
    from embeddings.encoder import make_encoder

    return make_encoder(real_settings())


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class ServedUrl(str):
    """The served app's URL; ``pid`` is the server process."""

    pid: int


@contextlib.contextmanager
def served_app(tmp_path, extra_env=None, articles=None):
    """``qa serve`` on a free loopback port over a fresh index of ``articles`` (default: the
    seed folder): yields the URL, stops the server afterwards."""
    env = {**os.environ, "QA_INDEX_DIR": str(tmp_path / "index"), "QA_UPLOADS_DIR": str(tmp_path / "uploads"),
           "QA_WEB_DIR": str(tmp_path / "web"), "HF_HUB_OFFLINE": "1", **(extra_env or {})}
    paths = [str(p) for p in (articles or [SEED.parent])]
    subprocess.run([sys.executable, "-m", "qa.cli", "index", *paths], cwd=ROOT, env=env,
                   check=True, capture_output=True, timeout=300)
    port = free_port()
    log = open(tmp_path / "serve.log", "w")
    server = subprocess.Popen([sys.executable, "-m", "qa.cli", "serve", "--port", str(port)], cwd=ROOT,
                              env=env, stdout=log, stderr=subprocess.STDOUT, text=True)
    url = ServedUrl(f"http://127.0.0.1:{port}/")
    url.pid = server.pid
    try:
        deadline = time.time() + 120
        while True:
            try:
                urllib.request.urlopen(url, timeout=5)
                break
            except urllib.error.HTTPError:
                break  # it answers (a login page, say)
            except OSError:
                if time.time() > deadline or server.poll() is not None:
                    raise AssertionError("the app did not start: " + (tmp_path / "serve.log").read_text())
                time.sleep(0.5)
        yield url
    finally:
        server.terminate()
        server.wait(timeout=30)
        log.close()


@pytest.fixture(scope="session")
def milvus_uri(tmp_path_factory):
    """A real Milvus server (``milvus-server`` from PyPI) on loopback for the whole session;
    stopped afterwards, with no process left behind."""
    from tests.servers import group_alive, milvus_server

    with milvus_server(tmp_path_factory.mktemp("milvus")) as uri:
        yield uri
    assert not group_alive(uri.pid), "milvus-server left a process behind"
