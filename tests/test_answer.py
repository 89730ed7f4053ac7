"""The one-line answer and the highlights, on hand-made hits."""

from dataclasses import replace

import numpy as np
import pytest

from embeddings.store import StoredPassage
from qa.answer import NOT_COVERED, asked_kind, build_answer, sentence_names
from qa.retrieve import Hit
from qa.settings import Settings


def hit(pid, sentences, cosines, coverage, score):
    text = " ".join(sentences)
    spans, at = [], 0
    for s in sentences:
        spans.append((at, at + len(s)))
        at += len(s) + 1
    passage = StoredPassage(pid, f"a{pid}", 0, 0, len(text), text, f"Title {pid}", "2018-05-02", None, None,
                            "/x", tuple(spans))
    scores = tuple(c + Settings().sentence_lexical * w for c, w in zip(cosines, coverage))
    return Hit(passage, score, 0.5, 0.5, scores, tuple(cosines), tuple(coverage))


COUNCIL = hit(1, ["The council said on Tuesday it would press on.", "It met at dawn."],
              [0.45, 0.30], [0.60, 0.0], 0.9)
HEAD = hit(2, ["Forces gathered.", "The council head Ahmed Abu Khawla said so."],
           [0.20, 0.40], [0.0, 0.70], 0.8)


def test_the_answer_quotes_the_best_sentence_of_the_top_passages_and_cites_it():
    # by cosine + 1.2 x coverage: 0.45 + 0.72 = 1.17 against 0.40 + 0.84 = 1.24 in passage 2
    answer = build_answer("Who leads the council?", "Who leads the council?", [COUNCIL, HEAD], Settings())
    assert answer.text == "“The council head Ahmed Abu Khawla said so.” [2]"
    assert answer.quote == answer.to_dict()["quote"] == "The council head Ahmed Abu Khawla said so."
    quoted = answer.sources[1]
    a, b = quoted.hit.passage.sentences[1]
    assert (a, b) in quoted.highlights  # the quoted sentence is marked where it is cited


def test_only_the_top_answer_passages_are_quoted_from():
    answer = build_answer("q", "q", [COUNCIL, HEAD], Settings(answer_passages=1))
    assert answer.text == "“The council said on Tuesday it would press on.” [1]"


def test_weak_evidence_is_not_covered():
    weak = hit(3, ["Nothing relevant."], [0.1], [0.0], 0.2)
    answer = build_answer("q", "q", [weak], Settings())
    assert not answer.covered and answer.text == NOT_COVERED and answer.sources


def test_not_covered_reads_the_question_words_a_sentence_holds_beside_its_cosine():
    # the same cosine, 0.40: without the question's words (score 0.40) it is no answer,
    # holding half of them (0.40 + 0.4 x 0.5 = 0.60) it is
    loose = hit(4, ["A concert by King Diamond."], [0.40], [0.0], 0.5)
    holds = hit(5, ["The diamond was found in Botswana."], [0.40], [0.5], 0.5)
    assert Settings().min_evidence == 0.42
    assert not build_answer("q", "q", [loose], Settings()).covered
    assert build_answer("q", "q", [holds], Settings()).covered
    assert build_answer("q", "q", [loose, holds], Settings()).covered  # any of the top three


@pytest.mark.parametrize("question, kind", [
    ("The second-largest diamond has been found in which African country?", "African country"),
    ("Which suspended Conservative Party MP defected to Reform UK?", "suspended Conservative Party MP"),
    ("What kind of animal is Nessie?", "animal"),
    ("Mayor Eric Adams was indicted this week. Which city does he serve?", "city"),
    ("What did the council say?", None),   # "did" is a stopword: no kind asked
    ("Who leads the council?", None),
    ("what's new?", None),
])
def test_asked_kind_reads_what_a_which_question_asks_for(question, kind):
    assert asked_kind(question) == kind


def test_sentence_names_are_the_names_and_numbers_the_question_lacks():
    asked = {"diamond", "lucara"}
    text = "Though rare, Lucara's 2,492-carat diamond came from Botswana's Karowe mine on Monday."
    assert sentence_names(text, asked, common={"though"}) == ["2 492-carat", "Botswana's Karowe"]
    # a capitalised first word counts as a name when it is not a common word nearby
    assert sentence_names("Ford will cut its schemes.", set(), common={"will"}) == ["Ford"]
    assert sentence_names("Ford will cut its schemes.", set(), common={"ford"}) == []


def kind_encoder(fits: dict[str, str]):
    """A fake ``encode``: texts mapped to the same key get the same unit vector, every
    other text one of its own; it records what it was asked to encode."""
    seen = []
    keys = {}

    def encode(texts):
        seen.extend(texts)
        out = np.zeros((len(texts), 16), dtype=np.float32)
        for i, t in enumerate(texts):
            out[i, keys.setdefault(fits.get(t, t), len(keys))] = 1.0
        return out
    return encode, seen


