"""What every source shares: the Source protocol, its State, and safe file reading.

A source yields `Document`s for the origins (files, threads, issues) that
changed since a stored `State`, and reports the complete state afterwards so
the index can delete what disappeared. Anything it cannot read becomes a
logged `Skip` with a reason, never an exception that stops the ingest.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from sciknow.records import Document

log = logging.getLogger(__name__)


@dataclass
class State:
    """Fingerprints of every origin a source saw on its last complete run.

    `complete` is False for sources that only list what is new (e.g. mail
    archives read month by month); then absent origins are not deleted.
    """

    origins: dict[str, str] = field(default_factory=dict)
    complete: bool = True
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"origins": self.origins, "complete": self.complete, "extra": self.extra}

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None) -> State | None:
        if not data:
            return None
        return cls(data.get("origins", {}), data.get("complete", True), data.get("extra", {}))


@dataclass
class Skip:
    where: str
    reason: str


class Source(Protocol):
    """A place documents come from (see ARCHITECTURE.md, "Interfaces")."""

    name: str
    skipped: list[Skip]

    def iter_documents(self, since: State | None) -> Iterator[Document]:
        """Yield documents of the origins that changed since `since` (all when None)."""
        ...

    def state(self) -> State:
        """The state after the last `iter_documents` run (call it after iterating)."""
        ...


class SkipLog:
    """Collects skipped inputs with their reasons and logs each one."""

    def __init__(self) -> None:
        self.skipped: list[Skip] = []

    def skip(self, where: str, reason: str) -> None:
        log.warning("skipped %s: %s", where, reason)
        self.skipped.append(Skip(where, reason))


BINARY_SNIFF_BYTES = 8192


def read_text_file(path: Path, max_bytes: int, skips: SkipLog, label: str = "") -> str | None:
    """Read a UTF-8 text file, or record why not (too big, binary, bad encoding, empty)."""
    where = label or str(path)
    try:
        size = path.stat().st_size
        if size > max_bytes:
            skips.skip(where, f"file is {size} bytes, over ingest.max_file_bytes={max_bytes}")
            return None
        if size == 0:
            skips.skip(where, "empty file")
            return None
        data = path.read_bytes()
    except OSError as err:
        skips.skip(where, f"unreadable: {err.strerror or err}")
        return None
    if b"\x00" in data[:BINARY_SNIFF_BYTES]:
        skips.skip(where, "binary file (NUL bytes)")
        return None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as err:
        skips.skip(where, f"not valid UTF-8 at byte {err.start}")
        return None
    if not text.strip():
        skips.skip(where, "empty file")
        return None
    return text.replace("\r\n", "\n")


def file_fingerprint(path: Path) -> str:
    """Cheap change detector: size and nanosecond mtime."""
    st = path.stat()
    return f"{st.st_size}:{st.st_mtime_ns}"
