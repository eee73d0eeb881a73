"""Markdown docs pages written by the tests themselves (not corpus text), for real indexes."""

from __future__ import annotations

from pathlib import Path

PAGES = {
    "manual/ksp.md": """(ch_ksp)=
# KSP: Linear System Solvers

## Convergence tests

The default convergence test stops when the residual norm falls below the
tolerances set with KSPSetTolerances(ksp, rtol, abstol, dtol, maxits). From the
command line use -ksp_rtol, -ksp_atol, -ksp_divtol and -ksp_max_it. Monitor the
true residual with -ksp_monitor_true_residual.

## Preconditioners

Select a preconditioner with PCSetType() or -pc_type; for example -pc_type ilu
uses incomplete LU factorization and -pc_type gamg uses algebraic multigrid.
""",
    "manual/mat.md": """# Matrices

## Sparse storage

The default sparse format is compressed sparse row, MATAIJ, created with
MatCreateAIJ(). Preallocate with MatSeqAIJSetPreallocation() for speed.
""",
    "install/index.md": """# Installing

## Configure

Run ./configure with your compilers, then make all and make check. Use
--download-mpich when no MPI implementation is installed.
""",
}


def write_docs(root: Path) -> Path:
    """Write the Markdown pages of `PAGES` under `root`; returns `root`."""
    for rel, text in PAGES.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return root
