"""The API-name check and `sciknow verify` on a real index of a small library written here.

The fixture is a git repository with C sources (man-page comment blocks), a manual page
and release notes; it is ingested with the real pipeline (SQLite, FAISS, BM25, embedder).
"""

from __future__ import annotations

import copy
import json
import os
import subprocess
from pathlib import Path

import pytest
from support.backends import scripted_assistant

from sciknow.config import load_config
from sciknow.serve.names import NameChecker, NameIssue, history_ranges, name_flags
from sciknow.serve.release_notes import name_spans, removals

ITFUNC_C = """\
#include <petsc/private/kspimpl.h>

/*@
  KSPSetTolerances - Sets the relative, absolute, divergence, and maximum
  iteration tolerances used by the default `KSP` convergence tests.

  Logically Collective

  Input Parameters:
+ ksp    - the Krylov subspace context
. rtol   - the relative convergence tolerance
- maxits - maximum number of iterations

  Options Database Keys:
+ -ksp_rtol <rtol>     - Set the relative convergence tolerance
- -ksp_max_it <maxits> - Set the maximum number of iterations

  Level: intermediate

.seealso: `KSPSolve()`, `KSPSetType()`, `KSPConvergedReason`
@*/
PetscErrorCode KSPSetTolerances(KSP ksp, PetscReal rtol, PetscInt maxits)
{
  PetscFunctionBegin;
  PetscFunctionReturn(PETSC_SUCCESS);
}

/*@
  KSPSetType - Builds the `KSP` for a particular solver

  Options Database Key:
. -ksp_type <method> - Krylov solver method, for example `KSPGMRES`

  Level: beginner

.seealso: `KSPSolve()`
@*/
PetscErrorCode KSPSetType(KSP ksp, KSPType type)
{
  return PETSC_SUCCESS;
}

/*@
  KSPSolve - Solves a linear system

  Level: beginner

.seealso: `KSPSetTolerances()`, `MatCreateSubMatrix()`
@*/
PetscErrorCode KSPSolve(KSP ksp, Vec b, Vec x)
{
  return PETSC_SUCCESS;
}

/*E
  KSPConvergedReason - Why a solve stopped

  Values:
+ `KSP_CONVERGED_RTOL` - the relative tolerance was met
- `KSP_DIVERGED_ITS`   - the iteration limit was reached

  Level: beginner
E*/
"""

SUBMAT_C = """\
/*@
  MatCreateSubMatrix - Gets a single submatrix on the same number of processors

  Level: advanced

.seealso: `MatCreateSubMatrices()`
@*/
PetscErrorCode MatCreateSubMatrix(Mat mat, IS isrow, IS iscol, Mat *newmat)
{
  return PETSC_SUCCESS;
}
"""

MANUAL_MD = """\
# Linear solvers

Set the Krylov method with KSPSetType() or `-ksp_type`; for multigrid, prefix the level
options, as in `-mg_levels_ksp_type`. The preconditioner is chosen with `-pc_type`.
Results can be compared with MATLAB.
"""

CHANGES_MD = """\
# Changes: 3.22

## KSP

- Removed `KSPSetInitialGuessKnoll()`
- `MatGetSubMatrix()` renamed to `MatCreateSubMatrix()`
- Deprecate `PCFactorSetShiftPd()` in favor of
  `PCFactorSetShiftType()`
- Add `KSPSetMinimumIterations()`
- Deprecate `KSP{Set|Get}MatSolveBlockSize()`, use
  `KSP{Set|Get}MatSolveBatchSize()` instead
- Remove `KSPMonitorLGResidualNorm*()`
- `SNESGetSNESLineSearch()` renamed to `SNESGetLineSearch()`
"""

# A name a release note renamed that the sources still define (deprecated, kept working).
LINESEARCH_C = """\
PetscErrorCode SNESGetSNESLineSearch(SNES snes, SNESLineSearch *ls)
{
  return SNESGetLineSearch(snes, ls);
}
"""


