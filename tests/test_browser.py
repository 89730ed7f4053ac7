"""The served app in headless Chromium (Debian's, driven by Playwright): ask, read, expand, escape.

Chromium comes from ``make browser`` (apt-get), never ``playwright install``. Set
``QA_SCREENSHOT=docs/screenshot.png`` to also keep the chat screenshot (the README's image).
"""

import os
import shutil
from pathlib import Path

import pytest

from tests.conftest import served_app
from tests.feed_site import site  # noqa: F401 - a fixture

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update"]

pytestmark = [pytest.mark.browser, pytest.mark.model]


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: run `make browser` (apt-get install chromium)")
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


def expect(locator):
    from playwright.sync_api import expect

    return expect(locator)


def ask(page, question):
    box = page.locator("#question textarea")
    box.fill(question)
    box.press("Enter")


def ask_after(page, question):
    """Ask, and return the reply once it is on the page: the last reply on the page may still
    be the one before, and a question typed while it is answered would be lost."""
    replies = page.locator("#chat .bot-row")
    before = replies.count()
    ask(page, question)
    expect(replies).to_have_count(before + 1, timeout=60_000)
    return replies.last


def ask_and_open_sources(page, question, answered, shown):
    """Ask, wait for an answer holding ``answered``, open every source, wait until ``shown``
    is on the page; the chat's locator and its text."""
    ask(page, question)
    page.locator("#chat .bot-row").first.get_by_text(answered, exact=False).first.wait_for(timeout=60_000)
    for group in page.locator("#chat .thought-group").all():
        group.locator(".title").click()
    chat = page.locator("#chat")
    chat.get_by_text(shown, exact=False).first.wait_for()
    return chat, chat.inner_text()


def test_ask_read_expand_and_screenshot(browser, tmp_path):
    with served_app(tmp_path) as url:
        page = browser.new_page(viewport={"width": 1280, "height": 860})
        page.goto(url)
        assert "1 article · 4 passages · model all-MiniLM-L6-v2" in page.locator("#status-line").inner_text()
        ask(page, "Where does IS still hold villages?")
        answer = page.locator("#chat .bot-row").first
        answer.get_by_text("“IS holds dozens of villages in eastern Syria", exact=False).wait_for(timeout=60_000)
        source = page.locator("#chat .thought-group").first
        assert source.locator(".title").inner_text().startswith("[1] A U.S.-backed, Kurdish-led alliance")
        assert not source.locator("mark").is_visible()
        source.locator(".title").click()
        mark = source.locator("mark")
        mark.wait_for(state="visible")
        assert mark.inner_text().startswith("IS holds dozens of villages in eastern Syria")
        page.wait_for_timeout(600)  # let the expand animation finish before the picture
        shot = tmp_path / "chat.png"
        page.screenshot(path=str(shot))
        assert shot.stat().st_size > 10_000
        if os.environ.get("QA_SCREENSHOT"):
            shutil.copy(shot, os.environ["QA_SCREENSHOT"])

        page.get_by_role("tab", name="Articles").click()
        expect(page.locator("#articles")).to_contain_text("2018-05-02")
        page.close()


EVIL = """title: Council <script>window.__xss = 1</script> meeting
date: 2020-01-01
source: <img src=x onerror="window.__xss = 2">

The council met on Tuesday to discuss the <script>window.__xss = 3; alert(3)</script> budget.

Residents complained about potholes on Main Street <img src=x onerror="window.__xss = 4; alert(4)"> and broken lights.
"""


def test_article_markup_is_shown_literally_and_never_runs(browser, tmp_path):
    folder = tmp_path / "articles"
    folder.mkdir()
    (folder / "evil.txt").write_text(EVIL, encoding="utf-8")
    with served_app(tmp_path, articles=[folder]) as url:
        page = browser.new_page(viewport={"width": 1280, "height": 860})
        dialogs = []
        page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
        page.goto(url)
        chat, text = ask_and_open_sources(page, "What did residents complain about on Main Street?", "potholes",
                                          '<img src=x onerror="window.__xss = 4; alert(4)">')
        assert "Council <script>window.__xss = 1</script> meeting" in text
        assert "<script>window.__xss = 3; alert(3)</script>" in text
        assert '<img src=x onerror="window.__xss = 2">' in text

        page.get_by_role("tab", name="Articles").click()
        articles = page.locator("#articles")
        expect(articles).to_contain_text("Council <script>window.__xss = 1</script> meeting")

        page.wait_for_timeout(1000)  # give any injected handler time to fire
        assert page.evaluate("window.__xss") is None
        assert dialogs == []
        assert chat.locator("img[src='x']").count() == 0 and articles.locator("img[src='x']").count() == 0
        page.close()


