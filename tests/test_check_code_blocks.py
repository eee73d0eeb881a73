"""C code blocks of Markdown compiled against the installed PETSc: the per-block verdicts
an answer flag calls for (`check_blocks`), the verdict cache, the docs blocks that
`sciknow gaps` lists as candidates, and the `--compile` figures of `eval answers`.

Finding blocks needs no compiler; the rest skips without PETSc (Debian: apt-get install
petsc-dev openmpi-bin pkg-config).
"""

from __future__ import annotations

import json

import pytest
from support.pages import write_docs

from sciknow.config import SourceConfig, load_config
from sciknow.eval.answer_report import markdown_report
from sciknow.eval.answers import AnswerRequest, RunSpec, compile_verdicts, run, summarize
from sciknow.eval.metrics import mean
from sciknow.index.factory import open_store
from sciknow.serve.codecheck.blocks import (
    CACHE_FILE,
    VerdictCache,
    check_blocks,
    code_blocks,
)
from sciknow.serve.codecheck.check import CodeChecker, checker_for
from sciknow.serve.codecheck.petsc import PetscNotFound, find_petsc
from sciknow.serve.docpatch.gaps import REPORT_FILE, docs_code, gaps_report
from sciknow.ui.patch import _render_code

PREFIXES = load_config(environ={}).profile.symbol_prefixes

ANSWER = """\
Create the solver, then set its tolerances:

1. In C:

   ```c
   PetscCall(KSPCreate(PETSC_COMM_WORLD, &ksp));
   PetscCall(KSPSetTolerence(ksp, 1e-8, PETSC_DEFAULT, PETSC_DEFAULT, 100));
   ```

```
PetscCall(VecDuplicate(x, &y));
```

```console
$ ./ex1 -ksp_monitor
```

```c
for (i = 0; i < n; i++) x[i] = 0;
```
"""

PAGE = """\
# Vectors

:::{note}
```{code-block} c
:linenos:

PetscCall(VecDuplicate(x, &y));
PetscCall(VecCopy(x, y));
```
:::

The old name:

```c
PetscCall(VecDuplicat(x, &y));
```

Elided:

```
PetscCall(VecCopy(x, y));
...
```

```python
import petsc4py
```
"""


def test_blocks_are_found_with_their_lines_and_languages():
    blocks = code_blocks(ANSWER, PREFIXES)
    assert [(b.line, b.language, b.tagged) for b in blocks] == [
        (6, "c", True),
        (11, "c", False),  # untagged, calls a library name
        (19, "c", True),
    ]
    assert blocks[0].code.startswith("PetscCall(KSPCreate")  # the list's indent is gone
    page = code_blocks(PAGE, PREFIXES)
    assert [(b.line, b.code.splitlines()[0]) for b in page] == [
        (7, "PetscCall(VecDuplicate(x, &y));"),  # inside a note, options dropped
        (15, "PetscCall(VecDuplicat(x, &y));"),
        (21, "PetscCall(VecCopy(x, y));"),
    ]
    assert code_blocks("No code here.\n\n```console\n$ make\n```\n", PREFIXES) == []


@pytest.fixture(scope="module")
def checker(tmp_path_factory) -> CodeChecker:
    try:
        find_petsc()
    except PetscNotFound as err:
        pytest.skip(str(err))
    data = tmp_path_factory.mktemp("no-index")
    return checker_for(load_config(environ={"SCIKNOW_DATA_DIR": str(data)}))


def test_each_block_of_an_answer_gets_its_verdict_with_lines_in_the_answer(checker):
    verdicts = check_blocks(checker, ANSWER, PREFIXES)
    assert [v.status for v in verdicts] == ["error", "compiles", "cannot-wrap"]
    wrong = verdicts[0]
    assert wrong.line == 6 and wrong.diagnostic is not None
    assert (wrong.diagnostic["line"], wrong.diagnostic["name"]) == (7, "KSPSetTolerence")
    assert wrong.diagnostic["suggestions"][0] == "KSPSetTolerances"
    assert "line 7: error" in wrong.verdict and wrong.petsc.startswith("PETSc 3.")
    assert verdicts[1].verdict.startswith("compiles against PETSc")
    assert verdicts[2].reason.startswith("cannot tell the type of `i`")
    assert check_blocks(checker, "No code.\n", PREFIXES) == []


