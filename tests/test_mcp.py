"""`sciknow mcp` end to end: a real `sciknow serve` app on 127.0.0.1 over a small index of
docs, man pages and tutorials written here, the agent endpoints it serves, and the MCP
server run as a subprocess (stdio and streamable HTTP) driven by the SDK's own client: as a
client of that server, and on its own (the engine in its own process, as an agent's
configuration starts it with no server running).

Answers are extractive (no model loads), so every call is fast and deterministic; one test
replays a scripted generation to show a generated, cited answer relayed as is.
"""

from __future__ import annotations

import asyncio
import copy
import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import pytest
from support.backends import ScriptedBackend
from support.pages import write_docs

pytest.importorskip("mcp", reason="install the mcp SDK (pip install 'mcp>=2.3')")

from mcp import ClientSession, StdioServerParameters, stdio_client
from mcp.client.streamable_http import streamable_http_client

ITFUNC_C = """\
#include <petsc/private/kspimpl.h>

/*@
  KSPSetTolerances - Sets the relative, absolute, divergence and iteration tolerances
  that the default convergence test of a `KSP` uses

  Logically Collective

  Input Parameters:
+ ksp    - the Krylov solver context
. rtol   - the relative decrease of the residual norm
. abstol - the absolute size of the residual norm
. dtol   - the growth of the residual norm that counts as divergence
- maxits - the largest number of iterations

  Options Database Keys:
+ -ksp_rtol <rtol>     - sets rtol
. -ksp_atol <abstol>   - sets abstol
. -ksp_divtol <dtol>   - sets dtol
- -ksp_max_it <maxits> - sets maxits

  Level: intermediate

.seealso: `KSPGetTolerances()`, `KSPSolve()`
@*/
PetscErrorCode KSPSetTolerances(KSP ksp, PetscReal rtol, PetscReal abstol, PetscReal dtol,
                                PetscInt maxits)
{
  PetscFunctionBegin;
  if (rtol != (PetscReal)PETSC_DEFAULT) ksp->rtol = rtol;
  if (maxits != PETSC_DEFAULT) ksp->max_it = maxits;
  PetscFunctionReturn(PETSC_SUCCESS);
}

/*@
  KSPGetTolerances - Gets the tolerances that `KSPSetTolerances()` set

  Not Collective

  Input Parameter:
. ksp - the Krylov solver context

  Output Parameters:
+ rtol   - the relative tolerance
- maxits - the largest number of iterations

  Level: intermediate

.seealso: `KSPSetTolerances()`
@*/
PetscErrorCode KSPGetTolerances(KSP ksp, PetscReal *rtol, PetscInt *maxits)
{
  PetscFunctionBegin;
  *rtol   = ksp->rtol;
  *maxits = ksp->max_it;
  PetscFunctionReturn(PETSC_SUCCESS);
}
"""

KSP_EX2_C = """\
static char help[] = "Solves a tridiagonal linear system with KSP, tightening tolerances.\\n";

/*
   The program assembles a small matrix, sets the solver tolerances with
   KSPSetTolerances() and solves with KSPSolve().
*/
#include <petscksp.h>

int main(int argc, char **args)
{
  KSP ksp;
  PetscCall(PetscInitialize(&argc, &args, NULL, help));
  PetscCall(KSPCreate(PETSC_COMM_WORLD, &ksp));
  PetscCall(KSPSetTolerances(ksp, 1.e-8, PETSC_DEFAULT, PETSC_DEFAULT, 200));
  PetscCall(KSPSolve(ksp, NULL, NULL));
  PetscCall(PetscFinalize());
  return 0;
}

/*TEST

   test:
      args: -ksp_monitor_short -ksp_rtol 1e-10

   test:
      suffix: gmres
      args: -ksp_type gmres -pc_type jacobi

TEST*/
"""

SNES_EX5_C = """\
static char help[] = "Bratu problem solved with Newton's method (SNES).\\n\\n";

#include <petscsnes.h>

int main(int argc, char **argv)
{
  SNES snes;
  PetscCall(PetscInitialize(&argc, &argv, NULL, help));
  PetscCall(SNESCreate(PETSC_COMM_WORLD, &snes));
  PetscCall(SNESSolve(snes, NULL, NULL));
  PetscCall(PetscFinalize());
  return 0;
}

/*TEST

   test:
      args: -snes_monitor -pc_type lu

TEST*/
"""

