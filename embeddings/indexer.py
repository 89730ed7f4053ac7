"""Build and update an index directory (the offline side; ``embeddings/reader.py`` opens one).

``update_index`` reads files and folders, re-encodes only articles that are new or whose
content changed, and removes articles whose files are gone from an indexed folder. It
streams: articles are split, encoded and committed to SQLite in chunks of about
``IndexSettings.commit_every`` passages, each chunk one transaction holding whole articles,
so memory stays bounded and a run that is stopped (Ctrl-C, a crash, SIGKILL) resumes where
it was: committed articles are unchanged the next time and are not encoded again. The
vector file and the manifest are written once at the end, atomically; until then readers
keep the previous ones (an opened index rebuilds a stale vector file from the store).

A rebuild (``rebuild=True``) encodes everything into a staging store beside the index
(``rebuild/``, resumable the same way) and then replaces the index's contents in one
transaction, so the index is never half rebuilt, even when the model changed.

A file that cannot be read is reported and skipped; what the index held for it stays.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
import os
import shutil
import sqlite3
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from embeddings.articles import Article, ArticleError, find_article_files, load_articles
from embeddings.encoder import Encoder
from embeddings.manifest import IndexMissing, IndexProblem, check_compatible, read_manifest, repair_command
from embeddings.passages import Passage, split_passages, with_context
from embeddings.reader import (LOCK_FILE, STORE_FILE, VECTORS_FILE, expected_build, load_vectors, save_derived,
                               uses_milvus, vectors_from_store)
from embeddings.settings import CONTEXT_TOKENS, IndexSettings
from embeddings.store import Store
from embeddings.stories import Stories
from embeddings.vector_index import VectorIndex, choose_kind

logger = logging.getLogger(__name__)

STAGING_DIR = "rebuild"
HELD_CHARS = 100_000_000  # article text kept in memory between reading and encoding; beyond, re-read
CHARS_PER_PASSAGE = 600   # first guess for the progress bar's total, corrected as passages are made


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
    resumed: int = 0                                      # articles a stopped rebuild had committed
    other_files: dict[str, list[str]] = field(default_factory=dict)  # folder as given: files of types not read

    @property
    def changed(self) -> bool:
        return bool(self.added or self.updated or self.removed)


@dataclass
class _Plan:
    """What an update will do, decided before anything is encoded."""

    to_add: list            # Article, or (file, article id) for one to read again
    replaces: set[str]      # ids among to_add that are already stored (changed articles)
    to_remove: set[str]     # ids to delete that are not re-added
    chars: int              # body characters of to_add, for the progress bar
    roots: list[str]
    failed: set[str]        # files that could not be read (their articles are kept)


def update_index(paths: list[Path], settings: IndexSettings, encoder: Encoder,
                 rebuild: bool = False, progress: bool = False) -> UpdateReport:
    """Bring the index in line with ``paths`` (files or folders).

    Args:
        paths: files and folders to index; with ``rebuild`` and no paths, the ones indexed before.
        settings: where the index is, how to split passages, how often to commit.
        encoder: called only for passages that need (re-)encoding.
        rebuild: index everything from scratch (e.g. after a model change).
        progress: show a progress bar (passages/s and time left) while encoding.
    """
    directory = Path(settings.index_dir)
    directory.mkdir(parents=True, exist_ok=True)
    with _update_lock(directory):
        return _update_locked(directory, paths, settings, encoder, rebuild, progress)


def _update_locked(directory: Path, paths: list[Path], settings: IndexSettings, encoder: Encoder,
                   rebuild: bool, progress: bool) -> UpdateReport:
    """``update_index`` with the update lock held."""
    with Store(directory / STORE_FILE) as store:
        build = expected_build(settings, encoder.identity, encoder.dimension)
        paths = [Path(p) for p in paths]
        if rebuild:
            return _rebuild(store, paths, settings, encoder, build, progress)
        if store.get_meta("build") is not None:
            check_compatible(directory, store.get_meta("build"), build)
        report = UpdateReport()
        plan = _plan(store, paths, report, rebuild=False)
        vectors = _current_vectors(store, directory, settings)
        _apply(store, plan, settings, encoder, build, report, progress, vectors)
        _finish(store, directory, settings, vectors)
        return report


@dataclass
class Repair:
    """What ``repair_index`` did."""

    manifest: dict
    moved_to: Path | None = None          # where a damaged store was moved
    problem: str | None = None            # why the store could not be used
    sources: list[Path] = field(default_factory=list)  # what the store was rebuilt from
    report: UpdateReport | None = None    # the rebuild, when the store had to be rebuilt


def repair_index(settings: IndexSettings, encoder: Callable[[], Encoder] | None = None,
                 paths: list[Path] = (), progress: bool = False) -> Repair:
    """Make the index directory whole again, encoding only what cannot be recovered.

    A sound store: the derived files (``vectors.faiss``, ``manifest.json``) are rewritten
    from it, with no encoding (every vector is in the store). A store SQLite cannot read or
    whose integrity check fails: it is moved aside (with its log) as
    ``store.sqlite.damaged-<time>``, and the index is built again from ``paths`` or else from
    the files and folders it was built from (recorded in the store and in the manifest).
    A missing store is rebuilt the same way.

    Args:
        encoder: makes the encoder, called only when the store must be rebuilt.
        paths: what to rebuild from instead of the recorded sources.

    Raises:
        IndexProblem: the store must be rebuilt and no sources are known (or none exists
            any more), or no ``encoder`` was given; the message says what to run.
    """
    directory = Path(settings.index_dir)
    path = directory / STORE_FILE
    if not directory.is_dir():
        raise IndexMissing(f"no index in {directory}/ yet: build it with `qa index --index-dir {directory} PATH...`")
    with _update_lock(directory):
        damaged, problem = _store_problem(path)
        if problem is None:
            with Store(path) as store:
                return Repair(save_derived(directory, store, vectors_from_store(store, settings)))
        sources = [Path(p) for p in paths] or [Path(r) for r in recorded_roots(directory)]
        existing = [p for p in sources if _exists(str(p))]
        if not existing:
            known = (f"none of the files and folders it was built from exist any more ({', '.join(map(str, sources))})"
                     if sources else "the files and folders it was built from are not recorded")
            raise IndexProblem(f"{problem}, and {known}: name what to build it from, e.g. "
                               f"`qa index --repair --index-dir {directory} seeds/`")
        if encoder is None:
            raise IndexProblem(f"{problem}: build it again from {', '.join(map(str, existing))} with "
                               f"{repair_command(directory)}")
        moved = path.with_name(f"{STORE_FILE}.damaged-{dt.datetime.now():%Y%m%dT%H%M%S}") if damaged else None
        for suffix in ("", "-wal", "-shm"):  # a damaged store is kept aside; an empty one holds nothing
            if Path(f"{path}{suffix}").exists():
                os.replace(f"{path}{suffix}", f"{moved}{suffix}") if moved else Path(f"{path}{suffix}").unlink()
        (directory / VECTORS_FILE).unlink(missing_ok=True)
        logger.warning("%s%s; building it again from %s", problem, f", so it was moved to {moved}" if moved else "",
                       ", ".join(map(str, existing)))
        # Through the rebuild's staging store: the new store stays empty until the swap, so a
        # repair that is stopped is finished by running it again, which resumes the staging.
        encoder = encoder()
        with Store(path) as store:
            report = _rebuild(store, existing, settings, encoder,
                              expected_build(settings, encoder.identity, encoder.dimension), progress)
        report.errors += [f"{p}: recorded as a source of the index but gone; not rebuilt" for p in sources
                          if p not in existing]
        return Repair(read_manifest(directory), moved, problem, existing, report)


def _store_problem(path: Path) -> tuple[bool, str | None]:
    """``(damaged, why)``: why the store at ``path`` cannot be repaired from (None when it is
    sound), and whether it is damaged (rather than missing or empty)."""
    from embeddings.check import damaged_store

    if not path.exists():
        return False, f"{path} is missing"
    try:
        with Store(path, snapshot=True) as store:
            verdict = [r[0] for r in store.conn.execute("PRAGMA quick_check")]
            build = store.get_meta("build")
    except sqlite3.DatabaseError as e:
        return True, damaged_store(path.parent, e, advice=False)
    if verdict != ["ok"]:
        return True, damaged_store(path.parent, "; ".join(verdict[:3]).replace("\n", " "), advice=False)
    if build is None:
        return False, f"{path} holds no index"
    return False, None


def recorded_roots(directory: Path) -> list[str]:
    """The files and folders the index was built from, as recorded by the store or, when
    the store cannot be read, by the manifest ([] when neither knows)."""
    path = Path(directory) / STORE_FILE
    if path.exists():
        try:
            with Store(path, snapshot=True) as store:
                roots = store.get_meta("roots")
            if roots:
                return roots
        except sqlite3.DatabaseError:
            pass
    try:
        return read_manifest(Path(directory)).get("roots") or []
    except IndexProblem:
        return []


def indexed_roots(settings: IndexSettings) -> list[Path]:
    """The files and folders the index was built from (those that still exist)."""
    return [Path(r) for r in recorded_roots(settings.index_dir) if Path(r).exists()]


def _rebuild(store: Store, paths: list[Path], settings: IndexSettings, encoder: Encoder, build: dict,
             progress: bool) -> UpdateReport:
    """Encode everything into the staging store, then swap it in with one transaction."""
    directory = Path(settings.index_dir)
    report = UpdateReport()
    if not paths:
        before = list(dict.fromkeys(recorded_roots(directory)))
        roots = [r for r in before if Path(r).exists()]
        if not before:
            raise IndexProblem(f"cannot rebuild {directory}/: the files and folders it was built from are not "
                               f"recorded; name what to index, e.g. `qa index --rebuild --index-dir {directory} seeds/`")
        if not roots:
            raise IndexProblem(f"cannot rebuild {directory}/: none of the files and folders it was "
                               f"built from exist any more ({', '.join(before)}); name what to index, "
                               f"e.g. `qa index --rebuild seeds/`")
        report.errors += [f"{r}: indexed before but gone; its articles are dropped by the rebuild"
                          for r in before if r not in roots]
        paths = [Path(r) for r in roots]
    staging_dir = directory / STAGING_DIR
    with _staging_store(staging_dir, build) as staging:
        plan = _plan(staging, paths, report, rebuild=True)
        report.resumed = report.unchanged
        _apply(staging, plan, settings, encoder, build, report, progress, None)
        # A file that cannot be read now keeps what the index had for it, if that was made
        # the same way; after a model change its old vectors could not be searched anyway.
        keep = plan.failed if store.get_meta("build") == build else set()
        before = {a.id: a.title for a in store.articles()}
        kept = store.replace_with(staging, keep_paths=keep)
    shutil.rmtree(staging_dir, ignore_errors=True)
    after = {a.id: a.title for a in store.articles()}
    report.added = [title for aid, title in after.items() if aid not in kept]
    report.removed = [title for aid, title in before.items() if aid not in after]
    report.updated, report.unchanged = [], 0
    save_derived(directory, store, vectors_from_store(store, settings))
    return report


def _staging_store(staging_dir: Path, build: dict) -> Store:
    """The store a rebuild writes into; one left by a stopped rebuild of the same build is resumed."""
    staging_dir.mkdir(exist_ok=True)
    staging = Store(staging_dir / STORE_FILE)
    if staging.get_meta("build") in (None, build):
        return staging
    staging.close()
    shutil.rmtree(staging_dir)
    staging_dir.mkdir()
    return Store(staging_dir / STORE_FILE)


def _plan(store: Store, paths: list[Path], report: UpdateReport, rebuild: bool) -> _Plan:
    """Read every file once: which articles are new or changed, which are gone."""
    states = store.article_states()
    found: set[str] = set()
    read_files: set[str] = set()
    failed_files: set[str] = set()
    folders: list[Path] = []
    to_add: list = []
    replaces: set[str] = set()
    held = chars = 0
    unlisted: list[Path] = []  # folders that could not be listed: what they held stays indexed
    for path in paths:
        if path.is_dir():
            folders.append(path.resolve())
            problems: list[ArticleError] = []
            others: list[Path] = []
            files = find_article_files(path, problems, others)
            if others:
                report.other_files[str(path)] = [str(o) for o in others]
            report.errors.extend(str(e) for e in problems)
            unlisted.extend(Path(e.path).resolve() for e in problems)
        elif path.exists():
            files = [path]
        else:
            report.errors.append(f"{path}: no such file or folder")
            continue
        for file in files:
            resolved = str(file.resolve())
            try:
                articles = load_articles(file)
            except ArticleError as e:
                report.errors.append(str(e))
                failed_files.add(resolved)
                continue
            read_files.add(resolved)
            for article in articles:
                if article.id in found:
                    continue
                found.add(article.id)
                if states.get(article.id, (None,))[0] == article.content_hash:
                    report.unchanged += 1
                    continue
                if article.id in states:
                    replaces.add(article.id)
                    report.updated.append(article.title)
                else:
                    report.added.append(article.title)
                chars += len(article.body)
                if held + len(article.body) <= HELD_CHARS:
                    held += len(article.body)
                    to_add.append(article)
                else:
                    to_add.append((file, article.id))
    to_remove = set()
    for aid, (_, path) in states.items():
        if aid in found or path in failed_files or any(Path(path).is_relative_to(u) for u in unlisted):
            continue
        gone_from_file = path in read_files
        gone_from_folder = not _exists(path) and any(Path(path).is_relative_to(f) for f in folders)
        if gone_from_file or gone_from_folder or rebuild:
            to_remove.add(aid)
    if to_remove:
        titles = {a.id: a.title for a in store.articles()}
        report.removed = [titles[aid] for aid in to_remove]
    roots = [str(p.resolve()) for p in paths if p.exists()]
    return _Plan(to_add, replaces, to_remove, chars, roots, failed_files)


@contextlib.contextmanager
def _update_lock(directory: Path):
    """Hold the index's update lock (or fail at once: one update at a time), after clearing
    what a killed write left behind."""
    from filelock import FileLock, Timeout

    lock = FileLock(str(directory / LOCK_FILE), timeout=0)
    try:
        lock.acquire()
    except Timeout:
        raise IndexBusy(f"another update of {directory}/ is running; try again when it has finished") from None
    try:
        _remove_leftovers(directory)
        yield
    finally:
        lock.release()


def _remove_leftovers(directory: Path) -> None:
    """Delete the ``*.part`` files a killed write of the vector file or manifest left behind
    (called with the update lock held, so no write is in progress)."""
    for part in directory.glob("*.part"):
        part.unlink(missing_ok=True)


def _exists(path: str) -> bool:
    """Whether ``path`` exists; one that cannot be checked (no permission) counts as existing."""
    try:
        return Path(path).exists()
    except OSError:
        return True


def _articles(to_add: list):
    """The articles to add, reading again (once per file) those not held in memory."""
    current_file, current = None, {}
    for item in to_add:
        if isinstance(item, Article):
            yield item
            continue
        file, article_id = item
        if file != current_file:
            current_file, current = file, {a.id: a for a in load_articles(file)}
        yield current[article_id]


def _apply(store: Store, plan: _Plan, settings: IndexSettings, encoder: Encoder, build: dict,
           report: UpdateReport, progress: bool, vectors: VectorIndex | None) -> None:
    """Split, encode and commit the plan in chunks; keep ``vectors`` (if given) in step."""
    from tqdm import tqdm

    roots = list(dict.fromkeys(store.get_meta("roots", []) + plan.roots))
    first_removal = sorted(plan.to_remove)
    pending: list[tuple[Article, list[Passage]]] = []
    size = 0
    total_guess = max(1, plan.chars // CHARS_PER_PASSAGE)
    chars_done = 0
    with tqdm(total=total_guess, desc="indexing", unit="passage", dynamic_ncols=True,
              disable=not progress or not plan.to_add, smoothing=0.05) as bar:

        def flush() -> None:
            nonlocal pending, size, first_removal
            titled = settings.passage_context == "title"
            read = [with_context(a.title, p, encoder.tokenizer, CONTEXT_TOKENS) if titled else (p.text, p.sentences)
                    for a, passages in pending for p in passages]  # what the model reads of each passage
            texts = [t for t, _ in read]
            passage_vectors, sentence_vectors = encoder.encode_passages(texts, [s for _, s in read])
            additions, offset = [], 0
            for article, passages in pending:
                n = len(passages)
                additions.append((article, passages, passage_vectors[offset:offset + n],
                                  sentence_vectors[offset:offset + n]))
                offset += n
            remove = first_removal + [a.id for a, _ in pending if a.id in plan.replaces]
            grouping = stories()
            for article_id in remove:
                grouping.remove(article_id)
            placed = {article.id: grouping.assign(article.id, article.body) for article, _ in pending}
            removed_ids, added_ids = store.apply(remove, additions, build, roots, placed)
            if vectors is not None:
                vectors.delete(removed_ids)
                if vectors.kind == "milvus":  # date and source go with each vector, for filters
                    meta = [(a.id, a.date, a.source) for a, passages in pending for _ in passages]
                    vectors.add(np.asarray(added_ids, np.int64), passage_vectors, meta)
                else:
                    vectors.add(np.asarray(added_ids, np.int64), passage_vectors)
            report.passages_encoded += len(texts)
            first_removal, pending, size = [], [], 0
            bar.update(len(texts))

        grouped: list[Stories] = []

        def stories() -> Stories:
            """The story grouping, loaded once per update; articles stored before stories
            were grouped are placed first."""
            if not grouped:
                grouped.append(Stories(store.story_rows()))
                missing = store.articles_without_story()
                if missing:
                    store.set_stories({aid: grouped[0].assign(aid, body) for aid, body in missing})
            return grouped[0]

        tokenizer = encoder.tokenizer
        for article in _articles(plan.to_add):
            passages = split_passages(article.id, article.body, tokenizer, settings.passage_room(),
                                      settings.target_tokens, settings.overlap_sentences)
            pending.append((article, passages))
            size += len(passages)
            chars_done += len(article.body)
            if size >= settings.commit_every:
                done = bar.n + size
                bar.total = max(done, round(done * plan.chars / max(chars_done, 1)))
                flush()
        if pending or first_removal or store.get_meta("build") is None:
            flush()
        bar.total = bar.n


def _current_vectors(store: Store, directory: Path, settings: IndexSettings) -> VectorIndex | None:
    """The vector index as of the store's current state, or None when it must be rebuilt."""
    if store.get_meta("build") is None:
        return None
    milvus = uses_milvus(settings)
    if not milvus and not (directory / VECTORS_FILE).exists():
        return None
    try:
        manifest = read_manifest(directory)
        if manifest.get("generation") != store.generation:
            return None
        vectors = load_vectors(settings, store.dimension)
    except (IndexProblem, ValueError):
        return None
    if vectors is None or vectors.count() != store.counts()["passages"]:
        return None
    return vectors


def _finish(store: Store, directory: Path, settings: IndexSettings, vectors: VectorIndex | None) -> None:
    """Write the vector index and the manifest unless they already describe the store."""
    kind = "milvus" if uses_milvus(settings) else choose_kind(settings.vector_index, store.counts()["passages"])
    if vectors is None or vectors.kind != kind:
        vectors = vectors_from_store(store, settings)
    elif _up_to_date(directory, store):
        return
    save_derived(directory, store, vectors)


def _up_to_date(directory: Path, store: Store) -> bool:
    try:
        manifest = read_manifest(directory)
    except IndexProblem:
        return False
    return (manifest.get("generation") == store.generation and (directory / VECTORS_FILE).exists()
            and manifest.get("counts") == store.counts())
