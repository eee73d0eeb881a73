"""`sciknow check-code`: real compilations against the installed PETSc, runs in a real
bubblewrap sandbox, and the parts that need neither (harness splitting, diagnostics,
petscvariables). Tests that need PETSc, mpiexec or bubblewrap skip with the reason when
this machine lacks them (Debian: apt-get install petsc-dev openmpi-bin bubblewrap
pkg-config).
"""

from __future__ import annotations

import copy
import json
import os
import time
from pathlib import Path

import pytest

from sciknow.config import load_config
from sciknow.serve.codecheck.check import CodeChecker, checker_for
from sciknow.serve.codecheck.compiler import parse_diagnostics, unknown_name
from sciknow.serve.codecheck.harness import CannotWrap, split
from sciknow.serve.codecheck.petsc import PetscNotFound, find_petsc, read_petscvariables
from sciknow.serve.codecheck.sandbox import Limits, sandbox_problem
from sciknow.serve.codecheck.signatures import Signatures
from sciknow.ui.cli import main

KSP_PROGRAM = """\
#include <petscksp.h>

int main(int argc, char **argv)
{
  Vec      x, b;
  Mat      A;
  KSP      ksp;
  PetscInt i, n = 20, first, last, its;

  PetscCall(PetscInitialize(&argc, &argv, NULL, NULL));
  PetscCall(MatCreate(PETSC_COMM_WORLD, &A));
  PetscCall(MatSetSizes(A, PETSC_DECIDE, PETSC_DECIDE, n, n));
  PetscCall(MatSetFromOptions(A));
  PetscCall(MatSetUp(A));
  PetscCall(MatGetOwnershipRange(A, &first, &last));
  for (i = first; i < last; i++) {
    if (i > 0) PetscCall(MatSetValue(A, i, i - 1, -1.0, INSERT_VALUES));
    if (i < n - 1) PetscCall(MatSetValue(A, i, i + 1, -1.0, INSERT_VALUES));
    PetscCall(MatSetValue(A, i, i, 2.0, INSERT_VALUES));
  }
  PetscCall(MatAssemblyBegin(A, MAT_FINAL_ASSEMBLY));
  PetscCall(MatAssemblyEnd(A, MAT_FINAL_ASSEMBLY));
  PetscCall(MatCreateVecs(A, &x, &b));
  PetscCall(VecSet(b, 1.0));
  PetscCall(KSPCreate(PETSC_COMM_WORLD, &ksp));
  PetscCall(KSPSetOperators(ksp, A, A));
  PetscCall(KSPSetFromOptions(ksp));
  PetscCall(KSPSolve(ksp, b, x));
  PetscCall(KSPGetIterationNumber(ksp, &its));
  PetscCall(PetscPrintf(PETSC_COMM_WORLD, "converged in %d iterations\\n", (int)its));
  PetscCall(KSPDestroy(&ksp));
  PetscCall(VecDestroy(&x));
  PetscCall(VecDestroy(&b));
  PetscCall(MatDestroy(&A));
  PetscCall(PetscFinalize());
  return 0;
}
"""

SOCKET_PROGRAM = """\
#include <stdio.h>
#include <string.h>
#include <errno.h>
#include <sys/socket.h>
#include <netinet/in.h>
#include <arpa/inet.h>

int main(void)
{
  struct sockaddr_in to = {0};
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  to.sin_family = AF_INET;
  to.sin_port = htons(80);
  inet_pton(AF_INET, "192.0.2.1", &to.sin_addr);
  if (connect(fd, (struct sockaddr *)&to, sizeof(to)) != 0) {
    printf("connect: %s\\n", strerror(errno));
    return 3;
  }
  return 0;
}
"""

ESCAPE_PROGRAM = """\
#include <stdio.h>
#include <string.h>
#include <errno.h>

int main(void)
{
  FILE *f = fopen("/etc/sciknow-sandbox-escape", "w");
  if (!f) {
    printf("fopen: %s\\n", strerror(errno));
    return 4;
  }
  fclose(f);
  return 0;
}
"""

FORK_PROGRAM = "#include <unistd.h>\nint main(void) { for (;;) fork(); return 0; }\n"
LOOP_PROGRAM = "int main(void) { volatile unsigned long i = 0; for (;;) i++; return 0; }\n"
FLOOD_PROGRAM = '#include <stdio.h>\nint main(void) { for (;;) puts("flood flood flood"); }\n'


