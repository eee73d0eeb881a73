"""Benchmark: drafting one doc patch, and `sciknow gaps` over a 10,000-message archive.

    python bench/bench_docpatch.py --docs ../shared/corpus/petsc-doc --data-dir .sciknow \
        [--messages 10000] [--repeat 3] [--skip draft,gaps]

`--data-dir` is an index of `--docs` (`sciknow ingest` it first); it is copied, never
written. Drafting runs against a git copy of `--docs` made here: `sciknow patch` as a new
process (the way a person runs it: Python start, index and embedder load, retrieval,
checks, writing the files), then `make_draft` in this process `--repeat` times. The gaps
part writes a synthetic archive (`mail_archive.py`), ingests it into the copied index
(timed apart), then times `sciknow gaps` as a new process and `gaps_report` in process.
Targets: under 60 s for one patch, under 2 minutes for the gaps of 10,000 messages.
`BENCH_CONFIG` adds TOML to the generated config (e.g. `[models]` keys the index needs).
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from mail_archive import MAINTAINERS, write_archive

QUESTION = "Should a few dense constraint rows and columns use MatLRC or PCFIELDSPLIT?"
ANSWER = (
    "For fewer than about 50 constraints use MatLRC: the cost is the inversion of a dense "
    "matrix of size k x k. PCFIELDSPLIT with an IS works too, but dense rows can slow "
    "iterative convergence."
)
SCIKNOW = [sys.executable, "-m", "sciknow.ui.cli"]
EXTRA = os.environ.get("BENCH_CONFIG", "")  # more TOML, e.g. "[models]\nembedder_backend = ..."


def _config(folder: Path, data: Path) -> Path:
    path = folder / "sciknow.toml"
    names = ", ".join(f'"{m}"' for m in MAINTAINERS)
    path.write_text(f'data_dir = "{data}"\n[profile]\nmaintainers = [{names}]\n{EXTRA}')
    return path


def _run(args: list[str], config: Path) -> float:
    started = time.perf_counter()
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    subprocess.run(
        [*SCIKNOW, "--config", str(config), *args], check=True, env=env, stdout=subprocess.DEVNULL
    )
    return time.perf_counter() - started


def _git_copy(docs: Path, folder: Path) -> Path:
    repo = folder / "docs"
    shutil.copytree(docs, repo)
    for args in (["init", "-q", "-b", "main"], ["add", "-A"], ["commit", "-qm", "docs"]):
        subprocess.run(
            ["git", "-c", "user.name=b", "-c", "user.email=b@localhost", *args],
            cwd=repo,
            check=True,
        )
    return repo


def bench_draft(config_path: Path, repo: Path, out: Path, repeat: int) -> None:
    from sciknow.config import load_config
    from sciknow.serve.docpatch.draft import make_draft
    from sciknow.serve.docpatch.gitops import DocsRepo
    from sciknow.serve.docpatch.sources import from_answer
    from sciknow.serve.factory import build_retriever

    cold = _run(
        [
            "patch",
            "--docs-repo",
            str(repo),
            "--question",
            QUESTION,
            "--answer",
            ANSWER,
            "--out",
            str(out),
        ],
        config_path,
    )
    print(f"draft: sciknow patch (new process, assembled text) {cold:.1f} s")
    config = load_config(config_path)
    retriever = build_retriever(config)  # the embedder loads on first use, in the first draft
    docs = DocsRepo(repo)
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        make_draft(config, docs, from_answer(QUESTION, ANSWER), retriever)
        times.append(time.perf_counter() - started)
    print(
        f"draft: make_draft in process: first {times[0]:.2f} s (loads the embedder), "
        f"then best {min(times[1:] or times):.2f} s"
    )


def bench_gaps(config_path: Path, folder: Path, messages: int) -> None:
    from sciknow.config import load_config
    from sciknow.index.factory import load_embedder, open_store
    from sciknow.serve.docpatch.gaps import gaps_report

    mbox = folder / "list.mbox"
    written = write_archive(mbox, messages)
    ingest = _run(["ingest", str(mbox)], config_path)
    print(f"gaps: ingest of {written} messages {ingest:.1f} s (not part of the target)")
    cold = _run(["gaps"], config_path)
    print(f"gaps: sciknow gaps (new process) {cold:.1f} s")
    config = load_config(config_path)
    store, embedder = open_store(config), load_embedder(config)
    started = time.perf_counter()
    report = gaps_report(config, store, embedder)
    seconds = time.perf_counter() - started
    print(
        f"gaps: gaps_report in process {seconds:.1f} s: {report['questions']} questions, "
        f"{report['weak']} weakly answered, {len(report['gaps'])} gaps"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--docs", type=Path, required=True)
    parser.add_argument("--data-dir", type=Path, required=True, help="an index of --docs")
    parser.add_argument("--messages", type=int, default=10_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--skip", default="", help="comma-separated: draft, gaps")
    args = parser.parse_args()
    skip = set(args.skip.split(","))
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        data = folder / "data"
        shutil.copytree(args.data_dir, data, ignore=shutil.ignore_patterns("feedback.sqlite*"))
        config = _config(folder, data)
        if "draft" not in skip:
            bench_draft(config, _git_copy(args.docs, folder), folder / "out", args.repeat)
        if "gaps" not in skip:
            bench_gaps(config, folder, args.messages)


if __name__ == "__main__":
    main()
