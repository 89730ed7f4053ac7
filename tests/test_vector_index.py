"""The vector index contract, for both backends; FAISS top-k equals numpy brute force."""

import numpy as np
import pytest

from embeddings.vector_index import FaissIndex, NumpyIndex

BACKENDS = [FaissIndex, NumpyIndex]


def unit(rows, dim, seed):
    v = np.random.default_rng(seed).normal(size=(rows, dim)).astype(np.float32)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


@pytest.fixture
def data():
    return np.arange(100, 400, dtype=np.int64), unit(300, 32, 0)


@pytest.mark.parametrize("backend", BACKENDS)
def test_contract_append_search_delete_count(backend, data):
    ids, vectors = data
    index = backend(32)
    assert index.count() == 0 and index.search(vectors[0], 5) == []
    index.append(ids, vectors)
    assert index.count() == 300
    top = index.search(vectors[7], 3)
    assert top[0][0] == 107 and top[0][1] == pytest.approx(1.0, abs=1e-5)
    index.delete([107, 108])
    assert index.count() == 298
    assert 107 not in [i for i, _ in index.search(vectors[7], 300)]
    assert index.ids().tolist() == [i for i in range(100, 400) if i not in (107, 108)]


@pytest.mark.parametrize("backend", BACKENDS)
def test_contract_allowed_ids(backend, data):
    ids, vectors = data
    index = backend(32)
    index.append(ids, vectors)
    allowed = [150, 151, 152, 399]
    results = index.search(vectors[0], 10, allowed)
    assert sorted(i for i, _ in results) == allowed
    assert index.search(vectors[0], 10, []) == []


@pytest.mark.parametrize("backend", BACKENDS)
def test_contract_save_load_round_trip(backend, data, tmp_path):
    ids, vectors = data
    index = backend(32)
    index.append(ids, vectors)
    index.delete([200])
    index.save(tmp_path / "v.idx")
    loaded = backend.load(tmp_path / "v.idx")
    assert loaded.count() == index.count()
    for q in unit(5, 32, 1):
        assert loaded.search(q, 10) == index.search(q, 10)
    assert not list(tmp_path.glob("*.part")), "no temporary file is left behind"


def test_faiss_top_k_equals_numpy_brute_force(data):
    ids, vectors = data
    faiss_index, oracle = FaissIndex(32), NumpyIndex(32)
    for index in (faiss_index, oracle):
        index.append(ids, vectors)
        index.delete(range(120, 140))
    for q in unit(20, 32, 2):
        got, want = faiss_index.search(q, 10), oracle.search(q, 10)
        assert [i for i, _ in got] == [i for i, _ in want]
        np.testing.assert_allclose([s for _, s in got], [s for _, s in want], rtol=1e-5, atol=1e-6)


def test_dimension_mismatch_is_an_error():
    with pytest.raises(ValueError, match="dimension"):
        FaissIndex(8).append(np.array([1]), np.zeros((1, 4), np.float32))
