"""SIGKILL at every point where an update, a rebuild or a repair writes a file (#11).

A child process runs the real indexer (with the fake encoder) and kills itself with SIGKILL
just before or just after one write: each SQLite commit, each atomic rename of
``vectors.faiss`` or ``manifest.json`` (so also between the vector and the manifest write),
and the move of a damaged store aside. The points are not listed by hand: a first run of each
operation records every write it makes, and then one child is killed at each of them. After
each kill, ``qa check`` names any problem with the command that fixes it, nothing committed
before is lost, and running the same operation again leaves a sound index holding exactly
what it should.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from embeddings.check import check_index
from embeddings.indexer import repair_index, update_index
from embeddings.reader import open_index
from embeddings.settings import IndexSettings
from embeddings.store import Store
from tests.conftest import ROOT, FakeEncoder

CHILD = r"""
import contextlib, json, os, signal, sys
from pathlib import Path

from embeddings.indexer import repair_index, update_index
from embeddings.settings import IndexSettings
from embeddings.store import Store
from tests.conftest import FakeEncoder

operation, folder, index_dir, trace, kill = sys.argv[1:6]
kill_label, _, kill_n = kill.rpartition("#")
seen = {}

def point(label):
    seen[label] = seen.get(label, 0) + 1
    with open(trace, "a") as f:
        f.write(json.dumps([label, seen[label]]) + "\n")
    if label == kill_label and seen[label] == int(kill_n):
        os.kill(os.getpid(), signal.SIGKILL)

transaction = Store._transaction

@contextlib.contextmanager
def watched(self):
    with transaction(self):
        yield
        point(f"before commit to {self.path.parent.name}/{self.path.name}")
    point(f"after commit to {self.path.parent.name}/{self.path.name}")

Store._transaction = watched
rename = os.replace

def watched_replace(src, dst, *args, **kwargs):
    name = Path(src).name if Path(src).name.startswith("store.sqlite") else Path(dst).name
    point(f"before renaming {name}")
    rename(src, dst, *args, **kwargs)
    point(f"after renaming {name}")

os.replace = watched_replace
settings = IndexSettings(index_dir=Path(index_dir), commit_every=4)
if operation == "update":
    update_index([Path(folder)], settings, FakeEncoder())
elif operation == "rebuild":
    update_index([], settings, FakeEncoder(), rebuild=True)
else:
    repair_index(settings, encoder=FakeEncoder)
"""


def write_story(folder: Path, n: int, words: str = "harbour") -> None:
    (folder / f"a{n:02d}.txt").write_text(
        f"title: Story {n}\n\nStory {n} first paragraph about {words} {n}.\n\n"
        f"Story {n} second paragraph about ferries {n}.\n", encoding="utf-8")


def run_child(operation: str, folder: Path, settings: IndexSettings, trace: Path, kill: str = "#0"):
    trace.unlink(missing_ok=True)
    trace.touch()
    child = subprocess.run([sys.executable, "-c", CHILD, operation, str(folder), str(settings.index_dir),
                            str(trace), kill], cwd=ROOT, capture_output=True, text=True, timeout=120)
    return child, [tuple(json.loads(line)) for line in trace.read_text().splitlines()]


def titles(settings: IndexSettings) -> set[str]:
    with Store(settings.index_dir / "store.sqlite", snapshot=True) as store:
        return {a.title for a in store.articles()}


def assert_sound(settings: IndexSettings, expected: set[str]) -> None:
    assert check_index(settings.index_dir, thorough=True) == []
    assert titles(settings) == expected
    encoder = FakeEncoder()
    index = open_index(settings, encoder.identity, encoder.dimension)
    assert np.array_equal(index.vectors.ids(), index.store.all_passage_ids())
    assert index.manifest["counts"] == index.store.counts()
    index.close()


def prepare(operation: str, tmp_path: Path) -> tuple[Path, IndexSettings, set[str], set[str]]:
    """The index and folder before ``operation``; the titles before and the titles expected after."""
    folder = tmp_path / "articles"
    folder.mkdir(parents=True)
    settings = IndexSettings(index_dir=tmp_path / "index", commit_every=4)
    for n in range(7):
        write_story(folder, n)
    if operation == "build":
        return folder, settings, set(), {f"Story {n}" for n in range(7)}
    update_index([folder], settings, FakeEncoder())
    before = {f"Story {n}" for n in range(7)}
    if operation == "update":  # remove two, change one, add three
        (folder / "a00.txt").unlink()
        (folder / "a01.txt").unlink()
        write_story(folder, 2, words="lighthouse")
        for n in range(7, 10):
            write_story(folder, n)
        return folder, settings, before, {f"Story {n}" for n in range(2, 10)}
    if operation == "repair-damaged":
        store = settings.index_dir / "store.sqlite"
        data = bytearray(store.read_bytes())
        data[:4096] = bytes(range(256)) * 16
        store.write_bytes(bytes(data))
    if operation == "repair-derived":
        (settings.index_dir / "vectors.faiss").write_bytes(b"truncated")
    return folder, settings, before, before


OPERATIONS = ["build", "update", "rebuild", "repair-damaged", "repair-derived"]


@pytest.mark.parametrize("operation", OPERATIONS)
def test_a_kill_at_every_write_loses_nothing_and_the_next_run_finishes(operation, tmp_path):
    child_operation = {"build": "update", "repair-damaged": "repair", "repair-derived": "repair"}.get(
        operation, operation)
    folder, settings, before, after = prepare(operation, tmp_path / "traced")
    trace = tmp_path / "trace"
    clean, points = run_child(child_operation, folder, settings, trace)
    assert clean.returncode == 0, clean.stderr
    labels = {label for label, _ in points}
    if operation != "repair-derived":  # that one only rewrites the derived files
        assert "after commit to index/store.sqlite" in labels
    assert {"after renaming vectors.faiss", "after renaming manifest.json"} <= labels
    if operation == "repair-damaged":
        assert "after renaming store.sqlite" in labels
    if operation == "rebuild":
        assert "after commit to rebuild/store.sqlite" in labels

    for n, (label, count) in enumerate(points):
        work = tmp_path / f"kill-{n}"
        folder, settings, _, _ = prepare(operation, work)
        killed, _ = run_child(child_operation, folder, settings, trace, kill=f"{label}#{count}")
        where = f"killed {label} (#{count})"
        assert killed.returncode == -signal.SIGKILL, f"{where}: {killed.stderr}"
        for problem in check_index(settings.index_dir, thorough=True):
            assert "`qa " in problem, f"{where}: {problem}"  # every problem comes with its fix
        store = settings.index_dir / "store.sqlite"
        if operation == "repair-damaged":
            assert list(settings.index_dir.glob("store.sqlite.damaged-*[0-9]")) or store.exists(), where
        elif store.exists() and before:
            held = titles(settings)
            if operation in ("rebuild", "repair-derived"):
                assert held == before, where  # swapped in whole or not at all
            else:
                assert held >= before & after, where  # what stays was never taken out
        if operation in ("build", "update"):
            update_index([folder], settings, FakeEncoder())
        elif operation == "rebuild":
            update_index([], settings, FakeEncoder(), rebuild=True)
        else:
            repair_index(settings, encoder=FakeEncoder)
        assert_sound(settings, after)