RELEASE_NOTES = """\
# Changes: 3.20

- `KSPSetTol()` was renamed to `KSPSetTolerances()`
"""

TREE = {
    "src/ksp/interface/itfunc.c": ITFUNC_C,
    "src/ksp/tutorials/ex2.c": KSP_EX2_C,
    "src/snes/tutorials/ex5.c": SNES_EX5_C,
    "doc/changes/320.md": RELEASE_NOTES,
}
MANPAGE_ID = "petsc-git:src/ksp/interface/itfunc.c#KSPSetTolerances"
EXAMPLE_ID = "petsc-git:src/ksp/tutorials/ex2.c"
INVENTED = "PetscCall(KSPSetTolerence(ksp, 1e-8, 0, 0, 100));\nPetscCall(KSPSolve(ksp, b, x));\n"
TOOLS = {"search", "lookup", "ask", "verify", "examples"}


@pytest.fixture(scope="module")
def tools_config(tmp_path_factory, embedder):
    """A source tree (man pages, two tutorials, release notes) with the docs pages under
    doc/, ingested."""
    from sciknow.config import SourceConfig, load_config
    from sciknow.index.factory import make_chunker, open_store
    from sciknow.index.pipeline import ingest
    from sciknow.ingest.registry import make_sources

    root = tmp_path_factory.mktemp("mcp-index")
    tree = root / "petsc"
    for rel, text in TREE.items():
        (tree / rel).parent.mkdir(parents=True, exist_ok=True)
        (tree / rel).write_text(text)
    write_docs(tree / "doc")
    config = load_config(environ={"SCIKNOW_DATA_DIR": str(root / "data")})
    config.answer.mode = "extractive"
    spec = SourceConfig(name="petsc-git", kind="git", path=str(tree))
    ingest(open_store(config), make_sources(spec, config), embedder, make_chunker(config))
    return config


@pytest.fixture(scope="module")
def assistant(tools_config):
    from sciknow.serve.factory import build_assistant

    return build_assistant(copy.deepcopy(tools_config))


@pytest.fixture(scope="module")
def api_url(assistant, serve_app) -> str:
    from sciknow.serve.web.api import create_app

    return serve_app(create_app(assistant))


# ----- the agent endpoints of `sciknow serve` ---------------------------------------------


def test_lookup_returns_the_man_page_with_its_fields(api_url):
    found = httpx.get(f"{api_url}/lookup", params={"name": "KSPSetTolerances"}).json()
    assert found["found"] and found["matched"] == "definition"
    page = found["definitions"][0]
    assert page["doc_id"] == MANPAGE_ID and page["kind"] == "manpage"
    assert page["summary"].startswith("Sets the relative, absolute")
    assert page["synopsis"].startswith("PetscErrorCode KSPSetTolerances(KSP ksp")
    assert [p["name"] for p in page["input_parameters"]] == [
        "ksp", "rtol", "abstol", "dtol", "maxits",
    ]  # fmt: skip
    assert page["input_parameters"][1]["description"].startswith("the relative decrease")
    assert page["options"][0] == {"name": "-ksp_rtol <rtol>", "description": "sets rtol"}
    assert page["level"] == "intermediate"
    assert page["seealso"] == ["KSPGetTolerances", "KSPSolve"]
    assert "/blob/" in page["uri"] and "itfunc.c#L" in page["uri"]
    getter = httpx.get(f"{api_url}/lookup", params={"name": "KSPGetTolerances"}).json()
    assert [p["name"] for p in getter["definitions"][0]["output_parameters"]] == ["rtol", "maxits"]


def test_lookup_forgives_case_parentheses_and_backticks(api_url):
    for spelling in ("kspsettolerances", "KSPSetTolerances()", "`KSPSetTolerances`"):
        found = httpx.get(f"{api_url}/lookup", params={"name": spelling}).json()
        assert found["definitions"][0]["doc_id"] == MANPAGE_ID, spelling


