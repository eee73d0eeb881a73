"""The web chat: a Gradio app mounted at `/` of the app that `sciknow serve` runs.

It is a thin client of the server's one engine (`serve/web/engine.py`): its answers run
there like `POST /ask`'s, so the page and the API share one model and one queue. Gradio's
queue runs one answer at a time (the engine would serialize more), shows a waiting user
their place, and holds at most `CHAT_QUEUE_SIZE` waiting questions: past that a new one is
refused at once with Gradio's "busy, try again" notice (503 "Queue is full" to an API
client) rather than waiting minutes. A page closed while its answer waits or runs cancels
that run: Gradio notices a closed page only when the handler yields, so the handler also
yields every `TICK_S` while the answer is silent. Everything on the page is built by
`render.py` from escaped text.

A conversation lives in the page's session state as a list of turns (question, the final
`Answer` as a dict or a notice, the settings it was asked with, its feedback row); the
chat window is redrawn from it, so toggling flags re-renders earlier answers too.

What the reader sees first matters: a question over the API's length limit is refused
with a note under the box (and a count while typing), never cut; a new question is
scrolled to the top of the chat window and stays there while its answer arrives, so the
answer is read from its first line rather than from its sources; the kind filters offer
the kinds the index holds.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import AsyncIterator
from typing import Any

import gradio as gr
from fastapi import FastAPI

from sciknow.index.store import Filters
from sciknow.records import KINDS
from sciknow.serve.answer import Event
from sciknow.serve.web.api import NOTHING_INDEXED, is_empty
from sciknow.serve.web.engine import Engine
from sciknow.serve.web.feedback import Feedback, FeedbackTable, server_of
from sciknow.ui.api_client import MAX_QUESTION_CHARS
from sciknow.ui.webchat import render

log = logging.getLogger(__name__)

HISTORY_TURNS = 5  # earlier exchanges given to the assistant with a follow-up
STREAM_EVERY_S = 0.05  # redraw the growing answer at most this often (the first token at once)
TICK_S = 0.5  # a silent answer yields this often, so a closed page or Stop is noticed
# Questions waiting for the model, all pages together: at an answer every few seconds the
# last of 20 waits about a minute; more would wait longer than people do.
CHAT_QUEUE_SIZE = 20
_END = object()  # the end of an answer's events
OFFICIAL = {"all": None, "yes": True, "no": False}
MODE_LABELS = {
    "extractive": "quoted from the sources (extractive)",
    "generative": "written by the model from the sources",
}
_CSS = """
.sk-answer p:first-child { margin-top: 0; }
.sk-streaming::after { content: "▍"; animation: sk-blink 1s steps(2) infinite; }
@keyframes sk-blink { 50% { opacity: 0; } }
a.sk-cite { text-decoration: none; font-weight: 600; }
mark.sk-uncertain { background: #ffe08a; color: inherit; border-bottom: 2px dotted #b7791f;
  cursor: help; padding: 0 1px; }
