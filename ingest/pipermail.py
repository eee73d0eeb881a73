"""Mailman 2 (pipermail) list archives → one mail-thread `Document` per thread.

From a list URL (`https://lists.mcs.anl.gov/pipermail/petsc-users/`) the source
reads the archive index, then each month's `YYYY-Month.txt.gz` (an mbox with
pipermail's `From user at domain` lines). A month without a text archive (404)
is read from its HTML pages instead (`YYYY-Month/date.html` lists `NNNNNN.html`).

Linking messages to their pages: pipermail appends each message to the month's
text archive as it numbers it, so text order is numbering order. The source
still does not trust position alone: it reads the month's `date.html` and pairs
each text message with the first unused page of the same subject, in numbering
order, and only the leftovers by position. A message that cannot be paired is
skipped (logged): every message in the index links to its own page.

Incremental and resumable: `State.extra["months_done"]` lists months ingested
completely; a run reads every month not in it, oldest first, and the newest month
always (it is still growing, so it is never marked done). Threads continue across
months, so `State.extra["threads"]` keeps, for threads active in the last
`keep_days`, their message-id hashes, subject and months; when a new month adds
to such a thread, the earlier months are re-read (cached within a run) and the
whole thread is re-yielded under the same id, replacing the old document. A month
that fails (network, corrupt gzip, no date.html) is logged as a Skip, is not
marked done, and is retried on the next run. `State.origins` maps thread ids (the
root message URL) to content hashes, so unchanged threads are not re-yielded.
"""

from __future__ import annotations

import calendar
import gzip
import re
import tempfile
import zlib
from collections import OrderedDict, deque
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urljoin, urlsplit

from bs4 import BeautifulSoup

from sciknow.config import Profile
from sciknow.ingest.base import SkipLog, State
from sciknow.ingest.http import Fetcher, FetchError, NotFound
from sciknow.ingest.mail import (
    MailMessage,
    ThreadContext,
    Threader,
    author_name,
    clean_body,
    decode_bytes,
    html_to_text,
    iter_mbox,
    maintainer_set,
    msgid_hash,
    scrub_addresses,
    subject_key,
    synthetic_id,
    thread_document,
)
from sciknow.records import Document

MONTH_NUMBERS = {name: i for i, name in enumerate(calendar.month_name) if name}
_MONTH_PAGE_RE = re.compile(r"(\d{4})-([A-Za-z]+)/(?:thread|date|subject|author)\.html")
_MONTH_TEXT_RE = re.compile(r"(\d{4})-([A-Za-z]+)\.txt(?:\.gz)?")
_MESSAGE_HREF_RE = re.compile(r"\d+\.html")


class MonthError(Exception):
    """A month could not be read completely; it stays not-done."""


@dataclass(frozen=True)
class Month:
    name: str  # "2024-January", as pipermail spells it
    text_url: str | None

    @property
    def order(self) -> tuple[int, int]:
        year, month = self.name.split("-")
        return int(year), MONTH_NUMBERS[month]


def parse_index(html: str, list_url: str) -> list[Month]:
    """Months linked from the archive index page, oldest first (monthly volumes only)."""
    names: dict[str, None] = {}
    text: dict[str, str] = {}
    for link in BeautifulSoup(html, "html.parser").find_all("a", href=True):
        href = str(link["href"])
        if match := _MONTH_PAGE_RE.fullmatch(href):
            names.setdefault(f"{match[1]}-{match[2]}")
        elif match := _MONTH_TEXT_RE.fullmatch(href):
            name = f"{match[1]}-{match[2]}"
            names.setdefault(name)
            if href.endswith(".gz") or name not in text:
                text[name] = urljoin(list_url, href)
    months = [Month(n, text.get(n)) for n in names if n.split("-")[1] in MONTH_NUMBERS]
    return sorted(months, key=lambda m: m.order)


def parse_date_index(html: str) -> list[tuple[str, str]]:
    """(page href, subject) for each message listed in a month's date.html, by number."""
    entries = [
        (str(a["href"]), a.get_text(" ", strip=True))
        for a in BeautifulSoup(html, "html.parser").find_all("a", href=_MESSAGE_HREF_RE)
    ]
    return sorted(entries, key=lambda e: int(e[0].split(".")[0]))


def _pairing_key(subject: str) -> str:
    return " ".join(subject.split()).casefold()


def pair_pages(messages: list[MailMessage], entries: list[tuple[str, str]]) -> list[str | None]:
    """Page href for each message: same subject in numbering order first, then by position."""
    by_subject: dict[str, deque[str]] = {}
    for href, subject in entries:
        by_subject.setdefault(_pairing_key(subject), deque()).append(href)
    pages: list[str | None] = []
    for message in messages:
        queue = by_subject.get(_pairing_key(message.subject))
        pages.append(queue.popleft() if queue else None)
    taken = set(pages)
    rest = deque(href for href, _ in entries if href not in taken)
    return [page or (rest.popleft() if rest else None) for page in pages]


