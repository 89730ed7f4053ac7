"""The ``qa`` command end to end, as a user runs it (real model)."""

import json
import os
import subprocess
import sys

import pytest

from tests.conftest import ROOT, SEED

pytestmark = pytest.mark.model


def qa(*args, index_dir, check=True):
    env = {**os.environ, "QA_INDEX_DIR": str(index_dir), "COLUMNS": "80", "HF_HUB_OFFLINE": "1"}
    result = subprocess.run([sys.executable, "-m", "qa.cli", *args], cwd=ROOT, env=env,
                            capture_output=True, text=True, timeout=300)
    if check:
        assert result.returncode == 0, result.stderr
    return result


@pytest.fixture(scope="module")
def index_dir(tmp_path_factory):
    d = tmp_path_factory.mktemp("cli") / "index"
    first = qa("index", str(SEED.parent), index_dir=d)
    assert "1 added" in first.stdout and "passages encoded" in first.stdout
    return d


def test_index_twice_encodes_nothing_the_second_time(index_dir):
    again = qa("index", str(SEED.parent), index_dir=index_dir)
    assert "0 added, 0 updated, 0 removed, 1 unchanged; 0 passages encoded" in again.stdout


def test_status(index_dir):
    out = qa("status", index_dir=index_dir).stdout
    assert "articles:    1" in out and "all-MiniLM-L6-v2" in out and "last update:" in out


def test_ask_is_readable_in_80_columns(index_dir):
    out = qa("ask", "Where does IS still hold villages?", "-k", "3", index_dir=index_dir).stdout
    lines = out.splitlines()
    assert all(len(line) <= 80 for line in lines), max(lines, key=len)
    assert lines[0].startswith("“IS holds dozens of villages")
    assert "Sources:" in lines
    numbers = [line.split("]")[0] + "]" for line in lines if line.startswith("[")]
    assert numbers == ["[1]", "[2]", "[3]"]
    assert "»IS holds dozens of villages" in " ".join(out.split())
    assert "(2018-05-02)" in out


def test_ask_json(index_dir):
    data = json.loads(qa("ask", "Who heads the Deir el-Zour Military Council?", "--json",
                         index_dir=index_dir).stdout)
    assert data["covered"] is True
    top = data["sources"][0]
    assert "Ahmed Abu Khawla" in top["text"] and top["date"] == "2018-05-02"
    assert all(h["text"] == top["text"][h["start"]:h["end"]] for h in top["highlights"])


def test_ask_off_topic_says_not_covered(index_dir):
    out = qa("ask", "How do I bake sourdough bread?", index_dir=index_dir).stdout
    assert out.startswith("The indexed articles don't seem to cover this.")
    assert "Closest matches:" in out


def test_ask_bad_date_filter_is_a_clear_error(index_dir):
    result = qa("ask", "villages", "--since", "May 2018", index_dir=index_dir, check=False)
    assert result.returncode == 2 and "bad date 'May 2018'" in result.stderr


def test_missing_index_tells_what_to_run(tmp_path):
    result = qa("ask", "anything", index_dir=tmp_path / "none", check=False)
    assert result.returncode == 2 and "qa index seeds/" in result.stderr


def test_bad_file_exit_code_and_message(tmp_path):
    bad = tmp_path / "articles"
    bad.mkdir()
    (bad / "good.txt").write_text("A good article about bridges.", encoding="utf-8")
    (bad / "bad.txt").write_bytes(b"\x89PNG\x00\x01bad")  # NUL bytes, no UTF-16 byte-order mark
    result = qa("index", str(bad), index_dir=tmp_path / "index", check=False)
    assert result.returncode == 1
    assert "bad.txt" in result.stderr and "binary" in result.stderr
    assert "1 added" in result.stdout


def test_files_of_other_types_in_a_folder_are_named_not_dropped_silently(tmp_path):
    folder = tmp_path / "articles"
    folder.mkdir()
    (folder / "good.txt").write_text("A good article about bridges.", encoding="utf-8")
    for name in ("report.pdf", "table.csv", "notes.docx", "data.json"):
        (folder / name).write_bytes(b"x")
    result = qa("index", str(folder), index_dir=tmp_path / "index")
    assert "1 added" in result.stdout
    note = [line for line in result.stderr.splitlines() if line.startswith("note:")]
    assert note == [f"note: {folder}: 4 files not read (data.json, notes.docx, report.pdf and 1 more): "
                    "qa reads .txt, .md, .html, .htm, .jsonl (convert them to one of these to index them)"]
    refresh = qa("index", index_dir=tmp_path / "index")  # the remembered folder: said once is enough
    assert "1 unchanged" in refresh.stdout and "note:" not in refresh.stderr


def test_help_is_fast_and_does_not_import_torch():
    code = "import sys; from qa.cli import main\ntry: main(['--help'])\nexcept SystemExit: pass\n" \
           "assert 'torch' not in sys.modules and 'gradio' not in sys.modules and 'faiss' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], cwd=ROOT, check=True, capture_output=True)


@pytest.mark.parametrize("host, auth, flag, budget, web_rebuild", [
    ("127.0.0.1", None, [], 20.0, True),           # the local user: uploads metered, rebuild allowed
    ("0.0.0.0", None, [], 20.0, False),            # anyone on the network: metered, no rebuild
    ("0.0.0.0", "ann:secret", [], None, True),     # a login: trusted
    ("0.0.0.0", None, ["--upload-budget", "0"], 0.0, False),
])
def test_serve_bounds_what_a_user_without_a_login_can_make_the_server_do(monkeypatch, tmp_path, host, auth, flag,
                                                                         budget, web_rebuild):
    import app
    from qa.cli import main

    served = {}
    monkeypatch.setattr(app, "serve", lambda settings, **kw: served.update(settings=settings, **kw))
    monkeypatch.delenv("QA_UPLOAD_BUDGET", raising=False)
    if auth:
        monkeypatch.setenv("QA_AUTH", auth)
    else:
        monkeypatch.delenv("QA_AUTH", raising=False)
    assert main(["--index-dir", str(tmp_path), "serve", "--host", host, *flag]) == 0
    assert served["settings"].upload_budget_mb == budget
    assert served["settings"].web_rebuild is web_rebuild


def test_ask_piped_into_a_reader_that_stops_early_ends_quietly(index_dir):
    """`qa ask ... | head -1` printed a BrokenPipeError traceback."""
    env = {**os.environ, "QA_INDEX_DIR": str(index_dir), "HF_HUB_OFFLINE": "1"}
    ask = subprocess.Popen([sys.executable, "-m", "qa.cli", "ask", "Where does IS still hold villages?", "-k", "5"],
                           cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                           bufsize=1)
    ask.stdout.close()  # the reader is gone before the answer is written, as with `head -1`
    assert ask.wait(timeout=120) == 0
    assert "Traceback" not in ask.stderr.read()


def test_eval_names_a_missing_off_topic_file(index_dir, tmp_path):
    squad = tmp_path / "tiny.json"
    squad.write_text(json.dumps({"data": []}))
    result = qa("eval", "squad", str(squad), "--off-topic", str(tmp_path / "nowhere.json"), index_dir=index_dir, check=False)
    assert result.returncode == 2
    assert "nowhere.json: no such file" in result.stderr
