"""Limits that hold on a real `sciknow serve`: bodies of any transfer encoding, per-client
limits no header can sidestep, the chat's own API, wrong tokens, JSON that strict JSON
forbids, and clients that trickle their requests.

Each test speaks from its own loopback address (127.0.0.0/8 is all this machine), so
each is a client of its own for the limits.
"""

from __future__ import annotations

import json
import select
import socket
import time
from urllib.parse import urlsplit

import httpx
import pytest
from support.feedback import SERVER, vote

from sciknow.serve.web.feedback import FILE_NAME, FeedbackStore

TOKEN = "limits-test-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
PROXY = "127.0.0.6"  # the one trusted proxy
VOTE = {
    "question": "How do I set KSP tolerances?",
    "answer": "KSPSetTolerances() [1].",
    "vote": "up",
}
LIMITS = {
    "SCIKNOW_API_TOKEN": TOKEN,
    "SCIKNOW_ANSWER__MODE": "extractive",
    "SCIKNOW_SERVE__FEEDBACK_PER_MINUTE": "3",
    "SCIKNOW_SERVE__VERIFY_PER_MINUTE": "3",
    "SCIKNOW_SERVE__CHAT_PER_MINUTE": "3",
    "SCIKNOW_SERVE__TOKEN_FAILURES_PER_MINUTE": "3",
    "SCIKNOW_SERVE__TRUSTED_PROXIES": PROXY,
    "SCIKNOW_SERVE__HEADER_TIMEOUT_S": "1",
    "SCIKNOW_SERVE__BODY_TIMEOUT_S": "1",
}


@pytest.fixture(scope="module")
def server(docs_config, serve_processes, tmp_path_factory) -> tuple[str, FeedbackStore]:
    import shutil

    data = tmp_path_factory.mktemp("limits") / "data"  # its own feedback.sqlite
    shutil.copytree(docs_config.data_path, data)
    return serve_processes.start(data, LIMITS), FeedbackStore(data / FILE_NAME)


def client(address: str, token: bool = True) -> httpx.Client:
    """An HTTP client whose requests leave from `address`."""
    transport = httpx.HTTPTransport(local_address=address)
    return httpx.Client(transport=transport, headers=AUTH if token else {}, timeout=60)


def connect(url: str, address: str) -> socket.socket:
    parts = urlsplit(url)
    sock = socket.socket()
    sock.settimeout(30)
    sock.bind((address, 0))
    sock.connect((parts.hostname, parts.port))
    return sock


def response_of(sock: socket.socket) -> bytes:
    data = b""
    while chunk := sock.recv(65536):
        data += chunk
    return data


def test_a_chunked_body_over_the_limit_is_413_and_writes_nothing(server):
    url, votes = server
    before = len(votes.rows())
    sock = connect(url, "127.0.0.2")
    head = (
        f"POST /feedback HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {TOKEN}\r\n"
        "Content-Type: application/json\r\nContent-Length: 10\r\n"
        "Transfer-Encoding: chunked\r\n\r\n"
    )
    sock.sendall(head.encode())
    for chunk in (b'{"question": "' + b"x" * 40_000, b"y" * 40_000):  # no last chunk: the
        sock.sendall(b"%x\r\n%s\r\n" % (len(chunk), chunk))  # body never ends
    reply = response_of(sock)
    sock.close()
    assert reply.startswith(b"HTTP/1.1 413"), reply[:200]
    assert b"body over 65536 bytes" in reply
    assert len(votes.rows()) == before
    small = client("127.0.0.2").post(
        f"{url}/feedback", content=iter([json.dumps(VOTE).encode()]),
        headers={"content-type": "application/json"},
    )  # fmt: skip
    assert small.status_code == 201  # a chunked body under the limit is read as any other


def test_a_spoofed_forwarded_for_is_limited(server):
    url, _ = server
    with client("127.0.0.3") as spoofer:
        statuses = [
            spoofer.post(
                f"{url}/feedback", json=VOTE, headers={"X-Forwarded-For": f"10.9.8.{n}"}
            ).status_code
            for n in range(5)
        ]
    assert statuses == [201, 201, 201, 429, 429]


def test_a_trusted_proxy_forwards_each_client(server):
    url, _ = server
    with client(PROXY) as proxy:
        statuses = [
            proxy.post(
                f"{url}/feedback", json=VOTE, headers={"X-Forwarded-For": f"10.1.2.{n}"}
            ).status_code
            for n in range(5)
        ]
        assert statuses == [201] * 5  # five clients behind one proxy, one vote each
        same = [
            proxy.post(f"{url}/feedback", json=VOTE, headers={"X-Forwarded-For": "10.3.3.3"})
            for _ in range(4)
        ]
    assert [r.status_code for r in same] == [201, 201, 201, 429]
    assert "from 10.3.3.3" in same[-1].json()["detail"]


