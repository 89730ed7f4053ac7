"""Pure parts of retrieval (query building, fusion) and retrieval over a fake-encoded index."""

import pytest

from embeddings.indexer import open_index, update_index
from embeddings.store import Filters
from qa.retrieve import Retriever, content_words, fts_query, fuse, rrf
from qa.settings import Settings


def test_fts_query_quotes_content_words_and_keeps_acronyms():
    assert fts_query("Where does IS still hold villages?") == '"is" OR "still" OR "hold" OR "villages"'
    assert fts_query('what "AND" OR NOT near*') == '"and" OR "or" OR "not" OR "near"'  # quoted: no operators
    assert fts_query("what is the") == ""


def test_content_words_dedupes_in_order():
    assert content_words("Syria, syria and SYRIA's border") == ["syria", "border"]


def test_fuse_mixes_cosine_and_normalised_bm25():
    fused = fuse({1: 0.8, 2: 0.4}, {2: 10.0, 3: 5.0}, dense_weight=0.5)
    assert fused == pytest.approx({1: 0.4, 2: 0.7, 3: 0.25})


def test_lexical_power_sharpens_partial_bm25_matches():
    fused = fuse({1: 0.8, 2: 0.4}, {2: 10.0, 3: 5.0}, dense_weight=0.5, lexical_power=2.0)
    assert fused == pytest.approx({1: 0.4, 2: 0.7, 3: 0.125})


def test_rrf():
    scores = rrf([[1, 2], [2, 3]], c=60)
    assert scores[2] == pytest.approx(1 / 62 + 1 / 61)
    assert max(scores, key=scores.get) == 2


@pytest.fixture
def retriever(corpus, index_settings, fake_encoder):
    update_index([corpus], index_settings, fake_encoder)
    index = open_index(index_settings, fake_encoder.identity, fake_encoder.dimension)
    yield Retriever(index, fake_encoder, Settings(index=index_settings))
    index.close()


@pytest.mark.parametrize("method", ["hybrid", "dense", "lexical", "rrf"])
def test_every_method_returns_hits_with_article_metadata(retriever, method):
    hits = retriever.search("ferry strike crew", k=3, method=method)
    assert hits and len(hits) <= 3
    assert hits[0].passage.title == "Ferry service resumes"
    assert hits[0].passage.source == "Harbour Times" and hits[0].passage.date == "2018-05-03"
    assert [h.score for h in hits] == sorted((h.score for h in hits), reverse=True)


def test_filters_restrict_both_retrievers(retriever):
    hits = retriever.search("ferry library villages", k=10, filters=Filters(sources=("harbour times",)))
    assert {h.passage.title for h in hits} == {"Ferry service resumes"}
    hits = retriever.search("ferry library villages", k=10, filters=Filters(since="2018-05-03"))
    assert {h.passage.date for h in hits} == {"2018-05-03"}
    assert retriever.search("ferry", filters=Filters(until="2000-01-01")) == []
