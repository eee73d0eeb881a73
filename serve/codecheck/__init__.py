"""Checking PETSc code by compiling it, and running it only inside a sandbox.

The API-name check catches an invented name; only a compiler catches a wrong argument
count or a type the user's PETSc version lacks. This sub-package finds the PETSc to
compile against (`petsc.py`), wraps fragments into a program (`harness.py`, typed from
man-page synopses or the installed headers, `signatures.py`), compiles and reads the
compiler's diagnostics (`compiler.py`), runs programs under bubblewrap with limits
(`sandbox.py`), and puts it together for the CLI, MCP and answers (`check.py`).
"""
