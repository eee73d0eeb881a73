"""Overlapped ingest: reading in a thread while the embedder works leaves exactly the index
the sequential run leaves, from scratch and incrementally; errors on either side stop
both; the embedding cache is written in large transactions (real embedder, SQLite, FAISS)."""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
import pytest
from support.sources import ListSource

from sciknow.index import pipeline
from sciknow.index.chunking import Chunker
from sciknow.index.pipeline import ingest
from sciknow.index.store import EmbeddingCache, Store
from sciknow.records import Document

PREFIXES = ("KSP", "PC", "Mat", "Vec", "SNES")
PARAGRAPH = (
    "The Krylov solver KSPSolve iterates until the residual norm falls below the tolerance "
    "given to KSPSetTolerances; a preconditioner chosen with PCSetType speeds it up. "
)


def _doc(n: int, text: str, kind: str = "doc") -> Document:
    return Document(
        id=f"fx:{n}",
        source="fx",
        kind=kind,
        uri=f"https://example.org/{n}",
        title=f"Page {n}",
        text=text,
        origin=f"page{n}.md",
    )


def corpus() -> list[Document]:
    """Short and long pages (split into several chunks), code (no vectors), repeats."""
    docs = [_doc(n, f"{PARAGRAPH}Page {n} adds MatMult variant {n}.") for n in range(12)]
    docs += [_doc(12 + n, PARAGRAPH * (4 + n) + f"Long page {n}.") for n in range(4)]
    docs += [_doc(16 + n, f"int f{n}(Vec v) {{ return VecNorm(v); }}\n", "code") for n in range(3)]
    docs.append(_doc(19, docs[0].text))  # the same text as page 0, another document
    return docs


@pytest.fixture
def small_windows(monkeypatch):
    """Windows, slices, queue and transactions far smaller than the corpus, so the reader
    blocks on a full queue and the loop embeds many windows."""
    monkeypatch.setattr(pipeline, "WINDOW", 4)
    monkeypatch.setattr(pipeline, "SLICE", 3)
    monkeypatch.setattr(pipeline, "QUEUE_GROUPS", 1)
    monkeypatch.setattr(pipeline, "FLUSH_VECTORS", 5)


def chunker() -> Chunker:
    return Chunker(max_tokens=64, overlap=8, symbol_prefixes=PREFIXES)


def snapshot(store: Store) -> dict:
    """Everything the index holds: rows of every table, FAISS ids and vectors, BM25 ids."""
    import faiss

    tables = {
        table: store.conn.execute(f"SELECT * FROM {table} ORDER BY 1, 2").fetchall()
        for table in ("documents", "chunks", "symbols", "source_state", "meta")
    }
    generation = store.generation()
    index = faiss.read_index(str(store.root / "vectors" / f"gen-{generation}.faiss"))
    ids = faiss.vector_to_array(index.id_map)
    vectors = np.stack([index.reconstruct(int(i)) for i in ids]) if len(ids) else None
    bm25 = np.load(store.root / "bm25" / f"gen-{generation}" / "rowids.npy")
    return {"tables": tables, "ids": ids.tolist(), "vectors": vectors, "bm25": bm25.tolist()}


def assert_same(first: dict, second: dict) -> None:
    assert first["tables"] == second["tables"]
    assert first["ids"] == second["ids"] and first["bm25"] == second["bm25"]
    np.testing.assert_allclose(first["vectors"], second["vectors"], atol=1e-6)


def run_both(tmp_path: Path, embedder, docs: list[Document]) -> tuple:
    reports = []
    for overlap in (True, False):
        store = Store(tmp_path / f"overlap-{overlap}")
        reports.append(
            ingest(store, [ListSource("fx", docs)], embedder, chunker(), None, ["code"], overlap)
        )
    return reports


