"""Nearest-neighbour search over passage vectors, keyed by passage id.

``VectorIndex`` declares the contract every backend honours (the contract tests in
``tests/test_vector_index.py`` run over each):

* ``FlatIndex``: exhaustive inner-product search with FAISS over fp16 copies of the vectors
  (half the memory, file size and search time of float32; cosines within about 1e-3);
* ``IVFIndex``: approximate search for large archives (FAISS ``IndexIVFScalarQuantizer``,
  8-bit codes: half the memory of the flat index, and a query scans 30% of them); its
  probe count keeps recall@10 against exact search >= 0.98 on real embeddings;
* ``NumpyIndex``: brute force in numpy, the oracle in tests.

``make_vector_index(kind, dimension, ids, vectors)`` builds one from vectors (training the
IVF quantiser on them); ``load_vector_index(path)`` reads a saved one whatever its kind.
Vectors are unit length, so inner product is cosine similarity. Results are
``(passage id, score)`` pairs: raw FAISS arrays never leave this module.
"""

from __future__ import annotations

import math
import os
import tempfile
from pathlib import Path
from typing import Iterable, Protocol

import numpy as np

Results = list[tuple[int, float]]
KINDS = ("flat", "ivf")
IVF_FROM = 200_000  # "auto" picks IVF from this many passages (see docs/benchmarks.md)
EXACT_ALLOWED_UP_TO = 100_000  # IVF: a filter allowing at most this many ids is searched exactly
PROBED = 0.3  # IVF: share of the cells a query scans (recall@10 >= 0.98 on real news embeddings)
MIN_PROBED = 10  # ... and at least this many: a small index has few, coarse cells
TRAIN_POINTS_PER_CELL = 64
TRAIN_ITERATIONS = 10


class VectorIndex(Protocol):
    """The contract of a vector index keyed by int64 passage ids."""

    kind: str
    dimension: int

    def add(self, ids: np.ndarray, vectors: np.ndarray) -> None:
        """Add vectors under these ids (ids not already present)."""

    def delete(self, ids: Iterable[int]) -> None:
        """Remove these ids; ids not present are ignored."""

    def search(self, query: np.ndarray, k: int, allowed: Iterable[int] | None = None) -> Results:
        """The ``k`` ids most similar to one query vector, best first; ``allowed`` restricts them."""

    def scores(self, query: np.ndarray, ids: Iterable[int]) -> dict[int, float]:
        """The query's similarity to each of these ids (ids not present are left out)."""

    def ids(self) -> np.ndarray:
        """Every id held, ascending."""

    def count(self) -> int:
        """How many vectors are held."""

    def save(self, path: Path) -> None:
        """Write atomically to ``path``."""


def choose_kind(setting: str, passages: int) -> str:
    """The kind ``setting`` means for an index of ``passages``: ``auto`` is flat below ``IVF_FROM``."""
    if setting == "auto":
        return "ivf" if passages >= IVF_FROM else "flat"
    if setting not in KINDS:
        raise ValueError(f"unknown vector index {setting!r}: use auto, {', '.join(KINDS)}")
    return setting


def make_vector_index(kind: str, dimension: int, ids: np.ndarray | None = None,
                      vectors: np.ndarray | None = None) -> VectorIndex:
    """A new index of ``kind`` holding ``vectors`` (the IVF quantiser is trained on them)."""
    ids = np.zeros(0, np.int64) if ids is None else np.asarray(ids, np.int64)
    vectors = np.zeros((0, dimension), np.float32) if vectors is None or not len(ids) else vectors
    if kind == "flat":
        index: VectorIndex = FlatIndex(dimension)
    elif kind == "ivf":
        index = IVFIndex.trained(dimension, vectors)
    elif kind == "numpy":
        index = NumpyIndex(dimension)
    else:
        raise ValueError(f"unknown vector index {kind!r}: use {', '.join(KINDS)}")
    index.add(ids, vectors)
    return index


