"""The HTTP API (FastAPI): ask (SSE streaming or JSON), search, feedback, health.

One `Assistant` — one model instance — serves every request through an `Engine`
(`serve/web/engine.py`): answers run one at a time in a worker that holds the generation
lock, so concurrent requests queue instead of loading a second model or interleaving on
one KV cache, and a client that leaves mid-stream neither holds the lock nor keeps the
model generating. `/health` reports an engine whose answer has been silent for
`stall_s` as stalled (503).

Requests are validated by pydantic (422 with the failing field). `BodyGuard`
(`serve/web/bodies.py`) refuses bodies over `MAX_BODY_BYTES` with 413 whatever their
transfer encoding, slow bodies with 408, and JSON that strict JSON forbids (NaN,
Infinity, lone surrogates) with 422 before a handler sees it.
"""

from __future__ import annotations

import contextlib
import json
import logging
from collections.abc import AsyncIterator
from typing import Annotated, Any, Literal

from fastapi import FastAPI, HTTPException, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, StreamingResponse
from fastapi_offline import FastAPIOffline
from pydantic import BaseModel, Field
from starlette.types import Receive, Scope, Send

from sciknow.config import CheckConfig, ServeConfig
from sciknow.index.store import Filters, StorageError
from sciknow.records import KINDS
from sciknow.serve.answer import Assistant
from sciknow.serve.web.access import ClientLimits, RateLimiter, Rule, TokenGate
from sciknow.serve.web.bodies import BodyGuard
from sciknow.serve.web.engine import Engine, Run
from sciknow.serve.web.feedback import Feedback, FeedbackTable, server_of
from sciknow.serve.web.feedback_stores import open_feedback
from sciknow.serve.web.routes_check import make_check_router
from sciknow.serve.web.routes_tools import make_tools_router
from sciknow.serve.web.schemas import ASK_RESPONSES, SEARCH_RESPONSES

log = logging.getLogger(__name__)

NOTHING_INDEXED = "nothing is indexed yet: run `sciknow ingest`"
CHAT_API_PREFIX = "/gradio_api/"  # the web chat's own API (Gradio's queue and calls)


class Turn(BaseModel):
    role: Literal["user", "assistant"]
    content: str = Field(max_length=8000)


class AskRequest(BaseModel):
    question: str = Field(min_length=1, max_length=2000)
    history: list[Turn] = Field(default_factory=list, max_length=20)
    k: int | None = Field(default=None, ge=1, le=20)
    stream: bool = True
    kinds: list[str] = Field(default_factory=list, max_length=len(KINDS))
    official: bool | None = None
    flags: bool = Field(default=False, description="add uncertain spans and passage support")


class FeedbackRequest(BaseModel):
    """A vote on one answer (`serve/web/feedback.py`); the server adds backend, model, time."""

    question: str = Field(min_length=1, max_length=2000)
    history: list[Turn] = Field(default_factory=list, max_length=20)
    answer: str = Field(max_length=20_000)
    citations: list[dict[str, Any]] = Field(default_factory=list, max_length=50)
    flags: list[dict[str, Any]] = Field(default_factory=list, max_length=500)
    vote: Literal["up", "down"]
    comment: str = Field(default="", max_length=2000)
    client: str = Field(default="api", min_length=1, max_length=64, examples=["discord:thread"])
    settings: dict[str, Any] = Field(default_factory=dict)


def _filters(kinds: list[str], official: bool | None) -> Filters:
    unknown = sorted(set(kinds) - set(KINDS))
    if unknown:
        raise HTTPException(422, f"unknown kind(s) {unknown}; expected any of {list(KINDS)}")
    return Filters(kinds=tuple(kinds), official=official)


def _sse(event: str, data: Any) -> str:
    return f"event: {event}\ndata: {json.dumps(data, ensure_ascii=False)}\n\n"


def client_rules(serve: ServeConfig, ask: RateLimiter | None = None) -> list[Rule]:
    """Per-client limits of every route that writes or computes (`[serve]`)."""
    ask = ask or RateLimiter(serve.ask_concurrent, serve.ask_per_minute)
    return [
        Rule(ask, paths=("/ask",)),
        Rule(RateLimiter(serve.feedback_per_minute, serve.feedback_per_minute), ("/feedback",)),
        Rule(RateLimiter(serve.verify_per_minute, serve.verify_per_minute), ("/verify",)),
        Rule(RateLimiter(serve.chat_per_minute, serve.chat_per_minute), (), (CHAT_API_PREFIX,)),
    ]


