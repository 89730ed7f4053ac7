"""Incremental updates, atomicity on bad input, the manifest check, and save -> load."""

import json
import shutil
import sqlite3
from pathlib import Path

import numpy as np
import pytest

from embeddings.indexer import update_index
from embeddings.reader import VECTORS_FILE, open_index
from embeddings.manifest import IndexMismatch, IndexMissing
from embeddings.settings import IndexSettings
from tests.conftest import SEED, FakeEncoder


def state(settings):
    """Everything observable about an index: rows of each table and the FAISS contents."""
    d = settings.index_dir
    conn = sqlite3.connect(d / "store.sqlite")
    rows = {t: conn.execute(f"SELECT * FROM {t} ORDER BY 1").fetchall()
            for t in ("articles", "passages", "passages_fts")}
    conn.close()
    return rows, (d / VECTORS_FILE).read_bytes(), json.loads((d / "manifest.json").read_text())


def faiss_ids(settings):
    enc = FakeEncoder()
    index = open_index(settings, enc.identity, enc.dimension)
    try:
        found = index.vectors.search(np.ones(enc.dimension, np.float32) / 8, 10_000)
        return sorted(i for i, _ in found), sorted(index.store.passages(range(1, 10_000)))
    finally:
        index.close()


def test_first_index_then_nothing_to_do(corpus, index_settings, fake_encoder):
    report = update_index([corpus], index_settings, fake_encoder)
    assert len(report.added) == 3 and report.passages_encoded > 0
    calls = fake_encoder.calls
    again = update_index([corpus], index_settings, fake_encoder)
    assert fake_encoder.calls == calls, "an unchanged folder is not re-encoded"
    assert (again.added, again.updated, again.removed, again.unchanged) == ([], [], [], 3)


def test_adding_one_article_encodes_only_its_passages(corpus, index_settings, fake_encoder):
    update_index([corpus], index_settings, fake_encoder)
    fake_encoder.texts.clear()
    (corpus / "new.txt").write_text("title: New\n\nA bridge opened today. Cars crossed it.", encoding="utf-8")
    report = update_index([corpus], index_settings, fake_encoder)
    assert report.added == ["New"] and report.unchanged == 3
    assert fake_encoder.texts == ["A bridge opened today. Cars crossed it."]


def test_editing_one_article_reencodes_only_it(corpus, index_settings, fake_encoder):
    update_index([corpus], index_settings, fake_encoder)
    fake_encoder.texts.clear()
    path = corpus / "library.md"
    path.write_text(path.read_text().replace("4 million", "5 million"), encoding="utf-8")
    report = update_index([corpus], index_settings, fake_encoder)
    assert report.updated == ["City library opens new wing"] and report.unchanged == 2
    assert fake_encoder.texts and all("library" in t or "wing" in t for t in fake_encoder.texts)
    index = open_index(index_settings, fake_encoder.identity, fake_encoder.dimension)
    texts = [p.text for p in index.store.passages(range(1, 1000)).values()]
    index.close()
    assert any("5 million" in t for t in texts) and not any("4 million" in t for t in texts)


def test_deleting_a_file_removes_its_passages_from_faiss_and_sqlite(corpus, index_settings, fake_encoder):
    update_index([corpus], index_settings, fake_encoder)
    before_faiss, before_sql = faiss_ids(index_settings)
    (corpus / "ferry.txt").unlink()
    report = update_index([corpus], index_settings, fake_encoder)
    assert report.removed == ["Ferry service resumes"]
    after_faiss, after_sql = faiss_ids(index_settings)
    assert after_faiss == after_sql and len(after_sql) < len(before_sql)
    conn = sqlite3.connect(index_settings.index_dir / "store.sqlite")
    assert conn.execute("SELECT count(*) FROM passages_fts WHERE passages_fts MATCH 'ferry'").fetchone() == (0,)
    assert conn.execute("SELECT count(*) FROM articles WHERE title LIKE 'Ferry%'").fetchone() == (0,)


def test_indexing_a_single_file_does_not_remove_others(corpus, index_settings, fake_encoder):
    update_index([corpus], index_settings, fake_encoder)
    report = update_index([corpus / "ferry.txt"], index_settings, fake_encoder)
    assert report.removed == [] and report.unchanged == 1


