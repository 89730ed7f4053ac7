"""Load news articles from .txt, .md, .html and .jsonl files into ``Article`` records.

Formats:
    .txt   Plain text. Optional header lines at the top, ``title: ...``, ``date: YYYY-MM-DD``,
           ``source: ...``, ``url: ...``, ended by a blank line. The seed format is also
           understood: a first line that starts with `` date YYYY-MM-DD `` and carries the
           body's first sentence after the date.
    .md    Markdown. The same optional header lines; the title is the first ``#`` heading.
    .html  A web page. Main text, title, date, site name and URL come from the page via
           trafilatura.
    .jsonl One article per line: ``text`` required; ``title``, ``date``, ``source``, ``url``
           and ``id`` optional.

Every problem (empty, binary, not UTF-8, bad date, malformed JSON, too large) raises
``ArticleError`` naming the file, so a caller can report it and leave the index alone.

Example:
    >>> load_articles(Path("seeds/000_12a2af69bb612d53.txt"))[0].date
    '2018-05-02'
"""

from __future__ import annotations

import codecs
import datetime as dt
import hashlib
import json
import os
import re
import stat
from dataclasses import dataclass
from pathlib import Path

SUPPORTED_SUFFIXES = (".txt", ".md", ".html", ".htm", ".jsonl")
MAX_FILE_BYTES = 20 * 1024 * 1024
HEADER_KEYS = ("title", "date", "source", "url")

_SEED_DATE = re.compile(r"\A\s*date\s+(\S+)[ \t]+")
_HEADER_LINE = re.compile(r"\A(title|date|source|url)\s*:\s*(.*)\Z", re.IGNORECASE)
_ISO_DATE = re.compile(r"\A\d{4}-\d{2}-\d{2}\Z")


class ArticleError(ValueError):
    """A file that cannot be read as an article; the message names the file and the problem."""

    def __init__(self, path: Path | str, problem: str):
        self.path = str(path)
        self.problem = problem
        super().__init__(f"{path}: {problem}")


@dataclass(frozen=True)
class Article:
    """One news article.

    ``origin`` says where it came from (the file's absolute path, plus ``#key`` for a line
    of a .jsonl file); ``id`` is a hash of it, so re-reading the same file gives the same id.
    ``content_hash`` changes whenever anything stored about the article changes.
    """

    id: str
    origin: str
    path: str
    title: str
    body: str
    date: str | None = None
    source: str | None = None
    url: str | None = None

    @property
    def content_hash(self) -> str:
        fields = [self.title, self.date or "", self.source or "", self.url or "", self.body]
        return hashlib.sha256("\x1f".join(fields).encode("utf-8")).hexdigest()


def load_articles(path: Path) -> list[Article]:
    """Read every article in one file.

    Raises:
        ArticleError: the file is unsupported, empty, binary, not UTF-8, too large or malformed.
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in SUPPORTED_SUFFIXES:
        raise ArticleError(path, f"unsupported file type {suffix or '(none)'!r}; "
                                 f"use one of {', '.join(SUPPORTED_SUFFIXES)}")
    text = read_text(path)
    origin = str(path.resolve())
    if suffix == ".jsonl":
        return _parse_jsonl(path, origin, text)
    if suffix in (".html", ".htm"):
        return [_parse_html(path, origin, text)]
    return [_parse_text(path, origin, text, markdown=suffix == ".md")]


def find_article_files(folder: Path, problems: list[ArticleError] | None = None,
                       others: list[Path] | None = None) -> list[Path]:
    """All supported files under ``folder``, recursively, in a stable order (hidden ones and
    symbolic links to folders skipped). A subfolder that cannot be listed is added to
    ``problems`` (when given) and skipped; FIFOs, devices and sockets among the files are
    returned too, so that reading them reports them by name. Files of other types (not
    hidden) are added to ``others`` when given, so the caller can say what it left out."""
    folder = Path(folder)

    def unreadable(error: OSError) -> None:
        if problems is not None:
            problems.append(ArticleError(error.filename or folder, f"is a folder that cannot be read "
                                                                   f"({error.strerror}); skipped"))

    found = []
    for root, dirs, files in os.walk(folder, onerror=unreadable):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        for name in sorted(files):
            if name.startswith("."):
                continue
            if Path(name).suffix.lower() in SUPPORTED_SUFFIXES:
                found.append(Path(root) / name)
            elif others is not None:
                others.append(Path(root) / name)
    return sorted(found)


def read_text(path: Path) -> str:
    """The file's text as UTF-8 with ``\\n`` line ends; clear errors for anything else."""
    try:
        info = path.stat()
    except OSError as e:
        raise ArticleError(path, f"cannot be read ({e.strerror})") from e
    if not stat.S_ISREG(info.st_mode):  # reading a FIFO would wait forever
        kind = "a FIFO" if stat.S_ISFIFO(info.st_mode) else "a device or socket"
        raise ArticleError(path, f"is {kind}, not a regular file")
    if info.st_size > MAX_FILE_BYTES:
        raise ArticleError(path, f"is too large ({info.st_size / 2**20:.1f} MB; the limit is "
                                 f"{MAX_FILE_BYTES / 2**20:.0f} MB): split it into smaller files")
    try:
        data = path.read_bytes()
    except OSError as e:
        raise ArticleError(path, f"cannot be read ({e.strerror})") from e
    if data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        try:
            data = data.decode("utf-16").encode("utf-8")  # a UTF-16 file, marked as such
        except UnicodeDecodeError as e:
            raise ArticleError(path, f"starts as UTF-16 but is not valid UTF-16 (offset {e.start}); "
                                     f"re-save it as UTF-8") from e
    if b"\x00" in data[:8192]:
        raise ArticleError(path, "looks like a binary file (it contains NUL bytes), not text")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        raise ArticleError(path, f"is not UTF-8 text (byte 0x{data[e.start]:02x} at offset "
                                 f"{e.start}); re-save it as UTF-8") from e
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    if not text.strip():
        raise ArticleError(path, "is empty")
    return text


