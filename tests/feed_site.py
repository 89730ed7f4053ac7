"""A real HTTP server on 127.0.0.1 serving RSS and Atom feeds and article pages (the ``site``
fixture): a 404, a redirect, a page that times out, a PDF. Nothing beyond loopback."""

from __future__ import annotations

import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

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
        self.modified: dict[str, str] = {}  # Last-Modified, for servers that send no ETag

    def add(self, path: str, body: bytes, kind: str = "text/html; charset=utf-8", status: int = 200,
            etag: str | None = None, modified: str | None = None) -> None:
        self.routes[path] = (status, kind, body)
        if etag:
            self.etags[path] = etag
        if modified:
            self.modified[path] = modified


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
            etag, modified = state.etags.get(self.path), state.modified.get(self.path)
            if (etag and self.headers.get("If-None-Match") == etag) or (
                    modified and self.headers.get("If-Modified-Since") == modified):
                self.send_response(304)
                self.end_headers()
                return
            self.send_response(status)
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(body)))
            if etag:
                self.send_header("ETag", etag)
            if modified:
                self.send_header("Last-Modified", modified)
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
              kind="application/atom+xml", modified="Wed, 05 Mar 2025 10:00:00 GMT")
    yield state
    server.shutdown()
    server.server_close()
