"""`/openapi.json` of the real app documents what `/ask`, `/search` and the tool endpoints
return (the flag kinds enumerated), and the real responses carry the documented fields."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import quote

import httpx
import pytest

REF = "#/components/schemas/"
KINDS = {
    "uncertain_span",
    "support",
    "generated",
    "guard",
    "skipped",
    "unknown_name",
    "removed_name",
    "not_maintainer",
    "compile",
}
QUESTION = "How do I set the relative tolerance for KSP?"


@pytest.fixture(scope="module")
def api(extractive_config, serve_app) -> str:
    from sciknow.serve.factory import build_assistant
    from sciknow.serve.web.api import create_app

    return serve_app(create_app(build_assistant(extractive_config)))


@pytest.fixture(scope="module")
def openapi(api) -> dict[str, Any]:
    return httpx.get(f"{api}/openapi.json").json()


def ok_content(openapi: dict[str, Any], path: str, method: str = "get") -> dict[str, Any]:
    return openapi["paths"][path][method]["responses"]["200"]["content"]


def properties(openapi: dict[str, Any], name: str) -> set[str]:
    return set(openapi["components"]["schemas"][name]["properties"])


def test_the_answer_schema_enumerates_the_flag_kinds(openapi):
    schemas = openapi["components"]["schemas"]
    ask = ok_content(openapi, "/ask", "post")
    assert ask["application/json"]["schema"] == {"$ref": f"{REF}Answer"}
    answer = schemas["Answer"]["properties"]
    assert answer["flags"]["items"] == {"$ref": f"{REF}Flag"}
    assert answer["citations"]["items"] == {"$ref": f"{REF}Citation"}
    assert answer["tokens"]["items"] == {"$ref": f"{REF}TokenInfo"}
    assert set(schemas["Flag"]["properties"]["type"]["enum"]) == KINDS
    assert schemas["Flag"]["required"] == ["type"]
    assert {"n", "chunk_id", "uri", "spans"} <= set(schemas["Citation"]["required"])
    events = ask["text/event-stream"]["schema"]["oneOf"]
    names = [event["properties"]["event"]["const"] for event in events]
    assert names == ["token", "reset", "answer", "error", "done"]
    assert events[2]["properties"]["data"] == {"$ref": f"{REF}Answer"}
    assert set(events[0]["properties"]["data"]["properties"]) == {"text", "logprob"}


def test_search_and_tool_responses_reference_their_models(openapi):
    search = ok_content(openapi, "/search")["application/json"]["schema"]
    assert search["type"] == "array" and search["items"] == {"$ref": f"{REF}SearchHit"}
    tools = {
        "/lookup": "LookupResponse",
        "/examples": "ExamplesResponse",
        "/documents/{doc_id}": "Document",
    }
    for path, model in tools.items():
        schema = ok_content(openapi, path)["application/json"]["schema"]
        assert schema == {"$ref": f"{REF}{model}"}, path
    verify = ok_content(openapi, "/verify", "post")["application/json"]["schema"]
    assert verify == {"$ref": f"{REF}VerifyResponse"}


def test_real_responses_carry_the_documented_fields(api, openapi):
    body = {"question": QUESTION, "stream": False, "flags": True}
    answer = httpx.post(f"{api}/ask", json=body, timeout=120).json()
    assert set(answer) == properties(openapi, "Answer")
    assert answer["citations"] and answer["flags"]
    for citation in answer["citations"]:
        assert set(citation) == properties(openapi, "Citation")
    for flag in answer["flags"]:
        assert flag["type"] in KINDS and set(flag) <= properties(openapi, "Flag")
    hits = httpx.get(f"{api}/search", params={"q": "KSP tolerance", "k": 3}).json()
    assert hits and all(set(hit) == properties(openapi, "SearchHit") for hit in hits)
    document = httpx.get(f"{api}/documents/{quote(hits[0]['doc_id'])}").json()
    assert set(document) == properties(openapi, "Document")


def test_streamed_events_are_the_documented_ones(api, openapi):
    reply = httpx.post(f"{api}/ask", json={"question": QUESTION}, timeout=120)
    events = ok_content(openapi, "/ask", "post")["text/event-stream"]["schema"]["oneOf"]
    documented = {event["properties"]["event"]["const"] for event in events}
    for block in reply.text.strip().split("\n\n"):
        name, data = (line.split(": ", 1)[1] for line in block.splitlines())
        assert name in documented
        if name == "token":
            assert set(json.loads(data)) == {"text", "logprob"}
