"""Splitting into passages: exact offsets, the 256 word-piece limit, overlap, edge cases."""

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from embeddings.articles import load_articles
from embeddings.encoder import load_tokenizer
from embeddings.passages import split_passages, split_sentences, with_context
from embeddings.settings import CONTEXT_TOKENS
from tests.conftest import SEED

TOK = load_tokenizer()


def pieces(text):
    return len(TOK.word_pieces(text)) + 2  # with [CLS] and [SEP], as the model sees it


def check(body, passages, max_tokens=256):
    assert passages, "non-empty text gives at least one passage"
    for n, p in enumerate(passages):
        assert p.ordinal == n
        assert body[p.start:p.end] == p.text
        assert pieces(p.text) <= max_tokens
    covered = set()
    for p in passages:
        covered.update(range(p.start, p.end))
    assert all(i in covered for i, ch in enumerate(body) if not ch.isspace()), "no text is lost"


def test_seed_passages_reconstruct_the_body():
    [article] = load_articles(SEED)
    for target in (64, 128, 256):
        check(article.body, split_passages(article.id, article.body, TOK, 256, target, 1))


def test_short_paragraphs_merge_up_to_target_and_keep_paragraph_breaks():
    body = "\n\n".join(f"Paragraph {i} says one short thing." for i in range(10))
    passages = split_passages("a", body, TOK, max_tokens=256, target_tokens=30)
    assert len(passages) > 1
    for p in passages:
        assert p.text.startswith("Paragraph") and p.text.endswith("thing.")


def test_split_paragraph_overlaps_by_one_sentence():
    body = " ".join(f"Sentence number {i} talks about the river and the dam." for i in range(60))
    passages = split_passages("a", body, TOK, max_tokens=64, target_tokens=64, overlap_sentences=1)
    check(body, passages, 64)
    for prev, nxt in zip(passages, passages[1:]):
        last_sentence = split_sentences(prev.text)[-1]
        assert nxt.text.startswith(prev.text[last_sentence[0]:last_sentence[1]])


def test_over_long_sentence_is_cut_under_the_limit():
    body = "word " * 1000 + "end."
    passages = split_passages("a", body.strip(), TOK, max_tokens=256)
    check(body.strip(), passages)
    assert len(passages) >= 4


@pytest.mark.parametrize("body", [
    "One sentence only.",
    "🙂 Emoji 🚀 in text 🎉.",
    "x",
    "Ünïcödé wörds, naïve café.\n\n\n\nAnd a second paragraph.",
    "a" * 3000,
])
def test_edge_cases(body):
    check(body, split_passages("a", body, TOK))


text_chars = st.characters(codec="utf-8", exclude_categories=("Cs", "Cc"))
words = st.text(text_chars, min_size=1, max_size=30)
separators = st.sampled_from([" ", " ", " ", ". ", "! ", "? ", "\n", "\n\n", ", "])


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.tuples(words, separators), min_size=1, max_size=400),
       st.sampled_from([32, 64, 256]), st.sampled_from([16, 128, 256]), st.sampled_from([0, 1, 2]))
def test_property_offsets_exact_and_never_over_the_limit(parts, max_tokens, target, overlap):
    body = "".join(w + s for w, s in parts).strip()
    if not body:
        return
    check(body, split_passages("a", body, TOK, max_tokens, target, overlap), max_tokens)


def test_characters_the_tokenizer_drops_stay_in_a_cut_sentence():
    """A private-use character belongs to no word piece; cutting must not lose it (found by
    the property test below)."""
    body = "\U000f00000: 0 000067676767676767676767676761"
    check(body, split_passages("a", body, TOK, max_tokens=32, target_tokens=16), 32)


@settings(max_examples=80, deadline=None)
@given(st.lists(st.tuples(words, separators), min_size=1, max_size=200))
def test_sentence_starts_agree_with_blingfires_own_wrapper(parts):
    import blingfire

    from embeddings.passages import sentence_starts

    text = "".join(w + s for w, s in parts)
    if not text.strip():
        return
    _, offsets = blingfire.text_to_sentences_and_offsets(text)
    assert sentence_starts(text) == sorted({a for a, _ in offsets})


def test_title_context_keeps_every_sentence_span_and_the_model_limit():
    """With the title in front, each shifted span still reads the passage's own sentence, the
    title is cut to CONTEXT_TOKENS pieces, and title plus passage fit the model's 256."""
    [article] = load_articles(SEED)
    title = article.title + " " + "word " * 40
    room = 256 - CONTEXT_TOKENS - 1
    for passage in split_passages(article.id, article.body, TOK, room, 128, 1):
        text, spans = with_context(title, passage, TOK, CONTEXT_TOKENS)
        assert text.endswith(passage.text)
        assert [text[a:b] for a, b in spans] == [passage.text[a:b] for a, b in passage.sentences]
        prefix = text[:len(text) - len(passage.text)]
        assert len(TOK.word_pieces(prefix)) == CONTEXT_TOKENS and prefix.endswith("\n")
        assert pieces(text) <= 256
    untitled = split_passages("x", "Just a line.", TOK, room, 128, 1)[0]
    assert with_context("", untitled, TOK, CONTEXT_TOKENS) == (untitled.text, untitled.sentences)
