"""Finding the PETSc to compile against, and the compiler and flags it was built with.

Order: an explicit directory (`[check] petsc_dir`/`petsc_arch`), then the user's
`PETSC_DIR`/`PETSC_ARCH`, then `pkg-config PETSc` (Debian's `petsc-dev`). A PETSc tree
or prefix is read through its `lib/petsc/conf/petscvariables` — the compiler (`PCC`),
flags (`PCC_FLAGS`, `CPP_FLAGS`, `PETSC_CC_INCLUDES`), libraries (`PETSC_LIB`) and
`MPIEXEC` that PETSc's own makefiles use — so code is compiled the way the user's builds
are. pkg-config is used alone only when its prefix has no `petscvariables`.
"""

from __future__ import annotations

import functools
import os
import re
import shlex
import shutil
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from sciknow.errors import SciknowError

INSTALL_HINT = (
    "no PETSc to compile against: install Debian's (apt-get install petsc-dev openmpi-bin "
    "pkg-config; bubblewrap too for --run), or set PETSC_DIR (and PETSC_ARCH) to a built "
    "PETSc, or [check] petsc_dir in sciknow.toml"
)
_VARIABLE_RE = re.compile(r"^([A-Za-z_][A-Za-z0-9_]*)\s*=\s?(.*)$")
_REFERENCE_RE = re.compile(r"\$[({]([A-Za-z_][A-Za-z0-9_]*)[)}]")
_VERSION_RE = re.compile(r"#define\s+PETSC_VERSION_(MAJOR|MINOR|SUBMINOR)\s+(\d+)")


class PetscNotFound(SciknowError):
    """No usable PETSc (or its compiler); the message says how to install one."""


@dataclass(frozen=True)
class PetscBuild:
    """A PETSc installation as a compiler sees it."""

    version: str  # "3.18.5"
    where: str  # how it was found, for reports: "PETSC_DIR=... PETSC_ARCH=...", "pkg-config"
    cc: tuple[str, ...]  # the MPI C compiler command
    cxx: tuple[str, ...]
    cflags: tuple[str, ...]  # compile flags, includes and defines among them
    cxxflags: tuple[str, ...]
    libs: tuple[str, ...]  # link flags and libraries
    include_dirs: tuple[Path, ...]
    mpiexec: tuple[str, ...]  # the launcher with PETSc's options (`--oversubscribe`)

    def describe(self) -> str:
        return f"PETSc {self.version} ({self.where})"


def read_petscvariables(path: Path) -> dict[str, str]:
    """`NAME = value` lines with `$(X)`/`${X}` references expanded (unknown ones empty)."""
    raw: dict[str, str] = {}
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        match = _VARIABLE_RE.match(line)
        if match:
            raw[match.group(1)] = match.group(2).strip()

    @functools.cache
    def expand(name: str, depth: int = 0) -> str:
        if depth > 20:  # a cycle: stop rather than recurse forever
            return ""
        value = raw.get(name, "")
        return _REFERENCE_RE.sub(lambda m: expand(m.group(1), depth + 1), value)

    return {name: expand(name) for name in raw}


def _include_dirs(flags: list[str]) -> tuple[Path, ...]:
    dirs = [flag[2:] for flag in flags if flag.startswith("-I") and len(flag) > 2]
    return tuple(Path(d) for d in dirs)


def header_version(include_dirs: tuple[Path, ...]) -> str:
    """MAJOR.MINOR.SUBMINOR from petscversion.h (the headers compiled against decide), or
    "" when no include folder has it."""
    for folder in include_dirs:
        header = folder / "petscversion.h"
        if header.is_file():
            parts = dict(_VERSION_RE.findall(header.read_text(encoding="utf-8", errors="replace")))
            if parts:
                return ".".join(parts.get(k, "0") for k in ("MAJOR", "MINOR", "SUBMINOR"))
    return ""


def _require(command: tuple[str, ...], what: str) -> tuple[str, ...]:
    if not command or shutil.which(command[0]) is None:
        name = command[0] if command else "(none)"
        raise PetscNotFound(f"the {what} of this PETSc, {name}, is not on PATH; {INSTALL_HINT}")
    return command


