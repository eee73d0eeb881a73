"""Pipermail archives served by a local HTTP server; the real fetching code runs against it."""

from __future__ import annotations

import gzip
import json
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from email.utils import format_datetime
from urllib.parse import quote

import pytest
from support.http import Reply, Request, serving

from sciknow.config import Profile
from sciknow.ingest.http import Fetcher, FetchError, NotFound
from sciknow.ingest.mail import MailMessage
from sciknow.ingest.pipermail import (
    PipermailSource,
    pair_pages,
    parse_index,
    parse_page_date,
)

ADDRESS_RE = re.compile(r"[\w.+-]+(?:@|%40| at )[\w-]+\.[A-Za-z]{2,}")
LIST = "/pipermail/petsc-users/"


@dataclass
class Msg:
    number: int
    msgid: str
    subject: str
    name: str
    local: str
    when: str  # ISO date
    body: str
    parent: str = ""

    def text(self) -> str:
        date = datetime.fromisoformat(self.when)
        refs = f"In-Reply-To: <{self.parent}>\nReferences: <{self.parent}>\n" if self.parent else ""
        return (
            f"From {self.local} at example.org  {date.strftime('%a %b %d %H:%M:%S %Y')}\n"
            f"From: {self.local} at example.org ({self.name})\n"
            f"Date: {format_datetime(date)}\nSubject: {self.subject}\n{refs}"
            f"Message-ID: <{self.msgid}>\n\n{self.body}\n\n"
        )

    def page(self) -> str:
        date = datetime.fromisoformat(self.when).strftime("%a %b %d %H:%M:%S UTC %Y")
        reply = "mailto:petsc-users%40lists.example.org?Subject=" + quote(f"Re: {self.subject}")
        reply += "&In-Reply-To=" + quote(f"<{self.msgid}>")
        return (
            f'<HTML><HEAD><TITLE> {self.subject}</TITLE><LINK REL="made" HREF="{reply}"></HEAD>'
            f"<BODY><H1>{self.subject}</H1><B>{self.name}</B>\n"
            f'<A HREF="{reply}" TITLE="{self.subject}">{self.local} at example.org</A><BR>\n'
            f"<I>{date}</I><P><UL><LI><B>Messages sorted by:</B></LI></UL><HR>\n"
            f"<!--beginarticle-->\n<PRE>{self.body}\n</PRE>\n<!--endarticle-->\n<HR></BODY></HTML>"
        )


MONTHS = {
    "2024-January": [
        Msg(1, "a1@host.example", "[petsc-users] KSPSolve diverges", "Alice Solver", "alice",
            "2024-01-08T10:00:00+00:00", "Why does KSPSolve diverge with -ksp_rtol 1e-12?"),
        Msg(2, "a2@host.example", "Re: [petsc-users] KSPSolve diverges", "Bob Krylov", "bob",
            "2024-01-08T12:00:00+00:00",
            "Try -pc_type lu.\n\nOn Mon, Alice Solver <alice at example.org> wrote:\n> Why?",
            "a1@host.example"),
        Msg(3, "b1@host.example", "[petsc-users] Installing on a cluster", "Carol Mesh", "carol",
            "2024-01-20T09:00:00+00:00", "configure fails.\n-- \nCarol\ncarol at example.org"),
    ],
    "2024-February": [
        Msg(4, "a3@host.example", "Re: [petsc-users] KSPSolve diverges", "Alice Solver", "alice",
            "2024-02-02T10:00:00+00:00", "LU works, thanks!", "a2@host.example"),
        Msg(5, "c1@host.example", "[petsc-users] MatSetValues is slow", "Dan Sparse", "dan",
            "2024-02-10T10:00:00+00:00", "Preallocation? See MatXAIJSetPreallocation."),
        Msg(6, "c2@host.example", "Re: [petsc-users] MatSetValues is slow", "Bob Krylov", "bob",
            "2024-02-10T11:00:00+00:00", "Yes, preallocate.", "c1@host.example"),
    ],
    "2024-March": [
        Msg(7, "d1@host.example", "[petsc-users] DMPlex question", "Carol Mesh", "carol",
            "2024-03-05T10:00:00+00:00", "How do I use DMPlexDistribute?"),
        Msg(8, "d2@host.example", "Re: [petsc-users] DMPlex question", "Bob Krylov", "bob",
            "2024-03-05T11:00:00+00:00", "Call it after DMSetFromOptions."),
    ],
    "2024-April": [
        Msg(9, "e1@host.example", "[petsc-users] SNES line search", "Alice Solver", "alice",
            "2024-04-01T10:00:00+00:00", "Which -snes_linesearch_type?"),
    ],
}  # fmt: skip
NO_TEXT = {"2024-March"}


def index_page(months: list[str]) -> str:
    rows = "".join(
        f'<tr><td>{m}:</td><td><A href="{m}/thread.html">[ Thread ]</a>'
        f'<A href="{m}/date.html">[ Date ]</a></td>'
        f'<td><A href="{m}.txt.gz">[ Gzip\'d Text 1 KB ]</a></td></tr>'
        for m in reversed(months)
    )
    return f"<html><body><table>{rows}</table></body></html>"