def create_app(
    assistant: Assistant,
    feedback: FeedbackTable | None = None,
    token: str | None = None,
    limiter: RateLimiter | None = None,
    serve: ServeConfig | None = None,
    check: CheckConfig | None = None,
) -> FastAPI:
    """The API over one assistant; votes go to `feedback` (default: `serve.database_url`,
    else the index's data dir).

    With `token`, every request needs it (`serve/web/access.py`). `limiter` caps each
    client's `/ask` requests; `serve` (what `sciknow serve` passes) adds the limits of
    `/feedback`, `/verify` and the chat's API, and sets the timeouts and the stall
    threshold. `app.state` holds the assistant, the engine and its generation lock, so
    that a front end mounted on the app (the web chat) answers through the same model and
    queue.
    """
    settings = serve or ServeConfig()
    engine = Engine(assistant, settings.stall_s)

    @contextlib.asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        yield
        engine.shutdown()  # the server is stopping: no answer outlives it

    # Swagger UI and ReDoc from the assets fastapi-offline ships: /docs works offline
    # (FastAPI's own pages load them from a CDN and are blank without internet).
    app = FastAPIOffline(
        title="sciknow",
        version="0.1.0",
        description="Cited answers from the index.",
        lifespan=lifespan,
    )
    votes = feedback or open_feedback(settings.database_url, assistant.data_dir)
    app.state.assistant = assistant
    app.state.engine = engine
    app.state.feedback = votes
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StorageError, _storage_fault)
    app.add_middleware(BodyGuard, timeout_s=settings.body_timeout_s)
    rules = client_rules(serve, limiter) if serve else [Rule(limiter, ("/ask",))] if limiter else []
    if rules:
        app.add_middleware(ClientLimits, rules=rules)
    if token:  # outermost: refused calls count nothing
        app.add_middleware(
            TokenGate, token=token, failures_per_minute=settings.token_failures_per_minute
        )

    @app.get("/health")
    def health() -> JSONResponse:
        stats = assistant.stats()
        stalled = engine.stalled_for()
        status = "ok" if stats["chunks"] else "empty index"
        report = {
            "status": "stalled" if stalled else status,
            "documents": stats["documents"],
            "chunks": stats["chunks"],
            # what answers: an extractive server quotes passages and loads no model
            "backend": "extractive" if assistant.mode == "extractive" else assistant.backend.name,
        }
        if stalled:
            report["detail"] = f"the answer in progress has been silent for {stalled:.0f} s"
        return JSONResponse(report, status_code=503 if stalled else 200)

    @app.get("/search", response_model=None, responses=SEARCH_RESPONSES)
    def search(
        q: Annotated[str, Query(min_length=1, max_length=2000)],
        k: Annotated[int, Query(ge=1, le=50)] = 8,
        kind: Annotated[list[str] | None, Query()] = None,
        official: bool | None = None,
    ) -> list[dict[str, Any]]:
        results = assistant.retriever.search(q, k, _filters(kind or [], official))
        return [e.to_dict() for e in results]

    @app.post("/ask", response_model=None, responses=ASK_RESPONSES)
    async def ask(body: AskRequest) -> EngineStream | dict[str, Any]:
        if is_empty(assistant):
            raise HTTPException(503, NOTHING_INDEXED)
        options = {
            "history": _turns(body.history),
            "k": body.k,
            "filters": _filters(body.kinds, body.official),
            "flags": body.flags,
        }
        if not body.stream:
            return (await engine.answer(body.question, options)).to_dict()
        return EngineStream(engine, engine.start(body.question, options))

    @app.post("/feedback", status_code=201)
    def feedback_vote(body: FeedbackRequest) -> dict[str, int]:
        entry = Feedback(**body.model_dump(exclude={"history"}), history=_turns(body.history))
        return {"id": votes.add(entry, server_of(assistant))}

    app.include_router(make_tools_router(assistant))
    app.include_router(make_check_router(assistant, check or CheckConfig()))  # /compile, /run
    return app


async def _validation_error(request: Request, err: Exception) -> JSONResponse:
    """422 naming the field, without echoing the input: FastAPI's default repeats it, and
    an input JSON cannot encode turned the 422 into a 500."""
    assert isinstance(err, RequestValidationError)
    keep = ("type", "loc", "msg")
    errors = [{key: error[key] for key in keep if key in error} for error in err.errors()]
    return JSONResponse({"detail": errors}, status_code=422)


async def _storage_fault(request: Request, err: Exception) -> JSONResponse:
    """A read-only, full or damaged data directory: its one line, logged once per request."""
    log.error("%s %s: %s", request.method, request.url.path, err)
    return JSONResponse({"detail": str(err)}, status_code=503)


def is_empty(assistant: Assistant) -> bool:
    """No committed index generation yet (the server started before the first ingest)."""
    return assistant.generation() == 0


def _turns(history: list[Turn]) -> list[dict[str, str]]:
    return [turn.model_dump() for turn in history]


class EngineStream(StreamingResponse):
    """An answer as server-sent events; however the response ends (the last event, the
    client gone, the server stopping), its run is cancelled, so the engine never waits
    on a client that left."""

    def __init__(self, engine: Engine, run: Run) -> None:
        super().__init__(_events(engine, run), media_type="text/event-stream")
        self.run = run

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            self.run.cancel()


async def _events(engine: Engine, run: Run) -> AsyncIterator[str]:
    try:
        async for event in engine.events(run):
            if event.token is not None:
                token = event.token
                yield _sse("token", {"text": token.text, "logprob": token.logprob})
            elif event.kind == "reset":
                yield _sse("reset", {"reason": event.reason})
            elif event.answer is not None:
                yield _sse("answer", event.answer.to_dict())
    except Exception as err:  # the status line is gone: report in-band
        log.warning("answer failed: %s: %s", type(err).__name__, err)
        yield _sse("error", {"detail": f"{type(err).__name__}: {err}"})
    yield _sse("done", {})
