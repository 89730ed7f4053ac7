"""Follow-up rewriting."""

from qa.conversation import contextualize, needs_context


def test_follow_up_with_pronoun_carries_the_previous_subject():
    q = contextualize("Who is backing them?", ["Which alliance launched the final stage against IS?"])
    assert q == "alliance launched final stage IS — Who is backing them?"


def test_standalone_question_is_left_alone():
    q = "Which province borders Iraq near the Euphrates?"
    assert not needs_context(q)
    assert contextualize(q, ["Which alliance launched the final stage?"]) == q


def test_chain_carries_the_original_subject_not_the_whole_history():
    first = "Which alliance launched the final stage against IS?"
    second = contextualize("Who is backing them?", [first])
    third = contextualize("Where are they fighting?", [first, second])
    assert third.startswith("alliance launched final stage IS") and third.count("—") == 1


def test_first_question_and_empty_history():
    assert contextualize("Who is backing them?", []) == "Who is backing them?"


def test_a_name_the_archive_never_mentions_starts_a_new_topic():
    held = {"raqqa", "syria"}
    indexed = lambda words: [w in held for w in words]
    previous = ["Which alliance launched the final stage against IS?"]
    assert contextualize("What is the capital of Peru?", previous, indexed) == "What is the capital of Peru?"
    assert contextualize("What about Raqqa?", previous, indexed).endswith("— What about Raqqa?")
    assert contextualize("Who is backing them?", previous, indexed).endswith("— Who is backing them?")
    # typed without capitals, a word the model's vocabulary lacks stands for the name
    is_word = lambda w: w not in {"houthis", "raqqa"}
    assert contextualize("what did the houthis attack?", previous, indexed, is_word) == "what did the houthis attack?"
    assert contextualize("what about raqqa?", previous, indexed, is_word).endswith("— what about raqqa?")
    assert contextualize("what did the houthis attack?", previous, indexed).endswith("— what did the houthis attack?")


def test_how_many_asks_a_quantity_not_a_topic():
    q = contextualize("How many planes were grounded?", ["Which airline had a door plug blow out mid-flight?"])
    assert q == "airline door plug blow mid flight — How many planes were grounded?"
    assert contextualize("How many people live in Lima?", ["Which airline had a door plug blow out?"]) == \
        "How many people live in Lima?"
