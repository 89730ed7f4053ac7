"""The chat app: escaping of article text, and the served app through gradio_client."""

import pytest

from app import render_answer, searched_queries
from embeddings.store import Filters, StoredPassage
from qa.answer import Answer, Source
from qa.retrieve import Hit
from tests.conftest import served_app


def passage(text, title="T <b>bold</b>"):
    return StoredPassage(1, "a", 0, 0, len(text), text, title, "2020-01-01", "Src", "https://x.example/?a=1&b=2", "/p")


def test_article_text_is_escaped():
    text = 'Hello <script>alert(1)</script> and <img src=x onerror="alert(2)"> end.'
    hit = Hit(passage(text), 1.0, 0.9, 1.0, (0.9,))
    answer = Answer("q", "q", True, "“Hello <script>” [1]", (Source(1, hit, ((6, 31),)),))
    rendered = render_answer(answer)
    joined = " ".join(m["content"] for m in rendered) + " ".join(
        m.get("metadata", {}).get("title", "") for m in rendered)
    assert "<script>" not in joined and "<img" not in joined
    assert "&#60;script&#62;alert(1)&#60;/script&#62;" in joined
    assert "<mark>&#60;script&#62;alert(1)&#60;/script&#62;</mark>" in joined
    assert "https&#58;//x.example/?a=1&#38;b=2" in joined  # not a link
    assert "T &#60;b&#62;bold" in joined


def test_markdown_in_article_text_is_shown_as_written():
    from app import as_text

    text = ("![p](http://127.0.0.1:9/pixel.png) [site](http://x.example) <http://y.example> www.z.example "
            "a@b.example *em* _em_ `code` ~~gone~~ $x^2$ | table |\n# Heading\n- item\n1. first\n---\n===")
    shown = as_text(text)
    for markup in ("![", "](", "[site]", "<http", "://", "www.", "@", "*em*", "_em_", "`", "~~", "$x",
                   "| table", "\n#", "\n-", "\n1.", "\n---", "\n="):
        assert markup not in shown, markup
    import html as html_module

    assert html_module.unescape(shown) == text  # shown exactly as written


def test_follow_up_queries_are_replayed_from_history():
    queries = searched_queries(["Which alliance launched the final stage against IS?", "Who is backing them?"])
    assert queries[0] == "Which alliance launched the final stage against IS?"
    assert "alliance" in queries[1] and queries[1].endswith("Who is backing them?")


def ask(client, question, k=3, since="", until="", sources=()):
    return client.predict(question, k, since, until, list(sources), api_name="/ask")


@pytest.mark.model
def test_served_app_answers_uploads_and_refuses_through_gradio_client(tmp_path):
    from gradio_client import Client, handle_file

    with served_app(tmp_path) as url:
        client = Client(url, verbose=False)
        reply = ask(client, "Where does IS still hold villages?")
        assert reply[0]["content"].startswith("“IS holds dozens of villages")
        assert reply[1]["metadata"]["title"].startswith("[1] A U.S.-backed, Kurdish-led alliance")
        assert "<mark>IS holds dozens of villages" in reply[1]["content"]
        # no letter in it: not folded into the question before as a follow-up
        assert ask(client, "\x00 \u200b?") == [{"role": "assistant", "content": "Please type a question."}]
        assert client.predict(" \x01", api_name="/ask_json") == {"error": "the question is empty"}

        article = tmp_path / "skerryvore keepers.txt"
        article.write_text("title: Lighthouse keepers return to Skerryvore\ndate: 2019-03-04\n"
                           "source: Test Gazette\n\nThe Northern Lighthouse Board said on Monday that two "
                           "keepers will live at Skerryvore lighthouse again this summer, for the first time "
                           "since it was automated in 1994.\n", encoding="utf-8")
        result, status, table, *_ = client.predict([handle_file(str(article))], "", api_name="/add_articles")
        assert "**Added** 1: “Lighthouse keepers return to Skerryvore”" in result
        assert status.startswith("2 articles · 5 passages")
        assert ["Lighthouse keepers return to Skerryvore", "2019-03-04", "Test Gazette", 1] in table["data"]
        assert (tmp_path / "uploads" / "skerryvore_keepers.txt").exists()

        reply = ask(client, "When was the Skerryvore lighthouse automated?")
        assert reply[1]["metadata"]["title"] == "[1] Lighthouse keepers return to Skerryvore (2019-03-04)"
        assert "automated in 1994" in reply[0]["content"]
        only_2018 = ask(client, "When was the Skerryvore lighthouse automated?", until="2018-12-31")
        assert all("Skerryvore (2019" not in m.get("metadata", {}).get("title", "") for m in only_2018)

        off = ask(client, "How do I bake sourdough bread?")
        assert off[0]["content"].startswith("The indexed articles don")

        bad, *_ = client.predict([handle_file(str(_binary(tmp_path)))], "", api_name="/add_articles")
        assert "photo.txt: looks like a binary file" in bad
        assert client.predict("", api_name="/status")[0].startswith("2 articles · 5 passages")


def _binary(tmp_path):
    path = tmp_path / "photo.txt"
    path.write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00")
    return path


@pytest.mark.model
def test_login_is_required_when_auth_is_set(tmp_path):
    from gradio_client import Client

    with served_app(tmp_path, {"QA_AUTH": "reader:s3cret"}) as url:
        with pytest.raises(Exception):
            ask(Client(url, verbose=False), "Where does IS still hold villages?")
        client = Client(url, auth=("reader", "s3cret"), verbose=False)
        assert ask(client, "Where does IS still hold villages?")[0]["content"].startswith("“IS holds")


