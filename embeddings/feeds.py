"""Feeds and links as sources of articles: what is fetched is kept as files, then indexed.

The web folder (``Settings.web_dir``, default ``./web``) is an ordinary folder of articles,
indexed like ``seeds/`` or the uploads, so a rebuild re-reads it and deleting the index
loses nothing::

    web/
      feeds.json            the remembered feeds: URL, title, ETag / Last-Modified, last fetch,
                            entries saved, the last refresh's outcome
      pages/<hash>.jsonl    one fetched article: text, title, date, site and URL (its page's
                            main text, extracted with trafilatura)

A refresh asks each feed for what changed (a conditional request: an unchanged feed answers
304 and costs nothing), parses it with feedparser (RSS 0.9x/1.0/2.0, Atom), and fetches only
the entries not saved yet, so the index update that follows encodes only their passages.
A feed or page that fails is reported by URL with the reason; the rest goes in.

Example:
    >>> web = WebFolder(Path("web"))                           # doctest: +SKIP
    >>> with Fetcher() as fetcher:                              # doctest: +SKIP
    ...     report = web.refresh(fetcher, [web.add_feed("https://example.org/rss.xml")])
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import tempfile
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path

from embeddings.articles import extract_page
from embeddings.fetch import HTML_TYPES, Fetcher, FetchError, check_url

FEEDS_FILE = "feeds.json"
PAGES_DIR = "pages"
FEED_TYPES = "application/rss+xml, application/atom+xml, application/rdf+xml, application/xml;q=0.9, text/xml;q=0.9, */*;q=0.5"
PAGE_TYPES = "text/html, application/xhtml+xml;q=0.9, */*;q=0.5"
WORKERS = 4  # pages fetched at once (network-bound)


@dataclass
class Feed:
    """A remembered feed and how its last refresh went."""

    url: str
    title: str | None = None
    etag: str | None = None
    last_modified: str | None = None
    fetched_at: str | None = None   # last successful fetch (UTC, ISO 8601)
    entries: int = 0                # pages saved from it so far
    error: str | None = None        # the last refresh's problem, if any
    retry: dict = field(default_factory=dict)  # link -> entry title and date, for entries that failed


@dataclass
class WebReport:
    """What a refresh or a link fetch saved."""

    saved: list[str] = field(default_factory=list)      # titles of the new pages
    unchanged: int = 0                                   # entries already saved (or feeds not modified)
    errors: list[str] = field(default_factory=list)     # "URL: reason"

    def merge(self, other: "WebReport") -> None:
        self.saved += other.saved
        self.unchanged += other.unchanged
        self.errors += other.errors


class WebFolder:
    """The web folder: remembered feeds and the pages fetched from them or added by link."""

    def __init__(self, folder: Path):
        self.folder = Path(folder)

    @property
    def pages(self) -> Path:
        return self.folder / PAGES_DIR

    def feeds(self) -> list[Feed]:
        path = self.folder / FEEDS_FILE
        if not path.exists():
            return []
        try:
            return [Feed(**f) for f in json.loads(path.read_text(encoding="utf-8"))["feeds"]]
        except (ValueError, KeyError, TypeError) as e:
            raise FetchError(str(path), f"the list of feeds cannot be read ({e}); fix or delete the file") from None

    def add_feed(self, url: str) -> str:
        """Remember ``url`` (not fetched yet); returns it, checked."""
        url = check_url(url)
        feeds = self.feeds()
        if all(f.url != url for f in feeds):
            self._save_feeds(feeds + [Feed(url)])
        return url

    def remove_feed(self, url: str) -> bool:
        feeds = self.feeds()
        kept = [f for f in feeds if f.url != url]
        self._save_feeds(kept)
        return len(kept) != len(feeds)

    def refresh(self, fetcher: Fetcher, urls: list[str] | None = None, progress=None) -> WebReport:
        """Fetch the feeds named (default: all remembered) and save their new entries.

        ``progress(done, total, what)`` is called as pages are fetched, if given.
        """
        report = WebReport()
        feeds = self.feeds()
        for feed in feeds:
            if urls is not None and feed.url not in urls:
                continue
            problem = None
            try:
                links = self._fetch_feed(fetcher, feed)
            except FetchError as e:
                problem, links = e.reason, []
                report.errors.append(str(e))
            if links is None:  # not modified since the last fetch
                report.unchanged += 1
                links = []
            links += [(link, entry) for link, entry in feed.retry.items() if link not in dict(links)]
            new = [(link, entry) for link, entry in links if not self.page_path(link).exists()]
            report.unchanged += len(links) - len(new)
            failed: dict[str, str] = {}
            feed.entries += self._save_pages(fetcher, new, feed.title, report, progress, failed)
            feed.retry = {link: entry for link, entry in new if link in failed}  # tried again next time
            if failed:
                problem = "; ".join(filter(None, [problem, f"{len(failed)} of {len(new)} new entries failed"]))
            feed.error = problem
        self._save_feeds(feeds)
        return report

    def add_page(self, fetcher: Fetcher, url: str) -> WebReport:
        """Fetch one article page by its URL and save it (again, if it was saved before)."""
        report = WebReport()
        try:
            url = check_url(url)
        except FetchError as e:
            report.errors.append(str(e))
            return report
        self._save_pages(fetcher, [(url, {})], None, report, None)
        return report

    def page_path(self, url: str) -> Path:
        return self.pages / f"{hashlib.sha1(url.encode('utf-8')).hexdigest()[:20]}.jsonl"

    # -- internals ----------------------------------------------------------------

    def _fetch_feed(self, fetcher: Fetcher, feed: Feed) -> list[tuple[str, dict]] | None:
        import feedparser

        response = fetcher.get(feed.url, feed.etag, feed.last_modified, accept=FEED_TYPES)
        now = dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")
        if response.not_modified:
            feed.fetched_at, feed.error = now, None
            return None
        parsed = feedparser.parse(response.content, response_headers={"content-location": response.url})
        if not parsed.entries and (parsed.bozo or not parsed.version):
            kind = f" ({response.content_type})" if response.content_type else ""
            hint = "; add a single article with --url" if response.content_type in HTML_TYPES else ""
            raise FetchError(feed.url, f"is not an RSS or Atom feed{kind}{hint}")
        feed.title = parsed.feed.get("title") or feed.title
        feed.etag, feed.last_modified, feed.fetched_at = response.etag, response.last_modified, now
        links = []
        for entry in parsed.entries:
            link = entry.get("link")
            if not link:
                continue
            try:
                links.append((check_url(link), {"title": entry.get("title"), "date": _entry_date(entry)}))
            except FetchError:
                continue  # a javascript: or relative link that did not resolve: never fetched
        return list(dict(links).items())

    def _save_pages(self, fetcher: Fetcher, items: list[tuple[str, dict]], site: str | None,
                    report: WebReport, progress, failed: dict | None = None) -> int:
        """Fetch and save each page; failures go to ``report.errors`` (and ``failed``)."""
        saved = 0
        with ThreadPoolExecutor(max_workers=WORKERS) as pool:
            results = pool.map(lambda item: self._fetch_page(fetcher, *item, site), items)
            for done, (link, outcome) in enumerate(zip((i[0] for i in items), results), start=1):
                if isinstance(outcome, FetchError):
                    report.errors.append(str(outcome))
                    if failed is not None:
                        failed[link] = outcome.reason
                else:
                    _write_atomic(self.page_path(link), json.dumps(outcome, ensure_ascii=False) + "\n")
                    report.saved.append(outcome["title"] or link)
                    saved += 1
                if progress:
                    progress(done, len(items), link)
        return saved

    @staticmethod
    def _fetch_page(fetcher: Fetcher, link: str, entry: dict, site: str | None) -> dict | FetchError:
        try:
            response = fetcher.get(link, accept=PAGE_TYPES)
            if response.content_type and response.content_type not in HTML_TYPES:
                raise FetchError(link, f"is not a web page ({response.content_type})")
            page = extract_page(response.content, response.url)
            if page is None:
                raise FetchError(link, "no article text found in the page")
        except FetchError as e:
            return e
        return {
            "id": link,
            "url": page["url"] or response.url,
            "title": page["title"] or entry.get("title"),
            "date": page["date"] or entry.get("date"),
            "source": page["source"] or site,
            "text": page["text"],
        }

    def _save_feeds(self, feeds: list[Feed]) -> None:
        _write_atomic(self.folder / FEEDS_FILE,
                      json.dumps({"feeds": [asdict(f) for f in feeds]}, indent=2, ensure_ascii=False) + "\n")


def fetch_into(folder: Path, feeds: list[str] = (), urls: list[str] = (), refresh_all: bool = False,
               progress=None) -> WebReport | None:
    """Remember and refresh the feeds named (every remembered one with ``refresh_all``) and
    fetch the pages named, into the web folder ``folder``. None when there was nothing to
    fetch; bad URLs and failures are in the report's ``errors``."""
    web = WebFolder(folder)
    report = WebReport()
    try:
        remembered = web.feeds() if refresh_all else []
    except FetchError as e:
        report.errors.append(str(e))
        remembered = []
    if not (feeds or urls or remembered):
        return report if report.errors else None
    named = []
    for url in feeds:
        try:
            named.append(web.add_feed(url))
        except FetchError as e:
            report.errors.append(str(e))
    with Fetcher() as fetcher:
        if named or remembered:
            report.merge(web.refresh(fetcher, None if refresh_all else named, progress))
        for url in urls:
            report.merge(web.add_page(fetcher, url))
    return report


def _entry_date(entry: dict) -> str | None:
    """The entry's published (or updated) day, as YYYY-MM-DD."""
    stamp = entry.get("published_parsed") or entry.get("updated_parsed")
    return dt.date(*stamp[:3]).isoformat() if stamp else None


def _write_atomic(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=path.name + ".", suffix=".part", dir=path.parent)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.chmod(tmp, 0o644)
    os.replace(tmp, path)
