"""The encoder: every backend and precision agrees with plain sentence-transformers fp32,
sentence vectors, the converted-model cache, and how ``auto`` is resolved."""

import numpy as np
import pytest

from embeddings.articles import load_articles
from embeddings.encoder import BackendUnavailable, make_encoder, model_path, resolve
from embeddings.passages import split_passages
from embeddings.settings import IndexSettings
from tests.conftest import SEED, real_settings


def seed_passages(encoder):
    [article] = load_articles(SEED)
    return split_passages(article.id, article.body, encoder.tokenizer, 256, 128, 1)


@pytest.fixture(scope="module")
def reference():
    """Plain ``SentenceTransformer.encode`` in fp32: the model as its authors run it."""
    from sentence_transformers import SentenceTransformer

    model = SentenceTransformer(str(model_path()), device="cpu")
    return lambda texts: model.encode(texts, normalize_embeddings=True)


@pytest.mark.model
@pytest.mark.parametrize("backend, precision, floor", [
    ("openvino", "bf16", 0.999), ("openvino", "fp32", 0.99999),
    ("torch", "bf16", 0.999), ("torch", "fp32", 0.99999)])
def test_every_backend_agrees_with_plain_fp32_on_the_seed(reference, backend, precision, floor):
    encoder = make_encoder(real_settings(backend=backend, precision=precision))
    assert encoder.identity["backend"] == backend and encoder.identity["precision"] == precision
    passages = seed_passages(encoder)
    texts = [p.text for p in passages] + ["Where does IS still hold villages?", "x"]
    got, want = encoder.encode(texts), reference(texts)
    cosines = (got * want).sum(axis=1)
    assert cosines.min() >= floor, cosines
    np.testing.assert_allclose(np.linalg.norm(got, axis=1), 1.0, atol=1e-5)


@pytest.mark.model
def test_bulk_and_single_encoding_agree(real_encoder):
    """Many texts go through the throughput queue, one through the latency request."""
    texts = [p.text for p in seed_passages(real_encoder)] * 5
    bulk = real_encoder.encode(texts)
    single = np.vstack([real_encoder.encode([t]) for t in texts[:4]])
    assert ((bulk[:4] * single).sum(axis=1) >= 0.9999).all()


@pytest.mark.model
def test_in_context_sentence_vectors_pool_the_passage_tokens_of_each_sentence(real_encoder):
    passages = seed_passages(real_encoder)
    vectors, sentences = real_encoder.encode_passages([p.text for p in passages], [p.sentences for p in passages])
    for p, v, s in zip(passages, vectors, sentences):
        assert s.shape == (len(p.sentences), real_encoder.dimension)
        np.testing.assert_allclose(np.linalg.norm(s, axis=1), 1.0, atol=1e-5)
        assert ((s @ v) > 0.5).all()  # each sentence read in its passage is close to the passage
    alone = make_encoder(real_settings(sentence_vectors="separate"))
    _, separate = alone.encode_passages([passages[0].text], [passages[0].sentences])
    a, b = passages[0].sentences[0]
    np.testing.assert_allclose(separate[0][0], alone.encode([passages[0].text[a:b]])[0], atol=1e-5)


@pytest.mark.model
def test_the_converted_model_is_cached_and_a_damaged_cache_is_converted_again(tmp_path, monkeypatch, caplog):
    from embeddings.encoder import ModelEncoder

    first = make_encoder(IndexSettings(model_cache=tmp_path, backend="openvino"))
    want = first.encode(["cached model"])
    [folder] = tmp_path.iterdir()
    assert (folder / "model.xml").exists() and (folder / "model.bin").exists()

    def no_conversion(self):
        raise AssertionError("converted again although the cache was there")

    monkeypatch.setattr(ModelEncoder, "_convert", no_conversion)
    again = make_encoder(IndexSettings(model_cache=tmp_path, backend="openvino"))
    assert (again.encode(["cached model"]) @ want[0])[0] > 0.99999
    monkeypatch.undo()
    (folder / "model.xml").write_text("<not a model")
    repaired = make_encoder(IndexSettings(model_cache=tmp_path, backend="openvino"))
    assert (repaired.encode(["cached model"]) @ want[0])[0] > 0.99999
    assert "converting again" in caplog.text


def test_auto_follows_the_index_and_explicit_settings_win(monkeypatch):
    import embeddings.encoder as enc

    monkeypatch.setattr(enc, "cpu_supports_bf16", lambda: True)
    monkeypatch.setattr(enc, "openvino_available", lambda: True)
    assert resolve(IndexSettings()) == ("openvino", "bf16")
    assert resolve(IndexSettings(), {"backend": "torch", "precision": "fp32"}) == ("torch", "fp32")
    assert resolve(IndexSettings(precision="bf16"), {"precision": "fp32"}) == ("openvino", "bf16")
    monkeypatch.setattr(enc, "cpu_supports_bf16", lambda: False)
    monkeypatch.setattr(enc, "openvino_available", lambda: False)
    assert resolve(IndexSettings()) == ("torch", "fp32")
    with pytest.raises(BackendUnavailable, match="pip install openvino"):
        resolve(IndexSettings(backend="openvino"))
    with pytest.raises(BackendUnavailable, match="unknown precision"):
        resolve(IndexSettings(precision="int4"))


@pytest.mark.model
def test_stored_sentence_vectors_equal_freshly_encoded_ones(real_encoder, tmp_path):
    """What the store keeps (8-bit codes) is what encoding the passage again gives."""
    from embeddings.indexer import update_index
    from embeddings.reader import open_index

    settings = real_settings(tmp_path / "index")
    update_index([SEED.parent], settings, real_encoder)
    index = open_index(settings, real_encoder.identity, real_encoder.dimension)
    ids = index.store.all_passage_ids().tolist()
    passages, stored = index.store.passages(ids), index.store.sentences(ids)
    texts = [passages[i].text for i in ids]
    fresh_vectors, fresh_sentences = real_encoder.encode_passages(texts, [passages[i].sentences for i in ids])
    for n, i in enumerate(ids):
        spans, vectors = stored[i]
        assert spans == passages[i].sentences and len(spans) == len(fresh_sentences[n])
        cosines = (vectors * fresh_sentences[n]).sum(axis=1) / np.linalg.norm(vectors, axis=1)
        assert cosines.min() >= 0.999, cosines
        assert index.vectors.scores(fresh_vectors[n], [i])[i] >= 0.999
    index.close()


FREE_ENCODERS = """
import gc
from embeddings.encoder import make_encoder
from embeddings.settings import IndexSettings
from qa.cli import _cache_dir
texts = ["A sentence about the harbour and the ferry %d." % i for i in range(100)]
for n in range(3):
    encoder = make_encoder(IndexSettings(model_cache=_cache_dir()))
    encoder.encode_passages(texts, [((0, 10),)] * len(texts))
    encoder.encode(["a question"])
    del encoder
    gc.collect()
print("freed")
"""


@pytest.mark.model
def test_encoders_can_be_freed_after_bulk_encoding():
    """A Python callback handed to OpenVINO made freeing an encoder wait forever for the GIL."""
    import subprocess
    import sys

    from tests.conftest import ROOT

    done = subprocess.run([sys.executable, "-c", FREE_ENCODERS], cwd=ROOT, capture_output=True, text=True,
                          timeout=180)
    assert done.returncode == 0 and "freed" in done.stdout, done.stderr[-2000:]
