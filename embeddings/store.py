"""The SQLite store: articles, passages (with their vectors) and an FTS5 table for BM25.

SQLite is the index's source of truth. Every update is one transaction, so a crash or a
bad file leaves the previous state whole; the FAISS file and ``manifest.json`` are derived
from it and stamped with the store's ``generation`` so a stale one is noticed and rebuilt.
Vectors are stored as float32 BLOBs, which lets FAISS be rebuilt without re-encoding.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import sqlite3
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from embeddings.articles import Article
from embeddings.passages import Passage

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS articles (
    id TEXT PRIMARY KEY,
    origin TEXT NOT NULL,
    path TEXT NOT NULL,
    content_hash TEXT NOT NULL,
    title TEXT NOT NULL,
    date TEXT,
    source TEXT,
    url TEXT,
    body TEXT NOT NULL,
    indexed_at TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS articles_path ON articles(path);
CREATE TABLE IF NOT EXISTS passages (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    article_id TEXT NOT NULL REFERENCES articles(id),
    ordinal INTEGER NOT NULL,
    start INTEGER NOT NULL,
    end INTEGER NOT NULL,
    text TEXT NOT NULL,
    vector BLOB NOT NULL
);
CREATE INDEX IF NOT EXISTS passages_article ON passages(article_id);
CREATE VIRTUAL TABLE IF NOT EXISTS passages_fts USING fts5(title, text, tokenize='porter unicode61');
"""


@dataclass(frozen=True)
class StoredPassage:
    """A passage as stored, with what a citation needs from its article."""

    id: int
    article_id: str
    ordinal: int
    start: int
    end: int
    text: str
    title: str
    date: str | None
    source: str | None
    url: str | None
    path: str


@dataclass(frozen=True)
class ArticleSummary:
    id: str
    title: str
    date: str | None
    source: str | None
    url: str | None
    path: str
    passages: int


@dataclass(frozen=True)
class Filters:
    """Restrict retrieval to articles dated within ``[since, until]`` and/or from ``sources``."""

    since: str | None = None
    until: str | None = None
    sources: tuple[str, ...] = ()

    def __bool__(self) -> bool:
        return bool(self.since or self.until or self.sources)

    def sql(self) -> tuple[str, list]:
        """A WHERE clause over ``articles AS a`` and its parameters."""
        clauses, params = [], []
        if self.since:
            clauses.append("a.date >= ?")
            params.append(self.since)
        if self.until:
            clauses.append("a.date <= ?")
            params.append(self.until)
        if self.sources:
            clauses.append(f"lower(a.source) IN ({','.join('?' * len(self.sources))})")
            params.extend(s.lower() for s in self.sources)
        return (" AND ".join(clauses) or "1"), params


_PASSAGE_COLUMNS = ("p.id, p.article_id, p.ordinal, p.start, p.end, p.text, "
                    "a.title, a.date, a.source, a.url, a.path")


