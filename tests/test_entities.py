"""What a question asks for, the entity tagger, and the answer line's use of both."""

import logging
from dataclasses import replace

import pytest

from qa import entities
from qa.answer import build_answer
from qa.entities import DATES, NUMBERS, PEOPLE, PLACES, asked_types, names_asked
from qa.settings import Settings
from tests.test_answer import hit


@pytest.mark.parametrize("question, types", [
    ("Who heads the Deir el-Zour Military Council?", PEOPLE),
    ("Whose voice did the robocall fake?", PEOPLE),
    ("Where did the military council make its announcement?", PLACES),
    ("Which state will host the 2026 World Cup final?", PLACES),
    ("The second-largest diamond was found in which African countries?", PLACES),
    ("When did French special operations forces arrive in Syria?", DATES),
    ("In what year did the jihadis declare a caliphate?", DATES),
    ("How many villages does IS hold?", NUMBERS),
    ("What percentage of sales came from fresh produce?", {"PERCENT"}),
    ("Which president signed the bill?", {"PERSON"}),
    ("What kind of company makes the chips?", {"ORG"}),
    ("Which social media platform did Biden post on?", None),  # "platform" is no entity type
    ("What did the State Department say?", None),
    ("Is there a joint operations room?", None),
])
def test_what_a_question_asks_for(question, types):
    assert asked_types(question) == (frozenset(types) if types is not None else None)


def test_an_entity_counts_only_with_a_word_the_question_lacks():
    q = "Who did Biden meet?"
    found = [[("Biden", "PERSON")], [("Joe Biden", "PERSON")], [("Monday", "DATE")], []]
    assert names_asked(q, asked_types(q), found).tolist() == [0.0, 1.0, 0.0, 0.0]


def test_the_tagger_finds_the_person_in_the_seed_sentence():
    found = entities.tag(["Deir el-Zour Military Council head Ahmed Abu Khawla said so.", ""])
    assert ("Ahmed Abu Khawla", "PERSON") in found[0]
    assert found[1] == []


def test_a_missing_model_leaves_the_answer_line_without_entities(caplog):
    with caplog.at_level(logging.WARNING, logger="qa.entities"):
        assert entities._pipeline("no_such_spacy_model") is None
        assert entities.tag(["Ahmed Abu Khawla said so."], model="no_such_spacy_model") is None
    assert "goes without named entities" in caplog.text and "make install" in caplog.text


FORCES = hit(3, ["The offensive west of the river pushed IS out of the area.",
                 "Regime forces backed by Russia have expelled IS from there.",
                 "Shares of oil firms fell."],
             [0.52, 0.50, 0.05], [0.5, 0.5, 0.0], 0.9)
QUESTION = "Who drove IS out of the area west of the river?"


def fake_tagger(labels):
    """Tags each text with the ``(name, label)`` pairs of ``labels`` it contains; records what it was asked."""
    seen = []

    def tag(texts):
        seen.extend(texts)
        return [[(name, label) for name, label in labels if name in t] for t in texts]
    return tag, seen


def test_a_sentence_naming_who_was_asked_for_wins_between_close_sentences():
    tag, seen = fake_tagger([("Russia", "GPE"), ("Regime", "ORG")])
    settings = Settings(answer_type=0)  # the "who" cue alone would pick neither: no two-word name
    assert build_answer(QUESTION, QUESTION, [FORCES], settings).text.startswith("“The offensive")
    answer = build_answer(QUESTION, QUESTION, [FORCES], settings, tag=tag)
    assert answer.text == "“Regime forces backed by Russia have expelled IS from there.” [1]"
    assert "Shares of oil firms fell." not in seen  # 0.47 below the best: no bonus could make it win
    assert build_answer(QUESTION, QUESTION, [FORCES], replace(settings, answer_entity=0), tag=tag
                        ).text.startswith("“The offensive")
    # a place does not answer "who"; a tagger that is missing changes nothing
    place, _ = fake_tagger([("Russia", "GPE")])
    assert build_answer(QUESTION, QUESTION, [FORCES], settings, tag=place).text.startswith("“The offensive")
    assert build_answer(QUESTION, QUESTION, [FORCES], settings, tag=lambda texts: None
                        ).text.startswith("“The offensive")


def test_a_question_that_names_no_type_is_never_tagged():
    tag, seen = fake_tagger([("Regime", "ORG")])
    q = "What happened west of the river?"
    assert build_answer(q, q, [FORCES], Settings(), tag=tag).text.startswith("“The offensive")
    assert seen == []
