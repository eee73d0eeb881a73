"""The Discord bot: its text rules, and its flows against a real `sciknow serve` on 127.0.0.1.

The API side is the real app (uvicorn) over the small docs index, answering extractively or,
where the model's text matters (long answers, the `reset` event, flags), with a scripted
backend. The Discord side is discord.py driven by dpytest: messages, mentions, threads and
reactions go through discord.py's own parsing. dpytest 0.7 lacks threads, interactions,
command sync and the reaction payloads of discord.py 2.7, so `Discordish` adds those few
server-side pieces; slash commands and buttons are real interaction payloads parsed and
dispatched by discord.py (its command tree and dynamic items), answered through a
recording stand-in for Discord's interaction endpoints.
"""

from __future__ import annotations

import asyncio
import copy
import json
import logging
import random
import re
import sqlite3
from contextlib import closing, contextmanager
from dataclasses import dataclass
from typing import Any

import discord
import discord.ext.test as dpytest
import pytest
import pytest_asyncio
from discord.ext.test import backend as back
from discord.ext.test import callbacks
from discord.ext.test import factories as facts
from discord.webhook.async_ import async_context
from support.backends import ScriptedBackend

from sciknow.config import ConfigError, DiscordConfig, load_config
from sciknow.ui.api_client import MAX_QUESTION_CHARS, ApiClient, ApiError, sse_events
from sciknow.ui.discordbot.handlers import (
    API_DOWN,
    API_SLOW,
    DMS_OFF,
    EMPTY_QUESTION,
    REWRITING,
    STALE_VOTE,
    THINKING,
    WRONG_CHANNEL,
    RateLimiter,
    SciknowBot,
    bot_intents,
)
from sciknow.ui.discordbot.text import (
    FENCE,
    history_turns,
    mark_flags,
    render_answer,
    source_lines,
    split_message,
    split_spans,
    thread_name,
)

# ---------------------------------------------------------------------------------------
# The splitter


def fence_toggles(message: str) -> int:
    """Fence lines that open or close a block (a one-line ```x``` block does neither)."""
    count, inside = 0, False
    for line in message.split("\n"):
        stripped = line.strip()
        if not stripped.startswith(FENCE):
            continue
        if not inside and len(stripped) > 6 and stripped.endswith(FENCE):
            continue
        inside = not inside
        count += 1
    return count


def check_split(text: str, limit: int) -> list[str]:
    """Every property of a split: the limit, balanced fences, and the text preserved."""
    messages = split_message(text, limit)
    spans = split_spans(text, limit)
    assert "".join(text[a:b] for a, b, _, _ in spans) == text
    for message, (a, b, reopen, close) in zip(messages, spans, strict=True):
        assert len(message) <= limit, (len(message), message[:80])
        assert message == f"{reopen}{text[a:b]}{close}"
        assert fence_toggles(message) % 2 == 0, message
        assert reopen == "" or re.fullmatch(r"```\S*\n", reopen)
        assert close in ("", FENCE, f"\n{FENCE}")
    return messages


def test_short_text_is_one_message():
    assert split_message("Use KSPSetTolerances() [1].") == ["Use KSPSetTolerances() [1]."]
    assert split_message("x" * 2000) == ["x" * 2000]


def test_split_prefers_blank_line_then_line_then_sentence_then_space():
    para = "First paragraph words here.\n\nSecond paragraph continues"
    assert split_message(para, 40) == [
        "First paragraph words here.\n\n",
        "Second paragraph continues",
    ]
    lines = "line one is here\nline two is here\nline three"
    assert split_message(lines, 40)[0] == "line one is here\nline two is here\n"
    sentences = "One sentence ends here. Another sentence goes on and on"
    assert split_message(sentences, 40)[0] == "One sentence ends here. "
    words = "alpha beta gamma delta epsilon zeta eta theta"
    assert split_message(words, 20) == ["alpha beta gamma ", "delta epsilon zeta ", "eta theta"]
    assert split_message("x" * 45, 20) == ["x" * 20, "x" * 20, "x" * 5]


def test_a_blank_line_too_early_loses_to_a_later_newline():
    text = "ab\n\n" + "word " * 10 + "\nmore words follow here"
    first = split_message(text, 60)[0]
    assert first.endswith("\n") and len(first) > 30


def test_a_code_block_cut_in_two_is_closed_and_reopened_with_its_language():
    code = "".join(f"    x{i} = compute({i});\n" for i in range(30))
    text = f"Intro.\n\n```c\n{code}```\nAfter the code."
    messages = check_split(text, 160)
    assert len(messages) >= 3
    inside = [m for m in messages if m.startswith("```c\n")]
    assert inside, messages
    assert all(m.rstrip().endswith(FENCE) for m in messages[:-1] if "x" in m)
    rejoined = "".join(m.removeprefix("```c\n") for m in messages[1:])
    assert "x29 = compute(29);" in rejoined and messages[-1].endswith("After the code.")


def test_no_message_is_an_empty_code_block():
    code = "".join(f"line {i}\n" for i in range(30))
    text = f"{'w ' * 30}\n```python\n{code}```\n{'v ' * 30}"
    for limit in range(50, 130, 7):
        for message in check_split(text, limit):
            assert not re.search(r"```\w*\n```", message), message


def test_an_unclosed_fence_is_closed():
    messages = check_split("Answer:\n```sh\nmake check", 2000)
    assert messages == ["Answer:\n```sh\nmake check\n```"]


def test_split_property_over_random_texts():
    """No message over the limit, fences balanced in every message, the text preserved."""
    rng = random.Random(1234)
    words = ["KSP", "solve", "the", "matrix", "é", "→", "PetscCall(x);", "a.b", "end.", "?"]
    for _ in range(400):
        blocks = []
        for _ in range(rng.randint(1, 12)):
            kind = rng.random()
            if kind < 0.3:
                lang = rng.choice(["", "c", "python", "sh"])
                body = "\n".join(
                    " ".join(rng.choices(words, k=rng.randint(0, 15)))
                    for _ in range(rng.randint(0, 30))
                )
                blocks.append(f"{FENCE}{lang}\n{body}\n{FENCE}")
            elif kind < 0.35:
                blocks.append("y" * rng.randint(100, 3000))  # no break at all
            elif kind < 0.4:
                blocks.append(f"{FENCE}python\nunclosed " * rng.randint(1, 3))
            else:
                sentences = (
                    " ".join(rng.choices(words, k=rng.randint(1, 20))) + rng.choice([". ", "\n"])
                    for _ in range(rng.randint(1, 40))
                )
                blocks.append("".join(sentences))
        text = rng.choice(["\n\n", "\n", " "]).join(blocks)
        check_split(text, rng.choice([2000, 2000, 500, 120]))