def test_the_cache_keeps_verdicts_by_content_wherever_the_block_moves(checker, tmp_path):
    cache = VerdictCache(tmp_path / CACHE_FILE)
    first = check_blocks(checker, ANSWER, PREFIXES, cache)
    moved = "Two lines\nabove.\n" + ANSWER
    calls = []
    original = checker.check
    checker.check = lambda *a, **k: calls.append(a) or original(*a, **k)  # type: ignore[method-assign]
    try:
        again = check_blocks(checker, moved, PREFIXES, cache)
    finally:
        del checker.check
    assert calls == []  # every verdict came from the cache
    assert [v.line for v in again] == [v.line + 2 for v in first]
    assert again[0].diagnostic is not None and again[0].diagnostic["line"] == 9
    assert "line 9: error" in again[0].verdict
    cache.close()


def _docs_config(tmp_path, **check):
    docs = tmp_path / "docs"
    (docs / "manual").mkdir(parents=True)
    (docs / "manual" / "vec.md").write_text(PAGE)
    (docs / "manual" / "api.md").write_text("```c\nKSPSolve(KSP ksp, Vec b, Vec x);\n```\n")
    (docs / "old").mkdir()
    (docs / "old" / "skip.md").write_text("```c\nPetscCall(Nonsense(x));\n```\n")
    config = load_config(environ={"SCIKNOW_DATA_DIR": str(tmp_path / "data")})
    config.sources = [SourceConfig("petsc-docs", "docs", str(docs), exclude=["old/"])]
    for key, value in check.items():
        setattr(config.check, key, value)
    return config


def test_docs_blocks_that_do_not_compile_are_gaps_candidates(checker, tmp_path):
    config = _docs_config(tmp_path, gaps_blocks=2)
    store = open_store(config)
    first = docs_code(config, store)  # the synopsis of api.md costs no compiler run
    assert (first["blocks"], first["compiled"], first["left"]) == (4, 3, 1)
    assert [(c["file"], c["line"]) for c in first["candidates"]] == [("manual/vec.md", 15)]
    candidate = first["candidates"][0]
    assert candidate["source"] == "petsc-docs" and candidate["error"]["line"] == 15
    assert candidate["error"]["name"] == "VecDuplicat"
    assert "VecDuplicate" in candidate["error"]["suggestions"]
    second = docs_code(config, store)  # the cached three, then the one left over
    assert (second["cached"], second["compiled"], second["left"]) == (3, 1, 0)
    assert (second["compiles"], second["error"], second["cannot_wrap"]) == (1, 1, 2)
    report = gaps_report(config, store, embedder=None)  # type: ignore[arg-type]  # no questions
    saved = json.loads((config.data_path / REPORT_FILE).read_text())
    assert report["code"]["candidates"] == saved["code"]["candidates"] == first["candidates"]
    lines = _render_code(first, top=10).splitlines()  # what `sciknow gaps` prints
    assert lines[0].startswith("manual/vec.md:15 (petsc-docs): does not compile against")
    assert "VecDuplicat" in lines[0]
    assert lines[-1].endswith("among 4 found, 1 left for the next run)")


def test_without_petsc_or_with_the_check_off_the_gaps_code_part_says_why(tmp_path):
    config = _docs_config(tmp_path, petsc_dir=str(tmp_path / "nowhere"))
    code = docs_code(config, open_store(config))
    assert "apt-get install petsc-dev" in code["skipped"] and code["candidates"] == []
    assert _render_code(code, top=10).startswith("(docs code not checked: ")
    config.check.gaps_blocks = 0
    assert docs_code(config, open_store(config))["skipped"].startswith("off")


