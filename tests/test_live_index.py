"""The served index: snapshots keep answering during an update; the swap comes when it is done."""

import threading

import numpy as np
import pytest

from embeddings.indexer import IndexBusy, update_index
from embeddings.reader import open_index
from qa.live_index import LiveIndex
from qa.settings import Settings
from tests.conftest import FakeEncoder

NEW = "title: Lighthouse keepers return\ndate: 2019-03-04\nsource: Test Gazette\n\n" \
      "Two keepers will live at Skerryvore lighthouse again this summer.\n"


@pytest.fixture
def live(corpus, index_settings, fake_encoder, tmp_path):
    update_index([corpus], index_settings, fake_encoder)
    return LiveIndex(Settings(index=index_settings, uploads_dir=tmp_path / "uploads"), fake_encoder)


def titles(retriever, query="Skerryvore lighthouse keepers"):
    return [h.passage.title for h in retriever.search(query, k=10)]


def test_an_opened_index_is_a_snapshot(corpus, index_settings, fake_encoder):
    update_index([corpus], index_settings, fake_encoder)
    old = open_index(index_settings, fake_encoder.identity, fake_encoder.dimension)
    (corpus / "ferry.txt").unlink()
    (corpus / "new.txt").write_text(NEW, encoding="utf-8")
    update_index([corpus], index_settings, fake_encoder)
    assert old.store.counts()["articles"] == 3
    assert "Ferry service resumes" in [a.title for a in old.store.articles()]
    ids = [i for i, _ in old.vectors.search(np.ones(64, np.float32) / 8, 1000)]
    assert sorted(old.store.passages(ids)) == sorted(ids)  # every vector still has its passage
    new = open_index(index_settings, fake_encoder.identity, fake_encoder.dimension)
    assert sorted(a.title for a in new.store.articles()) == sorted(
        ["City library opens new wing", "Lighthouse keepers return",
         "A U.S.-backed, Kurdish-led alliance announced Tuesday it is launching the final stage of its "
         "battle to expel the Islamic State jihadi group from its desert holdouts in eastern Syria."])
    old.close()
    new.close()


def test_upload_is_indexed_and_swapped_in(live, tmp_path):
    before = live.retriever
    assert "Lighthouse keepers return" not in titles(before)
    src = tmp_path / "tmp-upload"
    src.write_text(NEW, encoding="utf-8")
    report = live.add_files([(src, "Keepers (2019).txt")], progress=False)
    assert report.added == ["Lighthouse keepers return"] and not report.errors
    assert (tmp_path / "uploads" / "Keepers_2019.txt").exists()
    assert titles(live.retriever)[0] == "Lighthouse keepers return"
    assert "Lighthouse keepers return" not in titles(before)  # the old snapshot is unchanged
    assert live.status().articles == 4 and "Test Gazette" in live.sources()


def test_bad_upload_is_reported_and_index_unchanged(live, tmp_path):
    before = [(a.title, a.passages) for a in live.articles()]
    src = tmp_path / "bin"
    src.write_bytes(b"\x00\x01\x02")
    report = live.add_files([(src, "photo.txt")], progress=False)
    assert report.errors == ["photo.txt: looks like a binary file (it contains NUL bytes), not text"]
    assert [(a.title, a.passages) for a in live.articles()] == before


def test_chat_keeps_answering_while_an_update_runs(live, tmp_path):
    """The update blocks inside encoding; questions asked meanwhile use the old snapshot."""
    started, release = threading.Event(), threading.Event()
    encoder = live.encoder
    real_encode = encoder.encode_passages

    def slow_encode(texts, sentences, progress=False):  # the update's call, not a question's
        started.set()
        release.wait(10)
        return real_encode(texts, sentences, progress)

    encoder.encode_passages = slow_encode
    src = tmp_path / "tmp-upload"
    src.write_text(NEW, encoding="utf-8")
    result = {}
    worker = threading.Thread(target=lambda: result.update(r=live.add_files([(src, "new.txt")], progress=True)))
    worker.start()
    assert started.wait(10)
    assert live.status().updating
    assert "Lighthouse keepers return" not in titles(live.retriever)  # answered meanwhile, from the old index
    with pytest.raises(IndexBusy, match="already running"):
        live.rebuild()
    release.set()
    worker.join(10)
    assert result["r"].added == ["Lighthouse keepers return"]
    assert titles(live.retriever)[0] == "Lighthouse keepers return"
    assert not live.status().updating


def test_rebuild_reencodes_everything_and_keeps_uploads(live, tmp_path):
    src = tmp_path / "tmp-upload"
    src.write_text(NEW, encoding="utf-8")
    live.add_files([(src, "new.txt")])
    encoder = FakeEncoder()
    live.encoder = encoder
    report = live.rebuild()
    assert len(report.added) == 4 and report.passages_encoded == live.status().passages
    assert titles(live.retriever)[0] == "Lighthouse keepers return"


def test_an_update_from_another_process_is_picked_up_by_the_next_question(live, corpus, index_settings):
    before = live.retriever
    (corpus / "new.txt").write_text(NEW, encoding="utf-8")
    update_index([corpus], index_settings, FakeEncoder())  # as `qa index` in a terminal would
    assert "Lighthouse keepers return" not in titles(before)
    assert titles(live.retriever)[0] == "Lighthouse keepers return"
    assert live.retriever is live.retriever  # no reload while nothing changed
