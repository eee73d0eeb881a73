"""Retrieval metrics on small hand-computed cases, gold matching and question loading."""

from __future__ import annotations

import json
import math

import pytest

from sciknow.config import Profile
from sciknow.errors import SourceError
from sciknow.eval.baseline import covered_anchors
from sciknow.eval.metrics import (
    budget_prefix,
    coverage,
    first_hit,
    mean,
    percentile,
    recall_at,
    reciprocal_rank,
    symbol_recall,
    tokens,
)
from sciknow.eval.retrieval import Question, is_gold, load_questions
from sciknow.ingest.rest import Section


def test_rank_metrics_hand_computed():
    assert first_hit([False, False, True, True]) == 3
    assert first_hit([False, False]) is None
    assert [recall_at(3, k) for k in (1, 2, 3, 8)] == [0.0, 0.0, 1.0, 1.0]
    assert recall_at(None, 8) == 0.0
    # Three questions with gold at ranks 1, 4 and nowhere: MRR = (1 + 1/4 + 0) / 3.
    assert mean(reciprocal_rank(r) for r in (1, 4, None)) == pytest.approx(1.25 / 3)
    assert mean(recall_at(r, 4) for r in (1, 4, None)) == pytest.approx(2 / 3)


def test_symbol_recall_counts_whole_tokens_only():
    passages = ["Use KSPSolveTranspose and -ksp_monitor_true_residual.", "Call KSPSetUp()."]
    symbols = ["KSPSolve", "-ksp_monitor", "KSPSetUp", "-ksp_monitor_true_residual"]
    assert symbol_recall(symbols, passages, 1) == pytest.approx(1 / 4)
    assert symbol_recall(symbols, passages, 2) == pytest.approx(2 / 4)
    assert symbol_recall([], passages, 2) is None
    assert tokens("x = MatCreate(PETSC_COMM_WORLD); -pc_type lu") >= {
        "MatCreate",
        "PETSC_COMM_WORLD",
        "-pc_type",
    }


def test_symbol_recall_stops_at_the_context_budget():
    first = "a" * 95 + " VecNorm"  # 103 characters: VecNorm ends past a 100-character budget
    passages = [first, "VecDot"]
    assert budget_prefix(passages, 2, 100) == first[:100]
    assert symbol_recall(["VecNorm", "VecDot"], passages, 2, budget=100) == 0.0
    assert symbol_recall(["VecNorm", "VecDot"], passages, 2, budget=200) == 1.0


def test_coverage_mean_and_percentiles():
    assert coverage(["A", "B", "C", "D"], {"A", "C", "Z"}) == 0.5
    assert coverage([], {"A"}) is None
    assert mean([None, 1.0, 0.0]) == 0.5 and mean([None]) is None
    values = [10.0, 20.0, 30.0, 40.0, 50.0]
    assert percentile(values, 50) == 30.0
    assert percentile(values, 95) == pytest.approx(48.0)  # 40 + 0.8 * (50 - 40)
    assert math.isnan(percentile([], 50))


def _section(anchor: str, start: int, end: int, labels: tuple[str, ...] = ()) -> Section:
    return Section(anchor, 3, [anchor], anchor + "-slug", anchor, list(labels), "", start, end)


def test_baseline_chunks_cover_sections_they_mostly_overlap():
    sections = [_section("a", 1, 10), _section("b", 11, 12, ("lbl_b",)), _section("c", 13, 60)]
    # Lines 9-20 hold two of a's ten lines (not half of the shorter span), all of b,
    # and half of the chunk's lines of c (8 of 12).
    assert covered_anchors(9, 20, sections) == ["b", "b-slug", "lbl_b", "c", "c-slug"]
    assert covered_anchors(30, 40, sections) == ["c", "c-slug"]


def test_gold_match_on_path_and_any_anchor_form():
    question = Question("q1", "?", "", source_path="doc/faq/index.md", anchor="doc_faq_x")
    sciknow = {"path": "faq/index.md", "anchor": "doc_faq_x", "slug": "why", "labels": []}
    assert is_gold(sciknow, question)
    assert is_gold({"path": "faq/index.md", "anchors": ["s", "doc_faq_x"]}, question)
    assert not is_gold({**sciknow, "path": "manual/ksp.md"}, question)
    assert not is_gold({"path": "faq/index.md", "anchor": "other"}, question)


def test_load_questions_takes_symbols_from_the_record_or_the_answer(tmp_path):
    path = tmp_path / "set.jsonl"
    records = [
        {"id": "a", "question": "Q?", "answer": "Call KSPSolve with -ksp_rtol 1e-8."},
        {"id": "b", "question": "R?", "answer": "Nothing named.", "symbols": ["VecNorm"]},
    ]
    path.write_text("\n".join(json.dumps(r) for r in records) + "\n\n")
    first, second = load_questions(path, Profile().symbol_prefixes)
    assert first.symbols == ["KSPSolve", "-ksp_rtol"] and second.symbols == ["VecNorm"]
    path.write_text('{"answer": "no question"}\n')  # no answer is allowed (an off-topic one)
    with pytest.raises(SourceError, match=r"set\.jsonl:1"):
        load_questions(path, [])