def git(cwd: Path, *args: str) -> None:
    env = {**os.environ, "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@example.org"}
    env |= {"GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@example.org"}
    subprocess.run(["git", *args], cwd=cwd, env=env, check=True, capture_output=True)


def write_repo(root: Path, files: dict[str, str]) -> None:
    for relpath, text in files.items():
        path = root / relpath
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)


def ingest_repo(config, repo: Path, embedder) -> None:
    from sciknow.index.factory import make_chunker, open_store
    from sciknow.index.pipeline import ingest
    from sciknow.ingest.registry import make_sources, source_for_location

    sources = make_sources(source_for_location(str(repo), config), config)
    ingest(open_store(config), sources, embedder, make_chunker(config))


@pytest.fixture(scope="module")
def library(tmp_path_factory, embedder):
    """(config, repo) of an ingested index of the fixture library."""
    root = tmp_path_factory.mktemp("names")
    repo = root / "lib"
    write_repo(
        repo,
        {
            "src/ksp/interface/itfunc.c": ITFUNC_C,
            "src/mat/interface/submat.c": SUBMAT_C,
            "src/snes/interface/deprecated.c": LINESEARCH_C,
            "doc/manual/ksp.md": MANUAL_MD,
            "doc/changes/322.md": CHANGES_MD,
        },
    )
    git(repo, "init", "-q")
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "fixture")
    config = load_config(environ={"SCIKNOW_DATA_DIR": str(root / "data")})
    ingest_repo(config, repo, embedder)
    return config, repo


@pytest.fixture(scope="module")
def checker(library):
    from sciknow.index.factory import open_store

    config, _ = library
    return NameChecker.from_store(open_store(config), config.profile)


def only(issues: list[NameIssue], name: str) -> NameIssue:
    found = [i for i in issues if i.name == name]
    assert len(found) == 1, issues
    return found[0]


def test_names_the_index_holds_pass(checker):
    text = (
        "Call KSPSetTolerances() before KSPSolve(); set KSPSetType() to KSPGMRES or use\n"
        "-ksp_type gmres -ksp_rtol 1e-8 -ksp_max_it 50. Check for KSP_CONVERGED_RTOL in the\n"
        "KSPConvergedReason. Extract blocks with MatCreateSubMatrix() and return PETSC_SUCCESS."
    )
    assert checker.check(text) == []


def test_a_misspelled_name_is_unknown_with_the_right_suggestion(checker):
    text = "First create the solver.\nThen call KSPSetTolerence(ksp, 1e-8, 100);"
    issue = only(checker.check(text), "KSPSetTolerence")
    assert issue.reason == "unknown-name" and issue.line == 2
    assert text[issue.start : issue.end] == "KSPSetTolerence"
    assert issue.suggestions[0] == "KSPSetTolerances" and len(issue.suggestions) <= 3
    swapped = only(checker.check("Use KSPSlove() now."), "KSPSlove")
    assert swapped.suggestions[0] == "KSPSolve"
    wrong_case = only(checker.check("KSPSETTYPE is not C."), "KSPSETTYPE")
    assert wrong_case.suggestions[0] == "KSPSetType"


def test_an_invented_name_gets_names_sharing_its_parts(checker):
    issue = only(checker.check("KSPSetRelativeTolerance(ksp, 1e-6)"), "KSPSetRelativeTolerance")
    assert issue.reason == "unknown-name" and "KSPSetTolerances" in issue.suggestions


def test_a_near_miss_outside_the_prefixes_is_caught(checker):
    """`KPSetTolerances` starts with no library prefix, but is one edit from a real name."""
    issue = only(checker.check("Then KPSetTolerances(ksp)."), "KPSetTolerances")
    assert issue.reason == "unknown-name" and issue.suggestions[0] == "KSPSetTolerances"
    assert checker.check("Our own FormFunction and MyKSPMonitor are fine.") == []


