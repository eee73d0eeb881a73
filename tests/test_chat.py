"""The web chat in a real browser (Debian's chromium, driven by Playwright).

Most tests run against a real `sciknow serve` process over a small index written here:
three docs pages and one mailing-list message whose text carries `<script>`,
`<img onerror>` and a `javascript:` link. Answers are extractive (no model), so they are
fast and real. Where the model's behaviour is the point (streaming speed, stop, failure,
replacement) a scripted backend stands in, served in-process; one test runs the real
default model end to end in generative mode with flags.
"""

from __future__ import annotations

import re
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from support.backends import ScriptedBackend
from support.browser import ARGS, WAIT_MS, Page
from support.pages import write_docs

playwright_api = pytest.importorskip("playwright.sync_api")
CHROMIUM = Path("/usr/bin/chromium")
if not CHROMIUM.exists():
    pytest.skip("needs Debian's chromium at /usr/bin/chromium", allow_module_level=True)

SCREENSHOTS = Path(__file__).resolve().parents[1] / "bench" / "results" / "chat"
XSS_BODY = """I draw vectors with VecView() and PETSC_VIEWER_DRAW_WORLD in my viewer setup.
The viewer window shows nothing <img src=x onerror="alert('xss-img')"> until I call PetscSleep.
See [the viewer notes](javascript:alert('xss-link')) and <script>alert('xss-script')</script> too.
"""
XSS_QUESTION = "Why does my VecView viewer window show nothing?"
KSP_QUESTION = "How do I set the relative tolerance for KSP?"
PROFILING_PAGE = """# Profiling

## Summary of the run

Run the program with -log_view to print a summary of where the time went:

```console
$ mpiexec -n 2 ./ex5 -log_view
```

The summary lists each event with its count, time and flop rate.
"""
PROFILING_QUESTION = "How do I print a summary of where the time went with -log_view?"


def write_mbox(path: Path) -> Path:
    message = (
        "Message-ID: <viewer-1@lists.example.org>\n"
        "Subject: VecView draw viewer shows nothing\n"
        "From: Dana Mesh <dana@example.org>\n"
        "Date: Mon, 06 Jan 2020 10:00:00 -0600\n"
        "To: petsc-users@lists.example.org\n\n" + XSS_BODY
    )
    path.write_bytes(b"From someone@example.org Mon Jan  6 10:00:00 2020\n" + message.encode())
    return path


@pytest.fixture(scope="module")
def chat_config(tmp_path_factory, embedder):
    """Docs pages and one hostile mail message, ingested with the real pipeline."""
    from sciknow.config import SourceConfig, load_config
    from sciknow.index.factory import make_chunker, open_store
    from sciknow.index.pipeline import ingest
    from sciknow.ingest.registry import make_sources, source_for_location

    root = tmp_path_factory.mktemp("chat")
    config = load_config(environ={"SCIKNOW_DATA_DIR": str(root / "data")})
    config.answer.mode = "extractive"
    docs = write_docs(root / "docs")
    (docs / "manual" / "profiling.md").write_text(PROFILING_PAGE)  # a page with a code fence
    specs = [  # the docs declared as [[sources]] are: official, with petsc.org links
        SourceConfig(name="docs", kind="docs", path=str(docs)),
        source_for_location(str(write_mbox(root / "list.mbox")), config),
    ]
    store = open_store(config)
    for spec in specs:
        ingest(store, make_sources(spec, config), embedder, make_chunker(config))
    return config


@pytest.fixture(scope="module")
def server(chat_config, serve_processes) -> Iterator[str]:
    url = serve_processes.start(chat_config.data_path, {"SCIKNOW_ANSWER__MODE": "extractive"})
    yield url
    serve_processes.stop(url)


@pytest.fixture(scope="module")
def browser():
    with playwright_api.sync_playwright() as playwright:
        chromium = playwright.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=ARGS
        )
        yield chromium
        chromium.close()


@pytest.fixture
def page(browser, server) -> Iterator[Page]:
    tab = Page(browser, server)
    yield tab
    tab.close()


