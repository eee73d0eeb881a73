"""The HTTP API over a real socket: uvicorn serving the app, the embedded model answering."""

from __future__ import annotations

import copy
import json
import socket
import threading
import time
from collections.abc import Iterator

import httpx
import pytest

pytest.importorskip("llama_cpp", reason="install llama-cpp-python (scripts/install.sh)")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def server(docs_config) -> Iterator[str]:
    import uvicorn

    from sciknow.serve.factory import build_assistant
    from sciknow.serve.web.api import create_app

    config = copy.deepcopy(docs_config)  # the model itself answers, whatever it writes
    config.answer.mode, config.answer.fallback, config.answer.max_tokens = "generative", False, 48
    app = create_app(build_assistant(config))
    port = free_port()
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning")
    uv = uvicorn.Server(config)
    thread = threading.Thread(target=uv.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 60
    while not uv.started:
        assert time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}"
    uv.should_exit = True
    thread.join(timeout=10)


def sse_events(text: str) -> list[tuple[str, dict]]:
    events = []
    for block in text.strip().split("\n\n"):
        lines = dict(line.split(": ", 1) for line in block.splitlines())
        events.append((lines["event"], json.loads(lines["data"])))
    return events


def test_health_and_openapi(server):
    health = httpx.get(f"{server}/health").json()
    assert health["status"] == "ok" and health["documents"] == 7
    assert health["backend"].startswith("transformers")  # the default backend
    schema = httpx.get(f"{server}/openapi.json").json()
    assert {"/ask", "/search", "/health"} <= set(schema["paths"])


def test_search(server):
    results = httpx.get(f"{server}/search", params={"q": "MATAIJ", "k": 2}).json()
    assert results[0]["title"] == "Sparse storage"
    assert results[0]["uri"].endswith("manual/mat/#sparse-storage")
    bad = httpx.get(f"{server}/search", params={"q": "x", "kind": "poem"})
    assert bad.status_code == 422 and "unknown kind" in bad.text


def test_ask_streams_tokens_then_the_cited_answer(server):
    question = {"question": "How do I set the relative tolerance for KSP?", "k": 3}
    reply = httpx.post(f"{server}/ask", json=question, timeout=120)
    assert reply.status_code == 200
    assert reply.headers["content-type"].startswith("text/event-stream")
    events = sse_events(reply.text)
    kinds = [kind for kind, _ in events]
    assert kinds[0] == "token" and kinds[-2:] == ["answer", "done"]
    answer = events[-2][1]
    streamed = "".join(data["text"] for kind, data in events if kind == "token")
    assert answer["text"] in streamed.strip() or streamed.strip().startswith(answer["text"][:20])
    assert not answer["abstained"]
    assert all(t["logprob"] <= 0 for t in answer["tokens"])
    for citation in answer["citations"]:
        assert citation["uri"].startswith("https://petsc.org/release/")
    assert answer["timings"]["ttft_ms"] > 0


def test_ask_json_and_abstention(server):
    reply = httpx.post(
        f"{server}/ask",
        json={"question": "What is the best recipe for sourdough bread?", "stream": False},
        timeout=120,
    )
    answer = reply.json()
    assert answer["abstained"] is True
    assert "don't know" in answer["text"] and answer["citations"]
    assert answer["tokens"] == []


@pytest.mark.parametrize(
    ("body", "status", "message"),
    [
        ({}, 422, "question"),
        ({"question": ""}, 422, "question"),
        ({"question": "x", "k": 0}, 422, "k"),
        ({"question": "x", "history": [{"role": "system", "content": "hi"}]}, 422, "role"),
        ({"question": "x" * 70_000}, 413, "body over"),
    ],
)
def test_malformed_requests_get_clear_4xx(server, body, status, message):
    reply = httpx.post(f"{server}/ask", json=body, timeout=30)
    assert reply.status_code == status
    assert message in reply.text


def test_not_json_is_422(server):
    reply = httpx.post(
        f"{server}/ask", content=b"{not json", headers={"content-type": "application/json"}
    )
    assert reply.status_code == 422


def test_concurrent_requests_queue_on_one_model(server):
    questions = ["Which preconditioner is ILU?", "How do I install without MPI?"] * 2
    replies: list[httpx.Response] = []

    def ask(q: str) -> None:
        replies.append(
            httpx.post(f"{server}/ask", json={"question": q, "stream": False}, timeout=300)
        )

    threads = [threading.Thread(target=ask, args=(q,)) for q in questions]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert [r.status_code for r in replies] == [200] * 4
    assert all(r.json()["text"] for r in replies)


def test_a_replaced_answer_streams_a_reset_event(extractive_config, serve_app):
    """A generated answer that cites nothing is replaced: `reset`, then the quoted answer."""
    from support.backends import ScriptedBackend

    from sciknow.serve.answer import Assistant
    from sciknow.serve.factory import build_retriever
    from sciknow.serve.web.api import create_app

    backend = ScriptedBackend(["Tolerances ", "are ", "magic."])
    config = extractive_config
    assistant = Assistant(build_retriever(config), backend, config.answer, mode="generative")
    url = serve_app(create_app(assistant))
    reply = httpx.post(f"{url}/ask", json={"question": "How do I set the KSP tolerance?"})
    events = sse_events(reply.text)
    kinds = [kind for kind, _ in events]
    reset = kinds.index("reset")
    assert kinds[:reset] == ["token"] * 3 and kinds[-2:] == ["answer", "done"]
    assert "cited none" in events[reset][1]["reason"]
    replacement = "".join(d["text"] for k, d in events[reset + 1 : -2] if k == "token")
    assert replacement.strip() == events[-2][1]["text"] and "magic" not in replacement
