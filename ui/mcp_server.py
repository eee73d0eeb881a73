"""`sciknow mcp`: a Model Context Protocol server so coding agents can use the index.

    sciknow [--data-dir DIR] mcp [--transport stdio|http] [--host H] [--port P]
                                 [--api-url URL] [--token T]

The tools (search, lookup, ask, verify, examples) map onto `sciknow serve`'s `/search`,
`/lookup`, `/ask`, `/verify` and `/examples`; the resource template `sciknow://doc/{doc_id}`
onto `/documents/{doc_id}`. Which API answers them is chosen once, at start, and said on
stderr:
- `--api-url` or `[mcp] api_url` set: that `sciknow serve`, always (a team server; the
  tools say so when it is down). `SCIKNOW_API_TOKEN`, when set, is sent as a bearer token.
- neither set, and a `sciknow serve` answers at its default address: that one, so no
  second model or index loads beside it.
- neither set and nothing there (an agent's configuration starting `sciknow mcp` on a
  laptop): the same API app built in this process over the configured data directory, on
  the first tool call, reached through an in-memory transport. The extractive default
  loads no model; only the embedder and the index load.

Failures an agent can act on (bad arguments, an unknown document, the API down or refusing
the token, no index yet) come back as tool errors with one line saying what to do, never as
a crash; a refused argument is named (`Error executing tool search: invalid argument k:
input should be greater than or equal to 1 (got 0)`), not dumped as pydantic's report.
The HTTP transport (streamable HTTP at `/mcp`) follows `sciknow serve`'s rule: it binds
127.0.0.1 by default, and any other address needs a token (`--token` or
`SCIKNOW_API_TOKEN`) unless `--no-auth` says the network is trusted.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from collections.abc import Awaitable, Callable
from typing import Annotated, Any, Literal
from urllib.parse import quote

from pydantic import Field, StringConstraints, ValidationError
from typing_extensions import TypedDict  # pydantic needs it on Python < 3.12

from sciknow.config import Config
from sciknow.errors import SciknowError, StoreError
from sciknow.records import KINDS, Citation, Flag
from sciknow.ui.api_client import TOKEN_ENV, ApiClient, ApiError
from sciknow.ui.auth import serving_token

RESOURCE_PREFIX = "sciknow://doc/"
DEFAULT_API_URL = "http://127.0.0.1:8080"  # where `sciknow serve` listens unless told
IN_PROCESS_URL = "http://in-process"  # the base URL of the app built in this process
INSTRUCTIONS = """\
sciknow answers from an index of {library}'s documentation, man pages, tutorials and source.
Use `lookup` for the reference of an exact name (function, type, option, example path),
`search` for passages about a topic, `examples` for programs to start from, `ask` for a
cited answer, and `verify` on code you wrote to catch {library} names that do not exist.
Open any `resource` URI of a result (sciknow://doc/...) to read the whole document."""

Kind = Literal[KINDS]  # type: ignore[valid-type]
Text = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=2000)]


class Turn(TypedDict):
    """One earlier message of the conversation, oldest first."""

    role: Literal["user", "assistant"]
    content: Annotated[str, StringConstraints(max_length=8000)]


def resource_uri(doc_id: str) -> str:
    """The MCP resource of a document: its id percent-encoded into one path segment."""
    return RESOURCE_PREFIX + quote(doc_id, safe="")


def doc_id_of(chunk_id: str) -> str:
    """The document of a chunk: chunk ids are `<doc_id>::<n>` (index/chunking.py)."""
    return chunk_id.rpartition("::")[0] or chunk_id