def test_lookup_of_an_option_and_of_an_example(api_url):
    option = httpx.get(f"{api_url}/lookup", params={"name": "-ksp_divtol"}).json()
    assert option["matched"] == "option"
    assert [d["doc_id"] for d in option["definitions"]] == [MANPAGE_ID]
    for path in ("ex2.c", "ksp/tutorials/ex2.c", "src/ksp/tutorials/ex2.c"):
        example = httpx.get(f"{api_url}/lookup", params={"name": path}).json()
        assert example["matched"] == "example", path
        assert [d["doc_id"] for d in example["definitions"]] == [EXAMPLE_ID]
        assert example["definitions"][0]["test_args"] == [
            "-ksp_monitor_short -ksp_rtol 1e-10",
            "-ksp_type gmres -pc_type jacobi",
        ]
    assert httpx.get(f"{api_url}/lookup", params={"name": "x/ex2.c"}).json()["found"] is False


def test_lookup_says_why_nothing_was_found_and_what_instead(api_url):
    def lookup(name: str) -> dict:
        return httpx.get(f"{api_url}/lookup", params={"name": name}).json()

    misspelled = lookup("KSPSetTolerence")
    assert misspelled["found"] is False and misspelled["definitions"] == []
    assert misspelled["reason"] == "unknown-name"
    assert misspelled["suggestions"][0] == "KSPSetTolerances"
    assert lookup("Zyzzyva") == {
        "name": "Zyzzyva", "found": False, "matched": "", "definitions": [],
        "reason": "unknown-name", "suggestions": [], "mentions": [],
    }  # fmt: skip
    renamed = lookup("KSPSetTol")
    assert (renamed["reason"], renamed["suggestions"]) == ("removed-name", ["KSPSetTolerances"])
    called = lookup("KSPSolve")  # the tutorial calls it, no man page defines it
    assert not called["found"] and called["reason"] == "mentioned-only"
    assert called["suggestions"] == [] and EXAMPLE_ID in [m["doc_id"] for m in called["mentions"]]
    assert all("KSPSolve" in m["text"] for m in called["mentions"])
    assert httpx.get(f"{api_url}/lookup", params={"name": ""}).status_code == 422
    assert httpx.get(f"{api_url}/lookup", params={"name": "()"}).status_code == 422


def test_examples_use_the_name_and_carry_their_test_arguments(api_url):
    found = httpx.get(f"{api_url}/examples", params={"q": "KSPSetTolerances", "k": 2}).json()
    first = found["examples"][0]
    assert first["doc_id"] == EXAMPLE_ID and first["language"] == "c"
    assert first["uses"] == ["KSPSetTolerances"]
    assert first["test_args"][1] == "-ksp_type gmres -pc_type jacobi"
    assert "KSPSetTolerances" in first["passage"]
    assert all(e["doc_id"].split(":", 1)[1].startswith("src/") for e in found["examples"])
    assert len({e["doc_id"] for e in found["examples"]}) == len(found["examples"])  # once each
    bratu = httpx.get(f"{api_url}/examples", params={"q": "Bratu problem with SNES"}).json()
    assert bratu["examples"][0]["test_args"] == ["-snes_monitor -pc_type lu"]
    assert httpx.get(f"{api_url}/examples", params={"q": "KSP", "k": 0}).status_code == 422


def test_documents_by_id_with_meta_and_404(api_url):
    doc = httpx.get(f"{api_url}/documents/{quote(MANPAGE_ID, safe='')}").json()
    assert doc["id"] == MANPAGE_ID and doc["meta"]["name"] == "KSPSetTolerances"
    assert doc["text"].startswith("KSPSetTolerances – Sets the relative")
    missing = httpx.get(f"{api_url}/documents/petsc-git:nowhere.c")
    assert missing.status_code == 404 and "no document" in missing.json()["detail"]


