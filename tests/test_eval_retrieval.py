"""`sciknow eval retrieval` end to end on a tiny docs tree written here (real MiniLM)."""

from __future__ import annotations

import argparse
import json
import subprocess

import pytest

from sciknow.eval.baseline import MarkdownChunkSource
from sciknow.eval.cli import add_eval_parser
from sciknow.eval.retrieval import EvalRequest, run
from sciknow.index.store import Store

FAQ = """# FAQ

(doc_faq_tol)=
## How do I make the solver stop earlier?

Loosen the tolerances with KSPSetTolerances or -ksp_rtol.

## Why is my matrix assembly slow?

Preallocate with MatSeqAIJSetPreallocation before MatSetValues.
"""

MANUAL = """# Linear solvers

## Convergence

Convergence is decided by KSPSetTolerances; from the command line, -ksp_rtol sets the
relative tolerance and -ksp_max_it the iteration limit.

## Matrix assembly

Call MatSeqAIJSetPreallocation first, then MatSetValues in a loop.
"""

QUESTIONS = [
    {
        "id": "q1",
        "question": "How do I make the solver stop earlier?",
        "answer": "Loosen the tolerances with KSPSetTolerances or -ksp_rtol.",
        "source_path": "doc/faq/index.md",
        "anchor": "doc_faq_tol",
    },
    {
        "id": "q2",
        "question": "Why is my matrix assembly slow?",
        "answer": "Preallocate with MatSeqAIJSetPreallocation before MatSetValues.",
        "source_path": "doc/faq/index.md",
        "anchor": "why-is-my-matrix-assembly-slow",
    },
]


ITFUNC_C = """
/*@
  KSPSetIterationCap - Caps the number of iterations of the solver

  Logically Collective

  Options Database Key:
. -ksp_iteration_cap <n> - the cap

  Level: beginner
@*/
PetscErrorCode KSPSetIterationCap(KSP ksp, PetscInt n)
{
  return 0;
}
"""

CAP_QUESTION = {
    "id": "q3",
    "question": "How do I cap the number of iterations of the solver?",
    "answer": "Call KSPSetIterationCap or pass -ksp_iteration_cap.",
}


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    from sciknow.config import load_config

    root = tmp_path_factory.mktemp("eval")
    (root / "docs" / "faq").mkdir(parents=True)
    (root / "docs" / "manual").mkdir()
    (root / "docs" / "faq" / "index.md").write_text(FAQ)
    (root / "docs" / "manual" / "ksp.md").write_text(MANUAL)
    dataset = root / "set.jsonl"
    dataset.write_text("\n".join(json.dumps(q) for q in QUESTIONS) + "\n")
    config = load_config(environ={"SCIKNOW_DATA_DIR": str(root / "data")})
    return root, dataset, config


def _request(root, dataset, exclude=()):
    return EvalRequest(
        dataset=dataset,
        corpus=root / "docs",
        pipelines=["baseline", "fusion", "default"],
        ks=[1, 4],
        exclude=list(exclude),
        cache=root / "cache",
    )


def test_baseline_source_chunks_raw_markdown_with_covered_sections(setup):
    from sciknow.config import Profile

    root, _, _ = setup
    source = MarkdownChunkSource("b", root / "docs", Profile(), chunk_chars=160, overlap_chars=20)
    docs = list(source.iter_documents(None))
    faq = [d for d in docs if d.meta["path"] == "faq/index.md"]
    assert all(len(d.text) <= 160 for d in docs) and len(faq) >= 2
    assert any("doc_faq_tol" in d.meta["anchors"] for d in faq)
    assert faq[0].uri == "https://petsc.org/release/faq/"
    held_out = MarkdownChunkSource("b", root / "docs", Profile(), ["faq/"])
    assert held_out.pages() == ["manual/ksp.md"]


