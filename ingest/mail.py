"""Mail and threads: the library every community source builds its documents with.

Mail is messy: odd charsets, missing headers, quoted history, signatures, list
footers and scrubbed attachments. Everything here is lenient (bad input decodes
with replacement characters or becomes a logged `Skip`, never an exception) and
privacy-preserving: authors appear by name only, and anything that looks like an
e-mail address (`x@y.z`, pipermail's `x at y.z`, `x%40y.z`) is removed from
every field. Message-IDs often embed addresses too, so they are only ever kept
hashed (`msgid_hash`, the same hash HyperKitty uses in its URLs).

Threads are rebuilt by `Threader` (references first, then normalized subject
within a time window) and rendered by `render_posts`, which GitLab and Discord
sources reuse so every conversation-like document has the same shape:
`meta["messages"]` lists each post's author, date, URL and character span. The
sources are elsewhere: local mbox files in `ingest/mbox.py`, pipermail archives in
`ingest/pipermail.py`, GitLab and Discord in their own modules.
"""

from __future__ import annotations

import base64
import codecs
import email
import hashlib
import mailbox
import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.errors import HeaderParseError
from email.header import decode_header
from email.message import Message
from email.parser import BytesHeaderParser
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import Any

from bs4 import BeautifulSoup

from sciknow.config import Profile
from sciknow.ingest.base import SkipLog
from sciknow.ingest.symbols import find_symbols
from sciknow.records import Document

# ---------------------------------------------------------------------------
# Addresses

_LOCAL = r"[A-Za-z0-9._%+-]+"
# The last label must be letters, so version specs such as petsc@3.20.1 survive.
_DOMAIN = r"(?:[A-Za-z0-9-]+\.)+[A-Za-z]{2,}"
ADDRESS_RE = re.compile(rf"(?<![\w.%+-])(?P<local>{_LOCAL})(?:@|%40)(?P<domain>{_DOMAIN})\b")
# Pipermail writes "x at y.z". That is also ordinary prose ("documented at
# petsc.org"), so these words before " at " mark prose, not an address.
SPELLED_ADDRESS_RE = re.compile(rf"(?<![\w.%+-])(?P<local>{_LOCAL})[ \t]+at[ \t]+{_DOMAIN}\b")
_PROSE_BEFORE_AT = frozenset(
    "look looking looked available found hosted documented located posted online here there "
    "it is are was were be been page site website docs documentation manual me us them you "
    "one up out and or but not also only see check visit starts started stored listed "
    "described explained shown published released archived kept".split()
)
ADDRESS_PLACEHOLDER = "[address removed]"


def _replace_addresses(text: str, replace: Callable[[re.Match[str]], str]) -> str:
    """Apply `replace` to `x@y.z` addresses first, then to spelled-out `x at y.z` ones."""
    text = ADDRESS_RE.sub(replace, text)
    return SPELLED_ADDRESS_RE.sub(
        lambda m: m[0] if m["local"].casefold() in _PROSE_BEFORE_AT else replace(m), text
    )


def scrub_addresses(text: str) -> str:
    """Replace every address-looking string with a placeholder."""
    return _replace_addresses(text, lambda m: ADDRESS_PLACEHOLDER)


def _addresses_to_local_parts(text: str) -> str:
    """For names: `jdoe@example.org` says less than `jdoe` but is no better a name."""
    return _replace_addresses(text, lambda m: m["local"])


# ---------------------------------------------------------------------------
# Headers, subjects, dates

_PREFIX_RE = re.compile(
    r"^\s*(?:(?:re|fwd?|aw|sv|antw|vs|wg|tr|r)\s*(?:\[\d+\]|\(\d+\))?\s*:\s*|\[[^\]\n]*\]\s*)",
    re.IGNORECASE,
)
_REPLY_RE = re.compile(r"^\s*(?:\[[^\]\n]*\]\s*)*(?:re|fwd?|aw|sv|antw|vs|wg|tr|r)\s*:", re.I)


def clean_subject(subject: str) -> str:
    """Subject without "Re:"/"Fwd:" prefixes and "[list]" tags, for titles and matching."""
    previous = None
    while previous != subject:
        previous, subject = subject, _PREFIX_RE.sub("", subject, count=1)
    return " ".join(subject.split())


def subject_key(subject: str) -> str:
    return clean_subject(subject).casefold()


def is_reply_subject(subject: str) -> bool:
    return bool(_REPLY_RE.match(subject))


