"""Damaged or missing derived files: reported with the command that fixes them, and healed from
the store without encoding; a missing store is reported, never silently recreated (#11)."""

import json

import pytest

from embeddings.check import check_index
from embeddings.indexer import repair_index, update_index
from embeddings.manifest import IndexMismatch, IndexProblem, ManifestDamaged, read_manifest
from embeddings.reader import open_index

DAMAGED = [bytes(range(256)) * 2, b"[]", b"null", b"{}", b'{"format_version": 2}', b"{not json"]


@pytest.fixture
def built(corpus, index_settings, fake_encoder):
    update_index([corpus], index_settings, fake_encoder)
    return index_settings


def opened(settings, encoder):
    index = open_index(settings, encoder.identity, encoder.dimension)
    counts = index.manifest["counts"]
    index.close()
    return counts


@pytest.mark.parametrize("content", DAMAGED)
def test_a_damaged_manifest_is_named_with_its_repair_and_healed_on_open(built, fake_encoder, content):
    directory = built.index_dir
    good = read_manifest(directory)
    (directory / "manifest.json").write_bytes(content)
    with pytest.raises(ManifestDamaged, match=rf"qa index --repair --index-dir {directory}"):
        read_manifest(directory)
    [problem] = check_index(directory)
    assert "manifest.json" in problem and f"--index-dir {directory}" in problem
    assert opened(built, fake_encoder) == good["counts"]  # opening rewrote it from the store
    assert read_manifest(directory)["counts"] == good["counts"] and check_index(directory) == []


def test_a_missing_manifest_beside_a_store_is_rewritten_not_mistaken_for_no_index(built, fake_encoder):
    directory = built.index_dir
    counts = read_manifest(directory)["counts"]
    (directory / "manifest.json").unlink()
    assert "manifest.json is missing" in check_index(directory)[0]
    assert opened(built, fake_encoder) == counts
    assert (directory / "manifest.json").exists() and check_index(directory) == []


def test_a_missing_store_is_reported_and_not_recreated(built, fake_encoder):
    directory = built.index_dir
    (directory / "store.sqlite").unlink()
    with pytest.raises(IndexMismatch, match=r"store.sqlite is missing.*qa index --rebuild --index-dir"):
        open_index(built, fake_encoder.identity, fake_encoder.dimension)
    assert not (directory / "store.sqlite").exists()
    assert "store.sqlite is missing" in check_index(directory)[0]
    with pytest.raises(IndexProblem, match=r"store.sqlite is missing: build it again from .* with `qa index --repair"):
        repair_index(built)  # no encoder given: says what to run
    assert not (directory / "store.sqlite").exists()


