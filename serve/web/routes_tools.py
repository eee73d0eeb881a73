"""HTTP endpoints for coding agents: exact lookup, examples, whole documents, name checks.

`sciknow mcp` (ui/mcp_server.py) is a thin client of these and of `/search` and `/ask`,
so agents reach the same index and model as every other front end. Everything here reads
the index only; nothing takes the generation lock.

- `GET /lookup?name=` finds a name the way a reader opens a reference manual: the man page
  or definition of a function, type or constant (the symbol table's "defines" rows, man
  pages first), the man pages that document an option, or the tutorial at a path. A name
  that is none of these gets the closest names the index knows.
- `GET /examples?q=` retrieves among example programs only and returns each program once,
  with the arguments its tests run it with (kept from its `/*TEST ... TEST*/` block).
- `GET /documents/{doc_id}` returns a whole stored document, `meta` included.
- `POST /verify` flags the library names of a text that exist nowhere in the index, or
  that its release notes say were removed (serve/names.py, as `sciknow verify` does).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import TYPE_CHECKING, Annotated, Any, Literal

from fastapi import APIRouter, HTTPException, Query
from pydantic import BaseModel, Field

from sciknow.config import Profile
from sciknow.index.store import Filters, Store
from sciknow.ingest.symbols import OPTION_RE
from sciknow.records import Document
from sciknow.serve.names import NameChecker
from sciknow.serve.web.schemas import DOCUMENT_RESPONSES

if TYPE_CHECKING:
    from sciknow.serve.answer import Assistant

MAX_MENTIONS = 3
MENTION_CANDIDATES = 30  # passages naming the symbol, before the kind weights pick 3
EXAMPLE_PATH_RE = re.compile(r"(?:^|/)ex\w*\.(?:c|cxx|F90|F|py)$")
MAX_VERIFY_CHARS = 60_000  # the API refuses bodies over 64 KiB anyway


class Parameter(BaseModel):
    name: str
    description: str = ""


class Definition(BaseModel):
    """A document that defines or documents the name; man-page fields when it is one."""

    doc_id: str
    kind: str
    name: str
    title: str
    uri: str
    source: str
    official: bool
    summary: str = ""
    synopsis: str = ""
    input_parameters: list[Parameter] = Field(default_factory=list)
    output_parameters: list[Parameter] = Field(default_factory=list)
    options: list[Parameter] = Field(default_factory=list)
    level: str = ""
    seealso: list[str] = Field(default_factory=list)
    notes: str = ""
    language: str = ""
    test_args: list[str] = Field(default_factory=list)
    text: str = Field(description="the whole document as indexed (a man page rendered as text)")


class Mention(BaseModel):
    """A passage that names a symbol the index holds no definition of."""

    doc_id: str
    kind: str
    title: str
    section: str
    uri: str
    text: str


class LookupResponse(BaseModel):
    name: str
    found: bool
    matched: Literal["definition", "option", "example", ""] = Field(
        description="how the name was found: a defined symbol, an option documented by man "
        "pages, or an example's file path; empty when not found"
    )
    definitions: list[Definition]
    reason: Literal["", "mentioned-only", "unknown-name", "removed-name"] = Field(
        description="why nothing was found: the index mentions the name but holds no "
        "definition of it, knows no such name, or its release notes say it was removed"
    )
    suggestions: list[str] = Field(
        description="when not found: close names the index knows, or for a removed name "
        "the replacements its release notes name"
    )
    mentions: list[Mention] = Field(
        description="for a name mentioned only: passages that name it (a docs-only index "
        "mentions most functions without their man pages)"
    )


class ExampleHit(BaseModel):
    doc_id: str
    title: str
    uri: str
    source: str
    official: bool
    language: str
    test_args: list[str] = Field(description="the arguments each of its tests runs it with")
    uses: list[str] = Field(description="library names of the query that the program mentions")
    score: float
    passage: str = Field(description="the part of the program that matched the query")


class ExamplesResponse(BaseModel):
    query: str
    examples: list[ExampleHit]


class VerifyRequest(BaseModel):
    text: str = Field(min_length=1, max_length=MAX_VERIFY_CHARS)


class NameProblem(BaseModel):
    name: str
    line: int
    start: int
    end: int
    reason: str
    suggestions: list[str]


class VerifyResponse(BaseModel):
    issues: list[NameProblem]


def _pairs(items: Any) -> list[Parameter]:
    """Man-page parameters (stored as [name, text] pairs, options as a mapping)."""
    pairs = items.items() if isinstance(items, dict) else items or []
    return [Parameter(name=name, description=text) for name, text in pairs]


def definition(doc: Document) -> Definition:
    """The reference fields of a document: a man page's parsed parts, an example's tests."""
    meta = doc.meta
    fields: dict[str, Any] = {
        "doc_id": doc.id,
        "kind": doc.kind,
        "name": doc.section or doc.title,
        "title": doc.title,
        "uri": doc.uri,
        "source": doc.source,
        "official": doc.official,
        "language": meta.get("language", ""),
        "test_args": meta.get("test_args", []),
        "text": doc.text,
    }
    if doc.kind == "manpage":
        fields.update(
            name=meta.get("name", fields["name"]),
            summary=meta.get("summary", ""),
            synopsis=meta.get("synopsis", ""),
            input_parameters=_pairs(meta.get("input_parameters")),
            output_parameters=_pairs(meta.get("output_parameters")),
            options=_pairs(meta.get("options")),
            level=meta.get("level", ""),
            seealso=meta.get("seealso", []),
            notes=meta.get("notes", ""),
        )
    return Definition(**fields)


def clean_name(name: str) -> str:
    """`KSPSolve()`, `` `KSPSolve` `` and ` KSPSolve ` all name KSPSolve."""
    return re.sub(r"\(\s*\)$", "", name.strip().strip("`").strip())


def documenting_option(store: Store, option: str, limit: int = 5) -> list[Document]:
    """Man pages whose options list names `option` (the symbol table finds the candidates)."""
    allowed = store.allowed_rowids(Filters(kinds=("manpage",)))
    hits = store.lookup_symbols([option], limit * 4, allowed)
    evidence = store.evidence([rowid for rowid, _ in hits])
    doc_ids = dict.fromkeys(evidence[rowid].doc_id for rowid, _ in hits if rowid in evidence)
    found = []
    for doc in filter(None, map(store.document, doc_ids)):
        keys = doc.meta.get("options", {})
        if any(option in OPTION_RE.findall(key) for key in keys):
            found.append(doc)
    return found[:limit]


def lookup(
    store: Store, profile: Profile, name: str, kind_weights: Mapping[str, float]
) -> LookupResponse:
    """Definitions of `name`, else the man pages of an option, else examples at a path;
    when none, why (serve/names.py tells unknown and removed names apart) and what instead:
    passages that mention it (ranked by `retrieval.kind_weights`), or close names."""
    name = clean_name(name)
    matched, docs = "definition", store.defining_documents(name)
    if not docs and OPTION_RE.fullmatch(name):
        matched, docs = "option", documenting_option(store, name)
    if not docs and EXAMPLE_PATH_RE.search(name):
        matched, docs = "example", store.documents_at(name.lstrip("/"), "example")
    if docs:
        definitions = [definition(d) for d in docs]
        return LookupResponse(
            name=name, found=True, matched=matched, definitions=definitions, reason="",
            suggestions=[], mentions=[],
        )  # fmt: skip
    checker = NameChecker.from_store(store, profile)
    removed = [i for i in checker.check(name) if i.reason == "removed-name" and i.name == name]
    mentions = [] if removed else mentioning(store, name, kind_weights)
    if removed:
        reason, suggestions = "removed-name", removed[0].suggestions
    elif mentions:
        reason, suggestions = "mentioned-only", []
    else:
        reason, suggestions = "unknown-name", checker.suggest(name)
    return LookupResponse(
        name=name, found=False, matched="", definitions=[], reason=reason,
        suggestions=suggestions, mentions=mentions,
    )  # fmt: skip


def mentioning(store: Store, name: str, kind_weights: Mapping[str, float]) -> list[Mention]:
    """Passages that name `name`: the symbol table's order, kinds weighted as in retrieval
    (docs before release notes and code)."""
    rowids = [rowid for rowid, _ in store.lookup_symbols([name], MENTION_CANDIDATES)]
    found = store.evidence(rowids)
    hits = [found[r] for r in rowids if r in found]
    hits.sort(key=lambda e: -kind_weights.get(e.kind, 1.0))  # stable: ties keep the order
    return [
        Mention(
            doc_id=e.doc_id, kind=e.kind, title=e.title, section=e.section, uri=e.uri,
            text=e.text,
        )
        for e in hits[:MAX_MENTIONS]
    ]  # fmt: skip


def examples(assistant: Assistant, query: str, k: int) -> ExamplesResponse:
    """The `k` best example programs for `query`, each once, in retrieval order."""
    retriever = assistant.retriever
    per_doc = max(retriever.settings.max_per_doc, 1)  # passages one program may fill
    passages = retriever.search(query, k * per_doc, Filters(("example",)))
    best = {}
    for evidence in passages:
        best.setdefault(evidence.doc_id, evidence)
    wanted = {n.lower(): n for n in retriever.query_symbols(query)}
    hits = []
    for doc_id, evidence in list(best.items())[:k]:
        doc = assistant.document(doc_id)
        if doc is None:  # re-ingested between the search and this read
            continue
        mentioned = {s.lower() for s in doc.symbols}
        hits.append(
            ExampleHit(
                doc_id=doc.id,
                title=doc.title,
                uri=doc.uri,
                source=doc.source,
                official=doc.official,
                language=doc.meta.get("language", ""),
                test_args=doc.meta.get("test_args", []),
                uses=[name for lower, name in wanted.items() if lower in mentioned],
                score=evidence.score,
                passage=evidence.text,
            )
        )
    return ExamplesResponse(query=query, examples=hits)


def make_tools_router(assistant: Assistant) -> APIRouter:
    """The agent endpoints over the assistant's index (see the module docstring)."""
    router = APIRouter(tags=["tools"])
    store, profile = assistant.store, assistant.retriever.profile
    kind_weights = assistant.retriever.settings.kind_weights

    @router.get("/lookup", response_model=LookupResponse)
    def get_lookup(name: Annotated[str, Query(min_length=1, max_length=200)]) -> LookupResponse:
        if not clean_name(name):
            raise HTTPException(422, "name is empty")
        return lookup(store, profile, name, kind_weights)

    @router.get("/examples", response_model=ExamplesResponse)
    def get_examples(
        q: Annotated[str, Query(min_length=1, max_length=2000)],
        k: Annotated[int, Query(ge=1, le=20)] = 5,
    ) -> ExamplesResponse:
        return examples(assistant, q, k)

    @router.get("/documents/{doc_id:path}", response_model=None, responses=DOCUMENT_RESPONSES)
    def get_document(doc_id: str) -> dict[str, Any]:
        doc = assistant.document(doc_id)
        if doc is None:
            raise HTTPException(404, f"no document with id {doc_id!r}")
        return doc.to_dict()

    @router.post("/verify", response_model=VerifyResponse)
    def post_verify(body: VerifyRequest) -> VerifyResponse:
        found = NameChecker.from_store(store, profile).check(body.text)
        issues = [NameProblem(**issue.to_dict()) for issue in found]
        return VerifyResponse(issues=issues)

    return router
