"""Feeds and links, fetched from a real HTTP server on 127.0.0.1 (nothing beyond loopback)."""

from __future__ import annotations

import pytest

from embeddings.feeds import WebFolder
from embeddings.fetch import USER_AGENT, Fetcher, FetchError
from embeddings.indexer import update_index
from embeddings.store import Store
from tests.feed_site import page, rss, site  # noqa: F401 - site is a fixture


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


def test_a_feed_with_last_modified_is_asked_if_modified_since_and_a_failed_refresh_leaves_the_index_alone(
        site, tmp_path, index_settings, fake_encoder):
    web = WebFolder(tmp_path / "web")
    b = site.base
    with Fetcher(timeout=1.0) as fetcher:
        web.refresh(fetcher, [web.add_feed(f"{b}/atom.xml")])
    update_index([web.folder], index_settings, fake_encoder)
    before = titles(index_settings)
    site.requests.clear()
    with Fetcher(timeout=1.0) as fetcher:
        report = web.refresh(fetcher)
    feed_request = [h for p, h in site.requests if p == "/atom.xml"][0]
    assert feed_request.get("If-Modified-Since") == "Wed, 05 Mar 2025 10:00:00 GMT"
    assert report.saved == [] and len(report.errors) == 2  # the two failed entries, tried again and reported
    update = update_index([web.folder], index_settings, fake_encoder)
    assert not update.changed and titles(index_settings) == before


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


def test_qa_watch_refreshes_until_ctrl_c_and_finishes_the_update_under_way(site, tmp_path):
    import os
    import signal
    import subprocess
    import sys

    from tests.conftest import ROOT

    b = site.base
    env = {**os.environ, "QA_INDEX_DIR": str(tmp_path / "index"), "QA_WEB_DIR": str(tmp_path / "web"),
           "HF_HUB_OFFLINE": "1"}
    subprocess.run([sys.executable, "-m", "qa.cli", "index", "--feed", f"{b}/rss.xml"], cwd=ROOT, env=env,
                   capture_output=True, timeout=300)
    site.add("/lighthouse.html", page("Lighthouse keepers return", "lighthouse keepers"))
    site.add("/rss.xml", rss([("Lighthouse keepers return", f"{b}/lighthouse.html")]),
             kind="application/rss+xml", etag='"rss-2"')
    watch = subprocess.Popen([sys.executable, "-u", "-m", "qa.cli", "watch", "--every", "1s"], cwd=ROOT, env=env,
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    lines = []
    for line in watch.stdout:
        lines.append(line)
        if line.startswith("qa watch: refreshing"):
            watch.send_signal(signal.SIGINT)  # during the update: it must finish it first
            break
    out, _ = watch.communicate(timeout=120)
    text = "".join(lines) + out
    assert watch.returncode == 0, text
    assert "fetched  Lighthouse keepers return" in text and "1 added" in text
    assert text.index("1 added") < text.index("qa watch: stopped")
    assert text.count("qa watch: refreshing") == 1
