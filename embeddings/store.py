"""The SQLite store: articles, passages (with their vectors) and an FTS5 table for BM25.

SQLite is the index's source of truth. Every write is one transaction holding whole
articles, so a crash or a bad file leaves the previous state whole; the FAISS file and
``manifest.json`` are derived from it and stamped with the store's ``generation`` so a stale
one is noticed and rebuilt. Passage vectors are stored as float32 BLOBs, which lets FAISS be
rebuilt without re-encoding; each passage also keeps its sentences' spans and vectors
(8-bit codes with one scale per sentence: see ``pack_sentences``), which the retriever
scores at question time without running the model.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import sqlite3
import threading
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
    vector BLOB NOT NULL,
    sentences BLOB NOT NULL
);
CREATE INDEX IF NOT EXISTS passages_article ON passages(article_id);
CREATE TABLE IF NOT EXISTS lexicon (term TEXT PRIMARY KEY, docs INTEGER NOT NULL) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS stories (article_id TEXT PRIMARY KEY, story TEXT NOT NULL, signature BLOB NOT NULL);
CREATE INDEX IF NOT EXISTS stories_story ON stories(story);
"""
TOKENIZE = "porter unicode61"
# Contentless: the index holds the terms, not another copy of the text (a passage's text is
# its article's body between its offsets); rows are deleted with their original values.
_FTS_TABLE = ("CREATE VIRTUAL TABLE IF NOT EXISTS passages_fts USING "
              f"fts5(title, text, content='', tokenize='{TOKENIZE}')")
_TEXT = "substr(a.body, p.start + 1, p.end - p.start)"  # SQLite counts characters as Python does


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
    sentences: tuple[tuple[int, int], ...] = ()  # (start, end) within text
    story: str | None = None  # articles that are copies of one wire story share it (embeddings/stories.py)


@dataclass(frozen=True)
class ArticleRef:
    """An article as a citation names it."""

    id: str
    title: str
    date: str | None
    source: str | None
    url: str | None


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
    """Restrict retrieval to articles dated within ``[since, until]`` and/or from ``sources``.

    ``as_of``: only what could have been read that day: articles dated after it are left
    out, undated ones stay (the evaluation asks each news question as of its date).
    """

    since: str | None = None
    until: str | None = None
    sources: tuple[str, ...] = ()
    as_of: str | None = None

    def __bool__(self) -> bool:
        return bool(self.since or self.until or self.sources or self.as_of)

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
        if self.as_of:
            clauses.append("(a.date IS NULL OR a.date <= ?)")
            params.append(self.as_of)
        return (" AND ".join(clauses) or "1"), params


class PassageTable:
    """Every passage's id, article date and source, as arrays: ``Filters`` applied in memory,
    exactly as ``Filters.sql`` reads them (an undated article passes only ``as_of``; a
    source is compared case-insensitively)."""

    UNDATED = np.iinfo(np.int64).min  # what numpy makes of a missing date (NaT)

    def __init__(self, ids: np.ndarray, days: np.ndarray, sources: np.ndarray):
        self.ids = ids          # ascending
        self.days = days        # the article's date in days since 1970-01-01; UNDATED when it has none
        self.sources = sources  # lower-cased source, "" when none

    @classmethod
    def read(cls, conn: sqlite3.Connection) -> "PassageTable":
        """Two scans that touch no text or vectors: the passages' article index, and the
        articles' dates and sources (90 ms for a news year of 120,967 passages; a join
        reading the passage rows took 400)."""
        articles = conn.execute("SELECT id, date, lower(source) FROM articles").fetchall()
        row_of = {a[0]: n for n, a in enumerate(articles)}
        pairs = conn.execute("SELECT id, article_id FROM passages INDEXED BY passages_article").fetchall()
        ids = np.fromiter((r[0] for r in pairs), dtype=np.int64, count=len(pairs))
        article = np.fromiter((row_of[r[1]] for r in pairs), dtype=np.int64, count=len(pairs))
        order = np.argsort(ids, kind="stable")
        days = np.array([a[1] for a in articles], dtype="datetime64[D]").astype(np.int64)  # None: NaT = UNDATED
        sources = np.array([a[2] or "" for a in articles], dtype=object)
        return cls(ids[order], days[article[order]], sources[article[order]])

    def select(self, filters: Filters) -> np.ndarray:
        keep = np.ones(len(self.ids), dtype=bool)
        dated = self.days != self.UNDATED
        if filters.since:
            keep &= dated & (self.days >= _day(filters.since))
        if filters.until:
            keep &= dated & (self.days <= _day(filters.until))
        if filters.sources:
            keep &= np.isin(self.sources, [s.lower() for s in filters.sources])
        if filters.as_of:
            keep &= ~dated | (self.days <= _day(filters.as_of))
        return self.ids[keep]