del.sk-name { text-decoration-color: #c53030; text-decoration-thickness: 2px; cursor: help; }
.sk-generated { border-bottom: 1px dashed currentColor; }
.sk-legend, .sk-note, .sk-warn, .sk-details { font-size: 0.85em; opacity: 0.9; margin: 0.4em 0; }
.sk-warn { color: #b7791f; }
.sk-error { color: #c53030; font-weight: 600; }
.sk-sources { margin-top: 0.6em; border-top: 1px solid var(--border-color-primary); }
.sk-sources-head { font-size: 0.85em; font-weight: 600; margin: 0.4em 0; }
details.sk-source { margin: 0.2em 0; border-radius: 4px; }
details.sk-source > summary { cursor: pointer; }
details.sk-source.sk-flash { outline: 2px solid var(--color-accent); }
.sk-badge { font-size: 0.75em; padding: 0 0.4em; border-radius: 8px; margin-left: 0.2em;
  border: 1px solid var(--border-color-primary); }
.sk-official { background: #e6f4ea; color: #1e4620; }
.sk-unofficial { background: #fdf0e0; color: #6b3a00; }
.sk-passage { font-size: 0.85em; max-height: 16em; overflow: auto; }
.sk-passage-text { white-space: pre-wrap; margin: 0.3em 0; }
.sk-passage pre.sk-code { margin: 0.3em 0; padding: 0.4em 0.6em; border-radius: 4px;
  background: var(--code-background-fill, rgba(127, 127, 127, 0.1)); white-space: pre; }
.sk-section { font-size: 0.8em; opacity: 0.8; }
.sk-footer { display: flex; gap: 0.8em; align-items: baseline; margin-top: 0.4em; }
.sk-copy-text { display: none !important; }
.sk-count { color: #b7791f; font-size: 0.85em; min-height: 0; }
#sk-question-note { min-height: 0; }
#sk-question-note .sk-error, #sk-question-note .sk-error p { margin: 0.2em 0; color: #c53030; }
button.sk-copy { font-size: 0.8em; padding: 0 0.6em; border-radius: 4px; cursor: pointer;
  border: 1px solid var(--border-color-primary); background: transparent; color: inherit; }
"""
# Delegated handlers (the page's own code, not content): a citation opens its source, a copy
# button copies its answer (navigator.clipboard needs https or localhost; else execCommand),
# the question box counts characters past the limit, and a new question is scrolled to the
# top of the chat window (Gradio's autoscroll, off, would follow the answer to its end).
_HEAD = """<script>
(() => {
  const LIMIT = __LIMIT__;
  document.addEventListener("input", (event) => {
    const box = event.target.closest && event.target.closest("#sk-question textarea");
    const note = document.getElementById("sk-count");
    if (!box || !note) return;
    const n = box.value.length;
    note.textContent = n > LIMIT ? `${n.toLocaleString("en")} characters: questions are ` +
      `limited to ${LIMIT.toLocaleString("en")}; shorten it to send it.` : "";
  });
  // The newest question stays pinned to the top of the chat window while the chat redraws
  // (its answer arriving, flags toggled), until the reader scrolls or clicks in the chat.
  let shown = 0, pinned = -1;
  function scroller(node, stop) {
    for (let box = node.parentElement; box && box !== stop; box = box.parentElement) {
      const style = getComputedStyle(box).overflowY;
      if (box.scrollHeight > box.clientHeight && /(auto|scroll)/.test(style)) return box;
    }
    return null;
  }
  new MutationObserver(() => {
    const chat = document.getElementById("sk-chat");
    const questions = chat ? chat.querySelectorAll(".sk-question") : [];
    if (questions.length > shown) pinned = questions.length - 1;
    shown = questions.length;
    const question = questions[pinned];
    const box = question && scroller(question, chat.parentElement);
    if (box) box.scrollTop += question.getBoundingClientRect().top -
      box.getBoundingClientRect().top - 8;
  }).observe(document.documentElement, {childList: true, subtree: true});
  for (const kind of ["wheel", "touchstart", "mousedown", "keydown"]) {
    document.addEventListener(kind, (event) => {
      if (event.target.closest && event.target.closest("#sk-chat")) pinned = -1;
    }, {capture: true, passive: true});
  }
  function copyText(text) {
    if (navigator.clipboard && window.isSecureContext) return navigator.clipboard.writeText(text);
    const area = document.createElement("textarea");
    area.value = text; area.style.position = "fixed"; area.style.opacity = "0";
    document.body.appendChild(area); area.select(); document.execCommand("copy"); area.remove();
    return Promise.resolve();
  }
  document.addEventListener("click", (event) => {
    const cite = event.target.closest && event.target.closest("a.sk-cite");
    if (cite) {
      event.preventDefault(); event.stopPropagation();
      const source = document.getElementById(cite.getAttribute("href").slice(1));
      if (!source) return;
      source.open = true;
      source.scrollIntoView({block: "nearest"});
      source.classList.add("sk-flash");
      setTimeout(() => source.classList.remove("sk-flash"), 1500);
      return;
    }
    const copy = event.target.closest && event.target.closest("button.sk-copy");
    if (copy) {
      event.preventDefault();
      const text = copy.parentElement.querySelector(".sk-copy-text");
      copyText(text ? text.textContent : "").then(() => {
        copy.textContent = "Copied"; setTimeout(() => (copy.textContent = "Copy answer"), 1500);
      });
    }
  }, true);
})();
</script>""".replace("__LIMIT__", str(MAX_QUESTION_CHARS))
COUNT = '<div class="sk-count" id="sk-count" aria-live="polite"></div>'  # the script fills it
TOO_LONG = (
    "Not sent: the question has {n:,} characters, and questions are limited to {limit:,}. "
    "Shorten it and send it again."
)


def _messages(turns: list[dict[str, Any]]) -> list[dict[str, str]]:
    """The chat window drawn from the turns: a question and its reply per turn."""
    messages = []
    for turn in turns:
        messages.append({"role": "user", "content": render.question_html(turn["question"])})
        messages.append({"role": "assistant", "content": turn["html"]})
    return messages


def _redraw(turns: list[dict[str, Any]], show_flags: bool) -> tuple[Any, ...]:
    """Answers rendered again with or without their flags: (chat window, turns)."""
    turns = [
        {**t, "html": render.answer_html(t["answer"], n, show_flags, t["mode"])}
        if t.get("answer") is not None
        else t
        for n, t in enumerate(turns)
    ]
    return _messages(turns), turns


def _history(turns: list[dict[str, Any]]) -> list[dict[str, str]]:
    """The last finished exchanges as chat messages, for follow-up questions."""
    done = [t for t in turns if t.get("answer") is not None][-HISTORY_TURNS:]
    history = []
    for turn in done:
        history.append({"role": "user", "content": turn["question"]})
        history.append({"role": "assistant", "content": turn["answer"]["text"]})
    return history


async def _ticking(events: AsyncIterator[Event], every: float) -> AsyncIterator[Event | None]:
    """`events`, with a None after each `every` seconds without one (see the module
    docstring: an answer waiting for the model or quoting passages can be silent long)."""
    step = asyncio.ensure_future(anext(events, _END))
    try:
        while True:
            done, _ = await asyncio.wait({step}, timeout=every)
            if not done:
                yield None
                continue
            event = step.result()
            if event is _END:
                return
            yield event
            step = asyncio.ensure_future(anext(events, _END))
    finally:
        step.cancel()  # the page went: Engine.events, interrupted, cancels the run


class ChatApp:
    """The chat's event handlers over the engine and the feedback store."""

    def __init__(self, engine: Engine, feedback: FeedbackTable) -> None:
        self.engine = engine
        self.assistant = engine.assistant
        self.feedback = feedback
        self._stops: dict[str, threading.Event] = {}  # per browser session

    def status(self) -> tuple[Any, ...]:
        """On page load: the line under the title (what is indexed, how answers are made)
        and the kind filters, offering only the kinds the index holds (a filter on a kind
        it lacks could only answer "I don't know")."""
        if is_empty(self.assistant):
            return f"**{render.escape(NOTHING_INDEXED)}**", gr.update(choices=[])
        stats = self.assistant.stats()
        mode = MODE_LABELS.get(self.assistant.mode, self.assistant.mode)
        backend = self.assistant.backend.name
        model = f" · model: {backend}" if self.assistant.mode != "extractive" else ""
        held = [kind for kind in KINDS if stats["chunks_by_kind"].get(kind)]
        line = (
            f"{stats['documents']:,} documents, {stats['chunks']:,} passages indexed · "
            f"answers {mode}{model}"
        )
        return line, gr.update(choices=[(render.KIND_LABELS[kind], kind) for kind in held])

    def pending(self, request: gr.Request) -> tuple[Any, ...]:
        """A question was sent: from now on the stop button can end it, queued or running.
        The last answer's feedback note and comment box go: they were about that answer."""
        self._stops[request.session_hash] = threading.Event()
        return "", gr.update(visible=False)

    def stop(self, request: gr.Request) -> None:
        """The stop button: the answer ends at its next token, keeping what was shown."""
        stop = self._stops.get(request.session_hash)
        if stop is not None:
            stop.set()

    async def respond(
        self,
        question: str,
        turns: list[dict[str, Any]],
        show_flags: bool,
        kinds: list[str],
        official: str,
        k: int,
        request: gr.Request,
    ) -> AsyncIterator[tuple[Any, ...]]:
        """Stream one answer into the chat: yields (textbox, chat window, turns, note)."""
        stop = self._stops.setdefault(request.session_hash, threading.Event())
        try:
            updates = self._respond(question.strip(), turns, show_flags, kinds, official, k, stop)
            async for update in updates:
                yield update
        finally:
            self._stops.pop(request.session_hash, None)

    async def _respond(
        self,
        question: str,
        turns: list[dict[str, Any]],
        show_flags: bool,
        kinds: list[str],
        official: str,
        k: int,
        stop: threading.Event,
    ) -> AsyncIterator[tuple[Any, ...]]:
        if not question:
            yield gr.skip(), gr.skip(), gr.skip(), COUNT
            return
        if len(question) > MAX_QUESTION_CHARS:  # the text stays in the box, to be shortened
            note = TOO_LONG.format(n=len(question), limit=MAX_QUESTION_CHARS)
            yield gr.skip(), gr.skip(), gr.skip(), COUNT + render.notice_html(note, "error")
            return
        settings = {"k": int(k), "kinds": list(kinds), "official": official, "flags": show_flags}
        turn: dict[str, Any] = {
            "question": question,
            "answer": None,
            "html": render.streaming_html(""),
            "history": _history(turns),
            "settings": settings,
            "mode": self.assistant.mode,
            "feedback_id": None,
        }
        turns = [*turns, turn]
        yield "", _messages(turns), turns, COUNT  # a refusal shown before goes
        if is_empty(self.assistant):
            turn["html"] = render.notice_html(NOTHING_INDEXED)
        else:
            async for changed in self._answer(turn, stop):
                if changed:
                    yield "", _messages(turns), turns, gr.skip()
                else:  # a tick: nothing new to draw
                    yield gr.skip(), gr.skip(), gr.skip(), gr.skip()
        if turn["answer"] is not None:
            number = len(turns) - 1
            turn["html"] = render.answer_html(turn["answer"], number, show_flags, turn["mode"])
        yield "", _messages(turns), turns, gr.skip()

    async def _answer(self, turn: dict[str, Any], stop: threading.Event) -> AsyncIterator[bool]:
        """Run the answer for `turn` on the engine, updating `turn` in place; yields True
        when it changed, False on a tick. However this ends (the answer done, Stop, the page
        closed, a failure), the run is cancelled, so the model never works for nobody."""
        settings = turn["settings"]
        filters = Filters(kinds=tuple(settings["kinds"]), official=OFFICIAL[settings["official"]])
        text, shown = "", 0.0
        if stop.is_set():  # stopped while waiting in the queue
            turn["html"] = render.stopped_html("")
            return
        options = {
            "history": turn["history"],
            "k": settings["k"],
            "filters": filters,
            "flags": settings["flags"],
        }
        run = self.engine.start(turn["question"], options)
        try:
            async for event in _ticking(self.engine.events(run), TICK_S):
                if stop.is_set():
                    turn["html"] = render.stopped_html(text)
                    return
                if event is None:
                    yield False
                elif event.kind == "reset":
                    text = ""  # the replacement follows; the final answer is the truth
                elif event.token is not None:
                    text += event.token.text
                    if not shown or time.monotonic() - shown >= STREAM_EVERY_S:
                        turn["html"] = render.streaming_html(text)
                        shown = time.monotonic()
                        yield True
                elif event.answer is not None:
                    answer = event.answer.to_dict()
                    answer.pop("tokens", None)
                    turn["answer"] = answer
        except Exception as err:  # a model or vLLM failure ends this answer, not the server
            log.exception("answer failed")
            turn["html"] = render.notice_html(
                f"The answer failed ({type(err).__name__}: {err}). The server is still "
                "running: try again, or tell whoever runs it.",
                "error",
            )
        finally:
            run.cancel()

    def vote(self, turns: list[dict[str, Any]], data: gr.LikeData) -> tuple[Any, ...]:
        """Record a thumbs up or down (a second click withdraws it); offer a comment box."""
        index = data.index if isinstance(data.index, int) else data.index[0]
        number = (index - 1) // 2
        if not 0 <= number < len(turns) or turns[number].get("answer") is None:
            return gr.update(visible=False), "Only finished answers can be rated.", None, turns
        turn = {**turns[number]}
        turns = [*turns[:number], turn, *turns[number + 1 :]]
        if data.liked not in (True, False):
            if turn["feedback_id"] is not None:
                self.feedback.delete(turn["feedback_id"])
                turn["feedback_id"] = None
            return gr.update(visible=False), "Vote withdrawn.", None, turns
        vote = "up" if data.liked else "down"
        if turn["feedback_id"] is None:
            turn["feedback_id"] = self.feedback.add(
                self._entry(turn, vote), server_of(self.assistant)
            )
        else:
            self.feedback.update(turn["feedback_id"], vote=vote)
        thanks = "Thanks: vote recorded. Tell us more (optional):"
        return gr.update(visible=True), thanks, turn["feedback_id"], turns

    def _entry(self, turn: dict[str, Any], vote: str) -> Feedback:
        answer = turn["answer"]
        return Feedback(
            question=turn["question"],
            answer=answer["text"],
            vote=vote,
            history=turn["history"],
            citations=answer["citations"],
            flags=answer["flags"],
            client="web",
            settings={**turn["settings"], "mode": turn["mode"]},
        )

    def comment(self, text: str, target: int | None) -> tuple[Any, ...]:
        if target is None or not text.strip():
            return gr.skip(), "Write a comment first.", gr.skip()
        self.feedback.update(target, comment=text.strip()[:2000])
        return gr.update(visible=False), "Thanks: comment saved.", ""


def _example(data: gr.SelectData) -> str:
    return data.value["text"]


def build_chat(
    engine: Engine, feedback: FeedbackTable, examples: list[str], title: str
) -> gr.Blocks:
    """The chat page; `examples` are shown on an empty chat."""
    chat = ChatApp(engine, feedback)
    assistant = engine.assistant
    with gr.Blocks(title=title, analytics_enabled=False) as page:
        gr.Markdown(f"## {render.escape(title)}")
        status = gr.Markdown(elem_id="sk-status")
        turns = gr.State([])
        chatbot = gr.Chatbot(
            label="Conversation",
            show_label=False,  # Gradio draws it over the first message
            elem_id="sk-chat",
            height=560,
            autoscroll=False,  # the page's script scrolls a new question to the top instead
            render_markdown=False,  # contents are HTML built by render.py (sanitized again)
            sanitize_html=True,
            buttons=[],  # each answer has its own copy button (answer text, not HTML)
            feedback_options=("Like", "Dislike"),
            examples=[{"text": q} for q in examples],
            placeholder="Ask a question: answers cite the passages they come from.",
        )
        with gr.Row():
            with gr.Column(scale=8, min_width=240):
                question = gr.Textbox(
                    show_label=False,
                    placeholder="Ask a question (Enter sends)",
                    elem_id="sk-question",
                    max_lines=8,  # a long paste scrolls: the note under it stays in view
                )  # no max_length: the browser would cut a pasted question silently
                question_note = gr.HTML(COUNT, elem_id="sk-question-note", js_on_load=None)
            send = gr.Button("Send", variant="primary", scale=1, elem_id="sk-send")
            stop = gr.Button("Stop", variant="stop", scale=1, elem_id="sk-stop")
        with gr.Row():
            new = gr.Button("New conversation", size="sm", elem_id="sk-new")
            show_flags = gr.Checkbox(
                label="Show flags (uncertain spans, passage support, unknown names)",
                value=False,
                elem_id="sk-flags",
            )
        feedback_note = gr.Markdown(elem_id="sk-feedback-note")
        target = gr.State(None)
        with gr.Row(visible=False) as comment_row:
            comment = gr.Textbox(
                show_label=False,
                placeholder="What was wrong or missing? (optional)",
                elem_id="sk-comment",
                scale=8,
                max_length=2000,
            )
            send_comment = gr.Button("Send comment", size="sm", scale=1, elem_id="sk-send-comment")
        with gr.Accordion("Filters and settings", open=False):
            kinds = gr.CheckboxGroup(
                choices=[(render.KIND_LABELS[kind], kind) for kind in KINDS],
                label="Only these kinds of source (none ticked: all)",
                elem_id="sk-kinds",
            )
            official = gr.Radio(
                choices=[("all", "all"), ("official only", "yes"), ("unofficial only", "no")],
                value="all",
                label="Sources",
                elem_id="sk-official",
            )
            k = gr.Slider(1, 20, value=assistant.settings.k, step=1, label="Passages (k)")

        # One public endpoint, "/ask", for API clients (gradio_client); the rest serve the page.
        quiet: dict[str, Any] = {"queue": False, "api_visibility": "undocumented"}
        page.load(chat.status, outputs=[status, kinds], **quiet)
        ask = {
            "fn": chat.respond,
            "inputs": [question, turns, show_flags, kinds, official, k],
            "outputs": [question, chatbot, turns, question_note],
            "concurrency_limit": 1,
            "concurrency_id": "answer",
            "show_progress": "minimal",
        }
        pending = {"fn": chat.pending, "outputs": [feedback_note, comment_row], **quiet}
        question.submit(**pending).then(**ask, api_name="ask")
        send.click(**pending).then(**ask, api_visibility="undocumented")
        chatbot.example_select(_example, outputs=question, **quiet).then(**pending).then(
            **ask, api_visibility="undocumented"
        )
        stop.click(chat.stop, **quiet)
        new.click(
            lambda: ([], [], gr.update(visible=False), "", None),
            outputs=[chatbot, turns, comment_row, feedback_note, target],
            **quiet,
        )
        chatbot.clear(  # the chat window's own clear button
            lambda: ([], gr.update(visible=False), "", None),
            outputs=[turns, comment_row, feedback_note, target],
            **quiet,
        )
        show_flags.change(_redraw, [turns, show_flags], [chatbot, turns], **quiet)
        chatbot.like(chat.vote, turns, [comment_row, feedback_note, target, turns], **quiet)
        send_comment.click(
            chat.comment, [comment, target], [comment_row, feedback_note, comment], **quiet
        )
    return page


def mount_chat(
    app: FastAPI, examples: list[str], title: str, queue_size: int = CHAT_QUEUE_SIZE
) -> FastAPI:
    """Mount the chat at `/` of an app made by `serve.api.create_app` (after its routes);
    at most `queue_size` questions wait for an answer."""
    page = build_chat(app.state.engine, app.state.feedback, examples, title)
    page.queue(default_concurrency_limit=1, max_size=queue_size)
    return gr.mount_gradio_app(
        app,
        page,
        path="/",
        footer_links=["api", "settings"],
        run_history=False,
        css=_CSS,
        head=_HEAD,
        show_error=False,
    )
