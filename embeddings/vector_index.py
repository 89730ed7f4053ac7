"""Nearest-neighbour search over passage vectors, keyed by passage id.

Two backends honour one small interface (``append/delete/search/count/ids/save/load``):
``FaissIndex``, exact inner-product search with FAISS (the one the app uses), and
``NumpyIndex``, a brute-force reference used as the oracle in tests. Vectors are
unit length, so inner product is cosine similarity. Results are ``(passage id, score)``
pairs: raw FAISS arrays never leave this module.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Iterable

import numpy as np

Results = list[tuple[int, float]]


class FaissIndex:
    """Exact search (``IndexFlatIP`` inside an ``IndexIDMap2``) keyed by int64 passage ids."""

    def __init__(self, dimension: int, index=None):
        import faiss

        self.dimension = dimension
        self._index = index if index is not None else faiss.IndexIDMap2(faiss.IndexFlatIP(dimension))

    def append(self, ids: np.ndarray, vectors: np.ndarray) -> None:
        if len(ids):
            self._index.add_with_ids(_as_matrix(vectors, self.dimension), np.asarray(ids, dtype=np.int64))

    def delete(self, ids: Iterable[int]) -> None:
        ids = np.asarray(list(ids), dtype=np.int64)
        if len(ids):
            self._index.remove_ids(ids)

    def count(self) -> int:
        return int(self._index.ntotal)

    def ids(self) -> np.ndarray:
        """The ids held, ascending."""
        import faiss

        return np.sort(faiss.vector_to_array(self._index.id_map).astype(np.int64))

    def search(self, query: np.ndarray, k: int, allowed: Iterable[int] | None = None) -> Results:
        """The ``k`` passages most similar to one query vector; ``allowed`` restricts the ids."""
        import faiss

        if self.count() == 0 or k <= 0:
            return []
        faiss.omp_set_num_threads(1)  # single queries are ~2.4x faster on one thread here
        params = None
        if allowed is not None:
            allowed = np.asarray(sorted(allowed), dtype=np.int64)
            if not len(allowed):
                return []
            params = faiss.SearchParameters(sel=faiss.IDSelectorBatch(allowed))
        scores, ids = self._index.search(_as_matrix(query, self.dimension), min(k, self.count()),
                                         params=params)
        return [(int(i), float(s)) for i, s in zip(ids[0], scores[0]) if i >= 0]

    def save(self, path: Path) -> None:
        """Write atomically: to a temporary file beside ``path``, then rename over it."""
        import faiss

        _atomic_write(Path(path), lambda tmp: faiss.write_index(self._index, tmp))

    @classmethod
    def load(cls, path: Path) -> "FaissIndex":
        import faiss

        index = faiss.read_index(str(path))
        return cls(index.d, index)


class NumpyIndex:
    """Brute-force search in numpy; same contract as ``FaissIndex``."""

    def __init__(self, dimension: int):
        self.dimension = dimension
        self._ids = np.zeros(0, dtype=np.int64)
        self._vectors = np.zeros((0, dimension), dtype=np.float32)

    def append(self, ids: np.ndarray, vectors: np.ndarray) -> None:
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
            candidates = candidates[np.isin(self._ids, np.asarray(list(allowed), dtype=np.int64))]
        order = candidates[np.argsort(-scores[candidates], kind="stable")][:max(k, 0)]
        return [(int(self._ids[i]), float(scores[i])) for i in order]

    def save(self, path: Path) -> None:
        def write(tmp: str) -> None:
            with open(tmp, "wb") as f:
                np.savez(f, ids=self._ids, vectors=self._vectors)

        _atomic_write(Path(path), write)

    @classmethod
    def load(cls, path: Path) -> "NumpyIndex":
        with np.load(path, allow_pickle=False) as data:
            index = cls(data["vectors"].shape[1])
            index.append(data["ids"], data["vectors"])
        return index


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
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