@pytest.mark.parametrize("name, content", [
    ("empty.txt", b""),
    ("binary.txt", b"\x00\x01\x02\x03binary"),
    ("latin1.txt", "na\u00efve".encode("latin-1")),
    ("baddate.txt", b" date 2018-02-31 Body."),
])
def test_bad_file_is_reported_and_the_index_stays_intact(corpus, index_settings, fake_encoder, name, content):
    update_index([corpus], index_settings, fake_encoder)
    before = state(index_settings)
    (corpus / name).write_bytes(content)
    report = update_index([corpus], index_settings, fake_encoder)
    assert len(report.errors) == 1 and name in report.errors[0]
    assert state(index_settings)[:2] == before[:2]


def test_a_previously_good_file_turned_bad_keeps_its_old_version(corpus, index_settings, fake_encoder):
    update_index([corpus], index_settings, fake_encoder)
    before = state(index_settings)
    (corpus / "ferry.txt").write_bytes(b"\xff\xfe broken now")
    report = update_index([corpus], index_settings, fake_encoder)
    assert report.removed == [] and "ferry.txt" in report.errors[0]
    assert state(index_settings)[0] == before[0]


def test_crash_during_encoding_leaves_index_untouched(corpus, index_settings, fake_encoder):
    update_index([corpus], index_settings, fake_encoder)
    before = state(index_settings)

    class Exploding(FakeEncoder):
        def encode(self, texts, progress=False):
            raise RuntimeError("out of memory")

    (corpus / "new.txt").write_text("Another story.", encoding="utf-8")
    with pytest.raises(RuntimeError):
        update_index([corpus], index_settings, Exploding())
    assert state(index_settings) == before


def test_manifest_from_another_model_is_refused(corpus, index_settings, fake_encoder):
    update_index([corpus], index_settings, fake_encoder)
    other = {**FakeEncoder.identity, "name": "other-model", "sha256": "f" * 64}
    with pytest.raises(IndexMismatch, match=r"other-model.*qa index --rebuild"):
        open_index(index_settings, other, fake_encoder.dimension)

    class Other(FakeEncoder):
        identity = other

    with pytest.raises(IndexMismatch, match="--rebuild"):
        update_index([corpus], index_settings, Other())
    report = update_index([corpus], index_settings, Other(), rebuild=True)
    assert len(report.added) == 3
    assert open_index(index_settings, other, 64).manifest["model"]["name"] == "other-model"


def test_chunker_change_is_refused(corpus, index_settings, fake_encoder):
    update_index([corpus], index_settings, fake_encoder)
    changed = IndexSettings(index_dir=index_settings.index_dir, target_tokens=32)
    with pytest.raises(IndexMismatch, match="chunker"):
        open_index(changed, fake_encoder.identity, fake_encoder.dimension)


def test_title_context_is_recorded_and_an_index_built_without_it_is_refused(corpus, index_settings, fake_encoder):
    titled = IndexSettings(index_dir=index_settings.index_dir, passage_context="title")
    update_index([corpus], titled, fake_encoder)
    index = open_index(titled, fake_encoder.identity, fake_encoder.dimension)
    assert index.manifest["chunker"]["context"] == "title"
    ferry = next(i for i, p in index.store.passages(index.vectors.ids().tolist()).items() if "ferry" in p.text)
    qvec = fake_encoder.encode(["The island ferry resumed service"])[0]
    titled_score = index.vectors.scores(qvec, [ferry])[ferry]
    index.close()
    with pytest.raises(IndexMismatch, match="chunker"):
        open_index(index_settings, fake_encoder.identity, fake_encoder.dimension)
    plain = IndexSettings(index_dir=index_settings.index_dir.parent / "plain")
    update_index([corpus], plain, fake_encoder)
    index = open_index(plain, fake_encoder.identity, fake_encoder.dimension)
    ferry = next(i for i, p in index.store.passages(index.vectors.ids().tolist()).items() if "ferry" in p.text)
    assert index.vectors.scores(qvec, [ferry])[ferry] != pytest.approx(titled_score)  # the title was read
    index.close()


