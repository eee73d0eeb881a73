"""`sciknow check-code`: compile C/C++ against the configured PETSc, and run it sandboxed.

    sciknow check-code (FILE | -) [--run] [--np N] [--json] [--show-harness]

A program (it has `main`) is compiled as it is; a fragment is wrapped into one first
(`serve/codecheck/harness.py`). Each diagnostic is printed with its line, unknown names
with the API-name check's suggestions, and the PETSc version used. `--run` runs the
program with `mpiexec -n N` inside a bubblewrap sandbox and prints its exit status, time
and the tail of its output. Exit status: 0 when it compiles (and runs cleanly), 1 when
not, 2 on an error (no PETSc: the message says how to install one; an unreadable file).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
from typing import Annotated, Any

from pydantic import Field, StringConstraints

from sciknow.config import Config
from sciknow.errors import ConfigError
from sciknow.serve.codecheck.sandbox import MAX_NP
from sciknow.ui.verify import read_text

CXX_SUFFIXES = (".cxx", ".cpp", ".cc", ".C", ".hpp")
Code = Annotated[
    str,
    StringConstraints(min_length=1, max_length=200_000),
    Field(description="C or C++: a whole program, or a fragment (a few calls, no main)"),
]
Language = Annotated[str, Field(pattern=r"^(c|c\+\+)$", description="c or c++")]


def add_check_code_parser(verbs: Any) -> None:
    """Register the `check-code` verb on the `sciknow` sub-parsers."""
    parser = verbs.add_parser(
        "check-code", help="compile C/C++ (a program or a fragment) against PETSc; --run runs it"
    )
    parser.add_argument("file", metavar="FILE", help="the code ('-': standard input)")
    parser.add_argument(
        "--run", dest="execute", action="store_true", help="run it in the sandbox (mpiexec)"
    )
    parser.add_argument("--np", type=int, default=1, help=f"MPI ranks for --run (1-{MAX_NP})")
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    parser.add_argument(
        "--show-harness", action="store_true", help="print what was compiled for a fragment"
    )
    parser.add_argument("--language", choices=["c", "c++"], help="default: from the suffix, else c")
    parser.add_argument(
        "--petsc-dir", default="", help="a built PETSc (default: [check] petsc_dir, $PETSC_DIR)"
    )
    parser.add_argument("--petsc-arch", default="", help="its PETSC_ARCH")
    parser.add_argument("--wall-s", type=float, help="--run wall time limit ([check] wall_s)")
    parser.set_defaults(run=run_check_code)


def _language(args: argparse.Namespace) -> str:
    if args.language:
        return args.language
    return "c++" if args.file.endswith(CXX_SUFFIXES) else "c"


def print_report(report: Any, show_harness: bool) -> None:
    """The report for a terminal: the PETSc used, each diagnostic, the run."""
    print(f"{report.petsc}, {report.language} {report.kind}")
    if show_harness and report.harness:
        print("--- harness ---")
        print(report.harness.rstrip())
        print("---")
    for declaration in report.declarations:
        print(f"  declared {declaration.type} {declaration.name} from {declaration.because}")
    for diagnostic in report.diagnostics:
        print(f"  {diagnostic.describe()}")
        for note in diagnostic.notes[:2]:
            print(f"      note: {note}")
    print(report.verdict())
    if report.run_skipped:
        print(report.run_skipped)
    run = report.run
    if run is not None:
        status = "stopped" if run.exit_status is None else f"exit status {run.exit_status}"
        stopped = f" ({run.stopped})" if run.stopped else ""
        print(f"ran on {run.np} rank(s): {status}{stopped}, {run.seconds:.2f} s")
        if run.denied:
            print(f"the sandbox refused {run.denied}")
        if run.output_tail.strip():
            print("--- output (tail) ---")
            print(run.output_tail.rstrip())


def run_check_code(args: argparse.Namespace, config: Config) -> int:
    from sciknow.serve.codecheck.check import checker_for
    from sciknow.serve.codecheck.sandbox import Limits

    if not 1 <= args.np <= MAX_NP:
        raise ConfigError(f"--np must be between 1 and {MAX_NP}")
    if args.wall_s is not None and args.wall_s <= 0:
        raise ConfigError("--wall-s must be positive")
    code = read_text(args.file)
    limits = Limits.of(config.check)
    if args.wall_s:
        limits = dataclasses.replace(limits, wall_s=args.wall_s)
    checker = checker_for(config, args.petsc_dir, args.petsc_arch, limits)
    report = checker.check(code, _language(args), run=args.execute, np=args.np)
    if args.json:
        print(json.dumps(report.to_dict(), indent=2, ensure_ascii=False))
    else:
        print_report(report, args.show_harness)
    return 0 if report.ok else 1


def add_code_tools(server: Any, config: Config, allow_run: bool) -> None:
    """Register the MCP tools `compile` and, with `allow_run` (`sciknow mcp --allow-run`)
    or `[check] allow_run`, `run` on `server`. They compile in the MCP process itself —
    the PETSc is the one on the agent's machine — with the checker built at the first
    call, so a server without PETSc starts and each call says how to install one."""
    import asyncio
    import functools

    from mcp.server.mcpserver.exceptions import ToolError
    from mcp.types import ToolAnnotations

    from sciknow.serve.codecheck.check import checker_for
    from sciknow.serve.codecheck.petsc import PetscNotFound

    checker = functools.cache(lambda: checker_for(config))

    async def check(code: str, language: str, run: bool, np: int) -> dict[str, Any]:
        try:
            report = await asyncio.to_thread(
                lambda: checker().check(code, language, run=run, np=np)
            )
        except PetscNotFound as err:
            raise ToolError(str(err)) from None
        return report.to_dict()

    @server.tool(
        name="compile",
        annotations=ToolAnnotations(read_only_hint=True, open_world_hint=False),
        description="""Compile C/C++ code against the configured PETSc with its own compiler
and flags. A fragment (no main) is wrapped in a harness: includes, PetscInitialize/
PetscFinalize, and declarations typed from the man-page synopses of the functions it
passes its variables to. Returns {"ok", "compiled", "verdict", "version", "kind",
"diagnostics": [{"severity", "message", "line", "column", "where", "name",
"suggestions", "notes"}], "cannot_wrap", "declarations", "harness", "compile_s"}: line
is the line of your code; name is an unknown identifier and suggestions the closest real
names; cannot_wrap says why a fragment could not be made a program.""",
    )
    async def compile_code(code: Code, language: Language = "c") -> dict[str, Any]:
        return await check(code, language, False, 1)

    if not (allow_run or config.check.allow_run):
        return

    @server.tool(
        name="run",
        annotations=ToolAnnotations(read_only_hint=False, open_world_hint=False),
        description="""Compile C/C++ code (as the compile tool does) and run it with mpiexec
on np ranks inside a sandbox: no network, a read-only system, a private /tmp, limits on
wall time, CPU time, memory, processes and output. Returns the compile report plus "run":
{"exit_status" (null when the sandbox stopped it), "seconds", "output_tail",
"output_bytes", "stopped" (which limit), "denied" (what the sandbox refused), "np"}.""",
    )
    async def run_code(
        code: Code,
        np: Annotated[int, Field(ge=1, le=MAX_NP, description="MPI ranks")] = 1,
        language: Language = "c",
    ) -> dict[str, Any]:
        return await check(code, language, True, np)
