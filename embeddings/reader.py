"""Open an index directory for searching, and repair its derived vector file.

The read side of the index: ``qa/`` imports this module, never the builder
(``embeddings/indexer.py``). An opened index is a snapshot (see ``open_index``).

Layout of an index directory::

    index/
      store.sqlite    articles, passages, vectors, sentence vectors, FTS5 (the source of truth)
      vectors.faiss   the vector index keyed by passage id (derived; rebuilt if stale)
      manifest.json   format, model, chunker, vector index, counts, versions (derived)
"""

from __future__ import annotations

import logging
import sqlite3
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from embeddings.manifest import (MANIFEST, IndexMismatch, IndexMissing, IndexProblem, ManifestDamaged,
                                 build_block, check_compatible, make_manifest, read_manifest, rebuild_command,
                                 repair_command, write_manifest)
from embeddings.settings import IndexSettings
from embeddings.store import Store
from embeddings.vector_index import VectorIndex, choose_kind, load_vector_index, make_vector_index

logger = logging.getLogger(__name__)

STORE_FILE = "store.sqlite"
VECTORS_FILE = "vectors.faiss"
LOCK_FILE = ".lock"


@dataclass
class LoadedIndex:
    """An opened index directory: the store, the vector index and the manifest."""

    directory: Path
    store: Store
    vectors: VectorIndex
    manifest: dict

    def close(self) -> None:
        self.store.close()


def recorded_model(directory: Path) -> dict | None:
    """The model block the index was built with (what ``auto`` settings follow): from the
    manifest, or from the store when the manifest is missing or damaged; None if neither."""
    try:
        return read_manifest(Path(directory))["model"]
    except IndexProblem:
        pass
    path = Path(directory) / STORE_FILE
    if not path.exists():
        return None
    try:
        with Store(path, snapshot=True) as store:
            return (store.get_meta("build") or {}).get("model")
    except sqlite3.DatabaseError:  # a damaged store: opening the index says what to do
        return None


def encoder_for(settings: IndexSettings):
    """The encoder to search or update the index under ``settings`` with: ``auto`` backend
    and precision follow what the index was built with (see ``encoder.resolve``)."""
    from embeddings.encoder import make_encoder

    return make_encoder(settings, recorded_model(settings.index_dir))


def expected_build(settings: IndexSettings, identity: dict, dimension: int) -> dict:
    """The build block an index must carry to be searched with this encoder and settings."""
    return build_block(identity, dimension, settings.chunker(), settings.sentence_vectors)


def uses_milvus(settings: IndexSettings) -> bool:
    """Whether the index's vectors live on Milvus: as set, or (``auto``) as recorded."""
    if settings.vector_store != "auto":
        return settings.vector_store == "milvus"
    try:
        return read_manifest(Path(settings.index_dir)).get("vector_index", {}).get("kind") == "milvus"
    except IndexProblem:
        return False


def milvus_target(settings: IndexSettings) -> tuple[str, str]:
    """The Milvus server and collection of the index under ``settings``: the ones set, else
    the ones recorded in its manifest, else the defaults."""
    from embeddings.milvus_index import collection_name

    try:
        recorded = read_manifest(Path(settings.index_dir)).get("vector_index", {})
    except IndexProblem:
        recorded = {}
    recorded = recorded if recorded.get("kind") == "milvus" else {}
    uri = settings.milvus_uri if settings.vector_store == "milvus" else recorded.get("uri", settings.milvus_uri)
    collection = settings.milvus_collection or recorded.get("collection") or collection_name(settings.index_dir)
    return uri, collection


def vectors_from_store(store: Store, settings: IndexSettings) -> VectorIndex:
    """A vector index of the kind ``settings`` ask for, built from the stored vectors (no
    encoding). The IVF quantiser trains on the vectors themselves; a Milvus collection is
    emptied and filled again."""
    count = store.counts()["passages"]
    if uses_milvus(settings):
        from embeddings.milvus_index import MilvusIndex

        index = MilvusIndex.fresh(*milvus_target(settings), store.dimension)
        for ids, vectors, meta in store.iter_vectors(with_meta=True):
            index.add(ids, vectors, meta)
        index.save()
        return index
    kind = choose_kind(settings.vector_index, count)
    if kind == "flat":
        index = make_vector_index("flat", store.dimension)
        for ids, vectors in store.iter_vectors():
            index.add(ids, vectors)
        return index
    ids, vectors = store.vectors()
    return make_vector_index(kind, store.dimension, ids, vectors)


def load_vectors(settings: IndexSettings, dimension: int) -> VectorIndex | None:
    """The index's vectors as they are now (None when there are none to load: a missing or
    unreadable vector file)."""
    if uses_milvus(settings):
        from embeddings.milvus_index import MilvusIndex

        return MilvusIndex(*milvus_target(settings), dimension)
    return _load_vectors(Path(settings.index_dir) / VECTORS_FILE)