def test_answer_cites_and_a_citation_opens_its_source(page):
    status = page.tab.locator("#sk-status")
    status.get_by_text("documents").wait_for(timeout=WAIT_MS)
    assert "passages indexed" in status.inner_text()
    page.ask(KSP_QUESTION)
    answer = page.answers().last
    assert "KSPSetTolerances" in answer.inner_text()
    source = page.tab.locator("details.sk-source").first
    assert source.get_attribute("open") is None
    answer.locator("a.sk-cite").first.click()
    page.tab.wait_for_function("document.querySelector('details.sk-source').open")
    assert "Convergence tests" in source.locator(".sk-title").inner_text()
    assert source.locator(".sk-kind").inner_text() == "docs"
    assert source.locator(".sk-official").inner_text() == "official"
    link = source.locator("a.sk-link")
    assert link.get_attribute("href").startswith("https://petsc.org/release/manual/ksp/")
    assert "-ksp_rtol" in source.locator(".sk-passage").inner_text()
    page.context.grant_permissions(["clipboard-read", "clipboard-write"])
    assert not page.tab.locator(".sk-copy-text").last.is_visible()
    page.tab.locator("button.sk-copy").last.click()
    page.tab.get_by_text("Copied").wait_for(timeout=WAIT_MS)
    copied = page.tab.evaluate("navigator.clipboard.readText()")
    assert copied.startswith("The default convergence test") and "Sources:\n[1]" in copied
    assert "KSPSetTolerances" in copied and "<" not in copied  # the text, not the HTML
    page.tab.locator("details.sk-details summary").last.click()
    timings = page.tab.locator("details.sk-details").last.inner_text()
    assert re.search(r"retrieval \d+ ms · first token \d+ ms", timings), timings
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.tab.screenshot(path=str(SCREENSHOTS / "answer.png"))


def test_health_names_what_answers(server):
    assert httpx.get(f"{server}/health").json()["backend"] == "extractive"  # no model loaded


def test_follow_up_uses_the_conversation_and_new_clears_it(page):
    page.ask("How do I select a preconditioner?")
    page.ask("and the algebraic multigrid one?")
    assert "gamg" in page.answers().last.inner_text()
    page.tab.click("#sk-new")
    page.tab.wait_for_function("document.querySelectorAll('.sk-answer').length === 0")
    page.ask("Which matrix format is the default?")
    assert page.answers().count() == 1 and "MATAIJ" in page.answers().first.inner_text()


def test_vote_and_comment_land_in_sqlite(page, chat_config):
    page.ask("How do I install without MPI?")
    page.tab.locator('#sk-chat button[aria-label="Dislike"]').last.click()
    page.tab.locator("#sk-comment textarea").wait_for(timeout=WAIT_MS)
    page.tab.fill("#sk-comment textarea", "should say which configure option")
    page.tab.click("#sk-send-comment")
    page.tab.get_by_text("comment saved").wait_for(timeout=WAIT_MS)
    page.ask("Which matrix format is the default?")  # the thanks was about the last answer
    assert page.tab.locator("#sk-feedback-note").inner_text().strip() == ""
    with sqlite3.connect(chat_config.data_path / "feedback.sqlite") as conn:
        conn.row_factory = sqlite3.Row
        row = conn.execute("SELECT * FROM feedback ORDER BY id DESC LIMIT 1").fetchone()
    assert row["question"] == "How do I install without MPI?"
    assert (row["vote"], row["client"]) == ("down", "web")
    assert row["comment"] == "should say which configure option"
    assert "--download-mpich" in row["answer"] and "install/" in row["citations"]
    assert '"mode": "extractive"' in row["settings"]


def test_flags_toggle_says_why_extractive_answers_have_no_spans(page):
    page.tab.check("#sk-flags input[type=checkbox]")
    page.ask(KSP_QUESTION)
    skipped = page.tab.locator(".sk-skipped").last
    assert "log-probabilities" in skipped.inner_text()
    assert page.tab.locator(".sk-legend").count() == 1
    page.tab.uncheck("#sk-flags input[type=checkbox]")
    page.tab.wait_for_function("document.querySelectorAll('.sk-legend').length === 0")


