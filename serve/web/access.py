"""Who may call `sciknow serve`, and how often: the API token and per-client limits.

Both are plain ASGI middleware around the whole app, so they cover the HTTP API, the tool
routes and the web chat mounted at `/` alike.

- `TokenGate`: with a token, every request needs `Authorization: Bearer <token>` (401
  otherwise). A browser cannot add that header to a page load, so the page asks for the
  token once at `/auth` and keeps a cookie derived from it (HMAC, HttpOnly, SameSite=Lax):
  the cookie opens this server only and does not reveal the token. A client that sends
  wrong tokens (header, cookie or form) gets 429 past `failures_per_minute` of them, so
  guessing runs at a few tries a minute instead of hundreds a second.
- `ClientLimits`: per client address and rule, at most `concurrent` requests in flight
  and `per_minute` started in any 60 s; past either, 429 with `Retry-After`. Rules cover
  `POST /ask`, `/feedback`, `/verify` and the web chat's API (`POST /gradio_api/...`).

The client is the connecting address (`scope["client"]`). `sciknow serve` lets uvicorn
replace it from `X-Forwarded-For` only when the connection comes from a configured
trusted proxy (`[serve] trusted_proxies`); otherwise a client could name a new address
on every request and never be limited.

Limits are counted in each process and shared with no other: behind a proxy that spreads
clients over N replicas (`[serve] database_url` shares their feedback, not their counts), a
client may start up to N times `per_minute`; a proxy that sends each client to one replica
(by address) keeps the configured numbers.
"""

from __future__ import annotations

import hashlib
import hmac
import html
import ipaddress
import json
import math
import threading
import time
from collections import deque
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

AUTH_PATH = "/auth"
COOKIE = "sciknow_session"
COOKIE_DAYS = 30
MAX_FORM_BYTES = 4096
WINDOW_S = 60.0
MAX_CLIENTS = 4096  # idle clients are forgotten past this many
BUSY_RETRY_S = 5  # Retry-After when a client's concurrent requests are all in flight
FAILURES_PER_MINUTE = 10  # wrong tokens a client may send in 60 s before 429


