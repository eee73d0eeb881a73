"""GitSource on a small git repository written by the tests: documents, links, skips, updates."""

import collections
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from sciknow.config import Profile
from sciknow.errors import SourceError
from sciknow.ingest.code import split_c, split_fortran
from sciknow.ingest.gitsrc import GitSource

SOLVER_C = """\
/*
   Widget solver routines used by the fixture tests.
*/
#include <petsc/private/widgetimpl.h>

static PetscInt widget_calls = 0; /* counts calls; braces in comments { are ignored */
static const char *const WidgetModes[] = {"slow", "fast", NULL};

/*@
  WidgetSolve - Solves the widget system

  Collective

  Input Parameters:
+ widget - the widget context
- b      - the right-hand side

  Options Database Key:
. -widget_monitor - prints progress

  Level: beginner

.seealso: `WidgetCreate()`, `KSPSolve()`
@*/
PetscErrorCode WidgetSolve(Widget widget, Vec b)
{
  PetscFunctionBegin;
  widget_calls++;
  if (b) {
    PetscCall(PetscPrintf(PETSC_COMM_SELF, "solving }\\n"));
  }
  PetscFunctionReturn(PETSC_SUCCESS);
}

static PetscErrorCode WidgetHelper_Private(Widget widget,
                                           PetscInt n)
{
  PetscFunctionBegin;
  PetscFunctionReturn(PETSC_SUCCESS);
}

/*MC
   WIDGETFAST - WIDGETFAST = "fast" - A fast widget

   Level: beginner

.seealso: `WidgetSolve()`
M*/
"""

HEADER_H = """\
#pragma once
#include <petscvec.h>

/*E
   WidgetMode - How a widget runs

   Values:
+  `WIDGET_MODE_SLOW` - carefully
-  `WIDGET_MODE_FAST` - quickly

   Level: intermediate

.seealso: `WidgetSolve()`
E*/
typedef enum { WIDGET_MODE_SLOW, WIDGET_MODE_FAST } WidgetMode;

PETSC_EXTERN PetscErrorCode WidgetSolve(Widget, Vec);
"""

EXAMPLE_C = """\
static char help[] = "Solves a widget system with WidgetSolve().\\n\\
Input parameters include:\\n\\
  -n <size> : the \\"size\\" of the system\\n\\n";

/*
   The example shows how to create and solve a widget.
*/
#include <petscwidget.h>

int main(int argc, char **argv)
{
  PetscCall(PetscInitialize(&argc, &argv, NULL, help));
  PetscCall(PetscFinalize());
  return 0;
}

/*TEST

   test:
      suffix: 1
      args: -n 10 -widget_monitor

   test:
      suffix: 2
      args: -widget_type fast

TEST*/
"""

FORTRAN_F90 = """\
! Fortran helpers for widgets
module widgetmod
  implicit none
  interface
    subroutine WidgetExternal(x)
      integer x
    end subroutine WidgetExternal
  end interface
contains
  subroutine WidgetFortranSolve(n, ierr)
    integer n, ierr
    ierr = 0
  end subroutine WidgetFortranSolve

  pure integer function WidgetDouble(n)
    integer, intent(in) :: n
    WidgetDouble = 2*n
  end function
end module widgetmod
"""

TOOL_PY = '''\
"""Command-line helpers for widgets."""

import sys


def widget_main(argv):
    """Run the widget tool."""
    return len(argv)


class WidgetConfig:
    """Options for the widget tool."""

    def __init__(self):
        self.rtol = 1e-5

    def setTolerances(self, rtol):
        self.rtol = rtol
'''

CHANGES_MD = """\
# Changes: 3.21

- Add `WidgetSolve()` with option `-widget_monitor`
"""

PROFILE = Profile(symbol_prefixes=["Widget", "WIDGET", "KSP", "Petsc", "PETSC", "Vec"])
MAX_BYTES = 50_000


def git(cwd: Path, *args: str) -> str:
    env = {**os.environ, "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@example.org"}
    env |= {"GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@example.org"}
    return subprocess.run(
        ["git", *args], cwd=cwd, env=env, check=True, capture_output=True, text=True
    ).stdout.strip()


