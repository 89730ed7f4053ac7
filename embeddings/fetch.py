"""Fetch feeds and article pages over HTTP(S), as a careful client should.

Only ``http`` and ``https`` URLs (redirects included); a timeout on connecting and on every
read; a size cap per response, enforced while streaming; a User-Agent that says what is
asking; conditional requests (``ETag`` / ``Last-Modified``) so an unchanged feed costs one
small response. Every failure is a ``FetchError`` naming the URL and the reason, so a caller
reports it and goes on with the rest. Nothing fetched is ever executed: feeds are parsed by
feedparser and pages reduced to text by trafilatura.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlsplit

USER_AGENT = "news-qa/0.1 (a question-answering index of news articles; feed and page fetcher)"
TIMEOUT_S = 10.0
MAX_BYTES = 5 * 1024 * 1024
HTML_TYPES = ("text/html", "application/xhtml+xml")


class FetchError(Exception):
    """A URL that could not be fetched; ``str()`` is ``"URL: reason"``."""

    def __init__(self, url: str, reason: str):
        super().__init__(f"{url}: {reason}")
        self.url = url
        self.reason = reason


@dataclass(frozen=True)
class Response:
    url: str                  # after redirects
    content: bytes
    content_type: str         # e.g. "text/html", without parameters
    etag: str | None
    last_modified: str | None
    not_modified: bool = False


def check_url(url: str) -> str:
    """``url`` stripped, or ``FetchError`` when it is not an absolute http(s) URL."""
    url = (url or "").strip()
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise FetchError(url or "(empty)", "only http:// and https:// URLs can be fetched")
    return url


class Fetcher:
    """One HTTP client for a refresh (connections are reused).

    Args:
        timeout: seconds allowed to connect and for each read.
        max_bytes: responses larger than this are abandoned.
    """

    def __init__(self, timeout: float = TIMEOUT_S, max_bytes: int = MAX_BYTES):
        import httpx

        self.max_bytes = max_bytes
        self._client = httpx.Client(timeout=timeout, follow_redirects=True, max_redirects=5,
                                    headers={"User-Agent": USER_AGENT}, verify=True, trust_env=False)

    def __enter__(self) -> "Fetcher":
        return self

    def __exit__(self, *exc) -> None:
        self._client.close()

    def get(self, url: str, etag: str | None = None, last_modified: str | None = None,
            accept: str = "*/*") -> Response:
        """Fetch ``url``; with ``etag``/``last_modified`` a 304 gives ``not_modified=True``."""
        import httpx

        url = check_url(url)
        headers = {"Accept": accept}
        if etag:
            headers["If-None-Match"] = etag
        if last_modified:
            headers["If-Modified-Since"] = last_modified
        try:
            with self._client.stream("GET", url, headers=headers) as r:
                final = str(r.url)
                if urlsplit(final).scheme not in ("http", "https"):
                    raise FetchError(url, f"redirected to a non-http URL ({final})")
                if r.status_code == 304:
                    return Response(final, b"", "", etag, last_modified, not_modified=True)
                if r.status_code >= 400:
                    raise FetchError(url, f"HTTP {r.status_code} {r.reason_phrase}".rstrip())
                declared = r.headers.get("content-length")
                if declared and declared.isdigit() and int(declared) > self.max_bytes:
                    raise FetchError(url, f"too large ({int(declared) / 1e6:.1f} MB; the limit is "
                                          f"{self.max_bytes / 1e6:g} MB)")
                body = bytearray()
                for chunk in r.iter_bytes():
                    body += chunk
                    if len(body) > self.max_bytes:
                        raise FetchError(url, f"too large (over {self.max_bytes / 1e6:g} MB)")
                kind = r.headers.get("content-type", "").split(";")[0].strip().lower()
                return Response(final, bytes(body), kind, r.headers.get("etag"), r.headers.get("last-modified"))
        except httpx.TimeoutException:
            raise FetchError(url, "timed out") from None
        except httpx.TooManyRedirects:
            raise FetchError(url, "too many redirects") from None
        except httpx.UnsupportedProtocol as e:
            raise FetchError(url, f"redirected to an unsupported URL ({e})") from None
        except httpx.HTTPError as e:
            raise FetchError(url, f"could not be fetched ({type(e).__name__}: {e})") from None