def test_eval_compile_share_counts_answers_without_code_apart(checker, tmp_path):
    cache = VerdictCache(tmp_path / CACHE_FILE)
    texts = [ANSWER, "```c\nPetscCall(VecDuplicate(x, &y));\n```\n", "No code, only words."]
    rows = []
    for n, text in enumerate(texts):
        rows.append(_row(f"q{n}", text, compile_verdicts(checker, cache, text, PREFIXES)))
    cache.close()
    assert rows[0]["compile"]["compiles"] is False and rows[1]["compile"]["compiles"] is True
    assert rows[2]["compile"] == {"blocks": [], "compiles": None}
    summary = summarize(RunSpec("default", "extractive", "none", "none"), rows, judged=False)
    assert summary["code_answers"] == 2 and summary["no_code_answers"] == 1
    assert summary["code_compiles"] == 0.5
    assert (summary["code_blocks"], summary["code_blocks_unwrapped"]) == (4, 1)
    report = {
        "mode": "all", "questions": 3, "dataset": "d", "corpus": "c", "exclude": [],
        "repo": "", "embedder": "e", "judge": None, "petsc": "PETSc 3.18.5",
        "answering": {"model": "none", "backend": "none"},
        "settings": {"flags": False, "compile": True},
        "runs": [{**summary, "per_question": rows}],
    }  # fmt: skip
    text = markdown_report(report)
    assert "answers whose C code compiles (of those with code) | 0.50" in text
    assert "## Code that does not compile against PETSc 3.18.5" in text
    assert "| default+extractive | q0 | 6 | does not compile" in text


def _row(question: str, text: str, compiled: dict) -> dict:
    """A per-question row as `eval answers` keeps it (the metrics summarize reads)."""
    metrics = {
        "symbol_recall": 1.0, "symbol_precision": 1.0, "lead_hit": True, "unit_precision": 1.0,
        "invented": [], "removed": [], "citations": 1, "supported_citations": 1, "cited": True,
        "loop": False, "fallback": False, "gen_symbol_recall": 1.0, "gen_cited": True,
        "gen_loop": False, "gen_invented": [], "chars": len(text), "words": 3,
        "ttft_ms": 1.0, "tokens_per_s": None, "total_ms": 5.0, "flag_check": [0, 0, 0, 0],
    }  # fmt: skip
    return {
        "id": question, "question": question, "text": text, "abstained": False,
        "cached": False, "generated": None, "metrics": metrics, "judged": {},
        "compile": compiled,
    }  # fmt: skip


def test_a_list_of_routines_with_types_for_arguments_is_a_synopsis(checker):
    listing = "KSPMonitorResidual(KSP, PetscInt, PetscReal, void *);\n"
    report = checker.check(listing)
    assert report.cannot_wrap == (
        "it is a synopsis, not code (a type, `KSP`, where an argument belongs, line 1)"
    )
    assert not report.compiled and "cannot be wrapped" in report.verdict()
    pseudo = checker.check("PetscCall(VecScale(x, 2.0 3.0));\n")  # a parse error, no type
    assert not pseudo.cannot_wrap and not pseudo.compiled


VEC_PAGE = """# Vectors

## Duplicating a vector

To duplicate a vector and copy its values, call VecDuplicate and VecCopy:

```c
PetscCall(VecDuplicate(x, &y));
PetscCall(VecCopy(x, y));
```
"""


def test_eval_answers_compile_end_to_end(checker, tmp_path, embedder):
    docs = write_docs(tmp_path / "docs")
    (docs / "manual" / "vec.md").write_text(VEC_PAGE)
    dataset = tmp_path / "set.jsonl"
    questions = [
        {"id": "v", "question": "How do I duplicate a vector with VecDuplicate?", "answer": ""},
        {"id": "i", "question": "How do I run configure?", "answer": "Run ./configure."},
    ]
    dataset.write_text("".join(json.dumps(q) + "\n" for q in questions))
    config = load_config(environ={"SCIKNOW_DATA_DIR": str(tmp_path / "data")})
    request = AnswerRequest(
        dataset=dataset, corpus=docs, pipelines=["default"], modes=["extractive"],
        out=tmp_path / "out", cache=tmp_path / "cache", compile=True,
    )  # fmt: skip
    report = run(request, config, embedder)
    assert report["settings"]["compile"] and report["petsc"].startswith("PETSc 3.")
    rows = {row["id"]: row for row in report["runs"][0]["per_question"]}
    vec = rows["v"]["compile"]
    assert "VecDuplicate(x, &y)" in rows["v"]["text"], rows["v"]["text"]
    assert vec["compiles"] is True and [b["status"] for b in vec["blocks"]] == ["compiles"]
    with_code = [r for r in rows.values() if r["compile"]["blocks"]]
    summary = report["runs"][0]
    assert summary["code_answers"] == len(with_code) and summary["no_code_answers"] == 2 - len(
        with_code
    )
    assert summary["code_compiles"] == mean(float(r["compile"]["compiles"]) for r in with_code)
    assert (tmp_path / "data" / CACHE_FILE).is_file()
