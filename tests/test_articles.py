"""Loading articles: the seed, each format, and malformed inputs with clear errors."""

import json
from pathlib import Path

import pytest

from embeddings.articles import ArticleError, find_article_files, load_articles
from tests.conftest import ROOT, SEED


def test_seed_date_and_first_sentence_are_parsed():
    [article] = load_articles(SEED)
    assert article.date == "2018-05-02"
    first = ("A U.S.-backed, Kurdish-led alliance announced Tuesday it is launching the final stage "
             "of its battle to expel the Islamic State jihadi group from its desert holdouts in eastern Syria.")
    assert article.body.startswith(first)
    assert article.title == first
    assert "date" not in article.body.split("\n")[0]
    assert article.body.endswith("neighborhood of Yarmuk.")


def test_ids_are_stable_and_hash_follows_content(tmp_path):
    path = tmp_path / "a.txt"
    path.write_text("One article. It has two sentences.", encoding="utf-8")
    first = load_articles(path)[0]
    assert load_articles(path)[0] == first
    path.write_text("One article. It has changed.", encoding="utf-8")
    second = load_articles(path)[0]
    assert second.id == first.id and second.content_hash != first.content_hash


def test_txt_header_lines(tmp_path):
    path = tmp_path / "a.txt"
    path.write_text("title: Ferry back\ndate: 2018-05-03\nsource: Harbour Times\nurl: https://h.example/f\n\n"
                    "The ferry resumed service.\n", encoding="utf-8")
    [a] = load_articles(path)
    assert (a.title, a.date, a.source, a.url, a.body) == (
        "Ferry back", "2018-05-03", "Harbour Times", "https://h.example/f", "The ferry resumed service.")


def test_txt_line_that_only_looks_like_a_header_is_body(tmp_path):
    path = tmp_path / "a.txt"
    path.write_text("Title: a day to remember\nwas the headline everyone saw.", encoding="utf-8")
    [a] = load_articles(path)
    assert a.body.startswith("Title: a day to remember")


def test_markdown_title_from_first_heading(tmp_path):
    path = tmp_path / "a.md"
    path.write_text("# Library opens wing\n\nThe library opened a wing.\n", encoding="utf-8")
    [a] = load_articles(path)
    assert a.title == "Library opens wing"
    assert a.body == "The library opened a wing."


def test_html_main_text_and_metadata(tmp_path):
    path = tmp_path / "a.html"
    path.write_text(
        '<html><head><title>Dam opens - River News</title>'
        '<meta property="og:title" content="Dam opens">'
        '<meta property="og:url" content="https://river.example/dam">'
        '<meta property="og:site_name" content="River News">'
        '<meta name="date" content="2019-07-01"></head><body><nav>Home | Sport</nav>'
        '<article><h1>Dam opens</h1><p>The new dam on the river opened on Monday after six years of '
        'construction work by two companies.</p><p>It will supply power to forty thousand homes in the '
        'valley, the operator said.</p></article><footer>Copyright</footer></body></html>', encoding="utf-8")
    [a] = load_articles(path)
    assert a.title == "Dam opens"
    assert a.date == "2019-07-01"
    assert a.url == "https://river.example/dam"
    assert a.source == "River News"
    assert "forty thousand homes" in a.body
    assert "Home | Sport" not in a.body and "Copyright" not in a.body


def test_jsonl_one_article_per_line(tmp_path):
    path = tmp_path / "a.jsonl"
    rows = [{"text": "First story text.", "title": "First", "date": "2020-01-02", "source": "Wire"},
            {"text": "Second story text.", "url": "https://w.example/2"}]
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n\n", encoding="utf-8")
    first, second = load_articles(path)
    assert (first.title, first.date, first.source) == ("First", "2020-01-02", "Wire")
    assert second.title == "Second story text." and second.url == "https://w.example/2"
    assert first.id != second.id