def test_verify_flags_invented_names_only(api_url):
    issues = httpx.post(f"{api_url}/verify", json={"text": INVENTED}).json()["issues"]
    assert [(i["name"], i["line"], i["reason"]) for i in issues] == [
        ("KSPSetTolerence", 1, "unknown-name")
    ]
    assert INVENTED[issues[0]["start"] : issues[0]["end"]] == "KSPSetTolerence"
    assert issues[0]["suggestions"][0] == "KSPSetTolerances"
    old = httpx.post(f"{api_url}/verify", json={"text": "KSPSetTol(ksp, 1e-8);"}).json()
    assert [(i["name"], i["reason"], i["suggestions"]) for i in old["issues"]] == [
        ("KSPSetTol", "removed-name", ["KSPSetTolerances"])
    ]
    clean = "KSPSetTolerances(ksp, 1e-8, 0, 0, 100); /* -ksp_rtol 1e-8 */"
    assert httpx.post(f"{api_url}/verify", json={"text": clean}).json() == {"issues": []}
    assert httpx.post(f"{api_url}/verify", json={"text": ""}).status_code == 422


def test_openapi_lists_the_agent_endpoints(api_url):
    paths = httpx.get(f"{api_url}/openapi.json").json()["paths"]
    assert {"/lookup", "/examples", "/documents/{doc_id}", "/verify"} <= set(paths)


# ----- the MCP server, as a subprocess driven by the SDK's client ----------------------------


def mcp_env(api_url: str, api_token: str | None = None) -> dict[str, str]:
    """The test's environment, pointing `sciknow mcp` at `api_url` with `api_token`."""
    env = {k: v for k, v in os.environ.items() if k != "SCIKNOW_API_TOKEN"}
    env["SCIKNOW_MCP__API_URL"] = api_url
    if api_token:
        env["SCIKNOW_API_TOKEN"] = api_token
    return env


def mcp_command(*args: str) -> list[str]:
    return [sys.executable, "-m", "sciknow.ui.cli", "mcp", *args]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@asynccontextmanager
async def stdio_session(api_url: str, api_token: str | None = None):
    command, *args = mcp_command("--transport", "stdio")
    params = StdioServerParameters(command=command, args=args, env=mcp_env(api_url, api_token))
    async with stdio_client(params) as (read, write), ClientSession(read, write) as session:
        await session.initialize()
        yield session


@asynccontextmanager
async def http_session(url: str, token: str | None = None):
    import httpx2

    headers = {"Authorization": f"Bearer {token}"} if token else {}
    async with (
        httpx2.AsyncClient(headers=headers, timeout=60) as client,
        streamable_http_client(url, http_client=client) as (read, write),
        ClientSession(read, write) as session,
    ):
        await session.initialize()
        yield session


def payload(result: Any) -> dict[str, Any]:
    """A successful tool result's structured content, checked against its text content."""
    assert not result.is_error, result.content[0].text
    assert json.loads(result.content[0].text) == result.structured_content
    return result.structured_content


async def call(session: ClientSession, tool: str, **arguments: Any) -> dict[str, Any]:
    return payload(await session.call_tool(tool, arguments))


async def error_of(session: ClientSession, tool: str, **arguments: Any) -> str:
    result = await session.call_tool(tool, arguments)
    assert result.is_error, f"{tool}({arguments}) should fail"
    return result.content[0].text