DIAMOND = hit(4, ["Lucara Diamond said the stone was the second-largest found.",
                  "It was unearthed at Botswana's Karowe mine.",
                  "Shares of the firm rose."],
              [0.55, 0.50, 0.10], [0.5, 0.5, 0.0], 0.9)
QUESTION = "The second-largest diamond has been found in which African country?"


def test_a_name_that_fits_the_asked_kind_wins_the_answer_line():
    encode, seen = kind_encoder({"Botswana's Karowe": "African country"})
    assert build_answer(QUESTION, QUESTION, [DIAMOND], Settings()).text.startswith("“Lucara")  # without the encoder
    answer = build_answer(QUESTION, QUESTION, [DIAMOND], Settings(), encode)
    assert answer.text == "“It was unearthed at Botswana's Karowe mine.” [1]"
    assert seen[0] == "African country"
    assert "Shares" not in seen  # 0.45 below the best: no name of it could win, so none is encoded
    assert build_answer(QUESTION, QUESTION, [DIAMOND], Settings(answer_kind=0), encode).text.startswith("“Lucara")


def test_a_name_several_articles_report_wins_between_close_sentences():
    first = hit(5, ["Officials named Smith as the new head.", "Jones was also considered."],
                [0.50, 0.49], [0.5, 0.5], 0.9)
    others = [hit(6 + i, [f"Jones took office in story {i}."], [0.3], [0.2], 0.5) for i in range(3)]
    settings = Settings(answer_passages=1)
    assert build_answer("Who is the head?", "q", [first, *others], replace(settings, answer_redundancy=0)
                        ).text.startswith("“Officials")
    assert build_answer("Who is the head?", "q", [first, *others], settings).text.startswith("“Jones")


def test_words_every_candidate_holds_count_less_than_the_words_that_tell_them_apart():
    import re

    from qa.retrieve import QueryTerms

    terms = QueryTerms(("council", "head"), np.array([1.0, 1.0]),
                       re.compile(r"\b(?:(council)|(head))", re.IGNORECASE), (0, 1))
    said = hit(10, ["The council said it would press on.", "The council met."], [0.50, 0.30], [0.5, 0.5], 0.9)
    head = hit(11, ["Its head is Ahmed."], [0.42], [0.5], 0.8)
    q = "Who is the council head?"
    # plain coverage: both hold one of two words, so the higher cosine wins (0.50 + 1.2 x 0.5)
    assert build_answer(q, q, [said, head], Settings()).text.startswith("“The council said")
    # "council" is in two of the three candidates, "head" in one: 0.42 + 1.2 x 0.55 beats 0.50 + 1.2 x 0.45
    assert build_answer(q, q, [said, head], Settings(), terms=terms).text == "“Its head is Ahmed.” [2]"
    assert build_answer(q, q, [said, head], Settings(answer_distinct=0), terms=terms).text.startswith("“The council")


def titled(h, title):
    return replace(h, passage=replace(h.passage, title=title))


def test_a_name_the_headline_reports_wins_between_close_sentences():
    q = "Which state's court cleared the way for a six-week ban?"
    story = hit(20, ["The court cleared the way for the ban.", "Florida will enforce it from May."],
                [0.50, 0.45], [0.5, 0.5], 0.9)
    headline = titled(story, "Florida six-week abortion ban to start as state Supreme Court clears it")
    assert build_answer(q, q, [headline], Settings(answer_headline=0)).text.startswith("“The court")
    assert build_answer(q, q, [headline], Settings()).text == "“Florida will enforce it from May.” [1]"
    # a title of under five words names a topic, not what happened: no evidence
    assert build_answer(q, q, [titled(story, "Florida abortion law")], Settings()).text.startswith("“The court")


def test_the_answer_reads_only_the_top_answer_sources_however_many_are_shown():
    q = "Which state's court cleared the way for a six-week ban?"
    story = hit(20, ["The court cleared the way for the ban.", "Georgia will enforce it from May."],
                [0.50, 0.45], [0.5, 0.5], 0.9)
    others = [titled(hit(30 + n, ["Nothing here."], [0.1], [0.0], 0.5), "A long headline about something else")
              for n in range(4)]
    later = [titled(hit(40 + n, ["Nothing here."], [0.1], [0.0], 0.4), "Georgia six-week abortion ban starts in May")
             for n in range(3)]  # sources 6 to 8: shown when k is 8, not read by the answer
    shown = [story] + others + later
    five = build_answer(q, q, shown[:5], Settings())
    eight = build_answer(q, q, shown, Settings())
    assert eight.text == five.text == "“The court cleared the way for the ban.” [1]"
    assert len(eight.sources) == 8 and eight.quoted == 1
    assert build_answer(q, q, shown, Settings(answer_sources=8)).text.startswith("“Georgia")