def _petsc_or_skip():
    try:
        return find_petsc()
    except PetscNotFound as err:
        pytest.skip(str(err))


@pytest.fixture(scope="module")
def checker(tmp_path_factory) -> CodeChecker:
    """A checker of the installed PETSc with no index (names and types from headers)."""
    _petsc_or_skip()
    data = tmp_path_factory.mktemp("no-index")
    config = load_config(environ={"SCIKNOW_DATA_DIR": str(data)})
    return checker_for(config, limits=Limits(wall_s=60, cpu_s=30))


@pytest.fixture(scope="module")
def sandboxed(checker: CodeChecker) -> CodeChecker:
    problem = sandbox_problem()
    if problem:
        pytest.skip(problem)
    return checker


def _with_limits(checker: CodeChecker, **limits) -> CodeChecker:
    return CodeChecker(
        checker.build,
        checker.signatures,
        checker.suggest,
        checker.library_prefixes,
        Limits(**limits),
    )


# ----- no compiler needed -------------------------------------------------------------


def test_split_puts_definitions_at_file_scope_and_statements_in_main():
    code = (
        "#include <petscksp.h>\n"
        "static PetscErrorCode Monitor(KSP ksp, PetscInt n, PetscReal r, void *ctx)\n"
        "{\n  return 0;\n}\n"
        "KSPMonitorSet(ksp, Monitor, NULL, NULL);\n"
        "if (flag) { KSPSolve(ksp, b, x); } else { VecSet(x, 0.0); }\n"
    )
    fragment = split(code)
    assert [p.line for p in fragment.directives] == [1]
    assert [p.line for p in fragment.file_scope] == [2]
    assert [p.line for p in fragment.body] == [6, 7]
    assert "else" in fragment.body[1].text


@pytest.mark.parametrize(
    ("code", "reason"),
    [
        ("KSPCreate(comm, &ksp);\n...\nKSPSolve(ksp, b, x);\n", "leaves code out"),
        ("$ make ex2\n$ mpiexec -n 2 ./ex2 -ksp_monitor\n", "shell commands"),
        ("call KSPSolve(ksp, b, x, ierr)\n", "Fortran"),
        ("from petsc4py import PETSc\nksp = PETSc.KSP().create()\n", "Python"),
        ("if (n) {\n  KSPSolve(ksp, b, x);\n", "unbalanced"),
        ("MatCreateBAIJ(MPI_Comm comm, PetscInt bs, Mat *A);\n", "synopsis"),
    ],
)
def test_unwrappable_fragments_say_why(code, reason):
    with pytest.raises(CannotWrap, match=reason):
        split(code)


def test_a_variadic_prototype_is_not_elision():
    code = 'PetscErrorCode Say(const char fmt[], ...)\n{\n  return 0;\n}\nSay("hi");\n'
    assert len(split(code).file_scope) == 1


def test_diagnostics_of_gcc_gxx_clang_and_the_linker():
    implicit = (
        "implicit declaration of function 'KSPSetTolerence'; "
        "did you mean 'KSPSetTolerances'? [-Werror=implicit-function-declaration]"
    )
    output = f"""\
fragment.c: In function 'main':
fragment.c:3:1: error: {implicit}
fragment.c:4:15: error: too few arguments to function 'KSPSetTolerances'
/usr/include/petscksp.h:120:29: note: declared here
harness.c:9:3: warning: unused variable 'x' [-Wunused-variable]
code.cxx:5:3: error: 'KSPSolv' was not declared in this scope; did you mean 'KSPSolve'?
code.c:7:9: error: use of undeclared identifier 'kps'
/usr/bin/ld: /tmp/code.o: in function `main':
code.c:(.text+0x2a): undefined reference to `VecDuplicat'
collect2: error: ld returned 1 exit status
"""
    found = parse_diagnostics(output, "fragment.c", "harness.c")
    assert [(d.where, d.line, d.severity) for d in found] == [
        ("code", 3, "error"),
        ("code", 4, "error"),
        ("harness", 0, "warning"),
        ("code.cxx", 0, "error"),
        ("code.c", 0, "error"),
        ("link", 0, "error"),
    ]
    assert found[0].name == "KSPSetTolerence"
    assert found[1].name == "" and found[1].notes == ["petscksp.h:120: declared here"]
    assert [d.name for d in found[3:]] == ["KSPSolv", "kps", "VecDuplicat"]
    assert unknown_name("unknown type name 'Vecc'") == "Vecc"