def write_tree(root: Path) -> None:
    files = {
        "src/widget/interface/solver.c": SOLVER_C,
        "include/petscwidget.h": HEADER_H,
        "src/widget/tutorials/ex1.c": EXAMPLE_C,
        "src/widget/ftn/widgetmod.F90": FORTRAN_F90,
        "lib/petsc/bin/widgettool.py": TOOL_PY,
        "doc/changes/3.21.md": CHANGES_MD,
        "doc/manual/widgets.md": "# Widgets\n\nLeft to the docs source.\n",
        "src/widget/tutorials/output/ex1_1.out": "residual norm 1e-10\n",
        "src/widget/tests/ex2.out": "residual norm 1e-12\n",
        "makefile": "all:\n\techo widgets\n",
        "src/widget/empty.c": "",
        "src/widget/huge.c": "int x;\n" * (MAX_BYTES // 7 + 100),
    }
    for relpath, text in files.items():
        path = root / relpath
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    (root / "share/data").mkdir(parents=True)
    (root / "share/data/matrix.dat").write_bytes(b"\x00\x01\x02binary\x00")
    (root / "src/widget/latin1.c").write_bytes("/* caf\u00e9 */\nint y;\n".encode("latin-1"))


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    root = tmp_path / "petsc"
    root.mkdir()
    git(root, "init", "-q")
    write_tree(root)
    git(root, "add", "-A")
    git(root, "commit", "-q", "-m", "fixture")
    return root


def source(location: Path | str, tmp_path: Path, **kwargs) -> GitSource:
    kwargs.setdefault("max_file_bytes", MAX_BYTES)
    return GitSource("petsc-git", str(location), PROFILE, tmp_path / "clones", **kwargs)


def line_of(text: str, needle: str) -> int:
    return next(i + 1 for i, line in enumerate(text.split("\n")) if needle in line)


def by_id(docs: list) -> dict:
    ids = [d.id for d in docs]
    assert len(ids) == len(set(ids)), "document ids must be unique"
    return {d.id: d for d in docs}


def test_documents_by_kind_ids_uris_and_symbols(repo: Path, tmp_path: Path):
    src = source(repo, tmp_path)
    docs = by_id(list(src.iter_documents(None)))
    sha = git(repo, "rev-parse", "HEAD")
    kinds = collections.Counter(d.kind for d in docs.values())
    assert kinds == {"manpage": 3, "code": 11, "example": 1, "changelog": 1}
    assert all(d.version == sha and d.official and d.source == "petsc-git" for d in docs.values())

    solve = docs["petsc-git:src/widget/interface/solver.c#WidgetSolve"]
    start, end = line_of(SOLVER_C, "/*@"), line_of(SOLVER_C, "PetscErrorCode WidgetSolve(")
    assert (solve.kind, solve.title, solve.section) == ("manpage", "WidgetSolve", "WidgetSolve")
    assert (solve.start_line, solve.end_line, solve.origin) == (
        start,
        end,
        "src/widget/interface/solver.c",
    )
    assert solve.uri == (
        f"https://gitlab.com/petsc/petsc/-/blob/{sha}/src/widget/interface/solver.c#L{start}-{end}"
    )
    assert solve.symbols[0] == "WidgetSolve"
    assert {"WidgetCreate", "KSPSolve", "-widget_monitor"} <= set(solve.symbols)
    assert solve.meta["options"] == {"-widget_monitor": "prints progress"}
    assert solve.text.startswith("WidgetSolve – Solves the widget system")

    code = docs[f"petsc-git:src/widget/interface/solver.c#WidgetSolve-L{end}"]
    assert (code.kind, code.title, code.start_line) == ("code", "WidgetSolve", end)
    assert code.end_line == line_of(SOLVER_C, "static PetscErrorCode WidgetHelper") - 2
    assert code.uri.endswith(f"#L{end}-{code.end_line}")
    assert code.meta == {"language": "c"}
    helper = docs["petsc-git:src/widget/interface/solver.c#WidgetHelper_Private"]
    assert helper.text.startswith("static PetscErrorCode WidgetHelper_Private(Widget widget,\n")
    assert helper.text.endswith("}")
    rest = docs["petsc-git:src/widget/interface/solver.c"]
    assert rest.title == rest.origin == "src/widget/interface/solver.c" and rest.section == ""
    assert "WidgetModes[]" in rest.text and "PetscFunctionBegin" not in rest.text
    assert "/*@" not in rest.text and "WIDGETFAST" not in rest.text
    fast = docs["petsc-git:src/widget/interface/solver.c#WIDGETFAST"]
    assert fast.meta["kind"] == "macro" and fast.end_line == line_of(SOLVER_C, "M*/")

    enum = docs["petsc-git:include/petscwidget.h#WidgetMode"]
    assert enum.meta["kind"] == "enum" and "WIDGET_MODE_FAST" in enum.symbols
    header = docs["petsc-git:include/petscwidget.h"]
    assert header.kind == "code" and header.text == HEADER_H
    assert (header.start_line, header.end_line) == (1, HEADER_H.count("\n"))


def test_examples_other_languages_and_changelog(repo: Path, tmp_path: Path):
    docs = by_id(list(source(repo, tmp_path).iter_documents(None)))
    example = docs["petsc-git:src/widget/tutorials/ex1.c"]
    assert example.kind == "example"
    assert example.title == "src/widget/tutorials/ex1.c: Solves a widget system with WidgetSolve()."
    assert example.text.startswith(
        "Solves a widget system with WidgetSolve().\nInput parameters include:\n"
        '  -n <size> : the "size" of the system\n\n'
        "The example shows how to create and solve a widget.\n\nstatic char help[]"
    )
    assert "int main(int argc" in example.text and "TEST" not in example.text
    assert example.meta["test_args"] == ["-n 10 -widget_monitor", "-widget_type fast"]
    assert {"WidgetSolve", "-widget_monitor", "-widget_type"} <= set(example.symbols)

    fortran = "petsc-git:src/widget/ftn/widgetmod.F90"
    assert docs[f"{fortran}#WidgetFortranSolve"].text.endswith("end subroutine WidgetFortranSolve")
    assert docs[f"{fortran}#WidgetDouble"].text.lstrip().startswith("pure integer function")
    assert f"{fortran}#WidgetExternal" not in docs  # an interface body, not a definition
    assert "module widgetmod" in docs[fortran].text

    tool = "petsc-git:lib/petsc/bin/widgettool.py"
    assert docs[f"{tool}#widget_main"].text.startswith("def widget_main(argv):")
    assert docs[f"{tool}#WidgetConfig"].text.endswith('"""Options for the widget tool."""')
    method = docs[f"{tool}#WidgetConfig.setTolerances"]
    assert (method.start_line, method.end_line) == (
        line_of(TOOL_PY, "def setTolerances"),
        TOOL_PY.count("\n"),
    )
    assert method.symbols[0] == "WidgetConfig.setTolerances"
    assert f"{tool}" not in docs  # only a docstring and an import are left: trivial

    changes = docs["petsc-git:doc/changes/3.21.md"]
    assert (changes.kind, changes.title) == ("changelog", "Changes: 3.21")
    assert changes.uri == "https://petsc.org/release/changes/3.21/"
    assert changes.text == CHANGES_MD and "-widget_monitor" in changes.symbols


def test_skips_have_reasons_and_doc_tree_is_left_out(repo: Path, tmp_path: Path):
    src = source(repo, tmp_path)
    list(src.iter_documents(None))
    reasons = {s.where: s.reason for s in src.skipped}
    assert reasons == {
        "makefile": "no parser for this file type (makefile)",
        "share/data/matrix.dat": "binary file (NUL bytes)",
        "src/widget/empty.c": "empty file",
        "src/widget/huge.c": f"file is {(MAX_BYTES // 7 + 100) * 7} bytes, over "
        f"ingest.max_file_bytes={MAX_BYTES}",
        "src/widget/latin1.c": "not valid UTF-8 at byte 6",
        "src/widget/tests/ex2.out": "generated test output",
        "src/widget/tutorials/output/ex1_1.out": "generated test output",
    }
    state = src.state()
    assert "doc/changes/3.21.md" in state.origins and "doc/manual/widgets.md" not in state.origins
    assert set(reasons) <= set(state.origins)  # skipped files are tracked, so not re-logged
    assert state.extra == {"commit": git(repo, "rev-parse", "HEAD")}
    assert state.origins["makefile"] == git(repo, "rev-parse", "HEAD:makefile")


def test_exclude_and_unofficial(repo: Path, tmp_path: Path):
    src = source(repo, tmp_path, exclude=["lib/", "src/widget/ftn"], official=False)
    docs = list(src.iter_documents(None))
    assert not any(d.origin.startswith(("lib/", "src/widget/ftn")) for d in docs)
    assert not any(p.startswith(("lib/", "src/widget/ftn")) for p in src.state().origins)
    assert docs and not any(d.official for d in docs)


def test_incremental_edit_add_delete_without_commit(repo: Path, tmp_path: Path):
    src = source(repo, tmp_path)
    list(src.iter_documents(None))
    first = src.state()
    solver = repo / "src/widget/interface/solver.c"
    solver.write_text(SOLVER_C.replace("Solves the widget system", "Solves the widget equations"))
    (repo / "src/widget/interface/extra.c").write_text("int WidgetExtra(void)\n{\n  return 0;\n}\n")
    (repo / "lib/petsc/bin/widgettool.py").unlink()

    docs = list(src.iter_documents(first))
    second = src.state()
    assert {d.origin for d in docs} == {
        "src/widget/interface/solver.c",
        "src/widget/interface/extra.c",
    }
    assert any("widget equations" in d.text for d in docs)
    assert "lib/petsc/bin/widgettool.py" not in second.origins
    assert set(first.origins) - set(second.origins) == {"lib/petsc/bin/widgettool.py"}
    assert list(src.iter_documents(second)) == []

    # Committing the edit changes nothing: a modified file's fingerprint is its blob id.
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "edit")
    assert list(src.iter_documents(second)) == []
    assert src.state().origins == second.origins