_TZ_HOURS = {
    "UTC": 0, "GMT": 0, "EST": -5, "EDT": -4, "CST": -6, "CDT": -5,
    "MST": -7, "MDT": -6, "PST": -8, "PDT": -7, "CET": 1, "CEST": 2,
}  # fmt: skip
_PAGE_DATE_RE = re.compile(
    r"([A-Z][a-z]{2})\s+(\d{1,2})\s+(\d\d):(\d\d):(\d\d)\s+(?:([A-Z]{2,5})\s+)?(\d{4})"
)


def parse_page_date(text: str) -> datetime | None:
    """Pipermail pages show `Mon Jan  6 10:11:12 CST 2020`; unknown zones are taken as UTC."""
    match = _PAGE_DATE_RE.search(text)
    if not match or match[1] not in calendar.month_abbr:
        return None
    month = list(calendar.month_abbr).index(match[1])
    offset = timedelta(hours=_TZ_HOURS.get(match[6] or "UTC", 0))
    hour, minute, second = int(match[3]), int(match[4]), int(match[5])
    try:
        local = datetime(int(match[7]), month, int(match[2]), hour, minute, second, tzinfo=UTC)
    except ValueError:
        return None
    return local - offset


def parse_message_page(html: str, url: str) -> MailMessage:
    """One pipermail HTML message page → a message (own Message-ID from the reply link)."""
    soup = BeautifulSoup(html, "html.parser")
    subject = scrub_addresses(soup.h1.get_text(" ", strip=True)) if soup.h1 else ""
    bold, italic = soup.find("b"), soup.find("i")
    author = author_name(bold.get_text(" ", strip=True)) if bold else "unknown"
    date = parse_page_date(italic.get_text(" ", strip=True)) if italic else None
    article = re.search(r"<!--beginarticle-->(.*?)<!--endarticle-->", html, re.S | re.I)
    body = clean_body(html_to_text(article[1]) if article else "")
    mailto = soup.find("a", href=re.compile(r"^mailto:", re.I))
    query = parse_qs(urlsplit(str(mailto["href"])).query) if mailto else {}
    own = unquote(query.get("In-Reply-To", [""])[0]).strip()
    msgid = msgid_hash(own) if own else synthetic_id(author, date, subject, body)
    return MailMessage(msgid, [], subject, author, date, body, url)