# ---------------------------------------------------------------------------------------
# Rendering


def test_thread_name_is_one_line_within_100_characters():
    assert thread_name("<@123> How do I   set\nthe tolerance?") == "How do I set the tolerance?"
    long = thread_name("word " * 60)
    assert len(long) <= 100 and long.endswith("…") and not long.endswith(" …")
    assert len(thread_name("x" * 300)) == 100
    assert thread_name("<@1>") == "Question"


def test_sources_are_numbered_bracketed_links_at_most_five():
    citations = [
        {"n": n, "title": f"Page_{n} *bold*", "uri": f"https://petsc.org/p{n}"} for n in range(1, 8)
    ]
    lines = source_lines(citations)
    assert len(lines) == 5
    assert lines[0] == r"[1] Page\_1 \*bold\* <https://petsc.org/p1>"
    assert source_lines([{"n": 2, "title": "Mail", "uri": "file:///tmp/x"}]) == ["[2] Mail"]
    shuffled = [citations[6], *citations[1:5], citations[0]]  # the first five cited, in order
    assert [line[:3] for line in source_lines(shuffled)] == ["[2]", "[3]", "[4]", "[5]", "[7]"]


def test_render_answer_and_abstention():
    answer = {
        "text": "Set it with KSPSetTolerances() [1].",
        "citations": [{"n": 1, "title": "KSP", "uri": "https://petsc.org/ksp"}],
        "abstained": False,
    }
    rendered = render_answer(answer, flags=True)
    assert rendered == (
        "Set it with KSPSetTolerances() [1].\n\n**Sources**\n[1] KSP <https://petsc.org/ksp>"
    )
    abstained = {**answer, "text": "I don't know.", "abstained": True}
    assert "**Closest passages**\n[1] KSP" in render_answer(abstained, flags=False)


def test_flags_are_underlined_with_a_legend():
    text = "Call KSPSetTolerence(ksp) then use -ksp_rtol.\n```c\nKSPSetTolerence(ksp);\n```"
    flags = [
        {"type": "unknown_name", "start": 5, "end": 20, "text": "KSPSetTolerence"},
        {"type": "uncertain_span", "start": 35, "end": 44, "text": "-ksp_rtol"},
        {"type": "unknown_name", "start": 51, "end": 66},  # inside the code block: left
        {"type": "support", "start": 0, "end": 10, "passage": 1},  # not a doubtful span
    ]
    marked, legend = mark_flags(text, flags)
    assert marked.startswith(r"Call __KSPSetTolerence__(ksp) then use __-ksp\_rtol__.")
    assert marked.endswith("```c\nKSPSetTolerence(ksp);\n```")
    assert legend == (
        "-# Underlined: words the model was unsure of; names found nowhere in the index."
    )
    inline, _ = mark_flags("Use `MatFoo_x()` now", [{"type": "unknown_name", "start": 5, "end": 8}])
    assert inline == "Use __`MatFoo_x()`__ now"
    assert mark_flags("plain", [{"type": "guard", "reason": "x"}]) == ("plain", "")


def test_history_turns_join_messages_and_drop_footers_and_notices():
    messages = [
        (False, "<@42> How do I set tolerances?"),
        (True, "Use KSPSetTolerances() [1]."),
        (True, "More detail.\n\n**Sources**\n[1] KSP <https://petsc.org>"),
        (True, "⚠️ You have asked 4 questions"),
        (False, "and for SNES?"),
    ]
    assert history_turns(messages) == [
        {"role": "user", "content": "How do I set tolerances?"},
        {"role": "assistant", "content": "Use KSPSetTolerances() [1].\n\nMore detail."},
        {"role": "user", "content": "and for SNES?"},
    ]
    many = [(i % 2 == 1, f"m{i}") for i in range(30)]
    turns = history_turns(many, max_turns=20)
    assert len(turns) == 20 and turns[-1]["content"] == "m29"
    assert history_turns([(False, "x" * 9000)])[0]["content"] == "x" * 8000


async def lines_of(text: str):
    for line in text.split("\n"):
        yield line


@pytest.mark.asyncio
async def test_sse_parser():
    stream = 'event: token\ndata: {"text": "a"}\n\nevent: reset\ndata: {"reason": "loop"}\n\n'
    stream += 'event: answer\ndata: {"text":\ndata: "b"}\n\nevent: done\ndata: {}'
    events = [e async for e in sse_events(lines_of(stream))]
    assert events == [
        ("token", {"text": "a"}),
        ("reset", {"reason": "loop"}),
        ("answer", {"text": "b"}),
        ("done", {}),
    ]
    with pytest.raises(ApiError, match="malformed"):
        [e async for e in sse_events(lines_of("event: token\ndata: {oops\n\n"))]


def test_rate_limiter_counts_a_sliding_minute():
    now = [0.0]
    limiter = RateLimiter(2, clock=lambda: now[0])
    assert limiter.wait(1) == 0 and limiter.wait(1) == 0
    assert limiter.wait(1) == pytest.approx(60) and limiter.wait(2) == 0
    now[0] = 30
    assert limiter.wait(1) == pytest.approx(30)
    now[0] = 60.5
    assert limiter.wait(1) == 0