def test_synopsis_types_a_fragment_without_headers():
    synopses = {"KSPGetPC": "#include <petscksp.h>\nPetscErrorCode KSPGetPC(KSP ksp, PC *pc)"}
    signatures = Signatures((), synopses.get)
    found = signatures.lookup("KSPGetPC")
    assert found is not None and found.params == ("KSP", "PC *")
    assert found.source == "man page"


def test_petscvariables_are_expanded(tmp_path):
    conf = tmp_path / "arch" / "lib" / "petsc" / "conf"
    conf.mkdir(parents=True)
    (conf / "petscvariables").write_text(
        "CC_FLAGS = -O2 -g\nPCC_FLAGS = $(CC_FLAGS) -fPIC\nPETSC_LIB = ${C_SH_LIB_PATH} -lpetsc\n"
    )
    values = read_petscvariables(conf / "petscvariables")
    assert values["PCC_FLAGS"] == "-O2 -g -fPIC"
    assert values["PETSC_LIB"].split() == ["-lpetsc"]


def test_without_petsc_the_verb_says_how_to_install_one(tmp_path, monkeypatch, capsys):
    source = tmp_path / "a.c"
    source.write_text("KSPSolve(ksp, b, x);\n")
    monkeypatch.setenv("PETSC_DIR", str(tmp_path / "no-petsc"))
    monkeypatch.setenv("SCIKNOW_DATA_DIR", str(tmp_path / "data"))
    assert main(["check-code", str(source)]) == 2
    error = capsys.readouterr().err
    assert "apt-get install petsc-dev" in error and "PETSC_DIR" in error


# ----- compiling against the installed PETSc ----------------------------------------


def test_a_complete_program_compiles(checker):
    report = checker.check(KSP_PROGRAM)
    assert report.kind == "program" and report.compiled, report.diagnostics
    assert report.version.count(".") == 2 and report.verdict().startswith("compiles")


def test_a_fragment_is_typed_from_signatures_and_compiles(checker):
    fragment = (
        "PetscCall(KSPCreate(PETSC_COMM_WORLD, &ksp));\n"
        "PetscCall(KSPSetOperators(ksp, A, A));\n"
        "PetscCall(KSPGetPC(ksp, &pc));\n"
        "PetscCall(PCSetType(pc, PCJACOBI));\n"
        "PetscCall(KSPSolve(ksp, b, x));\n"
    )
    report = checker.check(fragment)
    assert report.kind == "fragment" and report.compiled, report.diagnostics
    types = {d.name: d.type for d in report.declarations}
    assert types == {"ksp": "KSP", "A": "Mat", "pc": "PC", "b": "Vec", "x": "Vec"}
    assert "PetscInitialize" in report.harness and "PetscFinalize" in report.harness


def test_a_misspelled_function_gets_the_diagnostic_and_the_right_suggestion(checker):
    fragment = (
        "PetscCall(KSPCreate(PETSC_COMM_WORLD, &ksp));\n"
        "PetscCall(KSPSetTolerence(ksp, 1e-8, PETSC_DEFAULT, PETSC_DEFAULT, 100));\n"
    )
    report = checker.check(fragment)
    assert not report.compiled
    error = report.errors()[0]
    assert (error.where, error.line, error.name) == ("code", 2, "KSPSetTolerence")
    assert error.suggestions[0] == "KSPSetTolerances"
    assert "line 2" in report.verdict()


def test_a_wrong_argument_count_is_caught(checker):
    report = checker.check("PetscCall(KSPSetTolerances(ksp, 1e-8, PETSC_DEFAULT, 100));\n")
    assert not report.compiled
    assert "too few arguments" in report.errors()[0].message
    assert report.errors()[0].line == 1


def test_a_forgotten_ampersand_is_caught(checker):
    report = checker.check("PetscCall(KSPGetPC(ksp, pc));\nPetscCall(PCSetType(pc, PCLU));\n")
    assert not report.compiled
    assert "incompatible pointer type" in report.errors()[0].message


def test_a_variable_no_call_types_makes_the_fragment_unwrappable(checker):
    report = checker.check("for (i = 0; i < n; i++) PetscCall(VecSetValue(x, i, 1.0, ADD_VALUES));")
    assert report.cannot_wrap.startswith("cannot tell the type of `n`")
    assert not report.ok and "cannot be wrapped" in report.verdict()


