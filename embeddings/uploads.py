"""Accept article files uploaded through the app: size-limited, names sanitised, checked first,
and within an hourly allowance (``UploadBudget``) so that whoever can reach the page cannot
keep the machine encoding for hours.

An upload is copied into the uploads folder (an ordinary folder of articles, indexed like
``seeds/``) only after it has been read as articles successfully, so a bad file is refused
with a message naming it and never reaches the index.

>>> safe_filename("../../etc/My Report (final).TXT")
'My_Report_final.txt'
"""

from __future__ import annotations

import filecmp
import os
import re
import shutil
import tempfile
import threading
import time
import unicodedata
from collections import deque
from pathlib import Path

from embeddings.articles import SUPPORTED_SUFFIXES, ArticleError, load_articles
from embeddings.manifest import IndexProblem

MAX_UPLOAD_BYTES = 5 * 1024 * 1024
STAGING_PREFIX = ".incoming-"        # where an upload is read before it is kept
STAGING_ABANDONED_AFTER = 3600.0     # seconds: a staging folder this old belongs to no live upload
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


def base_name(name: str) -> str:
    """The last part of a path written with ``/`` or ``\\`` (browsers send either)."""
    return name.replace("\\", "/").rsplit("/", 1)[-1]


def safe_filename(name: str) -> str:
    """``name`` without folders, reduced to ``[A-Za-z0-9._-]``, with a supported suffix.

    Raises:
        ArticleError: the suffix is not one the indexer reads.
    """
    base = unicodedata.normalize("NFKC", base_name(name)).lstrip(".")
    stem, suffix = os.path.splitext(base)
    suffix = suffix.lower()
    if suffix not in SUPPORTED_SUFFIXES:
        raise ArticleError(base or name, f"unsupported file type {suffix or '(none)'!r}; "
                                         f"upload one of {', '.join(SUPPORTED_SUFFIXES)}")
    stem = unicodedata.normalize("NFKD", stem).encode("ascii", "ignore").decode()  # é -> e
    stem = _UNSAFE.sub("_", stem).strip("._-")[:80].strip("._-") or "article"
    return stem + suffix


def accept_upload(source: Path, name: str, folder: Path, max_bytes: int = MAX_UPLOAD_BYTES) -> Path:
    """Check ``source`` and copy it into ``folder`` under a safe, unused name.

    Args:
        source: the uploaded file (wherever the web server put it).
        name: the file name the user gave, used for the saved name and in messages.
        folder: the uploads folder.
        max_bytes: larger files are refused.

    Returns:
        The saved path; an upload identical to a file already there returns that file.

    Raises:
        ArticleError: too large, unsupported, empty, binary, not UTF-8 or malformed, named
            by ``name``; nothing is written then.
    """
    source = Path(source)
    display = base_name(name) or name
    target_name = safe_filename(name)
    size = source.stat().st_size
    if size > max_bytes:
        raise ArticleError(display, f"is too large ({size / 1e6:.1f} MB; uploads are limited to "
                                    f"{max_bytes / 1e6:.0f} MB): split it into smaller files")
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    _remove_abandoned_staging(folder)
    with tempfile.TemporaryDirectory(prefix=STAGING_PREFIX, dir=folder) as tmp:
        staged = Path(tmp) / target_name
        shutil.copyfile(source, staged)
        try:
            load_articles(staged)
        except ArticleError as e:
            where = display + e.path[len(str(staged)):] if e.path.startswith(str(staged)) else display
            raise ArticleError(where, e.problem) from None  # "feed.jsonl:3: malformed JSON ..."
        target = _unused_name(folder, target_name, staged)
        if target.exists():
            return target  # the same file was uploaded before
        os.replace(staged, target)
    return target


def _remove_abandoned_staging(folder: Path, older_than: float = STAGING_ABANDONED_AFTER) -> None:
    """Delete the staging folders that uploads killed mid-copy left behind (a live upload's
    is seconds old; these are never indexed either way: hidden folders are skipped)."""
    cutoff = time.time() - older_than
    for stale in folder.glob(STAGING_PREFIX + "*"):
        try:
            if stale.is_dir() and stale.stat().st_mtime < cutoff:
                shutil.rmtree(stale, ignore_errors=True)
        except OSError:
            pass


def _unused_name(folder: Path, name: str, upload: Path) -> Path:
    """``name``, or ``stem-2.ext``, ``stem-3.ext``...; a file with the same content is reused."""
    stem, suffix = os.path.splitext(name)
    candidate, n = folder / name, 1
    while candidate.exists():
        if filecmp.cmp(candidate, upload, shallow=False):
            return candidate
        n += 1
        candidate = folder / f"{stem}-{n}{suffix}"
    return candidate


class UploadRefused(IndexProblem):
    """Uploads the server's hourly allowance has no room for (nothing was saved)."""


class UploadBudget:
    """How many bytes of uploads may still be accepted within the last hour (all users together).

    Args:
        megabytes: the hourly allowance; None means no limit.
        clock: seconds, monotonic (tests pass their own).
    """

    WINDOW = 3600.0

    def __init__(self, megabytes: float | None, clock=time.monotonic):
        self.limit = None if megabytes is None else int(megabytes * 1e6)
        self._clock = clock
        self._spent: deque[tuple[float, int]] = deque()
        self._lock = threading.Lock()

    def check(self, size: int) -> None:
        """Raise ``UploadRefused`` when ``size`` more bytes would exceed the hour's allowance."""
        if self.limit is None:
            return
        with self._lock:
            now = self._clock()
            while self._spent and self._spent[0][0] <= now - self.WINDOW:
                self._spent.popleft()
            spent = sum(n for _, n in self._spent)
            if spent + size <= self.limit:
                return
            wait = self.WINDOW - (now - self._spent[0][0]) if self._spent else self.WINDOW
        if not self.limit:
            raise UploadRefused("this server does not accept uploads (`qa serve --upload-budget 0`); "
                                "add articles with `qa index` on the server")
        raise UploadRefused(
            f"this server accepts {self.limit / 1e6:g} MB of uploads an hour and {spent / 1e6:.1f} MB came in "
            f"during the last hour, so these {size / 1e6:.1f} MB were not added; try again in "
            f"{max(1, round(wait / 60))} minutes, or ask whoever runs it to raise `qa serve --upload-budget` "
            f"(or to add them with `qa index` in a terminal)")

    def spend(self, size: int) -> None:
        if self.limit is not None and size:
            with self._lock:
                self._spent.append((self._clock(), size))
