"""Local mbox files → one `Document` per thread (`MboxSource`).

The threading, cleaning and rendering are the mail library's (`ingest/mail.py`), shared
with the other community sources; this module only reads the files, in two passes that
keep memory flat on archives of any size (see `MboxSource`).
"""

from __future__ import annotations

import contextlib
import gzip
import mailbox
import math
import shutil
import tempfile
from array import array
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sciknow.config import Profile
from sciknow.ingest.base import SkipLog, State, file_fingerprint
from sciknow.ingest.mail import (
    MailMessage,
    ThreadContext,
    Threader,
    maintainer_set,
    read_mbox_message,
    thread_document,
)
from sciknow.records import Document


def sort_date(message: MailMessage, previous: datetime | None) -> datetime:
    """Dateless messages sort next to their neighbours in the file."""
    return message.date or previous or datetime(1970, 1, 1, tzinfo=UTC)


def _by_date(messages: list[MailMessage]) -> list[MailMessage]:
    """Messages in file order → date order, dateless ones staying by their neighbours."""
    keyed, previous = [], None
    for position, message in enumerate(messages):
        previous = sort_date(message, previous)
        keyed.append((previous, position, message))
    return [message for _, _, message in sorted(keyed, key=lambda k: k[:2])]


KEY_BITS = 32  # pass one packs (file index, mbox key) into one int


@contextlib.contextmanager
def plain_mbox(path: Path) -> Iterator[Path]:
    """The mbox itself, or a temporary decompressed copy of a `.gz` export (streamed)."""
    if path.suffix != ".gz":
        yield path
        return
    with tempfile.NamedTemporaryFile(suffix=".mbox") as tmp:
        with gzip.open(path, "rb") as src:
            shutil.copyfileobj(src, tmp)
        tmp.flush()
        yield Path(tmp.name)


MBOX_SUFFIXES = (".mbox", ".mbox.gz", ".txt", ".txt.gz", ".mbx")


class MboxSource:
    """Threads from local mbox files: one file, or every mbox in a folder (Mailman 3 exports).

    The mbox is read twice and never held in memory: pass one threads lightweight
    (id, references, subject, date) records; pass two re-reads each thread's
    messages by file offset and renders it. Re-ingest re-reads the files only when
    their size or mtime changed and yields only threads whose text changed
    (`State.origins` maps thread ids to content hashes). `origin` is the root
    message's `msgid_hash` (HyperKitty's thread id). With `archive_url` (a
    HyperKitty list URL ending in "/") messages link to `{archive_url}message/{hash}/`;
    otherwise their `uri` is the mbox file's name with the hash as fragment, which is
    no link and never the server's path. A file without a single message (not an mbox)
    is logged as skipped.
    """

    def __init__(
        self,
        name: str,
        location: str,
        profile: Profile,
        *,
        maintainers: Iterable[str] = (),
        window_days: float = 30,
        archive_url: str = "",
    ) -> None:
        self.name = name
        self.path = Path(location).expanduser()
        self.ctx = ThreadContext(name, profile, maintainer_set(maintainers))
        self.window = timedelta(days=window_days)
        self.archive_url = archive_url
        self._skips = SkipLog()
        self.skipped = self._skips.skipped
        self._state = State(complete=False)

    def _files(self) -> list[Path]:
        if self.path.is_dir():
            return sorted(p for p in self.path.iterdir() if p.name.endswith(MBOX_SUFFIXES))
        return [self.path]

    def _url(self, file: Path, message: MailMessage) -> str:
        if self.archive_url:
            return f"{self.archive_url}message/{message.msgid}/"
        return f"{file.name}#{message.msgid}"

    def iter_documents(self, since: State | None) -> Iterator[Document]:
        files = [f for f in self._files() if f.is_file()]
        if not files:
            self._skips.skip(str(self.path), "no mbox file found")
        fingerprints = {str(f): file_fingerprint(f) for f in files}
        origins = dict(since.origins) if since else {}
        previous = dict(since.extra.get("files", {})) if since else {}
        self._state = State(origins, complete=False, extra={"files": previous})
        if since and previous == fingerprints:
            return
        with contextlib.ExitStack() as stack:
            paths = [stack.enter_context(plain_mbox(f)) for f in files]
            boxes = [mailbox.mbox(p, create=False) for p in paths]
            for box in boxes:
                stack.callback(box.close)
            for messages in self._threads(files, boxes):
                doc = thread_document(self.ctx, messages[0].msgid, messages)
                if origins.get(doc.origin) != doc.content_hash:
                    origins[doc.origin] = doc.content_hash
                    yield doc
        self._state.extra["files"] = fingerprints  # only once every thread was yielded

    def _threads(self, files: list[Path], boxes: list[mailbox.mbox]) -> Iterator[list[MailMessage]]:
        """Pass one threads headers into compact per-thread arrays of (file, key) codes and
        first dates; pass two loads each thread's messages by offset, oldest thread first."""
        threader = Threader(self.window)
        members: dict[str, array[int]] = {}
        first: dict[str, float] = {}
        previous: datetime | None = None
        for index, box in enumerate(boxes):
            found = False
            for key in box.iterkeys():
                message = read_mbox_message(box, key, self._skips, str(files[index]), True)
                if message is None:
                    continue
                found = True
                previous = sort_date(message, previous)
                thread = threader.add(
                    message.msgid, message.refs, message.subject, message.date, message.msgid
                )
                members.setdefault(thread, array("q")).append(index << KEY_BITS | key)
                first[thread] = min(first.get(thread, math.inf), previous.timestamp())
            if not found:
                self._skips.skip(str(files[index]), "no mail message in it (not an mbox file?)")
        del threader
        for thread in sorted(members, key=first.__getitem__):
            loaded = []
            for code in members.pop(thread):
                index, key = code >> KEY_BITS, code & (1 << KEY_BITS) - 1
                message = read_mbox_message(boxes[index], key, self._skips, str(files[index]))
                if message is not None:
                    message.url = self._url(files[index], message)
                    loaded.append(message)
            if loaded:
                yield _by_date(loaded)

    def state(self) -> State:
        return self._state
