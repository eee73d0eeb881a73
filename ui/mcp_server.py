"""`sciknow mcp`: a Model Context Protocol server so coding agents can use the index.

    sciknow mcp [--transport stdio|http] [--host H] [--port P] [--api-url URL] [--token T]

A thin client of `sciknow serve`'s HTTP API (`[mcp] api_url`): it loads no model and no
index, so an agent's tools answer from the same engine as the chat and the bot. The tools
(search, lookup, ask, verify, examples) map onto `/search`, `/lookup`, `/ask`, `/verify` and
`/examples`; the resource template `sciknow://doc/{doc_id}` onto `/documents/{doc_id}`.
`SCIKNOW_API_TOKEN`, when set, is sent to the API as a bearer token.

Failures an agent can act on (bad arguments, an unknown document, the API down or refusing
the token) come back as tool errors with a sentence saying what to do, never as a crash.
The HTTP transport (streamable HTTP at `/mcp`) follows `sciknow serve`'s rule: it binds
127.0.0.1 by default, and any other address needs a token (`--token` or
`SCIKNOW_API_TOKEN`) unless `--no-auth` says the network is trusted.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Awaitable
from typing import Annotated, Any, Literal
from urllib.parse import quote

from pydantic import Field, StringConstraints
from typing_extensions import TypedDict  # pydantic needs it on Python < 3.12

from sciknow.config import Config, ConfigError
from sciknow.records import KINDS
from sciknow.ui.api_client import TOKEN_ENV, ApiClient, ApiError

RESOURCE_PREFIX = "sciknow://doc/"
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
    """`ApiClient` (ui/api_client.py) with its errors turned into tool errors for agents."""

    def __init__(self, url: str, token: str | None, timeout: float) -> None:
        self.url, self.token, self.timeout = url, token, timeout
        self._client: ApiClient | None = None

    @property
    def client(self) -> ApiClient:
        if self._client is None:  # made in the server's event loop, kept for keep-alive
            self._client = ApiClient(self.url, self.token, self.timeout)
        return self._client

    async def get(self, path: str, **params: Any) -> Any:
        return await self._tool_call(self.client.get(path, **params))

    async def post(self, path: str, body: dict[str, Any]) -> Any:
        return await self._tool_call(self.client.post(path, body))

    @staticmethod
    async def _tool_call(pending: Awaitable[Any]) -> Any:
        from mcp.server.mcpserver.exceptions import ToolError

        try:
            return await pending
        except ApiError as err:
            raise ToolError(str(err)) from None


def _with_resource(item: dict[str, Any], doc_id: str) -> dict[str, Any]:
    return {**item, "resource": resource_uri(doc_id)}


def build_server(api: SciknowAPI, library: str = "PETSc") -> Any:
    """The MCP server: five tools and the document resource template, all over `api`."""
    from mcp.server.mcpserver import MCPServer, ResourceSecurity
    from mcp.server.mcpserver.exceptions import ResourceError, ResourceNotFoundError, ToolError
    from mcp.types import ToolAnnotations

    server = MCPServer(
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
"doc_id", "resource"}}], "abstained", "flags", "timings"}}: [n] markers in text refer to
citations; abstained is true when the index has nothing close enough (citations then
list the closest passages); flags lists names in the answer that do not exist in the index
and, with flags=true, uncertain spans and per-source support where the answer was
generated. Prefer lookup or search when you need an exact reference; use ask for how-to
questions.""",
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
        citations = []
        for cited in answer["citations"]:
            doc_id = doc_id_of(cited["chunk_id"])
            entry = {"n": cited["n"], "title": cited["title"], "uri": cited["uri"]}
            citations.append(_with_resource({**entry, "doc_id": doc_id}, doc_id))
        return {
            "text": answer["text"],
            "citations": citations,
            "abstained": answer["abstained"],
            "flags": answer["flags"],
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
            found = await api.client.get(f"/documents/{quote(doc_id, safe='')}")
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


def http_token(args: argparse.Namespace) -> str | None:
    """The token HTTP clients must send, by `sciknow serve`'s rule: `--token` or
    `SCIKNOW_API_TOKEN`; none with `--no-auth`; a non-local address refused without one."""
    from sciknow.serve.web.access import is_loopback

    if args.no_auth:
        if args.token:
            raise ConfigError("give --token or --no-auth, not both")
        return None
    token = args.token or os.environ.get(TOKEN_ENV) or None
    if token is None and not is_loopback(args.host):
        raise ConfigError(
            f"refusing to serve MCP on {args.host} without a token: set {TOKEN_ENV} (or pass "
            "--token), or pass --no-auth to let anyone who reaches it use it"
        )
    return token


def run_mcp(args: argparse.Namespace, config: Config) -> int:
    """Serve the tools over stdio (for an agent that starts us) or streamable HTTP."""
    token = http_token(args) if args.transport == "http" else None
    api_url = args.api_url or config.mcp.api_url
    server = build_server(
        SciknowAPI(api_url, os.environ.get(TOKEN_ENV), config.mcp.timeout_s),
        config.profile.display_name,
    )
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
        "mcp", help="Model Context Protocol server for coding agents (needs `sciknow serve`)"
    )
    parser.add_argument("--transport", choices=["stdio", "http"], default="stdio")
    parser.add_argument("--host", default="127.0.0.1", help="HTTP transport address")
    parser.add_argument("--port", type=int, default=8081, help="HTTP transport port")
    parser.add_argument("--api-url", help="sciknow serve's URL (default: [mcp] api_url)")
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
