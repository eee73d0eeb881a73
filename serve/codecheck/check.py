"""Checking code end to end: wrap a fragment, compile, add name suggestions, run.

`CodeChecker.check` is what `sciknow check-code`, the MCP tools and the answer flags
call. A complete program (it defines `main`) is compiled as it is; a fragment goes
through `harness.py` in two compiler passes — the first finds the variables it uses
undeclared, the second compiles with them declared (only when the first found some).
Names the compiler calls unknown get the API-name check's suggestions (serve/names.py):
from the index when there is one, and from the configured PETSc's own headers (the
version compiled against), so a check needs no index.
"""

from __future__ import annotations

import dataclasses
import re
import tempfile
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sciknow.config import CheckConfig, Config, Profile
from sciknow.index.store import Store
from sciknow.serve.codecheck.compiler import Compilation, Diagnostic, run_compiler
from sciknow.serve.codecheck.harness import (
    CannotWrap,
    Declaration,
    Fragment,
    harness,
    is_program,
    piece_masked,
    split,
    type_variables,
)
from sciknow.serve.codecheck.petsc import PetscBuild, find_petsc
from sciknow.serve.codecheck.sandbox import Limits, RunResult, run_sandboxed, sandbox_problem
from sciknow.serve.codecheck.signatures import (
    Signatures,
    header_names,
    header_types,
    index_synopsis,
)
from sciknow.serve.names import NameChecker

CXX_LANGUAGES = {"c++", "cpp", "cxx", "cc"}
_UNDECLARED_RE = re.compile(r"undeclared|was not declared in this scope")
_CONSTANT_RE = re.compile(r"[A-Z][A-Z0-9]*_[A-Z0-9_]+")
_TYPE_ARGUMENT_RE = re.compile(r"expected (?:primary-)?expression before '(\w+)'")
_TYPE_WORDS = {"void", "const", "struct", "enum", "unsigned", "signed"}


@dataclass
class CodeReport:
    """The verdict on one piece of code."""

    petsc: str  # "PETSc 3.18.5 (pkg-config PETSc, /usr/lib/...)"
    version: str
    language: str  # "c" or "c++"
    kind: str  # "program" or "fragment"
    compiled: bool
    diagnostics: list[Diagnostic] = field(default_factory=list)
    compile_s: float = 0.0
    harness: str = ""  # what was compiled for a fragment
    declarations: list[Declaration] = field(default_factory=list)
    cannot_wrap: str = ""  # why a fragment could not be made a program
    run: RunResult | None = None
    run_skipped: str = ""  # why --run did not run

    @property
    def ok(self) -> bool:
        return self.compiled and (self.run is None or self.run.ok) and not self.run_skipped

    def errors(self) -> list[Diagnostic]:
        return [d for d in self.diagnostics if d.severity == "error"]

    def verdict(self) -> str:
        """One line: compiles, or the first error with its line, or why not checked."""
        if self.cannot_wrap:
            return f"not compiled: the fragment cannot be wrapped ({self.cannot_wrap})"
        if not self.compiled:
            first = self.errors()[:1] or self.diagnostics[:1]
            detail = first[0].describe() if first else "the compiler failed"
            return f"does not compile against PETSc {self.version}: {detail}"
        return f"compiles against PETSc {self.version}"

    def to_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "petsc": self.petsc,
            "version": self.version,
            "language": self.language,
            "kind": self.kind,
            "compiled": self.compiled,
            "verdict": self.verdict(),
            "cannot_wrap": self.cannot_wrap,
            "diagnostics": [d.to_dict() for d in self.diagnostics],
            "compile_s": round(self.compile_s, 3),
            "declarations": [vars(d) for d in self.declarations],
            "harness": self.harness,
            "run": self.run.to_dict() if self.run else None,
            "run_skipped": self.run_skipped,
        }


