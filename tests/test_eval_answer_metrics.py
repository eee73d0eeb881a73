"""Judge-free answer metrics, judge value checks and run summaries on hand-computed cases."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from sciknow.eval.answer_metrics import (
    UNIT_MATCH,
    FlagCheck,
    UnitMatcher,
    answer_precision,
    answer_recall,
    blocks,
    citation_support,
    flag_check,
    lead_hit,
    loops,
    name_issues,
    name_spans,
    supports,
    unit_precision,
    units,
    wrong_names,
)
from sciknow.eval.answers import RunSpec, judged_summary, score, summarize
from sciknow.eval.judge import JudgeSpec, Sample, checked
from sciknow.eval.retrieval import Question, load_questions
from sciknow.serve.names import NameChecker

PREFIXES = ["KSP", "PC", "Mat", "Vec"]
PASSAGES = {
    1: "KSPSetTolerances sets the relative tolerance.",
    2: "Installation needs a C compiler and MPI.",
}


def test_symbol_recall_counts_whole_names_only():
    reference = ["KSPSetTolerances", "-ksp_rtol", "KSPSolve"]
    text = "Call KSPSetTolerances or pass -ksp_rtol; KSPSolveTranspose is another thing."
    assert answer_recall(reference, text) == pytest.approx(2 / 3)  # not KSPSolve
    assert answer_recall([], text) is None
    assert answer_recall(["-ksp_monitor"], "use -ksp_monitor_true_residual") == 0.0


def test_symbol_precision_is_share_of_the_answers_names():
    names = ["KSPSetTolerances", "KSPGMRESSetRestart", "-ksp_rtol", "PCSetType"]
    assert answer_precision(["KSPSetTolerances", "-ksp_rtol", "MatAXPY"], names) == 0.5
    assert answer_precision(["KSPSetTolerances"], []) is None


def test_invented_and_removed_names_come_from_the_name_check():
    checker = NameChecker(
        ["KSPSetTolerances", "KSPSolve", "KSPNewThing"],
        PREFIXES,
        removed={"KSPOldThing": ["KSPNewThing"]},
    )
    text = "Use KSPSetTolerence and KSPOldThing, then KSPSolve; KSPSetTolerence again."
    assert name_issues(text, checker) == (["KSPSetTolerence"], ["KSPOldThing"])
    assert name_issues("KSPSolve only", checker) == ([], [])


def test_citation_support_hand_computed():
    text = (
        "Set the tolerance with KSPSetTolerances [1]. "  # shares a name with passage 1
        "You need a compiler and MPI for the installation [2]. "  # 3 of 4 terms in passage 2
        "The moon is made of cheese [1][3]. "  # [1] shares nothing; [3] was never given
        "Index with `x[1]`."  # inside code: not a citation
    )
    check = citation_support(text, PASSAGES, PREFIXES)
    assert (check.markers, check.supported) == (4, 2)
    assert check.rate == 0.5


def test_adjacent_markers_share_the_cited_text_and_blank_lines_end_it():
    check = citation_support("MatCreateAIJ and KSPSetTolerances [2][1]", PASSAGES, PREFIXES)
    assert (check.markers, check.supported) == (2, 1)
    text = "KSPSetTolerances here.\n\nUnrelated words about cheese and moon [1]"
    assert citation_support(text, PASSAGES, PREFIXES).supported == 0
    assert citation_support("No markers at all.", PASSAGES, PREFIXES).rate is None


def test_a_shared_sentence_needs_enough_terms():
    assert supports("compiler and MPI", PASSAGES[2], PREFIXES) is False  # two terms only
    assert supports("a C compiler and MPI for installation", PASSAGES[2], PREFIXES) is True


def test_loops_use_the_guards_detector():
    assert loops("The answer to your question is: " * 5)
    assert loops("Here is one line.\n" * 3 + "end")
    assert not loops("Set the tolerances with KSPSetTolerances [1]. Then call KSPSolve [2].")


def test_flags_against_errors_hand_computed():
    text = "Call KSPSetTolerence then PCSetType [1], and KSPSetTolerence later."
    assert name_spans(text, ["KSPSetTolerence"]) == [(5, 20), (45, 60)]
    flags = [
        {"type": "unknown_name", "start": 5, "end": 20},  # on the first error
        {"type": "uncertain_span", "start": 26, "end": 35},  # PCSetType: no error there
        {"type": "support", "start": 0, "end": 60},  # not a doubting flag
        {"type": "skipped", "reason": "no spans"},
    ]
    check = flag_check(text, flags, ["KSPSetTolerence"])
    assert check.counts() == (2, 1, 2, 1)
    assert (check.recall, check.precision) == (0.5, 0.5)
    assert FlagCheck().recall is None and FlagCheck().precision is None
    assert check.add(check).counts() == (4, 2, 4, 2)


def test_wrong_names_are_flagged_or_unsupported():
    names = ["KSPSolve", "PCSetType", "KSPSetTolerence"]
    assert wrong_names(names, ["KSPSetTolerence"], ["KSPSolve"], ["Use PCSetType."]) == [
        "KSPSetTolerence"
    ]
    assert wrong_names(names, ["KSPSetTolerence"], ["KSPSolve"], []) == [
        "KSPSetTolerence",
        "PCSetType",
    ]


def test_judged_values_are_bounded_or_missing():
    assert checked("faithfulness", 0.5) == 0.5
    assert checked("faithfulness", 1) == 1.0
    assert checked("faithfulness", 1.2) is None
    assert checked("faithfulness", -0.2) is None
    assert checked("faithfulness", math.nan) is None
    assert checked("faithfulness", "garbage") is None
    assert checked("faithfulness", None) is None
    assert checked("answer_relevancy", -0.2) == 0.0  # a mean cosine below 0: unrelated


def test_judge_spec_and_which_metrics_apply():
    spec = JudgeSpec.parse("http://127.0.0.1:8000/v1/#Qwen/Qwen2.5-7B-Instruct")
    assert (spec.url, spec.model) == ("http://127.0.0.1:8000/v1", "Qwen/Qwen2.5-7B-Instruct")
    for bad in ("http://host/v1", "host:8000/v1#m"):
        with pytest.raises(ValueError):
            JudgeSpec.parse(bad)
    full = Sample("q", "a", ["ctx"], reference="ref")
    assert full.wanted() == [
        "faithfulness",
        "answer_relevancy",
        "context_precision",
        "context_recall",
        "answer_correctness",
        "answer_accuracy",
    ]
    assert Sample("q", "a", ["ctx"]).wanted() == ["faithfulness", "answer_relevancy"]
    abstained = Sample("q", "I don't know", ["ctx"], reference="ref", abstained=True)
    assert abstained.wanted() == ["context_precision", "context_recall"]


def _row(recall, cited, loop, ms, abstained=False, judged=None, invented=(), lead=None, units=None):
    metrics = {
        "symbol_recall": recall,
        "symbol_precision": None,
        "lead_hit": lead,
        "unit_precision": units,
        "invented": list(invented),
        "removed": [],
        "citations": 2 if cited is not None else 0,
        "supported_citations": (2 if cited else 0) if cited is not None else 0,
        "cited": cited,
        "loop": loop,
        "fallback": False,
        "gen_symbol_recall": recall,
        "gen_cited": cited,
        "gen_loop": loop,
        "gen_invented": [],
        "chars": ms // 10,
        "words": 2,
        "ttft_ms": ms / 2,
        "tokens_per_s": None,
        "total_ms": ms,
        "flag_check": (1, 0, 0, 0),
    }
    return {"abstained": abstained, "metrics": metrics, "judged": judged or {}, "cached": False}


def test_summary_and_paperqa_accuracy_hand_computed():
    rows = [
        _row(1.0, True, False, 100, judged={"answer_accuracy": 1.0}, lead=True, units=1.0),
        _row(0.5, False, True, 300, judged={"answer_accuracy": 0.25}, invented=["KSPFoo"],
             lead=False, units=0.5),
        _row(None, True, False, 200, judged={"answer_accuracy": None}, units=0.0),  # judge failed
        _row(0.0, None, False, 50, abstained=True, lead=False),
    ]  # fmt: skip
    summary = summarize(RunSpec("default", "extractive", "none", "none"), rows, judged=True)
    assert summary["name"] == "default+extractive"
    assert summary["abstention"] == 0.25
    assert summary["symbol_recall"] == pytest.approx(0.5)  # (1 + 0.5 + 0) / 3
    assert summary["cited"] == pytest.approx(2 / 3)
    assert summary["citation_validity"] == pytest.approx(4 / 6)
    assert summary["loop"] == 0.25
    assert summary["with_invented"] == 0.25
    assert summary["total_ms_p50"] == 150
    assert summary["lead_hit"] == pytest.approx(1 / 3)  # no reference name: not counted
    assert summary["unit_precision"] == 0.5  # (1 + 0.5 + 0) / 3; the abstention has none
    assert summary["chars"] == pytest.approx(16.25) and summary["chars_p50"] == 15
    assert summary["gen_loop"] is None and summary["fallback"] is None  # nothing generated
    assert summary["flag_recall"] == 0.0 and summary["flag_precision"] is None
    judged = judged_summary(rows)
    assert judged["answer_accuracy_missing"] == 1
    assert judged["answer_accuracy"] == pytest.approx(0.625)
    assert judged["accuracy"] == pytest.approx(1 / 3)  # 1 correct of 2 verdicts + 1 abstention
    assert judged["precision"] == 0.5  # 1 correct of 2 answered with a verdict


def test_questions_from_answer_facts_and_a_feedback_export(tmp_path):
    records = [
        {"id": "f1", "question": "Q1?", "answer": "Use KSPSolve.", "answer_facts": ["a", "b"]},
        {"id": 7, "question": "Q2?", "answer": "Call MatMult.", "vote": "up", "client": "web"},
        {"id": 8, "question": "Q3?", "answer": "Call VecFoo.", "vote": "down", "comment": "no"},
    ]
    path = tmp_path / "set.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in records))
    questions = load_questions(path, PREFIXES)
    assert [q.id for q in questions] == ["f1", "7", "8"]
    assert questions[0].facts == ["a", "b"] and questions[0].symbols == ["KSPSolve"]
    assert questions[1].answer == "Call MatMult." and questions[1].symbols == ["MatMult"]
    assert questions[2].answer == "" and questions[2].symbols == []  # a downvote: no reference
    path.write_text(json.dumps({"id": "o1", "question": "How do I boil an egg?"}))
    assert load_questions(path, PREFIXES)[0].answer == ""  # off-topic: no reference


def test_the_off_topic_set_has_no_reference_and_no_library_name():
    """`eval/offtopic.jsonl`: questions the assistant should decline, in the dev set's format."""
    path = Path(__file__).parent.parent / "eval" / "offtopic.jsonl"
    records = [json.loads(line) for line in path.read_text().splitlines()]
    questions = load_questions(path, [*PREFIXES, "Petsc", "PETSC", "SNES", "TS", "DM"])
    assert len(questions) >= 30 and len({q.id for q in questions}) == len(questions)
    assert all(q.answer == "" and q.symbols == [] for q in questions)
    assert {r["section"] for r in records} == {"off-topic", "out-of-scope"}
    assert not any("petsc" in q.question.lower() for q in questions)