def decode_bytes(data: bytes, charset: str | None = None) -> str:
    """Decode with the declared charset if Python knows it, else UTF-8, else cp1252; never fail."""
    if charset and charset.lower() not in ("us-ascii", "ascii", "unknown-8bit"):
        try:
            return data.decode(codecs.lookup(charset).name, "replace")
        except LookupError:
            pass
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return data.decode("cp1252", "replace")


def decode_header_value(value: Any) -> str:
    """A header as text: RFC 2047 words and raw 8-bit bytes decoded, whitespace collapsed."""
    if value is None:
        return ""
    try:
        parts = decode_header(value)
    except (ValueError, LookupError, AssertionError, HeaderParseError):
        parts = [(str(value), None)]
    text = "".join(decode_bytes(p, c) if isinstance(p, bytes) else p for p, c in parts)
    return " ".join(text.split())


_NAME_IN_PARENS_RE = re.compile(r"\(([^()]*)\)\s*$")


def author_name(value: str) -> str:
    """The display name from a From header; the address's local part when there is no name."""
    if "<" in value:
        name = value.split("<", 1)[0]
    elif (match := _NAME_IN_PARENS_RE.search(value)) and match[1].strip():
        name = match[1]  # pipermail: "jdoe at example.org (Jane Doe)"
    else:
        name = value
    name = _addresses_to_local_parts(name.strip(" \t\"'") or value).strip(" \t\"'<>")
    return " ".join(scrub_addresses(name).split()) or "unknown"


def parse_date(value: str) -> datetime | None:
    """RFC 2822 date → aware UTC datetime (naive dates are taken as UTC); None if unparsable."""
    try:
        date = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    if date.tzinfo is None:
        date = date.replace(tzinfo=UTC)
    return date.astimezone(UTC)


def iso(date: datetime | None) -> str | None:
    return date.isoformat() if date else None


def msgid_hash(message_id: str) -> str:
    """HyperKitty's message hash: base32 of SHA-1 of the bare id (stable, address-free)."""
    digest = hashlib.sha1(message_id.strip().strip("<>").encode("utf-8", "replace")).digest()
    return base64.b32encode(digest).decode("ascii")


_ANGLE_ID_RE = re.compile(r"<([^<>\s]+)>")


def _message_ids(value: str) -> list[str]:
    ids = _ANGLE_ID_RE.findall(value)
    return ids or value.split()[:1]


# ---------------------------------------------------------------------------
# Bodies

_CUT_RES = [
    re.compile(r"^-{5,}[ \t]*next part[ \t]*-{5,}[ \t]*$", re.I | re.M),  # scrubbed attachments
    re.compile(r"^_{30,}\s*\n(?:.*\n){0,2}?.*(?:mailing list|listinfo|unsubscribe)", re.I | re.M),
    re.compile(r"^[ \t]*-{3,}[ \t]*Original Message[ \t]*-{3,}[ \t]*$", re.I | re.M),
    re.compile(r"^[ \t]*\**From:\**[ \t].*\n(?:.*\n){0,2}?[ \t]*\**Sent:\**[ \t]", re.I | re.M),
    re.compile(r"^--[ \t]*$", re.M),  # signature separator
]
_QUOTE_RE = re.compile(r"^\s*>")
_WROTE_RE = re.compile(
    r"(?:wrote|writes|schrieb|a écrit|escribió|ha scritto|skrev|schreef)\s*:\s*$", re.I
)
_ATTRIBUTION_START_RE = re.compile(r"^\s*(?:On|Am|Le|El|Il|Op|Den|Quoting)\s", re.I)


def html_to_text(html: str) -> str:
    return BeautifulSoup(html, "html.parser").get_text("\n")


def _part_text(part: Message) -> str:
    payload = part.get_payload(decode=True)
    if not isinstance(payload, bytes):
        return ""
    return decode_bytes(payload, part.get_content_charset())


def message_text(msg: Message) -> str:
    """The readable body: inline text/plain parts, else the first HTML part as text."""
    plain: list[str] = []
    html: str | None = None
    for part in msg.walk():
        if part.is_multipart() or part.get_content_disposition() == "attachment":
            continue
        if part.get_content_type() == "text/plain":
            plain.append(_part_text(part))
        elif part.get_content_type() == "text/html" and html is None:
            html = _part_text(part)
    if plain:
        return "\n\n".join(plain)
    return html_to_text(html) if html is not None else ""


