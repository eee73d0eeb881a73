"""Access to `sciknow serve`: the bind rule, the API token (401), per-client limits (429)."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from pathlib import Path

import httpx
import pytest
from support.backends import ScriptedBackend
from support.browser import ARGS, Page

from sciknow.serve.web.access import WINDOW_S, RateLimiter, is_loopback, session_value

TOKEN = "correct-horse-battery-staple"
KSP = {"question": "How do I set the relative tolerance for KSP?", "stream": False}


@pytest.mark.parametrize(
    ("host", "local"),
    [
        ("127.0.0.1", True),
        ("127.0.1.1", True),
        ("localhost", True),
        ("::1", True),
        ("[::1]", True),
        ("0.0.0.0", False),
        ("192.168.1.20", False),
        ("::", False),
        ("example.org", False),
    ],
)
def test_loopback_addresses(host, local):
    assert is_loopback(host) is local


def serve_command(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    environ = {k: v for k, v in os.environ.items() if k != "SCIKNOW_API_TOKEN"}
    return subprocess.run(
        [sys.executable, "-m", "sciknow.ui.cli", "serve", *args],
        env={**environ, **(env or {})},
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_a_public_bind_without_a_token_refuses_to_start():
    done = serve_command("--host", "0.0.0.0", "--port", "9")
    assert done.returncode == 2
    assert "refusing to serve on 0.0.0.0 without an API token" in done.stderr
    assert "SCIKNOW_API_TOKEN" in done.stderr and "--no-auth" in done.stderr
    both = serve_command("--host", "0.0.0.0", "--token", "x", "--no-auth")
    assert both.returncode == 2 and "not both" in both.stderr


def test_the_token_comes_from_the_environment_too(docs_config, serve_processes):
    url = serve_processes.start(docs_config.data_path, {"SCIKNOW_API_TOKEN": TOKEN})
    assert httpx.get(f"{url}/health").status_code == 401
    headers = {"Authorization": f"Bearer {TOKEN}"}
    assert httpx.get(f"{url}/health", headers=headers).json()["status"] == "ok"
    serve_processes.stop(url)


@pytest.fixture(scope="module")
def guarded(extractive_config, serve_app) -> str:
    from sciknow.serve.factory import build_assistant
    from sciknow.serve.web.api import create_app
    from sciknow.ui.webchat.app import mount_chat

    app = create_app(build_assistant(extractive_config), token=TOKEN)
    return serve_app(mount_chat(app, [], "Guarded"))


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("GET", "/health", None),
        ("GET", "/search?q=KSP", None),
        ("POST", "/ask", KSP),
        ("POST", "/feedback", {"question": "q", "answer": "a", "vote": "up"}),
        ("GET", "/openapi.json", None),
        ("GET", "/gradio_api/info", None),
        ("GET", "/config", None),
    ],
)
def test_every_call_needs_the_token(guarded, method, path, body):
    missing = httpx.request(method, f"{guarded}{path}", json=body)
    assert missing.status_code == 401
    assert missing.headers["www-authenticate"].startswith("Bearer")
    assert "API token" in missing.json()["detail"]
    wrong = httpx.request(
        method, f"{guarded}{path}", json=body, headers={"Authorization": "Bearer nope"}
    )
    assert wrong.status_code == 401
    right = httpx.request(
        method,
        f"{guarded}{path}",
        json=body,
        headers={"Authorization": f"Bearer {TOKEN}"},
        timeout=120,
    )
    assert right.status_code in (200, 201), right.text


def test_the_page_asks_for_the_token_once(guarded):
    page = httpx.get(f"{guarded}/", headers={"Accept": "text/html"})
    assert page.status_code == 303 and page.headers["location"] == "/auth"
    form = httpx.get(f"{guarded}/auth")
    assert form.status_code == 200 and 'name="token"' in form.text
    refused = httpx.post(f"{guarded}/auth", data={"token": "guess"})
    assert refused.status_code == 401 and "That is not this server" in refused.text
    accepted = httpx.post(f"{guarded}/auth", data={"token": TOKEN})
    assert accepted.status_code == 303 and accepted.headers["location"] == "/"
    cookie = accepted.headers["set-cookie"]
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie and TOKEN not in cookie
    session = {"sciknow_session": session_value(TOKEN)}
    assert httpx.get(f"{guarded}/", cookies=session).status_code == 200
    assert httpx.get(f"{guarded}/health", cookies=session).status_code == 200


def test_the_browser_signs_in_once_and_chats(guarded):
    sync_api = pytest.importorskip("playwright.sync_api")
    if not Path("/usr/bin/chromium").exists():
        pytest.skip("needs Debian's chromium at /usr/bin/chromium")
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path="/usr/bin/chromium", headless=True, args=ARGS
        )
        context = browser.new_context()
        tab = context.new_page()
        tab.goto(guarded)
        assert tab.url.endswith("/auth")
        tab.fill("#token", TOKEN)
        tab.click("button[type=submit]")
        tab.wait_for_selector("#sk-question textarea", timeout=90_000)
        tab.close()
        page = Page(browser, guarded, context)  # a new tab: signed in, no question asked
        page.ask(KSP["question"])
        assert "KSPSetTolerances" in page.answers().last.inner_text()
        browser.close()


def test_rate_limiter_windows_and_concurrency():
    limiter = RateLimiter(concurrent=2, per_minute=3)
    assert limiter.acquire("a", now=0.0) is None
    assert limiter.acquire("a", now=1.0) is None
    assert limiter.acquire("a", now=2.0) == 5  # two in flight: busy
    assert limiter.acquire("b", now=2.0) is None  # another client is counted apart
    limiter.release("a")
    assert limiter.acquire("a", now=10.0) is None  # the third start in this minute
    limiter.release("a")
    limiter.release("a")
    assert limiter.acquire("a", now=20.0) == 40  # until the first start leaves the window
    assert limiter.acquire("a", now=WINDOW_S + 0.5) is None


@pytest.fixture(scope="module")
def limited(extractive_config, serve_app):
    """The API with room for 1 request at a time and 3 a minute; generation is slow."""
    from sciknow.serve.answer import Assistant
    from sciknow.serve.factory import build_retriever
    from sciknow.serve.web.api import create_app

    backend = ScriptedBackend(["Use KSPSetTolerances() ", "[1]."] * 20, delay=0.05)
    config = extractive_config
    assistant = Assistant(build_retriever(config), backend, config.answer, mode="generative")
    return serve_app(create_app(assistant, limiter=RateLimiter(1, 3)))


def test_429_past_the_limits_with_retry_after(limited):
    streaming = threading.Event()
    statuses: list[int] = []

    def slow_ask() -> None:
        with httpx.stream("POST", f"{limited}/ask", json={**KSP, "stream": True}) as reply:
            statuses.append(reply.status_code)
            for _ in reply.iter_lines():
                streaming.set()

    first = threading.Thread(target=slow_ask)
    first.start()
    assert streaming.wait(timeout=60)
    busy = httpx.post(f"{limited}/ask", json=KSP)
    assert busy.status_code == 429 and busy.headers["retry-after"] == "5"
    assert "at most 1 at once" in busy.json()["detail"]
    first.join(timeout=60)
    assert statuses == [200]
    assert httpx.get(f"{limited}/health").status_code == 200  # other routes are not counted
    assert httpx.post(f"{limited}/ask", json=KSP, timeout=60).status_code == 200
    assert httpx.post(f"{limited}/ask", json=KSP, timeout=60).status_code == 200
    over = httpx.post(f"{limited}/ask", json=KSP)
    assert over.status_code == 429
    assert 1 <= int(over.headers["retry-after"]) <= 60
    assert "3 a minute" in over.json()["detail"]