def test_filters_keep_only_the_chosen_sources(page):
    page.tab.get_by_text("Filters and settings").click()
    page.tab.locator("#sk-official").get_by_text("unofficial only").click()
    page.ask("How do I draw a vector in a viewer window?")
    kinds = page.tab.locator(".sk-answer + * .sk-kind, .sk-sources .sk-kind").all_inner_texts()
    assert kinds and set(kinds) == {"mail"}
    assert set(page.tab.locator(".sk-sources .sk-badge.sk-unofficial").all_inner_texts()) == {
        "unofficial"
    }


def test_passage_html_is_inert(page):
    page.ask(XSS_QUESTION)
    for source in page.tab.locator("details.sk-source").all():
        source.locator("summary").click()
    chat = page.tab.locator("#sk-chat")
    assert "VecView draw viewer shows nothing" in chat.inner_text()
    text = chat.inner_text()
    assert "<img src=x onerror=" in text  # shown as the characters it is made of
    assert "<script>alert('xss-script')</script>" in text
    assert chat.locator("img, script, iframe, object, embed").count() == 0
    hrefs = page.tab.eval_on_selector_all("a", "links => links.map(a => a.href)")
    assert not [h for h in hrefs if h.lower().startswith("javascript")]
    handlers = page.tab.eval_on_selector_all(
        "#sk-chat *",
        "nodes => nodes.flatMap(n => [...n.attributes].map(a => a.name))"
        ".filter(name => name.startsWith('on'))",
    )
    assert handlers == []
    page.tab.wait_for_timeout(500)  # give an injected handler the chance to fire
    assert page.dialogs == []


def test_a_question_over_the_limit_is_refused_before_it_is_sent(page):
    """The API takes 2,000 characters: the page says so while typing and on sending, keeps
    the text to be shortened, and sends nothing (it used to cut the question silently)."""
    page.ask(KSP_QUESTION)
    long_question = "Why does KSPSolve diverge? " + "x" * 2100
    page.tab.fill("#sk-question textarea", long_question)
    count = page.tab.locator("#sk-count")
    assert count.inner_text().startswith("2,127 characters: questions are limited to 2,000")
    page.tab.press("#sk-question textarea", "Enter")
    refusal = page.tab.locator("#sk-question-note .sk-error")
    refusal.wait_for(timeout=WAIT_MS)
    assert refusal.inner_text().startswith("Not sent: the question has 2,127 characters")
    assert refusal.is_visible()
    assert page.tab.input_value("#sk-question textarea") == long_question  # not cut
    assert page.tab.locator(".sk-question").count() == 1  # nothing went to the chat
    page.ask("Which matrix format is the default?")
    assert page.tab.locator("#sk-question-note .sk-error").count() == 0
    assert page.tab.locator(".sk-question").count() == 2


def test_sources_show_their_title_once_and_code_as_code(page):
    page.ask(PROFILING_QUESTION)
    source = page.tab.locator("details.sk-source").first
    source.locator("summary").click()
    assert source.locator(".sk-title").inner_text() == "Summary of the run"
    assert source.inner_text().count("Summary of the run") == 1
    assert source.locator(".sk-section").inner_text() == "Profiling"
    code = source.locator(".sk-passage pre.sk-code")
    assert code.inner_text().strip() == "$ mpiexec -n 2 ./ex5 -log_view"
    assert "```" not in source.inner_text()


def test_filters_offer_only_the_kinds_the_index_holds(page):
    page.tab.get_by_text("Filters and settings").click()
    offered = page.tab.locator("#sk-kinds label").all_inner_texts()
    assert [label.strip() for label in offered] == ["docs", "mail"]


def test_the_conversation_label_does_not_cover_the_chat(page):
    page.ask(KSP_QUESTION)
    labels = page.tab.locator("#sk-chat").get_by_text("Conversation", exact=True)
    assert all(not label.is_visible() for label in labels.all())
    question = page.tab.locator(".sk-question").first.bounding_box()
    chat = page.tab.locator("#sk-chat").bounding_box()
    assert question["y"] >= chat["y"]


# --- in-process servers: scripted backends and an empty index ------------------------