ANSWER = """**KSPSetTolerances** – Sets the relative tolerance. It also sets the limit. [1]

```c
PetscCall(KSPSetTolerances(ksp, 1e-8, PETSC_CURRENT, PETSC_CURRENT, 100));
```
[2]

- Use -ksp_rtol on the command line [3]
- Options take effect after KSPSetFromOptions(). [3]
:::{note}
See {any}`KSPSolve` too.
:::
"""


def test_blocks_units_and_the_lead_hand_computed():
    assert blocks(ANSWER) == [
        ("**KSPSetTolerances** – Sets the relative tolerance. It also sets the limit.", False),
        (
            "```c\nPetscCall(KSPSetTolerances(ksp, 1e-8, PETSC_CURRENT, PETSC_CURRENT, 100));\n```",
            True,
        ),
        ("- Use -ksp_rtol on the command line", False),
        ("- Options take effect after KSPSetFromOptions().", False),
        ("See `KSPSolve` too.", False),
    ]
    assert units(ANSWER)[:2] == [
        "**KSPSetTolerances** – Sets the relative tolerance.",
        "It also sets the limit.",
    ]
    assert len(units(ANSWER)) == 6 and units("[1] [2]\n\n---") == []
    assert units("No\n\nYes. Run configure.\n\n-l\n\nog_view") == ["Run configure."]
    assert lead_hit(["KSPSetTolerances", "-ksp_rtol"], ANSWER) is True
    assert lead_hit(["-ksp_rtol"], ANSWER) is False  # named, but not first
    assert lead_hit(["KSPSetTolerancesXX"], ANSWER) is False  # whole tokens only
    assert lead_hit([], ANSWER) is None and lead_hit(["KSPSolve"], "") is False


