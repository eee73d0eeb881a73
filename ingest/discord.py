"""Discord exports (DiscordChatExporter JSON) → one `Document(kind="chat")` per conversation.

A channel is one long stream; the unit worth retrieving is a conversation. A
message joins the conversation it replies to (`reference.messageId`), however
late; otherwise it continues the channel's latest conversation unless the
channel was silent for `gap_minutes`, which starts a new one. System messages
(joins, pins) and empty messages are left out.

`location` is an export file or a folder of them. Re-ingest re-reads only files
whose size or mtime changed and yields only conversations whose text changed
(`State.origins`: conversation URL → content hash); a conversation that grew
keeps its first message, hence its id, and replaces the old document.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sciknow.config import Profile
from sciknow.ingest.base import SkipLog, State, file_fingerprint
from sciknow.ingest.mail import (
    Post,
    is_maintainer,
    iso,
    maintainer_set,
    render_posts,
    scrub_addresses,
)
from sciknow.ingest.symbols import find_symbols
from sciknow.records import Document

CHAT_TYPES = {"Default", "Reply"}
TITLE_CHARS = 80


def _when(message: dict[str, Any]) -> datetime:
    when = datetime.fromisoformat(str(message["timestamp"]))
    return (when if when.tzinfo else when.replace(tzinfo=UTC)).astimezone(UTC)


def _content(message: dict[str, Any]) -> str:
    """The message text, or its attachments' names when it only carries files."""
    text = str(message.get("content") or "").strip()
    files = [str(a.get("fileName", "file")) for a in message.get("attachments") or []]
    return text or " ".join(f"[attachment: {name}]" for name in files)


def group_conversations(
    messages: Iterable[dict[str, Any]], gap: timedelta
) -> list[list[dict[str, Any]]]:
    """Split a channel's messages into conversations by reply chains and silences."""
    conversations: list[list[dict[str, Any]]] = []
    conversation_of: dict[str, int] = {}
    latest: int | None = None
    last_time: datetime | None = None
    for message in sorted(messages, key=_when):
        when = _when(message)
        replied = str((message.get("reference") or {}).get("messageId") or "")
        if replied in conversation_of:
            index = conversation_of[replied]
        elif latest is not None and last_time is not None and when - last_time <= gap:
            index = latest
        else:
            conversations.append([])
            index = len(conversations) - 1
        conversations[index].append(message)
        conversation_of[str(message["id"])] = latest = index
        last_time = when
    return conversations


def _author(message: dict[str, Any]) -> tuple[str, list[str]]:
    """Display name (server nickname, else user name) and all names a maintainer list may use."""
    author = message.get("author") or {}
    names = [str(author[k]) for k in ("nickname", "name") if author.get(k)]
    return scrub_addresses(names[0] if names else "unknown"), names


class DiscordExportSource:
    """Conversations from DiscordChatExporter JSON files (see the module docstring)."""

    def __init__(
        self,
        name: str,
        location: str,
        profile: Profile,
        *,
        gap_minutes: float = 30,
        maintainers: Iterable[str] = (),
    ) -> None:
        self.name = name
        self.path = Path(location).expanduser()
        self.profile = profile
        self.gap = timedelta(minutes=gap_minutes)
        self.maintainers = maintainer_set(maintainers)
        self._skips = SkipLog()
        self.skipped = self._skips.skipped
        self._state = State(complete=False)

    def _files(self) -> list[Path]:
        return sorted(self.path.glob("*.json")) if self.path.is_dir() else [self.path]

    def iter_documents(self, since: State | None) -> Iterator[Document]:
        seen = dict(since.extra.get("files", {})) if since else {}
        origins = dict(since.origins) if since else {}
        self._state = State(origins, complete=False, extra={"files": seen})
        for file in self._files():
            try:
                fingerprint = file_fingerprint(file)
            except OSError as err:
                self._skips.skip(str(file), f"unreadable: {err.strerror or err}")
                continue
            if seen.get(str(file)) == fingerprint:
                continue
            for doc in self._file_documents(file):
                if origins.get(doc.origin) != doc.content_hash:
                    origins[doc.origin] = doc.content_hash
                    yield doc
            seen[str(file)] = fingerprint

    def _file_documents(self, file: Path) -> Iterator[Document]:
        try:
            export = json.loads(file.read_text(encoding="utf-8"))
            guild = str(export.get("guild", {}).get("id") or "0")
            channel = str(export["channel"]["id"])
            channel_name = str(export["channel"].get("name") or channel)
            messages = [m for m in export["messages"] if self._usable(m, file)]
        except (OSError, ValueError, KeyError, AttributeError, TypeError) as err:
            self._skips.skip(str(file), f"not a DiscordChatExporter JSON export: {err!r}")
            return
        base = f"https://discord.com/channels/{'@me' if guild == '0' else guild}/{channel}"
        for conversation in group_conversations(messages, self.gap):
            yield self._document(base, channel_name, conversation)

    def _usable(self, message: Any, file: Path) -> bool:
        if not isinstance(message, dict) or message.get("type", "Default") not in CHAT_TYPES:
            return False
        try:
            _when(message)
        except (KeyError, TypeError, ValueError):
            self._skips.skip(f"{file}#{message.get('id')}", "message without a valid timestamp")
            return False
        return "id" in message and bool(_content(message))

    def _document(self, base: str, channel: str, conversation: list[dict[str, Any]]) -> Document:
        """One conversation; `base` is the channel's URL, which message ids extend."""
        posts = []
        for message in conversation:
            shown, names = _author(message)
            maintainer = any(is_maintainer(n, self.maintainers) for n in names)
            body = scrub_addresses(_content(message))
            posts.append(Post(shown, _when(message), f"{base}/{message['id']}", body, maintainer))
        text, spans = render_posts(posts)
        first_line = posts[0].body.splitlines()[0] if posts[0].body else ""
        title = f"#{channel}: {first_line[:TITLE_CHARS]}"
        return Document(
            id=f"{self.name}:{posts[0].url}",
            source=self.name,
            kind="chat",
            uri=posts[0].url,
            title=title,
            text=text,
            origin=posts[0].url,
            official=False,
            date=iso(posts[0].date),
            symbols=find_symbols(text, self.profile.symbol_prefixes),
            meta={
                "channel": channel,
                "messages": spans,
                "maintainer_replied": any(p.maintainer for p in posts[1:]),
                "replies": len(posts) - 1,
            },
        )

    def state(self) -> State:
        return self._state
