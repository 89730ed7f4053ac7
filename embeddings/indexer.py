"""Build and update an index directory, and open one for searching.

``update_index`` reads files and folders, re-encodes only articles that are new or whose
content changed, removes articles whose files are gone from an indexed folder, and writes
everything in one SQLite transaction followed by the FAISS file and the manifest (each
written atomically). A file that cannot be read is reported and skipped; what the index
held for it stays as it was.

Layout of an index directory::

    index/
      store.sqlite    articles, passages, vectors, FTS5 (the source of truth)
      vectors.faiss   FAISS index keyed by passage id (derived; rebuilt if stale)
      manifest.json   format, model, chunker, counts, versions (derived)
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from embeddings.articles import Article, ArticleError, find_article_files, load_articles
from embeddings.encoder import Encoder, load_tokenizer
from embeddings.manifest import (IndexMismatch, IndexProblem, build_block, check_compatible,
                                 read_manifest, write_manifest)
from embeddings.passages import Passage, split_passages
from embeddings.settings import IndexSettings
from embeddings.store import Store
from embeddings.vector_index import FaissIndex

STORE_FILE = "store.sqlite"
VECTORS_FILE = "vectors.faiss"
LOCK_FILE = ".lock"


class IndexBusy(IndexProblem):
    pass


@dataclass
class UpdateReport:
    """What one ``update_index`` call did."""

    added: list[str] = field(default_factory=list)      # titles
    updated: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    unchanged: int = 0
    passages_encoded: int = 0
    errors: list[str] = field(default_factory=list)      # "path: problem"

    @property
    def changed(self) -> bool:
        return bool(self.added or self.updated or self.removed)


@dataclass
class LoadedIndex:
    """An opened index directory: the store, the vector index and the manifest."""

    directory: Path
    store: Store
    vectors: FaissIndex
    manifest: dict

    def close(self) -> None:
        self.store.close()


def update_index(paths: list[Path], settings: IndexSettings, encoder: Encoder,
                 rebuild: bool = False, progress: bool = False) -> UpdateReport:
    """Bring the index in line with ``paths`` (files or folders).

    Args:
        paths: files and folders to index; with ``rebuild`` and no paths, the ones indexed before.
        settings: where the index is and how to split passages.
        encoder: called only for passages that need (re-)encoding.
        rebuild: drop everything and index from scratch (e.g. after a model change).
        progress: show a progress bar while encoding.
    """
    from filelock import FileLock, Timeout

    directory = Path(settings.index_dir)
    directory.mkdir(parents=True, exist_ok=True)
    try:
        lock = FileLock(str(directory / LOCK_FILE), timeout=0)
        lock.acquire()
    except Timeout:
        raise IndexBusy(f"another update of {directory}/ is running; try again when it has finished") from None
    try:
        with Store(directory / STORE_FILE) as store:
            return _update(store, [Path(p) for p in paths], settings, encoder, rebuild, progress)
    finally:
        lock.release()


def _update(store: Store, paths: list[Path], settings: IndexSettings, encoder: Encoder,
            rebuild: bool, progress: bool) -> UpdateReport:
    directory = Path(settings.index_dir)
    report = UpdateReport()
    build = build_block(encoder.identity, encoder.dimension, settings.chunker())
    stored_build = store.get_meta("build")
    if stored_build is not None and not rebuild:
        check_compatible(directory, stored_build, build)
    roots = [str(p.resolve()) for p in paths]
    if rebuild and not paths:
        before = list(dict.fromkeys(store.get_meta("roots", [])))
        roots = [r for r in before if Path(r).exists()]
        if before and not roots:
            raise IndexProblem(f"cannot rebuild {directory}/: none of the files and folders it was "
                               f"built from exist any more ({', '.join(before)}); name what to index, "
                               f"e.g. `qa index --rebuild seeds/`")
        report.errors += [f"{r}: indexed before but gone; its articles are dropped by the rebuild"
                          for r in before if r not in roots]
        paths = [Path(r) for r in roots]

    # Read every file first; a bad one is reported and keeps what the index had for it.
    found: dict[str, Article] = {}
    read_files: set[str] = set()
    failed_files: set[str] = set()
    folders: list[Path] = []
    for path in paths:
        if path.is_dir():
            folders.append(path.resolve())
            files = find_article_files(path)
        elif path.exists():
            files = [path]
        else:
            report.errors.append(f"{path}: no such file or folder")
            continue
        for file in files:
            resolved = str(file.resolve())
            try:
                for article in load_articles(file):
                    found.setdefault(article.id, article)
                read_files.add(resolved)
            except ArticleError as e:
                report.errors.append(str(e))
                failed_files.add(resolved)

    states = store.article_states()
    titles = {a.id: a.title for a in store.articles()}
    if rebuild:
        to_remove = set(states) - {aid for aid, (_, p) in states.items() if p in failed_files}
        to_add = list(found.values())
    else:
        to_add = [a for a in found.values() if states.get(a.id, (None,))[0] != a.content_hash]
        to_remove = {a.id for a in to_add if a.id in states}
        for aid, (_, path) in states.items():
            if aid in found or path in failed_files:
                continue
            gone_from_file = path in read_files
            gone_from_folder = not Path(path).exists() and any(_under(path, f) for f in folders)
            if gone_from_file or gone_from_folder:
                to_remove.add(aid)
    report.unchanged = len(found) - len(to_add)
    for article in to_add:
        (report.updated if article.id in states and not rebuild else report.added).append(article.title)
    report.removed = [titles[aid] for aid in to_remove if aid not in found]

    tokenizer = load_tokenizer(settings.model_name)
    chunked: list[tuple[Article, list[Passage]]] = [
        (a, split_passages(a.id, a.body, tokenizer, settings.max_tokens, settings.target_tokens,
                           settings.overlap_sentences))
        for a in to_add]
    texts = [p.text for _, passages in chunked for p in passages]
    vectors = encoder.encode(texts, progress=progress) if texts else np.zeros((0, encoder.dimension), np.float32)
    report.passages_encoded = len(texts)

    additions, offset = [], 0
    for article, passages in chunked:
        additions.append((article, passages, vectors[offset:offset + len(passages)]))
        offset += len(passages)
    all_roots = list(dict.fromkeys(roots if rebuild else store.get_meta("roots", []) + roots))
    if to_remove or additions or stored_build is None or rebuild or not (directory / VECTORS_FILE).exists():
        removed_ids, added_ids = store.apply(sorted(to_remove), additions, build, all_roots)
        _write_vectors(store, directory, build, removed_ids, np.asarray(added_ids, np.int64), vectors,
                       full=rebuild or stored_build is None)
    return report


def indexed_roots(settings: IndexSettings) -> list[Path]:
    """The files and folders the index was built from (those that still exist)."""
    path = Path(settings.index_dir) / STORE_FILE
    if not path.exists():
        return []
    with Store(path) as store:
        return [Path(r) for r in store.get_meta("roots", []) if Path(r).exists()]


def _under(path: str, folder: Path) -> bool:
    return Path(path).is_relative_to(folder)


def _write_vectors(store: Store, directory: Path, build: dict, removed_ids: list[int],
                   added_ids: np.ndarray, added_vectors: np.ndarray, full: bool) -> FaissIndex:
    """Update ``vectors.faiss`` incrementally (or from the store when stale) and the manifest."""
    path = directory / VECTORS_FILE
    manifest_generation = _manifest_generation(directory)
    if full or not path.exists() or manifest_generation != store.generation - 1:
        index = _vectors_from_store(store, build["model"]["dimension"])
    else:
        index = FaissIndex.load(path)
        index.delete(removed_ids)
        index.append(added_ids, added_vectors)
    index.save(path)
    write_manifest(directory, build, store.generation, store.get_meta("updated_at"), store.counts())
    return index


def _manifest_generation(directory: Path) -> int | None:
    try:
        return read_manifest(directory).get("generation")
    except IndexProblem:
        return None


def _vectors_from_store(store: Store, dimension: int) -> FaissIndex:
    index = FaissIndex(dimension)
    ids, vectors = store.vectors()
    index.append(ids, vectors)
    return index


def _repair_vectors_file(directory: Path, snapshot: Store, vectors: FaissIndex) -> dict | None:
    """Save the rebuilt vectors when no update runs and the snapshot is still the latest."""
    from filelock import FileLock, Timeout

    try:
        with FileLock(str(directory / LOCK_FILE), timeout=0):
            with Store(directory / STORE_FILE) as live:
                if live.generation != snapshot.generation:
                    return None  # an update committed meanwhile and wrote its own file
            vectors.save(directory / VECTORS_FILE)
            return write_manifest(directory, snapshot.get_meta("build"), snapshot.generation,
                                  snapshot.get_meta("updated_at"), snapshot.counts())
    except (Timeout, OSError):
        return None  # busy or read-only: the rebuilt vectors still serve from memory


def open_index(settings: IndexSettings, identity: dict, dimension: int) -> LoadedIndex:
    """Open the index for searching, refusing one built with another model or chunker.

    The opened index is a snapshot: the store is read inside one read transaction and the
    FAISS file is checked to hold exactly the snapshot's passage ids (ids are never reused
    and a passage's vector never changes, so equal ids mean equal contents). A FAISS file
    that does not match (one written by an update that committed after the snapshot, or
    one left stale by an interrupted update) is rebuilt from the vectors in the store,
    without re-encoding. Updates that commit later are not seen until the index is reopened.
    """
    directory = Path(settings.index_dir)
    manifest = read_manifest(directory)
    expected = build_block(identity, dimension, settings.chunker())
    check_compatible(directory, manifest, expected)
    store = Store(directory / STORE_FILE, snapshot=True)
    try:
        stored_build = store.get_meta("build")
        if stored_build is None:
            raise IndexMismatch(f"{directory}/{STORE_FILE} is empty or missing: rebuild with "
                                f"`qa index --rebuild --index-dir {directory}`")
        check_compatible(directory, stored_build, expected)
        path = directory / VECTORS_FILE
        vectors = FaissIndex.load(path) if path.exists() else None
        if vectors is None or not np.array_equal(vectors.ids(), store.all_passage_ids()):
            vectors = _vectors_from_store(store, dimension)
            manifest = _repair_vectors_file(directory, store, vectors) or manifest
        return LoadedIndex(directory, store, vectors, manifest)
    except BaseException:
        store.close()
        raise