class WordEmbedder:
    """Unit vectors of word counts over a fixed vocabulary: cosines one can compute by hand."""

    name = "words"
    vocabulary = ("tolerance", "relative", "limit", "egg", "boil", "options")

    @property
    def dimension(self) -> int:
        return len(self.vocabulary)

    def embed(self, texts: list[str]) -> np.ndarray:
        rows = []
        for text in texts:
            words = text.lower().replace(".", " ").split()
            row = np.array([words.count(w) for w in self.vocabulary], dtype=np.float32)
            rows.append(row / (np.linalg.norm(row) or 1.0))
        self.calls = getattr(self, "calls", 0) + 1
        return np.array(rows)


def test_unit_precision_hand_computed():
    embedder = WordEmbedder()
    matcher = UnitMatcher(embedder)
    reference = "Set the relative tolerance. Boil the egg."
    answer = "The relative tolerance. Relative tolerance limit. The options. Boil the egg limit."
    cosines = matcher.best_cosines(answer, reference)
    # (1, 1)/√2 · (1, 1)/√2 = 1; (1, 1)/√2 · (1, 1, 1)/√3 = 2/√6; the options match nothing
    assert cosines == pytest.approx([1.0, 2 / 6**0.5, 0.0, 2 / 6**0.5])
    assert UNIT_MATCH == 0.5 and unit_precision(cosines) == 0.75
    assert unit_precision([]) is None and matcher.best_cosines(answer, "") == []
    matcher.best_cosines("The egg.", reference)
    assert embedder.calls == 3  # two answers and, once, the reference


