"""`POST /compile` and `POST /run` of `sciknow serve`, over real HTTP: real `sciknow serve`
processes (with and without `--allow-run`) and the real app under uvicorn for the token,
the per-client limit and a server without PETSc.

Compiling needs PETSc (Debian: apt-get install petsc-dev openmpi-bin pkg-config) and
running bubblewrap too; those tests skip with the reason when this machine lacks them.
"""

from __future__ import annotations

import dataclasses

import httpx
import pytest
from support.petsc_programs import RANKS_PROGRAM

from sciknow.config import CheckConfig, load_config
from sciknow.serve.codecheck.petsc import PetscNotFound, find_petsc
from sciknow.serve.codecheck.sandbox import sandbox_problem

GOOD = "PetscCall(VecDuplicate(x, &y));\nPetscCall(VecCopy(x, y));\n"
MISSPELLED = (
    "PetscCall(KSPCreate(PETSC_COMM_WORLD, &ksp));\n"
    "PetscCall(KSPSetTolerence(ksp, 1e-8, PETSC_DEFAULT, PETSC_DEFAULT, 100));\n"
)
TOKEN = "compile-s3cret"


@pytest.fixture(scope="module")
def petsc():
    try:
        return find_petsc()
    except PetscNotFound as err:
        pytest.skip(str(err))


def test_compile_through_sciknow_serve_and_run_refused(petsc, serve_processes, tmp_path):
    url = serve_processes.start(tmp_path / "data")
    try:
        good = httpx.post(f"{url}/compile", json={"code": GOOD}, timeout=120)
        assert good.status_code == 200, good.text
        report = good.json()
        assert report["compiled"] and report["ok"] and report["kind"] == "fragment"
        assert report["version"] == petsc.version and report["run"] is None
        assert {d["name"]: d["type"] for d in report["declarations"]} == {"x": "Vec", "y": "Vec"}

        wrong = httpx.post(f"{url}/compile", json={"code": MISSPELLED}, timeout=120).json()
        assert not wrong["compiled"] and "line 2" in wrong["verdict"]
        error = next(d for d in wrong["diagnostics"] if d["severity"] == "error")
        assert (error["line"], error["name"]) == (2, "KSPSetTolerence")
        assert error["suggestions"][0] == "KSPSetTolerances"

        refused = httpx.post(f"{url}/run", json={"code": RANKS_PROGRAM}, timeout=60)
        assert refused.status_code == 403
        assert "--allow-run" in refused.json()["detail"]

        for path, body, field in [
            ("/compile", {"code": GOOD, "language": "fortran"}, "language"),
            ("/compile", {"code": ""}, "code"),
            ("/run", {"code": RANKS_PROGRAM, "np": 0}, "np"),
            ("/run", {"code": RANKS_PROGRAM, "np": 17}, "np"),
        ]:
            bad = httpx.post(f"{url}{path}", json=body, timeout=60)
            assert bad.status_code == 422, (path, body)
            assert bad.json()["detail"][0]["loc"] == ["body", field]
        huge = httpx.post(f"{url}/compile", json={"code": "x;" * 40_000}, timeout=60)
        assert huge.status_code == 413

        schema = httpx.get(f"{url}/openapi.json", timeout=60).json()
        assert {"/compile", "/run"} <= set(schema["paths"])
        assert {"CompileRequest", "RunRequest", "CheckResponse", "DiagnosticOut"} <= set(
            schema["components"]["schemas"]
        )
        run_body = schema["components"]["schemas"]["RunRequest"]["properties"]["np"]
        assert (run_body["minimum"], run_body["maximum"]) == (1, 16)
    finally:
        serve_processes.stop(url)


def test_run_through_sciknow_serve_with_allow_run(petsc, serve_processes, tmp_path):
    problem = sandbox_problem()
    if problem:
        pytest.skip(problem)
    url = serve_processes.start(tmp_path / "data", None, "--allow-run")
    try:
        ran = httpx.post(f"{url}/run", json={"code": RANKS_PROGRAM, "np": 2}, timeout=180)
        assert ran.status_code == 200, ran.text
        report = ran.json()
        assert report["ok"] and report["run"]["exit_status"] == 0 and report["run"]["np"] == 2
        assert "ranks 2" in report["run"]["output_tail"]
    finally:
        serve_processes.stop(url)


@pytest.fixture(scope="module")
def assistant(tmp_path_factory):
    from sciknow.serve.factory import build_assistant

    data = tmp_path_factory.mktemp("http-check") / "data"
    return build_assistant(load_config(environ={"SCIKNOW_DATA_DIR": str(data)}), allow_empty=True)


def _app(assistant, serve_app, check: CheckConfig, token: str | None = None) -> str:
    from sciknow.serve.web.api import create_app

    return serve_app(create_app(assistant, token=token, check=check))


def test_the_token_and_the_per_client_limit_cover_compile(petsc, assistant, serve_app):
    url = _app(assistant, serve_app, CheckConfig(per_minute=1), token=TOKEN)
    body = {"code": "int main(void) { return 0; }\n"}
    assert httpx.post(f"{url}/compile", json=body, timeout=60).status_code == 401
    headers = {"Authorization": f"Bearer {TOKEN}"}
    first = httpx.post(f"{url}/compile", json=body, headers=headers, timeout=120)
    assert first.status_code == 200 and first.json()["kind"] == "program"
    second = httpx.post(f"{url}/run", json=body, headers=headers, timeout=60)
    assert second.status_code == 429 and int(second.headers["retry-after"]) > 0
    assert "at most 2 at once and 1 a minute" in second.json()["detail"]


def test_a_server_without_petsc_says_how_to_install_one(assistant, serve_app, tmp_path):
    check = CheckConfig(petsc_dir=str(tmp_path / "no-petsc"), allow_run=True)
    url = _app(assistant, serve_app, check)
    for path in ("/compile", "/run"):
        answer = httpx.post(f"{url}{path}", json={"code": GOOD}, timeout=60)
        assert answer.status_code == 503
        assert "apt-get install petsc-dev" in answer.json()["detail"]
    allowed = dataclasses.replace(check, allow_run=False)
    refused = httpx.post(f"{_app(assistant, serve_app, allowed)}/run", json={"code": GOOD})
    assert refused.status_code == 403