async def exercise(session: ClientSession) -> None:
    """Every tool and the resource template, with the checks an agent relies on."""
    listed = {tool.name: tool for tool in (await session.list_tools()).tools}
    assert set(listed) >= TOOLS  # and `compile` (tests/test_check_code_mcp.py)
    for tool in (listed[name] for name in TOOLS):
        assert len(tool.description) > 200 and tool.input_schema["type"] == "object"
        assert tool.annotations.read_only_hint
    search_schema = listed["search"].input_schema
    assert search_schema["required"] == ["query"]
    assert search_schema["properties"]["k"]["minimum"] == 1
    assert "manpage" in search_schema["properties"]["kinds"]["items"]["enum"]
    assert listed["lookup"].input_schema["required"] == ["name"]
    assert listed["ask"].input_schema["properties"]["history"]["type"] == "array"

    passages = (await call(session, "search", query="relative tolerance KSP", k=3))["passages"]
    assert [p["rank"] for p in passages] == [1, 2, 3]
    assert {"title", "kind", "uri", "text", "doc_id", "resource"} <= set(passages[0])
    only_docs = await call(session, "search", query="preconditioner", kinds=["doc"])
    assert {p["kind"] for p in only_docs["passages"]} == {"doc"}

    page = await call(session, "lookup", name="KSPSetTolerances")
    definition = page["definitions"][0]
    assert page["found"] and definition["doc_id"] == MANPAGE_ID
    assert definition["resource"] == "sciknow://doc/" + quote(MANPAGE_ID, safe="")
    assert definition["input_parameters"][0] == {
        "name": "ksp", "description": "the Krylov solver context"
    }  # fmt: skip
    misspelled = await call(session, "lookup", name="KSPSetTolerence")
    assert not misspelled["found"] and misspelled["suggestions"][0] == "KSPSetTolerances"
    renamed = await call(session, "lookup", name="KSPSetTol")
    assert (renamed["reason"], renamed["suggestions"]) == ("removed-name", ["KSPSetTolerances"])
    called = await call(session, "lookup", name="KSPSolve")
    assert called["reason"] == "mentioned-only"
    assert called["mentions"][0]["resource"].startswith("sciknow://doc/")

    answer = await call(session, "ask", question="How do I set the relative tolerance for KSP?")
    assert not answer["abstained"] and "[1]" in answer["text"]
    assert answer["citations"][0]["resource"].startswith("sciknow://doc/")
    assert {c["n"] for c in answer["citations"]} <= {int(n) for n in "123456789"}
    follow_up = await call(
        session,
        "ask",
        question="and the absolute one?",
        history=[{"role": "user", "content": "How do I set the relative tolerance for KSP?"}],
        flags=True,
    )
    assert follow_up["citations"] and any(f["type"] == "skipped" for f in follow_up["flags"])

    checked = await call(session, "verify", text=INVENTED)
    assert checked["ok"] is False
    assert checked["issues"][0]["name"] == "KSPSetTolerence"
    assert checked["issues"][0]["suggestions"][0] == "KSPSetTolerances"
    fine = await call(session, "verify", text="KSPSolve(ksp, b, x);")
    assert fine == {"ok": True, "issues": []}

    programs = (await call(session, "examples", topic_or_name="KSPSetTolerances", k=1))["examples"]
    assert [e["doc_id"] for e in programs] == [EXAMPLE_ID]
    assert programs[0]["test_args"][0] == "-ksp_monitor_short -ksp_rtol 1e-10"

    whole = await session.read_resource(definition["resource"])
    text = whole.contents[0].text
    assert text.startswith("# KSPSetTolerances\n") and "Options Database Keys:" in text
    templates = (await session.list_resource_templates()).resource_templates
    assert [t.uri_template for t in templates] == ["sciknow://doc/{doc_id}"]

    # Bad arguments are one-line tool errors naming the argument; the server keeps serving.
    refused = [
        ("search", {"query": "KSP", "k": 0}, "k: input should be greater than or equal to 1"),
        ("search", {"query": "   "}, "query: string should have at least 1 character"),
        ("search", {"query": "KSP", "kinds": ["poem"]}, "kinds.0: input should be 'code', "),
        ("lookup", {}, "name: field required"),
        ("examples", {"topic_or_name": "KSP", "k": 99}, "k: input should be less than or eq"),
    ]
    for tool, arguments, start in refused:
        message = await error_of(session, tool, **arguments)
        expected = f"Error executing tool {tool}: invalid argument {start}"
        assert message.startswith(expected) and "\n" not in message, message
    assert (await error_of(session, "search", query="KSP", k=0)).endswith("(got 0)")
    assert "text is empty" in await error_of(session, "verify", text="  \n ")
    with pytest.raises(Exception, match="no document"):
        await session.read_resource("sciknow://doc/" + quote("petsc-git:nowhere.c", safe=""))
    assert (await call(session, "lookup", name="KSPGetTolerances"))["found"]


def test_stdio_server_serves_every_tool(api_url):
    async def scenario() -> None:
        async with stdio_session(api_url) as session:
            await exercise(session)

    asyncio.run(scenario())