def test_missing_index_says_what_to_run(index_settings, fake_encoder):
    with pytest.raises(IndexMissing, match="qa index seeds/"):
        open_index(index_settings, fake_encoder.identity, fake_encoder.dimension)


def test_save_load_gives_identical_results(corpus, index_settings, fake_encoder, tmp_path):
    update_index([corpus], index_settings, fake_encoder)
    copy = IndexSettings(index_dir=tmp_path / "copy")
    shutil.copytree(index_settings.index_dir, copy.index_dir)
    a = open_index(index_settings, fake_encoder.identity, fake_encoder.dimension)
    b = open_index(copy, fake_encoder.identity, fake_encoder.dimension)
    for q in fake_encoder.encode(["villages in Syria", "ferry strike", "library wing"]):
        assert a.vectors.search(q, 5) == b.vectors.search(q, 5)
    assert a.store.lexical_search('"ferry"', 5) == b.store.lexical_search('"ferry"', 5)


def test_stale_faiss_file_is_rebuilt_from_the_store(corpus, index_settings, fake_encoder):
    update_index([corpus], index_settings, fake_encoder)
    (index_settings.index_dir / VECTORS_FILE).unlink()
    index = open_index(index_settings, fake_encoder.identity, fake_encoder.dimension)
    assert index.vectors.count() == index.store.counts()["passages"] > 0
    index.close()


def test_rebuild_without_paths_uses_the_paths_indexed_before(corpus, index_settings, fake_encoder):
    update_index([corpus], index_settings, fake_encoder)
    fake_encoder.calls = 0
    report = update_index([], index_settings, fake_encoder, rebuild=True)
    assert len(report.added) == 3 and fake_encoder.calls == 1


def test_missing_path_is_an_error_not_a_crash(index_settings, fake_encoder, tmp_path):
    report = update_index([tmp_path / "nope"], index_settings, fake_encoder)
    assert report.errors == [f"{tmp_path / 'nope'}: no such file or folder"]


def test_seed_twice_encodes_nothing_the_second_time(index_settings, fake_encoder):
    update_index([SEED.parent], index_settings, fake_encoder)
    calls = fake_encoder.calls
    update_index([SEED.parent], index_settings, fake_encoder)
    assert fake_encoder.calls == calls == 1


def test_rebuild_if_stale_keeps_everything_indexed_before(corpus, index_settings, tmp_path, monkeypatch, capsys):
    """A model change rebuilds from seeds/ *and* the folders indexed earlier (the uploads)."""
    from qa import cli

    uploads = tmp_path / "uploads"
    uploads.mkdir()
    (uploads / "keepers.txt").write_text("title: Keepers return\n\nTwo keepers return to the lighthouse.\n")
    update_index([corpus, uploads], index_settings, FakeEncoder())

    class OtherModel(FakeEncoder):
        identity = {**FakeEncoder.identity, "name": "another-model", "sha256": "1" * 64}

    monkeypatch.setattr(cli, "encoder_for", lambda settings: OtherModel())
    code = cli.main(["--index-dir", str(index_settings.index_dir), "index", "--rebuild-if-stale", str(corpus)])
    assert code == 0
    assert "rebuilding from" in capsys.readouterr().err
    index = open_index(index_settings, OtherModel.identity, OtherModel.dimension)
    assert "Keepers return" in [a.title for a in index.store.articles()]
    assert len(index.store.articles()) == 4
    index.close()


def test_rebuild_refuses_when_every_source_is_gone_and_keeps_the_index(corpus, index_settings, fake_encoder):
    from embeddings.manifest import IndexProblem

    update_index([corpus], index_settings, fake_encoder)
    before = state(index_settings)
    shutil.rmtree(corpus)
    with pytest.raises(IndexProblem, match="none of the files and folders it was built from exist"):
        update_index([], index_settings, fake_encoder, rebuild=True)
    assert state(index_settings) == before