class Store:
    """One SQLite database file. Open with ``Store(path)``; use as a context manager."""

    def __init__(self, path: Path, snapshot: bool = False):
        """Open (creating if needed) the database at ``path``.

        Args:
            snapshot: hold one read transaction for the life of this object, so every read
                sees the store as it was when opened, whatever updates commit meanwhile
                (WAL mode lets the writer go on). The app searches through a snapshot while
                an update runs, and switches to a new one when the update is complete.
        """
        self.path = Path(path)
        self.conn = sqlite3.connect(str(self.path), check_same_thread=False, isolation_level=None)
        self.conn.execute("PRAGMA journal_mode=WAL")
        self.conn.execute("PRAGMA synchronous=NORMAL")
        self.conn.executescript(SCHEMA)
        self.snapshot = snapshot
        if snapshot:
            self.conn.execute("BEGIN")
            self.conn.execute("SELECT count(*) FROM meta").fetchone()  # the snapshot starts at the first read

    def __enter__(self) -> "Store":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        if self.snapshot and self.conn.in_transaction:
            self.conn.execute("ROLLBACK")
        self.conn.close()

    # -- metadata ---------------------------------------------------------------

    def get_meta(self, key: str, default=None):
        row = self.conn.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return json.loads(row[0]) if row else default

    @property
    def generation(self) -> int:
        return int(self.get_meta("generation", 0))

    def counts(self) -> dict:
        articles = self.conn.execute("SELECT count(*) FROM articles").fetchone()[0]
        passages = self.conn.execute("SELECT count(*) FROM passages").fetchone()[0]
        return {"articles": articles, "passages": passages}

    # -- reading ----------------------------------------------------------------

    def article_states(self) -> dict[str, tuple[str, str]]:
        """``{article id: (content hash, path)}`` for every stored article."""
        rows = self.conn.execute("SELECT id, content_hash, path FROM articles")
        return {r[0]: (r[1], r[2]) for r in rows}

    def articles(self, title_query: str = "") -> list[ArticleSummary]:
        """Stored articles, newest first; ``title_query`` keeps titles containing it."""
        rows = self.conn.execute(
            "SELECT a.id, a.title, a.date, a.source, a.url, a.path, count(p.id) FROM articles a "
            "LEFT JOIN passages p ON p.article_id = a.id WHERE a.title LIKE ? ESCAPE '\\' "
            "GROUP BY a.id ORDER BY a.date IS NULL, a.date DESC, a.title",
            ("%" + title_query.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%",))
        return [ArticleSummary(*r) for r in rows]

    def article_body(self, article_id: str) -> str:
        row = self.conn.execute("SELECT body FROM articles WHERE id = ?", (article_id,)).fetchone()
        if row is None:
            raise KeyError(article_id)
        return row[0]

    def passages(self, ids: list[int]) -> dict[int, StoredPassage]:
        """The passages with these ids (missing ids are left out)."""
        found: dict[int, StoredPassage] = {}
        for chunk in _chunks(list(ids), 500):
            rows = self.conn.execute(
                f"SELECT {_PASSAGE_COLUMNS} FROM passages p JOIN articles a ON a.id = p.article_id "
                f"WHERE p.id IN ({','.join('?' * len(chunk))})", chunk)
            found.update((r[0], StoredPassage(*r)) for r in rows)
        return found

    def passage_ids(self, filters: Filters) -> list[int]:
        """Ids of the passages whose article passes ``filters``."""
        where, params = filters.sql()
        rows = self.conn.execute(
            f"SELECT p.id FROM passages p JOIN articles a ON a.id = p.article_id WHERE {where}", params)
        return [r[0] for r in rows]

    def all_passage_ids(self) -> np.ndarray:
        """Every stored passage id, ascending."""
        rows = self.conn.execute("SELECT id FROM passages ORDER BY id").fetchall()
        return np.asarray([r[0] for r in rows], dtype=np.int64)

    def sources(self) -> list[str]:
        """The distinct article sources, alphabetically."""
        rows = self.conn.execute("SELECT DISTINCT source FROM articles WHERE source IS NOT NULL "
                                 "AND source != '' ORDER BY lower(source)")
        return [r[0] for r in rows]

    def vectors(self) -> tuple[np.ndarray, np.ndarray]:
        """All passage ids and their vectors, for rebuilding the vector index."""
        ids, blobs = [], []
        for pid, blob in self.conn.execute("SELECT id, vector FROM passages ORDER BY id"):
            ids.append(pid)
            blobs.append(np.frombuffer(blob, dtype=np.float32))
        if not ids:
            return np.zeros(0, dtype=np.int64), np.zeros((0, 0), dtype=np.float32)
        return np.asarray(ids, dtype=np.int64), np.vstack(blobs)

    def lexical_search(self, match: str, k: int, filters: Filters = Filters(),
                       title_weight: float = 1.0) -> list[tuple[int, float]]:
        """BM25 over passage text and article title: ``[(passage id, score)]``, best first.

        ``match`` is an FTS5 query expression; scores are negated FTS5 ranks (higher is better).
        """
        if not match:
            return []
        sql = ("SELECT rowid, -bm25(passages_fts, ?, 1.0) AS score FROM passages_fts "
               "WHERE passages_fts MATCH ?")
        params: list = [title_weight, match]
        if filters:
            where, fparams = filters.sql()
            sql += (" AND rowid IN (SELECT p.id FROM passages p JOIN articles a "
                    f"ON a.id = p.article_id WHERE {where})")
            params += fparams
        sql += " ORDER BY score DESC LIMIT ?"
        params.append(k)
        return [(r[0], r[1]) for r in self.conn.execute(sql, params)]

    # -- writing ----------------------------------------------------------------

    def apply(self, remove: list[str], add: list[tuple[Article, list[Passage], np.ndarray]],
              build: dict, roots: list[str]) -> tuple[list[int], list[int]]:
        """Remove and add articles in one transaction.

        Args:
            remove: ids of articles to delete (with their passages).
            add: each new or changed article with its passages and their vectors; a changed
                article must also be listed in ``remove``.
            build: the model/chunker description this store's vectors were made with.
            roots: the files and folders indexed so far (used by ``qa index --rebuild``).

        Returns:
            ``(removed passage ids, added passage ids)``, the latter in the order of ``add``.
        """
        now = dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")
        removed: list[int] = []
        added: list[int] = []
        with self._transaction():
            for chunk in _chunks(list(remove), 500):
                marks = ",".join("?" * len(chunk))
                ids = [r[0] for r in self.conn.execute(
                    f"SELECT id FROM passages WHERE article_id IN ({marks})", chunk)]
                removed.extend(ids)
                for idc in _chunks(ids, 500):
                    pm = ",".join("?" * len(idc))
                    self.conn.execute(f"DELETE FROM passages_fts WHERE rowid IN ({pm})", idc)
                    self.conn.execute(f"DELETE FROM passages WHERE id IN ({pm})", idc)
                self.conn.execute(f"DELETE FROM articles WHERE id IN ({marks})", chunk)
            for article, passages, vectors in add:
                self.conn.execute(
                    "INSERT INTO articles VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (article.id, article.origin, article.path, article.content_hash, article.title,
                     article.date, article.source, article.url, article.body, now))
                for passage, vector in zip(passages, vectors):
                    cur = self.conn.execute(
                        "INSERT INTO passages (article_id, ordinal, start, end, text, vector) "
                        "VALUES (?, ?, ?, ?, ?, ?)",
                        (article.id, passage.ordinal, passage.start, passage.end, passage.text,
                         np.asarray(vector, dtype=np.float32).tobytes()))
                    added.append(cur.lastrowid)
                    self.conn.execute("INSERT INTO passages_fts (rowid, title, text) VALUES (?, ?, ?)",
                                      (cur.lastrowid, article.title, passage.text))
            self._set_meta("generation", self.generation + 1)
            self._set_meta("updated_at", now)
            self._set_meta("build", build)
            self._set_meta("roots", sorted(set(roots)))
        return removed, added

    def _set_meta(self, key: str, value) -> None:
        self.conn.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", (key, json.dumps(value)))

    @contextlib.contextmanager
    def _transaction(self):
        self.conn.execute("BEGIN IMMEDIATE")
        try:
            yield
        except BaseException:
            self.conn.execute("ROLLBACK")
            raise
        self.conn.execute("COMMIT")


def _chunks(items: list, size: int):
    for i in range(0, len(items), size):
        yield items[i:i + size]
