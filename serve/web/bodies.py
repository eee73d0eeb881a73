"""Request bodies that cannot fill the disk, stall a worker or crash a handler.

`BodyGuard` (plain ASGI, around the whole app) reads each request's body before the app
sees it, whatever its transfer encoding:

- over `max_bytes` → 413, and the app never runs (a `Content-Length` that lies about a
  chunked body, or a chunked body with none, is counted as it arrives);
- not complete within `timeout_s` → 408 (a client that trickles its body);
- a JSON body that Python's parser accepts but JSON does not (`NaN`, `Infinity`, numbers
  too large for a float, lone surrogates such as `"\\ud800"`) → 422 naming the field. Left
  in, they reached handlers and error pages that cannot encode them (500s with long
  tracebacks) and feedback rows that `feedback export` wrote as invalid JSON.

The app then reads the body from memory; later `receive()` calls go to the client, so
handlers still learn when it disconnects.
"""

from __future__ import annotations

import json
import math
import re
from typing import Any

import anyio

from sciknow.serve.web.access import (
    ASGIApp,
    Message,
    Receive,
    Scope,
    Send,
    request_headers,
    send_json,
)

MAX_BODY_BYTES = 64 * 1024
BODY_TIMEOUT_S = 30.0
_SURROGATE = re.compile("[\ud800-\udfff]")


class _TooLarge(Exception):
    pass


class BodyGuard:
    """See the module docstring."""

    def __init__(
        self, app: ASGIApp, max_bytes: int = MAX_BODY_BYTES, timeout_s: float = BODY_TIMEOUT_S
    ) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.timeout_s = timeout_s

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        headers = request_headers(scope)
        length = headers.get("content-length", "")
        too_long = f"body over {self.max_bytes} bytes"
        if length and (not length.isdigit() or int(length) > self.max_bytes):
            return await send_json(send, 413, too_long, [("connection", "close")])
        try:
            with anyio.fail_after(self.timeout_s):
                first = await self._read(receive)
        except _TooLarge:
            return await send_json(send, 413, too_long, [("connection", "close")])
        except TimeoutError:
            detail = f"the request body did not arrive within {self.timeout_s:g} s"
            return await send_json(send, 408, detail, [("connection", "close")])
        if first["type"] == "http.disconnect":
            return None
        if "json" in headers.get("content-type", "") and first["body"]:
            problem = json_problem(first["body"])
            if problem is not None:
                return await _json_422(send, *problem)
        await self.app(scope, _replay(first, receive), send)

    async def _read(self, receive: Receive) -> Message:
        """The whole body as one `http.request` message (or the client's disconnect)."""
        body = bytearray()
        while True:
            message = await receive()
            if message["type"] != "http.request":
                return message
            body += message.get("body", b"")
            if len(body) > self.max_bytes:
                raise _TooLarge
            if not message.get("more_body"):
                return {"type": "http.request", "body": bytes(body), "more_body": False}


def _replay(first: Message, receive: Receive) -> Receive:
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if sent:
            return await receive()
        sent = True
        return first

    return replay


def json_problem(body: bytes) -> tuple[list[str | int], str] | None:
    """Where a JSON body holds what strict JSON cannot, and what: (path, message); None
    when it is fine or not JSON at all (the app reports a syntax error itself)."""
    try:
        data = json.loads(body, parse_constant=float)
    except RecursionError:
        return [], "JSON nested too deeply"
    except ValueError:
        return None
    stack: list[tuple[list[str | int], Any]] = [([], data)]
    while stack:
        path, value = stack.pop()
        if isinstance(value, float) and not math.isfinite(value):
            return path, f"{value} is not a JSON number: send a finite number"
        if isinstance(value, str) and _SURROGATE.search(value):
            return path, "a lone surrogate (\\ud800-\\udfff) is not text: send valid UTF-16 pairs"
        if isinstance(value, dict):
            for key, item in value.items():
                if _SURROGATE.search(key):
                    return path, "a key holds a lone surrogate (\\ud800-\\udfff)"
                stack.append(([*path, key], item))
        elif isinstance(value, list):
            stack.extend(([*path, i], item) for i, item in enumerate(value))
    return None


async def _json_422(send: Send, path: list[str | int], message: str) -> None:
    """A 422 shaped like FastAPI's validation errors: `detail[0].loc` names the field."""
    where = ".".join(map(str, path)) or "the body"
    error = {"type": "json_invalid", "loc": ["body", *path], "msg": f"{where}: {message}"}
    await send_json(send, 422, [error], [])