@pytest.fixture(scope="module")
def mcp_http(api_url) -> Iterator[str]:
    """`sciknow mcp --transport http` on a free 127.0.0.1 port, with a token."""
    port = free_port()
    process = subprocess.Popen(
        mcp_command("--transport", "http", "--port", str(port), "--token", "s3cret"),
        env=mcp_env(api_url),
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 60
    while True:
        assert process.poll() is None, process.stderr.read()
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                break
        assert time.monotonic() < deadline, "sciknow mcp did not listen"
        time.sleep(0.1)
    yield f"http://127.0.0.1:{port}/mcp"
    process.terminate()
    process.wait(timeout=20)


def test_http_server_serves_every_tool(mcp_http):
    async def scenario() -> None:
        async with http_session(mcp_http, token="s3cret") as session:
            await exercise(session)

    asyncio.run(scenario())


def test_http_server_refuses_a_missing_or_wrong_token(mcp_http):
    hello = {"jsonrpc": "2.0", "id": 1, "method": "ping"}
    for headers in ({}, {"Authorization": "Bearer wrong"}):
        refused = httpx.post(mcp_http, json=hello, headers=headers)
        assert refused.status_code == 401 and "Bearer" in refused.text


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (["--host", "0.0.0.0"], "refusing to serve MCP on 0.0.0.0 without an API token"),
        (["--token", "t", "--no-auth"], "give --token or --no-auth, not both"),
    ],
)
def test_http_off_localhost_needs_a_token(options, message):
    command = mcp_command("--transport", "http", "--port", str(free_port()), *options)
    refused = subprocess.run(
        command, env=mcp_env("http://127.0.0.1:9"), capture_output=True, text=True, timeout=60
    )
    assert refused.returncode == 2 and message in refused.stderr


def test_a_down_api_is_a_tool_error_that_says_what_to_do():
    async def scenario() -> None:
        async with stdio_session(f"http://127.0.0.1:{free_port()}") as session:
            message = await error_of(session, "search", query="KSP")
            assert "sciknow serve is not reachable" in message and "sciknow serve" in message

    asyncio.run(scenario())


def test_an_explicit_api_url_stays_a_client_when_the_server_is_down(tmp_path):
    """`--api-url` means a team server: no engine of its own, a tool error saying so."""
    down = f"http://127.0.0.1:{free_port()}"
    command, *args = mcp_command("--api-url", down)
    env = {k: v for k, v in mcp_env(down).items() if k != "SCIKNOW_MCP__API_URL"}
    params = StdioServerParameters(command=command, args=args, env=env, cwd=str(tmp_path))

    async def scenario() -> None:
        async with stdio_client(params) as (read, write), ClientSession(read, write) as session:
            await session.initialize()
            message = await error_of(session, "lookup", name="KSPSetTolerances")
            assert f"sciknow serve is not reachable at {down}" in message

    asyncio.run(scenario())


def test_the_api_token_is_sent_to_sciknow_serve(assistant, serve_app):
    from sciknow.serve.web.api import create_app

    guarded = serve_app(create_app(assistant, token="api-s3cret"))

    async def scenario() -> None:
        async with stdio_session(guarded, api_token="api-s3cret") as session:
            assert (await call(session, "lookup", name="KSPSetTolerances"))["found"]
        async with stdio_session(guarded) as session:
            message = await error_of(session, "lookup", name="KSPSetTolerances")
            assert "refused the request (401): set SCIKNOW_API_TOKEN" in message

    asyncio.run(scenario())


def test_ask_relays_a_generated_answer_with_its_citations(assistant, serve_app):
    """A scripted backend stands in for the model: the MCP answer is the pipeline's."""
    from sciknow.serve.answer import Assistant
    from sciknow.serve.web.api import create_app

    reply = "Call KSPSetTolerances() with the new rtol, or pass -ksp_rtol at run time [1]."
    generating = Assistant(
        assistant.retriever,
        ScriptedBackend.replying(reply),
        assistant.settings,
        mode="generative",
        name_check=assistant.name_check,
    )
    url = serve_app(create_app(generating))

    async def scenario() -> None:
        async with stdio_session(url) as session:
            answer = await call(session, "ask", question="How do I set the KSP relative tolerance?")
            assert answer["text"] == reply and not answer["abstained"]
            assert [c["n"] for c in answer["citations"]] == [1]
            cited = answer["citations"][0]
            assert cited["resource"] == "sciknow://doc/" + quote(cited["doc_id"], safe="")
            assert answer["flags"] == [] and "tokens_per_s" in answer["timings"]

    asyncio.run(scenario())


# ----- on its own: the engine in its own process, as an agent's configuration starts it -----

