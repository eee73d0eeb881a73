"""Integration: ingest the PETSc docs snapshot and find the right page for real questions.

Skipped when ../shared/corpus/petsc-doc is absent. Embeds the whole snapshot
(about 3,600 chunks: a few minutes on 2 cores).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from sciknow.config import load_config
from sciknow.index.factory import make_chunker, open_store
from sciknow.index.pipeline import ingest
from sciknow.ingest.registry import make_sources, source_for_location
from sciknow.rerank.hybrid import HybridRetriever

CORPUS = Path(__file__).resolve().parents[2] / "shared" / "corpus" / "petsc-doc"

QUESTIONS = {
    "How do I set the relative convergence tolerance of a Krylov solver?": "manual/ksp.md",
    "How do I get a performance summary of my run?": "manual/profiling.md",
    "How do I preallocate memory for an AIJ sparse matrix?": "manual/mat.md",
    "How do I configure PETSc to download and build MPICH?": "install/install.md",
    "How do I choose the nonlinear line search?": "manual/snes.md",
    "How do I create a distributed array for a structured grid?": "manual/vec.md",
}


@pytest.mark.slow
@pytest.mark.skipif(not CORPUS.is_dir(), reason="../shared/corpus/petsc-doc is absent")
def test_petsc_doc_snapshot_answers_with_the_right_page(tmp_path, embedder):
    config = load_config(environ={"SCIKNOW_DATA_DIR": str(tmp_path)})
    sources = make_sources(source_for_location(str(CORPUS), config), config)
    report = ingest(open_store(config), sources, embedder, make_chunker(config))
    assert report.documents > 1000 and not report.skipped
    retriever = HybridRetriever(open_store(config), embedder, config.retrieval, config.profile)
    for question, page in QUESTIONS.items():
        top = retriever.search(question, k=5)
        pages = [e.doc_id.split(":", 1)[1].split("#")[0] for e in top]
        assert page in pages, (question, pages)
        assert all(e.uri.startswith("https://petsc.org/release/") for e in top)
