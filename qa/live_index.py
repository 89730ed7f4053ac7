"""The index a running app serves: answered from a snapshot, updated aside, switched when done.

Questions go to ``LiveIndex.retriever``, a ``Retriever`` over an opened index (a read
snapshot of the store plus its FAISS vectors). Adding articles or rebuilding runs
``update_index`` on the same directory; readers of the old snapshot are not disturbed, and
only when the update has committed and its files are written is a new snapshot opened and
swapped in. A question already being answered finishes on the snapshot it started with.
"""

from __future__ import annotations

import contextlib
import threading
from dataclasses import dataclass
from pathlib import Path

from embeddings.articles import ArticleError
from embeddings.encoder import Encoder
from embeddings.indexer import IndexBusy, UpdateReport, update_index
from embeddings.reader import open_index
from embeddings.manifest import MANIFEST, IndexProblem
from embeddings.store import ArticleSummary
from embeddings.uploads import MAX_UPLOAD_BYTES, accept_upload
from qa.retrieve import Retriever
from qa.settings import Settings


@dataclass(frozen=True)
class Status:
    """What the status line shows."""

    articles: int
    passages: int
    model: str
    updated_at: str | None
    updating: bool


class LiveIndex:
    """Owns the current retriever and runs updates one at a time.

    Args:
        settings: where the index and the uploads folder are, and how to search.
        encoder: shared by questions and updates (it serialises its own batches).
    """

    def __init__(self, settings: Settings, encoder: Encoder):
        self.settings = settings
        self.encoder = encoder
        self._updating = threading.Lock()
        self._reloading = threading.Lock()
        self._stamp = None
        self._retriever = self._open()

    @property
    def retriever(self) -> Retriever:
        """The retriever to use for one question (hold on to it for the whole question).

        An update finished by another process (``qa index`` in a terminal) rewrites the
        manifest; the next question notices and switches to the new index.
        """
        if self._stamp != self._manifest_stamp() and not self._updating.locked():
            try:
                self.reload()
            except IndexProblem:
                pass  # mid-write or incompatible: keep answering from the index we have
        return self._retriever

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

    def reload(self) -> None:
        """Switch to the index as it is on disk now.

        The old snapshot is not closed here: a question may still be searching it. It is
        released when the last reference to it goes.
        """
        with self._reloading:
            self._retriever = self._open()

    def status(self) -> Status:
        index = self.retriever.index
        counts = index.store.counts()
        return Status(counts["articles"], counts["passages"], index.manifest["model"]["name"],
                      index.store.get_meta("updated_at"), self._updating.locked())

    def articles(self, title_query: str | None = "") -> list[ArticleSummary]:
        return self.retriever.index.store.articles((title_query or "").strip())

    def sources(self) -> list[str]:
        return self.retriever.index.store.sources()

    def add_files(self, files: list[tuple[Path, str]], progress: bool = False,
                  max_bytes: int = MAX_UPLOAD_BYTES) -> UpdateReport:
        """Check and save uploaded files in the uploads folder, then index them.

        Args:
            files: ``(path on disk, name the user gave)`` pairs.
            progress: show progress bars (tqdm) while encoding.
            max_bytes: per-file size limit.

        Returns:
            The update's report; files refused before indexing are listed in its ``errors``.
        """
        with self._exclusive():
            folder = Path(self.settings.uploads_dir)
            accepted, refused = 0, []
            for path, name in files:
                try:
                    accept_upload(Path(path), name, folder, max_bytes)
                    accepted += 1
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

    def rebuild(self, progress: bool = False) -> UpdateReport:
        """Re-read and re-encode every indexed folder and file from scratch."""
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
