"""A fake HTTP server on 127.0.0.1: a function from request to reply, served in a thread.

Fakes of remote services (GitLab, a mail archive, a flaky proxy in front of vLLM) are
then plain objects with a `handle(request) -> Reply` method, tested by the real HTTP
clients sciknow uses (urllib, httpx, python-gitlab) over a real socket.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlsplit


@dataclass
class Request:
    """One request as the fake sees it: `query` keeps the last value of each key, `headers`
    have lower-case names."""

    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: bytes

    def form(self) -> dict[str, Any]:
        """The body as python-gitlab and friends send it: JSON, or form-encoded fields."""
        if self.body.strip().startswith(b"{"):
            return json.loads(self.body)
        return dict(parse_qsl(self.body.decode()))


@dataclass
class Reply:
    """What to answer: `body` is sent as JSON unless it is bytes; after `delay` seconds."""

    status: int = 200
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0

    def content(self) -> tuple[bytes, dict[str, str]]:
        if isinstance(self.body, bytes):
            return self.body, self.headers
        return json.dumps(self.body).encode(), {"Content-Type": "application/json", **self.headers}


Handle = Callable[[Request], Reply]


def _handler_class(handle: Handle) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def _serve(self) -> None:
            url = urlsplit(self.path)
            length = int(self.headers.get("Content-Length") or 0)
            request = Request(
                self.command,
                url.path,
                dict(parse_qsl(url.query)),
                {key.lower(): value for key, value in self.headers.items()},
                self.rfile.read(length) if length else b"",
            )
            reply = handle(request)
            time.sleep(reply.delay)
            body, headers = reply.content()
            try:
                self.send_response(reply.status)
                self.send_header("Content-Length", str(len(body)))
                for key, value in headers.items():
                    self.send_header(key, value)
                self.end_headers()
                self.wfile.write(body)
            except (BrokenPipeError, ConnectionResetError):  # the client gave up waiting
                pass

        do_GET = do_POST = do_PUT = do_DELETE = _serve

        def log_message(self, *args: object) -> None:
            pass

    return Handler


@contextmanager
def serving(handle: Handle) -> Iterator[str]:
    """Serve `handle` on a free port of 127.0.0.1 until the block ends; yields the base
    URL (`http://127.0.0.1:PORT`)."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler_class(handle))
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)
