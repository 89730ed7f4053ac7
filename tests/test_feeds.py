"""Feeds and links, fetched from a real HTTP server on 127.0.0.1 (nothing beyond loopback)."""

from __future__ import annotations

import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from embeddings.feeds import WebFolder
from embeddings.fetch import USER_AGENT, Fetcher, FetchError
from embeddings.indexer import update_index
from embeddings.store import Store

PARAGRAPH = ("The harbour board met on {day} to discuss the {topic}. Members heard from pilots, "
             "ferry crews and the lighthouse trust about the {topic} and what it would cost. "
             "A decision on the {topic} is expected before the summer timetable starts.")


def page(title: str, topic: str, day: str = "Monday") -> bytes:
    body = "".join(f"<p>{PARAGRAPH.format(day=day, topic=topic)} Point {n}.</p>" for n in range(3))
    return (f"<html><head><title>{title}</title><meta property='og:site_name' content='Harbour Times'>"
            f"<meta name='date' content='2025-03-04'></head><body><article><h1>{title}</h1>{body}"
            f"<script>document.title = 'ran'</script></article></body></html>").encode()


def rss(items: list[tuple[str, str]]) -> bytes:
    entries = "".join(f"<item><title>{t}</title><link>{link}</link><pubDate>Tue, 04 Mar 2025 09:00:00 GMT"
                      f"</pubDate><description>{t}</description></item>" for t, link in items)
    return (f"<?xml version='1.0'?><rss version='2.0'><channel><title>Harbour Times</title>"
            f"<link>http://example.invalid/</link><description>news</description>{entries}</channel></rss>").encode()


def atom(items: list[tuple[str, str]]) -> bytes:
    entries = "".join(f"<entry><title>{t}</title><link href='{link}'/><id>{link}</id>"
                      f"<updated>2025-03-05T10:00:00Z</updated></entry>" for t, link in items)
    return (f"<?xml version='1.0' encoding='utf-8'?><feed xmlns='http://www.w3.org/2005/Atom'>"
            f"<title>Pier Gazette</title><id>urn:pier</id><updated>2025-03-05T10:00:00Z</updated>"
            f"{entries}</feed>").encode()


class Site:
    """What the loopback server serves; tests change it between refreshes."""

    def __init__(self):
        self.base = ""
        self.routes: dict[str, tuple[int, str, bytes]] = {}
        self.requests: list[tuple[str, dict]] = []
        self.etags: dict[str, str] = {}

    def add(self, path: str, body: bytes, kind: str = "text/html; charset=utf-8", status: int = 200,
            etag: str | None = None) -> None:
        self.routes[path] = (status, kind, body)
        if etag:
            self.etags[path] = etag


@pytest.fixture
def site():
    state = Site()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802 - the http.server API
            state.requests.append((self.path, dict(self.headers)))
            if self.path == "/slow.html":
                time.sleep(3)
            if self.path == "/moved.html":
                self.send_response(302)
                self.send_header("Location", "/pilots.html")
                self.end_headers()
                return
            if self.path not in state.routes:
                self.send_error(404, "Not Found")
                return
            status, kind, body = state.routes[self.path]
            etag = state.etags.get(self.path)
            if etag and self.headers.get("If-None-Match") == etag:
                self.send_response(304)
                self.end_headers()
                return
            self.send_response(status)
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(body)))
            if etag:
                self.send_header("ETag", etag)
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    server.handle_error = lambda *args: None  # the client hung up on the slow page: expected
    state.base = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    b = state.base
    state.add("/ferry.html", page("Ferry timetable extended", "ferry timetable"))
    state.add("/pier.html", page("Pier repairs approved", "pier repairs"))
    state.add("/pilots.html", page("Pilots ask for a new launch", "pilot launch"))
    state.add("/report.pdf", b"%PDF-1.4 not a page", kind="application/pdf")
    state.add("/rss.xml", rss([("Ferry timetable extended", f"{b}/ferry.html"), ("Gone", f"{b}/missing.html"),
                               ("Pier repairs approved", f"{b}/pier.html")]),
              kind="application/rss+xml", etag='"rss-1"')
    state.add("/atom.xml", atom([("Pilots ask for a new launch", f"{b}/moved.html"), ("Slow", f"{b}/slow.html"),
                                 ("Report", f"{b}/report.pdf"), ("Script", "javascript:alert(1)")]),
              kind="application/atom+xml")
    yield state
    server.shutdown()
    server.server_close()


def titles(index_settings) -> dict[str, tuple]:
    with Store(index_settings.index_dir / "store.sqlite", snapshot=True) as store:
        rows = store.conn.execute("SELECT title, date, source, url FROM articles").fetchall()
    return {r[0]: r[1:] for r in rows}


def test_rss_and_atom_entries_are_fetched_and_every_failure_is_named_by_url(site, tmp_path, index_settings,
                                                                            fake_encoder):
    web = WebFolder(tmp_path / "web")
    b = site.base
    with Fetcher(timeout=1.0) as fetcher:
        report = web.refresh(fetcher, [web.add_feed(f"{b}/rss.xml"), web.add_feed(f"{b}/atom.xml")])
    assert sorted(report.saved) == ["Ferry timetable extended", "Pier repairs approved", "Pilots ask for a new launch"]
    assert sorted(report.errors) == sorted([
        f"{b}/missing.html: HTTP 404 Not Found",
        f"{b}/slow.html: timed out",
        f"{b}/report.pdf: is not a web page (application/pdf)",
    ])
    assert all(headers.get("User-Agent") == USER_AGENT for _, headers in site.requests)
    update = update_index([web.folder], index_settings, fake_encoder)
    assert not update.errors
    stored = titles(index_settings)
    assert stored["Ferry timetable extended"] == ("2025-03-04", "Harbour Times", f"{b}/ferry.html")
    assert stored["Pilots ask for a new launch"][2] == f"{b}/pilots.html"  # the URL after the redirect
    assert not any("ran" in t for t in stored)  # the page's script never ran
    feeds = {f.url: f for f in web.feeds()}
    assert feeds[f"{b}/rss.xml"].title == "Harbour Times" and feeds[f"{b}/rss.xml"].entries == 2
    assert feeds[f"{b}/atom.xml"].entries == 1 and feeds[f"{b}/atom.xml"].error == "2 of 3 new entries failed"