def test_plain_directory_without_git(repo: Path, tmp_path: Path):
    plain = tmp_path / "tarball"
    shutil.copytree(repo, plain, ignore=shutil.ignore_patterns(".git"))
    src = source(plain, tmp_path, rev="v3.21.0")
    docs = by_id(list(src.iter_documents(None)))
    solve = docs["petsc-git:src/widget/interface/solver.c#WidgetSolve"]
    assert solve.version is None and "/blob/v3.21.0/src/widget/interface/solver.c#L" in solve.uri
    assert src.state().extra == {}
    assert list(src.iter_documents(src.state())) == []


def test_clone_from_url_then_pick_up_new_commit(repo: Path, tmp_path: Path):
    src = source(f"file://{repo}", tmp_path)
    docs = list(src.iter_documents(None))
    clone = tmp_path / "clones" / "petsc-git"
    assert git(clone, "rev-parse", "--is-shallow-repository") == "true"
    assert {d.version for d in docs} == {git(repo, "rev-parse", "HEAD")}
    first = src.state()

    (repo / "src/widget/interface/solver.c").write_text(SOLVER_C.replace("fast widget", "quick"))
    git(repo, "commit", "-q", "-am", "faster")
    again = source(f"file://{repo}", tmp_path)  # a new process: state comes from the store
    docs = list(again.iter_documents(first))
    assert {d.origin for d in docs} == {"src/widget/interface/solver.c"}
    assert {d.version for d in docs} == {git(repo, "rev-parse", "HEAD")}
    assert any("A quick" in d.text for d in docs)


