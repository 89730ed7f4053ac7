"""Cheap consistency checks of an index directory, each problem with the command that fixes it.

``qa status`` runs them. The store (``store.sqlite``) is the source of truth; the vector file
and the manifest are derived from it and can always be rewritten from it without encoding
(``qa index --repair``).
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

import numpy as np

from embeddings.manifest import IndexProblem, read_manifest
from embeddings.reader import STORE_FILE, VECTORS_FILE
from embeddings.store import Store
from embeddings.vector_index import load_vector_index


def check_index(directory: Path, thorough: bool = False) -> list[str]:
    """One line per problem found, each ending with the command that repairs it; [] if none.

    ``thorough`` also runs SQLite's ``PRAGMA quick_check`` over the whole store (seconds on
    a large archive) and compares the vector file's ids with the store's."""
    directory = Path(directory)
    repair = f"run `qa index --repair --index-dir {directory}`"
    rebuild = f"build it again with `qa index --rebuild --index-dir {directory} PATH...`"
    problems = []
    try:
        manifest = read_manifest(directory)
    except IndexProblem as e:
        manifest = None
        if (directory / STORE_FILE).exists():
            problems.append(str(e) if "--repair" in str(e) else f"{directory / 'manifest.json'} is missing; {repair}")
        else:
            return [str(e)]
    store_path = directory / STORE_FILE
    if not store_path.exists():
        return problems + [f"{store_path} is missing (it holds the articles and their vectors); {rebuild}"]
    damaged = f"move it aside (`mv {store_path} {store_path}.damaged`) and {rebuild}"
    try:
        with Store(store_path, snapshot=True) as store:
            counts, build = store.counts(), store.get_meta("build")
            verdict = [r[0] for r in store.conn.execute("PRAGMA quick_check")] if thorough else ["ok"]
            ids = store.all_passage_ids() if thorough else None
    except sqlite3.DatabaseError as e:  # not a database, or a corrupt page on the way
        return problems + [f"{store_path} is damaged ({e}); {damaged}"]
    if verdict != ["ok"]:
        return problems + [f"{store_path} is damaged ({'; '.join(verdict[:3])}); {damaged}"]
    if build is None:
        return problems + [f"{store_path} holds no index; {rebuild}"]
    if manifest is not None and manifest["counts"] != counts:
        problems.append(f"{directory / 'manifest.json'} says {manifest['counts']['articles']} articles and "
                        f"{manifest['counts']['passages']} passages, the store holds {counts['articles']} and "
                        f"{counts['passages']}; {repair}")
    vectors_path = directory / VECTORS_FILE
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