def test_discord_config_section(tmp_path):
    path = tmp_path / "sciknow.toml"
    path.write_text('[discord]\nchannels = ["123456789012345678", "#help"]\nallow_dm = true\n')
    config = load_config(path, environ={"SCIKNOW_DISCORD__PER_USER_PER_MINUTE": "9"})
    assert config.discord.channels == ["123456789012345678", "#help"]
    assert config.discord.allow_dm and config.discord.per_user_per_minute == 9
    assert load_config(environ={}).discord.channels == []
    path.write_text('[discord]\nchannels = [123456789012345678, "help"]\n')  # IDs as integers
    assert load_config(path, environ={}).discord.channels == ["123456789012345678", "help"]
    env = {"SCIKNOW_DISCORD__CHANNELS": "123456789012345678,help"}
    assert load_config(environ=env).discord.channels == ["123456789012345678", "help"]
    for bad, message in (
        ('api_url = "localhost:8080"', "http"),
        ("per_user_per_minute = 0", "at least 1"),
        ("channels = [1.5]", r"discord.channels\[0\] must be an integer, got 1.5"),
        ("channels = [true]", r"discord.channels\[0\] must be an integer, got True"),
        ('token = "abc"', "unknown key 'token'"),
    ):
        path.write_text(f"[discord]\n{bad}\n")
        with pytest.raises(ConfigError, match=message):
            load_config(path, environ={})


def test_intents_are_the_least_needed():
    intents = bot_intents(DiscordConfig())
    assert intents.message_content and intents.guild_messages and intents.guilds
    assert not intents.members and not intents.presences and not intents.guild_reactions
    assert intents.dm_messages  # to answer, or to say politely that DMs are off


# ---------------------------------------------------------------------------------------
# A real `sciknow serve` with a scripted backend


@dataclass
class Api:
    url: str
    assistant: Any
    backend: ScriptedBackend
    feedback_path: Any

    @contextmanager
    def generating(self, pieces: list[str], delay: float = 0.0, **answer: Any):
        """Answer with the scripted text (generative mode) inside the block."""
        saved = (self.assistant.mode, copy.copy(self.assistant.settings))
        self.assistant.mode = "generative"
        self.backend.pieces, self.backend.delay = pieces, delay
        for key, value in answer.items():
            setattr(self.assistant.settings, key, value)
        try:
            yield
        finally:
            self.assistant.mode = saved[0]
            for key in answer:
                setattr(self.assistant.settings, key, getattr(saved[1], key))
            self.backend.pieces, self.backend.delay = [], 0.0


@pytest.fixture(scope="module")
def api(extractive_config, embedder, serve_app, tmp_path_factory) -> Api:
    from sciknow.index.factory import open_store
    from sciknow.rerank.hybrid import HybridRetriever
    from sciknow.serve.answer import Assistant
    from sciknow.serve.web.api import create_app
    from sciknow.serve.web.feedback import FeedbackStore

    config = copy.deepcopy(extractive_config)
    store = open_store(config)
    try:
        from sciknow.serve.names import name_flags

        name_check = name_flags(store, config.profile)
    except ImportError:  # the API-name check has not landed
        name_check = None
    backend = ScriptedBackend()
    retriever = HybridRetriever(store, embedder, config.retrieval, config.profile)
    assistant = Assistant(
        retriever, backend, config.answer, mode="extractive", name_check=name_check
    )
    feedback = tmp_path_factory.mktemp("feedback") / "feedback.sqlite"
    url = serve_app(create_app(assistant, feedback=FeedbackStore(feedback)))
    return Api(url, assistant, backend, feedback)


# ---------------------------------------------------------------------------------------
# Discord's side: dpytest plus what it lacks


class RecordingApi(ApiClient):
    """The real client, remembering what each question was asked with."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.asked: list[tuple[str, list[dict[str, str]]]] = []

    def ask(self, question, history, flags=False):
        self.asked.append((question, history))
        return super().ask(question, history, flags)


class Discordish:
    """The server side that dpytest 0.7 lacks for discord.py 2.7: threads started from a
    message, reaction payloads with their `type`, command sync, and the interaction
    callback and webhook endpoints (recorded in `responses`)."""

    def __init__(self, bot: SciknowBot) -> None:
        self.bot = bot
        self.state = back.get_state()
        self.synced: list[dict[str, Any]] = []
        self.responses: list[dict[str, Any]] = []
        self.channels: dict[str, Any] = {}  # interaction token -> channel
        self.originals: dict[str, dict[str, Any]] = {}
        self.events: list[tuple[str, str]] = []
        http = bot.http
        http.start_thread_with_message = self.start_thread
        bot.tree._http = http  # the tree kept the client's HTTP before dpytest replaced it
        http.send_message = self.send_message_keeping_components
        self._send_message = type(http).send_message.__get__(http)
        http.bulk_upsert_global_commands = self.sync
        for name in ("parse_message_reaction_add", "parse_message_reaction_remove"):
            parse = getattr(self.state, name)
            setattr(self.state, name, lambda data, parse=parse: parse({"type": 0, **data}))
        self.state._command_tree = bot.tree
        self.state.application_id = bot.user.id
        for event in ("add_reaction", "remove_own_reaction", "edit_message"):
            callbacks.set_callback(self._recorder(event), event)
        async_context.set(self)

    def _recorder(self, event: str):
        async def record(*args: Any, **kwargs: Any) -> None:
            if event == "edit_message":
                self.events.append((event, args[2]["params"].payload.get("content") or ""))
            else:
                self.events.append((event, str(args[1])))

        return record

    async def send_message_keeping_components(self, channel_id, *, params):
        """dpytest's send, keeping the buttons: its message store drops `components`."""
        channel = self.state.get_channel(channel_id)  # noqa: F841 (dpytest reads it from here)
        data = await self._send_message(channel_id, params=params)
        stored = back._cur_config.messages[channel_id][-1]
        stored["components"] = data["components"] = params.payload.get("components", [])
        return data

    async def start_thread(self, channel_id, message_id, *, name, auto_archive_duration, **_):
        channel = self.state.get_channel(channel_id)
        data = {
            "id": message_id,
            "guild_id": channel.guild.id,
            "parent_id": channel_id,
            "owner_id": self.state.user.id,
            "name": name,
            "type": 11,
            "message_count": 0,
            "member_count": 1,
            "rate_limit_per_user": 0,
            "newly_created": True,
            "thread_metadata": {
                "archived": False,
                "auto_archive_duration": auto_archive_duration,
                "archive_timestamp": "2026-01-01T00:00:00+00:00",
                "locked": False,
            },
        }
        back._cur_config.messages.setdefault(message_id, [])
        self.state.parse_thread_create(data)
        return data

    async def sync(self, application_id, payload):
        self.synced = payload
        made = {"application_id": str(application_id), "version": "1"}
        return [{**command, **made, "id": str(facts.make_id())} for command in payload]

    def interaction(self, kind: int, channel, user, data, message=None) -> dict[str, Any]:
        """An INTERACTION_CREATE payload as Discord sends it."""
        interaction_id = facts.make_id()
        payload: dict[str, Any] = {
            "id": str(interaction_id),
            "application_id": str(self.bot.user.id),
            "type": kind,
            "token": f"token-{interaction_id}",
            "version": 1,
            "attachment_size_limit": 8 << 20,
            "channel": {"id": str(channel.id), "type": channel.type.value},
            "channel_id": str(channel.id),
            "data": data,
            "locale": "en-US",
        }
        if getattr(channel, "guild", None) is not None:
            payload["guild_id"] = str(channel.guild.id)
            payload["member"] = {**facts.dict_from_member(user), "joined_at": None}
        else:
            payload["user"] = facts.dict_from_user(user)
        if message is not None:  # as stored, with its buttons
            stored = back._cur_config.messages[message.channel.id]
            raw = next(m for m in stored if m["id"] == message.id)
            payload["message"] = {"components": [], **raw, "channel_id": str(message.channel.id)}
        self.channels[payload["token"]] = channel
        return payload

    async def dispatch(self, payload: dict[str, Any]) -> None:
        self.state.parse_interaction_create(payload)
        await settle()

    def _post(self, token: str, content: str) -> dict[str, Any]:
        back.make_message(content, self.state.user, self.channels[token])
        return back._cur_config.messages[self.channels[token].id][-1]

    async def create_interaction_response(self, interaction_id, token, *, params, **_):
        kind, data = params.payload["type"], params.payload.get("data") or {}
        ephemeral = bool(data.get("flags", 0) & 64)
        record = {"type": kind, "content": data.get("content"), "ephemeral": ephemeral}
        self.responses.append({**record, "allowed_mentions": data.get("allowed_mentions")})
        interaction = {"id": str(interaction_id), "type": 2}
        if kind != 4 or ephemeral:
            return {"interaction": interaction}
        message = self._post(token, data["content"])
        self.originals[token] = message
        interaction["response_message_id"] = message["id"]
        return {"interaction": interaction, "resource": {"type": kind, "message": message}}

    async def get_original_interaction_response(self, application_id, token, **_):
        return self.originals[token]

    async def execute_webhook(self, webhook_id, token, *, payload, multipart, files, **_):
        if payload is None:  # with files the JSON travels as the first multipart field
            payload = json.loads(multipart[0]["value"])
        files = [(f.filename, f.fp.read()) for f in files or []]
        self.responses.append(
            {"type": "followup", "content": payload.get("content"), "files": files}
        )
        return self._post(token, payload.get("content") or "")


