"""One frozen settings object for everything a question needs, index settings included.

Entry points (the CLI and ``app.py``) build it from flags and environment variables and
pass it down; nothing below them reads the environment.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from embeddings.settings import IndexSettings
from qa.fusion import Weights


@dataclass(frozen=True)
class Settings:
    """Retrieval and answering settings.

    Attributes:
        index: how the index was built and where it is.
        k: passages shown per answer.
        candidates: passages fetched from each retriever before fusion; more costs a
            little time and rarely changes the top few.
        fusion: "hybrid" (the default), "dense", "lexical" (BM25 alone) or "rrf".
        dense_weight: weight of the dense score in the hybrid fusion, the rest going to BM25.
        lexical_power: BM25 divided by the query's best BM25 is raised to this power before
            fusion; above 1 it favours passages that match the query's words almost as well
            as the best match over ones that share a word or two.
        sentence_weight: weight of the best single sentence's similarity to the question
            when rescoring the fused candidates (0 turns sentence rescoring off).
        rescore_depth: how many fused candidates are rescored by sentence.
        sentence_lexical: weight of a sentence's query-word coverage (the IDF-weighted share
            of the question's words it holds) added to its cosine, for ranking by sentence
            and for choosing the sentence the answer quotes.
        recency: among the rescored candidates, the bonus of an article published the day
            the question is asked (its "as of": today in the app and ``qa ask``, the quiz
            date in the evaluation); it falls to 1/e after ``recency_days``. Undated
            articles get none, so a corpus without dates ranks as if it were 0.
        answer_sources: the one-line answer reads this many top passages (their headlines
            and names, below), however many are shown: the slider in the app must not
            change the answer. When fewer are shown, the quoted one is shown too.
        answer_passages: the one-line answer quotes the best sentence among this many top
            passages, each sentence scored by its cosine plus ``answer_lexical`` times its
            coverage of the question's words (see docs/evaluation.md).
        answer_type: plus this times ``qa.answer.answer_type_cue`` (1 or 0): for "who", a
            name of two or more words the question lacks; for "when", a year or a month.
        answer_distinct: the share of ``answer_lexical``'s word weight given to the question
            words that few of the candidate sentences hold (``qa.answer.distinctive_coverage``;
            0 reads each word's IDF alone).
        answer_kind: plus this times how well the sentence's best name fits what a "which X"
            question asks for (its cosine to X above 0.2: ``qa.answer.answer_sentence``).
        answer_redundancy: plus this times how many of the answer's articles (up to five)
            name the sentence's most repeated name the question lacks.
        answer_headline: plus this times the share of the answer's sources whose headline
            (a title of five words or more) names one of the sentence's names.
        answer_entity: plus this when the sentence names an entity of the type the question
            asks for (a person for "who", a place for "where", a date for "when": spaCy's
            tagger, ``qa.entities``).
        title_weight: BM25 weight of the article title relative to the passage text.
        lexical_postings: BM25 reads the query's words rarest first until the passages holding
            them add up to this; commoner words are left out (their BM25 weight is small), so
            a question costs the same in a large archive as in a small one. None reads all.
        min_evidence: when no sentence of the top three passages scores this much (its cosine
            plus ``sentence_lexical`` times its coverage of the question's words), the reply
            is "not covered" (chosen on answerable and off-topic questions: docs/evaluation.md).
        window_margin: a date window named in the question ("last week") is searched alone
            when its best passage is within this relevance of the best from any date;
            otherwise the answer comes from any date and says so (``qa.pipeline.ask``).
        uploads_dir: where articles uploaded through the app are kept (a folder of articles
            indexed like ``seeds/``; kept apart from the index so a rebuild re-reads them).
        web_dir: where remembered feeds and the pages fetched from feeds and links are kept
            (``embeddings/feeds.py``; a folder of articles indexed like the uploads).
        upload_budget_mb: megabytes of uploads the app accepts in any hour, all users
            together (None: no limit). Encoding costs about 23 s of this machine's two cores
            per MB of text, so the budget bounds what anyone who can reach the page makes it
            do; ``qa serve`` sets 20 (under 8 minutes of encoding an hour) when no login is
            required.
        web_rebuild: whether the page's "Rebuild index" button may re-encode everything;
            ``qa serve`` turns it off when it serves beyond loopback without a login.
    """

    index: IndexSettings = field(default_factory=IndexSettings)
    k: int = 5
    candidates: int = 50
    fusion: str = "hybrid"
    dense_weight: float = 0.6
    lexical_power: float = 3.0
    sentence_weight: float = 0.8
    rescore_depth: int = 50
    sentence_lexical: float = 0.4
    recency: float = 0.3
    recency_days: float = 30.0
    answer_sources: int = 5
    answer_passages: int = 3
    answer_lexical: float = 1.2
    answer_distinct: float = 0.5
    answer_type: float = 0.1
    answer_kind: float = 0.2
    answer_redundancy: float = 0.05
    answer_headline: float = 0.6
    answer_entity: float = 0.15
    title_weight: float = 0.5
    lexical_postings: int | None = 10_000
    min_evidence: float = 0.42
    window_margin: float = 0.05
    uploads_dir: Path = Path("uploads")
    web_dir: Path = Path("web")
    upload_budget_mb: float | None = None
    web_rebuild: bool = True

    def weights(self) -> Weights:
        """The hybrid's weights, as ``qa.fusion`` takes them."""
        return Weights(self.dense_weight, self.lexical_power, self.sentence_weight, self.rescore_depth,
                       self.sentence_lexical, self.recency, self.recency_days)
