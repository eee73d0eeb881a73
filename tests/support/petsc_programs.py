"""PETSc programs written by the tests for the code checker's front ends (HTTP and MCP)."""

from __future__ import annotations

# Prints the number of MPI ranks: a run on N ranks shows "ranks N".
RANKS_PROGRAM = """\
#include <petscsys.h>
int main(int argc, char **argv)
{
  PetscMPIInt size;
  PetscCall(PetscInitialize(&argc, &argv, NULL, NULL));
  PetscCall(MPI_Comm_size(PETSC_COMM_WORLD, &size));
  PetscCall(PetscPrintf(PETSC_COMM_WORLD, "ranks %d\\n", (int)size));
  PetscCall(PetscFinalize());
  return 0;
}
"""