def test_a_refresh_asks_conditionally_and_fetches_and_encodes_only_new_entries(site, tmp_path, index_settings,
                                                                               fake_encoder):
    web = WebFolder(tmp_path / "web")
    b = site.base
    with Fetcher(timeout=1.0) as fetcher:
        web.refresh(fetcher, [web.add_feed(f"{b}/rss.xml")])
    update_index([web.folder], index_settings, fake_encoder)
    site.requests.clear()
    with Fetcher(timeout=1.0) as fetcher:
        unchanged = web.refresh(fetcher)
    assert unchanged.saved == [] and unchanged.errors == [f"{b}/missing.html: HTTP 404 Not Found"]
    # a 304 for the feed; only the entry that failed before is tried again
    assert [(p, h.get("If-None-Match")) for p, h in site.requests] == [("/rss.xml", '"rss-1"'), ("/missing.html", None)]

    site.add("/lighthouse.html", page("Lighthouse keepers return", "lighthouse keepers"))
    site.add("/rss.xml", rss([("Lighthouse keepers return", f"{b}/lighthouse.html"),
                              ("Ferry timetable extended", f"{b}/ferry.html"), ("Gone", f"{b}/missing.html"),
                              ("Pier repairs approved", f"{b}/pier.html")]),
             kind="application/rss+xml", etag='"rss-2"')
    site.requests.clear()
    with Fetcher(timeout=1.0) as fetcher:
        report = web.refresh(fetcher)
    assert report.saved == ["Lighthouse keepers return"]
    assert sorted(p for p, _ in site.requests) == ["/lighthouse.html", "/missing.html", "/rss.xml"]
    encoded_before = len(fake_encoder.texts)
    update = update_index([web.folder], index_settings, fake_encoder)
    assert update.added == ["Lighthouse keepers return"] and update.unchanged == 2
    new_texts = fake_encoder.texts[encoded_before:]
    assert new_texts and all("lighthouse keepers" in t for t in new_texts)  # only the new entry's passages


@pytest.mark.parametrize("url, reason", [
    ("file:///etc/passwd", "only http:// and https:// URLs"),
    ("javascript:alert(1)", "only http:// and https:// URLs"),
    ("ftp://127.0.0.1/feed", "only http:// and https:// URLs"),
    ("", "only http:// and https:// URLs"),
])
def test_only_http_urls_are_fetched(tmp_path, url, reason):
    with pytest.raises(FetchError, match=reason):
        WebFolder(tmp_path / "web").add_feed(url)
    with Fetcher() as fetcher:
        report = WebFolder(tmp_path / "web").add_page(fetcher, url)
    assert report.saved == [] and reason in report.errors[0]


def test_a_page_given_as_a_feed_and_an_oversized_page_are_refused_by_url(site, tmp_path):
    web = WebFolder(tmp_path / "web")
    b = site.base
    site.add("/big.html", b"<html><body><p>" + b"word " * 400_000 + b"</p></body></html>")
    with Fetcher(timeout=2.0, max_bytes=1_000_000) as fetcher:
        as_feed = web.refresh(fetcher, [web.add_feed(f"{b}/ferry.html")])
        big = web.add_page(fetcher, f"{b}/big.html")
        link = web.add_page(fetcher, f"{b}/pier.html")
    assert as_feed.errors == [f"{b}/ferry.html: is not an RSS or Atom feed (text/html); add a single article "
                              f"with --url"]
    assert big.errors == [f"{b}/big.html: too large (2.0 MB; the limit is 1 MB)"]
    assert link.saved == ["Pier repairs approved"] and not link.errors
    assert [p.name for p in (web.folder / "pages").iterdir()] == [web.page_path(f"{b}/pier.html").name]


def test_cli_index_feed_status_and_refresh_of_everything(site, tmp_path, fake_encoder, monkeypatch, capsys):
    import qa.cli
    from qa.cli import main

    monkeypatch.setattr(qa.cli, "encoder_for", lambda settings: fake_encoder)
    b = site.base
    common = ["--index-dir", str(tmp_path / "index"), "--web-dir", str(tmp_path / "web")]
    assert main([*common, "index", "--feed", f"{b}/rss.xml", "--url", f"{b}/pilots.html"]) == 1  # one 404
    out, err = capsys.readouterr()
    assert "fetched  Ferry timetable extended" in out and "fetched  Pilots ask for a new launch" in out
    assert "3 added" in out and f"error: {b}/missing.html: HTTP 404 Not Found" in err
    assert main([*common, "status"]) == 0
    out = capsys.readouterr().out
    assert f"feeds:       {b}/rss.xml (Harbour Times): 2 entries, last fetched 20" in out
    site.requests.clear()
    assert main([*common, "index"]) == 1  # the remembered feed again; the 404 is still reported
    out, err = capsys.readouterr()
    assert "0 added" in out and "; 0 passages encoded" in out
    assert ("/rss.xml", '"rss-1"') in [(p, h.get("If-None-Match")) for p, h in site.requests]
