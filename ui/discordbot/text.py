"""Discord text for the bot (`handlers.py`): message splitting, sources, flags, history.

Pure functions over strings and the API's JSON, so every rule is unit-tested without
Discord. Discord's limits shape them: 2,000 characters a message, 100 a thread name,
Markdown where `__x__` underlines and a fenced code block must open and close inside
one message.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from discord.utils import escape_markdown

from sciknow.records import DOUBT_FLAGS, Citation, Flag, FlagKind
from sciknow.ui.ask import describe_compile

MESSAGE_LIMIT = 2000
THREAD_NAME_LIMIT = 100
MAX_SOURCES = 5
FENCE = "```"
# Where a message may end, best first: after a blank line, a line, a sentence, a word.
_BREAKS = (
    re.compile(r"\n[ \t]*\n"),
    re.compile(r"\n"),
    re.compile(r"[.!?][)\]\"'*_]*[ \t]+"),
    re.compile(r"[ \t]+"),
)
_MENTION_RE = re.compile(r"<@[!&]?\d+>")
_INLINE_CODE_RE = re.compile(r"`[^`\n]+`")
# Lines that start the bot's non-answer text: sources, legend, notices, maintainer pings.
FOOTERS = ("**Sources**", "**Closest passages**", "-# ", "⚠️", "🙋")
LEGENDS: dict[FlagKind, str] = {  # of the underlined kinds, `DOUBT_FLAGS`
    "uncertain_span": "words the model was unsure of",
    "unknown_name": "names found nowhere in the index",
    "removed_name": "names removed from the library",
}


@dataclass(frozen=True)
class _FenceLine:
    start: int
    end: int  # the end of the line, before its newline
    opens: bool
    lang: str


def _fence_lines(text: str) -> list[_FenceLine]:
    """Lines that open or close a fenced code block, in order. A line opening and
    closing a block on its own (```x```) changes nothing and is left out."""
    found: list[_FenceLine] = []
    inside = False
    for match in re.finditer(r"^[ \t]*```([^\n]*)$", text, re.MULTILINE):
        info = match.group(1)
        if not inside and info.rstrip().endswith(FENCE):
            continue
        words = info.split()
        lang = words[0] if words and not inside and len(words[0]) <= 30 else ""
        inside = not inside
        found.append(_FenceLine(match.start(), match.end(), inside, lang))
    return found


def _open_lang(fences: Sequence[_FenceLine], at: int) -> str | None:
    """The language of the code block open at offset `at` ("" for none given), or None."""
    last = None
    for fence in fences:
        if fence.start >= at:
            break
        last = fence
    return last.lang if last is not None and last.opens else None


def _in_fence_line(fences: Sequence[_FenceLine], at: int) -> _FenceLine | None:
    return next((f for f in fences if f.start < at <= f.end), None)


def _bad_cut(fences: Sequence[_FenceLine], at: int) -> bool:
    """A cut inside a fence line, just before a closing one or just after an opening one
    would leave an empty code block in one of the two messages."""
    return any(
        f.start < at <= f.end or (at == f.start and not f.opens) or (at == f.end + 1 and f.opens)
        for f in fences
    )


def _cut(text: str, start: int, budget: int, fences: Sequence[_FenceLine]) -> int:
    """Where the message starting at `start` ends: the best break in its second half."""
    end = start + budget
    if end >= len(text):
        return len(text)
    floor = start + max(1, budget // 2)
    for pattern in _BREAKS:
        cuts = [
            m.end()
            for m in pattern.finditer(text, start, end)
            if floor <= m.end() <= end and not _bad_cut(fences, m.end())
        ]
        if cuts:
            return cuts[-1]
    fence = _in_fence_line(fences, end)  # never cut a fence marker in two
    return fence.start if fence is not None and fence.start > start else end


def split_spans(text: str, limit: int = MESSAGE_LIMIT) -> list[tuple[int, int, str, str]]:
    """How `split_message` cuts `text`: (start, end, reopen, close) per message, where
    `text[start:end]` tile the text and `reopen`/`close` are the fence lines added
    around the piece when it starts or ends inside a code block."""
    fences = _fence_lines(text)
    spans = []
    start = 0
    while start < len(text) or not spans:
        lang = _open_lang(fences, start)
        reopen = "" if lang is None else f"{FENCE}{lang}\n"
        budget = limit - len(reopen)
        end = _cut(text, start, budget, fences)
        if _open_lang(fences, end) is not None:  # room for the closing fence
            end = _cut(text, start, budget - len(FENCE) - 1, fences)
        close = ""
        if _open_lang(fences, end) is not None:
            close = FENCE if text[:end].endswith("\n") else f"\n{FENCE}"
        spans.append((start, end, reopen, close))
        start = end
    return spans


def split_message(text: str, limit: int = MESSAGE_LIMIT) -> list[str]:
    """`text` as messages of at most `limit` characters, each ending after a blank line,
    else a line, a sentence or a word; a code block cut in two is closed at the cut and
    reopened, with its language, in the next message."""
    return [f"{reopen}{text[a:b]}{close}" for a, b, reopen, close in split_spans(text, limit)]


def thread_name(question: str) -> str:
    """A thread title from the question: one line, at most 100 characters, cut at a word."""
    name = " ".join(_MENTION_RE.sub(" ", question).split()) or "Question"
    if len(name) <= THREAD_NAME_LIMIT:
        return name
    cut = name[: THREAD_NAME_LIMIT - 1]
    word_end = cut.rfind(" ")
    return (cut[:word_end] if word_end > THREAD_NAME_LIMIT // 2 else cut).rstrip() + "…"


def strip_mentions(text: str) -> str:
    """The text without user, role and bot mentions."""
    return _MENTION_RE.sub("", text).strip()


def source_lines(citations: Iterable[Citation], limit: int = MAX_SOURCES) -> list[str]:
    """`[n] title <uri>` for the first `limit` cited passages, in number order; the angle
    brackets keep Discord from unfurling a preview of every link."""
    lines = []
    chosen = list(citations)[:limit]
    for citation in sorted(chosen, key=lambda c: c.get("n", 0)):
        title = escape_markdown(" ".join(str(citation.get("title") or "untitled").split()))
        uri = citation.get("uri") or ""
        link = f" <{uri}>" if uri.startswith(("http://", "https://")) else ""
        lines.append(f"[{citation.get('n', len(lines) + 1)}] {title}{link}")
    return lines


def _code_ranges(text: str) -> list[tuple[int, int]]:
    """Character ranges of fenced blocks and inline code."""
    ranges = []
    opened = None
    for fence in _fence_lines(text):
        if fence.opens:
            opened = fence.start
        elif opened is not None:
            ranges.append((opened, fence.end))
            opened = None
    if opened is not None:
        ranges.append((opened, len(text)))
    ranges += [m.span() for m in _INLINE_CODE_RE.finditer(text)]
    return ranges


def _spans_to_mark(text: str, flags: Iterable[Flag]) -> list[tuple[int, int, FlagKind]]:
    """Flagged (start, end, kind) spans grown over inline code they touch, fenced code
    dropped (Markdown does not apply there), overlapping spans merged."""
    code = _code_ranges(text)
    blocks = [(a, b) for a, b in code if text.startswith(FENCE, a)]
    spans = []
    for flag in flags:
        if flag.get("type") not in DOUBT_FLAGS or "start" not in flag or "end" not in flag:
            continue
        start, end = max(0, int(flag["start"])), min(len(text), int(flag["end"]))
        if start >= end or any(a < end and start < b for a, b in blocks):
            continue
        for a, b in code:
            if a < end and start < b:
                start, end = min(start, a), max(end, b)
        spans.append((start, end, flag["type"]))
    merged: list[tuple[int, int, FlagKind]] = []
    for start, end, kind in sorted(spans):
        if merged and start <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(end, merged[-1][1]), merged[-1][2])
        else:
            merged.append((start, end, kind))
    return merged


def _underline(piece: str) -> str:
    """`__piece__`, with underscores outside inline code escaped so they stay literal."""
    parts = re.split(r"(`[^`\n]+`)", piece.strip())
    body = "".join(p if p.startswith("`") else p.replace("_", r"\_") for p in parts)
    lead = piece[: len(piece) - len(piece.lstrip())]
    trail = piece[len(piece.rstrip()) :]
    return f"{lead}__{body}__{trail}"


def mark_flags(text: str, flags: Sequence[Flag]) -> tuple[str, str]:
    """The answer with flagged spans underlined, and a one-line legend ("" when none).

    Flags are the API's `Answer.flags` with character offsets into `text`: uncertain
    spans and names the index does not know. Support and guard flags are not spans a
    reader should doubt and are left out.
    """
    spans = _spans_to_mark(text, flags)
    if not spans:
        return text, ""
    out = text
    for start, end, _ in reversed(spans):
        out = out[:start] + _underline(out[start:end]) + out[end:]
    kinds = [LEGENDS[k] for k in DOUBT_FLAGS if any(kind == k for *_, kind in spans)]
    return out, f"-# Underlined: {'; '.join(kinds)}."


def compile_lines(flags: Iterable[Flag]) -> list[str]:
    """A short line per code block of the answer: its compile verdict, as subtext."""
    return [
        f"-# {escape_markdown(describe_compile(flag))}"
        for flag in flags
        if flag.get("type") == "compile"
    ]


def render_answer(answer: dict[str, Any], flags: bool) -> str:
    """The whole reply to one question as Discord Markdown (to be split into messages):
    the answer, the flag legend, each code block's compile verdict (always), then every
    cited source, or, when the API abstained, up to five of the closest passages it found."""
    text = answer.get("text", "").strip()
    legend = ""
    if flags:
        text, legend = mark_flags(text, answer.get("flags", []))
    verdicts = "\n".join(compile_lines(answer.get("flags", [])))
    parts = [text] + [part for part in (legend, verdicts) if part]
    citations = answer.get("citations", [])
    # Every cited source is listed (a marker with no source is a dead end); the closest
    # passages of an abstention are cut to the first few.
    lines = source_lines(citations, MAX_SOURCES if answer.get("abstained") else len(citations))
    if lines:
        header = "**Closest passages**" if answer.get("abstained") else "**Sources**"
        parts.append("\n".join([header, *lines]))
    return "\n\n".join(parts)


def answer_body(content: str) -> str:
    """One of the bot's messages without its sources, closest passages and legend, for
    use as conversation history."""
    lines = content.split("\n")
    for i, line in enumerate(lines):
        if line.startswith(FOOTERS):
            lines = lines[:i]
            break
    return "\n".join(lines).strip()


def history_turns(
    messages: Iterable[tuple[bool, str]], max_turns: int = 20, max_chars: int = 8000
) -> list[dict[str, str]]:
    """API history from (is_bot, content) messages, oldest first: the bot's messages are
    "assistant" turns without their footers, everyone else's "user" turns without
    mentions; consecutive messages of one role are joined (an answer spans messages)."""
    turns: list[dict[str, str]] = []
    for is_bot, content in messages:
        text = answer_body(content) if is_bot else strip_mentions(content)
        if not text:
            continue
        role = "assistant" if is_bot else "user"
        if turns and turns[-1]["role"] == role:
            turns[-1]["content"] = f"{turns[-1]['content']}\n\n{text}"
        else:
            turns.append({"role": role, "content": text})
    for turn in turns:
        turn["content"] = turn["content"][:max_chars]
    return turns[-max_turns:]