def load_vector_index(path: Path) -> VectorIndex:
    """Read a saved FAISS index of any kind.

    Raises:
        ValueError: the file is not a FAISS index this module wrote (truncated, say).
    """
    import faiss

    try:
        index = faiss.read_index(str(path))
    except RuntimeError as e:
        raise ValueError(f"{path} is not a readable FAISS index ({str(e).splitlines()[0]})") from None
    if isinstance(index, faiss.IndexIVF):
        return IVFIndex(index.d, index)
    if isinstance(index, faiss.IndexIDMap2):
        return FlatIndex(index.d, index)
    raise ValueError(f"{path} holds a FAISS index of an unknown kind ({type(index).__name__})")


class FlatIndex:
    """Exhaustive search over every vector (fp16 codes in an ``IndexIDMap2``), keyed by int64 ids.

    fp16 rather than float32: adding one article to a 100k-passage index rewrites the file
    and grows the array (both O(n)); at half the size both take half the time, and a query
    scans half the bytes. The stored float32 vectors stay the source of truth.
    """

    kind = "flat"

    def __init__(self, dimension: int, index=None):
        import faiss

        self.dimension = dimension
        if index is None:
            codes = faiss.IndexScalarQuantizer(dimension, faiss.ScalarQuantizer.QT_fp16, faiss.METRIC_INNER_PRODUCT)
            index = faiss.IndexIDMap2(codes)
        self._index = index

    def add(self, ids: np.ndarray, vectors: np.ndarray) -> None:
        if len(ids):
            self._index.add_with_ids(_as_matrix(vectors, self.dimension), np.asarray(ids, dtype=np.int64))

    def delete(self, ids: Iterable[int]) -> None:
        ids = np.asarray(list(ids), dtype=np.int64)
        if len(ids):
            self._index.remove_ids(ids)

    def count(self) -> int:
        return int(self._index.ntotal)

    def ids(self) -> np.ndarray:
        import faiss

        return np.sort(faiss.vector_to_array(self._index.id_map).astype(np.int64))

    def search(self, query: np.ndarray, k: int, allowed: Iterable[int] | None = None) -> Results:
        import faiss

        if self.count() == 0 or k <= 0:
            return []
        params = None
        if allowed is not None:
            allowed = _sorted_ids(allowed)
            if not len(allowed):
                return []
            selector, bits = _selector(allowed)  # ``bits`` stays referenced while FAISS reads it
            params = faiss.SearchParameters(sel=selector)
        scores, ids = self._index.search(_as_matrix(query, self.dimension), min(k, self.count()),
                                         params=params)
        return [(int(i), float(s)) for i, s in zip(ids[0], scores[0]) if i >= 0]

    def scores(self, query: np.ndarray, ids: Iterable[int]) -> dict[int, float]:
        return _scores_by_reconstruction(self._index, query, ids, self.dimension)

    def save(self, path: Path) -> None:
        import faiss

        _atomic_write(Path(path), lambda tmp: faiss.write_index(self._index, tmp))


