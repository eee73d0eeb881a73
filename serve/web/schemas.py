"""What `/openapi.json` says the API returns: an answer (JSON, or the data of each
server-sent event), a search hit, a stored document.

The handlers return the records' own dicts (`Answer.to_dict`, `Evidence.to_dict`,
`Document.to_dict`), so these shapes document the JSON without reshaping it: clients and
stored files see what they always saw. An answer's `flags` and `citations` are the
`Flag` and `Citation` records of `sciknow/records.py`, so the schema lists every flag kind.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel

from sciknow.records import Answer, Document, Evidence

COMPONENTS = "#/components/schemas/"


@dataclass
class SearchHit(Evidence):
    """A passage `/search` found: its `Evidence` record, the chunk id again as `id`."""

    id: str = ""


class TokenEvent(BaseModel):
    """`event: token`: a generated token, or a word of a quoted answer (no logprob)."""

    text: str
    logprob: float | None


class ResetEvent(BaseModel):
    """`event: reset`: drop the text streamed so far; the replacement's tokens follow."""

    reason: str


class ErrorEvent(BaseModel):
    """`event: error`: the answer failed after the response had started."""

    detail: str


def _event(name: str, data: dict[str, Any]) -> dict[str, Any]:
    return {
        "type": "object",
        "title": f"{name} event",
        "properties": {"event": {"const": name}, "data": data},
        "required": ["event", "data"],
    }


ANSWER_EVENTS = {
    "description": "With `stream` (the default): server-sent events, each an `event:` line "
    "naming it and a `data:` line of JSON, in order: token…, (reset, token…)…, then answer "
    "(the same object as the JSON response) or error, then done.",
    "oneOf": [
        _event("token", TokenEvent.model_json_schema()),
        _event("reset", ResetEvent.model_json_schema()),
        _event("answer", {"$ref": f"{COMPONENTS}Answer"}),
        _event("error", ErrorEvent.model_json_schema()),
        _event("done", {"type": "object"}),
    ],
}
ASK_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {
        "model": Answer,
        "description": "The cited answer: JSON with `stream: false`, else server-sent events.",
        "content": {"text/event-stream": {"schema": ANSWER_EVENTS}},
    },
    503: {"description": "Nothing is indexed yet."},
}
SEARCH_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {"model": list[SearchHit], "description": "The passages found, best first."}
}
DOCUMENT_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {"model": Document, "description": "The whole stored document, `meta` included."},
    404: {"description": "No document has this id."},
}