def _members(ids: np.ndarray, allowed: np.ndarray) -> np.ndarray:
    """Which of ``ids`` are in ``allowed`` (ascending), as a boolean mask."""
    if not len(allowed):
        return np.zeros(len(ids), dtype=bool)
    at = np.minimum(np.searchsorted(allowed, ids), len(allowed) - 1)
    return allowed[at] == ids


def _day(date: str) -> int:
    """``YYYY-MM-DD`` as the day number ``PassageTable`` holds (days since 1970-01-01)."""
    return int(np.datetime64(date, "D").astype(np.int64))


_PASSAGE_COLUMNS = (f"p.id, p.article_id, p.ordinal, p.start, p.end, {_TEXT}, "
                    "a.title, a.date, a.source, a.url, a.path, p.sentences, s.story")


class Terms:
    """FTS5's own tokenizer, run on a scratch in-memory table: the exact terms the index holds.

    Used to keep ``lexicon`` (how many passages hold each term) and to look query words up
    in it. One per thread: SQLite connections are not shared across threads here.
    """

    _local = threading.local()

    @classmethod
    def get(cls) -> "Terms":
        terms = getattr(cls._local, "terms", None)
        if terms is None:
            terms = cls._local.terms = cls()
        return terms

    def __init__(self):
        self.conn = sqlite3.connect(":memory:", isolation_level=None)
        self.conn.execute(f"CREATE VIRTUAL TABLE t USING fts5(title, text, tokenize='{TOKENIZE}')")
        self.conn.execute("CREATE VIRTUAL TABLE t_rows USING fts5vocab(t, 'row')")
        self.conn.execute("CREATE VIRTUAL TABLE t_inst USING fts5vocab(t, 'instance')")

    def doc_counts(self, rows: list[tuple[str, str]]) -> list[tuple[str, int]]:
        """``(term, passages holding it)`` over ``(title, text)`` rows."""
        if not rows:
            return []
        self.conn.execute("BEGIN")
        self.conn.executemany("INSERT INTO t (title, text) VALUES (?, ?)", rows)
        counts = self.conn.execute("SELECT term, doc FROM t_rows").fetchall()
        self.conn.execute("ROLLBACK")
        return counts

    def of_words(self, words: list[str]) -> list[list[str]]:
        """The terms each word becomes (usually one; "covid-19" becomes two)."""
        self.conn.execute("BEGIN")
        self.conn.executemany("INSERT INTO t (rowid, title, text) VALUES (?, '', ?)", enumerate(words))
        stems: list[list[str]] = [[] for _ in words]
        for doc, term in self.conn.execute("SELECT doc, term FROM t_inst ORDER BY doc, offset"):
            stems[doc].append(term)
        self.conn.execute("ROLLBACK")
        return stems


def pack_sentences(spans, vectors: np.ndarray) -> bytes:
    """A passage's sentences as one BLOB: int32 spans, float32 scales, int8 codes.

    Each unit vector is stored as ``round(127 * v / max|v|)`` with its scale, a quarter of
    float32's size; the cosines computed from the codes differ from float32 by about 0.001
    (measured in docs/benchmarks.md), far below the gaps that decide a ranking.
    """
    spans = np.asarray(spans, dtype=np.int32).reshape(-1, 2)
    vectors = np.asarray(vectors, dtype=np.float32).reshape(len(spans), -1)
    peak = np.abs(vectors).max(axis=1) if len(vectors) else np.zeros(0, np.float32)
    scales = np.where(peak > 0, peak / 127.0, 1.0).astype(np.float32)
    codes = np.rint(vectors / scales[:, None]).astype(np.int8)
    return spans.tobytes() + scales.tobytes() + codes.tobytes()


