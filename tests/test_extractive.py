"""Extractive answers: segmentation, selection and citation on hand-made passages,
with the real MiniLM embedder and a real index for the man-page synopsis."""

from __future__ import annotations

import re

import pytest
from support.evidence import passage

from sciknow.serve.segment import segment, split_sentences

PREFIXES = ("KSP", "PC", "Mat", "Vec", "Petsc", "PETSC", "SNES")


# ----- segmentation --------------------------------------------------------------------


def test_markdown_sentences_items_tables_and_code():
    text = """# Solvers

Set the tolerances with KSPSetTolerances(). The defaults suit most problems, e.g. rtol is
1e-5. Use -ksp_monitor to watch it.

- `-ksp_rtol` sets the relative tolerance
- `-ksp_atol` sets the absolute
  tolerance, continued here

| Option | Meaning |
|---|---|
| -ksp_type cg | conjugate gradients |
| -ksp_type gmres | GMRES |

```c
KSPSetTolerances(ksp, 1e-8, PETSC_DEFAULT, PETSC_DEFAULT, 100);
```
"""
    units = segment(text)
    kinds = [u.kind for u in units]
    assert kinds == ["sentence", "sentence", "sentence", "item", "item", "row", "row", "code"]
    assert units[1].text == "The defaults suit most problems, e.g. rtol is 1e-5."
    assert units[4].text == "`-ksp_atol` sets the absolute tolerance, continued here"
    assert units[5].text == "-ksp_type cg — conjugate gradients"
    assert units[7].text.startswith("```c\nKSPSetTolerances(") and units[7].text.endswith("```")
    assert [u.position for u in units] == list(range(8))
    assert all(u.context == "Solvers" for u in units if u.kind != "code")


def test_man_page_sections_become_items_with_their_heading():
    text = """KSPSetTolerances – Sets the relative, absolute, divergence tolerances

Synopsis:
PetscErrorCode KSPSetTolerances(KSP ksp, PetscReal rtol, PetscReal abstol)

Input Parameters:
  ksp - the Krylov subspace context
  rtol - the relative convergence tolerance

Level: intermediate"""
    units = segment(text)
    items = [u for u in units if u.kind == "item"]
    assert [u.text for u in items] == [
        "`ksp` - the Krylov subspace context",
        "`rtol` - the relative convergence tolerance",
    ]
    assert {u.context for u in items} == {"Input Parameters"}
    assert units[0].text.startswith("KSPSetTolerances – Sets")


def test_mail_quotes_greetings_and_signature_are_dropped():
    text = """Hi Jane,

On Tue, Jan 3, 2023 at 10:00 AM Someone wrote:
> My solver diverges, what should I do?
> Thanks

Run with -ksp_converged_reason to see why it stopped. Then try -pc_type lu.

Barry

--
Barry's signature line that must not appear
"""
    texts = [u.text for u in segment(text)]
    assert texts == [
        "Run with -ksp_converged_reason to see why it stopped.",
        "Then try -pc_type lu.",
    ]  # the lone name line before the signature reads as a heading and is left out


def test_sentence_split_keeps_abbreviations_and_decimals():
    assert split_sentences("Use 1.5 or more, i.e. larger. See KSPSolve() etc. for more.") == [
        "Use 1.5 or more, i.e. larger.",
        "See KSPSolve() etc. for more.",
    ]


# ----- selection ---------------------------------------------------------------------


@pytest.fixture(scope="module")
def extractor(embedder, docs_config):
    from sciknow.index.factory import open_store
    from sciknow.serve.extractive import Extractor

    return Extractor(embedder, open_store(docs_config), PREFIXES, max_chars=900)


