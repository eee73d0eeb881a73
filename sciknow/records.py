"""Record types shared by every package (see ARCHITECTURE.md, "Records").

They are plain dataclasses so that every layer can build, store and serialize
them without importing anything heavier than the standard library. `Flag` and
`Citation` are `TypedDict`s: they travel as JSON objects (HTTP API, MCP, feedback,
evaluation files) and a dict is their one shape from creation to every renderer, typed
for the checker and for the API's schema (`typing_extensions`' `TypedDict`, the one
pydantic reads on Python 3.11).
"""

from __future__ import annotations

import hashlib
from dataclasses import asdict, dataclass, field
from typing import Any, Literal, Required

from typing_extensions import TypedDict

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


FlagKind = Literal[
    "uncertain_span",  # words the model was unsure of (serve/flags.py)
    "support",  # how much a passage raised the answer's likelihood (serve/flags.py)
    "generated",  # a model-written sentence above quoted passages (serve/answer.py)
    "guard",  # a generated answer's failed check, kept without fallback (serve/answer.py)
    "skipped",  # flags that were asked for but do not apply or failed (why in `reason`)
    "unknown_name",  # a library name the index does not hold (serve/names.py)
    "removed_name",  # a name release notes say was removed (serve/names.py)
    "not_maintainer",  # a doc patch drawn from a thread no maintainer answered (docpatch)
    "compile",  # a code block's compile verdict (serve/codecheck)
]
# The kinds that mark words a reader should doubt (front ends mark them, the eval scores them).
DOUBT_FLAGS: tuple[FlagKind, ...] = ("uncertain_span", "unknown_name", "removed_name")


class Flag(TypedDict, total=False):
    """A part of an answer (or of a drafted patch) a reader should know about.

    Only `type` is always there; the other keys are those its kind has. `start`/`end`:
    character offsets in the answer text (uncertain_span, support, generated, names);
    `text`: the flagged words (uncertain_span, names); `score`: 1 − the smallest
    two-sided probability in an uncertain span; `suggestions`: close or replacing names;
    `passage`, `sentence` (None: the whole answer) and `log_ratio`: a support flag's
    passage number, sentence index and log P(with) − log P(without); `reason`: one line
    a person reads (every kind but support). A compile flag spans one C block's code
    lines: `status` is "compiles", "error" or "cannot-wrap" (not checked), `line` the
    block's first code line in the answer, `reason` the verdict with the first error's
    line in the answer, `suggestions` names for an unknown one (serve/compile_flags.py).
    """

    type: Required[FlagKind]
    start: int
    end: int
    text: str
    score: float
    reason: str
    suggestions: list[str]
    passage: int
    sentence: int | None
    log_ratio: float
    status: Literal["compiles", "error", "cannot-wrap"]
    line: int


class Citation(TypedDict):
    """A passage an answer cites (or, when it abstains, one of the closest): its number
    `n` as in the `[n]` markers, the spans of those markers in the answer text, and what
    a front end shows of the passage."""

    n: int
    chunk_id: str
    title: str
    uri: str
    spans: list[tuple[int, int]]
    kind: str
    official: bool
    section: str
    text: str


@dataclass
class Answer:
    """An answer: its text with `[n]` markers, the passages they cite, the generated
    tokens (none for quoted text), its flags, whether it abstained, and its timings."""

    text: str
    citations: list[Citation] = field(default_factory=list)
    tokens: list[TokenInfo] = field(default_factory=list)
    flags: list[Flag] = field(default_factory=list)
    abstained: bool = False
    timings: dict[str, float] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)