def scripted_chat(config, serve_app, backend, fallback: bool = True, queue_size: int = 20) -> str:
    """The API and chat over `backend` in generative mode with the name check, served in
    this process; `fallback` False keeps a generated answer that fails its checks; at most
    `queue_size` questions wait."""
    from dataclasses import replace

    from sciknow.serve.answer import Assistant
    from sciknow.serve.factory import build_retriever
    from sciknow.serve.names import name_flags
    from sciknow.serve.web.api import create_app
    from sciknow.ui.webchat.app import mount_chat

    retriever = build_retriever(config)
    assistant = Assistant(
        retriever,
        backend,
        replace(config.answer, fallback=fallback),
        mode="generative",
        name_check=name_flags(retriever.store, config.profile),
    )
    app = create_app(assistant)
    return serve_app(mount_chat(app, ["What is KSP?"], "Test assistant", queue_size))


def first_line_in_view(page: Page) -> bool:
    """Whether the last answer's first line lies inside the chat window's visible part."""
    return page.tab.evaluate(
        """() => {
          const answer = [...document.querySelectorAll('#sk-chat .sk-answer')].pop();
          const line = answer.querySelector('p, pre, li') || answer;
          let box = answer.parentElement;
          while (box && !(box.scrollHeight > box.clientHeight &&
                 /(auto|scroll)/.test(getComputedStyle(box).overflowY))) box = box.parentElement;
          const seen = box.getBoundingClientRect(), first = line.getBoundingClientRect();
          return first.top >= seen.top && first.top + 16 <= seen.bottom;
        }"""
    )


def test_a_long_answer_is_read_from_its_first_line(browser, chat_config, serve_app):
    """An answer taller than the chat window: the window shows its question and first line,
    not its end (Gradio's autoscroll followed it to the sources)."""
    first = "The first line: set the tolerances with KSPSetTolerances() [1].\n\n"
    lines = [
        f"Detail {i}: the residual norm is checked after iteration {i} [1].\n\n" for i in range(40)
    ]
    backend = ScriptedBackend([first, *lines], delay=0.01)
    url = scripted_chat(chat_config, serve_app, backend, fallback=False)
    page = Page(browser, url)
    page.ask(KSP_QUESTION)
    assert first_line_in_view(page)
    page.ask("And the absolute tolerance?")
    page.tab.wait_for_timeout(500)  # the last redraw settles
    assert first_line_in_view(page)
    answer = page.answers().last
    assert answer.inner_text().startswith("The first line")
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.tab.screenshot(path=str(SCREENSHOTS / "first-line.png"))
    page.close()


def _ask_until_streaming(browser, url: str) -> Page:
    """A page that asked the KSP question, once the answer has streamed its fourth word."""
    page = Page(browser, url)
    page.tab.fill("#sk-question textarea", KSP_QUESTION)
    page.tab.click("#sk-send")
    page.tab.wait_for_function(
        "(document.querySelector('.sk-streaming') || {}).textContent?.includes('word3')",
        timeout=WAIT_MS,
    )
    return page


def test_tokens_stream_before_the_answer_ends_and_stop_ends_it(browser, chat_config, serve_app):
    words = [f"word{i} " for i in range(400)]
    backend = ScriptedBackend(["Use KSPSetTolerances() [1]. ", *words], delay=0.05)
    url = scripted_chat(chat_config, serve_app, backend)
    page = _ask_until_streaming(browser, url)
    assert page.tab.locator(".sk-footer").count() == 0  # text shows while the answer runs
    page.tab.click("#sk-stop")
    page.tab.get_by_text("Stopped.").wait_for(timeout=WAIT_MS)
    assert backend.closed_early.wait(timeout=30)
    assert "word399" not in page.tab.locator("#sk-chat").inner_text()
    backend.pieces = ["The tolerance is set with KSPSetTolerances() [1]."]
    page.ask(KSP_QUESTION)  # the lock was released: the next answer comes
    assert "KSPSetTolerances" in page.answers().last.inner_text()
    page.close()


def test_model_failure_is_shown_and_the_server_keeps_serving(browser, chat_config, serve_app):
    backend = ScriptedBackend(["Use ", "KSPSetTolerances() ", "[1]."], fail_after=1)
    url = scripted_chat(chat_config, serve_app, backend)
    page = Page(browser, url)
    page.tab.fill("#sk-question textarea", KSP_QUESTION)
    page.tab.press("#sk-question textarea", "Enter")
    error = page.tab.locator(".sk-error")
    error.wait_for(timeout=WAIT_MS)
    assert "BackendError" in error.inner_text() and "still running" in error.inner_text()
    assert httpx.get(f"{url}/health").json()["status"] == "ok"
    backend.fail_after = -1
    page.ask(KSP_QUESTION)
    assert "KSPSetTolerances" in page.answers().last.inner_text()
    page.close()