def test_the_sentence_that_names_the_asked_function_wins(extractor):
    evidence = [
        passage(1, "Preconditioners are selected with PCSetType(). Multigrid is often fastest."),
        passage(
            2,
            "Krylov methods have many options. The relative tolerance is set with "
            "KSPSetTolerances() or the option -ksp_rtol. Monitoring is cheap.",
        ),
    ]
    result = extractor.answer(
        "How do I set the relative tolerance with KSPSetTolerances?",
        evidence,
        ["KSPSetTolerances"],
    )
    first_paragraph = result.text.split("\n\n")[0]
    # The passage that answers leads, numbered [1] because markers follow reading order.
    assert "KSPSetTolerances() or the option -ksp_rtol. [1]" in first_paragraph
    assert result.evidence[0] is evidence[1]


def test_duplicates_across_passages_are_quoted_once(extractor):
    same = "Use -ksp_monitor_true_residual to print the true residual norm at each iteration."
    evidence = [
        passage(1, f"{same} It costs an extra multiply."),
        passage(2, f"Mail reply. {same}", kind="mail"),
    ]
    result = extractor.answer("How do I print the true residual norm?", evidence, [])
    assert result.text.count("-ksp_monitor_true_residual") == 1


def test_citations_point_at_the_passage_each_sentence_came_from(extractor):
    evidence = [
        passage(1, "MATAIJ is the default sparse matrix format in compressed row storage."),
        passage(2, "Preallocate with MatSeqAIJSetPreallocation() to make assembly fast."),
    ]
    result = extractor.answer(
        "How do I make assembly of a MATAIJ matrix fast with preallocation?", evidence, ["MATAIJ"]
    )
    for sentence, n in re.findall(r"([^.\n]*\.) \[(\d)\]", result.text):
        assert sentence.strip() in result.evidence[int(n) - 1].text
    assert "[1]" in result.text and "[2]" in result.text


def test_length_budget_is_kept(extractor):
    long_passages = [
        passage(i, " ".join(f"KSP sentence {i}.{j} talks about solvers." for j in range(30)))
        for i in range(1, 4)
    ]
    result = extractor.answer("Which solvers does KSP offer?", long_passages, [])
    assert 0 < len(result.text) <= 900 + 40  # budget plus citation markers


def test_named_function_gets_its_man_page_synopsis(tmp_path, embedder):
    """A real index holding a man page (from a C source) shows its synopsis on top, cited."""
    from sciknow.config import load_config
    from sciknow.index.factory import make_chunker, open_store
    from sciknow.index.pipeline import ingest
    from sciknow.ingest.registry import make_sources, source_for_location
    from sciknow.serve.extractive import Extractor

    repo = tmp_path / "lib"
    (repo / "src").mkdir(parents=True)
    (repo / "src" / "tol.c").write_text(
        """/*@
   KSPSetTolerances - Sets the relative and absolute tolerances

   Input Parameters:
+  ksp - the solver
-  rtol - relative tolerance

   Level: intermediate
@*/
PetscErrorCode KSPSetTolerances(KSP ksp, PetscReal rtol)
{
  return 0;
}
"""
    )
    import subprocess

    for args in (
        ["init", "-q"],
        ["add", "."],
        ["-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "x"],
    ):
        subprocess.run(["git", *args], cwd=repo, check=True)
    config = load_config(environ={"SCIKNOW_DATA_DIR": str(tmp_path / "data")})
    store = open_store(config)
    ingest(store, make_sources(source_for_location(str(repo), config), config), embedder,
           make_chunker(config))  # fmt: skip
    evidence = [passage(1, "Tolerances control when a Krylov solve stops.")]
    result = Extractor(embedder, open_store(config), PREFIXES).answer(
        "What does KSPSetTolerances do?", evidence, ["KSPSetTolerances"]
    )
    assert result.text.startswith("**KSPSetTolerances()** – Sets the relative and absolute")
    assert "PetscErrorCode KSPSetTolerances(KSP ksp, PetscReal rtol)" in result.text
    assert len(result.evidence) == 2 and result.evidence[0].kind == "manpage"
    assert result.text.splitlines()[0].endswith("[1]")
