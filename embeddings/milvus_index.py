"""The Milvus backend of ``VectorIndex``: passage vectors on a Milvus server (``pymilvus``).

One collection per index: ``id`` (the passage id, primary key), ``vector`` (HNSW, cosine),
and the scalar fields a filter needs, ``article_id``, ``date`` (``YYYY-MM-DD``, ``""`` when
undated) and ``source`` (lower case), so date and source filters run inside Milvus
(``search(..., filters=...)``) instead of shipping id lists. Writes are upserts and deletes
by passage id; ``save`` flushes.

SQLite (``store.sqlite``) stays the source of truth for text, metadata and the vectors
themselves: the collection is derived from it, checked against it when the index opens
(count and ids), and rebuilt from it without encoding when they disagree. Several app
replicas can therefore share one Milvus and one store: whoever writes (one ``qa index`` at
a time, the update lock) writes the store first and Milvus second.

Example:
    >>> index = MilvusIndex("http://127.0.0.1:19530", "news_qa", 384)   # doctest: +SKIP
    >>> index.add(ids, vectors, meta)                                  # doctest: +SKIP
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Iterable

import numpy as np

Results = list[tuple[int, float]]
HNSW = {"M": 16, "efConstruction": 200}
EF_SEARCH = 128          # HNSW breadth at query time (>= k); recall against exact search: docs/scale-out.md
MAX_K = 16384            # Milvus's limit on results per query
WRITE_BATCH = 2000
IDS_IN_EXPRESSION = 5000  # an allowed-id list longer than this is searched wider and filtered here
# Searches see this client's own writes at once ("Session"); "Strong" would make every search
# wait for the server's next time tick (about 200 ms here). Counts and id lists, which
# check the collection against the store, are read "Strong".
READS = "Session"


def collection_name(index_dir: Path) -> str:
    """The default collection of an index directory: stable for its absolute path."""
    digest = hashlib.sha1(str(Path(index_dir).resolve()).encode("utf-8")).hexdigest()[:12]
    return f"news_qa_{digest}"


class MilvusUnavailable(RuntimeError):
    pass


class MilvusIndex:
    """Passage vectors in one Milvus collection.

    Args:
        uri: the server, e.g. ``http://127.0.0.1:19530``.
        collection: the collection's name (created when missing).
        dimension: the vectors' dimension.
        create: create the collection when it is missing (else ``MilvusUnavailable``).
    """

    kind = "milvus"
    filters_natively = True  # ``search`` takes the store's ``Filters``; see the retriever

    def __init__(self, uri: str, collection: str, dimension: int, create: bool = True):
        from pymilvus import MilvusClient

        self.uri, self.collection, self.dimension = uri, collection, dimension
        try:
            self._client = MilvusClient(uri=uri, timeout=30)
        except Exception as e:  # noqa: BLE001 - pymilvus raises many kinds; all mean the same here
            raise MilvusUnavailable(f"cannot reach Milvus at {uri} ({type(e).__name__}: {e}); start it "
                                    f"(`milvus-server --data DIR`) or pass --milvus-uri") from None
        if not self._client.has_collection(collection):
            if not create:
                raise MilvusUnavailable(f"{uri} has no collection {collection}")
            self._create()
        self._client.load_collection(collection)

    @classmethod
    def fresh(cls, uri: str, collection: str, dimension: int) -> "MilvusIndex":
        """An empty collection (an existing one of that name is dropped)."""
        from pymilvus import MilvusClient

        MilvusClient(uri=uri, timeout=30).drop_collection(collection)
        return cls(uri, collection, dimension)

    def _create(self) -> None:
        from pymilvus import DataType, MilvusClient

        schema = MilvusClient.create_schema(auto_id=False, enable_dynamic_field=False)
        schema.add_field("id", DataType.INT64, is_primary=True)
        schema.add_field("vector", DataType.FLOAT_VECTOR, dim=self.dimension)
        schema.add_field("article_id", DataType.VARCHAR, max_length=64)
        schema.add_field("date", DataType.VARCHAR, max_length=10)
        schema.add_field("source", DataType.VARCHAR, max_length=512)
        index = self._client.prepare_index_params()
        index.add_index(field_name="vector", index_type="HNSW", metric_type="COSINE", params=HNSW)
        self._client.create_collection(self.collection, schema=schema, index_params=index,
                                       consistency_level="Strong")

    def add(self, ids: np.ndarray, vectors: np.ndarray, meta: list[tuple[str, str | None, str | None]] | None = None
            ) -> None:
        """Upsert vectors; ``meta``: ``(article id, date, source)`` per vector, for filters."""
        ids = np.asarray(ids, np.int64)
        vectors = np.asarray(vectors, np.float32).reshape(len(ids), self.dimension)
        meta = meta or [("", None, None)] * len(ids)
        for start in range(0, len(ids), WRITE_BATCH):
            rows = [{"id": int(i), "vector": v.tolist(), "article_id": a or "", "date": d or "",
                     "source": (s or "").lower()}
                    for i, v, (a, d, s) in zip(ids[start:start + WRITE_BATCH], vectors[start:start + WRITE_BATCH],
                                               meta[start:start + WRITE_BATCH])]
            self._client.upsert(self.collection, rows)

    def delete(self, ids: Iterable[int]) -> None:
        ids = [int(i) for i in ids]
        for start in range(0, len(ids), WRITE_BATCH):
            self._client.delete(self.collection, ids=ids[start:start + WRITE_BATCH])

    def count(self) -> int:
        rows = self._client.query(self.collection, filter="", output_fields=["count(*)"],
                                  consistency_level="Strong")
        return int(rows[0]["count(*)"])

    def ids(self) -> np.ndarray:
        import logging

        logging.getLogger("pymilvus").setLevel(logging.ERROR)  # the iterator warns of a fallback it handles
        found = []
        iterator = self._client.query_iterator(self.collection, batch_size=10_000, filter="id >= 0",
                                               output_fields=["id"])
        while True:
            batch = iterator.next()
            if not batch:
                break
            found.extend(r["id"] for r in batch)
        iterator.close()
        return np.array(sorted(found), dtype=np.int64)

    def search(self, query: np.ndarray, k: int, allowed: Iterable[int] | None = None, filters=None) -> Results:
        """The ``k`` most similar ids; ``filters`` (the store's ``Filters``) run inside Milvus,
        ``allowed`` restricts to these ids."""
        if k <= 0:
            return []
        expressions = [_filter_expression(filters)] if filters else []
        allowed_set = None
        if allowed is not None:
            allowed = [int(i) for i in allowed]
            if not allowed:
                return []
            if len(allowed) <= IDS_IN_EXPRESSION:
                expressions.append(f"id in {allowed}")
            else:
                allowed_set = set(allowed)
        limit = min(MAX_K, k if allowed_set is None else k * 4)
        hits = self._client.search(self.collection, [np.asarray(query, np.float32).tolist()], limit=limit,
                                   filter=" and ".join(f"({e})" for e in expressions if e),
                                   search_params={"metric_type": "COSINE", "params": {"ef": max(EF_SEARCH, limit)}},
                                   consistency_level=READS)[0]
        results = [(int(h["id"]), float(h["distance"])) for h in hits]
        if allowed_set is not None:
            results = [r for r in results if r[0] in allowed_set]
        return results[:k]

    def scores(self, query: np.ndarray, ids: Iterable[int]) -> dict[int, float]:
        ids = [int(i) for i in ids]
        out: dict[int, float] = {}
        for start in range(0, len(ids), WRITE_BATCH):
            rows = self._client.get(self.collection, ids=ids[start:start + WRITE_BATCH], output_fields=["vector"],
                                    consistency_level=READS)
            for r in rows:
                out[int(r["id"])] = float(np.asarray(r["vector"], np.float32) @ np.asarray(query, np.float32))
        return out

    def save(self, path: Path | None = None) -> None:
        """Make what was written durable (the collection is the file: ``path`` is unused)."""
        self._client.flush(self.collection)

    def drop(self) -> None:
        self._client.drop_collection(self.collection)

    def info(self) -> dict:
        return {"kind": self.kind, "count": self.count(), "uri": self.uri, "collection": self.collection,
                "index": "HNSW", "metric": "COSINE", "params": HNSW, "ef": EF_SEARCH}


def _quoted(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _filter_expression(filters) -> str:
    """The store's ``Filters`` as a Milvus boolean expression over the scalar fields."""
    parts = []
    if filters.since:
        parts.append(f"date >= {_quoted(filters.since)}")
    if filters.until:
        parts.append(f"date <= {_quoted(filters.until)} and date != \"\"")
    if filters.since:
        parts.append('date != ""')
    if filters.sources:
        parts.append(f"source in [{', '.join(_quoted(s.lower()) for s in filters.sources)}]")
    if filters.as_of:
        parts.append(f"(date == \"\" or date <= {_quoted(filters.as_of)})")
    return " and ".join(parts)
