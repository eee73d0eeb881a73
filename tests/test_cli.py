"""The `sciknow` command line, run as users run it (a real process on real files), and
how it reports a failed verb (in process)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from support.pages import write_docs

from sciknow.errors import StoreError
from sciknow.ui import cli, stats


def sciknow(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "sciknow.ui.cli", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        timeout=600,
    )


def test_ingest_search_stats_round_trip(tmp_path):
    docs = write_docs(tmp_path / "docs")
    (docs / "broken.md").write_bytes(b"\xff\xfe not utf-8 \xff")
    data = str(tmp_path / "data")
    # Declared, the folder is official and linked to petsc.org (named only on the command
    # line it would be neither).
    declared = '[[sources]]\nname = "docs"\nkind = "docs"\npath = "docs"\nofficial = true\n'
    (tmp_path / "sciknow.toml").write_text(declared)
    ingested = sciknow("--data-dir", data, "ingest", str(docs), cwd=tmp_path)
    assert ingested.returncode == 0, ingested.stderr
    assert "DEBUG" not in ingested.stderr  # the BM25 library's own chatter stays out
    summary = ingested.stdout
    assert "new or changed documents (doc 7)" in summary
    assert "skipped 1" in summary and "broken.md: not valid UTF-8" in summary

    found = sciknow(
        "--data-dir", data, "search", "set the relative tolerance", "--json", cwd=tmp_path
    )
    assert found.returncode == 0, found.stderr
    results = json.loads(found.stdout)
    assert {"id", "doc_id", "kind", "title", "uri", "score", "text"} <= results[0].keys()
    assert results[0]["title"] == "Convergence tests"
    assert results[0]["uri"] == "https://petsc.org/release/manual/ksp/#convergence-tests"

    text = sciknow("--data-dir", data, "search", "MATAIJ", "-k", "2", cwd=tmp_path)
    assert "[1] Sparse storage" in text.stdout and "manual/mat/#sparse-storage" in text.stdout

    stats = json.loads(sciknow("--data-dir", data, "stats", "--json", cwd=tmp_path).stdout)
    assert stats["documents"] == 7 and stats["chunks_by_kind"] == {"doc": 7}

    again = sciknow("--data-dir", data, "ingest", str(docs), cwd=tmp_path)
    assert "0 new or changed documents" in again.stdout


def test_errors_are_clear_and_exit_2(tmp_path):
    empty = sciknow("--data-dir", str(tmp_path / "none"), "search", "x", cwd=tmp_path)
    assert empty.returncode == 2 and "run `sciknow ingest` first" in empty.stderr
    (tmp_path / "bad.toml").write_text("[retrieval]\nk = 'many'\n")
    bad = sciknow("--config", str(tmp_path / "bad.toml"), "stats", cwd=tmp_path)
    assert bad.returncode == 2 and "retrieval.k must be an integer" in bad.stderr
    missing = sciknow("--data-dir", str(tmp_path / "d"), "ingest", "/no/such/path", cwd=tmp_path)
    assert missing.returncode == 2 and "neither an existing path nor a URL" in missing.stderr


def _stats_raising(monkeypatch, error: Exception) -> None:
    """Make `sciknow stats` fail with `error`, in process."""

    def failing(args, config):
        raise error

    monkeypatch.setattr(stats, "run_stats", failing)


def test_an_explained_error_is_one_line(monkeypatch, tmp_path, capsys):
    _stats_raising(monkeypatch, StoreError("the index is empty: run `sciknow ingest` first"))
    assert cli.main(["--data-dir", str(tmp_path), "-v", "stats"]) == 2
    err = capsys.readouterr().err
    assert err == "sciknow: error: the index is empty: run `sciknow ingest` first\n"


def test_an_unexpected_error_hints_without_v_and_shows_its_traceback_with_it(
    monkeypatch, tmp_path, capsys
):
    _stats_raising(monkeypatch, RuntimeError("CUDA out of memory"))
    assert cli.main(["--data-dir", str(tmp_path), "stats"]) == 1
    err = capsys.readouterr().err
    assert len(err.splitlines()) == 1
    assert err.startswith("sciknow: unexpected RuntimeError: CUDA out of memory (rerun with -v")
    assert cli.main(["--data-dir", str(tmp_path), "-v", "stats"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("Traceback (most recent call last):")
    assert "in failing" in err and err.endswith("RuntimeError: CUDA out of memory\n")
