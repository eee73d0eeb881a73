"""The MCP tools `compile` and `run` of `sciknow mcp`, over stdio as an agent starts it.

The tools compile in the MCP process, so no `sciknow serve` is needed: the API URL given
points nowhere. Skipped without PETSc (and `run` without bubblewrap).
"""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path

import pytest

pytest.importorskip("mcp", reason="install the mcp SDK (pip install 'mcp>=2.3')")

from mcp import ClientSession, StdioServerParameters, stdio_client
from support.petsc_programs import RANKS_PROGRAM

from sciknow.serve.codecheck.petsc import PetscNotFound, find_petsc
from sciknow.serve.codecheck.sandbox import sandbox_problem


def _tools(tmp_path: Path, *flags: str, environ: dict[str, str] | None = None):
    """Start `sciknow mcp` over stdio and call `compile` (and `run`) on it."""
    env = {
        **os.environ,
        "SCIKNOW_DATA_DIR": str(tmp_path / "data"),
        "HF_HUB_OFFLINE": "1",
        **(environ or {}),
    }
    command = [sys.executable, "-m", "sciknow.ui.cli", "mcp", "--api-url", "http://127.0.0.1:9"]
    params = StdioServerParameters(command=command[0], args=[*command[1:], *flags], env=env)

    async def session_calls(calls):
        async with stdio_client(params) as (read, write), ClientSession(read, write) as session:
            await session.initialize()
            names = {tool.name for tool in (await session.list_tools()).tools}
            return names, [await session.call_tool(name, args) for name, args in calls]

    return session_calls


def test_compile_tool_reports_diagnostics_with_suggestions(tmp_path):
    try:
        find_petsc()
    except PetscNotFound as err:
        pytest.skip(str(err))
    calls = [
        ("compile", {"code": "PetscCall(VecDuplicate(x, &y));\n"}),
        ("compile", {"code": "PetscCall(VecDuplicat(x, &y));\n"}),
    ]
    names, (good, bad) = asyncio.run(_tools(tmp_path)(calls))
    assert "compile" in names and "run" not in names
    assert good.structured_content["ok"] and good.structured_content["kind"] == "fragment"
    error = bad.structured_content["diagnostics"][0]
    assert error["line"] == 1 and error["name"] == "VecDuplicat"
    assert error["suggestions"][0] == "VecDuplicate"


def test_run_tool_only_with_allow_run(tmp_path):
    try:
        find_petsc()
    except PetscNotFound as err:
        pytest.skip(str(err))
    if sandbox_problem():
        pytest.skip(sandbox_problem())
    names, (result,) = asyncio.run(
        _tools(tmp_path, "--allow-run")([("run", {"code": RANKS_PROGRAM, "np": 2})])
    )
    assert {"compile", "run"} <= names
    run = result.structured_content["run"]
    assert run["exit_status"] == 0 and "ranks 2" in run["output_tail"]


def test_without_petsc_the_tool_says_how_to_install_one(tmp_path):
    environ = {"PETSC_DIR": str(tmp_path / "no-petsc")}
    _, (result,) = asyncio.run(
        _tools(tmp_path, environ=environ)([("compile", {"code": "KSPSolve(ksp, b, x);"})])
    )
    assert result.is_error and "apt-get install petsc-dev" in result.content[0].text