def test_a_replaced_answer_drops_the_streamed_text(browser, chat_config, serve_app):
    backend = ScriptedBackend(["Tolerances ", "are ", "magic ", "numbers."])  # cites nothing
    url = scripted_chat(chat_config, serve_app, backend)
    page = Page(browser, url)
    page.ask(KSP_QUESTION)
    answer = page.answers().last.inner_text()
    assert "replaced by quoted passages" in answer and "magic" not in answer
    assert "KSPSetTolerances" in answer
    page.close()


def test_unknown_names_are_struck_through(browser, chat_config, serve_app):
    pieces = ["Call ", "KSPSetTolerence() ", "to set them [1]."]  # misspelled on purpose
    url = scripted_chat(chat_config, serve_app, ScriptedBackend(pieces), fallback=False)
    page = Page(browser, url)
    page.ask(KSP_QUESTION)
    struck = page.tab.locator(".sk-answer del.sk-name")
    assert struck.inner_text() == "KSPSetTolerence"
    title = struck.get_attribute("title")
    assert "not in the index" in title and "KSPSetTolerances" in title
    assert "names that exist nowhere" in page.tab.locator(".sk-warn").inner_text()
    page.close()


def test_a_second_user_sees_the_queue(browser, chat_config, serve_app):
    backend = ScriptedBackend([f"w{i} " for i in range(60)] + ["[1]."], delay=0.05)
    url = scripted_chat(chat_config, serve_app, backend)
    first, second = Page(browser, url), Page(browser, url)
    first.tab.fill("#sk-question textarea", KSP_QUESTION)
    first.tab.press("#sk-question textarea", "Enter")
    first.tab.wait_for_selector(".sk-streaming", timeout=WAIT_MS)
    second.tab.fill("#sk-question textarea", KSP_QUESTION)
    second.tab.press("#sk-question textarea", "Enter")
    second.tab.get_by_text("queue").first.wait_for(timeout=WAIT_MS)
    first.wait_for_answers(1)
    second.wait_for_answers(1)
    first.close()
    second.close()


def ask_over_http(url: str, question: str) -> float:
    """Seconds `POST /ask` takes to answer `question` (not streamed)."""
    started = time.monotonic()
    reply = httpx.post(f"{url}/ask", json={"question": question, "stream": False}, timeout=120)
    assert reply.status_code == 200, reply.text
    return time.monotonic() - started


def test_a_closed_page_stops_its_answer(browser, chat_config, serve_app):
    """Closing the page mid-answer stops the model at once (20 s of answer were left), and
    the next question is answered without waiting for it."""
    backend = ScriptedBackend([f"word{i} " for i in range(400)], delay=0.05)
    url = scripted_chat(chat_config, serve_app, backend)
    page = _ask_until_streaming(browser, url)
    page.close()
    closed = time.monotonic()
    assert backend.closed_early.wait(timeout=10)
    stopped_after = time.monotonic() - closed
    backend.pieces = ["Set them with KSPSetTolerances() [1]."]
    assert ask_over_http(url, KSP_QUESTION) < 10
    assert stopped_after < 5, stopped_after


def test_a_page_closed_while_its_answer_waits_gives_up_its_turn(browser, chat_config, serve_app):
    """A question waiting for the model behind another client's answer never runs once its
    page is closed: the model answers one call, not two."""
    backend = ScriptedBackend([f"w{i} " for i in range(300)] + ["[1]."], delay=0.05)
    url = scripted_chat(chat_config, serve_app, backend)
    page = Page(browser, url)
    body = {"question": KSP_QUESTION, "stream": True}
    with httpx.stream("POST", f"{url}/ask", json=body, timeout=120) as holder:
        lines = holder.iter_lines()
        assert any(line.startswith("event: token") for line in lines)  # it holds the model
        page.tab.fill("#sk-question textarea", KSP_QUESTION)
        page.tab.click("#sk-send")
        page.tab.wait_for_selector(".sk-streaming", timeout=WAIT_MS)
        page.tab.wait_for_timeout(1000)  # its run waits for the model
        page.close()
        assert any(line.startswith("event: done") for line in lines)  # 15 s of answer
    time.sleep(2)  # when a run still waiting would have started
    assert len(backend.calls) == 1