MARKDOWN = """title: Harbour [board](http://127.0.0.1:9/title-link) meets
date: 2020-02-02

The harbour board met on Monday ![pixel](http://127.0.0.1:9/pixel.png) to discuss dredging \
[the minutes](http://127.0.0.1:9/minutes) and <http://127.0.0.1:9/auto> and http://127.0.0.1:9/bare \
and www.example.invalid and *dredging costs* and `code`.
"""


def test_markdown_in_an_article_loads_links_and_runs_nothing(browser, tmp_path):
    """An image, links, autolinks and emphasis inside article text: shown as written; the page
    requests nothing outside the app and holds no link, image or emphasis made from them."""
    folder = tmp_path / "articles"
    folder.mkdir()
    (folder / "markdown.txt").write_text(MARKDOWN.replace("\\\n", ""), encoding="utf-8")
    with served_app(tmp_path, articles=[folder]) as url:
        page = browser.new_page(viewport={"width": 1280, "height": 860})
        outside = []
        page.on("request", lambda r: outside.append(r.url) if "127.0.0.1:9/" in r.url or "example" in r.url else None)
        page.goto(url)
        chat, text = ask_and_open_sources(page, "What did the harbour board discuss on Monday?", "dredging",
                                          "![pixel](http://127.0.0.1:9/pixel.png)")
        for written in ("[the minutes](http://127.0.0.1:9/minutes)", "<http://127.0.0.1:9/auto>",
                        "http://127.0.0.1:9/bare", "www.example.invalid", "*dredging costs*", "`code`",
                        "Harbour [board](http://127.0.0.1:9/title-link) meets"):
            assert written in text, written
        page.wait_for_timeout(1000)  # give any image time to be requested
        assert outside == []
        for selector in ("a[href*='127.0.0.1:9']", "a[href*='example']", "img[src*='127.0.0.1:9']", "em", "code"):
            assert chat.locator(selector).count() == 0, selector
        page.close()


def test_upload_through_the_page_then_ask_about_it(browser, tmp_path):
    article = tmp_path / "keepers.md"
    article.write_text("# Lighthouse keepers return to Skerryvore\n\ndate: 2019-03-04\n\nThe Northern "
                       "Lighthouse Board said two keepers will live at Skerryvore lighthouse this summer, "
                       "for the first time since it was automated in 1994.\n", encoding="utf-8")
    with served_app(tmp_path) as url:
        page = browser.new_page(viewport={"width": 1280, "height": 860})
        page.goto(url)
        page.get_by_role("tab", name="Articles").click()
        page.locator("#upload input[type=file]").set_input_files(str(article))
        page.get_by_text("keepers.md").first.wait_for()
        page.get_by_role("button", name="Add to index").click()
        result = page.locator("#update-result")
        expect(result).to_contain_text("Added 1: “Lighthouse keepers return to Skerryvore”", timeout=60_000)
        expect(page.locator("#status-line")).to_contain_text("2 articles · 5 passages")
        expect(page.locator("#articles")).to_contain_text("Lighthouse keepers return to Skerryvore")

        page.get_by_role("tab", name="Chat").click()
        ask(page, "When was the Skerryvore lighthouse automated?")
        source = page.locator("#chat .thought-group").first
        expect(source.locator(".title")).to_contain_text("[1] Lighthouse keepers return to Skerryvore",
                                                         timeout=60_000)
        page.close()