@dataclass
class ThreadEntry:
    """What the state remembers about a recent thread, to extend it next month."""

    ids: list[str] = field(default_factory=list)
    subject: str = ""
    last: datetime | None = None
    months: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        last = self.last.isoformat() if self.last else None
        return {
            "ids": list(self.ids),
            "subject": self.subject,
            "last": last,
            "months": list(self.months),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ThreadEntry:
        last = datetime.fromisoformat(data["last"]) if data.get("last") else None
        return cls(list(data["ids"]), data["subject"], last, list(data["months"]))


def _date_key(message: MailMessage) -> datetime:
    return message.date or datetime.max.replace(tzinfo=UTC)


class PipermailSource:
    """A Mailman 2 list archive, read month by month over HTTP (see the module docstring)."""

    MONTH_CACHE = 3

    def __init__(
        self,
        name: str,
        location: str,
        profile: Profile,
        *,
        maintainers: Iterable[str] = (),
        window_days: float = 30,
        keep_days: float = 90,
        max_months: int | None = None,
        delay: float = 1.0,
        timeout: float = 30.0,
        retries: int = 3,
        fetcher: Fetcher | None = None,
    ) -> None:
        self.name = name
        # Accept the list URL with or without its trailing slash or "index.html".
        self.list_url = location.removesuffix("index.html").rstrip("/") + "/"
        self.ctx = ThreadContext(name, profile, maintainer_set(maintainers))
        self.window = timedelta(days=window_days)
        self.keep = timedelta(days=keep_days)
        self.max_months = max_months
        self.fetcher = fetcher or Fetcher(delay=delay, timeout=timeout, retries=retries)
        self._skips = SkipLog()
        self.skipped = self._skips.skipped
        self._restore(None)

    def _restore(self, since: State | None) -> None:
        extra = since.extra if since else {}
        self._origins: dict[str, str] = dict(since.origins) if since else {}
        self._done: set[str] = set(extra.get("months_done", []))
        self._threads = {o: ThreadEntry.from_dict(d) for o, d in extra.get("threads", {}).items()}
        self._threader = Threader(self.window)
        for origin, entry in self._threads.items():
            self._threader.remember(origin, entry.ids, entry.subject, entry.last)
        self._cache: OrderedDict[str, list[MailMessage]] = OrderedDict()

    def iter_documents(self, since: State | None) -> Iterator[Document]:
        self._restore(since)
        try:
            index = decode_bytes(self.fetcher.get(self.list_url))
        except FetchError as err:
            self._skips.skip(self.list_url, str(err))
            return
        months = parse_index(index, self.list_url)
        if not months:
            self._skips.skip(self.list_url, "no monthly archives found on the index page")
            return
        latest = months[-1].name
        todo = [m for m in months if m.name not in self._done or m.name == latest]
        known = {m.name: m for m in months}
        for month in todo[: self.max_months]:
            try:
                yield from self._ingest_month(month, known)
            except MonthError as err:
                self._skips.skip(f"{self.list_url}{month.name}", str(err))
                continue
            if month.name != latest:
                self._done.add(month.name)
            self._prune()

    def _ingest_month(self, month: Month, known: dict[str, Month]) -> Iterator[Document]:
        """Thread the month's messages into the recent threads and yield every changed thread."""
        touched: dict[str, list[MailMessage]] = {}
        for message in sorted(self._month_messages(month), key=_date_key):
            origin = self._threader.add(
                message.msgid, message.refs, message.subject, message.date, message.url
            )
            touched.setdefault(origin, []).append(message)
        for origin, new in touched.items():
            entry = self._threads.get(origin, ThreadEntry())
            ids = set(entry.ids)
            if ids and ids.issuperset(m.msgid for m in new):
                continue  # a re-read of the growing month brought nothing new to this thread
            earlier = [
                m
                for name in entry.months
                if name != month.name and name in known
                for m in self._month_messages(known[name])
                if m.msgid in ids
            ]
            self._extend(entry, month.name, new)
            self._threads[origin] = entry
            doc = thread_document(self.ctx, origin, sorted(earlier + new, key=_date_key))
            if self._origins.get(origin) != doc.content_hash:
                self._origins[origin] = doc.content_hash
                yield doc

    def _extend(self, entry: ThreadEntry, month: str, new: list[MailMessage]) -> None:
        entry.ids = list(dict.fromkeys([*entry.ids, *(m.msgid for m in new)]))
        entry.subject = entry.subject or next((subject_key(m.subject) for m in new), "")
        dates = [d for d in (entry.last, *(m.date for m in new)) if d]
        entry.last = max(dates, default=None)
        if month not in entry.months:
            entry.months.append(month)

    def _prune(self) -> None:
        """Forget threads quiet for `keep_days` before the newest message seen."""
        newest = max((e.last for e in self._threads.values() if e.last), default=None)
        for origin, entry in list(self._threads.items()):
            if newest is None or entry.last is None or entry.last < newest - self.keep:
                self._threader.forget(origin, entry.ids, entry.subject)
                del self._threads[origin]

    def _month_messages(self, month: Month) -> list[MailMessage]:
        """A month's messages with their page URLs, cached for the few most recent months."""
        if month.name not in self._cache:
            self._cache[month.name] = self._read_month(month)
            while len(self._cache) > self.MONTH_CACHE:
                self._cache.popitem(last=False)
        self._cache.move_to_end(month.name)
        return self._cache[month.name]

    def _read_month(self, month: Month) -> list[MailMessage]:
        month_url = f"{self.list_url}{month.name}/"
        entries = parse_date_index(decode_bytes(self._get(f"{month_url}date.html")))
        if month.text_url:
            try:
                data = self.fetcher.get(month.text_url)
            except NotFound:
                pass
            except FetchError as err:
                raise MonthError(str(err)) from None
            else:
                return self._link(month_url, self._parse_text(month, data), entries)
        return self._read_pages(month_url, entries)

    def _get(self, url: str) -> bytes:
        try:
            return self.fetcher.get(url)
        except FetchError as err:
            raise MonthError(str(err)) from None

    def _parse_text(self, month: Month, data: bytes) -> list[MailMessage]:
        """The text archive is an mbox (gzip'd unless the server already unpacked it)."""
        if data[:2] == b"\x1f\x8b":
            try:
                data = gzip.decompress(data)
            except (EOFError, OSError, zlib.error) as err:
                raise MonthError(f"corrupt text archive {month.text_url}: {err}") from None
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp, f"{month.name}.mbox")
            path.write_bytes(data)
            return list(iter_mbox(path, self._skips, month.text_url or month.name))

    def _link(
        self, month_url: str, messages: list[MailMessage], entries: list[tuple[str, str]]
    ) -> list[MailMessage]:
        linked = []
        for message, page in zip(messages, pair_pages(messages, entries), strict=True):
            if page is None:
                self._skips.skip(f"{month_url} ({message.subject!r})", "no page in date.html")
                continue
            message.url = month_url + page
            linked.append(message)
        return linked

    def _read_pages(self, month_url: str, entries: list[tuple[str, str]]) -> list[MailMessage]:
        """Fallback without a text archive: one request per message page."""
        messages = []
        for href, _ in entries:
            url = month_url + href
            try:
                page = self.fetcher.get(url)
            except NotFound:
                self._skips.skip(url, "message page not found")
                continue
            except FetchError as err:
                raise MonthError(str(err)) from None
            messages.append(parse_message_page(decode_bytes(page), url))
        return messages

    def state(self) -> State:
        done = sorted(self._done, key=lambda n: Month(n, None).order)
        threads = {origin: entry.to_dict() for origin, entry in self._threads.items()}
        extra = {"months_done": done, "threads": threads}
        return State(dict(self._origins), complete=False, extra=extra)