def _drop_quotes(lines: list[str]) -> list[str]:
    """Remove `>` lines and the "On <date>, <someone> wrote:" lines that introduce them."""
    keep = [not _QUOTE_RE.match(line) for line in lines]
    for i, line in enumerate(lines):
        if not (keep[i] and _WROTE_RE.search(line)):
            continue
        keep[i] = False
        # Long attributions wrap: drop up to two lines back to the one starting "On ...".
        for j in range(i - 1, max(-1, i - 3), -1):
            if not lines[j].strip():
                break
            if _ATTRIBUTION_START_RE.match(lines[j]):
                keep[j:i] = [False] * (i - j)
                break
    return [line for line, kept in zip(lines, keep, strict=True) if kept]


def clean_body(text: str) -> str:
    """Own words only: no quoted history, signature, list footer, attachment notice or address."""
    text = text.replace("\r\n", "\n").replace("\r", "\n").replace("\x00", "")
    cut = min((m.start() for r in _CUT_RES if (m := r.search(text))), default=len(text))
    lines = [line.rstrip() for line in _drop_quotes(text[:cut].split("\n"))]
    while lines and (not lines[-1] or set(lines[-1]) <= {"_", "-"}):
        lines.pop()
    body = re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip("\n")
    return scrub_addresses(body)


# ---------------------------------------------------------------------------
# Messages


class MalformedMessage(ValueError):
    """A message with nothing to read: no header block at all."""


@dataclass
class MailMessage:
    """One message, already cleaned: no addresses, hashed ids, own words only."""

    msgid: str
    refs: list[str]
    subject: str
    author: str
    date: datetime | None
    body: str
    url: str = ""


MAX_REFS = 6


def synthetic_id(author: str, date: datetime | None, subject: str, body: str) -> str:
    """A stable id for a message without Message-ID, from its content."""
    content = f"{author}\n{iso(date)}\n{subject}\n{body}".encode("utf-8", "replace")
    return msgid_hash("sciknow-" + hashlib.sha1(content).hexdigest())


def parse_message(msg: Message, body: bool = True) -> MailMessage:
    """Parse one e-mail; raise `MalformedMessage` when it has no header block at all.

    `body=False` (for messages with a Message-ID) skips the body: threading needs
    only the headers.
    """
    if not msg.keys():
        raise MalformedMessage("no header block" if msg.defects else "empty message")
    subject = scrub_addresses(decode_header_value(msg.get("Subject")))
    author = author_name(decode_header_value(msg.get("From")))
    date = parse_date(decode_header_value(msg.get("Date")))
    own = _message_ids(decode_header_value(msg.get("Message-ID")))
    text = clean_body(message_text(msg)) if body or not own else ""
    parents = _message_ids(decode_header_value(msg.get("In-Reply-To")))
    ancestors = _message_ids(decode_header_value(msg.get("References")))
    # Nearest ancestors first, plus the thread root: enough to link, bounded in memory.
    refs = dict.fromkeys(msgid_hash(i) for i in [*parents, *ancestors[::-1]][: MAX_REFS - 1])
    if ancestors:
        refs[msgid_hash(ancestors[0])] = None
    msgid = msgid_hash(own[0]) if own else synthetic_id(author, date, subject, text)
    refs.pop(msgid, None)
    return MailMessage(msgid, list(refs), subject, author, date, text)


def iter_mbox(path: Path, skips: SkipLog, label: str = "") -> Iterator[MailMessage]:
    """Stream the messages of an mbox file; malformed messages become Skips."""
    box = mailbox.mbox(path, create=False)
    try:
        for key in box.iterkeys():
            message = read_mbox_message(box, key, skips, label or str(path))
            if message is not None:
                yield message
    finally:
        box.close()


def read_mbox_message(
    box: mailbox.mbox, key: int, skips: SkipLog, label: str, headers_only: bool = False
) -> MailMessage | None:
    """One message, or None (and a Skip) if it is malformed; `headers_only` for threading."""
    try:
        data = box.get_bytes(key)
        if headers_only:
            head = BytesHeaderParser().parsebytes(data)
            if _message_ids(decode_header_value(head.get("Message-ID"))):
                return parse_message(head, body=False)
        return parse_message(email.message_from_bytes(data))
    except Exception as err:  # one broken message must never stop an archive
        skips.skip(f"{label}#{key}", f"malformed message: {err or type(err).__name__}")
        return None


# ---------------------------------------------------------------------------
# Threads


