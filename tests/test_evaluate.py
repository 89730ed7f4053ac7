"""The evaluation harness, and the retrieval regression guard on 300 SQuAD questions."""

import json
import re

import pytest

from qa.evaluate import contains_answer, evaluate_squad, format_table, load_squad, normalize_answer, save_report
from qa.settings import Settings
from tests.conftest import ROOT, SQUAD

OFF_TOPIC = ROOT / "tests" / "data" / "off_topic.json"  # 40 hand-written questions no SQuAD article answers

TINY = {"data": [
    {"title": "Ferry_service", "paragraphs": [
        {"context": "The island ferry resumed service on Thursday after a strike by the crew.",
         "qas": [{"id": "1", "question": "When did the ferry resume service?", "answers": [{"text": "Thursday"}]}]},
        {"context": "Passengers queued at dawn for the first crossing to the island.",
         "qas": [{"id": "2", "question": "When did passengers queue?", "answers": [{"text": "at dawn"}]}]}]},
    {"title": "Library", "paragraphs": [
        {"context": "The city library opened a new wing with a makerspace costing 4 million dollars.",
         "qas": [{"id": "3", "question": "How much did the library wing cost?",
                  "answers": [{"text": "4 million dollars"}, {"text": "$4 million"}]}]}]},
]}


def test_normalize_answer_follows_squad():
    assert normalize_answer("The  Eiffel Tower!") == "eiffel tower"
    assert normalize_answer("an Apple, a day") == "apple day"


def test_answers_match_whole_tokens_only():
    assert not contains_answer("Indiana Jones rode on.", [normalize_answer("India")])
    assert not contains_answer("A trip to Vietnam.", [normalize_answer("Etna")])
    assert contains_answer("The capital of India is Delhi.", [normalize_answer("India")])
    assert contains_answer("At the Eiffel Tower!", [normalize_answer("The Eiffel Tower")])
    assert contains_answer("It cost $4 million.", [normalize_answer("4 million")])
    assert contains_answer("“Trump won,” she said. [1]", [normalize_answer("Trump")])  # curly quotes are punctuation
    assert not contains_answer("Iranian officials met.", [normalize_answer("Iran")])
    # punctuation ends a token, as DPR's has_answer tokenizes: a possessive or a hyphenated pair holds the name
    assert contains_answer("Taiwan’s new president spoke.", [normalize_answer("Taiwan")])
    assert contains_answer("The Biden-Harris campaign", [normalize_answer("Harris")])
    assert contains_answer("It was the U.S. Open.", [normalize_answer("U.S. Open")])
    assert not contains_answer("It cost 1,000 dollars.", [normalize_answer("1")])


def test_answer_line_accuracy_counts_what_the_one_line_answer_quotes(tmp_path, fake_encoder):
    """Q2's gold answer is in the ferry paragraph, ranked second: it counts for ansR@5 but
    not for the answer line, which quotes the top passage."""
    tiny = json.loads(json.dumps(TINY))
    tiny["data"][0]["paragraphs"][1]["qas"][0]["answers"] = [{"text": "Thursday"}]
    path = tmp_path / "tiny.json"
    path.write_text(json.dumps(tiny))
    # (the fake encoder's cosines are too low for "covered": take the threshold out)
    report = evaluate_squad(path, Settings(min_evidence=0.0), fake_encoder, methods=("lexical",), progress=False)
    lexical = report["results"][0]
    assert lexical["recall"][5] == 1.0
    assert lexical["answer_line"] == 2 / 3
    assert "answer" in format_table(report)


def test_the_answer_line_is_judged_without_its_citation_number(tmp_path, fake_encoder):
    """A gold answer "1" is not found in a quote that holds no "1" but is cited "[1]"."""
    tiny = json.loads(json.dumps(TINY))
    tiny["data"][1]["paragraphs"][0]["qas"][0]["answers"] = [{"text": "1"}]
    path = tmp_path / "tiny.json"
    path.write_text(json.dumps(tiny))
    report = evaluate_squad(path, Settings(min_evidence=0.0), fake_encoder, methods=("lexical",), progress=False)
    assert report["results"][0]["answer_line"] == 2 / 3  # the two ferry questions, not the library one


def test_off_topic_questions_count_as_refused_only_when_not_covered(tmp_path, fake_encoder):
    path = tmp_path / "tiny.json"
    path.write_text(json.dumps(TINY))
    strangers = {"data": [{"title": "Elsewhere", "paragraphs": [{"context": "", "qas": [
        {"id": "a", "question": "How do I bake sourdough bread?", "answers": []},  # no word indexed: refused
        {"id": "b", "question": "What did the island ferry crew strike over?", "answers": []},  # looks covered
        {"id": "c", "question": "When did the ferry resume service?", "answers": [{"text": "Thursday"}]},  # answered here
    ]}]}]}
    off = tmp_path / "off.json"
    off.write_text(json.dumps(strangers))
    report = evaluate_squad(path, Settings(), fake_encoder, methods=("lexical",), progress=False, off_topic=off)
    assert report["off_topic"]["questions"] == 3
    assert report["off_topic"]["considered"] == 2, "a question a top-3 passage answers is left out"
    assert report["off_topic"]["refused"] == 0.5
    assert "off-topic (off.json): 0.500 refused of 2 questions (1 left out" in format_table(report)
    assert "off_topic" not in evaluate_squad(path, Settings(), fake_encoder, methods=("lexical",), progress=False)