def test_the_chat_api_is_limited(server):
    url, _ = server
    call = {"data": ["How do I set KSP tolerances?", False, [], "all", 4]}
    with client("127.0.0.4") as chat:
        replies = [chat.post(f"{url}/gradio_api/call/ask", json=call) for _ in range(4)]
        assert [r.status_code for r in replies[:3]] == [200] * 3, replies[0].text
        assert replies[3].status_code == 429 and "retry-after" in replies[3].headers
        assert chat.get(f"{url}/health").status_code == 200  # reading is not counted


def test_verify_is_limited(server):
    url, _ = server
    with client("127.0.0.5") as agent:
        statuses = [
            agent.post(f"{url}/verify", json={"text": "KSPSolve"}).status_code for _ in range(4)
        ]
    assert statuses == [200, 200, 200, 429]


def test_wrong_tokens_are_slowed_down(server):
    url, _ = server
    with client("127.0.0.7", token=False) as guesser:
        wrong = [
            guesser.get(f"{url}/health", headers={"Authorization": f"Bearer guess{n}"})
            for n in range(2)
        ]
        form = guesser.post(f"{url}/auth", data={"token": "guess"})
        assert [r.status_code for r in wrong] + [form.status_code] == [401, 401, 401]
        throttled = guesser.get(f"{url}/health", headers=AUTH)  # even the right one, now
        assert throttled.status_code == 429 and int(throttled.headers["retry-after"]) <= 60
        assert "too many wrong tokens" in throttled.json()["detail"]
    with client("127.0.0.8") as other:  # other clients are not affected
        assert other.get(f"{url}/health").status_code == 200


BAD_JSON = [
    ("/ask", b'{"question": "KSP?", "k": NaN}', "k"),
    ("/ask", b'{"question": "KSP?", "k": Infinity}', "k"),
    ("/ask", b'{"question": "KSP?", "k": 1e999}', "k"),
    ("/ask", b'{"question": NaN}', "question"),
    ("/ask", b'{"question": "KSP \\ud800 x"}', "question"),
    ("/ask", b'{"question": "x", "history": [{"role": "user", "content": "\\udfff"}]}',
     "history.0.content"),
    ("/verify", b'{"text": NaN}', "text"),
    ("/verify", b'{"text": "KSP \\ud800 x"}', "text"),
    ("/feedback", b'{"question": "q", "answer": "a", "vote": "up", "settings": {"k": NaN}}',
     "settings.k"),
    ("/search?q=x", b"[" * 40_000, "the body"),
]  # fmt: skip


@pytest.mark.parametrize(("n", "case"), list(enumerate(BAD_JSON)))
def test_json_that_strict_json_forbids_is_422_naming_the_field(server, n, case):
    url, votes = server
    path, body, field = case
    before = len(votes.rows())
    with client(f"127.0.1.{n + 1}") as sender:
        method = "GET" if path.startswith("/search") else "POST"
        reply = sender.request(
            method, f"{url}{path}", content=body, headers={"content-type": "application/json"}
        )
    assert reply.status_code == 422, reply.text
    assert reply.json()["detail"][0]["msg"].startswith(f"{field}:")
    assert len(votes.rows()) == before


def test_a_vote_with_nan_from_an_older_server_exports_as_strict_json(tmp_path):
    """Rows stored before votes were checked read back with null for NaN."""
    import sqlite3

    store = FeedbackStore(tmp_path / FILE_NAME)
    row_id = store.add(vote("q", "up"), SERVER)
    with sqlite3.connect(store.path) as conn:
        conn.execute("UPDATE feedback SET settings = ? WHERE id = ?", ('{"k": NaN}', row_id))
    row = store.get(row_id)
    assert row is not None and row["settings"] == {"k": None}
    json.dumps(row, allow_nan=False)


def test_a_trickled_request_head_is_cut_off(server):
    url, _ = server
    sock = connect(url, "127.0.0.9")
    sock.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n")
    started = time.monotonic()
    for _ in range(10):  # one header line a second, never the blank line
        try:
            sock.sendall(f"X-Slow: {time.monotonic()}\r\n".encode())
        except (BrokenPipeError, ConnectionResetError):
            break
        if select.select([sock], [], [], 0.5)[0] and not sock.recv(1):
            break
    assert time.monotonic() - started < 4  # closed at the 1 s deadline, not after 10 lines
    sock.close()


def test_a_trickled_body_gets_408(server):
    url, _ = server
    sock = connect(url, "127.0.0.9")
    head = (
        f"POST /verify HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {TOKEN}\r\n"
        'Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{"text": '
    )
    sock.sendall(head.encode())
    reply = response_of(sock)
    sock.close()
    assert reply.startswith(b"HTTP/1.1 408") and b"did not arrive within 1 s" in reply
