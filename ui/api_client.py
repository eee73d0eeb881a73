"""An async client of `sciknow serve`'s HTTP API for front ends that run elsewhere.

The Discord bot and the MCP server talk to the engine only through this: `/ask` as
server-sent events, `/feedback`, `/health`, and any JSON endpoint through `get`/`post`.
The MCP server without a `sciknow serve` runs the same API app in its own process and
reaches it through an in-memory `transport` instead of a socket.

Every failure (server down, slow, refusing the token, busy, a malformed stream) becomes
one `ApiError` whose message says what to do and is short enough for a log line; `status`
keeps the HTTP status (None when none came back). Callers decide what a user sees.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # httpx loads with the first client: every `sciknow` verb imports this
    import httpx

TOKEN_ENV = "SCIKNOW_API_TOKEN"
MAX_QUESTION_CHARS = 2000  # the API's limit (serve/web/api.py, AskRequest)
MAX_FLAGS = 500  # the API's limit on flags in a feedback row


class ApiError(Exception):
    """The API could not answer; `retry_after` is set when it said it is busy (429)."""

    def __init__(
        self, message: str, retry_after: float | None = None, status: int | None = None
    ) -> None:
        super().__init__(message)
        self.retry_after = retry_after
        self.status = status


async def sse_events(lines: AsyncIterator[str]) -> AsyncIterator[tuple[str, dict[str, Any]]]:
    """(event, data) pairs from the lines of a server-sent-event stream of JSON data."""
    event, data = "message", []
    async for line in lines:
        if line.startswith("event:"):
            event = line[6:].strip()
        elif line.startswith("data:"):
            data.append(line[5:].lstrip())
        elif not line and data:
            yield event, _decode("\n".join(data))
            event, data = "message", []
    if data:
        yield event, _decode("\n".join(data))


def _decode(data: str) -> dict[str, Any]:
    try:
        value = json.loads(data)
    except json.JSONDecodeError as err:
        raise ApiError(f"malformed event data from the API: {err}") from None
    return value if isinstance(value, dict) else {"value": value}


async def _raise_for_status(response: httpx.Response) -> None:
    if response.status_code < 400:
        return
    await response.aread()
    status = response.status_code
    if status == 401:
        raise ApiError(
            f"sciknow serve at {response.url.scheme}://{response.url.netloc.decode()} refused "
            f"the request (401): set {TOKEN_ENV} to the token it was started with",
            status=status,
        )
    if status == 429:
        retry = response.headers.get("retry-after", "")
        seconds = float(retry) if retry.replace(".", "", 1).isdigit() else 30.0
        raise ApiError("the API is busy (429)", retry_after=seconds, status=status)
    raise ApiError(f"{_detail(response)} (HTTP {status})", status=status)


def _detail(response: httpx.Response) -> str:
    """The API's error as one sentence: FastAPI's `detail` (a 422 lists each failing field),
    else the start of the body."""
    try:
        detail = response.json().get("detail", response.text)
    except (ValueError, AttributeError):
        return response.text.strip()[:300] or response.reason_phrase
    if isinstance(detail, list):
        return "; ".join(
            f"{'.'.join(str(p) for p in item.get('loc', [])[1:])}: {item.get('msg', '')}"
            for item in detail
            if isinstance(item, dict)
        )
    return str(detail)[:300]


class ApiClient:
    """One keep-alive connection pool to `base_url`; `token` is sent as a bearer token."""

    def __init__(
        self,
        base_url: str,
        token: str | None = None,
        timeout: float = 180.0,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        import httpx

        self.base_url = base_url.rstrip("/")
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self._http = httpx.AsyncClient(
            base_url=self.base_url,
            headers=headers,
            timeout=httpx.Timeout(timeout, connect=min(timeout, 10.0)),
            transport=transport,
        )

    async def aclose(self) -> None:
        await self._http.aclose()

    async def _request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        import httpx

        try:
            response = await self._http.request(method, path, **kwargs)
        except httpx.TimeoutException:
            raise ApiError(
                f"sciknow serve at {self.base_url} did not answer {method} {path} in time"
            ) from None
        except httpx.HTTPError as err:
            raise ApiError(
                f"sciknow serve is not reachable at {self.base_url} ({err}): start it with "
                "`sciknow serve`, or point this client's api_url at it"
            ) from None
        await _raise_for_status(response)
        return response

    async def get(self, path: str, **params: Any) -> Any:
        """The JSON body of `GET path` (parameters that are None are left out)."""
        query = {key: value for key, value in params.items() if value is not None}
        return (await self._request("GET", path, params=query)).json()

    async def post(self, path: str, body: dict[str, Any]) -> Any:
        """The JSON body of `POST path` with `body`."""
        return (await self._request("POST", path, json=body)).json()

    async def health(self) -> dict[str, Any]:
        return (await self._request("GET", "/health")).json()

    async def paths(self) -> set[str]:
        """The API's paths, from its OpenAPI schema (what this server offers)."""
        return set((await self._request("GET", "/openapi.json")).json().get("paths", {}))

    async def ask(
        self, question: str, history: list[dict[str, str]], flags: bool = False
    ) -> AsyncIterator[tuple[str, dict[str, Any]]]:
        """The `/ask` stream: `token`, `reset`, `answer`, `error` and `done` events. A question
        over the API's limit is refused here, before any request, never cut."""
        if len(question) > MAX_QUESTION_CHARS:
            raise ApiError(
                f"the question has {len(question):,} characters; the API accepts at most "
                f"{MAX_QUESTION_CHARS:,}",
                status=422,
            )
        body = {
            "question": question,
            "history": history,
            "flags": flags,
            "stream": True,
        }
        import httpx

        try:
            async with self._http.stream("POST", "/ask", json=body) as response:
                await _raise_for_status(response)
                async for event in sse_events(response.aiter_lines()):
                    yield event
        except httpx.HTTPError as err:
            raise ApiError(f"{type(err).__name__} on POST {self.base_url}/ask: {err}") from None

    async def feedback(self, record: dict[str, Any]) -> int:
        """Store a vote (`POST /feedback`); returns the row id."""
        record = {**record, "flags": record.get("flags", [])[:MAX_FLAGS]}
        return int((await self._request("POST", "/feedback", json=record)).json()["id"])
