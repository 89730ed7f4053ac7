"""The served index: snapshots keep answering during an update; the swap comes when it is done."""

import os
import threading
from pathlib import Path

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


def current_titles(live, query="Skerryvore lighthouse keepers"):
    with live.using() as retriever:
        return titles(retriever, query)


def test_upload_is_indexed_and_swapped_in(live, tmp_path):
    with live.using() as before:  # a question still running on the old snapshot
        assert "Lighthouse keepers return" not in titles(before)
        src = tmp_path / "tmp-upload"
        src.write_text(NEW, encoding="utf-8")
        report = live.add_files([(src, "Keepers (2019).txt")], progress=False)
        assert report.added == ["Lighthouse keepers return"] and not report.errors
        assert (tmp_path / "uploads" / "Keepers_2019.txt").exists()
        assert current_titles(live)[0] == "Lighthouse keepers return"
        assert "Lighthouse keepers return" not in titles(before)  # the old snapshot is unchanged
        assert live.open_snapshots == 2
    assert live.open_snapshots == 1  # closed when its last question finished
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
    assert "Lighthouse keepers return" not in current_titles(live)  # answered meanwhile, from the old index
    with pytest.raises(IndexBusy, match="already running"):
        live.rebuild()
    release.set()
    worker.join(10)
    assert result["r"].added == ["Lighthouse keepers return"]
    assert current_titles(live)[0] == "Lighthouse keepers return"
    assert not live.status().updating


def test_rebuild_reencodes_everything_and_keeps_uploads(live, tmp_path):
    src = tmp_path / "tmp-upload"
    src.write_text(NEW, encoding="utf-8")
    live.add_files([(src, "new.txt")])
    encoder = FakeEncoder()
    live.encoder = encoder
    report = live.rebuild()
    assert len(report.added) == 4 and report.passages_encoded == live.status().passages
    assert current_titles(live)[0] == "Lighthouse keepers return"


def test_an_update_from_another_process_is_picked_up_by_the_next_question(live, corpus, index_settings):
    with live.using() as before:
        (corpus / "new.txt").write_text(NEW, encoding="utf-8")
        update_index([corpus], index_settings, FakeEncoder())  # as `qa index` in a terminal would
        assert "Lighthouse keepers return" not in titles(before)
        assert current_titles(live)[0] == "Lighthouse keepers return"
    with live.using() as first, live.using() as second:
        assert first is second  # no reload while nothing changed


def store_handles(index_dir) -> int:
    """How many of this process's open file descriptors point at the store or its log."""
    store = (index_dir / "store.sqlite").resolve()
    names = [str(store), f"{store}-wal", f"{store}-shm"]
    count = 0
    for fd in Path("/proc/self/fd").iterdir():
        try:
            count += os.readlink(fd) in names
        except OSError:
            pass
    return count


def test_the_server_closes_retired_snapshots_and_truncates_the_log(live, corpus, index_settings):
    """Issue #11, item 7: updates from a terminal while the app serves; the write-ahead log
    must not grow with each update, nor the open handles with each reload."""
    wal = index_settings.index_dir / "store.sqlite-wal"
    handles = []
    for n in range(8):
        (corpus / f"note-{n}.txt").write_text(f"Harbour note {n}\n\n" + "The pier was repainted. " * (20 + n),
                                              encoding="utf-8")
        update_index([corpus], index_settings, FakeEncoder())  # its own connection, as a terminal's
        assert wal.stat().st_size > 0  # the update's pages are in the log, pinned by the app's snapshot
        with live.using() as retriever:  # the next question switches to the new index
            assert retriever.index.store.counts()["articles"] == 4 + n
        assert live.open_snapshots == 1
        assert wal.stat().st_size == 0
        handles.append(store_handles(index_settings.index_dir))
    assert len(set(handles)) == 1, handles
    assert current_titles(live, "harbour pier repainted")


def test_a_question_on_a_retired_snapshot_keeps_it_open_until_it_ends(live, corpus, index_settings):
    wal = index_settings.index_dir / "store.sqlite-wal"
    with live.using() as old:
        (corpus / "new.txt").write_text(NEW, encoding="utf-8")
        update_index([corpus], index_settings, FakeEncoder())
        assert current_titles(live)[0] == "Lighthouse keepers return"  # reloaded meanwhile
        assert live.open_snapshots == 2 and wal.stat().st_size > 0  # the old reader pins the log
        assert "Lighthouse keepers return" not in titles(old)  # and still answers from it
    assert live.open_snapshots == 1
    assert wal.stat().st_size == 0
    assert current_titles(live)[0] == "Lighthouse keepers return"


def test_uploads_beyond_the_hourly_budget_are_refused_whole_and_the_index_is_unchanged(corpus, index_settings,
                                                                                      fake_encoder, tmp_path):
    from embeddings.uploads import UploadRefused

    update_index([corpus], index_settings, fake_encoder)
    uploads = tmp_path / "uploads"
    live = LiveIndex(Settings(index=index_settings, uploads_dir=uploads, upload_budget_mb=0.001), fake_encoder)
    first, second = tmp_path / "first", tmp_path / "second"
    first.write_text(NEW, encoding="utf-8")  # about 130 bytes
    second.write_text(NEW.replace("Lighthouse keepers", "Harbour pilots") + "More. " * 150, encoding="utf-8")
    assert live.add_files([(first, "first.txt")]).added == ["Lighthouse keepers return"]
    encoded = len(fake_encoder.texts)
    with pytest.raises(UploadRefused, match="MB of uploads an hour"):
        live.add_files([(second, "second.txt")])
    assert sorted(p.name for p in uploads.iterdir()) == ["first.txt"]  # nothing saved
    assert len(fake_encoder.texts) == encoded and live.status().articles == 4  # nothing encoded


def test_the_page_cannot_rebuild_when_web_rebuild_is_off(corpus, index_settings, fake_encoder, tmp_path):
    from embeddings.manifest import IndexProblem

    update_index([corpus], index_settings, fake_encoder)
    live = LiveIndex(Settings(index=index_settings, uploads_dir=tmp_path / "u", web_rebuild=False), fake_encoder)
    encoded = len(fake_encoder.texts)
    with pytest.raises(IndexProblem, match=r"needs a login.*qa index --rebuild"):
        live.rebuild()
    assert len(fake_encoder.texts) == encoded