SCRIPT = Path(sys.executable).with_name("sciknow")
AGENT_ENV_DROPS = ("SCIKNOW_MCP__API_URL", "SCIKNOW_API_TOKEN", "SCIKNOW_CONFIG")


@pytest.fixture
def nothing_at_the_default_address() -> Iterator[None]:
    """127.0.0.1:8080 held closed for the test, so no `sciknow serve` can answer there."""
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", 8080))
        except OSError:
            pytest.skip("something holds 127.0.0.1:8080; sciknow mcp would be its client")
        yield


@asynccontextmanager
async def agent_session(data_dir: Path, cwd: Path, errlog: Any):
    """What an agent's `mcpServers` entry runs: the console script with `--data-dir DIR mcp`
    and nothing else (no [mcp] api_url, no token, no sciknow.toml in its folder)."""
    if not SCRIPT.exists():
        pytest.skip("needs the installed sciknow console script")
    env = {k: v for k, v in os.environ.items() if k not in AGENT_ENV_DROPS}
    args = ["--data-dir", str(data_dir), "mcp"]
    params = StdioServerParameters(command=str(SCRIPT), args=args, env=env, cwd=str(cwd))
    async with (
        stdio_client(params, errlog=errlog) as (read, write),
        ClientSession(read, write) as session,
    ):
        await session.initialize()
        yield session


def test_on_its_own_it_answers_from_the_data_directory(
    tools_config, tmp_path, nothing_at_the_default_address
):
    """Every tool and the resource work with no server; results carry links to open."""
    data_dir = tools_config.data_path

    async def scenario(errlog: Any) -> None:
        async with agent_session(data_dir, tmp_path, errlog) as session:
            passages = (await call(session, "search", query="KSP relative tolerance"))["passages"]
            assert passages and all(p["uri"].startswith("https://") for p in passages)
            page = (await call(session, "lookup", name="KSPSetTolerances"))["definitions"][0]
            assert page["doc_id"] == MANPAGE_ID and "itfunc.c#L" in page["uri"]
            answer = await call(session, "ask", question="How do I set the KSP relative tolerance?")
            assert not answer["abstained"] and "[1]" in answer["text"]
            assert all(c["uri"].startswith("https://") for c in answer["citations"])
            await exercise(session)

    with (tmp_path / "stderr.txt").open("w+") as errlog:
        asyncio.run(scenario(errlog))
        errlog.seek(0)
        said = errlog.read()
    assert said.startswith(
        f"sciknow mcp (stdio): the engine in this process over {data_dir} "
        "(extractive answers, no model loads); no sciknow serve answers at "
        "http://127.0.0.1:8080\n"
    ), said
    assert "Traceback" not in said and "Warning" not in said, said


def test_on_its_own_without_an_index_it_says_how_to_make_one(
    tmp_path, nothing_at_the_default_address
):
    missing = tmp_path / "no-index"

    async def scenario(errlog: Any) -> None:
        async with agent_session(missing, tmp_path, errlog) as session:
            assert {t.name for t in (await session.list_tools()).tools} >= TOOLS
            message = await error_of(session, "search", query="KSP")
            assert message == (
                f"Error executing tool search: no index in {missing}: run `sciknow --data-dir "
                f"{missing} ingest`, or start `sciknow mcp` with the --data-dir of an existing "
                "index"
            )

    with (tmp_path / "stderr.txt").open("w+") as errlog:
        asyncio.run(scenario(errlog))
        errlog.seek(0)
        assert f"; no index in {missing}: run" in errlog.read()
    assert not missing.exists()  # nothing made where the agent happened to start it


def test_a_running_sciknow_serve_is_recognised(api_url, assistant, serve_app):
    """Without an explicit URL, `sciknow mcp` uses a server at the default address only when
    it is a sciknow serve (its /health, or its demand for a token)."""
    from fastapi import FastAPI

    from sciknow.serve.web.api import create_app
    from sciknow.ui.mcp_server import serve_answers_at

    other = FastAPI()

    @other.get("/health")
    def health() -> dict[str, str]:
        return {"status": "ok"}

    assert serve_answers_at(api_url)
    assert serve_answers_at(serve_app(create_app(assistant, token="t")))
    assert not serve_answers_at(serve_app(other))
    assert not serve_answers_at(f"http://127.0.0.1:{free_port()}")