def test_unit_precision_with_the_project_embedder(embedder):
    """MiniLM puts a paraphrase of the reference above the threshold, an aside below."""
    reference = (
        "Use KSPSetTolerances() to set the relative and absolute tolerances and the "
        "maximum number of iterations. The options -ksp_rtol and -ksp_max_it do the same."
    )
    answer = (
        "KSPSetTolerances sets the relative tolerance, the absolute tolerance and the "
        "iteration limit of the solver. Installing PETSc on macOS needs Xcode command line tools."
    )
    cosines = UnitMatcher(embedder).best_cosines(answer, reference)
    assert cosines[0] >= UNIT_MATCH > cosines[1]
    assert unit_precision(cosines) == 0.5


def test_a_replaced_generation_is_scored_as_shown_and_as_generated():
    checker = NameChecker(["KSPSetTolerances", "KSPSolve"], PREFIXES)
    question = Question("q", "How do I stop early?", "Use KSPSetTolerances.", symbols=[
        "KSPSetTolerances", "KSPSetTolerence"])  # fmt: skip
    generated = "The answer is KSPSetTolerence. " + "The answer is: " * 6
    note = "*The generated answer was replaced: it used names that exist nowhere: KSPSetTolerence.*"
    row = {
        "text": note + "\n\nThe tolerances are set with KSPSetTolerances [1].",
        "abstained": False,
        "citations": [{"n": 1, "chunk_id": "c1", "title": "t", "uri": "u"}],  # cached before kinds
        "passages": {"1": PASSAGES[1]},
        "contexts": [{"chunk_id": "c1", "text": PASSAGES[1]}],
        "flags": [],
        "timings": {"ttft_ms": 5.0},
        "total_ms": 9.0,
        "reset": "it repeated itself; it used names that exist nowhere in the index",
        "generated": generated,
    }
    metrics = score(row, question, checker, PREFIXES, UnitMatcher(WordEmbedder()))
    assert metrics["symbol_recall"] == 0.5  # the note's KSPSetTolerence does not count
    assert metrics["lead_hit"] is True and metrics["chars"] == 49  # the note left out
    # one unit (not the note), which shares no word of WordEmbedder's vocabulary
    assert metrics["unit_cosines"] == [0.0] and metrics["unit_precision"] == 0.0
    assert metrics["invented"] == [] and metrics["cited"] is True and not metrics["loop"]
    assert metrics["words"] == 7 and metrics["fallback"] is True
    assert metrics["gen_symbol_recall"] == 0.5 and metrics["gen_cited"] is False
    assert metrics["gen_loop"] is True and metrics["gen_invented"] == ["KSPSetTolerence"]
    same = score({**row, "reset": "", "generated": None}, question, checker, PREFIXES)
    assert same["gen_loop"] == same["loop"] and same["gen_cited"] == same["cited"]


def test_a_removed_name_quoted_from_release_notes_is_not_counted():
    """The citations' kinds and marker spans tell which units quote release notes, also
    under the guard's note above a replaced answer."""
    checker = NameChecker(["KSPGetLineSearch"], PREFIXES, {"KSPGetOld": ["KSPGetLineSearch"]})
    question = Question("q", "How do I get the line search?", "Use KSPGetLineSearch.")
    body = "- Added KSPGetOld [1]\n\nCall KSPGetOld() [2]."
    note = "*The generated answer was replaced: it cited nothing.*\n\n"
    for head in ("", note):
        text = head + body
        markers = [text.index("[1]"), text.index("[2]")]
        row = {
            "text": text,
            "abstained": False,
            "citations": [
                {"n": 1, "kind": "changelog", "spans": [[markers[0], markers[0] + 3]]},
                {"n": 2, "kind": "manpage", "spans": [[markers[1], markers[1] + 3]]},
            ],
            "passages": {"1": "Added KSPGetOld.", "2": "KSPGetOld gets it."},
            "contexts": [],
            "flags": [],
            "timings": {},
            "total_ms": 1.0,
            "reset": "it cited nothing" if head else "",
            "generated": "x" if head else None,
        }
        metrics = score(row, question, checker, PREFIXES)
        assert metrics["removed"] == ["KSPGetOld"]  # the second use only
        quoted_only = {**row, "text": text[: markers[0] + 3]}
        assert score(quoted_only, question, checker, PREFIXES)["removed"] == []
