"""Cheap consistency checks of an index directory, each problem with the command that fixes it.

``qa status`` runs them. The store (``store.sqlite``) is the source of truth; the vector file
and the manifest are derived from it and can always be rewritten from it without encoding
(``qa index --repair``).
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

import numpy as np

from embeddings.manifest import (MANIFEST, IndexMissing, ManifestDamaged, read_manifest, rebuild_command,
                                 repair_command)
from embeddings.reader import STORE_FILE, VECTORS_FILE
from embeddings.store import Store
from embeddings.vector_index import load_vector_index


def check_index(directory: Path, thorough: bool = False) -> list[str]:
    """One line per problem found, each ending with the command that repairs it; [] if none.

    ``thorough`` also runs SQLite's ``PRAGMA quick_check`` over the whole store (seconds on
    a large archive) and compares the vector file's ids with the store's."""
    directory = Path(directory)
    repair = f"run {repair_command(directory)}"
    rebuild = f"build it again with {rebuild_command(directory)}"
    store_path = directory / STORE_FILE
    problems = []
    try:
        manifest = read_manifest(directory)
    except ManifestDamaged as e:
        manifest = None
        problems.append(str(e))
    except IndexMissing as e:
        if not store_path.exists():
            return [str(e)]
        manifest = None
        problems.append(f"{directory / MANIFEST} is missing; {repair}")
    if not store_path.exists():
        return problems + [f"{store_path} is missing (it holds the articles and their vectors); {rebuild}"]
    try:
        with Store(store_path, snapshot=True) as store:
            counts, build = store.counts(), store.get_meta("build")
            verdict = [r[0] for r in store.conn.execute("PRAGMA quick_check")] if thorough else ["ok"]
            ids = store.all_passage_ids() if thorough else None
    except sqlite3.DatabaseError as e:  # not a database, or a corrupt page on the way
        return problems + [damaged_store(directory, e)]
    if verdict != ["ok"]:
        return problems + [damaged_store(directory, "; ".join(verdict[:3]).replace("\n", " "))]
    if build is None:
        return problems + [f"{store_path} holds no index; {rebuild}"]
    if manifest is not None and manifest["counts"] != counts:
        problems.append(f"{directory / MANIFEST} says {manifest['counts']['articles']} articles and "
                        f"{manifest['counts']['passages']} passages, the store holds {counts['articles']} and "
                        f"{counts['passages']}; {repair}")
    vectors_path = directory / VECTORS_FILE
    recorded = (manifest or {}).get("vector_index", {})
    if recorded.get("kind") == "milvus":
        return problems + _check_milvus(recorded, manifest["model"]["dimension"], counts, ids, repair)
    try:
        vectors = load_vector_index(vectors_path) if vectors_path.exists() else None
        held = vectors.count() if vectors is not None else None
    except ValueError:
        vectors, held = None, -1
    if ids is not None and vectors is not None and held == counts["passages"] \
            and not np.array_equal(vectors.ids(), ids):
        problems.append(f"{vectors_path} holds other passage ids than the store; {repair}")
    if held is None:
        problems.append(f"{vectors_path} is missing; {repair}")
    elif held == -1:
        problems.append(f"{vectors_path} cannot be read; {repair}")
    elif held != counts["passages"]:
        problems.append(f"{vectors_path} holds {held} vectors, the store {counts['passages']} passages; {repair}")
    return problems


def _check_milvus(recorded: dict, dimension: int, counts: dict, ids, repair: str) -> list[str]:
    """The collection on the Milvus server the manifest names, against the store."""
    from embeddings.milvus_index import MilvusIndex, MilvusUnavailable

    where = f"the Milvus collection {recorded.get('collection')} at {recorded.get('uri')}"
    try:
        vectors = MilvusIndex(recorded["uri"], recorded["collection"], dimension, create=False)
        held = vectors.count()
        same = ids is None or held != counts["passages"] or np.array_equal(vectors.ids(), ids)
    except (MilvusUnavailable, KeyError) as e:
        return [f"{where} cannot be reached ({e}); start the server, then {repair} if it lost the vectors"]
    except Exception as e:  # noqa: BLE001 - the client's own errors
        return [f"{where} cannot be read ({type(e).__name__}: {e}); {repair}"]
    if held != counts["passages"]:
        return [f"{where} holds {held} vectors, the store {counts['passages']} passages; {repair}"]
    if not same:
        return [f"{where} holds other passage ids than the store; {repair}"]
    return []


def damaged_store(directory: Path, detail, advice: bool = True) -> str:
    """What to do about a store SQLite cannot read (``advice=False``: only what is wrong)."""
    store = Path(directory) / STORE_FILE
    problem = f"{store} is damaged ({detail})"
    if not advice:
        return problem
    return (f"{problem}; run {repair_command(directory)}: it moves the store aside and builds it again "
            f"from the files and folders it was built from")