class IVFIndex:
    """Approximate search: an inverted file of 8-bit scalar-quantised vectors.

    ``nlist = 4 sqrt(n)`` cells are trained on the vectors it is built with; a query scans
    the ``nprobe`` nearest. This model's embeddings cluster weakly: on real news embeddings
    (docs/benchmarks.md) scanning 30% of the cells keeps recall@10 against exact search at
    0.98, so the gain over flat search is about 3x in time and 2x in memory (8-bit codes).
    """

    kind = "ivf"

    def __init__(self, dimension: int, index):
        import faiss

        self.dimension = dimension
        self._index = index
        if index.direct_map.type != faiss.DirectMap.Hashtable:
            index.set_direct_map_type(faiss.DirectMap.Hashtable)  # for delete and scores by id

    @classmethod
    def trained(cls, dimension: int, vectors: np.ndarray) -> "IVFIndex":
        import faiss

        n = len(vectors)
        nlist = max(1, min(4 * int(math.sqrt(max(n, 1))), n // 39 if n >= 39 else 1))
        quantizer = faiss.IndexFlatIP(dimension)
        index = faiss.IndexIVFScalarQuantizer(quantizer, dimension, nlist, faiss.ScalarQuantizer.QT_8bit,
                                              faiss.METRIC_INNER_PRODUCT)
        index.own_fields = True
        quantizer.this.disown()
        # k-means on 64 points per cell, 10 passes: at 1M passages (4,000 cells) 40 s instead
        # of many minutes, with the same recall measured on real embeddings.
        index.cp.niter = TRAIN_ITERATIONS
        index.cp.max_points_per_centroid = TRAIN_POINTS_PER_CELL
        sample = vectors
        if n > TRAIN_POINTS_PER_CELL * nlist:
            sample = vectors[np.random.default_rng(0).choice(n, TRAIN_POINTS_PER_CELL * nlist, replace=False)]
        if n:
            index.train(_as_matrix(sample, dimension))
        else:
            raise ValueError("an IVF index needs vectors to train on")
        index.nprobe = min(nlist, max(math.ceil(nlist * PROBED), MIN_PROBED))
        return cls(dimension, index)

    @property
    def nlist(self) -> int:
        return int(self._index.nlist)

    @property
    def nprobe(self) -> int:
        return int(self._index.nprobe)

    def add(self, ids: np.ndarray, vectors: np.ndarray) -> None:
        if len(ids):
            self._index.add_with_ids(_as_matrix(vectors, self.dimension), np.asarray(ids, dtype=np.int64))

    def delete(self, ids: Iterable[int]) -> None:
        import faiss

        ids = np.asarray(list(ids), dtype=np.int64)
        if len(ids):  # the hash table of ids takes an explicit array
            self._index.remove_ids(faiss.IDSelectorArray(len(ids), faiss.swig_ptr(ids)))

    def count(self) -> int:
        return int(self._index.ntotal)

    def ids(self) -> np.ndarray:
        import faiss

        invlists = self._index.invlists
        parts = [faiss.rev_swig_ptr(invlists.get_ids(n), invlists.list_size(n)).copy()
                 for n in range(self.nlist) if invlists.list_size(n)]
        return np.sort(np.concatenate(parts).astype(np.int64)) if parts else np.zeros(0, np.int64)

    def search(self, query: np.ndarray, k: int, allowed: Iterable[int] | None = None) -> Results:
        import faiss

        if self.count() == 0 or k <= 0:
            return []
        q = _as_matrix(query, self.dimension)
        if allowed is None:
            scores, ids = self._index.search(q, min(k, self.count()))
        else:
            allowed = _sorted_ids(allowed)
            if not len(allowed):
                return []
            if len(allowed) <= EXACT_ALLOWED_UP_TO:  # a narrow filter: every allowed vector
                found = self.scores(q[0], allowed)
                return sorted(found.items(), key=lambda t: (-t[1], t[0]))[:k]
            # A wide filter: probe more cells, in proportion to what the filter leaves out.
            nprobe = min(self.nlist, math.ceil(self.nprobe * self.count() / len(allowed)))
            selector, bits = _selector(allowed)
            params = faiss.SearchParametersIVF(sel=selector, nprobe=nprobe)
            scores, ids = self._index.search(q, min(k, self.count()), params=params)
        return [(int(i), float(s)) for i, s in zip(ids[0], scores[0]) if i >= 0]

    def scores(self, query: np.ndarray, ids: Iterable[int]) -> dict[int, float]:
        return _scores_by_reconstruction(self._index, query, ids, self.dimension)

    def save(self, path: Path) -> None:
        import faiss

        _atomic_write(Path(path), lambda tmp: faiss.write_index(self._index, tmp))


class NumpyIndex:
    """Brute-force search in numpy; same contract, used as the oracle in tests."""

    kind = "numpy"

    def __init__(self, dimension: int):
        self.dimension = dimension
        self._ids = np.zeros(0, dtype=np.int64)
        self._vectors = np.zeros((0, dimension), dtype=np.float32)

    def add(self, ids: np.ndarray, vectors: np.ndarray) -> None:
        self._ids = np.concatenate([self._ids, np.asarray(ids, dtype=np.int64)])
        self._vectors = np.vstack([self._vectors, _as_matrix(vectors, self.dimension)])

    def delete(self, ids: Iterable[int]) -> None:
        keep = ~np.isin(self._ids, np.asarray(list(ids), dtype=np.int64))
        self._ids, self._vectors = self._ids[keep], self._vectors[keep]

    def count(self) -> int:
        return len(self._ids)

    def ids(self) -> np.ndarray:
        return np.sort(self._ids)

    def search(self, query: np.ndarray, k: int, allowed: Iterable[int] | None = None) -> Results:
        scores = self._vectors @ _as_matrix(query, self.dimension)[0]
        candidates = np.arange(len(self._ids))
        if allowed is not None:
            candidates = candidates[np.isin(self._ids, _sorted_ids(allowed))]
        order = candidates[np.argsort(-scores[candidates], kind="stable")][:max(k, 0)]
        return [(int(self._ids[i]), float(scores[i])) for i in order]

    def scores(self, query: np.ndarray, ids: Iterable[int]) -> dict[int, float]:
        wanted = np.asarray(list(ids), dtype=np.int64)
        rows = np.nonzero(np.isin(self._ids, wanted))[0]
        sims = self._vectors[rows] @ _as_matrix(query, self.dimension)[0]
        return {int(self._ids[r]): float(s) for r, s in zip(rows, sims)}

    def save(self, path: Path) -> None:
        def write(tmp: str) -> None:
            with open(tmp, "wb") as f:
                np.savez(f, ids=self._ids, vectors=self._vectors)

        _atomic_write(Path(path), write)

    @classmethod
    def load(cls, path: Path) -> "NumpyIndex":
        with np.load(path, allow_pickle=False) as data:
            index = cls(data["vectors"].shape[1])
            index.add(data["ids"], data["vectors"])
        return index


def _sorted_ids(ids: Iterable[int]) -> np.ndarray:
    """``ids`` as an ascending int64 array without repeats (cheap when it already is one)."""
    ids = np.asarray(ids if isinstance(ids, np.ndarray) else list(ids), dtype=np.int64)
    return ids if np.all(ids[1:] > ids[:-1]) else np.unique(ids)


def _selector(ids: np.ndarray):
    """A FAISS selector of these ascending non-negative ids: a bitmap (0.4 ms for 100k ids,
    against 4 ms for ``IDSelectorBatch``'s hash set). Returns the selector and the bitmap,
    which the caller keeps referenced while FAISS reads it."""
    import faiss

    mask = np.zeros(int(ids[-1]) + 1, dtype=bool)
    mask[ids] = True
    bits = np.packbits(mask, bitorder="little")
    return faiss.IDSelectorBitmap(len(mask), faiss.swig_ptr(bits)), bits


def _scores_by_reconstruction(index, query: np.ndarray, ids: Iterable[int], dimension: int) -> dict[int, float]:
    """Similarity to each id's stored (for IVF: decoded) vector; ids not held are left out."""
    q = _as_matrix(query, dimension)[0]
    found: dict[int, float] = {}
    wanted = [int(i) for i in ids]
    if not wanted:
        return found
    try:
        vectors = index.reconstruct_batch(np.asarray(wanted, dtype=np.int64))
        return {i: float(s) for i, s in zip(wanted, vectors @ q)}
    except RuntimeError:  # some id is not held: look them up one by one
        pass
    for i in wanted:
        try:
            found[i] = float(index.reconstruct(i) @ q)
        except RuntimeError:
            continue
    return found


def _as_matrix(vectors: np.ndarray, dimension: int) -> np.ndarray:
    matrix = np.ascontiguousarray(np.atleast_2d(vectors), dtype=np.float32)
    if matrix.shape[1] != dimension:
        raise ValueError(f"vectors have dimension {matrix.shape[1]}, the index has {dimension}")
    return matrix


def _atomic_write(path: Path, write) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=path.name + ".", suffix=".part", dir=path.parent)
    os.close(fd)
    try:
        write(tmp)
        with open(tmp, "rb") as f:
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