def test_past_the_queue_limit_a_question_is_told_to_retry(browser, chat_config, serve_app):
    backend = ScriptedBackend([f"w{i} " for i in range(200)] + ["[1]."], delay=0.05)
    url = scripted_chat(chat_config, serve_app, backend, queue_size=1)
    pages = [Page(browser, url) for _ in range(3)]
    for n, page in enumerate(pages):
        page.tab.fill("#sk-question textarea", KSP_QUESTION)
        page.tab.press("#sk-question textarea", "Enter")
        if n == 0:
            page.tab.wait_for_selector(".sk-streaming", timeout=WAIT_MS)
        if n == 1:
            page.tab.get_by_text("queue").first.wait_for(timeout=WAIT_MS)
    busy = pages[2].tab.get_by_text("busy")
    busy.first.wait_for(timeout=WAIT_MS)
    assert "try again" in busy.first.inner_text().lower()
    for page in pages:
        page.close()


def test_an_empty_index_says_to_ingest(browser, tmp_path, serve_app):
    from sciknow.config import load_config
    from sciknow.serve.factory import build_assistant
    from sciknow.serve.web.api import create_app
    from sciknow.ui.webchat.app import mount_chat

    config = load_config(environ={"SCIKNOW_DATA_DIR": str(tmp_path / "empty")})
    app = create_app(build_assistant(config, allow_empty=True))
    url = serve_app(mount_chat(app, [], "Empty"))
    page = Page(browser, url)
    page.tab.get_by_text("nothing is indexed yet").first.wait_for(timeout=WAIT_MS)
    page.tab.fill("#sk-question textarea", KSP_QUESTION)
    page.tab.press("#sk-question textarea", "Enter")
    note = page.tab.locator('[data-testid="bot"] .sk-note')
    note.wait_for(timeout=WAIT_MS)
    assert "nothing is indexed yet: run sciknow ingest" in note.inner_text()
    reply = httpx.post(f"{url}/ask", json={"question": "x"})
    assert reply.status_code == 503 and "sciknow ingest" in reply.json()["detail"]
    page.close()


# --- the real default model, generative, with flags ---------------------------------


@pytest.mark.slow
def test_real_model_answer_with_highlighted_spans(browser, chat_config, serve_processes):
    from sciknow.serve.backends.models import ModelNotFoundError, find_smollm2_gguf

    try:
        find_smollm2_gguf()
    except ModelNotFoundError as missing:
        pytest.skip(str(missing))
    env = {
        "SCIKNOW_ANSWER__MODE": "generative",
        "SCIKNOW_ANSWER__FALLBACK": "false",  # keep the model's own text, flags and all
        "SCIKNOW_ANSWER__MAX_TOKENS": "48",
        "SCIKNOW_ANSWER__K": "2",
    }
    url = serve_processes.start(chat_config.data_path, env)
    try:
        page = Page(browser, url)
        page.tab.check("#sk-flags input[type=checkbox]")
        # Temperature 0: the same text each time; the model loads on this first question.
        page.ask("Which preconditioner uses algebraic multigrid?", timeout_ms=600_000)
        spans = page.tab.locator(".sk-answer mark.sk-uncertain")
        assert spans.count() > 0 and spans.first.inner_text().strip()
        title = spans.first.get_attribute("title")
        score = re.match(r"uncertain, score (\d\.\d+): ", title)
        assert score and 0 < float(score.group(1)) <= 1 and "given both sides" in title
        assert page.tab.locator(".sk-legend").count() == 1
        page.tab.locator("details.sk-details summary").last.click()
        timings = page.tab.locator("details.sk-details").last.inner_text()
        assert re.search(r"\d+\.\d tokens/s", timings), timings
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        page.tab.screenshot(path=str(SCREENSHOTS / "generative-flags.png"))
        page.close()
    finally:
        serve_processes.stop(url)