class SciknowAPI:
    """`ApiClient` (ui/api_client.py) with its errors turned into tool errors for agents.

    It calls `sciknow serve` at `url`, or, given `build_app`, the API app that function
    builds in this process (on the first call, in a worker thread: the index and the
    embedder take seconds to load; a failure such as a missing index is retried next call).
    """

    def __init__(
        self,
        url: str,
        token: str | None,
        timeout: float,
        build_app: Callable[[], Any] | None = None,
    ) -> None:
        self.url, self.token, self.timeout, self.build_app = url, token, timeout, build_app
        self._client: ApiClient | None = None
        self._connecting = asyncio.Lock()

    async def client(self) -> ApiClient:
        """The client, made once in the server's event loop and kept for keep-alive."""
        async with self._connecting:
            if self._client is None:
                self._client = await self._connect()
        return self._client

    async def _connect(self) -> ApiClient:
        if self.build_app is None:
            return ApiClient(self.url, self.token, self.timeout)
        import httpx

        try:
            app = await asyncio.to_thread(self.build_app)
        except (SciknowError, RuntimeError) as err:  # and the store's, torch's, FAISS's
            raise ApiError(str(err)) from None
        return ApiClient(IN_PROCESS_URL, None, self.timeout, httpx.ASGITransport(app=app))

    async def get(self, path: str, **params: Any) -> Any:
        return await self._tool_call(lambda client: client.get(path, **params))

    async def post(self, path: str, body: dict[str, Any]) -> Any:
        return await self._tool_call(lambda client: client.post(path, body))

    async def _tool_call(self, call: Callable[[ApiClient], Awaitable[Any]]) -> Any:
        from mcp.server.mcpserver.exceptions import ToolError

        try:
            return await call(await self.client())
        except ApiError as err:
            raise ToolError(str(err)) from None


def _with_resource(item: dict[str, Any], doc_id: str) -> dict[str, Any]:
    return {**item, "resource": resource_uri(doc_id)}


def argument_error(tool: str, error: ValidationError) -> str:
    """The arguments a tool refused, as one line that names each: what an agent needs to
    correct its call (pydantic's own report spans lines and links its documentation)."""
    problems = []
    for item in error.errors():
        where = ".".join(str(part) for part in item["loc"]) or "arguments"
        message = item["msg"][:1].lower() + item["msg"][1:]
        got = "" if item["type"] == "missing" else f" (got {_short(item.get('input'))})"
        problems.append(f"invalid argument {where}: {message}{got}")
    return f"Error executing tool {tool}: " + "; ".join(problems)


