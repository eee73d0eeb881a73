"""How an extractive answer is composed: question kinds, units that stand alone, the lead,
code filtering, the relevance floor and markers in reading order, on small fixtures."""

from __future__ import annotations

import re
import subprocess

import pytest
from support.evidence import passage

from sciknow.config import Profile
from sciknow.rerank.question import question_kind
from sciknow.serve.compose.units import clean, code_is_about, stands_alone
from sciknow.serve.segment import Unit

PREFIXES = tuple(Profile().symbol_prefixes)


@pytest.mark.parametrize(
    ("question", "names", "kind"),
    [
        ("How do I set the tolerances of a KSP solver?", [], "api"),
        ("What does -ksp_rtol set?", ["-ksp_rtol"], "option"),
        ("-pc_type", ["-pc_type"], "option"),
        ("Why is the linear solver (KSP) not converging?", [], "troubleshoot"),
        ("What does the error 'Object Type Not Set' mean?", [], "troubleshoot"),
        ("When was SNESGetSNESLineSearch removed?", ["SNESGetSNESLineSearch"], "version"),
        ("Why is PETSc written in C?", [], "concept"),
    ],
)
def test_question_kinds(question, names, kind):
    assert question_kind(question, names) == kind


@pytest.mark.parametrize(
    ("text", "alone"),
    [
        ("Use KSPSetTolerances() to set the tolerances.", True),
        ("can be used to easily convert a regular PETSc program.", False),
        ("As discussed in the preceding section, logging is cheap.", False),
        ("One must first create a solver context with the command", False),
        ("The options are:", False),
        ("and then call KSPSolve().", False),
    ],
)
def test_sentences_that_cannot_stand_alone_are_left_out(text, alone):
    assert stands_alone(Unit(text, "sentence", 0)) is alone


def test_list_table_cells_are_not_quoted():
    assert not stands_alone(Unit("* - MatType - PCType", "item", 0))
    assert stands_alone(Unit("`-pc_type lu` - a direct solver", "item", 0))


def test_myst_residue_is_cleaned():
    assert clean("Call `MatCreate()`:math:`^*` first.") == "Call `MatCreate()` first."
    assert clean("See {any}`KSPSolve()` and {ref}`the manual <ch_ksp>`.") == (
        "See `KSPSolve()` and `the manual`."
    )
    assert clean("Norms^\\dagger are cheap.") == "Norms are cheap."


def test_code_only_when_it_uses_the_answer_names():
    code = Unit(
        "```c\nKSPSetTolerances(ksp, 1e-8, PETSC_CURRENT, PETSC_CURRENT, 100);\n```", "code", 0
    )
    mumps = Unit("```c\nMatMumpsSetIcntl(F, 14, 30);\n```", "code", 0)
    about = ["KSPSetTolerances"]
    assert code_is_about(code, about, PREFIXES)
    assert not code_is_about(mumps, about, PREFIXES)


@pytest.fixture(scope="module")
def extractor(embedder, docs_config):
    from sciknow.index.factory import open_store
    from sciknow.serve.extractive import Extractor

    return Extractor(embedder, open_store(docs_config), PREFIXES, max_chars=900)


def test_off_topic_units_fall_below_the_floor(extractor):
    evidence = [
        passage(1, "Use KSPSetTolerances() to set the relative tolerance of a Krylov solve."),
        passage(2, "The weather in Chicago is cold in winter and windy in spring."),
    ]
    result = extractor.answer("How do I set the relative tolerance of a solver?", evidence, [])
    assert "KSPSetTolerances" in result.text and "Chicago" not in result.text


def test_markers_follow_reading_order_and_every_marker_is_listed(extractor):
    evidence = [
        passage(1, "PETSc runs on laptops and supercomputers alike."),
        passage(2, "Set the relative tolerance with KSPSetTolerances() or -ksp_rtol."),
        passage(3, "The default relative tolerance is 1e-5 for every Krylov method."),
    ]
    result = extractor.answer("How do I set the relative tolerance?", evidence, [])
    markers = [int(n) for n in re.findall(r"\[(\d+)\]", result.text)]
    assert markers[0] == 1
    assert sorted(set(markers)) == list(range(1, max(markers) + 1))
    assert max(markers) <= len(result.evidence)
    first = result.text.split("\n\n")[0]
    assert "KSPSetTolerances" in first or "relative tolerance is 1e-5" in first