def test_options_with_a_prefix_are_known_and_misspelled_ones_are_not(checker):
    text = "-mg_levels_ksp_type richardson -coarse_ksp_rtol 1e-2 -ksp_rtoll 1e-8"
    issues = checker.check(text)
    assert [i.name for i in issues] == ["-ksp_rtoll"]
    assert issues[0].suggestions[0] == "-ksp_rtol"
    typo = only(checker.check("-mg_levels_ksp_tpye cg"), "-mg_levels_ksp_tpye")
    assert typo.suggestions[0] == "-mg_levels_ksp_type"


def test_names_inside_code_blocks_are_checked(checker):
    text = (
        "Set it up like this:\n\n```c\nPetscCall(KSPSetType(ksp, KSPGMRES));\n"
        "PetscCall(KSPSetTolerence(ksp, 1e-8, 100));\n```\n"
    )
    issue = only(checker.check(text), "KSPSetTolerence")
    assert issue.line == 5 and text[issue.start : issue.end] == "KSPSetTolerence"


def test_a_removed_name_gets_its_replacement(checker):
    issues = checker.check("Use MatGetSubMatrix() or KSPSetInitialGuessKnoll().")
    renamed = only(issues, "MatGetSubMatrix")
    assert renamed.reason == "removed-name" and renamed.suggestions == ["MatCreateSubMatrix"]
    removed = only(issues, "KSPSetInitialGuessKnoll")
    assert removed.reason == "removed-name" and removed.suggestions == []
    deprecated = only(checker.check("PCFactorSetShiftPd(pc, PETSC_TRUE)"), "PCFactorSetShiftPd")
    assert deprecated.suggestions == ["PCFactorSetShiftType"]
    # Quoting the release note is not using the name; a name the notes add is known.
    assert checker.check("`MatGetSubMatrix()` was renamed to `MatCreateSubMatrix()`.") == []
    assert checker.check("KSPSetMinimumIterations(ksp, 2)") == []


def test_no_false_alarm_on_english_prefixes_or_ignored_names(library):
    from sciknow.index.factory import open_store

    config, _ = library
    text = (
        "PETSc solves linear systems. A Vec holds a vector, a Mat a matrix, and KSP, PC\n"
        "and SNES objects hold solvers. PCs are cheap; Tao optimizes. IMPORTANT MATH NOTE:\n"
        "compare with MATLAB, ISBN 978-0-89871. See the KSPSet* and KSPSetXXX patterns.\n"
        "Install with ./configure --download-mpich --with-debugging=0 on macOS or Linux."
    )
    store = open_store(config)
    assert [i.name for i in NameChecker.from_store(store, config.profile).check(text)] == ["ISBN"]
    profile = copy.deepcopy(config.profile)
    profile.ignore_names = ["ISBN"]
    assert NameChecker.from_store(store, profile).check(text) == []


def test_issue_records_and_flags(checker):
    issue = only(checker.check("x = KSPSetTolerence(ksp);"), "KSPSetTolerence")
    assert issue.to_dict() == {
        "name": "KSPSetTolerence",
        "line": 1,
        "reason": "unknown-name",
        "suggestions": issue.suggestions,
        "start": 4,
        "end": 19,
    }
    flag = only(checker.check("MatGetSubMatrix(A)"), "MatGetSubMatrix").as_flag()
    assert flag == {
        "type": "removed_name",
        "text": "MatGetSubMatrix",
        "start": 0,
        "end": 15,
        "reason": "removed-name",
        "suggestions": ["MatCreateSubMatrix"],
    }