async def settle() -> None:
    """Wait for discord.py's event, command and button tasks started so far."""
    me = asyncio.current_task()
    for _ in range(50):
        pending = [
            t
            for t in asyncio.all_tasks()
            if t is not me and not t.done() and t.get_name().startswith(("discord", "CommandTree"))
        ]
        if not pending:
            return
        await asyncio.wait(pending, timeout=60)


@dataclass
class World:
    bot: SciknowBot
    discord: Discordish
    help: discord.TextChannel
    random: discord.TextChannel
    alice: discord.Member
    bob: discord.Member

    def mention(self, text: str) -> str:
        return f"<@{self.bot.user.id}> {text}"

    def posted(self, channel) -> list[str]:
        """What is in a channel now (after edits), oldest first."""
        return [m.get("content") or "" for m in back._cur_config.messages.get(channel.id, [])]

    def thread_of(self, message: discord.Message) -> discord.Thread:
        thread = message.guild.get_thread(message.id)
        assert thread is not None, "no thread was started from the question"
        return thread


@pytest_asyncio.fixture
async def world(api: Api) -> World:
    settings = DiscordConfig(api_url=api.url, channels=["help"], stream_edit_s=30)
    client = RecordingApi(api.url, timeout=60)
    # dpytest mentions need the member cache, which the bot's minimal intents turn off.
    bot = SciknowBot(settings, client, intents=discord.Intents.all())
    dpytest.configure(
        bot, text_channels=["help", "random"], voice_channels=0, members=["alice", "bob"]
    )
    await bot._async_setup_hook()  # binds the loop to dpytest's state, as login does
    config = dpytest.get_config()
    shim = Discordish(bot)
    await bot.setup_hook()
    yield World(bot, shim, *config.channels, *config.members)
    await dpytest.empty_queue()
    for event in ("add_reaction", "remove_own_reaction", "edit_message"):
        callbacks.remove_callback(event)
    await client.aclose()
    await bot.api.aclose()  # a test may have pointed the bot elsewhere


# ---------------------------------------------------------------------------------------
# Messages


@pytest.mark.asyncio
async def test_mention_opens_a_thread_and_answers_there_with_sources(world):
    question = "How do I set the relative tolerance for KSP " + "and why " * 20 + "?"
    asked = await dpytest.message(world.mention(question), channel=world.help, member=world.alice)
    thread = world.thread_of(asked)
    assert thread.name == thread_name(question) and len(thread.name) <= 100
    posted = world.posted(thread)
    assert posted and all(0 < len(m) <= 2000 for m in posted)
    reply = "\n".join(posted)
    assert "KSPSetTolerances" in reply
    links = re.findall(r"^\[\d\] .* <(https://\S+)>$", reply, re.MULTILINE)
    assert 1 <= len(links) <= 5 and all(u.startswith("https://petsc.org/") for u in links)
    assert "**Sources**" in reply
    assert world.posted(world.help) == [world.mention(question)]  # nothing in the channel
    assert [e for e in world.discord.events if e[0] != "edit_message"] == [
        ("add_reaction", THINKING),
        ("remove_own_reaction", THINKING),
    ]
    assert not asked.reactions  # the 🤔 is gone
    last = back._cur_config.messages[thread.id][-1]
    buttons = [c for row in last["components"] for c in row["components"]]
    assert [b["custom_id"] for b in buttons] == ["sciknow:vote:up", "sciknow:vote:down"]
    assert world.bot.api.asked == [(question.strip(), [])]


