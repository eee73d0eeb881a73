"""A small, polite HTTP fetcher for archive crawling (pipermail).

Mail archives are served by volunteers' machines, so every request carries a
User-Agent naming sciknow, requests are spaced by `delay` seconds, and
transient failures (5xx, 429, timeouts, dropped connections) are retried with
exponential backoff before a clear `FetchError` names the URL and the last cause.
A 404 is not transient: it raises `NotFound` at once so callers can fall back.
"""

from __future__ import annotations

import http.client
import logging
import time
import urllib.error
import urllib.request
from collections.abc import Callable

from sciknow.errors import SourceError

log = logging.getLogger(__name__)

USER_AGENT = "sciknow/0.1"


class FetchError(SourceError):
    """A URL could not be fetched, after all retries where retrying made sense."""

    def __init__(self, url: str, reason: str, status: int | None = None) -> None:
        super().__init__(f"GET {url} failed: {reason}")
        self.url = url
        self.status = status


class NotFound(FetchError):
    """The server answered 404: the resource does not exist (no retry)."""


class Fetcher:
    """GET with a User-Agent, a minimum delay between requests, a timeout and retries."""

    def __init__(
        self,
        *,
        delay: float = 1.0,
        timeout: float = 30.0,
        retries: int = 3,
        backoff: float = 2.0,
        user_agent: str = USER_AGENT,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.delay = delay
        self.timeout = timeout
        self.retries = retries
        self.backoff = backoff
        self.user_agent = user_agent
        self._sleep = sleep
        self._last = float("-inf")
        self.requests = 0

    def get(self, url: str) -> bytes:
        """Return the body of `url`; raise `NotFound` on 404, `FetchError` after the last retry."""
        attempt = 0
        while True:
            try:
                return self._once(url)
            except _Transient as err:
                if attempt >= self.retries:
                    raise FetchError(url, f"{err} (after {attempt + 1} attempts)") from None
                wait = self.backoff * 2**attempt
                log.info("GET %s: %s; retrying in %.1fs", url, err, wait)
                self._sleep(wait)
                attempt += 1

    def _once(self, url: str) -> bytes:
        self._sleep(max(0.0, self._last + self.delay - time.monotonic()))
        self._last = time.monotonic()
        self.requests += 1
        request = urllib.request.Request(url, headers={"User-Agent": self.user_agent})
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                return response.read()
        except urllib.error.HTTPError as err:
            if err.code == 404:
                raise NotFound(url, "404 Not Found", 404) from None
            if err.code >= 500 or err.code == 429:
                raise _Transient(f"HTTP {err.code}") from None
            raise FetchError(url, f"HTTP {err.code} {err.reason}", err.code) from None
        except urllib.error.URLError as err:
            raise _Transient(f"connection error: {err.reason}") from None
        except (TimeoutError, ConnectionError, http.client.HTTPException) as err:
            raise _Transient(f"{type(err).__name__}: {err}") from None


class _Transient(Exception):
    """A failure worth retrying."""