def test_a_feed_added_in_the_articles_tab_is_fetched_indexed_and_answered(browser, tmp_path, site):
    with served_app(tmp_path) as url:
        page = browser.new_page(viewport={"width": 1280, "height": 860})
        page.goto(url)
        page.get_by_role("tab", name="Articles").click()
        page.locator("#web-url textarea, #web-url input").first.fill(f"{site.base}/rss.xml")
        page.locator("#add-feed").click()
        result = page.locator("#update-result")
        expect(result).to_contain_text("Added", timeout=60_000)
        expect(result).to_contain_text("Pier repairs approved")
        expect(result).to_contain_text(f"{site.base}/missing.html: HTTP 404 Not Found")
        feeds = page.locator("#feeds")
        expect(feeds).to_contain_text(f"{site.base}/rss.xml")
        expect(feeds).to_contain_text("Harbour Times")
        expect(page.locator("#status-line")).to_contain_text("3 articles")
        page.get_by_role("tab", name="Chat").click()
        chat, text = ask_and_open_sources(page, "What did the harbour board discuss about the pier repairs?",
                                          "pier repairs", "Pier repairs approved")
        assert "[1] Pier repairs approved (2025-03-04)" in text
        assert f"{site.base}/pier.html" in text


def test_an_answer_shows_its_date_chip_and_the_other_outlets_of_a_story(browser, tmp_path):
    from tests.conftest import SEED
    from tests.test_stories import DISTINCT, copies

    folder = tmp_path / "news"
    folder.mkdir()
    shutil.copy(SEED, folder / "seed.txt")
    for name in ("redated", "edited"):
        (folder / f"{name}.txt").write_text(copies()[name], encoding="utf-8")
    for name in ("profile", "analysis"):
        (folder / f"{name}.txt").write_text(DISTINCT[name], encoding="utf-8")
    wire_titles = ("A U.S.-backed", "Final stage of battle against IS begins", "Offensive to oust IS")
    with served_app(tmp_path, articles=[folder]) as url:
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        page.goto(url)
        passages = page.locator("input[type=number]").first
        passages.fill("3")
        passages.press("Enter")
        ask(page, "What did the Deir el-Zour Military Council say last week?")
        chat = page.locator("#chat")
        chip = chat.locator(".date-chip").first
        chip.wait_for(timeout=60_000)
        expect(chip).to_contain_text("searching 2018-05-01 – 2018-05-07")
        expect(chat).to_contain_text("counted back from it: 2018-05-01 – 2018-05-07")
        groups = chat.locator(".thought-group").all()
        assert len(groups) == 3
        wire = [g for g in groups if any(t in g.locator(".title").inner_text() for t in wire_titles)]
        assert len(wire) == 1  # the story is cited from one of its three copies
        wire[0].locator(".title").click()
        expect(wire[0]).to_contain_text("also published by:")
        also = wire[0].inner_text().split("also published by:")[1]
        assert "Daily B" in also or "Herald E" in also
        chat.locator(".bubble-wrap").first.evaluate("e => e.scrollTop = 0")
        page.wait_for_timeout(600)
        shot = tmp_path / "stories.png"
        page.screenshot(path=str(shot))
        if os.environ.get("QA_STORY_SCREENSHOT"):
            shutil.copy(shot, os.environ["QA_STORY_SCREENSHOT"])

        # the window went into the From/To boxes, where it can be edited; a follow-up keeps it
        since, until = page.get_by_role("textbox", name="From date"), page.get_by_role("textbox", name="To date")
        expect(since).to_have_value("2018-05-01")
        expect(until).to_have_value("2018-05-07")
        latest = ask_after(page, "Who leads it?")
        expect(latest.locator(".date-chip")).to_contain_text("searching 2018-05-01 – 2018-05-07", timeout=60_000)
        # a question naming other dates replaces them
        ask(page, "Who is Ahmed Abu Khawla, as profiled on 2018-05-07?")  # the profile is the best match anyway
        expect(since).to_have_value("2018-05-07", timeout=60_000)
        expect(until).to_have_value("2018-05-07")
        # dates typed by the user win over dates in the question
        since.fill("2018-05-05")
        until.fill("2018-05-07")
        ask(page, "What was announced on 2018-05-02?")
        expect(chat.locator(".bot-row").last.locator(".date-chip")).to_contain_text(
            "searching 2018-05-05 – 2018-05-07", timeout=60_000)