class CodeChecker:
    """Compiles (and runs) code against one PETSc build."""

    def __init__(
        self,
        build: PetscBuild,
        signatures: Signatures,
        suggest: Callable[[str], list[str]],
        library_prefixes: Iterable[str] = (),
        limits: Limits | None = None,
    ) -> None:
        self.build = build
        self.signatures = signatures
        self.suggest = suggest
        self.library_prefixes = tuple(library_prefixes)
        self.limits = limits or Limits()

    def check(self, code: str, language: str = "c", run: bool = False, np: int = 1) -> CodeReport:
        """Compile `code` (a program or a fragment) and, with `run`, run it on `np` ranks."""
        cxx = language.lower() in CXX_LANGUAGES
        report = CodeReport(
            self.build.describe(), self.build.version, "c++" if cxx else "c", "program", False
        )
        with tempfile.TemporaryDirectory(prefix="sciknow-check-") as folder:
            workdir = Path(folder)
            workdir.chmod(0o755)  # the sandbox may run as nobody
            if is_program(code):
                compilation = self._compile(workdir, code, "code", cxx, run)
            else:
                report.kind = "fragment"
                compilation = self._fragment(workdir, code, cxx, run, report)
                if compilation is None:
                    self._add_suggestions(report.diagnostics)
                    return report
            report.compiled = compilation.ok
            report.compile_s += compilation.seconds
            report.diagnostics = compilation.diagnostics
            self._add_suggestions(report.diagnostics)
            if run and report.compiled:
                self._run(workdir / "program", np, report)
        return report

    def _compile(
        self, workdir: Path, text: str, stem: str, cxx: bool, link: bool, code_file: str = ""
    ) -> Compilation:
        source = workdir / (stem + (".cxx" if cxx else ".c"))
        source.write_text(text, encoding="utf-8")
        output = workdir / ("program" if link else stem + ".o")
        harness_file = source.name if code_file else ""
        return run_compiler(
            self.build,
            source,
            output,
            cxx,
            link,
            harness_file,
            code_file or source.name,
            self.limits.compile_s,
        )

    def _fragment(
        self, workdir: Path, code: str, cxx: bool, link: bool, report: CodeReport
    ) -> Compilation | None:
        """The compilation of the wrapped fragment, or None (report says why) when it
        cannot be wrapped or turns out to be a synopsis."""
        compilation = self._wrap_and_compile(workdir, code, cxx, link, report)
        why = self._synopsis(compilation.errors) if compilation else ""
        if not why:
            return compilation
        assert compilation is not None
        report.cannot_wrap = why
        report.diagnostics = compilation.diagnostics
        report.compile_s += compilation.seconds
        return None

    def _synopsis(self, errors: list[Diagnostic]) -> str:
        """Why a fragment whose first error is a type where an argument belongs
        (`KSPMonitorResidual(KSP, PetscInt, PetscReal, void *);`, as the docs list
        routines) is a synopsis, or "" when it is not."""
        first = errors[0] if errors else None
        match = _TYPE_ARGUMENT_RE.match(first.message) if first and first.where == "code" else None
        if first is None or match is None:
            return ""
        name = match.group(1)
        if name not in _TYPE_WORDS and name not in header_types(self.build.include_dirs):
            return ""
        return (
            f"it is a synopsis, not code (a type, `{name}`, where an argument belongs, "
            f"line {first.line})"
        )

    def _wrap_and_compile(
        self, workdir: Path, code: str, cxx: bool, link: bool, report: CodeReport
    ) -> Compilation | None:
        """Split, wrap and compile (twice when variables need declaring); None when the
        fragment cannot be wrapped (report says why)."""
        try:
            fragment = split(code)
        except CannotWrap as err:
            report.cannot_wrap = str(err)
            return None
        text, code_file = harness(fragment, [], cxx)
        first = self._compile(workdir, text, "harness", cxx, link, code_file)
        report.harness = text
        undeclared = self._undeclared(first.diagnostics, fragment)
        if not undeclared:
            return first
        report.compile_s += first.seconds
        declarations, missing = type_variables(undeclared, fragment, self.signatures)
        report.declarations = declarations
        if missing and any(d.name and not _UNDECLARED_RE.search(d.message) for d in first.errors):
            return first  # an unknown function or type: that is the verdict, not the typing
        if missing:
            report.diagnostics = first.diagnostics
            report.cannot_wrap = "; ".join(
                f"cannot tell the type of `{name}` ({why})" for name, why in missing.items()
            )
            return None
        report.harness, code_file = harness(fragment, declarations, cxx)
        second = self._compile(workdir, report.harness, "harness", cxx, link, code_file)
        refused = _refused_declarations(second, declarations)
        if refused:  # a type the man pages name that the installed PETSc lacks
            report.cannot_wrap = refused
            return None
        return second

    def _undeclared(self, diagnostics: list[Diagnostic], fragment: Fragment) -> list[str]:
        """Variables the fragment's statements use undeclared (not constants or library
        names, which stay errors for the name check to explain)."""
        lines = fragment.body_lines()
        names = [
            d.name
            for d in diagnostics
            if d.name and d.line in lines and _UNDECLARED_RE.search(d.message)
        ]
        body = "\n".join(piece_masked(fragment, piece) for piece in fragment.body)
        return [
            name
            for name in dict.fromkeys(names)
            if (not _CONSTANT_RE.fullmatch(name) or _address_taken(name, body))
            and not name.startswith(self.library_prefixes)
        ]

    def _add_suggestions(self, diagnostics: list[Diagnostic]) -> None:
        for diagnostic in diagnostics:
            if diagnostic.name:
                found = self.suggest(diagnostic.name)
                diagnostic.suggestions = [s for s in found if s != diagnostic.name]

    def _run(self, binary: Path, np: int, report: CodeReport) -> None:
        problem = sandbox_problem()
        if problem:
            report.run_skipped = f"not run: {problem}"
            return
        binary.chmod(0o755)
        report.run = run_sandboxed(binary, self.build.mpiexec, np, self.limits)