def parse_date(path: Path | str, value: str | None) -> str | None:
    """``YYYY-MM-DD`` checked to be a real date, or None for an empty value."""
    if value is None or not str(value).strip():
        return None
    value = str(value).strip()
    try:
        if not _ISO_DATE.match(value):
            raise ValueError
        return dt.date.fromisoformat(value).isoformat()
    except ValueError:
        raise ArticleError(path, f"bad date {value!r}: expected YYYY-MM-DD") from None


def first_sentence(text: str, limit: int = 200) -> str:
    """The first sentence of ``text`` (used as a title when an article has none)."""
    from embeddings.passages import split_sentences

    spans = split_sentences(text)
    sentence = text[spans[0][0]:spans[0][1]].strip() if spans else text.strip()
    sentence = " ".join(sentence.split())
    return sentence if len(sentence) <= limit else sentence[: limit - 1].rstrip() + "…"


def _make_article(path: Path, origin: str, body: str, meta: dict, where: str = "") -> Article:
    where = where or str(path)
    body = body.strip()
    if not body:
        raise ArticleError(where, "has a header but no article text")
    title = " ".join((meta.get("title") or "").split()) or first_sentence(body)
    return Article(
        id=hashlib.sha1(origin.encode("utf-8")).hexdigest()[:16],
        origin=origin,
        path=str(path.resolve()),
        title=title,
        body=body,
        date=parse_date(where, meta.get("date")),
        source=(meta.get("source") or "").strip() or None,
        url=(meta.get("url") or "").strip() or None,
    )


def _parse_text(path: Path, origin: str, text: str, markdown: bool) -> Article:
    meta: dict = {}
    seed = _SEED_DATE.match(text)
    if seed:
        meta["date"] = seed.group(1)
        text = text[seed.end():]
    else:
        lines = text.lstrip("\n").split("\n")
        n = 0
        while n < len(lines) and (m := _HEADER_LINE.match(lines[n].strip())):
            meta[m.group(1).lower()] = m.group(2)
            n += 1
        if n and (n == len(lines) or not lines[n].strip()):
            text = "\n".join(lines[n:])
        else:
            meta = {}
    if markdown and not meta.get("title"):
        heading = re.search(r"^#{1,6}[ \t]+(.+?)[ \t#]*$", text, re.MULTILINE)
        if heading:
            meta["title"] = heading.group(1)
            text = text[:heading.start()] + text[heading.end():]
    return _make_article(path, origin, text, meta)


def extract_page(html: str | bytes, url: str | None = None) -> dict | None:
    """A web page's main text, title, date, site name and URL (trafilatura), or None when
    it holds no article text. The date is None when the page's guess is not a real date."""
    import trafilatura

    doc = trafilatura.bare_extraction(html, url=url, with_metadata=True, favor_recall=True)
    if doc is None or not (doc.text or "").strip():
        return None
    paragraphs = [line.strip() for line in doc.text.split("\n") if line.strip()]
    if doc.title and paragraphs and paragraphs[0] == doc.title.strip() and len(paragraphs) > 1:
        paragraphs = paragraphs[1:]
    try:
        date = parse_date("page", doc.date)
    except ArticleError:
        date = None  # a page's guessed date is a hint, not something to refuse over
    return {"title": doc.title, "source": doc.sitename or doc.hostname, "url": doc.url or url, "date": date,
            "text": "\n\n".join(paragraphs)}


def _parse_html(path: Path, origin: str, html: str) -> Article:
    page = extract_page(html)
    if page is None:
        raise ArticleError(path, "no article text found in the page")
    return _make_article(path, origin, page.pop("text"), page)


def _parse_jsonl(path: Path, origin: str, text: str) -> list[Article]:
    articles: dict[str, Article] = {}
    for n, line in enumerate(text.split("\n"), start=1):
        if not line.strip():
            continue
        where = f"{path}:{n}"
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as e:
            raise ArticleError(where, f"malformed JSON ({e.msg} at column {e.colno})") from None
        if not isinstance(obj, dict):
            raise ArticleError(where, "each line must be a JSON object")
        if not isinstance(obj.get("text"), str) or not obj["text"].strip():
            raise ArticleError(where, 'missing "text" (a non-empty string is required)')
        for key in HEADER_KEYS:
            if obj.get(key) is not None and not isinstance(obj[key], str):
                raise ArticleError(where, f'"{key}" must be a string')
        key = obj.get("id") or obj.get("url") or hashlib.sha1(line.encode("utf-8")).hexdigest()
        article = _make_article(path, f"{origin}#{key}", obj["text"], obj, where)
        articles.setdefault(article.id, article)
    if not articles:
        raise ArticleError(path, "is empty")
    return list(articles.values())
