"""Compiling with PETSc's own compiler and flags, and reading what the compiler says.

Besides PETSc's flags, C is compiled with `-Werror=` for the four warnings GCC 14 and
Clang 16 already treat as errors (an implicit function declaration, incompatible pointer
types, an int-pointer conversion, implicit int): GCC 12 (Debian's) would only warn that
`KSPSetTolerence` is undeclared and that `KSPGetPC(ksp, pc)` passes a `PC` for a `PC *`,
and such code is wrong on any newer compiler. The compiler runs with `LC_ALL=C`, so its
messages quote names with plain `'` and can be read here.

A diagnostic names an unknown identifier when the compiler says so (undeclared, implicit
declaration, unknown type name, an undefined reference at link time; GCC's, G++'s and
Clang's wordings); `check.py` adds the name check's suggestions to it.
"""

from __future__ import annotations

import os
import re
import subprocess
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from sciknow.serve.codecheck.petsc import PetscBuild

C_ERRORS = (
    "-Werror=implicit-function-declaration",
    "-Werror=incompatible-pointer-types",
    "-Werror=int-conversion",
    "-Werror=implicit-int",
)
_LOCATED_RE = re.compile(
    r"^(?P<file>[^:\n]+):(?P<line>\d+):(?:(?P<column>\d+):)? "
    r"(?P<severity>fatal error|error|warning|note): (?P<message>.*)$"
)
_LINK_RE = re.compile(r"undefined reference to [`'](?P<name>[A-Za-z_]\w*)'")
_UNKNOWN_RES = [
    re.compile(pattern)
    for pattern in (
        r"implicit declaration of function '(?P<name>\w+)'",
        r"'(?P<name>\w+)' undeclared",
        r"unknown type name '(?P<name>\w+)'",
        r"'(?P<name>\w+)' was not declared in this scope",
        r"'(?P<name>\w+)' does not name a type",
        r"use of undeclared identifier '(?P<name>\w+)'",
        r"call to undeclared function '(?P<name>\w+)'",
    )
]


@dataclass
class Diagnostic:
    """One message of the compiler or linker."""

    severity: str  # "error" or "warning"
    message: str
    line: int  # in the checked code (1-based); 0 when outside it
    column: int
    where: str  # "code", "harness" (what wrapping added), "link", or a header's name
    name: str = ""  # the unknown identifier it is about
    suggestions: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # "petscksp.h:120: declared here"

    def to_dict(self) -> dict[str, object]:
        return asdict(self)

    def describe(self) -> str:
        where = f"line {self.line}" if self.where == "code" else self.where
        text = f"{where}: {self.severity}: {self.message}"
        if self.suggestions:
            text += f" (did you mean {', '.join(self.suggestions)}?)"
        return text


@dataclass
class Compilation:
    """The outcome of one compiler run."""

    ok: bool
    diagnostics: list[Diagnostic]
    seconds: float
    command: list[str]
    output: str  # what the compiler printed, for a diagnostic the parser did not read

    @property
    def errors(self) -> list[Diagnostic]:
        return [d for d in self.diagnostics if d.severity == "error"]


def unknown_name(message: str) -> str:
    """The identifier a diagnostic says is unknown, or ""."""
    for pattern in [*_UNKNOWN_RES, _LINK_RE]:
        match = pattern.search(message)
        if match:
            return match.group("name")
    return ""


def parse_diagnostics(output: str, code_file: str, harness_file: str = "") -> list[Diagnostic]:
    """The errors and warnings of a compiler's output, notes attached to the one before."""
    found: list[Diagnostic] = []
    for line in output.splitlines():
        match = _LOCATED_RE.match(line)
        if match is None:
            link = _LINK_RE.search(line)
            if link:
                found.append(Diagnostic("error", link.group(0), 0, 0, "link"))
                found[-1].name = link.group("name")
            continue
        file = os.path.basename(match.group("file"))
        where = "code" if file == code_file else "harness" if file == harness_file else file
        severity = match.group("severity").replace("fatal error", "error")
        number = int(match.group("line"))
        message = match.group("message")
        if severity == "note":
            if found:
                found[-1].notes.append(f"{file}:{number}: {message}")
            continue
        column = int(match.group("column") or 0)
        diagnostic = Diagnostic(severity, message, number if where == "code" else 0, column, where)
        diagnostic.name = unknown_name(message)
        found.append(diagnostic)
    return found


def compile_command(
    build: PetscBuild, source: Path, output: Path, cxx: bool, link: bool
) -> list[str]:
    """The compiler command: PETSc's compiler and flags, C's extra errors, and the
    libraries when linking a program to run."""
    compiler = build.cxx if cxx and build.cxx else build.cc
    flags = list(build.cxxflags if cxx else build.cflags)
    if not cxx:
        flags += C_ERRORS
    if link:
        return [*compiler, *flags, str(source), "-o", str(output), *build.libs]
    return [*compiler, *flags, "-c", str(source), "-o", str(output)]


def run_compiler(
    build: PetscBuild,
    source: Path,
    output: Path,
    cxx: bool = False,
    link: bool = False,
    harness_file: str = "",
    code_file: str = "",
    timeout_s: float = 120.0,
) -> Compilation:
    """Compile `source` (and link when `link`) in its own folder, for at most `timeout_s`."""
    command = compile_command(build, source, output, cxx, link)
    started = time.perf_counter()
    try:
        done = subprocess.run(
            command,
            cwd=source.parent,
            capture_output=True,
            text=True,
            errors="replace",
            timeout=timeout_s,
            env={**os.environ, "LC_ALL": "C", "LANG": "C"},
            check=False,
        )
    except subprocess.TimeoutExpired:
        seconds = time.perf_counter() - started
        stopped = Diagnostic("error", f"the compiler took over {timeout_s:g} s", 0, 0, "")
        return Compilation(False, [stopped], seconds, command, "")
    seconds = time.perf_counter() - started
    output_text = done.stdout + done.stderr
    diagnostics = parse_diagnostics(output_text, code_file or source.name, harness_file)
    ok = done.returncode == 0
    if not ok and not any(d.severity == "error" for d in diagnostics):
        tail = output_text.strip().splitlines()[-1:] or [f"exit status {done.returncode}"]
        diagnostics.append(Diagnostic("error", tail[0], 0, 0, "compiler"))
    return Compilation(ok, diagnostics, seconds, command, output_text)