def test_a_question_is_asked_as_of_its_date(tmp_path, fake_encoder):
    news = {"data": [
        {"title": "Ferry news", "url": "https://news.example/ferry", "date": "2024-01-10", "paragraphs": [
            {"context": "The island ferry resumed service on Thursday after a strike by the crew.", "qas": [
                {"id": "before", "question": "When did the ferry resume service?", "asked_on": "2024-01-05",
                 "answers": [{"text": "Thursday"}]},
                {"id": "after", "question": "When did the ferry resume service?", "asked_on": "2024-01-12",
                 "answers": [{"text": "Thursday"}]}]}]},
        {"title": "Ferry news", "url": "https://news.example/other", "date": "2024-01-02", "paragraphs": [
            {"context": "Ferry tickets will cost more from March.", "qas": []}]}]}
    path = tmp_path / "news.json"
    path.write_text(json.dumps(news))
    lines, questions = load_squad(path)
    assert len(lines) == 2, "articles with the same title are keyed by url, not merged"
    assert [q.asked_on for q in questions] == ["2024-01-05", "2024-01-12"]
    report = evaluate_squad(path, Settings(), fake_encoder, methods=("lexical",), progress=False)
    assert report["results"][0]["ranks"] == [None, 1], "not yet published on 2024-01-05"


def test_load_squad_keeps_an_even_subset(tmp_path):
    path = tmp_path / "tiny.json"
    path.write_text(json.dumps(TINY))
    lines, questions = load_squad(path)
    assert len(lines) == 2 and [q.id for q in questions] == ["1", "2", "3"]
    body = json.loads(lines[0])["text"]
    assert body.split("\n\n")[1].startswith("Passengers")
    assert [q.id for q in load_squad(path, limit=2)[1]] == ["1", "2"]


def test_harness_end_to_end_with_fake_encoder(tmp_path, fake_encoder):
    path = tmp_path / "tiny.json"
    path.write_text(json.dumps(TINY))
    report = evaluate_squad(path, Settings(), fake_encoder, progress=False)
    by_method = {r["method"]: r for r in report["results"]}
    assert set(by_method) == {"lexical", "dense", "rrf", "hybrid"}
    assert by_method["lexical"]["recall"][1] == 1.0  # each question shares its words with its paragraph
    for r in report["results"]:
        assert 0 <= r["recall"][1] <= r["recall"][5] <= r["recall"][20] <= 1
    assert "ansR@1" in format_table(report)
    plot = save_report(report, tmp_path / "out" / "report.json")
    assert plot.exists() and plot.stat().st_size > 1000
    assert json.loads((tmp_path / "out" / "report.json").read_text())["questions"] == 3


def recorded_guard():
    text = (ROOT / "docs" / "evaluation.md").read_text(encoding="utf-8")
    m = re.search(r"regression guard: ansR@5 = ([0-9.]+), MRR@10 = ([0-9.]+), answer line = ([0-9.]+), "
                  r"off-topic refused = ([0-9.]+)", text)
    assert m, "docs/evaluation.md must record the 300-question figures"
    return tuple(float(g) for g in m.groups())


@pytest.mark.model
@pytest.mark.skipif(not SQUAD.exists(), reason="needs ../shared/data beside the checkout")
def test_regression_guard_on_300_squad_questions(real_encoder):
    r5, mrr, answer_line, off_topic = recorded_guard()
    report = evaluate_squad(SQUAD, Settings(), real_encoder, methods=("hybrid",), limit=300, progress=False,
                            off_topic=OFF_TOPIC)
    hybrid = report["results"][0]
    print(format_table(report))
    assert hybrid["recall"][5] >= r5 - 0.02, f"ansR@5 fell to {hybrid['recall'][5]:.3f} (recorded {r5})"
    assert hybrid["mrr10"] >= mrr - 0.02, f"MRR@10 fell to {hybrid['mrr10']:.3f} (recorded {mrr})"
    assert hybrid["answer_line"] >= answer_line - 0.03, \
        f"answer-line accuracy fell to {hybrid['answer_line']:.3f} (recorded {answer_line})"
    assert hybrid["not_covered"] <= 0.02
    refused = report["off_topic"]["refused"]
    assert refused >= off_topic - 0.1, f"off-topic questions refused fell to {refused:.3f} (recorded {off_topic})"
