"""The vector index contract, over every backend; exact search equals numpy brute force;
the approximate index's recall on random and (in test_seed_questions) real vectors."""

import numpy as np
import pytest

from embeddings.vector_index import (IVF_FROM, FlatIndex, IVFIndex, NumpyIndex, choose_kind,
                                     load_vector_index, make_vector_index)

KINDS = ["flat", "ivf", "numpy", pytest.param("milvus", marks=pytest.mark.milvus)]


def unit(rows, dim, seed):
    v = np.random.default_rng(seed).normal(size=(rows, dim)).astype(np.float32)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


@pytest.fixture
def data():
    return np.arange(100, 400, dtype=np.int64), unit(300, 32, 0)


@pytest.fixture
def build(request):
    """``build(kind, ids, vectors)``: an index of ``kind`` made from the first 200 vectors,
    then given the rest with ``add`` (Milvus: a fresh collection on the test server)."""
    def make(kind, ids, vectors):
        if kind == "milvus":
            from embeddings.milvus_index import MilvusIndex

            index = MilvusIndex.fresh(request.getfixturevalue("milvus_uri"), f"contract_{request.node.name[-40:]}"
                                      .replace("[", "_").replace("]", "").replace("-", "_"), 32)
            index.add(ids[:200], vectors[:200])
        else:
            index = make_vector_index(kind, 32, ids[:200], vectors[:200])
        index.add(ids[200:], vectors[200:])
        return index

    return make


def save_load(index, path):
    index.save(path)
    if index.kind == "milvus":
        from embeddings.milvus_index import MilvusIndex

        return MilvusIndex(index.uri, index.collection, index.dimension)  # a new client, as another process
    return NumpyIndex.load(path) if isinstance(index, NumpyIndex) else load_vector_index(path)


@pytest.mark.parametrize("kind", KINDS)
def test_contract_add_search_delete_count(kind, data, build):
    ids, vectors = data
    index = build(kind, ids, vectors)
    assert index.kind == kind and index.count() == 300
    top = index.search(vectors[7], 3)
    assert top[0][0] == 107 and top[0][1] == pytest.approx(1.0, abs=0.02)
    index.delete([107, 108, 99999])  # an id never added is ignored
    assert index.count() == 298
    assert 107 not in [i for i, _ in index.search(vectors[7], 300)]
    assert index.ids().tolist() == [i for i in range(100, 400) if i not in (107, 108)]


@pytest.mark.parametrize("kind", KINDS)
def test_contract_scores_for_given_ids(kind, data, build):
    ids, vectors = data
    index = build(kind, ids, vectors)
    q = unit(1, 32, 5)[0]
    got = index.scores(q, [100, 250, 399, 5])  # 5 is not held: left out
    assert set(got) == {100, 250, 399}
    for i, s in got.items():
        assert s == pytest.approx(float(vectors[i - 100] @ q), abs=0.02)  # IVF: 8-bit codes
    assert index.scores(q, []) == {}


@pytest.mark.parametrize("kind", KINDS)
def test_contract_allowed_ids(kind, data, build):
    ids, vectors = data
    index = build(kind, ids, vectors)
    allowed = [150, 151, 152, 399]
    results = index.search(vectors[0], 10, allowed)
    assert sorted(i for i, _ in results) == allowed
    assert [s for _, s in results] == sorted((s for _, s in results), reverse=True)
    assert index.search(vectors[0], 10, np.array(allowed, dtype=np.int64)) == results  # as the store gives them
    assert index.search(vectors[0], 10, [399, 150, 152, 151, 150]) == results  # any order, repeats
    assert index.search(vectors[0], 10, []) == []
    assert index.search(vectors[0], 10, np.zeros(0, dtype=np.int64)) == []


@pytest.mark.parametrize("kind", KINDS)
def test_contract_save_load_round_trip(kind, data, tmp_path, build):
    ids, vectors = data
    index = build(kind, ids, vectors)
    index.delete([200])
    loaded = save_load(index, tmp_path / "v.idx")
    assert loaded.kind == kind and loaded.count() == index.count()
    assert np.array_equal(loaded.ids(), index.ids())
    for q in unit(5, 32, 1):
        assert loaded.search(q, 10) == index.search(q, 10)
    assert not list(tmp_path.glob("*.part")), "no temporary file is left behind"


