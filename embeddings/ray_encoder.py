"""Bulk embedding on Ray: ``qa index --ray [ADDRESS]``.

``RayEncoder`` is an ``Encoder`` whose ``encode_passages`` runs on a Ray cluster: each chunk
the indexer commits is a Ray Data dataset embedded with ``map_batches`` over a pool of actors,
each of which loads the model once (on CPU here; ``gpus_per_worker`` where a cluster has
GPUs). Reading and splitting articles stays on the driver, and so does writing: the indexer
commits each chunk to the store (and the configured vector store) as it does without Ray,
so a stopped run resumes the same way. The actors build the same model with the same
backend and precision as the driver, so the vectors are the ones the manifest names.

With no address, a local Ray instance is started on loopback (127.0.0.2, authentication
off, no dashboard) and stopped when the run ends.
"""

from __future__ import annotations

import contextlib
import os
import warnings

import numpy as np

from embeddings.encoder import ModelEncoder

CHUNK_PASSAGES = 20_000  # passages per committed chunk: the actors are started once per chunk
BATCH_PASSAGES = 256      # passages per map_batches call


class _Embed:
    """A Ray Data actor: the model, loaded once, encoding batches of passages."""

    def __init__(self, args: tuple):
        name, backend, precision, batch_size, cache, sentence_vectors = args
        self.encoder = ModelEncoder(name, backend, precision, batch_size, cache, sentence_vectors)

    def __call__(self, batch: dict) -> dict:
        texts = [str(t) for t in batch["text"]]
        spans = [tuple((int(a), int(b)) for a, b in np.asarray(s).reshape(-1, 2)) for s in batch["spans"]]
        vectors, sentences = self.encoder.encode_passages(texts, spans)
        return {"row": batch["row"], "vector": list(vectors),
                "sentences": [np.asarray(s, np.float32).tobytes() for s in sentences]}


class RayEncoder:
    """``encode_passages`` on Ray; everything else (questions, the tokenizer, the identity)
    from the local ``encoder``.

    Args:
        encoder: the local encoder the workers copy (its model, backend and precision).
        workers: actors in the pool (default: one per CPU of the cluster).
        cpus_per_worker / gpus_per_worker: what each actor reserves.
    """

    def __init__(self, encoder: ModelEncoder, workers: int | None = None, cpus_per_worker: float = 1,
                 gpus_per_worker: float = 0):
        import ray

        self.local = encoder
        self.identity, self.dimension, self.tokenizer = encoder.identity, encoder.dimension, encoder.tokenizer
        self.workers = workers or max(1, int(ray.cluster_resources().get("CPU", 1) // cpus_per_worker))
        self.cpus, self.gpus = cpus_per_worker, gpus_per_worker
        self._args = (encoder.name, encoder.backend, encoder.precision, encoder.batch_size,
                      str(encoder.cache) if encoder.cache else None, encoder.sentence_vectors)

    def encode(self, texts: list[str], progress: bool = False) -> np.ndarray:
        return self.local.encode(texts, progress)

    def encode_passages(self, texts: list[str], sentences: list[tuple[tuple[int, int], ...]],
                        progress: bool = False) -> tuple[np.ndarray, list[np.ndarray]]:
        import ray

        if not texts:
            return np.zeros((0, self.dimension), np.float32), []
        rows = [{"row": i, "text": t, "spans": np.asarray(s, np.int64).reshape(-1)}
                for i, (t, s) in enumerate(zip(texts, sentences))]
        _quiet_ray_data()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)  # max_restarts: still how this Ray takes it
            dataset = ray.data.from_items(rows).map_batches(
                _Embed, fn_constructor_kwargs={"args": self._args}, batch_size=BATCH_PASSAGES,
                compute=ray.data.ActorPoolStrategy(size=min(self.workers, len(texts) // BATCH_PASSAGES + 1)),
                num_cpus=self.cpus, num_gpus=self.gpus or None, batch_format="numpy",
                max_restarts=0)  # a failed chunk fails the run, which resumes after its last commit
        vectors = np.zeros((len(texts), self.dimension), np.float32)
        sentence_vectors: list[np.ndarray] = [np.zeros((0, self.dimension), np.float32)] * len(texts)
        for batch in dataset.iter_batches(batch_size=None, batch_format="numpy"):
            for row, vector, blob in zip(batch["row"], batch["vector"], batch["sentences"]):
                vectors[int(row)] = vector
                sentence_vectors[int(row)] = np.frombuffer(blob, np.float32).reshape(-1, self.dimension)
        return vectors, sentence_vectors


def _quiet_ray_data() -> None:
    """Ray Data's notes on each execution (it sets its loggers up when first used); its
    warnings still show. The indexer's own progress bar counts passages."""
    import logging

    import ray

    context = ray.data.DataContext.get_current()
    context.enable_progress_bars = False
    context.print_on_execution_start = False
    for name in ("ray", "ray.data"):
        logging.getLogger(name).setLevel(logging.ERROR)


@contextlib.contextmanager
def ray_cluster(address: str | None):
    """Connect to the Ray cluster at ``address``, or start a local one on loopback."""
    import ray

    os.environ.setdefault("RAY_AUTH_MODE", "disabled")  # loopback or a private cluster network
    if address:
        ray.init(address=address, log_to_driver=False, configure_logging=False)
    else:
        ray.init(_node_ip_address="127.0.0.2", include_dashboard=False, log_to_driver=False,
                 configure_logging=False)
    try:
        yield
    finally:
        ray.shutdown()