def test_indexed_mode_reports_gold_recall_for_every_pipeline(setup, embedder):
    root, dataset, config = setup
    report = run(_request(root, dataset), config, embedder)
    assert report["mode"] == "all" and report["questions"] == 2
    by_name = {p["name"]: p for p in report["pipelines"]}
    assert set(by_name) == {"baseline", "fusion", "default"}
    for result in by_name.values():
        assert result["gold_questions"] == 2 and result["symbol_questions"] == 2
        assert result["recall"][4] == 1.0 and result["mrr"] > 0.5
        assert result["ceiling"] == 1.0 and result["latency_ms"]["p95"] > 0
        assert len(result["per_question"][0]["passages"]) <= 4


def test_held_out_mode_reports_symbol_recall_and_reuses_indexes(setup, embedder):
    root, dataset, config = setup
    report = run(_request(root, dataset, ["faq/"]), config, embedder)
    result = report["pipelines"][-1]
    assert report["mode"] == "excl-faq" and result["gold_questions"] == 0
    assert result["recall"][1] is None and result["mrr"] is None
    assert result["symbol_recall"][4] == 1.0  # the manual names every reference symbol
    cached = sorted(p.name for p in (root / "cache").iterdir())
    assert cached == ["baseline-all", "baseline-excl-faq", "sciknow-all", "sciknow-excl-faq"]


def test_cli_writes_the_report_files(setup, capsys):
    root, dataset, config = setup
    parser = argparse.ArgumentParser()
    add_eval_parser(parser.add_subparsers())
    args = parser.parse_args(
        ["eval", "retrieval", "--dataset", str(dataset), "--corpus", str(root / "docs"),
         "--cache", str(root / "cache"), "--out", str(root / "out"), "-k", "1,4",
         "--pipeline", "baseline", "--exclude-path", "faq/"]
    )  # fmt: skip
    assert args.run(args, config) == 0
    printed = capsys.readouterr().out
    assert printed.startswith("| pipeline | R@1 | R@4 | MRR | SymR@1 | SymR@4 |")
    assert sorted(p.name for p in (root / "out").iterdir()) == [
        "retrieval-excl-faq.json",
        "retrieval-excl-faq.md",
        "retrieval-excl-faq.png",
    ]
    with pytest.raises(SystemExit):
        parser.parse_args(["eval", "retrieval", "--dataset", "x", "-k", "0,4"])


def test_repo_mode_adds_the_repository_but_not_its_docs(setup, embedder, tmp_path):
    root, _, config = setup
    repo = tmp_path / "petsc"
    (repo / "src" / "ksp").mkdir(parents=True)
    (repo / "doc" / "faq").mkdir(parents=True)
    (repo / "src" / "ksp" / "itfunc.c").write_text(ITFUNC_C)
    (repo / "doc" / "faq" / "index.md").write_text(FAQ)  # must come from the corpus only
    for args in (
        ["init", "-q"],
        ["add", "-A"],
        ["-c", "user.name=t", "-c", "user.email=t@e.org", "commit", "-q", "-m", "fixture"],
    ):
        subprocess.run(["git", *args], cwd=repo, check=True)
    dataset = tmp_path / "cap.jsonl"
    dataset.write_text(json.dumps(CAP_QUESTION) + "\n")
    request = _request(root, dataset, ["faq/"])
    request.repo = str(repo)
    report = run(request, config, embedder)
    assert report["mode"] == "repo-excl-faq" and report["repo"] == str(repo)
    by_name = {p["name"]: p for p in report["pipelines"]}
    assert by_name["default"]["symbol_recall"][1] == 1.0  # the man page, from the repository
    assert by_name["default"]["per_question"][0]["passages"][0].startswith("petsc-git:src/ksp/")
    assert by_name["baseline"]["ceiling"] == 0.0  # the docs never name it
    assert (root / "cache" / "sciknow-repo-excl-faq").is_dir()
    store = Store(root / "cache" / "sciknow-repo-excl-faq")
    origins = {o for (o,) in store.conn.execute("SELECT origin FROM documents")}
    assert "src/ksp/itfunc.c" in origins and not any(o.startswith("doc/") for o in origins)
    assert not any(o.startswith("faq/") for o in origins)
