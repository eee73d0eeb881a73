"""Record types shared by every package (see ARCHITECTURE.md, "Records").

They are plain dataclasses so that every layer can build, store and serialize
them without importing anything heavier than the standard library.
"""

from __future__ import annotations

import hashlib
from dataclasses import asdict, dataclass, field
from typing import Any

KINDS = (
    "code",
    "manpage",
    "doc",
    "example",
    "mail",
    "issue",
    "chat",
    "changelog",
    "paper",
)


def content_hash(text: str) -> str:
    """Short, stable fingerprint of a text (used to skip unchanged work)."""
    return hashlib.sha1(text.encode("utf-8", "surrogatepass")).hexdigest()


@dataclass
class Document:
    """One citable unit from a source: a doc section, a man page, a function, a thread.

    `origin` is the unit a source re-reads as a whole (a file, a thread, an issue):
    on re-ingest every document of a changed origin is replaced together, and the
    documents of an origin that disappeared are deleted.
    """

    id: str
    source: str
    kind: str
    uri: str
    title: str
    text: str
    origin: str
    official: bool = True
    date: str | None = None
    version: str | None = None
    symbols: list[str] = field(default_factory=list)
    section: str = ""
    start_line: int | None = None
    end_line: int | None = None
    meta: dict[str, Any] = field(default_factory=dict)
    content_hash: str = ""

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"unknown document kind {self.kind!r}; expected one of {KINDS}")
        if not self.content_hash:
            self.content_hash = content_hash(f"{self.title}\n{self.uri}\n{self.text}")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class Chunk:
    """A piece of a document small enough to embed and to show as evidence."""

    id: str
    doc_id: str
    text: str
    section: str = ""
    start: int = 0
    end: int = 0
    symbols: list[str] = field(default_factory=list)
    content_hash: str = ""

    def __post_init__(self) -> None:
        if not self.content_hash:
            self.content_hash = content_hash(self.text)


@dataclass
class Evidence:
    """A retrieved chunk with the document fields a reader needs and its scores."""

    chunk_id: str
    doc_id: str
    text: str
    title: str
    uri: str
    kind: str
    source: str
    official: bool
    section: str = ""
    score: float = 0.0
    scores: dict[str, float] = field(default_factory=dict)
    reason: str = ""

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["id"] = self.chunk_id
        return data


@dataclass
class TokenInfo:
    """A generated token; `None` where the backend did not report the value."""

    text: str
    logprob: float | None
    entropy: float | None = None


@dataclass
class Answer:
    text: str
    citations: list[dict[str, Any]] = field(default_factory=list)
    tokens: list[TokenInfo] = field(default_factory=list)
    flags: list[dict[str, Any]] = field(default_factory=list)
    abstained: bool = False
    timings: dict[str, float] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)