def test_release_notes_do_not_lead_unless_the_question_is_about_versions(extractor):
    evidence = [
        passage(1, "Removed SNESGetSNESLineSearch(); use SNESGetLineSearch().", kind="changelog"),
        passage(2, "Change the line search with SNESLineSearchSetType() or -snes_linesearch_type."),
    ]
    how = extractor.answer("How do I change the line search that SNES uses?", evidence, [])
    assert how.text.startswith("Change the line search")
    when = extractor.answer(
        "Which release removed SNESGetSNESLineSearch?", evidence, ["SNESGetSNESLineSearch"]
    )
    assert when.text.startswith("Removed SNESGetSNESLineSearch()")


SOLVER_C = """/*@
   KSPSetTolerances - Sets the relative, absolute, divergence, and maximum iteration tolerances

   Input Parameters:
+  ksp - the Krylov subspace context
.  rtol - the relative convergence tolerance
-  maxits - maximum number of iterations

   Options Database Keys:
+  -ksp_rtol <rtol> - Relative tolerance
-  -ksp_max_it <maxits> - Maximum number of iterations

   Notes:
   Use `PETSC_CURRENT` to retain the current value of any of the tolerances.
   Tolerances are explained in the manual.

   Level: intermediate
@*/
PetscErrorCode KSPSetTolerances(KSP ksp, PetscReal rtol, PetscInt maxits)
{
  return 0;
}
"""

TUTORIAL_C = """static char help[] = "Solves a linear system with KSP.\\n";

#include <petscksp.h>

int main(int argc, char **argv)
{
  KSP ksp;

  PetscCall(PetscInitialize(&argc, &argv, NULL, help));
  /* KSPSetTolerances() sets what stops the solve: a mention, not the call */
  /*
     A line of a block comment need not start with a marker:
     KSPSetTolerances() and KSPSolve() are mentioned here, not called.
  */
  PetscCall(KSPSetTolerances(ksp, 1.e-6, 100));
  PetscCall(PetscFinalize());
  return 0;
}
"""


def test_an_api_how_to_leads_with_the_man_page_and_a_tutorial_line(tmp_path, embedder):
    from sciknow.config import SourceConfig, load_config
    from sciknow.index.factory import embed_policy, make_chunker, open_store
    from sciknow.index.pipeline import ingest
    from sciknow.ingest.registry import make_sources
    from sciknow.serve.extractive import Extractor

    repo = tmp_path / "lib"
    (repo / "src/ksp/interface").mkdir(parents=True)
    (repo / "src/ksp/tutorials").mkdir(parents=True)
    (repo / "src/ksp/interface/itfunc.c").write_text(SOLVER_C)
    (repo / "src/ksp/interface/makefile").write_text("MANSEC = KSP\n")
    (repo / "src/ksp/tutorials/ex2.c").write_text(TUTORIAL_C)
    for args in (
        ["init", "-q"],
        ["add", "."],
        ["-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "x"],
    ):
        subprocess.run(["git", *args], cwd=repo, check=True)
    config = load_config(environ={"SCIKNOW_DATA_DIR": str(tmp_path / "data")})
    store = open_store(config)
    policy = embed_policy(config)
    spec = SourceConfig(name="lib", kind="git", path=str(repo))  # official, petsc.org links
    ingest(store, make_sources(spec, config), embedder,
           make_chunker(config), skip_embedding_kinds=policy.skip,
           embed_head_chars=policy.head_chars)  # fmt: skip
    evidence = [
        passage(1, "```c\nMatMumpsSetIcntl(F, 14, 30);\n```\nMUMPS takes many options."),
        passage(2, "The default convergence test uses KSPSetTolerances() values."),
    ]
    result = Extractor(embedder, store, PREFIXES).answer(
        "How do I set the tolerances of a KSP solver?", evidence, []
    )
    first_line = result.text.splitlines()[0]
    assert first_line.startswith("**KSPSetTolerances()** – Sets the relative")
    assert first_line.endswith("[1]")
    assert result.evidence[0].uri == "https://petsc.org/release/manualpages/KSP/KSPSetTolerances/"
    assert "`-ksp_rtol <rtol>` – Relative tolerance" in result.text
    assert "PETSC_CURRENT" in result.text
    assert "```c\nPetscCall(KSPSetTolerances(ksp, 1.e-6, 100));\n```" in result.text
    tutorial = next(e for e in result.evidence if e.kind == "example")
    assert tutorial.uri.endswith("src/ksp/tutorials/ex2.c#L15")
    assert "MatMumpsSetIcntl" not in result.text
