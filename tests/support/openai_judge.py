"""A scripted OpenAI-compatible judge for the answer-evaluation tests (served over a real
socket by the `serve_app` fixture).

`/v1/chat/completions` reads the JSON schema that instructor's JSON mode puts in the system
message and answers an instance of it: statements, verdicts of 1, a rating of 4, a
question, as a capable judge might. `JudgeState` scripts misbehaviour by schema title:
`garbage` titles get prose instead of JSON, `slow` titles are answered after `delay`
seconds. `/v1/embeddings` returns hashed bag-of-words vectors (similar texts, similar
vectors). Every chat request is logged with its schema title and user message.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import math
import re
import time
from dataclasses import dataclass, field
from typing import Any

from fastapi import FastAPI, Request

DIMENSION = 32
STATEMENT = "KSPSetTolerances sets the relative tolerance of the KSP solver."


@dataclass
class JudgeState:
    garbage: set[str] = field(default_factory=set)
    slow: set[str] = field(default_factory=set)
    delay: float = 0.0  # seconds, for `slow` titles ("*" slows every request)
    requests: list[tuple[str, str]] = field(default_factory=list)  # (schema title, user text)


def _schema(system: str) -> dict[str, Any]:
    start = system.index("{", system.index("json_schema"))
    return json.JSONDecoder().raw_decode(system[start:])[0]


def fill(schema: dict[str, Any], defs: dict[str, Any], name: str = "") -> Any:
    """A plausible instance of a JSON schema (pydantic's dialect)."""
    if "$ref" in schema:
        return fill(defs[schema["$ref"].rsplit("/", 1)[-1]], defs, name)
    if "anyOf" in schema:
        return fill(next(s for s in schema["anyOf"] if s.get("type") != "null"), defs, name)
    kind = schema.get("type")
    if kind == "object":
        return {key: fill(value, defs, key) for key, value in schema["properties"].items()}
    if kind == "array":
        return [fill(schema["items"], defs, name)]
    if kind == "integer":
        return {"rating": 4, "noncommittal": 0}.get(name, 1)
    if kind == "number":
        return 1.0
    if kind == "boolean":
        return True
    if name == "question":
        return "How do I set the relative tolerance of the KSP solver?"
    return STATEMENT if name in ("statement", "statements") else "supported by the context"


def embed(text: str) -> list[float]:
    vector = [0.0] * DIMENSION
    for word in re.findall(r"\w+", text.lower()):
        vector[int(hashlib.md5(word.encode()).hexdigest(), 16) % DIMENSION] += 1.0
    norm = math.sqrt(sum(v * v for v in vector)) or 1.0
    return [v / norm for v in vector]


def judge_app(state: JudgeState) -> FastAPI:
    app = FastAPI()

    @app.post("/v1/chat/completions")
    async def chat(request: Request) -> dict[str, Any]:
        body = await request.json()
        messages = body["messages"]
        system = next((m["content"] for m in messages if m["role"] == "system"), "")
        schema = _schema(system)
        title = schema.get("title", "")
        user = "\n".join(m["content"] for m in messages if m["role"] == "user")
        state.requests.append((title, user))
        if title in state.slow or "*" in state.slow:
            await asyncio.sleep(state.delay)
        if title in state.garbage:
            content = "I am not sure what you mean; here are my thoughts instead."
        else:
            content = json.dumps(fill(schema, schema.get("$defs", {})))
        return {
            "id": f"chatcmpl-{len(state.requests)}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": body["model"],
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": content},
                    "finish_reason": "stop",
                }
            ],
            "usage": {"prompt_tokens": 10, "completion_tokens": 10, "total_tokens": 20},
        }

    @app.post("/v1/embeddings")
    async def embeddings(request: Request) -> dict[str, Any]:
        body = await request.json()
        texts = body["input"] if isinstance(body["input"], list) else [body["input"]]
        return {
            "object": "list",
            "model": body["model"],
            "data": [
                {"object": "embedding", "index": i, "embedding": embed(t)}
                for i, t in enumerate(texts)
            ],
            "usage": {"prompt_tokens": 1, "total_tokens": 1},
        }

    return app