def unpack_sentences(blob: bytes, dimension: int) -> tuple[tuple[tuple[int, int], ...], np.ndarray]:
    """``(spans, float32 vectors)`` from ``pack_sentences``'s BLOB."""
    n = len(blob) // (8 + 4 + dimension)
    spans = np.frombuffer(blob, dtype=np.int32, count=2 * n).reshape(n, 2)
    scales = np.frombuffer(blob, dtype=np.float32, count=n, offset=8 * n)
    codes = np.frombuffer(blob, dtype=np.int8, count=n * dimension, offset=12 * n).reshape(n, dimension)
    return tuple((int(a), int(b)) for a, b in spans), codes.astype(np.float32) * scales[:, None]


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
        self.conn.execute(_FTS_TABLE)
        self.snapshot = snapshot
        self._dimension = None
        self._filter_table: PassageTable | None = None  # a snapshot's dates and sources, read once
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
                f"LEFT JOIN stories s ON s.article_id = a.id WHERE p.id IN ({','.join('?' * len(chunk))})", chunk)
            for r in rows:
                found[r[0]] = StoredPassage(*r[:11], sentences=_spans(r[11], self.dimension), story=r[12])
        return found

    def newest_date(self, filters: Filters = Filters()) -> str | None:
        """The date of the newest dated article passing ``filters`` (None if none is dated)."""
        where, params = filters.sql()
        return self.conn.execute(f"SELECT max(a.date) FROM articles a WHERE {where}", params).fetchone()[0]

    def story_rows(self) -> list[tuple[str, str, bytes]]:
        """``(article id, story id, packed signature)`` of every grouped article."""
        return self.conn.execute("SELECT article_id, story, signature FROM stories").fetchall()

    def articles_without_story(self) -> list[tuple[str, str]]:
        """``(id, body)`` of articles indexed before stories were grouped."""
        return self.conn.execute("SELECT id, body FROM articles WHERE id NOT IN (SELECT article_id FROM stories)"
                                 ).fetchall()

    def set_stories(self, rows: dict[str, tuple[str, bytes]]) -> None:
        """Record the story of articles already stored (one transaction)."""
        with self._transaction():
            self.conn.executemany("INSERT OR REPLACE INTO stories VALUES (?, ?, ?)",
                                  [(aid, story, sig) for aid, (story, sig) in rows.items()])

    def story_members(self, stories: list[str]) -> dict[str, list[ArticleRef]]:
        """Every article of each story, oldest first."""
        members: dict[str, list[ArticleRef]] = {}
        for chunk in _chunks(sorted(set(stories)), 500):
            rows = self.conn.execute(
                "SELECT s.story, a.id, a.title, a.date, a.source, a.url FROM stories s JOIN articles a "
                f"ON a.id = s.article_id WHERE s.story IN ({','.join('?' * len(chunk))}) "
                "ORDER BY coalesce(a.date, ''), a.id", chunk)
            for story, *ref in rows:
                members.setdefault(story, []).append(ArticleRef(*ref))
        return members

    def sentences(self, ids: list[int]) -> dict[int, tuple[tuple[tuple[int, int], ...], np.ndarray]]:
        """Per passage: its sentences' spans (within its text) and their vectors (float32 rows)."""
        found = {}
        for chunk in _chunks(list(ids), 500):
            rows = self.conn.execute(
                f"SELECT id, sentences FROM passages WHERE id IN ({','.join('?' * len(chunk))})", chunk)
            for pid, blob in rows:
                found[pid] = unpack_sentences(blob, self.dimension)
        return found

    @property
    def dimension(self) -> int:
        """The vectors' dimension, from the build recorded with them."""
        if self._dimension is None:
            build = self.get_meta("build") or {}
            self._dimension = int(build.get("model", {}).get("dimension", 0))
        return self._dimension

    def passage_ids(self, filters: Filters) -> np.ndarray:
        """Ids of the passages whose article passes ``filters``, ascending.

        A snapshot reads every passage's date and source once (it cannot change under it)
        and filters in memory: asking SQLite each time cost 76 ms a question on a news year
        of 120,967 passages, against about 1 ms.
        """
        if self.snapshot:
            if self._filter_table is None:
                self._filter_table = PassageTable.read(self.conn)
            return self._filter_table.select(filters)
        where, params = filters.sql()
        rows = self.conn.execute(
            f"SELECT p.id FROM passages p JOIN articles a ON a.id = p.article_id WHERE {where} ORDER BY p.id", params)
        return np.fromiter((r[0] for r in rows), dtype=np.int64)

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
        ids, parts = [np.zeros(0, np.int64)], [np.zeros((0, self.dimension), np.float32)]
        for chunk_ids, chunk in self.iter_vectors():
            ids.append(chunk_ids)
            parts.append(chunk)
        return np.concatenate(ids), np.vstack(parts)

    def iter_vectors(self, batch: int = 50_000, with_meta: bool = False):
        """``(ids, vectors)`` in batches of at most ``batch`` passages, by ascending id; with
        ``with_meta``, ``(ids, vectors, [(article id, date, source), ...])``."""
        last = -1
        columns = "p.id, p.vector" + (", a.id, a.date, a.source" if with_meta else "")
        while True:
            rows = self.conn.execute(f"SELECT {columns} FROM passages p JOIN articles a ON a.id = p.article_id "
                                     "WHERE p.id > ? ORDER BY p.id LIMIT ?", (last, batch)).fetchall()
            if not rows:
                return
            ids = np.fromiter((r[0] for r in rows), dtype=np.int64, count=len(rows))
            vectors = np.frombuffer(b"".join(r[1] for r in rows), dtype=np.float32).reshape(len(rows), -1)
            last = int(ids[-1])
            yield (ids, vectors, [r[2:] for r in rows]) if with_meta else (ids, vectors)

    def existing(self, ids: list[int]) -> set[int]:
        """Which of these passage ids this store (or snapshot) holds."""
        found: set[int] = set()
        for chunk in _chunks(list(ids), 500):
            found.update(r[0] for r in self.conn.execute(
                f"SELECT id FROM passages WHERE id IN ({','.join('?' * len(chunk))})", chunk))
        return found

    def term_counts(self, words: list[str]) -> list[tuple[list[str], int]]:
        """Per word: the terms the index holds for it (FTS5's stems) and how many passages
        hold them (the rarest of its terms; 0 when none does)."""
        stems = Terms.get().of_words(words)
        flat = sorted({t for ts in stems for t in ts})
        docs = dict(self.conn.execute(
            f"SELECT term, docs FROM lexicon WHERE term IN ({','.join('?' * len(flat))})", flat)) if flat else {}
        return [(ts, min((docs.get(t, 0) for t in ts), default=0)) for ts in stems]

    def lexical_words(self, words: list[str], budget: int | None = None,
                      counts: list[tuple[list[str], int]] | None = None) -> list[str]:
        """The query words BM25 should read: rarest first, until their passage counts add up
        to ``budget``.

        FTS5 scores every passage holding any query word, so a common word ("said",
        "president") costs time in proportion to how many passages hold it while adding
        little to BM25 (its IDF is low). Reading words rarest first within a budget of
        postings keeps a query's cost flat however large the archive grows; the rarest word
        is always read. Words no passage holds cost nothing and are kept. ``counts`` is
        ``term_counts(words)`` when the caller has it.
        """
        if budget is None or not words:
            return list(words)
        counts = counts if counts is not None else self.term_counts(words)
        chosen, spent = set(), 0
        for n in sorted(range(len(words)), key=lambda n: (counts[n][1], n)):
            if chosen and spent + counts[n][1] > budget:
                break
            chosen.add(n)
            spent += counts[n][1]
        return [w for n, w in enumerate(words) if n in chosen]

    def lexical_search(self, match: str, k: int, filters: Filters = Filters(),
                       title_weight: float = 1.0) -> list[tuple[int, float]]:
        """BM25 over passage text and article title: ``[(passage id, score)]``, best first.

        ``match`` is an FTS5 query expression; scores are negated FTS5 ranks (higher is better).
        Ties are broken by passage id.
        """
        if not match:
            return []
        sql = "SELECT f.rowid, -bm25(passages_fts, ?, 1.0) AS score FROM passages_fts f"
        params: list = [title_weight]
        where = "passages_fts MATCH ?"
        params.append(match)
        if filters and self.snapshot:
            # every match scored, then filtered in memory by the snapshot's passage table:
            # half the time of joining each match to its article in SQL (14 against 28 ms a
            # question on a news year of 120,967 passages, the same passages in the same order)
            allowed = self.passage_ids(filters)
            rows = self.conn.execute(f"{sql} WHERE {where}", params).fetchall()
            ids = np.fromiter((r[0] for r in rows), dtype=np.int64, count=len(rows))
            scores = np.fromiter((r[1] for r in rows), dtype=np.float64, count=len(rows))
            keep = _members(ids, allowed)
            ids, scores = ids[keep], scores[keep]
            best = np.lexsort((ids, -scores))[:k]
            return [(int(ids[i]), float(scores[i])) for i in best]
        if filters:
            # CROSS JOIN keeps the FTS5 match as the outer loop: with `rowid IN (subquery)`
            # SQLite probed the full-text index once per allowed passage (1.2 s for one question
            # on 21,756 news passages, against 28 ms this way).
            fwhere, fparams = filters.sql()
            sql += " CROSS JOIN passages p ON p.id = f.rowid CROSS JOIN articles a ON a.id = p.article_id"
            where += f" AND {fwhere}"
            params += fparams
        sql += f" WHERE {where}"
        sql += " ORDER BY score DESC, f.rowid LIMIT ?"
        params.append(k)
        return [(r[0], r[1]) for r in self.conn.execute(sql, params)]

    # -- writing ----------------------------------------------------------------

    def apply(self, remove: list[str], add: list[tuple[Article, list[Passage], np.ndarray, list[np.ndarray]]],
              build: dict, roots: list[str], stories: dict[str, tuple[str, bytes]] | None = None
              ) -> tuple[list[int], list[int]]:
        """Remove and add articles in one transaction.

        Args:
            remove: ids of articles to delete (with their passages).
            add: each new or changed article with its passages, their vectors and, per
                passage, its sentence vectors; a changed article must also be listed in ``remove``.
            build: the model/chunker description this store's vectors were made with.
            roots: the files and folders indexed so far (used by ``qa index --rebuild``).
            stories: story id and packed signature of added articles (``embeddings/stories.py``).

        Returns:
            ``(removed passage ids, added passage ids)``, the latter in the order of ``add``.
        """
        now = dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")
        removed: list[int] = []
        added: list[int] = []
        with self._transaction():
            for chunk in _chunks(list(remove), 500):
                marks = ",".join("?" * len(chunk))
                rows = self.conn.execute(
                    f"SELECT p.id, a.title, {_TEXT} FROM passages p JOIN articles a ON a.id = p.article_id "
                    f"WHERE p.article_id IN ({marks})", chunk).fetchall()
                ids = [r[0] for r in rows]
                self._count_terms([(t, x) for _, t, x in rows], -1)
                self.conn.executemany("INSERT INTO passages_fts (passages_fts, rowid, title, text) "
                                      "VALUES ('delete', ?, ?, ?)", rows)
                removed.extend(ids)
                for idc in _chunks(ids, 500):
                    self.conn.execute(f"DELETE FROM passages WHERE id IN ({','.join('?' * len(idc))})", idc)
                self.conn.execute(f"DELETE FROM articles WHERE id IN ({marks})", chunk)
                self.conn.execute(f"DELETE FROM stories WHERE article_id IN ({marks})", chunk)
            self.conn.executemany("INSERT OR REPLACE INTO stories VALUES (?, ?, ?)",
                                  [(aid, story, sig) for aid, (story, sig) in (stories or {}).items()])
            for article, passages, vectors, sentence_vectors in add:
                self.conn.execute(
                    "INSERT INTO articles VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (article.id, article.origin, article.path, article.content_hash, article.title,
                     article.date, article.source, article.url, article.body, now))
                for passage, vector, sentences in zip(passages, vectors, sentence_vectors):
                    cur = self.conn.execute(
                        "INSERT INTO passages (article_id, ordinal, start, end, vector, sentences) "
                        "VALUES (?, ?, ?, ?, ?, ?)",
                        (article.id, passage.ordinal, passage.start, passage.end,
                         np.asarray(vector, dtype=np.float32).tobytes(),
                         pack_sentences(passage.sentences, sentences)))
                    added.append(cur.lastrowid)
                    self.conn.execute("INSERT INTO passages_fts (rowid, title, text) VALUES (?, ?, ?)",
                                      (cur.lastrowid, article.title, passage.text))
                self._count_terms([(article.title, p.text) for p in passages], +1)
            self._set_meta("generation", self.generation + 1)
            self._set_meta("updated_at", now)
            self._set_meta("build", build)
            self._dimension = None
            self._set_meta("roots", sorted(set(roots)))
        return removed, added

    def replace_with(self, other: "Store", keep_paths: set[str] = frozenset()) -> set[str]:
        """Replace every article by ``other``'s, in one transaction (a rebuild's swap).

        Articles read from ``keep_paths`` that ``other`` lacks are kept as they are (their
        files could not be read this time). Copied passages get new ids above every id this
        store ever used, so an id never names two different passages.

        Returns:
            the ids of the articles kept.
        """
        now = dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")
        self.conn.execute("ATTACH DATABASE ? AS staging", (str(other.path),))
        try:
            with self._transaction():
                kept = {r[0] for r in self.conn.execute(
                    f"SELECT id FROM articles WHERE path IN ({','.join('?' * len(keep_paths))}) "
                    "AND id NOT IN (SELECT id FROM staging.articles)", sorted(keep_paths))}
                seq = self.conn.execute("SELECT seq FROM sqlite_sequence WHERE name = 'passages'").fetchone()
                offset = max(seq[0] if seq else 0,
                             self.conn.execute("SELECT coalesce(max(id), 0) FROM passages").fetchone()[0])
                kept_rows = self.conn.execute(
                    f"SELECT p.id, a.title, {_TEXT} FROM passages p JOIN articles a ON a.id = p.article_id "
                    f"WHERE p.article_id IN ({','.join('?' * len(kept))})", sorted(kept)).fetchall()
                self.conn.execute(f"DELETE FROM passages WHERE article_id NOT IN "
                                  f"({','.join('?' * len(kept))})", sorted(kept))
                self.conn.execute(f"DELETE FROM articles WHERE id NOT IN ({','.join('?' * len(kept))})",
                                  sorted(kept))
                # Emptying FTS5 row by row is slow; drop it and index again what stays.
                self.conn.execute("DROP TABLE passages_fts")
                self.conn.execute(_FTS_TABLE)
                self.conn.executemany("INSERT INTO passages_fts (rowid, title, text) VALUES (?, ?, ?)", kept_rows)
                self.conn.execute("DELETE FROM lexicon")
                self.conn.execute("INSERT INTO lexicon SELECT * FROM staging.lexicon")
                self._count_terms([(t, x) for _, t, x in kept_rows], +1)
                self.conn.execute(f"DELETE FROM stories WHERE article_id NOT IN ({','.join('?' * len(kept))})",
                                  sorted(kept))
                self.conn.execute("INSERT OR REPLACE INTO stories SELECT * FROM staging.stories")
                self.conn.execute("INSERT INTO articles SELECT * FROM staging.articles")
                self.conn.execute(
                    "INSERT INTO passages (id, article_id, ordinal, start, end, vector, sentences) "
                    "SELECT id + ?, article_id, ordinal, start, end, vector, sentences "
                    "FROM staging.passages ORDER BY id", (offset,))
                self.conn.execute(
                    f"INSERT INTO passages_fts (rowid, title, text) SELECT p.id + ?, a.title, {_TEXT} "
                    "FROM staging.passages p JOIN staging.articles a ON a.id = p.article_id", (offset,))
                self._set_meta("generation", self.generation + 1)
                self._set_meta("updated_at", now)
                self._set_meta("build", other.get_meta("build"))
                self._dimension = None
                self._set_meta("roots", other.get_meta("roots", []))
        finally:
            self.conn.execute("DETACH DATABASE staging")
        return kept

    def _count_terms(self, rows: list[tuple[str, str]], sign: int) -> None:
        """Add (``sign`` +1) or take away (-1) these passages in ``lexicon``."""
        counts = Terms.get().doc_counts(rows)
        self.conn.executemany("INSERT INTO lexicon (term, docs) VALUES (?, ?) "
                              "ON CONFLICT(term) DO UPDATE SET docs = docs + excluded.docs",
                              [(t, sign * n) for t, n in counts])
        if sign < 0:
            self.conn.execute("DELETE FROM lexicon WHERE docs <= 0")

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


def _spans(blob: bytes, dimension: int) -> tuple[tuple[int, int], ...]:
    n = len(blob) // (8 + 4 + dimension) if dimension else 0
    return tuple(tuple(int(x) for x in pair)
                 for pair in np.frombuffer(blob, dtype=np.int32, count=2 * n).reshape(n, 2))


def _chunks(items: list, size: int):
    for i in range(0, len(items), size):
        yield items[i:i + size]