def test_flat_top_k_equals_numpy_brute_force(data):
    """Flat search is exact over the fp16 codes it keeps, and those are within 1e-3 of float32."""
    ids, vectors = data
    fp16 = vectors.astype(np.float16).astype(np.float32)
    flat, oracle = make_vector_index("flat", 32, ids, vectors), make_vector_index("numpy", 32, ids, fp16)
    exact = make_vector_index("numpy", 32, ids, vectors)
    for index in (flat, oracle, exact):
        index.delete(range(120, 140))
    for q in unit(20, 32, 2):
        got, want = flat.search(q, 10), oracle.search(q, 10)
        assert [i for i, _ in got] == [i for i, _ in want]
        np.testing.assert_allclose([s for _, s in got], [s for _, s in want], rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose([s for _, s in got], [s for _, s in exact.search(q, 10)], atol=1e-3)


def test_ivf_recall_at_10_against_exact_search_on_clustered_vectors():
    """Vectors with cluster structure, as embeddings have (real ones: test_seed_questions)."""
    rng = np.random.default_rng(3)
    centres = unit(40, 32, 4)
    vectors = centres[rng.integers(0, 40, 5000)] + 0.15 * rng.normal(size=(5000, 32)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    ids = np.arange(5000)
    ivf, flat = make_vector_index("ivf", 32, ids, vectors), make_vector_index("flat", 32, ids, vectors)
    queries = vectors[rng.choice(5000, 200, replace=False)] + 0.1 * rng.normal(size=(200, 32)).astype(np.float32)
    recall = np.mean([len({i for i, _ in ivf.search(q, 10)} & {i for i, _ in flat.search(q, 10)}) / 10
                      for q in queries])
    assert recall >= 0.98, recall


def test_ivf_filter_wider_than_the_exact_limit_probes_more_cells(monkeypatch, data):
    import embeddings.vector_index as vi

    ids, vectors = data
    index = make_vector_index("ivf", 32, ids, vectors)
    monkeypatch.setattr(vi, "EXACT_ALLOWED_UP_TO", 10)
    allowed = list(range(100, 400, 2))
    results = index.search(vectors[2], 5, allowed)
    assert results and all(i in allowed for i, _ in results)
    assert results[0][0] == 102


def test_choose_kind():
    assert choose_kind("auto", 10) == "flat"
    assert choose_kind("auto", IVF_FROM) == "ivf"
    assert choose_kind("flat", 10 * IVF_FROM) == "flat"
    with pytest.raises(ValueError, match="unknown vector index"):
        choose_kind("hnsw", 10)


def test_an_unreadable_file_is_a_clear_error(tmp_path, data):
    ids, vectors = data
    path = tmp_path / "v.faiss"
    make_vector_index("flat", 32, ids, vectors).save(path)
    path.write_bytes(path.read_bytes()[:1000])  # truncated
    with pytest.raises(ValueError, match="not a readable FAISS index"):
        load_vector_index(path)


def test_dimension_mismatch_is_an_error():
    with pytest.raises(ValueError, match="dimension"):
        FlatIndex(8).add(np.array([1]), np.zeros((1, 4), np.float32))
    assert IVFIndex and NumpyIndex  # every backend is importable


@pytest.mark.model
def test_ivf_recall_at_10_on_real_embeddings(real_encoder, tmp_path):
    """SQuAD half-a's passages and questions through the real model (CI reads ../shared)."""
    from embeddings.indexer import update_index
    from embeddings.store import Store
    from qa.evaluate import load_squad
    from tests.conftest import SQUAD, real_settings

    if not SQUAD.exists():
        pytest.skip("needs ../shared/data beside the checkout")
    lines, questions = load_squad(SQUAD, limit=1000)
    (tmp_path / "squad.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
    update_index([tmp_path / "squad.jsonl"], real_settings(tmp_path / "index"), real_encoder)
    with Store(tmp_path / "index" / "store.sqlite") as store:
        ids, vectors = store.vectors()
    ivf, flat = make_vector_index("ivf", vectors.shape[1], ids, vectors), make_vector_index("flat", vectors.shape[1], ids, vectors)
    assert len(ids) > 800 and ivf.nprobe < ivf.nlist
    queries = real_encoder.encode([q.text for q in questions])
    recall = np.mean([len({i for i, _ in ivf.search(q, 10)} & {i for i, _ in flat.search(q, 10)}) / 10
                      for q in queries])
    assert recall >= 0.98, recall