def test_rebuild_reports_a_vanished_source(corpus, index_settings, fake_encoder, tmp_path):
    other = tmp_path / "other"
    other.mkdir()
    (other / "note.txt").write_text("title: Note\n\nA short note about the harbour.\n", encoding="utf-8")
    update_index([corpus], index_settings, fake_encoder)
    update_index([other], index_settings, fake_encoder)
    update_index([other], index_settings, fake_encoder)  # the same root twice is recorded once
    shutil.rmtree(other)
    report = update_index([], index_settings, fake_encoder, rebuild=True)
    assert report.errors == [f"{other.resolve()}: indexed before but gone; its articles are dropped by the rebuild"]
    assert len(report.added) == 3


def lexicon(settings):
    conn = sqlite3.connect(settings.index_dir / "store.sqlite")
    conn.execute("CREATE VIRTUAL TABLE IF NOT EXISTS temp.vocab USING fts5vocab(main, passages_fts, 'row')")
    ours = dict(conn.execute("SELECT term, docs FROM lexicon"))
    fts = dict(conn.execute("SELECT term, doc FROM temp.vocab"))
    conn.close()
    return ours, fts


def test_the_lexicon_counts_passages_per_term_as_fts5_does(corpus, index_settings, fake_encoder):
    update_index([corpus], index_settings, fake_encoder)
    ours, fts = lexicon(index_settings)
    assert ours == fts and ours["ferri"] >= 1  # porter-stemmed, as FTS5 stores it
    (corpus / "ferry.txt").unlink()
    path = corpus / "library.md"
    path.write_text(path.read_text().replace("makerspace", "ferry dock"), encoding="utf-8")
    update_index([corpus], index_settings, fake_encoder)
    ours, fts = lexicon(index_settings)
    assert ours == fts and "makerspac" not in ours
    update_index([], index_settings, fake_encoder, rebuild=True)
    assert lexicon(index_settings)[0] == lexicon(index_settings)[1]


def test_bm25_reads_the_rarest_words_within_its_budget(corpus, index_settings, fake_encoder):
    update_index([corpus], index_settings, fake_encoder)
    index = open_index(index_settings, fake_encoder.identity, fake_encoder.dimension)
    store = index.store
    words = ["the", "ferry", "zzzunknown", "syria"]
    counts = {w: store.conn.execute("SELECT count(*) FROM passages_fts WHERE passages_fts MATCH ?",
                                    (f'"{w}"',)).fetchone()[0] for w in words}
    assert store.lexical_words(words, None) == words
    assert store.lexical_words(words, 0) == ["zzzunknown"]  # the rarest is always read
    chosen = store.lexical_words(words, counts["ferry"])
    assert chosen == ["ferry", "zzzunknown"] and counts["the"] > counts["ferry"]
    assert set(store.lexical_words(words, 10_000)) == set(words)
    index.close()


def test_passage_text_is_its_articles_body_between_its_offsets(tmp_path, index_settings, fake_encoder):
    """The store keeps each text once (the article body); SQLite slices it as Python does."""
    body = "Café 🙂 naïve — “quoted” words. 🚀 Second sentence here.\n\n" * 30 + "Ünïcödé end."
    (tmp_path / "u.txt").write_text(f"title: Ünïcode\n\n{body}", encoding="utf-8")
    update_index([tmp_path / "u.txt"], index_settings, fake_encoder)
    index = open_index(index_settings, fake_encoder.identity, fake_encoder.dimension)
    [article] = index.store.articles()
    stored = index.store.article_body(article.id)
    passages = index.store.passages(index.store.all_passage_ids().tolist())
    assert len(passages) > 1
    for p in passages.values():
        assert p.text == stored[p.start:p.end] and p.text.strip()
    index.close()


def test_an_index_built_in_another_precision_is_refused_until_rebuilt(corpus, index_settings):
    class Bf16(FakeEncoder):
        identity = {**FakeEncoder.identity, "precision": "bf16"}

    update_index([corpus], index_settings, Bf16())
    with pytest.raises(IndexMismatch, match=r"encoded with fake in bf16, but this run encodes with fake in fp32.*"
                                            r"--rebuild.*--precision bf16"):
        open_index(index_settings, FakeEncoder.identity, FakeEncoder.dimension)
    with pytest.raises(IndexMismatch, match="bf16"):
        update_index([corpus], index_settings, FakeEncoder())
    update_index([], index_settings, FakeEncoder(), rebuild=True)
    index = open_index(index_settings, FakeEncoder.identity, FakeEncoder.dimension)
    assert index.manifest["model"]["precision"] == "fp32"
    index.close()