def test_a_truncated_vector_file_and_stale_counts_are_reported_and_repaired(built, fake_encoder, monkeypatch):
    directory = built.index_dir
    vectors = directory / "vectors.faiss"
    vectors.write_bytes(vectors.read_bytes()[:vectors.stat().st_size // 2])
    manifest = json.loads((directory / "manifest.json").read_text())
    manifest["counts"]["passages"] += 7
    (directory / "manifest.json").write_text(json.dumps(manifest))
    problems = check_index(directory)
    assert any("vectors.faiss cannot be read" in p for p in problems)
    assert any("the store holds" in p for p in problems)
    import embeddings.indexer as indexer

    monkeypatch.setattr(indexer, "_update_locked", None)  # repairing a sound store never re-encodes
    written = repair_index(built).manifest
    assert check_index(directory) == [] and written["counts"]["passages"] == manifest["counts"]["passages"] - 7


def test_cli_status_reports_problems_and_index_repair_fixes_them(built, capsys):
    from qa.cli import main

    directory = built.index_dir
    (directory / "manifest.json").write_bytes(b"\xff\xfe garbage")
    assert main(["--index-dir", str(directory), "status"]) == 1
    assert "qa index --repair" in capsys.readouterr().err
    assert main(["--index-dir", str(directory), "index", "--repair"]) == 0
    assert "nothing encoded" in capsys.readouterr().out
    assert main(["--index-dir", str(directory), "status"]) == 0


def test_an_update_removes_the_part_files_a_killed_write_left(built, corpus, fake_encoder):
    leftover = built.index_dir / "vectors.faiss.k1ll3d.part"
    leftover.write_bytes(b"half a file")
    update_index([corpus], built, fake_encoder)
    assert not leftover.exists()
    (built.index_dir / "manifest.json.x.part").write_text("{")
    repair_index(built)
    assert list(built.index_dir.glob("*.part")) == []


def test_the_command_a_problem_names_runs_as_written(built, capsys):
    """Options given after the command's name work, so the suggested commands can be pasted."""
    import re
    import shlex

    from qa.cli import main

    directory = built.index_dir
    (directory / "manifest.json").write_text("[]")
    [problem] = check_index(directory)
    command = re.search(r"`(qa [^`]+)`", problem).group(1)
    assert main(shlex.split(command)[1:]) == 0
    assert check_index(directory) == []


def test_a_corrupt_store_page_is_found_by_check_and_named_by_every_command(built, capsys):
    from qa.cli import main

    directory = built.index_dir
    store = directory / "store.sqlite"
    data = bytearray(store.read_bytes())
    for page in range(2, len(data) // 4096):
        data[page * 4096 + 100:page * 4096 + 2000] = bytes(range(256)) * 7 + bytes(108)
    store.write_bytes(bytes(data))
    assert main(["--index-dir", str(directory), "check"]) == 1
    out = capsys.readouterr().out
    assert "store.sqlite is damaged" in out and f"qa index --repair --index-dir {directory}" in out


def smash_pages(store, first=2):
    """Overwrite the middle of every page from ``first`` on, as a failing disk would."""
    data = bytearray(store.read_bytes())
    for page in range(first, len(data) // 4096):
        data[page * 4096 + 100:page * 4096 + 2000] = bytes(range(256)) * 7 + bytes(108)
    store.write_bytes(bytes(data))


def smash_header(store):
    """Overwrite the first page: SQLite no longer sees a database at all (store roots unreadable)."""
    data = bytearray(store.read_bytes())
    data[:4096] = bytes(range(256)) * 16
    store.write_bytes(bytes(data))


@pytest.mark.parametrize("damage", [smash_pages, smash_header])
def test_a_damaged_store_is_moved_aside_and_rebuilt_from_its_recorded_sources(built, corpus, fake_encoder, damage):
    directory = built.index_dir
    before = opened(built, fake_encoder)
    store = directory / "store.sqlite"
    damage(store)
    damaged = store.read_bytes()
    repair = repair_index(built, encoder=lambda: fake_encoder)
    assert "store.sqlite is damaged" in repair.problem
    assert repair.moved_to.read_bytes() == damaged  # kept as it was, for whoever wants to salvage it
    assert repair.sources == [corpus.resolve()]
    assert len(repair.report.added) == before["articles"] and repair.report.passages_encoded == before["passages"]
    assert check_index(directory, thorough=True) == []
    assert opened(built, fake_encoder) == before
    assert read_manifest(directory)["roots"] == [str(corpus.resolve())]


def test_a_missing_store_is_rebuilt_from_the_sources_the_manifest_records(built, corpus, fake_encoder):
    directory = built.index_dir
    before = opened(built, fake_encoder)
    (directory / "store.sqlite").unlink()
    repair = repair_index(built, encoder=lambda: fake_encoder)
    assert repair.moved_to is None and repair.sources == [corpus.resolve()]
    assert opened(built, fake_encoder) == before


def test_a_damaged_store_with_unknown_sources_names_the_command_and_rebuilds_from_paths(built, corpus,
                                                                                        fake_encoder):
    directory = built.index_dir
    manifest = json.loads((directory / "manifest.json").read_text())
    del manifest["roots"]  # as a manifest written before sources were recorded there
    (directory / "manifest.json").write_text(json.dumps(manifest))
    smash_header(directory / "store.sqlite")
    with pytest.raises(IndexProblem, match=r"not recorded: name what to build it from, e\.g\. "
                                           r"`qa index --repair --index-dir .* seeds/`"):
        repair_index(built, encoder=lambda: fake_encoder)
    assert list(directory.glob("store.sqlite.damaged*")) == []  # nothing moved before it can go on
    repair = repair_index(built, encoder=lambda: fake_encoder, paths=[corpus])
    assert repair.sources == [corpus] and len(repair.report.added) == 3
    assert check_index(directory, thorough=True) == []


def test_cli_repair_of_a_damaged_store_says_what_it_did(built, corpus, fake_encoder, capsys, monkeypatch):
    import qa.cli
    from qa.cli import main

    monkeypatch.setattr(qa.cli, "encoder_for", lambda settings: fake_encoder)
    directory = built.index_dir
    smash_pages(directory / "store.sqlite")
    assert main(["--index-dir", str(directory), "index", "--repair"]) == 0
    out = capsys.readouterr().out
    [aside] = directory.glob("store.sqlite.damaged-*[0-9]")
    assert f"rebuilt {directory}/ from {corpus.resolve()} (articles: 3," in out
    assert f"the damaged store is kept at {aside}" in out
    assert main(["--index-dir", str(directory), "check"]) == 0
