"""A real `sciknow serve` that no client can stall: streams abandoned at any point release
the model, SIGTERM stops it mid-answer, and /health tells a wedged engine."""

from __future__ import annotations

import asyncio
import json
import signal
import socket
import threading
import time
from urllib.parse import urlsplit

import httpx
import pytest

pytest.importorskip("llama_cpp", reason="install llama-cpp-python (scripts/install.sh)")

KSP = "How do I set the relative tolerance for KSP?"
GENERATIVE = {  # the embedded model writes every answer: a stream takes seconds
    "SCIKNOW_MODELS__BACKEND": "embedded",
    "SCIKNOW_ANSWER__MODE": "generative",
    "SCIKNOW_ANSWER__FALLBACK": "false",
    "SCIKNOW_ANSWER__MAX_TOKENS": "96",
}


def ask_bytes(url: str, question: str = KSP) -> bytes:
    """A raw streamed `POST /ask`, as a client that may hang up at any byte sends it."""
    body = json.dumps({"question": question, "stream": True}).encode()
    host = urlsplit(url).netloc
    head = (
        f"POST /ask HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    )
    return head.encode() + body


def abandon(url: str, until: bytes | None) -> None:
    """Send a streamed ask, read until `until` appears (None: read nothing), hang up."""
    parts = urlsplit(url)
    with socket.create_connection((parts.hostname, parts.port), timeout=120) as sock:
        sock.sendall(ask_bytes(url))
        seen = b""
        while until is not None and until not in seen:
            chunk = sock.recv(4096)
            assert chunk, f"the server closed before {until!r}"
            seen += chunk


@pytest.fixture(scope="module")
def generative(docs_config, serve_processes) -> str:
    return serve_processes.start(docs_config.data_path, GENERATIVE)


def test_abandoned_streams_do_not_hold_the_model(generative):
    warm = httpx.post(f"{generative}/ask", json={"question": KSP, "stream": False}, timeout=300)
    assert warm.status_code == 200  # the model is loaded
    abandon(generative, None)  # before any byte of the answer
    abandon(generative, b"\r\n\r\n")  # after the headers
    abandon(generative, b"event: token")  # after the first token
    started = time.monotonic()
    reply = httpx.post(f"{generative}/ask", json={"question": KSP, "stream": False}, timeout=120)
    waited = time.monotonic() - started
    assert reply.status_code == 200 and reply.json()["text"]
    assert waited < 30, f"the next answer waited {waited:.1f} s"
    assert httpx.get(f"{generative}/health").json()["status"] == "ok"


def test_an_abandoned_chat_answer_does_not_hold_the_model(generative):
    """The web chat's API (Gradio's queue runs the answer, not the client's reading)."""
    call = {"data": [KSP, False, [], "all", 4]}
    for _ in range(2):
        event = httpx.post(f"{generative}/gradio_api/call/ask", json=call).json()["event_id"]
        with httpx.stream("GET", f"{generative}/gradio_api/call/ask/{event}", timeout=120) as s:
            next(line for line in s.iter_lines() if "sk-streaming" in line)
    started = time.monotonic()
    reply = httpx.post(f"{generative}/ask", json={"question": KSP, "stream": False}, timeout=120)
    assert reply.status_code == 200 and time.monotonic() - started < 60


def test_sigterm_during_a_stream_exits_promptly(docs_config, serve_processes):
    url = serve_processes.start(docs_config.data_path, GENERATIVE)
    process = serve_processes.processes[url]
    streaming = threading.Event()

    def listen() -> None:
        try:
            body = {"question": KSP, "stream": True}
            with httpx.stream("POST", f"{url}/ask", json=body, timeout=300) as reply:
                for line in reply.iter_lines():
                    if line.startswith("event: token"):
                        streaming.set()
        except httpx.HTTPError:
            pass  # the server went away, as it should

    threading.Thread(target=listen, daemon=True).start()
    assert streaming.wait(timeout=300), "no token arrived"
    process.send_signal(signal.SIGTERM)
    started = time.monotonic()
    process.wait(timeout=15)
    assert time.monotonic() - started < 10
    serve_processes.processes.pop(url)


def test_health_reports_a_wedged_engine(extractive_config, serve_app):
    """An answer silent for longer than `stall_s` turns /health into 503 "stalled"."""
    from support.backends import ScriptedBackend

    from sciknow.config import ServeConfig
    from sciknow.serve.answer import Assistant
    from sciknow.serve.factory import build_retriever
    from sciknow.serve.web.api import create_app

    backend = ScriptedBackend(["Use ", "KSPSetTolerances() ", "[1]."], delay=3.0)
    config = extractive_config
    assistant = Assistant(build_retriever(config), backend, config.answer, mode="generative")
    url = serve_app(create_app(assistant, serve=ServeConfig(stall_s=1.0)))
    assert httpx.get(f"{url}/health").json()["status"] == "ok"
    asking = threading.Thread(
        target=httpx.post, args=(f"{url}/ask",), kwargs={"json": {"question": KSP}, "timeout": 60}
    )
    asking.start()
    time.sleep(2.0)
    health = httpx.get(f"{url}/health")
    assert health.status_code == 503 and health.json()["status"] == "stalled"
    assert "silent for" in health.json()["detail"]
    asking.join(timeout=60)
    assert httpx.get(f"{url}/health").json()["status"] == "ok"


def test_a_cancelled_run_stops_the_model(extractive_config):
    """Leaving a stream closes the model's generation at its next token."""
    from support.backends import ScriptedBackend

    from sciknow.serve.answer import Assistant
    from sciknow.serve.factory import build_retriever
    from sciknow.serve.web.engine import Engine

    backend = ScriptedBackend(["Use KSPSetTolerances() ", "[1]. "] * 50, delay=0.05)
    config = extractive_config
    engine = Engine(Assistant(build_retriever(config), backend, config.answer, "generative"))

    async def first_token_then_leave() -> None:
        events = engine.events(engine.start(KSP, {}))
        async for event in events:
            if event.token is not None:
                break
        await events.aclose()

    asyncio.run(first_token_then_leave())
    assert backend.closed_early.wait(timeout=10)
    assert engine.lock.acquire(timeout=10)  # and the lock is free again
    engine.lock.release()


def test_the_lock_is_taken_in_arrival_order_and_left_when_cancelled():
    from sciknow.serve.web.engine import WatchedLock

    lock = WatchedLock()
    assert lock.acquire() and lock.silent_for() is not None
    order: list[int] = []
    gave_up = threading.Event()

    def wait(n: int, cancelled: threading.Event | None) -> None:
        if lock.acquire(cancelled=cancelled):
            order.append(n)
            lock.release()

    waiters = []
    for n in range(5):
        waiters.append(threading.Thread(target=wait, args=(n, gave_up if n == 2 else None)))
        waiters[-1].start()
        time.sleep(0.05)  # arrive one after the other
    gave_up.set()
    time.sleep(0.5)
    lock.release()
    for waiter in waiters:
        waiter.join(timeout=10)
    assert order == [0, 1, 3, 4]
    assert lock.silent_for() is None and lock.acquire(blocking=False)
