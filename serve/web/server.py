"""How `sciknow serve` runs uvicorn: deadlines for slow clients, the proxies it trusts,
and a stop within seconds.

uvicorn times out idle keep-alive connections but not a client that trickles a request's
head (slowloris): each such connection is held for as long as the client likes.
`HeaderDeadline` closes a connection whose request head has not arrived
`header_timeout_s` after it connected or after its previous response; bodies have their
own deadline in `BodyGuard` (408). Slow readers of a streamed answer hold only their
socket: the answer runs to its end without them (`serve/web/engine.py`).
"""

from __future__ import annotations

import asyncio
from typing import Any

import uvicorn
from fastapi import FastAPI
from uvicorn.protocols.http.h11_impl import H11Protocol

from sciknow.config import ServeConfig

GRACEFUL_SHUTDOWN_S = 3  # SIGTERM: open streams get this long, then they are cancelled
KEEP_ALIVE_S = 5


class HeaderDeadline(H11Protocol):
    """uvicorn's h11 protocol with a deadline for each request head (module docstring)."""

    header_timeout_s = 10.0

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._deadline: asyncio.TimerHandle | None = None
        self._arm()

    def _arm(self) -> None:
        self._waiting_past = self.cycle  # a new cycle means a request head arrived
        self._deadline = self.loop.call_later(self.header_timeout_s, self._expire)

    def _disarm(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    def handle_events(self) -> None:
        super().handle_events()
        if self._deadline is not None and self.cycle is not self._waiting_past:
            self._disarm()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if not self.transport.is_closing():
            self._disarm()
            self._arm()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def _expire(self) -> None:
        self._deadline = None
        cycle = self.cycle
        answering = cycle is not self._waiting_past or (
            cycle is not None and not cycle.response_complete
        )
        if not answering and not self.transport.is_closing():
            self.transport.close()


def uvicorn_options(settings: ServeConfig) -> dict[str, Any]:
    """uvicorn's settings for `sciknow serve` (docs/operations.md, "Running it for a team")."""
    protocol = type(
        "HeaderDeadline", (HeaderDeadline,), {"header_timeout_s": settings.header_timeout_s}
    )
    trusted = settings.trusted_proxies
    return {
        "http": protocol,
        # X-Forwarded-For is applied only from these; without any it is ignored, so a
        # client cannot pick the address its limits are counted by.
        "proxy_headers": bool(trusted),
        "forwarded_allow_ips": trusted or None,
        "timeout_keep_alive": KEEP_ALIVE_S,
        "timeout_graceful_shutdown": GRACEFUL_SHUTDOWN_S,
    }


def run(app: FastAPI, host: str, port: int, settings: ServeConfig, log_level: str) -> None:
    """Serve `app` until SIGINT or SIGTERM."""
    uvicorn.run(app, host=host, port=port, log_level=log_level, **uvicorn_options(settings))
