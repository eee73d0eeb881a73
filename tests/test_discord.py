"""Discord exports: conversations from reply chains and silences (fictional fixtures)."""

from __future__ import annotations

import json
import re
from datetime import timedelta
from pathlib import Path
from typing import Any

from sciknow.config import Profile
from sciknow.ingest.discord import DiscordExportSource, group_conversations

ADDRESS_RE = re.compile(r"[\w.+-]+(?:@|%40| at )[\w-]+\.[A-Za-z]{2,}")


def msg(mid: int, minute: int, content: str, who: str = "alice", reply: int | None = None) -> dict:
    authors = {
        "alice": {"id": "1", "name": "alice_s", "nickname": "Alice Solver"},
        "bob": {"id": "2", "name": "bkrylov", "nickname": "Bob Krylov"},
    }
    message: dict[str, Any] = {
        "id": str(mid),
        "type": "Reply" if reply else "Default",
        "timestamp": f"2024-03-01T{10 + minute // 60:02d}:{minute % 60:02d}:00.000+00:00",
        "content": content,
        "author": authors[who],
        "attachments": [],
    }
    if reply:
        message["reference"] = {"messageId": str(reply), "channelId": "20", "guildId": "10"}
    return message


def channel_messages() -> list[dict]:
    return [
        msg(101, 0, "How do I set KSPSetTolerances from options?"),
        msg(102, 5, "Use -ksp_rtol and -ksp_atol.", "bob"),
        msg(103, 10, "Thanks!"),
        # 50 minutes of silence: a new conversation.
        msg(104, 60, "Is DMDA 3D supported on GPUs? mail me: alice.s@example.org"),
        # Another silence, but this one replies to the first conversation.
        msg(105, 120, "Also -ksp_monitor helps.", "bob", reply=102),
        {**msg(106, 121, ""), "type": "ChannelPinnedMessage"},
        {**msg(107, 122, ""), "attachments": [{"fileName": "log.txt"}]},
    ]


def write_export(path: Path, messages: list[dict]) -> Path:
    export = {
        "guild": {"id": "10", "name": "PETSc"},
        "channel": {"id": "20", "name": "help", "type": "GuildTextChat"},
        "messages": messages,
    }
    path.write_text(json.dumps(export))
    return path


def test_group_by_reply_chains_and_gaps():
    groups = group_conversations(channel_messages()[:5], timedelta(minutes=30))
    assert [[m["id"] for m in g] for g in groups] == [["101", "102", "103", "105"], ["104"]]


def test_message_after_late_reply_continues_that_conversation():
    messages = [*channel_messages()[:5], msg(108, 125, "ok")]
    groups = group_conversations(messages, timedelta(minutes=30))
    assert [m["id"] for m in groups[0]][-2:] == ["105", "108"]


def test_documents_and_incremental(tmp_path):
    path = write_export(tmp_path / "help.json", channel_messages())
    source = DiscordExportSource("petsc-discord", str(tmp_path), Profile(), maintainers=["bkrylov"])
    docs = list(source.iter_documents(None))
    assert len(docs) == 2
    first = docs[0]
    assert first.kind == "chat" and first.official is False
    assert first.uri == first.origin == "https://discord.com/channels/10/20/101"
    assert first.id == f"petsc-discord:{first.uri}"
    assert first.title == "#help: How do I set KSPSetTolerances from options?"
    assert first.date == "2024-03-01T10:00:00+00:00"
    messages = first.meta["messages"]
    alice, bob = "Alice Solver", "Bob Krylov"
    assert [m["author"] for m in messages] == [alice, bob, alice, bob, alice]
    assert messages[1]["maintainer"] and first.meta["maintainer_replied"]
    assert messages[3]["url"] == "https://discord.com/channels/10/20/105"
    assert "[attachment: log.txt]" in first.text
    assert {"KSPSetTolerances", "-ksp_rtol", "-ksp_monitor"} <= set(first.symbols)
    assert not ADDRESS_RE.search(json.dumps([d.to_dict() for d in docs]))

    state = source.state()
    assert state.complete is False
    assert (
        list(DiscordExportSource("petsc-discord", str(path), Profile()).iter_documents(state)) == []
    )
    write_export(path, [*channel_messages(), msg(109, 300, "New question about SNES")])
    again = DiscordExportSource("petsc-discord", str(tmp_path), Profile(), maintainers=["bkrylov"])
    new = list(again.iter_documents(state))
    assert [d.uri for d in new] == ["https://discord.com/channels/10/20/109"]


def test_broken_export_is_skipped(tmp_path):
    (tmp_path / "bad.json").write_text("{not json")
    write_export(tmp_path / "good.json", [msg(1, 0, "hi"), {"id": "2", "content": "no time"}])
    source = DiscordExportSource("d", str(tmp_path), Profile())
    assert len(list(source.iter_documents(None))) == 1
    assert [s.where.rsplit("/", 1)[1] for s in source.skipped] == ["bad.json", "good.json#2"]