def test_overlapped_ingest_leaves_the_sequential_index(tmp_path, embedder, small_windows):
    docs = corpus()
    overlapped, sequential = run_both(tmp_path, embedder, docs)
    a, b = Store(tmp_path / "overlap-True"), Store(tmp_path / "overlap-False")
    assert_same(snapshot(a), snapshot(b))
    assert overlapped.chunks == sequential.chunks > len(docs)  # long pages were split
    assert overlapped.embedded == sequential.embedded
    code_chunks = 3
    assert len(snapshot(a)["ids"]) == overlapped.chunks - code_chunks

    # Incremental: one page edited, one removed, one added; the rest is not re-embedded.
    docs[3] = _doc(3, PARAGRAPH + "An edited page about -ksp_rtol.")
    del docs[5]
    docs.append(_doc(40, "A new page about SNESSetTolerances and line searches."))
    overlapped, sequential = run_both(tmp_path, embedder, docs)
    assert_same(
        snapshot(Store(tmp_path / "overlap-True")), snapshot(Store(tmp_path / "overlap-False"))
    )
    for report in (overlapped, sequential):
        assert (report.documents, report.deleted_documents, report.embedded) == (2, 1, 2)
    assert Store(tmp_path / "overlap-True").generation() == 2


def test_the_cache_is_written_in_large_transactions(tmp_path, embedder, monkeypatch):
    sizes: list[int] = []
    put = EmbeddingCache.put

    def counted(cache, hashes, vectors, model):
        sizes.append(len(hashes))
        put(cache, hashes, vectors, model)

    monkeypatch.setattr(EmbeddingCache, "put", counted)
    report = ingest(
        Store(tmp_path), [ListSource("fx", corpus())], embedder, chunker(), None, ["code"]
    )
    assert sizes == [report.embedded]  # one transaction for the whole fixture corpus

    sizes.clear()
    monkeypatch.setattr(pipeline, "FLUSH_VECTORS", 5)
    monkeypatch.setattr(pipeline, "WINDOW", 4)
    monkeypatch.setattr(pipeline, "SLICE", 3)
    docs = [_doc(100 + n, f"Fresh page {n} about VecScale and VecAXPY.") for n in range(12)]
    ingest(Store(tmp_path), [ListSource("fx", docs)], embedder, chunker(), None, ["code"])
    assert sum(sizes) == 12 and all(size >= 5 for size in sizes[:-1])


def reader_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "sciknow-read"]


def test_a_reading_error_stops_the_ingest_and_keeps_the_index(tmp_path, embedder, small_windows):
    store = Store(tmp_path)
    ingest(store, [ListSource("fx", corpus()[:4])], embedder, chunker())
    with pytest.raises(OSError, match="the disk went away"):
        ingest(Store(tmp_path), [ListSource("fx", corpus(), fail_after=9)], embedder, chunker())
    assert Store(tmp_path).generation() == 1 and not reader_threads()


class FailingEmbedder:
    """The real embedder until its second batch, then an error (a dead server, Ctrl-C)."""

    def __init__(self, embedder) -> None:
        self.inner, self.name, self.calls = embedder, embedder.name, 0

    @property
    def dimension(self) -> int:
        return self.inner.dimension

    def embed(self, texts: list[str]) -> np.ndarray:
        self.calls += 1
        if self.calls > 1:
            raise KeyboardInterrupt
        return self.inner.embed(texts)


def test_an_embedding_error_stops_the_reader_and_keeps_finished_work(
    tmp_path, embedder, small_windows
):
    store = Store(tmp_path)
    failing = FailingEmbedder(embedder)
    with pytest.raises(KeyboardInterrupt):
        ingest(store, [ListSource("fx", corpus())], failing, chunker())
    assert not reader_threads()  # the reader, blocked on the full queue, was released
    assert store.generation() == 0
    cached = store.cache.conn.execute("SELECT COUNT(*) FROM embeddings").fetchone()[0]
    assert cached == 3  # the first slice, flushed on the way out
