"""Beyond one machine, on real servers the tests start: Milvus as the vector store, Ray for
bulk embedding. (The vector-index contract over Milvus: tests/test_vector_index.py.)"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

import numpy as np
import pytest

from embeddings.indexer import update_index
from embeddings.reader import open_index
from embeddings.settings import IndexSettings
from embeddings.store import Filters, Store
from qa.retrieve import Retriever
from qa.settings import Settings
from tests.conftest import ROOT, SEED, FakeEncoder

pytestmark = pytest.mark.milvus


def test_stopping_a_server_group_leaves_no_child_behind():
    """As milvus-server's own child outlives a SIGTERM to it (the session's Milvus fixture
    also checks its group is gone when it stops)."""
    from tests.servers import group_alive, stop_group

    parent = subprocess.Popen(["bash", "-c", "trap '' TERM; sleep 300 & sleep 300"], start_new_session=True)
    assert group_alive(parent.pid)
    stop_group(parent, grace=1)
    assert not group_alive(parent.pid)


def milvus_settings(tmp_path, uri, **kw) -> IndexSettings:
    return IndexSettings(index_dir=tmp_path / "index", vector_store="milvus", milvus_uri=uri,
                         milvus_collection=f"t_{abs(hash(str(tmp_path))) % 10**9}", **kw)


def test_an_index_on_milvus_updates_filters_on_the_server_and_heals_from_the_store(tmp_path, milvus_uri, corpus):
    settings = milvus_settings(tmp_path, milvus_uri, commit_every=2)
    encoder = FakeEncoder()
    update_index([corpus], settings, encoder)
    index = open_index(settings, encoder.identity, encoder.dimension)
    assert index.vectors.kind == "milvus" and index.manifest["vector_index"]["collection"] == settings.milvus_collection
    assert np.array_equal(index.vectors.ids(), index.store.all_passage_ids())
    retriever = Retriever(index, encoder, Settings(index=settings))
    only_may_3 = retriever.search("ferry service strike", k=10, filters=Filters(since="2018-05-03"))
    assert {h.passage.date for h in only_may_3} == {"2018-05-03"}
    by_source = retriever.search("ferry", k=10, filters=Filters(sources=("harbour times",)))
    assert {h.passage.source for h in by_source} == {"Harbour Times"}
    index.close()

    (corpus / "ferry.txt").unlink()  # removed: its vectors leave Milvus too
    update_index([corpus], settings, encoder)
    index = open_index(settings, encoder.identity, encoder.dimension)
    assert np.array_equal(index.vectors.ids(), index.store.all_passage_ids())
    index.vectors.delete(index.store.all_passage_ids()[:2])  # the server lost vectors
    index.close()
    from embeddings.check import check_index

    [problem] = check_index(settings.index_dir, thorough=True)
    assert "holds" in problem and "qa index --repair" in problem
    healed = open_index(settings, encoder.identity, encoder.dimension)  # refilled from the store
    assert np.array_equal(healed.vectors.ids(), healed.store.all_passage_ids())
    healed.close()
    assert check_index(settings.index_dir, thorough=True) == []


@pytest.mark.model
def test_qa_index_with_ray_into_milvus_answers_the_villages_question(tmp_path, milvus_uri, real_encoder):
    env = {**os.environ, "QA_INDEX_DIR": str(tmp_path / "index"), "HF_HUB_OFFLINE": "1", "RAY_AUTH_MODE": "disabled"}
    folder = tmp_path / "articles"
    folder.mkdir()
    shutil.copy(SEED, folder)
    store_flags = ["--vector-store", "milvus", "--milvus-uri", milvus_uri, "--milvus-collection", "villages"]
    index = subprocess.run([sys.executable, "-m", "qa.cli", "index", str(folder), "--ray", *store_flags],
                           cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert index.returncode == 0, index.stderr[-3000:]
    assert "embedding on Ray" in index.stderr and "4 passages encoded" in index.stdout
    leftover = subprocess.run(["pgrep", "-f", "raylet|gcs_server"], capture_output=True, text=True).stdout
    assert not leftover, "the local Ray instance left processes behind"
    ask = subprocess.run([sys.executable, "-m", "qa.cli", "ask", "Where does IS still hold villages?", "-k", "2"],
                         cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)  # the manifest names Milvus
    assert ask.returncode == 0, ask.stderr[-3000:]
    assert ask.stdout.startswith("“IS holds dozens of villages in eastern Syria")
    # the vectors the Ray workers made are the driver's own
    with Store(tmp_path / "index" / "store.sqlite", snapshot=True) as store:
        ids, vectors = store.vectors()
        texts = [p.text for p in store.passages(ids.tolist()).values()]
    local = real_encoder.encode_passages(texts, [()] * len(texts))[0]
    assert float(np.min(np.sum(local * vectors, axis=1))) > 0.999
    status = subprocess.run([sys.executable, "-m", "qa.cli", "status"], cwd=ROOT, env=env, capture_output=True,
                            text=True, timeout=300)
    assert "vectors:     milvus: collection villages" in status.stdout
    assert "lexical:     BM25 on SQLite FTS5" in status.stdout