def is_loopback(host: str) -> bool:
    """Whether binding `host` keeps the server on this machine (no token needed)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def session_value(token: str) -> str:
    """The cookie that stands for `token` on this server."""
    return hmac.new(token.encode(), b"sciknow web session", hashlib.sha256).hexdigest()


async def _respond(
    send: Send, status: int, body: bytes, content_type: str, headers: list[tuple[str, str]]
) -> None:
    raw = [(b"content-type", content_type.encode()), (b"content-length", b"%d" % len(body))]
    raw += [(k.encode(), v.encode()) for k, v in headers]
    await send({"type": "http.response.start", "status": status, "headers": raw})
    await send({"type": "http.response.body", "body": body})


async def send_json(send: Send, status: int, detail: Any, headers: list[tuple[str, str]]) -> None:
    """A JSON error `{"detail": ...}` (FastAPI's shape)."""
    body = json.dumps({"detail": detail}).encode()
    await _respond(send, status, body, "application/json", headers)


def request_headers(scope: Scope) -> dict[str, str]:
    return {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}


def _cookies(header: str) -> dict[str, str]:
    pairs = (part.strip().partition("=") for part in header.split(";"))
    return {name: value for name, _, value in pairs if name}


_LOGIN_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>sciknow: sign in</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>body{{font:16px system-ui,sans-serif;max-width:28rem;margin:12vh auto;padding:0 1rem}}
input{{font:inherit;width:100%;padding:.5rem;margin:.5rem 0;box-sizing:border-box}}
button{{font:inherit;padding:.5rem 1rem}}.error{{color:#b00020}}</style></head>
<body><h1>sciknow</h1>
<p>This server needs its API token (the <code>--token</code> or
<code>SCIKNOW_API_TOKEN</code> it was started with). You are asked once per browser.</p>
<form method="post" action="{action}"><label for="token">API token</label>
<input id="token" name="token" type="password" autocomplete="current-password" autofocus>
<button type="submit">Open the chat</button></form>{error}</body></html>"""


class TokenGate:
    """Refuses requests without the token (header or session cookie); serves `/auth`;
    slows down clients that send wrong tokens."""

    def __init__(
        self, app: ASGIApp, token: str, failures_per_minute: int = FAILURES_PER_MINUTE
    ) -> None:
        self.app = app
        self.token = token
        self.session = session_value(token)
        self.failures = FailureThrottle(failures_per_minute)

    def bearer(self, headers: dict[str, str]) -> bool | None:
        """True for the token, False for a wrong one, None when no bearer token was sent."""
        scheme, _, given = headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer":
            return None
        return hmac.compare_digest(given.encode(), self.token.encode())

    def has_session(self, headers: dict[str, str]) -> bool:
        """The cookie `/auth` set (an HMAC of the token: too long to guess, so a stale one
        left from an earlier token is not counted as a guess)."""
        cookie = _cookies(headers.get("cookie", "")).get(COOKIE, "")
        return hmac.compare_digest(cookie.encode(), self.session.encode())

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            return await self.app(scope, receive, send)
        client = client_of(scope)
        wait = self.failures.wait(client)
        if wait is not None:  # checked first: a throttled client's guesses are not tried
            if scope["type"] == "websocket":
                return await send({"type": "websocket.close", "code": 1008})
            detail = f"too many wrong tokens from {client}; retry in {wait} s"
            return await send_json(send, 429, detail, [("retry-after", str(wait))])
        headers = request_headers(scope)
        if scope["type"] == "http" and scope["path"] == AUTH_PATH:
            return await self._auth(scope, receive, send)
        bearer = self.bearer(headers)
        if bearer or (bearer is None and self.has_session(headers)):
            return await self.app(scope, receive, send)
        if bearer is False:
            self.failures.failed(client)
        if scope["type"] == "websocket":
            return await send({"type": "websocket.close", "code": 1008})
        if scope["method"] == "GET" and "text/html" in headers.get("accept", ""):
            location = f"{scope.get('root_path', '')}{AUTH_PATH}"
            return await _respond(send, 303, b"", "text/plain", [("location", location)])
        await send_json(
            send,
            401,
            "this server needs its API token: send Authorization: Bearer <token>",
            [("www-authenticate", 'Bearer realm="sciknow"')],
        )

    async def _auth(self, scope: Scope, receive: Receive, send: Send) -> None:
        """GET: the token form. POST: check the token, set the session cookie, go to `/`."""
        root = scope.get("root_path", "")
        if scope["method"] != "POST":
            return await self._page(send, root, "", 200)
        form = await _read_form(receive)
        if form is None:
            return await send_json(send, 413, f"form over {MAX_FORM_BYTES} bytes", [])
        given = form.get("token", [""])[0]
        if not hmac.compare_digest(given.encode(), self.token.encode()):
            self.failures.failed(client_of(scope))
            return await self._page(send, root, "That is not this server's token.", 401)
        secure = "; Secure" if scope.get("scheme") == "https" else ""
        cookie = (
            f"{COOKIE}={self.session}; Path=/; Max-Age={COOKIE_DAYS * 86400}; HttpOnly; "
            f"SameSite=Lax{secure}"
        )
        headers = [("location", f"{root}/"), ("set-cookie", cookie)]
        await _respond(send, 303, b"", "text/plain", headers)

    @staticmethod
    async def _page(send: Send, root: str, error: str, status: int) -> None:
        note = f'<p class="error" role="alert">{html.escape(error)}</p>' if error else ""
        page = _LOGIN_PAGE.format(action=html.escape(f"{root}{AUTH_PATH}"), error=note)
        await _respond(send, status, page.encode(), "text/html; charset=utf-8", [])


async def _read_form(receive: Receive) -> dict[str, list[str]] | None:
    """An urlencoded body, or None when it is over `MAX_FORM_BYTES`."""
    body = b""
    while True:
        message = await receive()
        body += message.get("body", b"")
        if len(body) > MAX_FORM_BYTES:
            return None
        if not message.get("more_body"):
            return parse_qs(body.decode("utf-8", "replace"))


@dataclass
class _Client:
    active: int = 0
    started: deque[float] = field(default_factory=deque)


class RateLimiter:
    """Per-client counts of requests in flight and started in the last minute, in this
    process only (per replica; see the module docstring)."""

    def __init__(self, concurrent: int, per_minute: int) -> None:
        self.concurrent = concurrent
        self.per_minute = per_minute
        self._clients: dict[str, _Client] = {}
        self._lock = threading.Lock()

    def acquire(self, client: str, now: float | None = None) -> int | None:
        """Count a new request; None when it may go on, else the seconds to wait."""
        now = time.monotonic() if now is None else now
        with self._lock:
            if len(self._clients) > MAX_CLIENTS:
                self._forget_idle(now)
            state = self._clients.setdefault(client, _Client())
            while state.started and now - state.started[0] >= WINDOW_S:
                state.started.popleft()
            if len(state.started) >= self.per_minute:
                return max(1, math.ceil(WINDOW_S - (now - state.started[0])))
            if state.active >= self.concurrent:
                return BUSY_RETRY_S
            state.active += 1
            state.started.append(now)
            return None

    def release(self, client: str) -> None:
        with self._lock:
            self._clients[client].active -= 1

    def _forget_idle(self, now: float) -> None:
        idle = [
            name
            for name, state in self._clients.items()
            if not state.active and (not state.started or now - state.started[-1] >= WINDOW_S)
        ]
        for name in idle:
            del self._clients[name]


class FailureThrottle:
    """Wrong tokens per client in the last minute."""

    def __init__(self, per_minute: int) -> None:
        self.per_minute = per_minute
        self._failures: dict[str, deque[float]] = {}
        self._lock = threading.Lock()

    def wait(self, client: str, now: float | None = None) -> int | None:
        """None while the client may try again, else the seconds until it may."""
        now = time.monotonic() if now is None else now
        with self._lock:
            failures = self._failures.get(client)
            if failures is None:
                return None
            while failures and now - failures[0] >= WINDOW_S:
                failures.popleft()
            if len(failures) < self.per_minute:
                return None
            return max(1, math.ceil(WINDOW_S - (now - failures[0])))

    def failed(self, client: str, now: float | None = None) -> None:
        now = time.monotonic() if now is None else now
        with self._lock:
            if len(self._failures) > MAX_CLIENTS:
                self._failures = {
                    name: times
                    for name, times in self._failures.items()
                    if times and now - times[-1] < WINDOW_S
                }
            self._failures.setdefault(client, deque()).append(now)


@dataclass(frozen=True)
class Rule:
    """The requests one `RateLimiter` counts: POSTs to `paths` or under `prefixes`."""

    limiter: RateLimiter
    paths: tuple[str, ...] = ()
    prefixes: tuple[str, ...] = ()

    def matches(self, path: str) -> bool:
        return path in self.paths or path.startswith(self.prefixes)


def client_of(scope: Scope) -> str:
    """The address limits are counted by: the connecting one, or the one a trusted proxy
    forwarded (uvicorn sets `scope["client"]` so; see the module docstring)."""
    return (scope.get("client") or ("unknown", 0))[0]


class ClientLimits:
    """Applies the first matching `Rule` to each POST, from the request to its last byte."""

    def __init__(self, app: ASGIApp, rules: list[Rule]) -> None:
        self.app = app
        self.rules = rules

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        rule = None
        if scope["type"] == "http" and scope["method"] == "POST":
            rule = next((r for r in self.rules if r.matches(scope["path"])), None)
        if rule is None:
            return await self.app(scope, receive, send)
        client = client_of(scope)
        limiter = rule.limiter
        wait = limiter.acquire(client)
        if wait is not None:
            detail = (
                f"too many requests to {scope['path']} from {client}: at most "
                f"{limiter.concurrent} at once and {limiter.per_minute} a minute; "
                f"retry in {wait} s"
            )
            return await send_json(send, 429, detail, [("retry-after", str(wait))])
        try:
            await self.app(scope, receive, send)
        finally:
            limiter.release(client)