@pytest.mark.parametrize("name, content, problem", [
    ("empty.txt", b"", "is empty"),
    ("blank.md", b"  \n\n \n", "is empty"),
    ("binary.txt", b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", "binary"),
    ("latin1.txt", "Caf\u00e9 au lait".encode("latin-1"), "not UTF-8"),
    ("baddate.txt", b" date 2018-13-45 Body text here.", "bad date '2018-13-45'"),
    ("baddate2.txt", b"date: yesterday\n\nBody text.", "bad date 'yesterday'"),
    ("bad.jsonl", b'{"text": "ok"}\n{"text": broken}\n', "malformed JSON (Expecting value at column 10)"),
    ("notext.jsonl", b'{"title": "no text"}\n', 'missing "text"'),
    ("list.jsonl", b'[1, 2]\n', "JSON object"),
    ("headeronly.txt", b"title: Only a title\n\n", "no article text"),
    ("page.html", b"<html><body><script>var a = 1;</script></body></html>", "no article text"),
    ("notes.pdf", b"%PDF-1.4", "unsupported file type"),
])
def test_malformed_inputs_name_the_file_and_the_problem(tmp_path, name, content, problem):
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(ArticleError) as err:
        load_articles(path)
    assert name in str(err.value)
    assert problem in str(err.value)


def test_jsonl_error_names_the_line(tmp_path):
    path = tmp_path / "a.jsonl"
    path.write_text('{"text": "fine"}\n{"text": 3}\n', encoding="utf-8")
    with pytest.raises(ArticleError, match=r"a\.jsonl:2"):
        load_articles(path)


def test_too_large_file_is_refused(tmp_path, monkeypatch):
    import embeddings.articles as articles

    monkeypatch.setattr(articles, "MAX_FILE_BYTES", 100)
    path = tmp_path / "big.txt"
    path.write_text("word " * 100, encoding="utf-8")
    with pytest.raises(ArticleError, match="too large"):
        load_articles(path)


def test_the_size_limit_is_stated_as_the_readme_states_it(tmp_path):
    """Issue #11, item 10: the message said 21 MB against the README's 20 MB."""
    import embeddings.articles as articles

    path = tmp_path / "huge.txt"
    with open(path, "wb") as f:
        f.truncate(articles.MAX_FILE_BYTES + 1)
    with pytest.raises(ArticleError, match=r"huge\.txt.*too large \(20\.0 MB.*limit is 20 MB\)"):
        load_articles(path)
    import re

    assert re.search(r"larger than\s+20 MB", (ROOT / "README.md").read_text(encoding="utf-8"))


def test_find_article_files_skips_hidden_and_other_types(tmp_path):
    (tmp_path / "a.txt").write_text("x")
    (tmp_path / "b.pdf").write_text("x")
    (tmp_path / ".hidden").mkdir()
    (tmp_path / ".hidden" / "c.txt").write_text("x")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "d.md").write_text("x")
    assert [p.name for p in find_article_files(tmp_path)] == ["a.txt", "d.md"]
    others = []
    find_article_files(tmp_path, others=others)
    assert others == [tmp_path / "b.pdf"]  # hidden files are not reported


def test_a_utf16_file_is_read(tmp_path):
    path = tmp_path / "utf16.txt"
    path.write_text("title: Café opens\n\nThe café opened on Monday.\n", encoding="utf-16")
    [article] = load_articles(path)
    assert article.title == "Café opens" and "opened on Monday" in article.body


def test_a_fifo_is_named_not_read(tmp_path):
    import os

    fifo = tmp_path / "pipe.txt"
    os.mkfifo(fifo)  # opening it for reading would wait forever
    with pytest.raises(ArticleError, match=r"pipe\.txt: is a FIFO, not a regular file"):
        load_articles(fifo)


def test_a_file_that_cannot_be_read_is_named(tmp_path, monkeypatch):
    path = tmp_path / "locked.txt"
    path.write_text("Some text.", encoding="utf-8")
    real = Path.read_bytes

    def refuse(self):
        if self.name == "locked.txt":
            raise PermissionError(13, "Permission denied", str(self))
        return real(self)

    monkeypatch.setattr(Path, "read_bytes", refuse)
    with pytest.raises(ArticleError, match=r"locked\.txt: cannot be read \(Permission denied\)"):
        load_articles(path)


def test_a_folder_that_cannot_be_listed_is_reported_and_skipped(tmp_path, monkeypatch):
    import os

    from embeddings.articles import find_article_files

    (tmp_path / "open").mkdir()
    (tmp_path / "open" / "a.txt").write_text("A.", encoding="utf-8")
    (tmp_path / "shut").mkdir()
    (tmp_path / "shut" / "b.txt").write_text("B.", encoding="utf-8")
    real = os.scandir

    def scandir(path="."):
        if Path(path).name == "shut":
            raise PermissionError(13, "Permission denied", str(path))
        return real(path)

    monkeypatch.setattr(os, "scandir", scandir)
    problems = []
    assert find_article_files(tmp_path, problems) == [tmp_path / "open" / "a.txt"]
    [problem] = problems
    assert "shut: is a folder that cannot be read (Permission denied); skipped" in str(problem)