def test_a_variable_in_capitals_whose_address_is_taken_is_declared(checker):
    report = checker.check("PetscCall(VecScatterCreateToAll(vlx, &ctx, &V_SEQ));\n")
    assert report.compiled, report.diagnostics
    assert {d.name: d.type for d in report.declarations}["V_SEQ"] == "Vec"


def test_a_type_the_installed_petsc_lacks_makes_the_fragment_unwrappable(checker):
    """A newer man page types `f` as `PetscErrorCodeFn *`; PETSc 3.18 has no such type: the
    harness is at fault, not the code, so no compile error is reported."""
    newer = copy.copy(checker)
    synopsis = "PetscErrorCode MatGetOperation(Mat mat, MatOperation op, PetscErrorCodeFn **f)"
    newer.signatures = Signatures(
        checker.signatures.include_dirs, {"MatGetOperation": synopsis}.get
    )
    report = newer.check("PetscCall(MatGetOperation(jac, MATOP_VIEW, &f));\n")
    assert report.cannot_wrap.startswith("the installed PETSc refuses the declarations of")
    assert "`f` as `PetscErrorCodeFn *`" in report.cannot_wrap
    assert not report.ok and "cannot be wrapped" in report.verdict()


def test_cli_shows_the_harness_and_prints_json(checker, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("SCIKNOW_DATA_DIR", str(tmp_path / "data"))
    source = tmp_path / "frag.c"
    source.write_text("PetscCall(VecDuplicate(x, &y));\nPetscCall(VecCopy(x, y));\n")
    assert main(["check-code", str(source), "--show-harness"]) == 0
    shown = capsys.readouterr().out
    assert "--- harness ---" in shown and "Vec x = {0};" in shown and "compiles against" in shown
    monkeypatch.setattr("sys.stdin", open(source))  # noqa: SIM115 (closed by pytest)
    assert main(["check-code", "-", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["ok"] and report["kind"] == "fragment" and report["run"] is None


# ----- running in the sandbox -------------------------------------------------------


@pytest.mark.parametrize("np", [1, 2])
def test_a_ksp_program_runs_on_one_and_two_ranks(sandboxed, np):
    report = sandboxed.check(KSP_PROGRAM, run=True, np=np)
    assert report.run is not None and report.ok, report.run
    assert report.run.exit_status == 0 and report.run.np == np
    assert "converged in" in report.run.output_tail


def test_no_network_in_the_sandbox(sandboxed):
    run = sandboxed.check(SOCKET_PROGRAM, run=True).run
    assert run is not None and run.exit_status != 0
    assert "Network is unreachable" in run.output_tail and "no network" in run.denied


def test_no_write_outside_the_private_tmp(sandboxed):
    run = sandboxed.check(ESCAPE_PROGRAM, run=True).run
    assert run is not None and run.exit_status != 0 and "read-only" in run.denied
    assert not Path("/etc/sciknow-sandbox-escape").exists()


def test_a_fork_bomb_is_stopped_and_cleaned_up(sandboxed):
    checker = _with_limits(sandboxed, wall_s=5, processes=32)
    started = time.perf_counter()
    run = checker.check(FORK_PROGRAM, run=True).run
    assert run is not None and run.exit_status is None
    assert "wall time limit (5 s)" in run.stopped
    assert time.perf_counter() - started < 30
    time.sleep(1)
    assert not _running("program"), "sandboxed processes outlived the sandbox"


def test_an_endless_loop_hits_the_cpu_limit(sandboxed):
    run = _with_limits(sandboxed, wall_s=30, cpu_s=2).check(LOOP_PROGRAM, run=True).run
    assert run is not None and "CPU time limit (2 s" in run.stopped
    assert run.seconds < 25


def test_output_flooding_is_cut(sandboxed):
    run = _with_limits(sandboxed, output_bytes=20_000).check(FLOOD_PROGRAM, run=True).run
    assert run is not None and "output limit (20000 bytes)" in run.stopped
    assert run.output_bytes < 200_000 and "flood" in run.output_tail


def _running(name: str) -> list[int]:
    """PIDs of processes whose command is `./name` (the sandbox's binary)."""
    found = []
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            argv0 = cmdline.read_bytes().split(b"\0", 1)[0]
        except OSError:
            continue
        if argv0 == f"./{name}".encode():
            found.append(int(cmdline.parent.name))
    return [pid for pid in found if pid != os.getpid()]