def _address_taken(name: str, body: str) -> bool:
    """`&V_SEQ` is a variable in capitals, not a constant (a constant has no address)."""
    return re.search(rf"&\s*{re.escape(name)}\b", body) is not None


def _refused_declarations(compilation: Compilation, declarations: list[Declaration]) -> str:
    """Why the harness's own declarations do not compile (a type from the man pages that
    the installed PETSc does not have), or "" when they do."""
    errors = [d.message for d in compilation.errors if d.where == "harness"]
    if not errors:
        return ""
    typed = ", ".join(f"`{d.name}` as `{d.type}` ({d.because})" for d in declarations)
    return f"the installed PETSc refuses the declarations of {typed}: {errors[0]}"


def combined_suggestions(
    *suggesters: Callable[[str], list[str]], limit: int = 3
) -> Callable[[str], list[str]]:
    """The suggestions of several name checkers, in order, each name once."""

    def suggest(name: str) -> list[str]:
        found = [s for suggester in suggesters for s in suggester(name)]
        return list(dict.fromkeys(found))[:limit]

    return suggest


def checker_for(
    config: Config, petsc_dir: str = "", petsc_arch: str = "", limits: Limits | None = None
) -> CodeChecker:
    """The checker of the configured PETSc (arguments, else `[check]`, else the
    environment; `PetscNotFound` says how to install one), with the names and synopses of
    the index in `data_dir` when it holds one."""
    store = None
    if (config.data_path / "index.sqlite").is_file():
        from sciknow.index.factory import open_store

        store = open_store(config)
    check = config.check
    if petsc_dir:
        check = dataclasses.replace(check, petsc_dir=petsc_dir, petsc_arch=petsc_arch)
    return build_checker(check, config.profile, store, limits)


def build_checker(
    check: CheckConfig, profile: Profile, store: Store | None = None, limits: Limits | None = None
) -> CodeChecker:
    """The checker of `[check]`'s PETSc with the limits it sets (unless `limits`): names
    and types from the installed headers, and first from `store`'s symbol table and man
    pages when it holds an index."""
    build = find_petsc(check.petsc_dir, check.petsc_arch)
    prefixes = profile.symbol_prefixes
    suggesters = [NameChecker(header_names(build.include_dirs), prefixes).suggest]
    synopsis = None
    if store is not None and store.generation() > 0:
        suggesters.insert(0, NameChecker.from_store(store, profile).suggest)
        synopsis = index_synopsis(store)
    return CodeChecker(
        build,
        Signatures(build.include_dirs, synopsis),
        combined_suggestions(*suggesters),
        prefixes,
        limits or Limits.of(check),
    )