def date_page(messages: list[Msg]) -> str:
    items = "".join(
        f'<LI><A HREF="{m.number:06d}.html">{m.subject}\n</A><A NAME="{m.number}">&nbsp;</A>'
        f"\n<I>{m.name}\n</I>"
        for m in sorted(messages, key=lambda m: m.when)
    )
    return f'<html><body><a href="thread.html">[ thread ]</a><ul>{items}</ul></body></html>'


class Archive:
    """Routes: path → responses (status, body, delay) served in turn, the last one repeating."""

    def __init__(self) -> None:
        self.routes: dict[str, list[tuple[int, bytes, float]]] = {}
        self.log: list[str] = []
        self.agents: set[str] = set()

    def set(self, path: str, body: bytes, *before: tuple[int, bytes, float]) -> None:
        self.routes[path] = [*before, (200, body, 0.0)]

    def publish(self, months: dict[str, list[Msg]]) -> None:
        self.set(LIST, index_page(list(months)).encode())
        for month, messages in months.items():
            self.set(f"{LIST}{month}/date.html", date_page(messages).encode())
            if month not in NO_TEXT:
                text = "".join(m.text() for m in messages).encode()
                self.set(f"{LIST}{month}.txt.gz", gzip.compress(text))
            for m in messages:
                self.set(f"{LIST}{month}/{m.number:06d}.html", m.page().encode())

    def fetched(self, suffix: str = "") -> list[str]:
        return [p.removeprefix(LIST) for p in self.log if p.endswith(suffix)]

    def handle(self, request: Request) -> Reply:
        self.log.append(request.path)
        self.agents.add(request.headers.get("user-agent", ""))
        queue = self.routes.get(request.path)
        if not queue:
            return Reply(404, b"not found")
        status, body, delay = queue.pop(0) if len(queue) > 1 else queue[0]
        return Reply(status, body, delay=delay)


@pytest.fixture
def archive() -> Iterator[tuple[Archive, str]]:
    state = Archive()
    with serving(state.handle) as base:
        yield state, base


def source(base: str, **kwargs) -> PipermailSource:
    fetcher = Fetcher(delay=0, timeout=0.3, retries=2, backoff=0.01)
    return PipermailSource(
        "petsc-users", base + LIST, Profile(), maintainers=["Bob Krylov"], fetcher=fetcher, **kwargs
    )


def by_title(docs):
    return {d.title: d for d in docs}


def test_full_run_with_errors_fallback_and_links(archive):
    server, base = archive
    server.publish(MONTHS)
    text = server.routes[f"{LIST}2024-February.txt.gz"][-1][1]
    server.set(f"{LIST}2024-February.txt.gz", text, (500, b"oops", 0.0))
    slow = server.routes[f"{LIST}2024-April.txt.gz"][-1][1]
    server.set(f"{LIST}2024-April.txt.gz", slow, (200, slow, 1.0))
    src = source(base)
    docs = list(src.iter_documents(None))
    assert server.agents == {"sciknow/0.1"}
    assert server.fetched(".txt.gz").count("2024-February.txt.gz") == 2  # 500, then retried
    assert server.fetched(".txt.gz").count("2024-April.txt.gz") == 2  # timeout, then retried
    assert "2024-March/000007.html" in server.fetched()  # HTML fallback after the 404
    latest = by_title(docs)  # the last version of each thread
    ksp = latest["KSPSolve diverges"]
    assert [d.id for d in docs].count(ksp.id) == 2  # re-yielded when February extended it
    assert [m["url"] for m in ksp.meta["messages"]] == [
        f"{base}{LIST}2024-January/000001.html",
        f"{base}{LIST}2024-January/000002.html",
        f"{base}{LIST}2024-February/000004.html",
    ]
    assert ksp.origin == ksp.uri == f"{base}{LIST}2024-January/000001.html"
    assert ksp.id == f"petsc-users:{ksp.origin}"
    assert ksp.kind == "mail" and ksp.official is False and ksp.meta["maintainer_replied"]
    assert ksp.date == "2024-01-08T10:00:00+00:00"
    assert "LU works, thanks!" in ksp.text and ksp.text.count("Why?") == 0
    dm = latest["DMPlex question"]
    assert [m["author"] for m in dm.meta["messages"]] == ["Carol Mesh", "Bob Krylov"]
    assert dm.meta["messages"][1]["maintainer"] is True
    assert "DMPlexDistribute" in dm.symbols
    assert "Carol" not in latest["Installing on a cluster"].text.split("configure fails.")[1]
    assert len(latest) == 5
    assert not ADDRESS_RE.search(json.dumps([d.to_dict() for d in docs]))
    state = src.state()
    assert state.complete is False
    assert state.extra["months_done"] == ["2024-January", "2024-February", "2024-March"]
    assert set(state.origins) == {d.origin for d in docs}
    assert not ADDRESS_RE.search(json.dumps(state.to_dict()))