def vector_index_info(index: VectorIndex) -> dict:
    """What the manifest records about the vector index."""
    if index.kind == "milvus":
        return index.info()
    info = {"kind": index.kind, "count": index.count()}
    if index.kind == "ivf":
        info.update(nlist=index.nlist, nprobe=index.nprobe)
    return info


def save_derived(directory: Path, store: Store, vectors: VectorIndex) -> dict:
    """Write ``vectors.faiss`` and then ``manifest.json`` for the store as it is now."""
    vectors.save(directory / VECTORS_FILE)
    return write_manifest(directory, store.get_meta("build"), store.generation, store.get_meta("updated_at"),
                          store.counts(), vector_index_info(vectors), store.get_meta("roots", []))


def _repair_vectors_file(directory: Path, snapshot: Store, vectors: VectorIndex) -> dict | None:
    """Save the rebuilt vectors when no update runs and the snapshot is still the latest."""
    from filelock import FileLock, Timeout

    try:
        with FileLock(str(directory / LOCK_FILE), timeout=0):
            with Store(directory / STORE_FILE) as live:
                if live.generation != snapshot.generation:
                    return None  # an update committed meanwhile and wrote its own file
            return save_derived(directory, snapshot, vectors)
    except (Timeout, OSError):
        return None  # busy or read-only: the rebuilt vectors still serve from memory


def open_index(settings: IndexSettings, identity: dict, dimension: int) -> LoadedIndex:
    """Open the index for searching, refusing one built with another model or chunker.

    The opened index is a snapshot: the store is read inside one read transaction and the
    vector file is checked to hold exactly the snapshot's passage ids (ids are never reused
    and a passage's vector never changes, so equal ids mean equal contents). A vector file
    that does not match (one written by an update that committed after the snapshot, or
    one left stale by an interrupted update) or cannot be read is rebuilt from the vectors
    in the store, without re-encoding. Updates that commit later are not seen until the
    index is reopened.
    """
    directory = Path(settings.index_dir)
    expected = expected_build(settings, identity, dimension)
    store_path = directory / STORE_FILE
    try:
        manifest = read_manifest(directory)
    except (IndexMissing, ManifestDamaged):
        if not store_path.exists():
            raise
        manifest = None  # derived from the store: rewritten below
    else:
        check_compatible(directory, manifest, expected)
    if not store_path.exists():  # never create an empty one in its place
        raise IndexMismatch(f"{store_path} is missing (it holds the articles and their vectors): build the "
                            f"index again with {rebuild_command(directory)} from your article files")
    store = Store(store_path, snapshot=True)
    try:
        stored_build = store.get_meta("build")
        if stored_build is None:
            raise IndexMismatch(f"{store_path} is empty: build the index with {rebuild_command(directory)}")
        check_compatible(directory, stored_build, expected)
        vectors = load_vectors(settings, store.dimension)
        stale = vectors is None or not np.array_equal(vectors.ids(), store.all_passage_ids())
        if stale and vectors is not None and vectors.kind == "milvus" and not _quiet(directory, store):
            # A shared collection is refilled only while no update runs and this snapshot is
            # the latest; meanwhile the retriever ignores ids the snapshot does not hold.
            logger.warning("the Milvus collection %s does not match the store; searching it as it is "
                           "(an update is running, or run %s)", vectors.collection, repair_command(directory))
            stale = False
        if stale:
            logger.info("%s does not match the store; rebuilding it from the stored vectors",
                        directory / VECTORS_FILE)
            vectors = vectors_from_store(store, settings)
        if stale or manifest is None or manifest.get("generation") != store.generation:
            logger.info("rewriting %s and %s from the store", directory / VECTORS_FILE, directory / MANIFEST)
            manifest = (_repair_vectors_file(directory, store, vectors)
                        or make_manifest(stored_build, store.generation, store.get_meta("updated_at"),
                                         store.counts(), vector_index_info(vectors), store.get_meta("roots", [])))
        return LoadedIndex(directory, store, vectors, manifest)
    except BaseException:
        store.close()
        raise


def _quiet(directory: Path, snapshot: Store) -> bool:
    """True when no update runs and ``snapshot`` is the store's latest state."""
    from filelock import FileLock, Timeout

    try:
        with FileLock(str(directory / LOCK_FILE), timeout=0):
            with Store(directory / STORE_FILE) as live:
                return live.generation == snapshot.generation
    except (Timeout, OSError):
        return False


def _load_vectors(path: Path) -> VectorIndex | None:
    if not path.exists():
        return None
    try:
        return load_vector_index(path)
    except ValueError as e:
        logger.warning("%s", e)
        return None