def test_the_checker_is_cached_per_index_generation(library, embedder, tmp_path):
    """A re-ingest that adds a man page makes its name known to the next check."""
    import shutil
    import sqlite3

    from sciknow.index.factory import open_store

    config, repo = library
    data = tmp_path / "data"
    # Other tests hold the source index open: fold its write-ahead log into the file,
    # then copy without the -wal/-shm files, which come and go with connections.
    with sqlite3.connect(config.data_path / "index.sqlite") as conn:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    shutil.copytree(config.data_path, data, ignore=shutil.ignore_patterns("*-wal", "*-shm"))
    copied = load_config(environ={"SCIKNOW_DATA_DIR": str(data)})
    store = open_store(copied)
    check = name_flags(store, copied.profile)
    first = NameChecker.from_store(store, copied.profile)
    assert NameChecker.from_store(store, copied.profile) is first
    assert [f["text"] for f in check("KSPSetMinimumResidual(ksp)")] == ["KSPSetMinimumResidual"]
    clone = tmp_path / "lib"
    shutil.copytree(repo, clone)
    page = SUBMAT_C.replace("MatCreateSubMatrix", "KSPSetMinimumResidual")
    write_repo(clone, {"src/ksp/interface/minres.c": page})
    git(clone, "add", "-A")
    git(clone, "commit", "-qm", "more")
    ingest_repo(copied, clone, embedder)
    assert NameChecker.from_store(store, copied.profile) is not first
    assert check("KSPSetMinimumResidual(ksp)") == []
    # A new process reads the names file of the new generation, not a stale one.
    saved = json.loads((data / "names.json").read_text())
    assert saved["key"][0] == store.generation() and "KSPSetMinimumResidual" in saved["names"]
    fresh = NameChecker._load(store, copied.profile)
    assert fresh.known == NameChecker.from_store(store, copied.profile).known
    assert fresh.removed == {
        "KSPSetInitialGuessKnoll": [],
        "MatGetSubMatrix": ["MatCreateSubMatrix"],
        "PCFactorSetShiftPd": ["PCFactorSetShiftType"],
        "KSPSetMatSolveBlockSize": ["KSPSetMatSolveBatchSize"],
        "KSPGetMatSolveBlockSize": ["KSPGetMatSolveBatchSize"],
    }


def test_release_note_rules():
    prefixes = ["KSP", "Mat", "PC", "SNES", "Vec", "Petsc"]
    notes = """\
- `SNESSkipConverged()` renamed to `SNESConvergedSkip()`.
- Removed `SNESSetFunctionNorm()` and `SNESGetFunctionNorm()`. Use `SNESGetFunction()`
  and `VecNorm()` instead.
- Renamed `KSPOldA()` and `KSPOldB()` to `KSPNewA()` and `KSPNewB()`
- KSP_DIVERGED_PCSETUP_FAILED replaced with KSP_DIVERGED_PC_FAILED
- Change `PetscInfoX()` to be variadic
- Change `PetscOldName()` to `PetscNewName()`
- Remove the `n` argument from `MatKeepThis()`
- Removed `VecGone()` since `VecOther()` does it
- You can now replace `PetscVFPrintf()` with your own function
- Add `KSPNew()`
"""
    assert removals(notes, prefixes) == {
        "SNESSkipConverged": ["SNESConvergedSkip"],
        "SNESSetFunctionNorm": ["SNESGetFunction", "VecNorm"],
        "SNESGetFunctionNorm": ["SNESGetFunction", "VecNorm"],
        "KSPOldA": ["KSPNewA"],
        "KSPOldB": ["KSPNewB"],
        "KSP_DIVERGED_PCSETUP_FAILED": ["KSP_DIVERGED_PC_FAILED"],
        "PetscOldName": ["PetscNewName"],
        "VecGone": [],
    }


def run_cli(args: list[str], capsys) -> tuple[int, str, str]:
    from sciknow.ui.cli import main

    code = main(args)
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_verify_prints_issues_and_exits_1(library, capsys, tmp_path):
    config, _ = library
    data = ["--data-dir", str(config.data_path)]
    code, out, _ = run_cli(
        [*data, "verify", "Call KSPSetTolerence()\nthen MatGetSubMatrix()"], capsys
    )
    assert code == 1
    assert out.splitlines() == [
        "line 1: KSPSetTolerence: unknown-name (did you mean "
        + ", ".join(
            NameChecker.from_store(_store(config), config.profile).suggest("KSPSetTolerence")
        )
        + "?)",
        "line 2: MatGetSubMatrix: removed-name (replaced by MatCreateSubMatrix)",
    ]
    code, out, _ = run_cli([*data, "verify", "KSPSolve(ksp, b, x) with -ksp_rtol"], capsys)
    assert code == 0 and out.strip() == "every library name is in the index"
    source = tmp_path / "user.c"
    source.write_text("int main(void)\n{\n  KSPSetTolerence(ksp);\n  KSPSolve(ksp, b, x);\n}\n")
    code, out, _ = run_cli([*data, "verify", "--file", str(source), "--json"], capsys)
    assert code == 1
    found = json.loads(out)
    assert [(f["name"], f["line"], f["reason"]) for f in found] == [
        ("KSPSetTolerence", 3, "unknown-name")
    ]
    assert set(found[0]) == {"name", "line", "reason", "suggestions"}
    assert found[0]["suggestions"][0] == "KSPSetTolerances"


