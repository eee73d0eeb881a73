"""HTTP endpoints that compile and run code: `POST /compile` and `POST /run`.

The same checks as `sciknow check-code` and the MCP tools (`serve/codecheck/`), for coding
agents and front ends on other machines: the code is compiled against the server's PETSc
(`[check]`, else `PETSC_DIR`, else `pkg-config PETSc`), with the index's names for
suggestions and its man-page synopses for typing a fragment's variables.

`/run` runs the program in the sandbox only when the server allows it (`sciknow serve
--allow-run` or `[check] allow_run = true`); otherwise it answers 403 and runs nothing,
because running is executing a stranger's program on the server, sandbox or not. Both
sit behind the server's token like every route (`TokenGate`) and are limited per client
address (`[check] concurrent` in flight, `per_minute` started; 429 with `Retry-After`):
a compilation costs a second of CPU and a run up to `[check] wall_s`. Without a PETSc,
both answer 503 with how to install one.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any, Literal

from fastapi import APIRouter, Depends, HTTPException, Request
from pydantic import BaseModel, Field

from sciknow.config import CheckConfig
from sciknow.serve.codecheck.check import CodeChecker, CodeReport, build_checker
from sciknow.serve.codecheck.petsc import PetscNotFound
from sciknow.serve.codecheck.sandbox import MAX_NP
from sciknow.serve.web.access import RateLimiter, client_of

if TYPE_CHECKING:
    from sciknow.serve.answer import Assistant

MAX_CODE_CHARS = 60_000  # the API refuses bodies over 64 KiB anyway
RUN_REFUSED = (
    "running code is off on this server: start it with `sciknow serve --allow-run` or set "
    "[check] allow_run = true (POST /compile checks code without running it)"
)


class CompileRequest(BaseModel):
    code: str = Field(
        min_length=1,
        max_length=MAX_CODE_CHARS,
        description="C or C++: a whole program, or a fragment (a few calls, no main)",
    )
    language: Literal["c", "c++"] = "c"


class RunRequest(CompileRequest):
    np: int = Field(default=1, ge=1, le=MAX_NP, description="MPI ranks")


class DiagnosticOut(BaseModel):
    severity: str = Field(description="error or warning")
    message: str
    line: int = Field(description="the line in the code sent (0: outside it)")
    column: int
    where: str = Field(description="code, harness (what wrapping added), link, or a header")
    name: str = Field(description="the unknown identifier the message is about, if any")
    suggestions: list[str] = Field(description="the closest real names, for an unknown one")
    notes: list[str]


class DeclarationOut(BaseModel):
    name: str
    type: str
    because: str = Field(description="the call whose signature typed the variable")


class RunOut(BaseModel):
    exit_status: int | None = Field(description="null when the sandbox stopped the program")
    seconds: float
    output_tail: str
    output_bytes: int
    stopped: str = Field(description="the limit that stopped it, or empty")
    np: int
    denied: str = Field(description="what the sandbox refused, as the output shows it")


class CheckResponse(BaseModel):
    """`sciknow check-code --json`'s report."""

    ok: bool = Field(description="it compiles and, when run, ran cleanly")
    petsc: str = Field(description="the PETSc compiled against and how it was found")
    version: str
    language: Literal["c", "c++"]
    kind: Literal["program", "fragment"]
    compiled: bool
    verdict: str = Field(description="one line: compiles, the first error, or why not")
    cannot_wrap: str = Field(description="why a fragment could not be made a program")
    diagnostics: list[DiagnosticOut]
    compile_s: float
    declarations: list[DeclarationOut] = Field(description="variables the harness declared")
    harness: str = Field(description="the program compiled for a fragment")
    run: RunOut | None
    run_skipped: str = Field(description="why the program was not run (no sandbox here)")


def limited(limiter: RateLimiter) -> Callable[[Request], Iterator[None]]:
    """A dependency that counts a request against `limiter` for the client's address."""

    def dependency(request: Request) -> Iterator[None]:
        client = client_of(request.scope)
        wait = limiter.acquire(client)
        if wait is not None:
            detail = (
                f"too many requests to {request.url.path} from {client}: at most "
                f"{limiter.concurrent} at once and {limiter.per_minute} a minute; "
                f"retry in {wait} s"
            )
            raise HTTPException(429, detail, headers={"retry-after": str(wait)})
        try:
            yield
        finally:
            limiter.release(client)

    return dependency


def make_check_router(assistant: Assistant, check: CheckConfig) -> APIRouter:
    """`/compile` and `/run` against `check`'s PETSc, with the assistant's index for names."""
    limit = Depends(limited(RateLimiter(check.concurrent, check.per_minute)))
    router = APIRouter(tags=["code"], dependencies=[limit])
    store, profile = assistant.store, assistant.retriever.profile

    @functools.cache
    def checker() -> CodeChecker:
        return build_checker(check, profile, store)

    def report(code: str, language: str, run: bool, np: int) -> dict[str, Any]:
        try:
            found: CodeReport = checker().check(code, language, run=run, np=np)
        except PetscNotFound as err:
            raise HTTPException(503, str(err)) from None
        return found.to_dict()

    @router.post("/compile", response_model=CheckResponse)
    def post_compile(body: CompileRequest) -> dict[str, Any]:
        """Compile a program or a fragment: diagnostics with lines and suggestions."""
        return report(body.code, body.language, False, 1)

    @router.post(
        "/run",
        response_model=CheckResponse,
        responses={403: {"description": "running code is off on this server"}},
    )
    def post_run(body: RunRequest) -> dict[str, Any]:
        """Compile and run with `mpiexec -n np` in the sandbox (only when allowed)."""
        if not check.allow_run:
            raise HTTPException(403, RUN_REFUSED)
        return report(body.code, body.language, True, body.np)

    return router