def from_variables(path: Path, where: str) -> PetscBuild:
    """A build from a `petscvariables` file."""
    values = read_petscvariables(path)
    includes = shlex.split(values.get("PETSC_CC_INCLUDES", ""))
    defines = shlex.split(values.get("CPP_FLAGS", ""))
    cflags = shlex.split(values.get("PCC_FLAGS", "") or values.get("CC_FLAGS", ""))
    cxxflags = shlex.split(values.get("CXX_FLAGS", ""))
    include_dirs = _include_dirs(includes)
    return PetscBuild(
        version=header_version(include_dirs) or "unknown",
        where=where,
        cc=_require(tuple(shlex.split(values.get("PCC") or values.get("CC", ""))), "C compiler"),
        cxx=tuple(shlex.split(values.get("CXX", ""))),
        cflags=tuple(cflags + defines + includes),
        cxxflags=tuple(cxxflags + defines + includes),
        libs=tuple(shlex.split(values.get("PETSC_LIB", ""))),
        include_dirs=include_dirs,
        mpiexec=tuple(shlex.split(values.get("MPIEXEC", "") or "mpiexec")),
    )


def _variables_file(petsc_dir: Path, arch: str) -> Path | None:
    """petscvariables of a source tree build (DIR/ARCH) or an installed prefix (DIR)."""
    candidates = [petsc_dir / arch] if arch else []
    candidates.append(petsc_dir)
    for base in candidates:
        path = base / "lib" / "petsc" / "conf" / "petscvariables"
        if path.is_file():
            return path
    return None


def _pkg_config(*args: str) -> str:
    done = subprocess.run(
        ["pkg-config", *args, "PETSc"], capture_output=True, text=True, timeout=30, check=False
    )
    if done.returncode != 0:
        raise PetscNotFound(f"pkg-config knows no PETSc; {INSTALL_HINT}")
    return done.stdout.strip()


def from_pkg_config() -> PetscBuild:
    """Debian's petsc-dev (or any PETSc.pc): its prefix's petscvariables when present."""
    if shutil.which("pkg-config") is None:
        raise PetscNotFound(INSTALL_HINT)
    prefix = Path(_pkg_config("--variable=prefix"))
    variables = _variables_file(prefix, "")
    if variables is not None:
        return from_variables(variables, f"pkg-config PETSc, {prefix}")
    cflags = shlex.split(_pkg_config("--variable=cflags_extra")) + shlex.split(
        _pkg_config("--cflags")
    )
    include_dirs = _include_dirs(cflags)
    return PetscBuild(
        version=header_version(include_dirs) or _pkg_config("--modversion"),
        where=f"pkg-config PETSc, {prefix}",
        cc=_require(tuple(shlex.split(_pkg_config("--variable=ccompiler"))), "C compiler"),
        cxx=tuple(shlex.split(_pkg_config("--variable=cxxcompiler"))),
        cflags=tuple(cflags),
        cxxflags=tuple(shlex.split(_pkg_config("--cflags"))),
        libs=tuple(shlex.split(_pkg_config("--libs"))),
        include_dirs=include_dirs,
        mpiexec=("mpiexec",),
    )


def find_petsc(
    petsc_dir: str = "", petsc_arch: str = "", environ: Mapping[str, str] | None = None
) -> PetscBuild:
    """The configured PETSc (see the module docstring); `PetscNotFound` says how to get one."""
    environ = os.environ if environ is None else environ
    directory = petsc_dir or environ.get("PETSC_DIR", "")
    arch = petsc_arch if petsc_dir else environ.get("PETSC_ARCH", "")
    if directory:
        variables = _variables_file(Path(directory).expanduser(), arch)
        if variables is None:
            raise PetscNotFound(
                f"{directory} (PETSC_ARCH={arch or 'unset'}) holds no built PETSc "
                f"(lib/petsc/conf/petscvariables is missing); {INSTALL_HINT}"
            )
        return from_variables(variables, f"PETSC_DIR={directory} PETSC_ARCH={arch}")
    return from_pkg_config()
