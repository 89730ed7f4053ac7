"""Cheap consistency checks of an index directory, each problem with the command that fixes it.

``qa status`` runs them. The store (``store.sqlite``) is the source of truth; the vector file
and the manifest are derived from it and can always be rewritten from it without encoding
(``qa index --repair``).
"""

from __future__ import annotations

from pathlib import Path

from embeddings.manifest import IndexProblem, read_manifest
from embeddings.reader import STORE_FILE, VECTORS_FILE
from embeddings.store import Store
from embeddings.vector_index import load_vector_index


def check_index(directory: Path) -> list[str]:
    """One line per problem found, each ending with the command that repairs it; [] if none."""
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
    try:
        with Store(store_path, snapshot=True) as store:
            counts, build = store.counts(), store.get_meta("build")
    except Exception as e:  # sqlite3.DatabaseError and the like: the file is not a sound database
        return problems + [f"{store_path} cannot be read ({type(e).__name__}: {e}); {rebuild}"]
    if build is None:
        return problems + [f"{store_path} holds no index; {rebuild}"]
    if manifest is not None and manifest["counts"] != counts:
        problems.append(f"{directory / 'manifest.json'} says {manifest['counts']['articles']} articles and "
                        f"{manifest['counts']['passages']} passages, the store holds {counts['articles']} and "
                        f"{counts['passages']}; {repair}")
    vectors_path = directory / VECTORS_FILE
    try:
        held = load_vector_index(vectors_path).count() if vectors_path.exists() else None
    except ValueError:
        held = -1
    if held is None:
        problems.append(f"{vectors_path} is missing; {repair}")
    elif held == -1:
        problems.append(f"{vectors_path} cannot be read; {repair}")
    elif held != counts["passages"]:
        problems.append(f"{vectors_path} holds {held} vectors, the store {counts['passages']} passages; {repair}")
    return problems
