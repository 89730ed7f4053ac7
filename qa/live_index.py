"""The index a running app serves: answered from a snapshot, updated aside, switched when done.

Questions go to ``LiveIndex.retriever``, a ``Retriever`` over an opened index (a read
snapshot of the store plus its FAISS vectors). Adding articles or rebuilding runs
``update_index`` on the same directory; readers of the old snapshot are not disturbed, and
only when the update has committed and its files are written is a new snapshot opened and
swapped in. A question already being answered finishes on the snapshot it started with.
"""

from __future__ import annotations

import contextlib
import logging
import sqlite3
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from embeddings.articles import ArticleError
from embeddings.feeds import Feed, WebFolder, fetch_into
from embeddings.fetch import FetchError
from embeddings.encoder import Encoder
from embeddings.indexer import IndexBusy, UpdateReport, update_index
from embeddings.reader import LoadedIndex, open_index
from embeddings.manifest import MANIFEST, IndexProblem
from embeddings.store import ArticleSummary, Store
from embeddings.uploads import MAX_UPLOAD_BYTES, UploadBudget, accept_upload
from qa.retrieve import Retriever
from qa.settings import Settings

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Status:
    """What the status line shows."""

    articles: int
    passages: int
    model: str
    updated_at: str | None
    updating: bool


class _Snapshot:
    """One opened index and the number of questions searching it right now."""

    def __init__(self, retriever: Retriever):
        self.retriever = retriever
        self.users = 0
        self.retired = False
        self.closed = False