def test_resume_then_only_new_then_only_latest(archive):
    server, base = archive
    server.publish(MONTHS)
    first = source(base, max_months=1)
    docs = list(first.iter_documents(None))
    assert {d.title for d in docs} == {"KSPSolve diverges", "Installing on a cluster"}
    assert first.state().extra["months_done"] == ["2024-January"]
    server.log.clear()

    second = source(base)
    docs = list(second.iter_documents(first.state()))
    # January is re-read only because February continues one of its threads.
    assert server.fetched(".txt.gz") == [
        "2024-February.txt.gz",
        "2024-January.txt.gz",
        "2024-March.txt.gz",
        "2024-April.txt.gz",
    ]
    ksp = by_title(docs)["KSPSolve diverges"]
    assert len(ksp.meta["messages"]) == 3  # the whole thread, same id as before
    assert "Installing on a cluster" not in by_title(docs)
    server.log.clear()

    third = source(base)
    assert list(third.iter_documents(second.state())) == []  # nothing changed
    assert server.fetched() == ["", "2024-April/date.html", "2024-April.txt.gz"]

    grown = {**MONTHS, "2024-April": [*MONTHS["2024-April"], Msg(
        10, "e2@host.example", "Re: [petsc-users] SNES line search", "Bob Krylov", "bob",
        "2024-04-02T10:00:00+00:00", "Use bt.", "e1@host.example")]}  # fmt: skip
    server.publish(grown)
    fourth = source(base)
    docs = list(fourth.iter_documents(third.state()))
    assert [d.title for d in docs] == ["SNES line search"]
    assert docs[0].meta["replies"] == 1


def test_truncated_gzip_skips_month_without_marking_it_done(archive):
    server, base = archive
    server.publish(MONTHS)
    whole = server.routes[f"{LIST}2024-January.txt.gz"][-1][1]
    server.set(f"{LIST}2024-January.txt.gz", whole[: len(whole) // 2])
    src = source(base)
    docs = list(src.iter_documents(None))
    assert any("2024-January" in s.where and "corrupt" in s.reason for s in src.skipped)
    assert "2024-January" not in src.state().extra["months_done"]
    assert "2024-February" in src.state().extra["months_done"]
    assert "DMPlex question" in by_title(docs)

    server.set(f"{LIST}2024-January.txt.gz", whole)
    server.log.clear()
    retry = source(base)
    docs = list(retry.iter_documents(src.state()))
    assert server.fetched(".txt.gz") == ["2024-January.txt.gz", "2024-April.txt.gz"]
    assert "Installing on a cluster" in by_title(docs)


def test_unreachable_index_is_a_skip_not_a_crash(archive):
    _, base = archive
    src = source(base)
    assert list(src.iter_documents(None)) == []
    assert src.skipped and "404" in src.skipped[0].reason


def test_fetcher_retries_then_fails_clearly(archive):
    server, base = archive
    server.set("/down", b"", (503, b"", 0.0), (503, b"", 0.0), (503, b"", 0.0))
    waits: list[float] = []
    fetcher = Fetcher(delay=0, timeout=1, retries=2, backoff=0.5, sleep=waits.append)
    with pytest.raises(FetchError, match=r"/down failed: HTTP 503 \(after 3 attempts\)"):
        fetcher.get(base + "/down")
    assert [w for w in waits if w] == [0.5, 1.0]  # exponential backoff
    with pytest.raises(NotFound):
        fetcher.get(base + "/missing")
    assert server.log.count("/missing") == 1  # 404 is not retried


def test_fetcher_spaces_requests_by_delay(archive):
    server, base = archive
    server.set("/page", b"ok")
    fetcher = Fetcher(delay=0.2)
    start = time.monotonic()
    for _ in range(3):
        assert fetcher.get(base + "/page") == b"ok"
    assert time.monotonic() - start >= 0.4


def test_parse_index_orders_months_and_prefers_gzip():
    html = (
        '<a href="2023-December/date.html">x</a><a href="2023-December.txt">t</a>'
        '<a href="2023-December.txt.gz">g</a><a href="2024-January/thread.html">y</a>'
        '<a href="2023q4/date.html">quarterly, ignored</a>'
    )
    months = parse_index(html, "http://h/list/")
    assert [(m.name, m.text_url) for m in months] == [
        ("2023-December", "http://h/list/2023-December.txt.gz"),
        ("2024-January", None),
    ]


def test_pair_pages_matches_subjects_before_positions():
    def message(subject: str) -> MailMessage:
        return MailMessage("id", [], subject, "A", None, "")

    messages = [message("B"), message("A"), message("weird =?x?=")]
    entries = [("000001.html", "A"), ("000002.html", "B"), ("000003.html", "C")]
    assert pair_pages(messages, entries) == ["000002.html", "000001.html", "000003.html"]


def test_parse_page_date_zones():
    date = parse_page_date("Tue Mar  5 10:00:00 CST 2024")
    assert date is not None and date.isoformat() == "2024-03-05T16:00:00+00:00"
    assert parse_page_date("no date here") is None