class Threader:
    """Assigns messages to threads: by Message-ID references first, then by subject.

    Feed messages roughly in date order. A reply whose parent has not been seen
    reserves the parent's id for its own thread, so a late-arriving parent joins
    it. The subject fallback applies only to messages that look like replies
    ("Re:" or references to unknown messages) and only within `window` of the
    matching thread's latest message, so two people asking the same question
    months apart stay in separate threads.
    """

    def __init__(self, window: timedelta) -> None:
        self.window = window
        self.thread_of: dict[str, str] = {}
        self.by_subject: dict[str, tuple[str, datetime | None]] = {}

    def add(
        self, msgid: str, refs: list[str], subject: str, date: datetime | None, new_thread: str
    ) -> str:
        """Return the thread of this message (`new_thread` when it starts one)."""
        thread = self.thread_of.get(msgid) or next(
            (self.thread_of[r] for r in refs if r in self.thread_of), None
        )
        if thread is None and (refs or is_reply_subject(subject)):
            thread = self._by_subject(subject_key(subject), date)
        thread = thread or new_thread
        for ident in (msgid, *refs):
            self.thread_of.setdefault(ident, thread)
        self.remember(thread, [], subject_key(subject), date)
        return thread

    def _by_subject(self, key: str, date: datetime | None) -> str | None:
        if not key or key not in self.by_subject:
            return None
        thread, last = self.by_subject[key]
        if date is None or last is None or abs(date - last) <= self.window:
            return thread
        return None

    def remember(self, thread: str, ids: Iterable[str], key: str, date: datetime | None) -> None:
        """Record ids and the subject's latest activity for `thread` (also to restore state)."""
        for ident in ids:
            self.thread_of.setdefault(ident, thread)
        if not key:
            return
        old = self.by_subject.get(key)
        if old is None or old[0] != thread or (date and (old[1] is None or date > old[1])):
            self.by_subject[key] = (thread, date)

    def forget(self, thread: str, ids: Iterable[str], key: str) -> None:
        for ident in ids:
            if self.thread_of.get(ident) == thread:
                del self.thread_of[ident]
        if self.by_subject.get(key, ("",))[0] == thread:
            del self.by_subject[key]


# ---------------------------------------------------------------------------
# Rendering conversations (mail threads, issues, chats)


@dataclass
class Post:
    """One message of a conversation, ready to render."""

    author: str
    date: datetime | None
    url: str
    body: str
    maintainer: bool = False


def maintainer_set(names: Iterable[str]) -> frozenset[str]:
    return frozenset(" ".join(n.split()).casefold() for n in names if n.strip())


def is_maintainer(author: str, maintainers: frozenset[str]) -> bool:
    return " ".join(author.split()).casefold() in maintainers


def _post_header(post: Post) -> str:
    when = post.date.strftime("%Y-%m-%d %H:%M UTC") if post.date else "date unknown"
    role = " [maintainer]" if post.maintainer else ""
    return f"{post.author}{role} ({when}):"


def render_posts(posts: list[Post]) -> tuple[str, list[dict[str, Any]]]:
    """Text with each post introduced by an author/date line, and each post's span in it."""
    blocks: list[str] = []
    spans: list[dict[str, Any]] = []
    start = 0
    for post in posts:
        block = f"{_post_header(post)}\n{post.body}".rstrip()
        spans.append(
            {
                "author": post.author,
                "date": iso(post.date),
                "url": post.url,
                "start": start,
                "end": start + len(block),
                "maintainer": post.maintainer,
            }
        )
        blocks.append(block)
        start += len(block) + 2
    return "\n\n".join(blocks), spans


@dataclass
class ThreadContext:
    """What a thread document needs besides its messages."""

    source: str
    profile: Profile
    maintainers: frozenset[str] = field(default_factory=frozenset)


def thread_document(ctx: ThreadContext, origin: str, messages: list[MailMessage]) -> Document:
    """One mail thread: question first, then replies in date order."""
    unique = list({m.msgid: m for m in messages}.values())
    posts = [
        Post(m.author, m.date, m.url, m.body, is_maintainer(m.author, ctx.maintainers))
        for m in unique
    ]
    text, spans = render_posts(posts)
    title = next((clean_subject(m.subject) for m in unique if clean_subject(m.subject)), "")
    title = title or "(no subject)"
    return Document(
        id=f"{ctx.source}:{origin}",
        source=ctx.source,
        kind="mail",
        uri=unique[0].url,
        title=title,
        text=text,
        origin=origin,
        official=False,
        date=iso(unique[0].date),
        symbols=find_symbols(f"{title}\n{text}", ctx.profile.symbol_prefixes),
        meta={
            "messages": spans,
            "maintainer_replied": any(p.maintainer for p in posts[1:]),
            "replies": len(posts) - 1,
        },
    )