def test_filters_from_the_sidebar():
    from app import parse_filters

    assert parse_filters("", " ", None) == Filters()
    assert parse_filters("2018-01-01", "2018-12-31", ["AFP"]) == Filters("2018-01-01", "2018-12-31", ("AFP",))
    with pytest.raises(ValueError, match="From date “2018-13-01” is not a date"):
        parse_filters("2018-13-01", "", [])
    with pytest.raises(ValueError, match="is empty"):
        parse_filters("2019-01-01", "2018-01-01", [])


def test_status_line_and_update_report_are_escaped():
    from app import report_markdown, status_line
    from embeddings.indexer import UpdateReport
    from qa.live_index import Status

    line = status_line(Status(1, 4, "all-MiniLM-L6-v2", "2026-11-24T16:02:11+00:00", True))
    assert line == ("1 article · 4 passages · model all-MiniLM-L6-v2 · updated 2026-11-24 16:02 UTC"
                    " · an update is running")
    report = UpdateReport(added=["<img src=x onerror=alert(1)>"], passages_encoded=1,
                          errors=["<b>x.txt</b>: is empty"])
    text = report_markdown(report)
    assert "<img" not in text and "&#60;img src=x onerror=alert(1)&#62;" in text
    assert "&#60;b&#62;x.txt&#60;/b&#62;: is empty" in text and "1 passage encoded" in text


def test_a_served_app_under_terminal_updates_keeps_its_log_and_handles_bounded(tmp_path):
    """Issue #11, item 7, end to end: `qa index` in a terminal while `qa serve` answers."""
    import os
    import shutil
    import subprocess
    import sys
    from pathlib import Path

    from gradio_client import Client

    from tests.conftest import ROOT, SEED

    folder = tmp_path / "articles"
    folder.mkdir()
    shutil.copy(SEED, folder)
    index = tmp_path / "index"
    env = {**os.environ, "QA_INDEX_DIR": str(index), "HF_HUB_OFFLINE": "1"}
    with served_app(tmp_path, articles=[folder]) as url:
        client = Client(url, verbose=False, ssl_verify=False)
        handles = []
        for n, place in enumerate(["Skerryvore", "Ardnamurchan", "Muckle Flugga"]):
            (folder / f"keepers-{n}.txt").write_text(
                f"title: Keepers return to {place}\ndate: 2019-03-0{n + 1}\n\nTwo keepers will live at the "
                f"{place} lighthouse again this summer, for the first time since it was automated.\n" * 3,
                encoding="utf-8")
            subprocess.run([sys.executable, "-m", "qa.cli", "index", str(folder)], cwd=ROOT, env=env, check=True,
                           capture_output=True, timeout=300)
            assert (index / "store.sqlite-wal").stat().st_size > 0  # pinned by the server's snapshot
            reply = ask(client, f"Who will live at the {place} lighthouse again?")
            assert f"Keepers return to {place}" in reply[1]["metadata"]["title"]
            assert (index / "store.sqlite-wal").stat().st_size == 0  # checkpointed once it switched
            store = str((index / "store.sqlite").resolve())
            fds = Path(f"/proc/{url.pid}/fd")
            handles.append(sum(1 for fd in fds.iterdir() if os.readlink(fd).startswith(store)))
        assert len(set(handles)) == 1, handles  # retired snapshots are closed, not collected


def test_ask_json_and_ask_carry_the_story_grouping_and_the_date_window(tmp_path):
    import shutil

    from gradio_client import Client

    from tests.conftest import SEED
    from tests.test_stories import DISTINCT, copies

    folder = tmp_path / "news"
    folder.mkdir()
    shutil.copy(SEED, folder / "seed.txt")
    for name in ("redated", "edited"):
        (folder / f"{name}.txt").write_text(copies()[name], encoding="utf-8")
    (folder / "profile.txt").write_text(DISTINCT["profile"], encoding="utf-8")
    with served_app(tmp_path, articles=[folder]) as url:
        client = Client(url, verbose=False, ssl_verify=False)
        data = client.predict("Who heads the Deir el-Zour Military Council? What happened last week?", 5, "", "",
                              [], api_name="/ask_json")
        assert data["date_window"]["phrase"] == "last week" and data["date_window"]["shifted_from"]
        assert data["date_window"]["until"] == "2018-05-07"  # counted back from the newest article
        wire = [s for s in data["sources"] if s["also_published_by"]]
        assert wire and {m["source"] for m in wire[0]["also_published_by"]} | {wire[0]["source"]} == {
            None, "Daily B", "Herald E"}
        cited_from = {}
        for s in data["sources"]:
            cited_from.setdefault(s["story"], set()).add(s["article_id"])
        assert all(len(articles) == 1 for articles in cited_from.values())  # each story from one copy
        reply = ask(client, "Who heads the Deir el-Zour Military Council? What happened last week?")
        assert "searching 2018-05-01 – 2018-05-07</span>" in reply[0]["content"]
        lines = [m["content"].split("also published by: ")[1] for m in reply[1:] if "also published by: " in m["content"]]
        assert lines and ("Daily B" in lines[0] or "Herald E" in lines[0])  # the other copies, by outlet
