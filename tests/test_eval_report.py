"""Report files: the JSON round-trips, the Markdown table has every number, the PNG is a PNG."""

from __future__ import annotations

import json

import pytest

from sciknow.eval.report import markdown_table, write_report

pytest.importorskip("matplotlib")


def _pipeline(name: str, recall: float | None, sym: float) -> dict:
    ks = range(1, 5)
    return {
        "name": name,
        "description": name,
        "questions": 2,
        "gold_questions": 2 if recall is not None else 0,
        "symbol_questions": 1,
        "recall": {k: (None if recall is None else min(1.0, recall * k)) for k in ks},
        "mrr": None if recall is None else recall,
        "symbol_recall": {k: sym for k in ks},
        "ceiling": 0.9,
        "latency_ms": {"p50": 12.34, "p95": 56.78},
        "per_question": [],
    }


REPORT = {
    "dataset": "set.jsonl",
    "corpus": "docs",
    "exclude": [],
    "mode": "all",
    "questions": 2,
    "ks": [1, 4],
    "context_budget_chars": 8000,
    "embedder": "st:test",
    "pipelines": [_pipeline("baseline", 0.25, 0.3), _pipeline("default", 0.5, 0.6)],
}


def test_markdown_table_rows_and_note():
    table = markdown_table(REPORT)
    lines = table.splitlines()
    assert lines[0] == (
        "| pipeline | R@1 | R@4 | MRR | SymR@1 | SymR@4 | ceiling | p50 ms | p95 ms |"
    )
    assert lines[2] == "| baseline | 0.25 | 1.00 | 0.25 | 0.30 | 0.30 | 0.90 | 12.3 | 56.8 |"
    assert lines[3].startswith("| default | 0.50 | 1.00 | 0.50 | 0.60 |")
    assert "2 questions (2 with the gold page indexed, 1 naming symbols)" in table
    assert "8,000 characters" in table


def test_write_report_files(tmp_path):
    paths = write_report(REPORT, tmp_path / "out")
    assert {p.name for p in paths.values()} == {
        "retrieval-all.json",
        "retrieval-all.md",
        "retrieval-all.png",
    }
    loaded = json.loads(paths["json"].read_text())
    assert loaded["pipelines"][1]["symbol_recall"]["4"] == 0.6
    assert markdown_table(loaded) == paths["md"].read_text()  # string keys read back too
    assert paths["png"].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_held_out_report_has_dashes_for_gold_recall(tmp_path):
    held_out = {
        **REPORT,
        "mode": "excl-faq",
        "pipelines": [_pipeline("baseline", None, 0.3)],
    }
    assert "| baseline | – | – | – | 0.30 |" in markdown_table(held_out)
    assert write_report(held_out, tmp_path)["png"].stat().st_size > 0