def test_clone_of_a_branch(repo: Path, tmp_path: Path):
    git(repo, "branch", "release")
    src = source(f"file://{repo}", tmp_path, rev="release")
    assert list(src.iter_documents(None))
    clone = tmp_path / "clones" / "petsc-git"
    assert git(clone, "rev-parse", "--abbrev-ref", "HEAD") == "release"


def test_bad_locations_give_clear_errors(tmp_path: Path):
    bad = source("file:///nonexistent/petsc.git", tmp_path)
    with pytest.raises(SourceError, match=r"git clone of file:///nonexistent/petsc.git failed"):
        list(bad.iter_documents(None))
    with pytest.raises(SourceError, match="clone it yourself and pass the path"):
        list(bad.iter_documents(None))
    with pytest.raises(SourceError, match="is not a directory"):
        list(source(tmp_path / "missing", tmp_path).iter_documents(None))


def test_c_splitter_resynchronizes_on_unbalanced_if_branches():
    text = (
        "int A(void)\n{\n#if defined(X)\n  if (a) {\n#else\n  if (b) {\n#endif\n  }\n}\n"
        'PETSC_DEPRECATED_FUNCTION(3, 0, 0, "B", ) static inline int WidgetOld(int (*f)(void))\n{\n'
        "  return 0;\n}\n"
        "typedef struct {\n  int x;\n} S;\n"
    )
    assert [(s.name, s.start, s.end) for s in split_c(text)] == [("A", 1, 9), ("WidgetOld", 10, 13)]


def test_fortran_fixed_form_comments_are_ignored():
    text = "C     subroutine Ghost\n      subroutine Real1(x)\n      end\n"
    assert [(s.name, s.start, s.end) for s in split_fortran(text, fixed_form=True)] == [
        ("Real1", 2, 3)
    ]


@pytest.mark.skipif(
    not os.environ.get("SCIKNOW_PETSC_CHECKOUT"),
    reason="set SCIKNOW_PETSC_CHECKOUT to a PETSc tree",
)
def test_real_petsc_checkout(tmp_path: Path):
    src = GitSource("petsc-git", os.environ["SCIKNOW_PETSC_CHECKOUT"], Profile(), tmp_path)
    docs = list(src.iter_documents(None))
    kinds = collections.Counter(d.kind for d in docs)
    reasons = collections.Counter(s.reason.split(" (")[0] for s in src.skipped)
    print(f"\n{len(src.state().origins)} files, documents by kind: {dict(kinds)}")
    print(f"skips: {dict(reasons.most_common(8))}")
    assert kinds["manpage"] > 1000 and kinds["example"] > 100 and kinds["code"] > 1000
    assert len({d.id for d in docs}) == len(docs)