def test_articles_beyond_the_memory_budget_are_read_again_when_encoded(corpus, index_settings, monkeypatch,
                                                                        tmp_path):
    import embeddings.indexer as indexer

    update_index([corpus], index_settings, FakeEncoder())
    want = state(index_settings)[0]["passages"]
    monkeypatch.setattr(indexer, "HELD_CHARS", 0)  # nothing held: every article read again
    other = IndexSettings(index_dir=tmp_path / "other")
    update_index([corpus], other, FakeEncoder())
    assert [r[1:] for r in state(other)[0]["passages"]] == [r[1:] for r in want]


KILLED_CHILD = """
import os, sys, time
from pathlib import Path
from embeddings.indexer import update_index
from embeddings.settings import IndexSettings
from tests.conftest import FakeEncoder

log = Path(sys.argv[2])

class Stalling(FakeEncoder):
    def encode_passages(self, texts, sentences, progress=False):
        with log.open("a") as f:
            f.write("chunk %d\\n" % len(texts))
        if log.read_text().count("chunk") == 3:
            time.sleep(120)  # the third chunk never commits: the parent kills us here
        return super().encode_passages(texts, sentences, progress)

update_index([Path(sys.argv[1])], IndexSettings(index_dir=Path(sys.argv[3]), commit_every=4), Stalling())
"""


def test_a_killed_update_resumes_and_encodes_only_what_it_had_not_committed(tmp_path):
    import signal
    import subprocess
    import sys
    import time

    from tests.conftest import ROOT

    folder = tmp_path / "articles"
    folder.mkdir()
    for n in range(12):
        (folder / f"a{n:02d}.txt").write_text(
            f"title: Story {n}\n\nStory {n} first paragraph about harbour {n}.\n\n"
            f"Story {n} second paragraph about ferries {n}.\n", encoding="utf-8")
    settings = IndexSettings(index_dir=tmp_path / "index", commit_every=4)
    log = tmp_path / "log"
    child = subprocess.Popen([sys.executable, "-c", KILLED_CHILD, str(folder), str(log), str(settings.index_dir)],
                             cwd=ROOT)
    deadline = time.time() + 60
    while not (log.exists() and log.read_text().count("chunk") == 3):
        assert time.time() < deadline and child.poll() is None, "the child did not reach its third chunk"
        time.sleep(0.05)
    child.send_signal(signal.SIGKILL)
    child.wait()

    conn = sqlite3.connect(settings.index_dir / "store.sqlite")
    committed = {r[0] for r in conn.execute("SELECT title FROM articles")}
    conn.close()
    assert 0 < len(committed) < 12, "two chunks committed, the third did not"
    encoder = FakeEncoder()
    report = update_index([folder], settings, encoder)
    assert report.unchanged == len(committed)
    assert sorted(report.added) == sorted(f"Story {n}" for n in range(12) if f"Story {n}" not in committed)
    assert not any(f"Story {n} " in t for t in encoder.texts for n in range(12) if f"Story {n}" in committed)
    index = open_index(settings, encoder.identity, encoder.dimension)
    assert index.store.counts()["articles"] == 12
    assert np.array_equal(index.vectors.ids(), index.store.all_passage_ids())
    assert index.manifest["counts"] == index.store.counts()
    index.close()


