"""The one-line answer and the highlights, on hand-made hits."""

from embeddings.store import StoredPassage
from qa.answer import NOT_COVERED, build_answer
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
    # by cosine + 0.8 x coverage: 0.45 + 0.48 = 0.93 against 0.40 + 0.56 = 0.96 in passage 2
    answer = build_answer("Who leads the council?", "Who leads the council?", [COUNCIL, HEAD], Settings())
    assert answer.text == "“The council head Ahmed Abu Khawla said so.” [2]"
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
