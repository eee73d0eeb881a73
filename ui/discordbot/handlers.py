"""The Discord bot itself: when it answers, where, and the buttons under each answer.

It is a client of `sciknow serve` (`ui/api_client.py`) and holds no model or index. Rules
(docs/operations.md, "Discord bot"):

- It answers a mention, `/ask`, and any reply in a thread it created; only in the
  channels of `[discord] channels` (and their threads); never bots or webhooks; DMs only
  with `allow_dm`; new forum posts unasked with `auto_forum`. A thread reply that
  mentions someone else is people talking to each other, and left alone.
- A question in a channel gets a thread named after it; in a thread, the last 20
  messages (and the question that started it) are the history. A 🤔 reaction marks the
  question while it is worked on. An answer that takes longer than `stream_edit_s`
  shows a growing draft; a `reset` event from the API (the generated text failed its
  checks) empties it, and the final `answer` event's text always replaces it.
- Under each answer: 👍/👎 (stored through `POST /feedback` with the channel kind, never
  who voted) and "Ask a maintainer" (pings `maintainer_role`). The buttons are dynamic
  items matched by custom id, so they keep working after a restart; what a vote refers
  to is kept in memory for the last `REMEMBERED` answers.
- Failures (API down, slow, busy) give a short notice where the answer would have been;
  details go to the log and the bot keeps running.
- A question over the API's limit (2,000 characters) is refused with the limit, never cut:
  a reply to the message, a note in a forum post, an ephemeral answer to `/ask` (whose
  option also carries the limit, so Discord's own box refuses it first). A refused
  question does not count toward the user's rate limit.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import OrderedDict, defaultdict, deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import discord
from discord import app_commands

from sciknow.config import DiscordConfig
from sciknow.ui.api_client import MAX_QUESTION_CHARS, ApiClient, ApiError
from sciknow.ui.discordbot.text import (
    MESSAGE_LIMIT,
    history_turns,
    render_answer,
    split_message,
    strip_mentions,
    thread_name,
)

log = logging.getLogger("sciknow.discord")

THINKING = "🤔"
HISTORY_MESSAGES = 20
REMEMBERED = 1000
ARCHIVE_MINUTES = 1440
CHAT_TYPES = (discord.MessageType.default, discord.MessageType.reply)
API_DOWN = "⚠️ Sorry, the answer service is not available right now. Please try again later."
API_SLOW = "⚠️ Sorry, the answer took too long. Please try again, or ask a shorter question."
API_BUSY = "⚠️ The answer service is busy. Please try again in about {seconds:.0f} s."
RATE_LIMITED = (
    "⚠️ You have asked {count} questions in the last minute; please wait about "
    "{seconds:.0f} s before the next one."
)
EMPTY_QUESTION = "⚠️ Ask me a question after the mention, for example: how do I set KSP tolerances?"
TOO_LONG = (
    "⚠️ Your question has {n:,} characters, and questions are limited to {limit:,}. "
    "Please shorten it and ask again."
)
DMS_OFF = "⚠️ Direct messages are turned off for this bot; please ask in the server's channels."
WRONG_CHANNEL = "I only answer in the channels this server set up for me."
REWRITING = "-# The first draft failed its checks; quoting the documentation instead…"
STALE_VOTE = (
    "This answer is from before the bot restarted, so it can no longer be rated. "
    "Ask again to rate a new answer."
)


def bot_intents(settings: DiscordConfig) -> discord.Intents:
    """The least the bot needs: guild messages with their content (a privileged intent to
    enable in the Developer Portal) and direct messages (answered with `allow_dm`, else
    told politely where to ask)."""
    intents = discord.Intents.none()
    intents.guilds = True
    intents.guild_messages = True
    intents.message_content = True
    intents.dm_messages = True
    return intents


class RateLimiter:
    """At most `per_minute` questions per user in any 60 seconds."""

    def __init__(self, per_minute: int, clock: Callable[[], float] = time.monotonic) -> None:
        self.per_minute = per_minute
        self.clock = clock
        self._times: dict[int, deque[float]] = defaultdict(deque)

    def wait(self, user_id: int) -> float:
        """0 when the user may ask now (the question is counted); else seconds to wait."""
        now = self.clock()
        times = self._times[user_id]
        while times and now - times[0] >= 60:
            times.popleft()
        if len(times) >= self.per_minute:
            return 60 - (now - times[0])
        times.append(now)
        return 0.0


@dataclass
class Exchange:
    """One answered question: what a vote on it stores."""

    question: str
    history: list[dict[str, str]]
    client: str
    answer: dict[str, Any] = field(default_factory=dict)
    voters: set[int] = field(default_factory=set)  # in memory only, never sent
    escalated: bool = False

    def feedback(self, vote: str, flags: bool) -> dict[str, Any]:
        return {
            "question": self.question,
            "history": self.history,
            "answer": self.answer.get("text", ""),
            "citations": self.answer.get("citations", []),
            "flags": self.answer.get("flags", []),
            "vote": vote,
            "client": self.client,
            "settings": {"flags": flags},
        }


class Draft:
    """The answer while it streams: one message, sent once the answer has taken `every`
    seconds and edited at most every `every` seconds, so quick answers post only once."""

    def __init__(
        self,
        channel: discord.abc.Messageable,
        every: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.channel = channel
        self.every = every
        self.clock = clock
        self.text = ""
        self.message: discord.Message | None = None
        self._shown = clock()

    async def add(self, piece: str) -> None:
        self.text += piece
        if self.text.strip() and self.clock() - self._shown >= self.every:
            await self._show(_preview(self.text))

    async def reset(self) -> None:
        self.text = ""
        if self.message is not None:
            await self._show(REWRITING)

    async def notice(self, text: str) -> None:
        """Replace the draft (or post) with a short notice."""
        if self.message is not None:
            await self.message.edit(content=text, view=None)
        else:
            await self.channel.send(text)

    async def _show(self, content: str) -> None:
        if self.message is None:
            self.message = await self.channel.send(content, suppress_embeds=True)
        else:
            self.message = await self.message.edit(content=content)
        self._shown = self.clock()


def _preview(text: str) -> str:
    limit = MESSAGE_LIMIT - 2
    return (text if len(text) <= limit else text[: limit - 1] + "…") + " ▌"


def _quote(question: str) -> str:
    """The question echoed by `/ask`, as a Markdown quote."""
    return "\n".join(f"> {line}" for line in question[: MESSAGE_LIMIT - 100].splitlines())


def _unquote(content: str) -> str:
    return "\n".join(line.removeprefix("> ") for line in content.splitlines())


class VoteButton(
    discord.ui.DynamicItem[discord.ui.Button], template=r"sciknow:vote:(?P<vote>up|down)"
):
    """👍 or 👎 under an answer."""

    def __init__(self, vote: str) -> None:
        super().__init__(
            discord.ui.Button(
                emoji="👍" if vote == "up" else "👎",
                style=discord.ButtonStyle.secondary,
                custom_id=f"sciknow:vote:{vote}",
            )
        )
        self.vote = vote

    @classmethod
    async def from_custom_id(
        cls, interaction: discord.Interaction, item: discord.ui.Item[Any], match: Any
    ) -> VoteButton:
        return cls(match["vote"])

    async def callback(self, interaction: discord.Interaction) -> None:
        bot = interaction.client
        assert isinstance(bot, SciknowBot)
        await bot.on_vote(interaction, self.vote)


class MaintainerButton(discord.ui.DynamicItem[discord.ui.Button], template=r"sciknow:maintainer"):
    """The "Ask a maintainer" button: pings the maintainer role in the thread."""

    def __init__(self) -> None:
        super().__init__(
            discord.ui.Button(
                label="Ask a maintainer",
                style=discord.ButtonStyle.secondary,
                custom_id="sciknow:maintainer",
            )
        )

    @classmethod
    async def from_custom_id(
        cls, interaction: discord.Interaction, item: discord.ui.Item[Any], match: Any
    ) -> MaintainerButton:
        return cls()

    async def callback(self, interaction: discord.Interaction) -> None:
        bot = interaction.client
        assert isinstance(bot, SciknowBot)
        await bot.on_escalate(interaction)


class SciknowBot(discord.Client):
    """Answers questions on Discord through the sciknow HTTP API (see the module docstring)."""

    def __init__(
        self,
        settings: DiscordConfig,
        api: ApiClient,
        intents: discord.Intents | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        discord.VoiceClient.warn_nacl = False  # the bot never speaks: no voice warnings
        discord.VoiceClient.warn_dave = False
        super().__init__(
            intents=intents or bot_intents(settings),
            allowed_mentions=discord.AllowedMentions.none(),
        )
        self.settings = settings
        self.api = api
        self.clock = clock
        self.limiter = RateLimiter(settings.per_user_per_minute, clock)
        self.exchanges: OrderedDict[int, Exchange] = OrderedDict()
        self.tree = app_commands.CommandTree(self)
        self._add_commands()

    # Setup -----------------------------------------------------------------------------

    def _add_commands(self) -> None:
        @self.tree.command(name="ask", description="Ask a question about the documentation")
        @app_commands.describe(question="your question")
        async def ask(
            interaction: discord.Interaction,
            question: app_commands.Range[str, 1, MAX_QUESTION_CHARS],
        ) -> None:
            await self.on_ask(interaction, question)

    async def setup_hook(self) -> None:
        """Buttons of earlier answers work again; the slash commands are registered."""
        self.add_dynamic_items(VoteButton, MaintainerButton)
        await self.tree.sync()

    async def on_ready(self) -> None:
        log.info(
            "connected as %s; answering in %s", self.user, self.settings.channels or "no channel"
        )

    # Where and when to answer ------------------------------------------------------------

    def allowed(self, channel: Any) -> bool:
        """Whether `channel` (for a thread: the channel it belongs to) is listed, by ID or
        name."""
        if isinstance(channel, discord.Thread):
            keys = {str(channel.parent_id), getattr(channel.parent, "name", "")}
        else:
            keys = {str(getattr(channel, "id", "")), getattr(channel, "name", "")}
        listed = {str(c).strip().removeprefix("#") for c in self.settings.channels}
        return bool(listed & (keys - {""}))

    def route(self, message: discord.Message) -> str | None:
        """How to treat a message: "channel" (answer in a new thread), "thread" (answer
        here with the thread's history), "dm", or None (not for the bot)."""
        if message.author.bot or message.webhook_id is not None or message.type not in CHAT_TYPES:
            return None
        if message.guild is None:
            return "dm"
        channel = message.channel
        if not self.allowed(channel):
            return None
        mentioned = self.user is not None and self.user.id in {u.id for u in message.mentions}
        mentioned |= message.guild.self_role in message.role_mentions  # the bot's own role
        if isinstance(channel, discord.Thread):
            if message.id == channel.id and self._auto_answered(channel):
                return None  # a forum post: `on_thread_create` answers it
            others = message.mentions or message.role_mentions
            mine = self.user is not None and channel.owner_id == self.user.id
            return "thread" if mentioned or (mine and not others) else None
        return "channel" if mentioned else None

    async def on_message(self, message: discord.Message) -> None:
        route = self.route(message)
        if route is None:
            return
        if route == "dm" and not self.settings.allow_dm:
            if not self.limiter.wait(message.author.id):
                await message.channel.send(DMS_OFF)
            return
        question = strip_mentions(message.content)
        if not question:
            await message.reply(EMPTY_QUESTION, mention_author=False)
            return
        if refusal := too_long(question):
            await message.reply(refusal, mention_author=False)
            return
        if not await self._within_limit(message.author.id, message.reply):
            return
        if route == "channel":
            thread = await self._open_thread(message, question)
            client = "discord:thread" if thread else "discord:channel"
            await self.answer(thread or message.channel, question, [], client, message)
            return
        history = await self.conversation(message.channel, before=message)
        client = "discord:dm" if route == "dm" else "discord:thread"
        await self.answer(message.channel, question, history, client, message)

    def _auto_answered(self, thread: discord.Thread) -> bool:
        return (
            self.settings.auto_forum
            and isinstance(thread.parent, discord.ForumChannel)
            and self.allowed(thread)
        )

    async def on_thread_create(self, thread: discord.Thread) -> None:
        """With `auto_forum`, a new post in a listed forum channel is answered unasked."""
        mine = self.user is not None and thread.owner_id == self.user.id
        if mine or not self._auto_answered(thread):
            return
        starter = await self._starter(thread, retries=1)
        if starter is None or starter.author.bot:
            return
        question = f"{thread.name}\n\n{strip_mentions(starter.content)}".strip()
        if refusal := too_long(question):
            await thread.send(refusal)
        elif await self._within_limit(starter.author.id, thread.send):
            await self.answer(thread, question, [], "discord:forum", starter)

    async def _within_limit(self, user_id: int, reply: Callable[..., Awaitable[Any]]) -> bool:
        wait = self.limiter.wait(user_id)
        if wait:
            count = self.limiter.per_minute
            await reply(RATE_LIMITED.format(count=count, seconds=max(1, wait)))
        return not wait

    async def _open_thread(self, message: discord.Message, question: str) -> discord.Thread | None:
        try:
            return await message.create_thread(
                name=thread_name(question), auto_archive_duration=ARCHIVE_MINUTES
            )
        except discord.HTTPException as err:  # no thread permission: answer in the channel
            log.warning("could not open a thread in #%s: %s", message.channel, err)
            return None

    async def _starter(self, thread: discord.Thread, retries: int = 0) -> discord.Message | None:
        """The message a thread was started from (its ID is the thread's)."""
        for attempt in range(retries + 1):
            if thread.starter_message is not None:
                return thread.starter_message
            try:
                parent = thread.parent
                if isinstance(parent, discord.ForumChannel) or parent is None:
                    return await thread.fetch_message(thread.id)
                return await parent.fetch_message(thread.id)
            except discord.NotFound:
                if attempt < retries:
                    await asyncio.sleep(1)
            except discord.HTTPException as err:
                log.warning("could not read the first message of thread %s: %s", thread.id, err)
                return None
        return None

    async def conversation(
        self, channel: discord.abc.Messageable, before: discord.abc.Snowflake | None
    ) -> list[dict[str, str]]:
        """The last `HISTORY_MESSAGES` messages before `before` as API history; in a thread
        with fewer, the question that started it comes first."""
        messages = [m async for m in channel.history(limit=HISTORY_MESSAGES, before=before)]
        messages.sort(key=lambda m: m.id)  # the API gives newest first
        pairs = [(self._mine(m), m.content) for m in messages if m.type in CHAT_TYPES]
        if isinstance(channel, discord.Thread) and len(messages) < HISTORY_MESSAGES:
            starter = await self._starter(channel)
            seen = {m.id for m in messages} | {before.id if before is not None else None}
            if starter is not None and starter.id not in seen:  # not the question itself
                pairs.insert(0, self._starter_turn(starter))
        return history_turns(pairs, max_turns=HISTORY_MESSAGES)

    def _mine(self, message: discord.Message) -> bool:
        return self.user is not None and message.author.id == self.user.id

    def _starter_turn(self, starter: discord.Message) -> tuple[bool, str]:
        """A thread's first question; `/ask` echoes it as the bot's quote of the user."""
        if self._mine(starter) and starter.content.startswith("> "):
            return False, _unquote(starter.content)
        return self._mine(starter), starter.content

    # Answering ------------------------------------------------------------------------------

    async def answer(
        self,
        channel: discord.abc.Messageable,
        question: str,
        history: list[dict[str, str]],
        client: str,
        asked: discord.Message | None = None,
    ) -> None:
        """Ask the API and post the answer in `channel`; `asked` wears 🤔 meanwhile."""
        exchange = Exchange(question, history, client)
        await _react(asked, add=True, me=self.user)
        draft = Draft(channel, self.settings.stream_edit_s, self.clock)
        try:
            async with channel.typing():
                exchange.answer = await self._stream(exchange, draft)
            await self._deliver(channel, draft, exchange)
        except (ApiError, TimeoutError) as err:
            log.warning("no answer for a %s question: %s", client, err or "timed out")
            await draft.notice(_failure_notice(err))
        except discord.HTTPException as err:  # e.g. no permission to post there
            log.warning("could not post an answer in %s: %s", channel, err)
        finally:
            await _react(asked, add=False, me=self.user)

    async def _stream(self, exchange: Exchange, draft: Draft) -> dict[str, Any]:
        answer = None
        async with asyncio.timeout(self.settings.timeout_s):
            events = self.api.ask(exchange.question, exchange.history, self.settings.flags)
            async for event, data in events:
                if event == "token":
                    await draft.add(str(data.get("text", "")))
                elif event == "reset":
                    log.info("the API replaced its draft: %s", data.get("reason", ""))
                    await draft.reset()
                elif event == "answer":
                    answer = data
                elif event == "error":
                    raise ApiError(f"error event: {data.get('detail', data)}")
        if answer is None:
            raise ApiError("the stream ended without an answer")
        return answer

    async def _deliver(
        self, channel: discord.abc.Messageable, draft: Draft, exchange: Exchange
    ) -> None:
        """The final answer: the draft becomes its first message, buttons go under the last."""
        parts = [
            p
            for p in split_message(render_answer(exchange.answer, self.settings.flags))
            if p.strip()
        ]
        message = None
        for i, part in enumerate(parts):
            view = self.answer_buttons() if i == len(parts) - 1 else None
            extra: dict[str, Any] = {"view": view} if view is not None else {}
            if i == 0 and draft.message is not None:
                message = await draft.message.edit(content=part, **extra)
            else:
                message = await channel.send(part, suppress_embeds=True, **extra)
        if message is not None:
            self.remember(message.id, exchange)

    def answer_buttons(self) -> discord.ui.View:
        view = discord.ui.View(timeout=None)
        view.add_item(VoteButton("up"))
        view.add_item(VoteButton("down"))
        if self.settings.maintainer_role:
            view.add_item(MaintainerButton())
        return view

    def remember(self, message_id: int, exchange: Exchange) -> None:
        self.exchanges[message_id] = exchange
        while len(self.exchanges) > REMEMBERED:
            self.exchanges.popitem(last=False)

    # Slash commands ---------------------------------------------------------------------------

    async def on_ask(self, interaction: discord.Interaction, question: str) -> None:
        """`/ask`: the question is echoed as a quote; in a channel a thread grows from it."""
        channel = interaction.channel
        if interaction.guild is None and not self.settings.allow_dm:
            await interaction.response.send_message(DMS_OFF, ephemeral=True)
            return
        if interaction.guild is not None and not self.allowed(channel):
            await interaction.response.send_message(WRONG_CHANNEL, ephemeral=True)
            return
        if refusal := too_long(question):
            await interaction.response.send_message(refusal, ephemeral=True)
            return
        wait = self.limiter.wait(interaction.user.id)
        if wait:
            text = RATE_LIMITED.format(count=self.limiter.per_minute, seconds=max(1, wait))
            await interaction.response.send_message(text, ephemeral=True)
            return
        callback = await interaction.response.send_message(_quote(question))
        echo = callback.resource
        if not isinstance(echo, discord.Message):
            echo = await interaction.original_response()
        if interaction.guild is None or isinstance(channel, discord.Thread):
            history = await self.conversation(echo.channel, before=echo)
            client = "discord:dm" if interaction.guild is None else "discord:thread"
            await self.answer(echo.channel, question, history, client, echo)
            return
        thread = await self._open_thread(echo, question)
        client = "discord:thread" if thread else "discord:channel"
        await self.answer(thread or echo.channel, question, [], client, echo)

    def maintainer_role(self, guild: discord.Guild | None) -> discord.Role | None:
        name = self.settings.maintainer_role
        if guild is None or not name:
            return None
        if name.isdigit():
            return guild.get_role(int(name))
        return discord.utils.get(guild.roles, name=name.removeprefix("@"))

    # Buttons -------------------------------------------------------------------------------

    async def on_vote(self, interaction: discord.Interaction, vote: str) -> None:
        message = interaction.message
        exchange = self.exchanges.get(message.id) if message is not None else None
        if exchange is None:
            await interaction.response.send_message(STALE_VOTE, ephemeral=True)
            return
        if interaction.user.id in exchange.voters:
            await interaction.response.send_message(
                "You already rated this answer.", ephemeral=True
            )
            return
        try:
            await self.api.feedback(exchange.feedback(vote, self.settings.flags))
        except ApiError as err:
            log.warning("feedback not stored: %s", err)
            await interaction.response.send_message(
                "Sorry, your vote could not be saved right now.", ephemeral=True
            )
            return
        exchange.voters.add(interaction.user.id)
        thanks = "Thanks! Glad it helped." if vote == "up" else "Thanks, this helps us improve."
        await interaction.response.send_message(thanks, ephemeral=True)

    async def on_escalate(self, interaction: discord.Interaction) -> None:
        role = self.maintainer_role(interaction.guild)
        if role is None:
            await interaction.response.send_message(
                "No maintainer role is set up on this server.", ephemeral=True
            )
            return
        message = interaction.message
        exchange = self.exchanges.get(message.id) if message is not None else None
        if exchange is not None and exchange.escalated:
            await interaction.response.send_message(
                "A maintainer has already been asked to look at this.", ephemeral=True
            )
            return
        await interaction.response.send_message(
            f"🙋 {role.mention}: {interaction.user.mention} would like a maintainer to look at "
            "this question.",
            allowed_mentions=discord.AllowedMentions(roles=[role], users=[interaction.user]),
        )
        if exchange is not None:
            exchange.escalated = True


def too_long(question: str) -> str:
    """The refusal of a question over the API's limit; empty when it fits."""
    if len(question) <= MAX_QUESTION_CHARS:
        return ""
    return TOO_LONG.format(n=len(question), limit=MAX_QUESTION_CHARS)


def _failure_notice(err: Exception) -> str:
    if isinstance(err, TimeoutError):
        return API_SLOW
    if isinstance(err, ApiError) and err.retry_after is not None:
        return API_BUSY.format(seconds=err.retry_after)
    if isinstance(err, ApiError) and err.status == 422:  # the question itself was refused
        return f"⚠️ The question was refused: {err}."
    return API_DOWN


async def _react(message: discord.Message | None, add: bool, me: Any) -> None:
    """Add or remove the working reaction; a missing permission only costs the reaction."""
    if message is None:
        return
    try:
        if add:
            await message.add_reaction(THINKING)
        else:
            await message.remove_reaction(THINKING, me)
    except discord.HTTPException as err:
        log.info("reaction %s failed: %s", "add" if add else "removal", err)
