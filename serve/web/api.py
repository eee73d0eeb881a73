"""The HTTP API (FastAPI): ask (SSE streaming or JSON), search, feedback, health.

One `Assistant` — one model instance — serves every request. Generation holds a
lock for the whole answer, so concurrent requests queue instead of loading a
second model or interleaving on one KV cache; retrieval runs outside the lock.
Requests are validated by pydantic (422 with the failing field) and bodies
over `MAX_BODY_BYTES` are refused with 413 before they are read.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Awaitable, Callable, Iterator
from typing import Annotated, Any, Literal

from fastapi import FastAPI, HTTPException, Query, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse
from pydantic import BaseModel, Field

from sciknow.index.store import Filters
from sciknow.records import KINDS
from sciknow.serve.answer import Assistant
from sciknow.serve.web.access import AskLimiter, RateLimiter, TokenGate
from sciknow.serve.web.feedback import Feedback, FeedbackStore, server_of
from sciknow.serve.web.routes_tools import make_tools_router

MAX_BODY_BYTES = 64 * 1024
NOTHING_INDEXED = "nothing is indexed yet: run `sciknow ingest`"


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


def create_app(
    assistant: Assistant,
    feedback: FeedbackStore | None = None,
    token: str | None = None,
    limiter: RateLimiter | None = None,
) -> FastAPI:
    """The API over one assistant; votes go to `feedback` (default: the index's data dir).

    With `token`, every request needs it (`serve/web/access.py`); `limiter` caps each client's
    `/ask` requests. `app.state` holds the assistant and the generation lock, so that a
    front end mounted on the app (the web chat) answers through the same model and queue.
    """
    app = FastAPI(title="sciknow", version="0.1.0", description="Cited answers from the index.")
    generation_lock = threading.Lock()
    votes = feedback or FeedbackStore.in_data_dir(assistant.retriever.store.root)
    app.state.assistant = assistant
    app.state.generation_lock = generation_lock
    app.state.feedback = votes
    if limiter is not None:
        app.add_middleware(AskLimiter, limiter=limiter)
    if token:
        app.add_middleware(TokenGate, token=token)  # outermost: refused calls count nothing

    @app.middleware("http")
    async def limit_body(
        request: Request, call_next: Callable[[Request], Awaitable[Response]]
    ) -> Response:
        length = request.headers.get("content-length")
        if request.method == "POST" and length is None:
            return JSONResponse({"detail": "send a Content-Length header"}, status_code=411)
        if length is not None and (not length.isdigit() or int(length) > MAX_BODY_BYTES):
            return JSONResponse({"detail": f"body over {MAX_BODY_BYTES} bytes"}, status_code=413)
        return await call_next(request)

    @app.get("/health")
    def health() -> dict[str, Any]:
        stats = assistant.retriever.store.stats()
        return {
            "status": "ok" if stats["chunks"] else "empty index",
            "documents": stats["documents"],
            "chunks": stats["chunks"],
            "backend": assistant.backend.name,
        }

    @app.get("/search")
    def search(
        q: Annotated[str, Query(min_length=1, max_length=2000)],
        k: Annotated[int, Query(ge=1, le=50)] = 8,
        kind: Annotated[list[str] | None, Query()] = None,
        official: bool | None = None,
    ) -> list[dict[str, Any]]:
        results = assistant.retriever.search(q, k, _filters(kind or [], official))
        return [e.to_dict() for e in results]

    @app.post("/ask", response_model=None)
    def ask(body: AskRequest) -> StreamingResponse | dict[str, Any]:
        if is_empty(assistant):
            raise HTTPException(503, NOTHING_INDEXED)
        options = {
            "history": _turns(body.history),
            "k": body.k,
            "filters": _filters(body.kinds, body.official),
            "flags": body.flags,
        }
        if not body.stream:
            with generation_lock:
                return assistant.answer(body.question, **options).to_dict()
        return StreamingResponse(
            _stream(assistant, generation_lock, body.question, options),
            media_type="text/event-stream",
        )

    @app.post("/feedback", status_code=201)
    def feedback_vote(body: FeedbackRequest) -> dict[str, int]:
        entry = Feedback(**body.model_dump(exclude={"history"}), history=_turns(body.history))
        return {"id": votes.add(entry, server_of(assistant))}

    app.include_router(make_tools_router(assistant))
    return app


def is_empty(assistant: Assistant) -> bool:
    """No committed index generation yet (the server started before the first ingest)."""
    return assistant.retriever.store.generation() == 0


def _turns(history: list[Turn]) -> list[dict[str, str]]:
    return [turn.model_dump() for turn in history]


def _stream(
    assistant: Assistant, lock: threading.Lock, question: str, options: dict[str, Any]
) -> Iterator[str]:
    with lock:
        try:
            for event in assistant.stream(question, **options):
                if event.token is not None:
                    token = event.token
                    yield _sse("token", {"text": token.text, "logprob": token.logprob})
                elif event.kind == "reset":
                    yield _sse("reset", {"reason": event.reason})
                elif event.answer is not None:
                    yield _sse("answer", event.answer.to_dict())
        except Exception as err:  # the status line is gone: report in-band
            yield _sse("error", {"detail": f"{type(err).__name__}: {err}"})
    yield _sse("done", {})