def _store(config):
    from sciknow.index.factory import open_store

    return open_store(config)


def test_verify_rejects_binary_and_undecodable_files(library, capsys, tmp_path):
    config, _ = library
    data = ["--data-dir", str(config.data_path)]
    binary = tmp_path / "a.out"
    binary.write_bytes(b"\x7fELF\x00\x01KSPSolve")
    code, _, err = run_cli([*data, "verify", "--file", str(binary)], capsys)
    assert code == 2 and "binary file" in err
    latin = tmp_path / "latin1.c"
    latin.write_bytes("/* caf\u00e9 */ KSPSolve();".encode("latin-1"))
    code, _, err = run_cli([*data, "verify", "--file", str(latin)], capsys)
    assert code == 2 and "not UTF-8" in err
    code, _, err = run_cli([*data, "verify", "--file", str(tmp_path / "missing.c")], capsys)
    assert code == 2 and "cannot read" in err
    code, _, err = run_cli(["--data-dir", str(tmp_path / "empty"), "verify", "KSPSolve"], capsys)
    assert code == 2 and "empty" in err


def test_answers_carry_name_flags_and_ask_prints_them(library):
    """build_assistant wires the check (answer.check_names); `sciknow ask` prints its flags."""
    from sciknow.serve.factory import build_assistant
    from sciknow.ui.ask import describe_flag

    config, _ = library
    config = copy.deepcopy(config)
    assistant = build_assistant(config)
    flags = assistant.name_check("Use KSPSetTolerence() or MatGetSubMatrix().")
    assert [(f["type"], f["text"]) for f in flags] == [
        ("unknown_name", "KSPSetTolerence"),
        ("removed_name", "MatGetSubMatrix"),
    ]
    assert describe_flag(flags[0]).startswith(
        "unknown-name: KSPSetTolerence (did you mean: KSPSetTolerances"
    )
    assert describe_flag(flags[1]) == (
        "removed-name: MatGetSubMatrix (replaced by: MatCreateSubMatrix)"
    )
    config.answer.check_names = False
    assert build_assistant(config).name_check is None


def test_the_bit_parallel_edit_distance_matches_the_table():
    """`_osa_distance` (bit-parallel) against the textbook table with adjacent swaps."""
    import random

    from sciknow.serve.names import _osa_distance

    def table(a: str, b: str) -> int:
        d = [[i + j if i * j == 0 else 0 for j in range(len(b) + 1)] for i in range(len(a) + 1)]
        for i in range(1, len(a) + 1):
            for j in range(1, len(b) + 1):
                change = d[i - 1][j - 1] + (a[i - 1] != b[j - 1])
                d[i][j] = min(d[i - 1][j] + 1, d[i][j - 1] + 1, change)
                if i > 1 and j > 1 and a[i - 1] == b[j - 2] and a[i - 2] == b[j - 1]:
                    d[i][j] = min(d[i][j], d[i - 2][j - 2] + 1)
        return d[-1][-1]

    rng = random.Random(7)
    for _ in range(3000):
        a = "".join(rng.choice("abc_") for _ in range(rng.randint(0, 10)))
        b = "".join(rng.choice("abc_") for _ in range(rng.randint(0, 10)))
        assert _osa_distance(a, b) == table(a, b), (a, b)
    assert _osa_distance("kspsettolerence", "kspsettolerances") == 2
    assert _osa_distance("kspslove", "kspsolve") == 1