def _short(value: Any, limit: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _server_class() -> type:
    """`MCPServer` whose refused arguments are reported by `argument_error`."""
    from mcp.server.mcpserver import MCPServer
    from mcp.server.mcpserver.exceptions import ToolError

    class Server(MCPServer):
        async def call_tool(self, name: str, arguments: dict[str, Any], context: Any = None) -> Any:
            try:
                return await super().call_tool(name, arguments, context)
            except ToolError as err:
                if isinstance(err.__cause__, ValidationError):
                    raise ToolError(argument_error(name, err.__cause__)) from None
                raise

    return Server


def build_server(api: SciknowAPI, library: str = "PETSc") -> Any:
    """The MCP server: five tools and the document resource template, all over `api`."""
    from mcp.server.mcpserver import ResourceSecurity
    from mcp.server.mcpserver.exceptions import ResourceError, ResourceNotFoundError, ToolError
    from mcp.types import ToolAnnotations

    server = _server_class()(
        "sciknow",
        title=f"sciknow ({library} knowledge)",
        instructions=INSTRUCTIONS.format(library=library),
        version="0.1.0",
        log_level="WARNING",
    )
    read_only = ToolAnnotations(read_only_hint=True, open_world_hint=False)

    @server.tool(
        annotations=read_only,
        description=f"""Hybrid search (meaning, words and exact {library} names) over the
indexed documentation, man pages, tutorials, source, release notes and, when ingested,
mailing lists and issues. Returns {{"passages": [...]}} best first; each passage has rank,
title, kind, uri (a link a person can open), text, section, source, official, score,
doc_id and resource (the sciknow://doc/ URI of the whole document).""",
    )
    async def search(
        query: Annotated[Text, Field(description="a question, a topic or a name")],
        k: Annotated[int, Field(ge=1, le=50, description="how many passages")] = 8,
        kinds: Annotated[
            tuple[Kind, ...],
            Field(max_length=len(KINDS), description="only these document kinds (empty: all)"),
        ] = (),
        official: Annotated[
            bool | None,
            Field(description="true: only vetted docs and code; false: only mail, issues, chat"),
        ] = None,
    ) -> dict[str, Any]:
        found = await api.get("/search", q=query, k=k, kind=kinds or None, official=official)
        passages = [
            _with_resource(
                {
                    "rank": rank,
                    **{key: e[key] for key in ("title", "kind", "uri", "text", "section")},
                    **{key: e[key] for key in ("source", "official", "score", "doc_id")},
                },
                e["doc_id"],
            )
            for rank, e in enumerate(found, start=1)
        ]
        return {"passages": passages}

    @server.tool(
        annotations=read_only,
        description=f"""The reference entry of an exact {library} name: a function, type,
enum or macro (its man page or definition), an option such as -ksp_rtol (the man pages
that document it) or an example by path or file name (ex2.c, src/ksp/tutorials/ex2.c).
Case and a trailing "()" do not matter. Returns {{"name", "found", "matched"
("definition", "option" or "example"), "definitions", "reason", "suggestions",
"mentions"}}. Each definition has doc_id, kind, name, title, uri, resource, summary,
synopsis, input_parameters and output_parameters ([{{"name", "description"}}]), options,
level, seealso, notes, language, test_args and text. When found is false, reason says
why: "unknown-name" (the index knows no such name; suggestions are the closest real
names), "removed-name" (release notes say it was removed; suggestions are its
replacements) or "mentioned-only" (a real name whose reference is not indexed; mentions
lists up to three passages that name it: doc_id, kind, title, section, uri, resource,
text).""",
    )
    async def lookup(
        name: Annotated[
            str,
            StringConstraints(strip_whitespace=True, min_length=1, max_length=200),
            Field(description="the exact name, e.g. KSPSetTolerances, MATAIJ, -pc_type"),
        ],
    ) -> dict[str, Any]:
        found = await api.get("/lookup", name=name)
        for key in ("definitions", "mentions"):
            found[key] = [_with_resource(item, item["doc_id"]) for item in found[key]]
        return found

    @server.tool(
        annotations=read_only,
        description=f"""A cited answer to a {library} question from the indexed sources (the
same answer as the sciknow chat). Returns {{"text", "citations": [{{"n", "title", "uri",
"doc_id", "resource"}}], "abstained", "flags", "code", "timings"}}: [n] markers in text
refer to citations; abstained is true when the index has nothing close enough (citations
then list the closest passages); flags lists names in the answer that do not exist in the
index and, with flags=true, uncertain spans and per-source support where the answer was
generated; code gives each C code block of the answer its compile verdict against the
server's {library} build ({{"line", "status": "compiles" | "error" | "cannot-wrap",
"verdict"}}; empty when it has none or the answer has no C code). Prefer lookup or search
when you need an exact reference; use ask for how-to questions.""",
    )
    async def ask(
        question: Annotated[Text, Field(description="the question")],
        history: Annotated[
            tuple[Turn, ...],
            Field(max_length=20, description="earlier turns, oldest first, for follow-ups"),
        ] = (),
        flags: Annotated[
            bool, Field(description="also flag uncertain spans and per-source support (slower)")
        ] = False,
        k: Annotated[
            int | None, Field(ge=1, le=20, description="passages to answer from (default 6)")
        ] = None,
        kinds: Annotated[
            tuple[Kind, ...],
            Field(max_length=len(KINDS), description="only these document kinds (empty: all)"),
        ] = (),
        official: Annotated[
            bool | None, Field(description="true: only vetted sources; false: only community")
        ] = None,
    ) -> dict[str, Any]:
        body = {"question": question, "history": history, "flags": flags, "stream": False}
        body |= {"k": k, "kinds": kinds, "official": official}
        answer = await api.post("/ask", body)
        cited_passages: list[Citation] = answer["citations"]
        flagged: list[Flag] = answer["flags"]
        citations = []
        for cited in cited_passages:
            doc_id = doc_id_of(cited["chunk_id"])
            entry = {"n": cited["n"], "title": cited["title"], "uri": cited["uri"]}
            citations.append(_with_resource({**entry, "doc_id": doc_id}, doc_id))
        return {
            "text": answer["text"],
            "citations": citations,
            "abstained": answer["abstained"],
            "flags": flagged,
            "code": [
                {"line": f.get("line"), "status": f.get("status"), "verdict": f.get("reason")}
                for f in flagged
                if f["type"] == "compile"
            ],
            "timings": answer["timings"],
        }

    @server.tool(
        annotations=read_only,
        description=f"""Check the {library} names in code or text you wrote against the index:
functions, types, constants and options that exist nowhere in the indexed sources (often
invented or misspelled) or that release notes say were removed. Returns {{"ok", "issues":
[{{"name", "line", "start", "end", "reason", "suggestions"}}]}}: reason is "unknown-name"
(suggestions: the closest real names) or "removed-name" (suggestions: the replacements);
line is 1-based, start/end are character offsets in text. ok is true when no name is
flagged.""",
    )
    async def verify(
        text: Annotated[
            str,
            StringConstraints(min_length=1, max_length=60_000),
            Field(description="the code or text to check"),
        ],
    ) -> dict[str, Any]:
        if not text.strip():
            raise ToolError("text is empty: pass the code or text to check")
        checked = await api.post("/verify", {"text": text})
        return {"ok": not checked["issues"], "issues": checked["issues"]}

    @server.tool(
        annotations=read_only,
        description=f"""Example and tutorial programs of {library} that use a name or match a
topic, each program once, best first. Returns {{"examples": [{{"doc_id", "title", "uri",
"resource", "language", "test_args", "uses", "score", "passage"}}]}}: test_args are the
command-line arguments the program's tests run it with, uses the names of the query that
the program mentions, passage the part that matched. Open resource for the whole
program.""",
    )
    async def examples(
        topic_or_name: Annotated[
            Text, Field(description="a name (KSPSetTolerances) or a topic (matrix-free Jacobian)")
        ],
        k: Annotated[int, Field(ge=1, le=20, description="how many programs")] = 5,
    ) -> dict[str, Any]:
        found = await api.get("/examples", q=topic_or_name, k=k)
        return {"examples": [_with_resource(e, e["doc_id"]) for e in found["examples"]]}

    @server.resource(
        RESOURCE_PREFIX + "{doc_id}",
        name="document",
        mime_type="text/markdown",
        description="A whole indexed document (man page, docs section, example, source) by "
        "its doc_id, percent-encoded; tools return these URIs as `resource`.",
        # The id is a database key sent to the API URL-encoded, never a file path.
        security=ResourceSecurity(exempt_params={"doc_id"}),
    )
    async def document(doc_id: str) -> str:
        try:
            client = await api.client()
            found = await client.get(f"/documents/{quote(doc_id, safe='')}")
        except ApiError as err:
            if err.status == 404:
                raise ResourceNotFoundError(f"no document with id {doc_id!r}") from None
            raise ResourceError(str(err)) from None
        return render_document(found)

    return server


def render_document(doc: dict[str, Any]) -> str:
    """A document as Markdown: its title, where it comes from, then its text."""
    where = " · ".join(str(part) for part in (doc["kind"], doc["source"], doc["uri"]) if part)
    return f"# {doc['title']}\n\n{where}\n\n{doc['text']}\n"


def serve_answers_at(url: str) -> bool:
    """Whether a `sciknow serve` answers at `url`: its `/health`, or its refusal of a call
    without the token (it then wants `SCIKNOW_API_TOKEN`, as any client of it)."""
    import httpx

    try:
        reply = httpx.get(f"{url}/health", timeout=2.0)
        if reply.status_code == 401:
            return "bearer" in reply.headers.get("www-authenticate", "").lower()
        return "chunks" in reply.json()
    except (httpx.HTTPError, ValueError, TypeError):
        return False


def build_app(config: Config) -> Any:
    """`sciknow serve`'s API app (without the chat) over the configured index, as the
    server builds it; no model loads until a generated answer needs one."""
    from sciknow.serve.factory import build_assistant
    from sciknow.serve.web.api import create_app

    if not (config.data_path / "index.sqlite").is_file():  # the store would create one
        raise StoreError(no_index(config))
    return create_app(build_assistant(config, allow_empty=True))


def no_index(config: Config) -> str:
    return (
        f"no index in {config.data_path}: run `sciknow --data-dir {config.data_path} ingest`, "
        "or start `sciknow mcp` with the --data-dir of an existing index"
    )


def make_api(args: argparse.Namespace, config: Config) -> tuple[SciknowAPI, str]:
    """The API the tools call and a line saying which (see the module docstring)."""
    token = os.environ.get(TOKEN_ENV)
    url = args.api_url or config.mcp.api_url
    if url:
        return SciknowAPI(url, token, config.mcp.timeout_s), f"a client of sciknow serve at {url}"
    if serve_answers_at(DEFAULT_API_URL):
        api = SciknowAPI(DEFAULT_API_URL, token, config.mcp.timeout_s)
        return api, f"a client of the sciknow serve that answers at {DEFAULT_API_URL}"
    from sciknow.serve.answer import resolve_mode

    mode = resolve_mode(config.answer.mode, config.models.size, config.models.backend)
    answers = (
        "extractive answers, no model loads"
        if mode == "extractive"
        else f"generated answers: the {config.models.backend} model loads with the first ask"
    )
    where = f"the engine in this process over {config.data_path} ({answers})"
    if not (config.data_path / "index.sqlite").is_file():
        where += f"; {no_index(config)}"
    api = SciknowAPI(IN_PROCESS_URL, None, config.mcp.timeout_s, lambda: build_app(config))
    return api, f"{where}; no sciknow serve answers at {DEFAULT_API_URL}"


def run_mcp(args: argparse.Namespace, config: Config) -> int:
    """Serve the tools over stdio (for an agent that starts us) or streamable HTTP."""
    token = serving_token(args, "MCP") if args.transport == "http" else None
    api, mode = make_api(args, config)
    print(f"sciknow mcp ({args.transport}): {mode}", file=sys.stderr, flush=True)
    server = build_server(api, config.profile.display_name)
    from sciknow.ui.check_code import add_code_tools  # compile, and run with --allow-run

    add_code_tools(server, config, args.allow_run)
    if args.transport == "stdio":
        server.run("stdio")
        return 0
    import uvicorn

    from sciknow.serve.web.access import TokenGate

    app = server.streamable_http_app(host=args.host)
    app = TokenGate(app, token) if token else app
    log_level = "info" if args.verbose else "warning"
    uvicorn.run(app, host=args.host, port=args.port, log_level=log_level)
    return 0


def add_mcp_parser(verbs: Any) -> None:
    """Register the `mcp` verb on the `sciknow` sub-parsers."""
    parser = verbs.add_parser(
        "mcp",
        help="Model Context Protocol server for coding agents (a client of `sciknow serve`, "
        "or the engine in its own process when none is configured or running)",
    )
    parser.add_argument("--transport", choices=["stdio", "http"], default="stdio")
    parser.add_argument("--host", default="127.0.0.1", help="HTTP transport address")
    parser.add_argument("--port", type=int, default=8081, help="HTTP transport port")
    parser.add_argument(
        "--api-url",
        help="always a client of the sciknow serve at this URL (default: [mcp] api_url; unset: "
        f"the one at {DEFAULT_API_URL} if it answers, else the engine in this process)",
    )
    parser.add_argument(
        "--token", help=f"HTTP transport: clients must send it as a bearer token ({TOKEN_ENV})"
    )
    parser.add_argument(
        "--no-auth", action="store_true", help="HTTP transport: no token even off 127.0.0.1"
    )
    parser.add_argument(
        "--allow-run",
        action="store_true",
        help="also offer the `run` tool (programs run sandboxed; see `sciknow check-code`)",
    )
    parser.set_defaults(run=run_mcp)