def test_unreadable_files_fifos_and_folders_are_reported_and_the_rest_indexed(tmp_path, index_settings,
                                                                              fake_encoder, monkeypatch):
    import os
    import threading

    folder = tmp_path / "news"
    (folder / "desk").mkdir(parents=True)
    (folder / "good.txt").write_text("title: Good\n\nThe ferry sailed.\n", encoding="utf-8")
    (folder / "desk" / "kept.txt").write_text("title: Kept\n\nThe library opened.\n", encoding="utf-8")
    update_index([folder], index_settings, fake_encoder)
    os.mkfifo(folder / "pipe.txt")
    (folder / "locked.txt").write_text("title: Locked\n\nSecret.\n", encoding="utf-8")
    real_read, real_scandir = Path.read_bytes, os.scandir

    def read_bytes(self):
        if self.name == "locked.txt":
            raise PermissionError(13, "Permission denied", str(self))
        return real_read(self)

    def scandir(path="."):
        if Path(path).name == "desk":
            raise PermissionError(13, "Permission denied", str(path))
        return real_scandir(path)

    monkeypatch.setattr(Path, "read_bytes", read_bytes)
    monkeypatch.setattr(os, "scandir", scandir)
    done = []
    worker = threading.Thread(target=lambda: done.append(update_index([folder], index_settings, fake_encoder)),
                              daemon=True)
    worker.start()
    worker.join(120)
    assert done, "qa index hung (on the FIFO?)"
    errors = "\n".join(done[0].errors)
    assert "pipe.txt: is a FIFO" in errors and "locked.txt: cannot be read (Permission denied)" in errors
    assert "desk: is a folder that cannot be read" in errors
    assert done[0].removed == []  # what the unlisted folder holds stays indexed
    index = open_index(index_settings, fake_encoder.identity, fake_encoder.dimension)
    assert sorted(a.title for a in index.store.articles()) == ["Good", "Kept"]
    index.close()


def test_the_index_files_share_one_mode(corpus, index_settings, fake_encoder):
    """Issue #11, item 10: manifest.json and vectors.faiss were created 0600 beside a 0644 store."""
    import os
    import stat

    old = os.umask(0o022)
    try:
        update_index([corpus], index_settings, fake_encoder)
    finally:
        os.umask(old)
    modes = {name: stat.S_IMODE((index_settings.index_dir / name).stat().st_mode)
             for name in ("store.sqlite", "vectors.faiss", "manifest.json")}
    assert set(modes.values()) == {0o644}, modes


@pytest.mark.parametrize("filters, expected", [
    (dict(since="2018-05-03"), {"ferry", "later"}),
    (dict(until="2018-05-02"), {SEED.stem}),
    (dict(since="2018-05-02", until="2018-05-03"), {SEED.stem, "ferry"}),
    (dict(as_of="2018-05-02"), {SEED.stem, "library", "undated"}),  # undated articles pass "as of"
    (dict(as_of="2017-01-01"), {"library", "undated"}),
    (dict(sources=("harbour times",)), {"ferry", "later"}),  # case-insensitive, as SQL's lower()
    (dict(sources=("Harbour Times", "Nowhere")), {"ferry", "later"}),
    (dict(since="2018-05-01", sources=("HARBOUR TIMES",), as_of="2018-05-03"), {"ferry"}),
    (dict(until="2000-01-01"), set()),
])
def test_a_snapshot_filters_passages_in_memory_exactly_as_sql_does(corpus, index_settings, fake_encoder,
                                                                   filters, expected):
    from embeddings.store import Filters, Store

    (corpus / "undated.txt").write_text("An undated note with no source at all.\n", encoding="utf-8")
    (corpus / "later.txt").write_text("title: Later\ndate: 2018-05-04\nsource: harbour TIMES\n\nThe ferry ran late.\n",
                                      encoding="utf-8")
    update_index([corpus], index_settings, fake_encoder, progress=False)
    path = index_settings.index_dir / "store.sqlite"
    with Store(path) as live, Store(path, snapshot=True) as snapshot:
        by_sql = live.passage_ids(Filters(**filters))
        in_memory = snapshot.passage_ids(Filters(**filters))
        assert in_memory.dtype == np.int64 and in_memory.tolist() == by_sql.tolist() == sorted(by_sql.tolist())
        found = {Path(p.path).stem for p in snapshot.passages(in_memory.tolist()).values()}
        # BM25 under the filter: SQL joins each match to its article, a snapshot filters in memory
        match = '"ferry" OR "library" OR "note" OR "forces" OR "the"'
        by_sql = live.lexical_search(match, 50, Filters(**filters))
        assert snapshot.lexical_search(match, 50, Filters(**filters)) == by_sql
        assert {i for i, _ in by_sql} == set(in_memory.tolist())  # every passage here holds a word
    assert found == expected