def test_a_generated_answer_with_a_wrong_name_is_flagged_or_replaced(library):
    """The answer pipeline with the real check: kept and flagged without fallback, else
    replaced by the extractive answer with the names in the reason."""
    config, _ = library
    reply = "Call KSPSetTolerence() after KSPSolve(), not MatGetSubMatrix() [1]."
    question = "How do I set the tolerances with KSPSetTolerances?"
    kept = scripted_assistant(config, reply, fallback=False)
    kept.name_check = name_flags(kept.retriever.store, config.profile)
    answer = list(kept.stream(question))[-1].answer
    assert answer.text == reply
    named = [f for f in answer.flags if f["type"] in ("unknown_name", "removed_name")]
    assert [(f["type"], f["text"], reply[f["start"] : f["end"]]) for f in named] == [
        ("unknown_name", "KSPSetTolerence", "KSPSetTolerence"),
        ("removed_name", "MatGetSubMatrix", "MatGetSubMatrix"),
    ]
    replaced = scripted_assistant(config, reply)
    replaced.name_check = kept.name_check
    events = list(replaced.stream(question))
    reset = next(e for e in events if e.kind == "reset")
    assert "KSPSetTolerence" in reset.reason and "MatGetSubMatrix" in reset.reason
    note, body = events[-1].answer.text.split("\n", 1)
    assert "KSPSetTolerence" in note and "KSPSetTolerence" not in body


def test_brace_forms_name_each_expansion_never_the_fragment():
    prefixes = ["KSP", "Mat", "Vec", "VECSCATTER"]
    text = (
        "Use KSP{Set|Get}MatSolveBlockSize(), Vec{Get,Restore}Array() or "
        "VecGetArray{,Read}(); -ksp_{rtol, atol} set both; min_{u,v} and \\frac{a}{b} are math."
    )
    spans = name_spans(text, prefixes)
    assert [name for name, _, _ in spans] == [
        "KSPSetMatSolveBlockSize",
        "KSPGetMatSolveBlockSize",
        "VecGetArray",
        "VecRestoreArray",
        "VecGetArray",
        "VecGetArrayRead",
        "-ksp_rtol",
        "-ksp_atol",
    ]
    form = text.index("KSP{")
    assert spans[0][1:] == spans[1][1:] == (form, text.index("()"))


def test_release_notes_claim_brace_forms_whole_and_patterns_never():
    notes = """\
- Deprecate `KSP{Set|Get}MatSolveBlockSize()`, use `KSP{Set|Get}MatSolveBatchSize()` instead
- Remove `KSPMonitorLGResidualNorm*()` and `KSPSetXXX()`
- Removed `Vec{Get,Restore}ArrayOld()`. Use `VecGetArray()` instead.
"""
    assert removals(notes, ["KSP", "Vec"]) == {
        "KSPSetMatSolveBlockSize": ["KSPSetMatSolveBatchSize"],
        "KSPGetMatSolveBlockSize": ["KSPGetMatSolveBatchSize"],
        "VecGetArrayOld": ["VecGetArray"],
        "VecRestoreArrayOld": ["VecGetArray"],
    }


def test_a_name_the_sources_define_is_not_removed():
    removed = {"SNESGetSNESLineSearch": ["SNESGetLineSearch"], "SNESOld": ["SNESNew"]}
    names = ["SNESGetLineSearch", "SNESNew", "SNESGetSNESLineSearch"]
    checker = NameChecker(names, ["SNES"], removed, defined=["SNESGetSNESLineSearch"])
    assert checker.check("SNESGetSNESLineSearch(snes, &ls)") == []
    assert [(i.name, i.reason) for i in checker.check("SNESOld(snes)")] == [
        ("SNESOld", "removed-name")
    ]