class LiveIndex:
    """Owns the current retriever and runs updates one at a time.

    Questions take the current snapshot with ``using()``; a reload swaps in a new one and
    closes the old one as soon as the last question on it finishes. With no retired snapshot
    left open, the store's write-ahead log is checkpointed and truncated (see ``_checkpoint``),
    so a long-running server neither pins the log nor collects open handles.

    Args:
        settings: where the index and the uploads folder are, and how to search.
        encoder: shared by questions and updates (it serialises its own batches).
    """

    def __init__(self, settings: Settings, encoder: Encoder):
        self.settings = settings
        self.encoder = encoder
        self._updating = threading.Lock()
        self._reloading = threading.RLock()
        self._lock = threading.Lock()  # guards the snapshots' counters and the list below
        self._stamp = None
        self._open_snapshots: list[_Snapshot] = []
        self.upload_budget = UploadBudget(settings.upload_budget_mb)
        self._current = self._track(self._open())

    @contextlib.contextmanager
    def using(self) -> Iterator[Retriever]:
        """The retriever for one question, kept open until the ``with`` block ends.

        An update finished by another process (``qa index`` in a terminal) rewrites the
        manifest; the next question notices and switches to the new index.
        """
        if self._stamp != self._manifest_stamp() and not self._updating.locked():
            try:
                self.reload()
            except IndexProblem:
                pass  # mid-write or incompatible: keep answering from the index we have
        with self._lock:
            snapshot = self._current
            snapshot.users += 1
        try:
            yield snapshot.retriever
        finally:
            self._release(snapshot)

    @property
    def open_snapshots(self) -> int:
        """How many snapshots (store connections) are open: 1 when no question holds a retired one."""
        with self._lock:
            return len(self._open_snapshots)

    def _manifest_stamp(self):
        try:
            st = (Path(self.settings.index.index_dir) / MANIFEST).stat()
        except OSError:
            return None
        return st.st_mtime_ns, st.st_size, st.st_ino

    def _open(self) -> Retriever:
        stamp = self._manifest_stamp()
        index = open_index(self.settings.index, self.encoder.identity, self.encoder.dimension)
        self._stamp = stamp
        return Retriever(index, self.encoder, self.settings)

    def _track(self, retriever: Retriever) -> _Snapshot:
        snapshot = _Snapshot(retriever)
        with self._lock:
            self._open_snapshots.append(snapshot)
        return snapshot

    def reload(self) -> None:
        """Switch to the index as it is on disk now; the old snapshot closes when its last
        question finishes."""
        with self._reloading:
            self._swap(self._track(self._open()))
            self._checkpoint()

    def _swap(self, snapshot: _Snapshot) -> None:
        with self._lock:
            old, self._current = self._current, snapshot
            old.retired = True
        self._release(old, using=False)

    def _release(self, snapshot: _Snapshot, using: bool = True) -> None:
        with self._lock:
            snapshot.users -= using
            if not snapshot.retired or snapshot.users or snapshot.closed:
                return
            snapshot.closed = True
            self._open_snapshots.remove(snapshot)
        snapshot.retriever.index.close()
        if using:  # the last question on a retired snapshot: the log may be freed now
            self._checkpoint()

    def _checkpoint(self) -> None:
        """Copy the write-ahead log into the store and truncate it, when nothing pins it.

        A snapshot reads the log up to the commit it started at, and SQLite can neither copy
        past the oldest such reader nor restart the log while any reader uses it. So, once
        only the current snapshot is open: copy every frame (PASSIVE, never waits), reopen the
        current snapshot's store (a reader that starts after a full copy reads the database
        file alone), close the old connection, and truncate the log. The vectors and manifest
        are reused: the store's generation is checked to be the same. Anything busy (an
        update writing, a question still on a retired snapshot) skips the step; it is tried
        again at the next reload or release.
        """
        with self._reloading:
            with self._lock:
                if len(self._open_snapshots) != 1:
                    return
                current = self._current
            index = current.retriever.index
            path = index.store.path
            try:
                with contextlib.closing(sqlite3.connect(str(path), timeout=0)) as conn:
                    busy, log, copied = conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
                    if busy or log <= 0 or copied != log:
                        return
                    fresh = Store(path, snapshot=True)
                    if fresh.generation != index.store.generation:
                        fresh.close()  # an update committed meanwhile: its reload comes next
                        return
                    self._swap(self._track(Retriever(LoadedIndex(index.directory, fresh, index.vectors,
                                                                 index.manifest), self.encoder, self.settings)))
                    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            except sqlite3.Error as e:
                logger.debug("checkpoint of %s skipped: %s", path, e)

    def status(self) -> Status:
        with self.using() as retriever:
            store = retriever.index.store
            counts = store.counts()
            return Status(counts["articles"], counts["passages"], retriever.index.manifest["model"]["name"],
                          store.get_meta("updated_at"), self._updating.locked())

    def articles(self, title_query: str | None = "") -> list[ArticleSummary]:
        with self.using() as retriever:
            return retriever.index.store.articles((title_query or "").strip())

    def sources(self) -> list[str]:
        with self.using() as retriever:
            return retriever.index.store.sources()

    def add_files(self, files: list[tuple[Path, str]], progress: bool = False,
                  max_bytes: int = MAX_UPLOAD_BYTES) -> UpdateReport:
        """Check and save uploaded files in the uploads folder, then index them.

        Args:
            files: ``(path on disk, name the user gave)`` pairs.
            progress: show progress bars (tqdm) while encoding.
            max_bytes: per-file size limit.

        Returns:
            The update's report; files refused before indexing are listed in its ``errors``.

        Raises:
            UploadRefused: the files together exceed what the hourly upload budget has left
                (``Settings.upload_budget_mb``); none of them is saved.
            IndexBusy: another update is running.
        """
        with self._exclusive():
            self.upload_budget.check(sum(_size(Path(path)) for path, _ in files))
            folder = Path(self.settings.uploads_dir)
            accepted, refused = 0, []
            for path, name in files:
                try:
                    accept_upload(Path(path), name, folder, max_bytes)
                    accepted += 1
                    self.upload_budget.spend(_size(Path(path)))
                except ArticleError as e:
                    refused.append(str(e))
                except OSError as e:
                    refused.append(f"{name}: could not be saved ({e.strerror or e})")
            if not accepted:
                return UpdateReport(errors=refused)  # nothing new: no re-read, no reload
            report = update_index([folder], self.settings.index, self.encoder, progress=progress)
            report.errors[:0] = refused
            self.reload()
            return report

    def feeds(self) -> list[Feed]:
        """The remembered feeds (``[]`` when the list cannot be read: ``add_web`` says why)."""
        try:
            return WebFolder(self.settings.web_dir).feeds()
        except FetchError:
            return []

    def add_web(self, feeds: list[str] = (), urls: list[str] = (), refresh_all: bool = False,
                progress: bool = False) -> UpdateReport:
        """Remember and fetch feeds, fetch pages (or refresh every remembered feed), then index
        what was saved. Fetch failures are listed by URL in the report's ``errors``.

        The text fetched counts against the hourly upload budget: when it is spent, nothing
        is fetched (``UploadRefused``).
        """
        from tqdm import tqdm

        with self._exclusive():
            self.upload_budget.check(1)
            bar = tqdm(desc="Fetching pages", unit="page") if progress else None

            def tick(done, total, what):
                bar.total, bar.n = total, done
                bar.refresh()

            before = _folder_bytes(self.settings.web_dir / "pages")
            fetched = fetch_into(self.settings.web_dir, list(feeds), list(urls), refresh_all,
                                 tick if bar is not None else None)
            if bar is not None:
                bar.close()
            if fetched is None:
                return UpdateReport()
            self.upload_budget.spend(max(0, _folder_bytes(self.settings.web_dir / "pages") - before))
            report = UpdateReport(errors=list(fetched.errors))
            if fetched.saved or refresh_all:
                report = update_index([self.settings.web_dir], self.settings.index, self.encoder, progress=progress)
                report.errors[:0] = fetched.errors
                self.reload()
            return report

    def rebuild(self, progress: bool = False) -> UpdateReport:
        """Re-read and re-encode every indexed folder and file from scratch.

        Raises:
            IndexProblem: ``Settings.web_rebuild`` is off (served to the network with no login).
        """
        if not self.settings.web_rebuild:
            raise IndexProblem("rebuilding re-encodes every article, so from the web page it needs a login "
                               "(start `qa serve` with QA_AUTH=user:password); or run `qa index --rebuild` "
                               "on the server")
        with self._exclusive():
            report = update_index([], self.settings.index, self.encoder, rebuild=True, progress=progress)
            self.reload()
            return report

    @contextlib.contextmanager
    def _exclusive(self):
        if not self._updating.acquire(blocking=False):
            raise IndexBusy("an update is already running; the chat keeps answering from the "
                            "current index until it is complete")
        try:
            yield
        finally:
            self._updating.release()


def _folder_bytes(folder: Path) -> int:
    return sum(_size(p) for p in folder.glob("*.jsonl")) if folder.is_dir() else 0


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0  # refused by name when it is read