@pytest.mark.asyncio
async def test_only_listed_channels_and_only_when_mentioned(world):
    await dpytest.message(world.mention("How do I install?"), channel=world.random)
    await dpytest.message("How do I install without MPI?", channel=world.help)
    assert world.posted(world.random) == [world.mention("How do I install?")]
    assert world.bot.api.asked == [] and not world.help.threads
    await dpytest.message(world.mention(""), channel=world.help)  # a bare mention
    assert world.posted(world.help)[-1] == EMPTY_QUESTION and world.bot.api.asked == []


@pytest.mark.asyncio
async def test_bots_and_webhooks_are_ignored(world):
    state = back.get_state()
    robot = state.store_user(facts.make_user_dict("robot", "0007", None, bot=True))
    robot = back.make_member(robot, world.help.guild)
    await dpytest.message(world.mention("How do I install?"), channel=world.help, member=robot)
    data = facts.make_message_dict(
        world.help, world.alice, content=world.mention("Which preconditioner?"),
        mentions=[world.bot.user], webhook_id=str(facts.make_id()), guild_id=world.help.guild.id,
    )  # fmt: skip
    state.parse_message_create(data)
    await dpytest.run_all_events()
    assert world.bot.api.asked == [] and not world.help.threads


@pytest.mark.asyncio
async def test_thread_replies_continue_the_conversation(world):
    asked = await dpytest.message(
        world.mention("How do I set the relative tolerance for KSP?"), channel=world.help
    )
    thread = world.thread_of(asked)
    await dpytest.message("and which option monitors the true residual?", channel=thread)
    question, history = world.bot.api.asked[-1]
    assert question == "and which option monitors the true residual?"
    assert [t["role"] for t in history] == ["user", "assistant"]
    assert history[0]["content"] == "How do I set the relative tolerance for KSP?"
    assert (
        "KSPSetTolerances" in history[1]["content"] and "**Sources**" not in history[1]["content"]
    )
    replies = world.posted(thread)
    assert "-ksp_monitor_true_residual" in "\n".join(replies[len(replies) // 2 :])
    before = len(world.bot.api.asked)
    await dpytest.message(f"<@{world.bob.id}> can you check this?", channel=thread)
    assert len(world.bot.api.asked) == before  # people talking to each other


@pytest.mark.asyncio
async def test_history_is_the_last_20_messages(world):
    asked = await dpytest.message(world.mention("How do I configure?"), channel=world.help)
    thread = world.thread_of(asked)
    world.bot.limiter.per_minute = 100
    for i in range(25):  # people talking to each other, then a question
        await dpytest.message(f"<@{world.alice.id}> note {i}", channel=thread, member=world.bob)
    await dpytest.message("so, which compilers?", channel=thread)
    _, history = world.bot.api.asked[-1]
    assert history == [{"role": "user", "content": "\n\n".join(f"note {i}" for i in range(5, 25))}]


@pytest.mark.asyncio
async def test_abstention_lists_the_closest_passages(world):
    asked = await dpytest.message(
        world.mention("What is the best recipe for sourdough bread?"), channel=world.help
    )
    reply = "\n".join(world.posted(world.thread_of(asked)))
    assert "I don't know" in reply and "**Closest passages**\n[1] " in reply
    assert "**Sources**" not in reply


@pytest.mark.asyncio
async def test_long_answers_are_split_with_code_fences_reopened(world, api):
    lines = [f"Step {i}: call KSPSolve() on the system [1]. " * 3 + "\n" for i in range(25)]
    code = "".join(f"  PetscCall(KSPSolve(ksp, b, x{i}));\n" for i in range(60))
    pieces = [*lines, "\n```c\n", code, "```\n", *lines]
    with api.generating(pieces, fallback=False):  # KSPSolve is not in the small index
        asked = await dpytest.message(world.mention("How do I solve with KSP?"), channel=world.help)
    posted = world.posted(world.thread_of(asked))
    assert len(posted) >= 4 and all(len(m) <= 2000 for m in posted)
    assert all(fence_toggles(m) % 2 == 0 for m in posted)
    assert any(m.startswith("```c\n") for m in posted[1:])
    joined = "".join(posted)
    assert all(f"x{i}));" in joined for i in range(60)) and joined.count("Step 24:") == 6
    assert "**Sources**" in posted[-1]


@pytest.mark.asyncio
async def test_draft_streams_and_a_reset_replaces_it(world, api):
    world.bot.settings.stream_edit_s = 0.2
    pieces = ["Tolerances are set somewhere in the code. "] * 12  # no citation: replaced
    with api.generating(pieces, delay=0.08):
        asked = await dpytest.message(
            world.mention("How do I set the relative tolerance for KSP?"), channel=world.help
        )
    edits = [text for event, text in world.discord.events if event == "edit_message"]
    assert REWRITING in edits  # the draft was emptied on `reset`
    final = world.posted(world.thread_of(asked))
    assert final[0].startswith("*The generated answer was replaced by quoted passages")
    assert "Tolerances are set somewhere" not in "\n".join(final)
    assert "KSPSetTolerances" in "\n".join(final)


@pytest.mark.asyncio
async def test_flags_are_underlined_when_enabled(world, api):
    if api.assistant.name_check is None:
        pytest.skip("the API-name check (serve/names.py) has not landed")
    world.bot.settings.flags = True
    pieces = ["Call KSPSetTolerence", "(ksp, rtol) to set it [1]."]
    with api.generating(pieces, fallback=False):
        asked = await dpytest.message(
            world.mention("How do I set the relative tolerance for KSP?"), channel=world.help
        )
    reply = "\n".join(world.posted(world.thread_of(asked)))
    assert "Call __KSPSetTolerence__(ksp, rtol)" in reply
    assert "-# Underlined: names found nowhere in the index." in reply
    world.bot.settings.flags = False
    with api.generating(pieces, fallback=False):
        again = await dpytest.message(
            world.mention("Which KSP tolerance is relative?"), channel=world.help
        )
    assert "__KSPSetTolerence__" not in "\n".join(world.posted(world.thread_of(again)))


@pytest.mark.asyncio
async def test_rate_limit_answers_politely(world):
    world.bot.limiter.per_minute = 1
    await dpytest.message(world.mention("How do I install?"), channel=world.help)
    await dpytest.message(world.mention("Which preconditioner is ILU?"), channel=world.help)
    assert len(world.bot.api.asked) == 1 and len(world.help.threads) == 1
    notice = world.posted(world.help)[-1]
    assert notice.startswith("⚠️ You have asked 1 questions in the last minute")


@pytest.mark.asyncio
async def test_api_down_gives_a_short_notice_and_the_bot_keeps_running(world, api, caplog):
    world.bot.api = RecordingApi("http://127.0.0.1:9", timeout=5)  # nothing listens there
    with caplog.at_level(logging.WARNING, logger="sciknow.discord"):
        asked = await dpytest.message(world.mention("How do I install?"), channel=world.help)
    assert world.posted(world.thread_of(asked)) == [API_DOWN]
    assert any("ConnectError" in r.getMessage() for r in caplog.records)
    assert not any(
        r.name == "discord.client" and r.levelno >= logging.ERROR for r in caplog.records
    )
    assert not asked.reactions
    world.bot.api = RecordingApi(api.url, timeout=60)
    again = await dpytest.message(
        world.mention("How do I install without MPI?"), channel=world.help
    )
    assert "--download-mpich" in "\n".join(world.posted(world.thread_of(again)))


@pytest.mark.asyncio
async def test_a_busy_api_is_relayed_with_the_wait(world, api, serve_app, tmp_path):
    import inspect

    from sciknow.serve.web.api import create_app
    from sciknow.serve.web.feedback import FeedbackStore

    if "limiter" not in inspect.signature(create_app).parameters:
        pytest.skip("sciknow serve has no per-client limit yet")
    from sciknow.serve.web.access import RateLimiter as ServerLimiter

    limited = create_app(
        api.assistant, feedback=FeedbackStore(tmp_path / "f.sqlite"), limiter=ServerLimiter(4, 1)
    )
    world.bot.api = RecordingApi(serve_app(limited), timeout=60)
    first = await dpytest.message(world.mention("How do I install?"), channel=world.help)
    second = await dpytest.message(world.mention("Which preconditioner?"), channel=world.help)
    assert "**Sources**" in "\n".join(world.posted(world.thread_of(first)))
    notice = world.posted(world.thread_of(second))
    assert len(notice) == 1 and re.fullmatch(
        r"⚠️ The answer service is busy\. Please try again in about \d+ s\.", notice[0]
    )


@pytest.mark.asyncio
async def test_a_slow_api_times_out_with_a_notice(world, api):
    world.bot.settings.timeout_s = 0.3
    with api.generating(["slow "] * 10, delay=0.1):
        asked = await dpytest.message(world.mention("How do I install?"), channel=world.help)
    assert world.posted(world.thread_of(asked)) == [API_SLOW]
    await asyncio.sleep(1.2)  # let the server finish the abandoned answer


LONG_QUESTION = ("How do I set the tolerances? " + "Here is my whole log. " * 100).strip()


@pytest.mark.asyncio
async def test_a_question_over_the_limit_is_refused_with_the_limit_not_cut(world):
    assert len(LONG_QUESTION) > MAX_QUESTION_CHARS
    world.bot.limiter.per_minute = 1
    asked = await dpytest.message(world.mention(LONG_QUESTION), channel=world.help)
    refusal = world.posted(world.help)[-1]
    assert refusal == (
        f"⚠️ Your question has {len(LONG_QUESTION):,} characters, and questions are limited "
        "to 2,000. Please shorten it and ask again."
    )
    assert world.bot.api.asked == [] and not world.help.threads and not asked.reactions
    await dpytest.message(world.mention("How do I install?"), channel=world.help)
    assert len(world.bot.api.asked) == 1  # the refused one did not count toward the limit


@pytest.mark.asyncio
async def test_the_api_client_refuses_a_long_question_before_sending_it():
    client = ApiClient("http://127.0.0.1:9", timeout=5)  # nothing listens there
    try:
        with pytest.raises(ApiError, match="has 2,001 characters; the API accepts at most 2,000"):
            async for _ in client.ask("x" * 2001, []):
                pass
    finally:
        await client.aclose()


@pytest.mark.asyncio
async def test_direct_messages_only_when_allowed(world):
    dm = await world.alice.create_dm()
    await dpytest.message("How do I install?", channel=dm, member=world.alice)
    assert world.posted(dm)[-1] == DMS_OFF and world.bot.api.asked == []
    world.bot.settings.allow_dm = True
    await dpytest.message("How do I install without MPI?", channel=dm, member=world.alice)
    history = [{"role": "user", "content": "How do I install?"}]  # the notice is left out
    assert world.bot.api.asked == [("How do I install without MPI?", history)]
    assert "--download-mpich" in "\n".join(world.posted(dm))


# ---------------------------------------------------------------------------------------
# Slash commands and buttons: interaction payloads dispatched by discord.py


def ask_command(question: str) -> dict[str, Any]:
    option = {"name": "question", "type": 3, "value": question}
    return {"id": str(facts.make_id()), "name": "ask", "type": 1, "options": [option]}


def click(custom_id: str) -> dict[str, Any]:
    return {"custom_id": custom_id, "component_type": 2}


def last_message(world: World, channel) -> discord.Message:
    message = world.bot._connection._get_message(back._cur_config.messages[channel.id][-1]["id"])
    assert message is not None
    return message


def feedback_rows(api: Api) -> list[sqlite3.Row]:
    with closing(sqlite3.connect(api.feedback_path)) as conn:
        conn.row_factory = sqlite3.Row
        return conn.execute("SELECT * FROM feedback ORDER BY id").fetchall()


@pytest.mark.asyncio
async def test_slash_commands_are_registered(world):
    commands = {c["name"]: c for c in world.discord.synced}
    assert set(commands) == {"ask"}  # no /patch: sciknow serve drafts none
    assert commands["ask"]["options"][0]["name"] == "question"
    assert commands["ask"]["options"][0]["required"] is True


@pytest.mark.asyncio
async def test_slash_ask_carries_the_limit_and_refuses_a_longer_question(world):
    (option,) = {c["name"]: c for c in world.discord.synced}["ask"]["options"]
    assert option["max_length"] == MAX_QUESTION_CHARS  # Discord's own box refuses first
    await world.discord.dispatch(
        world.discord.interaction(2, world.help, world.alice, ask_command(LONG_QUESTION))
    )
    (refusal,) = world.discord.responses
    assert refusal["ephemeral"] and refusal["content"].startswith(
        f"⚠️ Your question has {len(LONG_QUESTION):,} characters"
    )
    assert world.bot.api.asked == [] and not world.help.threads


@pytest.mark.asyncio
async def test_slash_ask_echoes_the_question_and_answers_in_a_thread(world):
    question = "How do I set the relative tolerance for KSP?"
    await world.discord.dispatch(
        world.discord.interaction(2, world.help, world.alice, ask_command(question))
    )
    assert world.discord.responses[0] == {
        "type": 4, "content": f"> {question}", "ephemeral": False, "allowed_mentions": None,
    }  # fmt: skip
    echo = last_message(world, world.help)
    assert echo.content == f"> {question}"
    thread = world.thread_of(echo)
    assert thread.name == question
    assert "KSPSetTolerances" in "\n".join(world.posted(thread))
    assert world.bot.api.asked == [(question, [])]
    await dpytest.message("and the absolute one?", channel=thread, member=world.alice)
    _, history = world.bot.api.asked[-1]
    assert history[0] == {"role": "user", "content": question}  # the echo, unquoted
    assert history[1]["role"] == "assistant"


@pytest.mark.asyncio
async def test_slash_ask_refuses_politely_where_it_should_not_answer(world):
    await world.discord.dispatch(
        world.discord.interaction(2, world.random, world.alice, ask_command("How do I install?"))
    )
    world.bot.limiter.per_minute = 1
    world.bot.limiter.wait(world.bob.id)
    await world.discord.dispatch(
        world.discord.interaction(2, world.help, world.bob, ask_command("How do I install?"))
    )
    refusals = world.discord.responses
    assert refusals[0]["content"] == WRONG_CHANNEL and refusals[0]["ephemeral"]
    assert (
        refusals[1]["content"].startswith("⚠️ You have asked 1 questions")
        and refusals[1]["ephemeral"]
    )
    assert world.bot.api.asked == [] and not world.help.threads


@pytest.mark.asyncio
async def test_votes_are_stored_through_the_api_without_identity(world, api):
    before = len(feedback_rows(api))
    asked = await dpytest.message(
        world.mention("How do I set the relative tolerance for KSP?"), channel=world.help,
        member=world.alice,
    )  # fmt: skip
    thread = world.thread_of(asked)
    answer = last_message(world, thread)
    shim = world.discord
    await shim.dispatch(shim.interaction(3, thread, world.bob, click("sciknow:vote:down"), answer))
    await shim.dispatch(shim.interaction(3, thread, world.bob, click("sciknow:vote:up"), answer))
    await shim.dispatch(shim.interaction(3, thread, world.alice, click("sciknow:vote:up"), answer))
    replies = [(r["content"], r["ephemeral"]) for r in shim.responses]
    assert replies == [
        ("Thanks, this helps us improve.", True),
        ("You already rated this answer.", True),
        ("Thanks! Glad it helped.", True),
    ]
    rows = feedback_rows(api)[before:]
    assert [(r["vote"], r["client"]) for r in rows] == [
        ("down", "discord:thread"),
        ("up", "discord:thread"),
    ]
    row = dict(rows[0])
    assert row["question"] == "How do I set the relative tolerance for KSP?"
    assert "KSPSetTolerances" in row["answer"] and "petsc.org" in row["citations"]
    everything = " ".join(str(v) for v in row.values())
    for who in (world.alice, world.bob):
        assert str(who.id) not in everything and who.name not in everything
    world.bot.exchanges.clear()  # as after a restart: the buttons still arrive
    await shim.dispatch(shim.interaction(3, thread, world.bob, click("sciknow:vote:up"), answer))
    assert shim.responses[-1]["content"] == STALE_VOTE


@pytest.mark.asyncio
async def test_ask_a_maintainer_pings_the_role_once(world):
    role = back.make_role("petsc-maintainers", world.help.guild, mentionable=True)
    world.bot.settings.maintainer_role = "petsc-maintainers"
    asked = await dpytest.message(world.mention("How do I install?"), channel=world.help)
    thread = world.thread_of(asked)
    answer = last_message(world, thread)
    raw = back._cur_config.messages[thread.id][-1]
    ids = [c["custom_id"] for row in raw["components"] for c in row["components"]]
    assert ids == ["sciknow:vote:up", "sciknow:vote:down", "sciknow:maintainer"]
    shim = world.discord
    for _ in range(2):
        await shim.dispatch(
            shim.interaction(3, thread, world.alice, click("sciknow:maintainer"), answer)
        )
    ping, again = shim.responses
    assert ping["content"] == (
        f"🙋 {role.mention}: {world.alice.mention} would like a maintainer to look at this "
        "question."
    )
    assert not ping["ephemeral"] and ping["allowed_mentions"]["roles"] == [role.id]
    assert ping["allowed_mentions"]["users"] == [world.alice.id]
    assert again["ephemeral"] and "already" in again["content"]
    assert world.posted(thread)[-1] == ping["content"]
    await dpytest.message("and with --with-mpi=0?", channel=thread)
    _, history = world.bot.api.asked[-1]
    assert "maintainer" not in str(history)  # the ping is not part of the conversation


# ---------------------------------------------------------------------------------------
# Forum posts


@pytest.mark.asyncio
async def test_forum_posts_are_answered_only_with_auto_forum(world):
    state = back.get_state()
    guild = world.help.guild
    forum_data = facts.make_channel_dict(15, name="questions", guild_id=guild.id, position=9)
    state.parse_channel_create(forum_data)
    world.bot.settings.channels.append("questions")

    async def post(title: str, text: str) -> discord.Thread:
        thread_id = facts.make_id()
        back._cur_config.messages[thread_id] = []
        state.parse_thread_create({
            "id": thread_id, "guild_id": guild.id, "parent_id": forum_data["id"],
            "owner_id": world.alice.id, "name": title, "type": 11, "newly_created": True,
            "message_count": 1, "member_count": 1, "rate_limit_per_user": 0,
            "thread_metadata": {"archived": False, "auto_archive_duration": 1440,
                                "archive_timestamp": "2026-01-01T00:00:00+00:00", "locked": False},
        })  # fmt: skip
        thread = guild.get_thread(thread_id)
        data = facts.make_message_dict(
            thread, world.alice, id_num=thread_id, content=text, guild_id=guild.id,
            mentions=back.find_user_mentions(text, guild),
        )  # fmt: skip
        back._cur_config.messages[thread_id].append(data)
        state.parse_message_create(data)
        await settle()
        return thread

    quiet = await post("Preallocation", "How do I preallocate an AIJ matrix?")
    assert world.posted(quiet) == ["How do I preallocate an AIJ matrix?"]
    world.bot.settings.auto_forum = True
    thread = await post("Preallocation for speed", "How do I preallocate an AIJ matrix?")
    assert world.bot.api.asked == [
        ("Preallocation for speed\n\nHow do I preallocate an AIJ matrix?", [])
    ]
    assert "MatSeqAIJSetPreallocation" in "\n".join(world.posted(thread))
    mentioned = await post("Tolerances", world.mention("How do I set the KSP tolerances?"))
    assert len(world.bot.api.asked) == 2  # the post mentions the bot: answered once
    assert world.bot.api.asked[-1] == ("Tolerances\n\nHow do I set the KSP tolerances?", [])
    assert sum("**Sources**" in m for m in world.posted(mentioned)) == 1
    world.bot.settings.auto_forum = False
    await post("Configure", world.mention("How do I configure?"))
    assert world.bot.api.asked[-1] == ("How do I configure?", [])  # a mention, no history


# ---------------------------------------------------------------------------------------
# The command line: --check, a missing and a bad token


def run_cli(monkeypatch, tmp_path, *argv: str, **env: str) -> int:
    from sciknow.ui.cli import main

    monkeypatch.chdir(tmp_path)  # no ./sciknow.toml
    for name in ("DISCORD_TOKEN", "SCIKNOW_API_TOKEN", "SCIKNOW_CONFIG"):
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return main(list(argv))


def test_check_validates_config_and_api_without_discord(api, monkeypatch, tmp_path, capsys):
    env = {"SCIKNOW_DISCORD__API_URL": api.url, "SCIKNOW_DISCORD__CHANNELS": "help"}
    assert run_cli(monkeypatch, tmp_path, "discord", "--check", DISCORD_TOKEN="t", **env) == 0
    out = capsys.readouterr().out
    assert f"API {api.url}: ok, 7 documents" in out and "channels: help" in out
    assert out.rstrip().endswith("ok")
    assert run_cli(monkeypatch, tmp_path, "discord", "--check", **env) == 2
    assert "DISCORD_TOKEN is not set" in capsys.readouterr().err
    down = {**env, "SCIKNOW_DISCORD__API_URL": "http://127.0.0.1:9"}
    assert run_cli(monkeypatch, tmp_path, "discord", "--check", DISCORD_TOKEN="t", **down) == 2
    assert "API http://127.0.0.1:9: sciknow serve is not reachable" in capsys.readouterr().err


def test_check_accepts_integer_channel_ids(api, monkeypatch, tmp_path, capsys):
    """`channels = [123456789012345678]`, the ID as Discord's "Copy Channel ID" gives it."""
    config = tmp_path / "bot.toml"
    config.write_text(f'[discord]\napi_url = "{api.url}"\nchannels = [123456789012345678]\n')
    argv = ("--config", str(config), "discord", "--check")
    assert run_cli(monkeypatch, tmp_path, *argv, DISCORD_TOKEN="t") == 0
    captured = capsys.readouterr()
    assert "channels: 123456789012345678; direct messages: off" in captured.out
    assert captured.out.rstrip().endswith("ok") and captured.err == ""


def test_check_says_when_the_bot_would_answer_nowhere(api, monkeypatch, tmp_path, capsys):
    env = {"SCIKNOW_DISCORD__API_URL": api.url, "DISCORD_TOKEN": "t"}
    assert run_cli(monkeypatch, tmp_path, "discord", "--check", **env) == 2
    captured = capsys.readouterr()
    assert "channels: none; direct messages: off" in captured.out
    assert "no channel is configured and direct messages are off" in captured.err
    assert "[discord] channels" in captured.err
    dms = {**env, "SCIKNOW_DISCORD__ALLOW_DM": "true"}  # DMs only is a choice, not a mistake
    assert run_cli(monkeypatch, tmp_path, "discord", "--check", **dms) == 0


def test_check_sends_the_api_token(api, serve_app, monkeypatch, tmp_path, capsys):
    import inspect

    from sciknow.serve.web.api import create_app
    from sciknow.serve.web.feedback import FeedbackStore

    if "token" not in inspect.signature(create_app).parameters:
        pytest.skip("sciknow serve has no API token yet")
    store = FeedbackStore(tmp_path / "feedback.sqlite")
    url = serve_app(create_app(api.assistant, feedback=store, token="s3cret"))
    env = {"SCIKNOW_DISCORD__API_URL": url, "DISCORD_TOKEN": "t"}
    env["SCIKNOW_DISCORD__CHANNELS"] = "help"
    assert run_cli(monkeypatch, tmp_path, "discord", "--check", **env) == 2
    assert "401" in capsys.readouterr().err
    assert (
        run_cli(monkeypatch, tmp_path, "discord", "--check", SCIKNOW_API_TOKEN="s3cret", **env) == 0
    )


def test_no_token_is_a_clear_error(monkeypatch, tmp_path, capsys):
    assert run_cli(monkeypatch, tmp_path, "discord") == 2
    err = capsys.readouterr().err
    assert "set DISCORD_TOKEN" in err and "Traceback" not in err


def test_a_bad_token_is_one_log_line_and_status_2(serve_app, monkeypatch, caplog, capsys):
    """Discord's login endpoint answers 401 (a local stand-in for discord.com)."""
    from fastapi import FastAPI
    from fastapi.responses import JSONResponse

    from sciknow.ui.discordbot.bot import serve_bot

    fake = FastAPI()

    @fake.get("/api/v10/users/@me")
    def me() -> JSONResponse:
        return JSONResponse({"message": "401: Unauthorized", "code": 0}, status_code=401)

    monkeypatch.setattr(discord.http.Route, "BASE", f"{serve_app(fake)}/api/v10")
    with caplog.at_level(logging.INFO):
        status = asyncio.run(serve_bot(DiscordConfig(), "not-a-token"))
    assert status == 2
    errors = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert [r.getMessage() for r in errors] == [
        "Discord refused DISCORD_TOKEN: it is not a valid bot token"
    ]
    assert not any(r.exc_info for r in caplog.records)
    assert "Traceback" not in capsys.readouterr().err
