"""Uploads: names sanitised, size-limited, checked before anything is written."""

import pytest

from embeddings.articles import ArticleError
from embeddings.uploads import accept_upload, safe_filename

GOOD = "title: Harbour news\ndate: 2019-01-02\n\nThe harbour reopened after the storm.\n"


@pytest.mark.parametrize("name, expected", [
    ("report.txt", "report.txt"),
    ("../../etc/passwd.txt", "passwd.txt"),
    ("C:\\Users\\me\\My Report (final).MD", "My_Report_final.md"),
    (".hidden.html", "hidden.html"),
    ("Ünïcödé ärticle.txt", "Unicode_article.txt"),
    ("北京.txt", "article.txt"),
    ("<script>alert(1)</script>.jsonl", "script.jsonl"),  # the "/" ends a folder name
    ("a" * 300 + ".txt", "a" * 80 + ".txt"),
])
def test_safe_filename(name, expected):
    assert safe_filename(name) == expected


@pytest.mark.parametrize("name", ["notes.pdf", "archive.tar.gz", "README", "evil.txt.exe"])
def test_unsupported_types_are_refused(name):
    with pytest.raises(ArticleError, match="unsupported file type"):
        safe_filename(name)


def write(path, data):
    path.write_bytes(data if isinstance(data, bytes) else data.encode("utf-8"))
    return path


def test_accepted_upload_is_copied_under_a_safe_name(tmp_path):
    src = write(tmp_path / "in.txt", GOOD)
    saved = accept_upload(src, "../Harbour news!.txt", tmp_path / "uploads")
    assert saved == tmp_path / "uploads" / "Harbour_news.txt"
    assert saved.read_text(encoding="utf-8") == GOOD


def test_a_staging_folder_left_by_a_killed_upload_is_removed_by_the_next_upload(tmp_path):
    import os
    import time

    folder = tmp_path / "uploads"
    abandoned, live = folder / ".incoming-abandoned", folder / ".incoming-live"
    for staging in (abandoned, live):
        staging.mkdir(parents=True)
        (staging / "half-copied.txt").write_text("The harbour reo", encoding="utf-8")
    two_hours_ago = time.time() - 7200
    os.utime(abandoned, (two_hours_ago, two_hours_ago))
    accept_upload(write(tmp_path / "in.txt", GOOD), "news.txt", folder)
    assert not abandoned.exists()
    assert live.exists(), "a staging folder seconds old may belong to an upload under way"
    assert sorted(p.name for p in folder.iterdir()) == [".incoming-live", "news.txt"]


def test_same_content_is_reused_and_other_content_gets_a_new_name(tmp_path):
    folder = tmp_path / "uploads"
    first = accept_upload(write(tmp_path / "a", GOOD), "news.txt", folder)
    again = accept_upload(write(tmp_path / "b", GOOD), "news.txt", folder)
    other = accept_upload(write(tmp_path / "c", GOOD.replace("storm", "flood")), "news.txt", folder)
    assert again == first
    assert other.name == "news-2.txt"
    assert sorted(p.name for p in folder.iterdir()) == ["news-2.txt", "news.txt"]


@pytest.mark.parametrize("data, problem", [
    ("", "is empty"),
    (b"\x00\x01\x02binary", "binary"),
    (b"caf\xe9 au lait", "not UTF-8"),
    ("title: Only a header\n\n", "no article text"),
])
def test_bad_uploads_are_refused_by_their_own_name_and_nothing_is_written(tmp_path, data, problem):
    folder = tmp_path / "uploads"
    folder.mkdir()
    with pytest.raises(ArticleError, match=problem) as info:
        accept_upload(write(tmp_path / "tmp123", data), "my article.txt", folder)
    assert str(info.value).startswith("my article.txt: ")
    assert list(folder.iterdir()) == []


def test_malformed_jsonl_is_refused(tmp_path):
    lines = '{"title": "A", "text": "Fine."}\n{not json\n'
    with pytest.raises(ArticleError, match=r"^feed.jsonl:2: malformed JSON"):
        accept_upload(write(tmp_path / "x", lines), "feed.jsonl", tmp_path / "uploads")


def test_oversized_upload_is_refused(tmp_path):
    src = write(tmp_path / "big.txt", "word " * 300)
    with pytest.raises(ArticleError, match="too large"):
        accept_upload(src, "big.txt", tmp_path / "uploads", max_bytes=1000)


def test_the_hourly_budget_refuses_what_does_not_fit_and_frees_up_as_the_hour_rolls():
    from embeddings.uploads import UploadBudget, UploadRefused

    now = [1000.0]
    budget = UploadBudget(1.0, clock=lambda: now[0])  # 1 MB an hour
    budget.check(600_000)
    budget.spend(600_000)
    now[0] += 1200
    budget.check(400_000)
    budget.spend(400_000)
    with pytest.raises(UploadRefused, match=r"accepts 1 MB of uploads an hour and 1\.0 MB came in during the "
                                            r"last hour.*try again in 40 minutes.*--upload-budget"):
        budget.check(1)
    now[0] += 2400  # the first upload is an hour old
    budget.check(600_000)
    with pytest.raises(UploadRefused):
        budget.check(600_001)


def test_no_budget_means_no_limit_and_zero_means_no_uploads():
    from embeddings.uploads import UploadBudget, UploadRefused

    UploadBudget(None).check(10**12)
    with pytest.raises(UploadRefused, match="does not accept uploads"):
        UploadBudget(0).check(1)