def test_a_removed_name_presented_as_history_is_not_flagged():
    """A sentence about a release, or a unit citing a changelog passage, quotes history;
    the same name used elsewhere in the text is still flagged."""
    checker = NameChecker(["SNESGetLineSearch"], ["SNES"], {"SNESGetSNESLineSearch": []})

    def flagged(text: str, quoted=()) -> list[int]:
        return [i.line for i in checker.check(text, quoted)]

    assert flagged("PETSc 3.3 added SNESGetSNESLineSearch().") == []
    assert flagged("In 3.3 the line search came from SNESGetSNESLineSearch().") == []
    assert flagged("The release notes list SNESGetSNESLineSearch().") == []
    assert flagged("Call SNESGetSNESLineSearch(snes, &ls) with 3.3 times the step.") == [1]
    text = "- Added SNESGetSNESLineSearch [1]\n\nThen call SNESGetSNESLineSearch(snes, &ls) [2]."
    first, second = (text.index(m) for m in ("[1]", "[2]"))
    citations = [
        {"n": 1, "kind": "changelog", "spans": [[first, first + 3]]},
        {"n": 2, "kind": "manpage", "spans": [(second, second + 3)]},
    ]
    assert history_ranges(text, citations) == [(0, first)]
    assert flagged(text) == [1, 3]
    assert flagged(text, history_ranges(text, citations)) == [3]


def test_brace_forms_and_removed_names_in_the_index(library):
    """The fixture's notes deprecate `KSP{Set|Get}MatSolveBlockSize()` (no source defines
    it) and rename `SNESGetSNESLineSearch()` (a source still defines it)."""
    from sciknow.index.factory import open_store

    config, _ = library
    check = name_flags(open_store(config), config.profile)
    text = "Set the size with KSP{Set|Get}MatSolveBlockSize()."
    assert [(f["text"], f["reason"], f["suggestions"]) for f in check(text)] == [
        ("KSPSetMatSolveBlockSize", "removed-name", ["KSPSetMatSolveBatchSize"]),
        ("KSPGetMatSolveBlockSize", "removed-name", ["KSPGetMatSolveBatchSize"]),
    ]
    assert check("Use KSP{Set|Get}MatSolveBatchSize() and SNESGetSNESLineSearch().") == []
    assert check("Use KSPMonitorLGResidualNorm*() callbacks.") == []
    quote = "- Deprecate KSP{Set|Get}MatSolveBlockSize() [1]"
    cited = [{"n": 1, "kind": "changelog", "spans": [(len(quote) - 3, len(quote))]}]
    assert check(quote.replace("Deprecate", "Use")) != []
    assert check(quote.replace("Deprecate", "Use"), cited) == []


def test_no_false_alarms_seen_on_the_dev_answers():
    """Three flags the dev answers raised, each a false alarm read by hand: an MPI type one
    edit from a PETSc name, a family written as its prefix, and release-note code quoted
    under its marker."""
    from sciknow.serve.names import NameChecker, history_ranges

    checker = NameChecker(
        ["MPI_Comm", "MPIU_Count", "MATOP", "MATOP_VIEW", "MATOP_MULT", "PETSC_INTPTR_T_FMT"],
        ["PETSC", "MAT"],
        removed={"PETSC_MPI_COMM_FMT": ["PETSC_INTPTR_T_FMT"]},
        defined=["MPI_Comm", "MATOP_VIEW", "MATOP_MULT", "PETSC_INTPTR_T_FMT"],
    )
    assert checker.check("MPI 4.0 supports `MPI_Count` for large counts.") == []
    assert checker.check("See the MATOP_ values in `include/petscmat.h`.") == []
    text = 'Before [1]:\n```c\nPetscPrintf(c, "%" PETSC_MPI_COMM_FMT, comm);\n```'
    citations = [{"kind": "changelog", "spans": [(text.index("[1]"), text.index("[1]") + 3)]}]
    assert checker.check(text, history_ranges(text, citations)) == []
    assert [i.name for i in checker.check(text)] == ["PETSC_MPI_COMM_FMT"]
