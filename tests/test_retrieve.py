"""Query building, and retrieval over a fake-encoded index (fusion itself: test_fusion.py)."""

import pytest

from embeddings.indexer import update_index
from embeddings.reader import open_index
from embeddings.store import Filters
import numpy as np

from qa.retrieve import Retriever, content_words, fts_query
from qa.settings import Settings


def test_fts_query_quotes_content_words_and_keeps_acronyms():
    assert fts_query("Where does IS still hold villages?") == '"is" OR "still" OR "hold" OR "villages"'
    assert fts_query('what "AND" OR NOT near*') == '"and" OR "or" OR "not" OR "near"'  # quoted: no operators
    assert fts_query("what is the") == ""


def test_content_words_dedupes_in_order():
    assert content_words("Syria, syria and SYRIA's border") == ["syria", "border"]


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


def test_filtered_bm25_is_unfiltered_bm25_restricted_to_the_filter(retriever):
    store = retriever.index.store
    everything = store.lexical_search('"ferry" OR "library" OR "villages"', 50)
    dated = {pid: p.date for pid, p in store.passages([pid for pid, _ in everything]).items()}
    kept = [(pid, score) for pid, score in everything if (dated[pid] or "") >= "2018-05-03"]
    assert 0 < len(kept) < len(everything)
    assert store.lexical_search('"ferry" OR "library" OR "villages"', 50, Filters(since="2018-05-03")) == kept


def test_an_unknown_method_is_an_error(retriever):
    with pytest.raises(ValueError, match="unknown retrieval method 'bm42'"):
        retriever.search("ferry", method="bm42")


@pytest.mark.parametrize("method", ["hybrid", "dense", "lexical", "rrf"])
def test_hits_carry_the_cosine_bm25_and_sentence_scores_actually_used(retriever, method):
    """Every hit's cosine is its passage vector's (also for candidates BM25 alone found), its
    BM25 is on the normalised scale, and it has one score per stored sentence."""
    index = retriever.index
    qvec = retriever.encoder.encode(["ferry strike crew island"])[0]
    hits = retriever.search("ferry strike crew island", k=10, method=method)
    stored = index.store.sentences([h.passage.id for h in hits])
    for h in hits:
        vector = index.vectors.scores(qvec, [h.passage.id])[h.passage.id]
        assert h.dense == pytest.approx(vector, abs=1e-6)
        assert 0.0 <= h.lexical <= 1.0
        spans, vectors = stored[h.passage.id]
        assert h.passage.sentences == spans and len(h.sentences) == len(spans)
        np.testing.assert_allclose(h.sentence_cosines, vectors @ qvec, atol=1e-6)
        coverage = np.asarray(h.sentences) - np.asarray(h.sentence_cosines)  # sentence_lexical x coverage
        assert (coverage >= -1e-9).all() and (coverage <= retriever.settings.sentence_lexical + 1e-9).all()
    lexical = [h for h in hits if h.lexical > 0]
    assert lexical and max(h.lexical for h in lexical) == pytest.approx(1.0) if method != "dense" else True


def test_sentence_coverage_finds_question_words_by_their_stems(retriever):
    """"villages" finds "villages" and "village", "military" finds "Military"; rarer words weigh more."""
    terms = retriever.query_terms("Which villages does the military hold?")
    text = "IS holds villages. The Military Council met. Nothing here. A village."
    spans = [(0, 18), (19, 43), (44, 57), (58, 68)]
    coverage = terms.coverage(text, spans)
    assert coverage[2] == 0.0
    assert coverage[0] > coverage[3] > 0.0  # "holds" and "villages" against "village" alone
    assert coverage[1] > 0.0
    assert 0.0 < coverage.max() <= 1.0
    assert terms.weights[terms.prefixes.index("villag")] > 0


def test_recency_prefers_the_report_nearest_the_day_asked(tmp_path, index_settings, fake_encoder):
    """The same report filed on three days: the one nearest ``as_of`` ranks first; with no
    ``as_of`` (or undated articles) the order is the dateless one; a date window's end wins."""
    folder = tmp_path / "wire"
    folder.mkdir()
    body = "The harbour bridge reopened to traffic after repairs to its cables."
    for day in ("2024-01-02", "2024-02-15", "2024-03-30"):
        (folder / f"{day}.txt").write_text(f"title: Bridge reopens\ndate: {day}\n\n{body}\n", encoding="utf-8")
    update_index([folder], index_settings, fake_encoder)
    index = open_index(index_settings, fake_encoder.identity, fake_encoder.dimension)
    retriever = Retriever(index, fake_encoder, Settings(index=index_settings))
    try:
        def first(**kw):
            return retriever.search("harbour bridge reopened", k=3, **kw)[0].passage.date

        assert first(as_of="2024-02-16") == "2024-02-15"
        assert first(as_of="2024-04-02") == "2024-03-30"
        assert first(as_of="2024-01-01") == "2024-01-02"  # a later article counts by its distance
        assert first(as_of="2024-04-02", filters=Filters(until="2024-02-20")) == "2024-02-15"
        scores = [h.score for h in retriever.search("harbour bridge reopened", k=3)]
        assert scores[0] == pytest.approx(scores[-1])  # no as_of: equal reports score alike
    finally:
        index.close()


def test_the_same_article_under_two_names_is_cited_once(tmp_path, index_settings, fake_encoder):
    folder = tmp_path / "twice"
    folder.mkdir()
    text = "title: Bridge reopens\ndate: 2024-01-02\n\nThe harbour bridge reopened to traffic after repairs.\n"
    (folder / "bridge.txt").write_text(text, encoding="utf-8")
    (folder / "bridge (copy).txt").write_text(text, encoding="utf-8")
    (folder / "ferry.txt").write_text("title: Ferry\n\nThe harbour ferry kept sailing.\n", encoding="utf-8")
    update_index([folder], index_settings, fake_encoder)
    index = open_index(index_settings, fake_encoder.identity, fake_encoder.dimension)
    try:
        assert index.store.counts()["articles"] == 3
        for method in ("hybrid", "dense", "lexical", "rrf"):
            hits = Retriever(index, fake_encoder, Settings(index=index_settings)).search(
                "harbour bridge reopened", k=5, method=method)
            texts = [h.passage.text for h in hits]
            assert len(texts) == len(set(texts)) == 2, method
    finally:
        index.close()
