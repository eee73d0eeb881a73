"""A source over documents held in memory, for tests that build real indexes."""

from __future__ import annotations

from collections.abc import Iterator

from sciknow.ingest.base import SkipLog, State
from sciknow.records import Document


class ListSource:
    """A source over documents held in memory, fingerprinted by content like a file source
    (one origin per document). `skipped_origins` are reported as unreadable; at document
    number `fail_after` the source fails as a disk that went away."""

    def __init__(
        self,
        name: str,
        docs: list[Document],
        skipped_origins: tuple[str, ...] = (),
        fail_after: int | None = None,
    ) -> None:
        self.name = name
        self.docs = docs
        self.skip_log = SkipLog()
        self.skipped_origins = skipped_origins
        self.fail_after = fail_after
        self.skipped = self.skip_log.skipped

    def iter_documents(self, since: State | None) -> Iterator[Document]:
        for origin in self.skipped_origins:
            self.skip_log.skip(origin, "unreadable in this test")
        for n, doc in enumerate(self.docs):
            if n == self.fail_after:
                raise OSError("the disk went away")
            if since is None or since.origins.get(doc.origin) != doc.content_hash:
                yield doc

    def state(self) -> State:
        origins = {d.origin: d.content_hash for d in self.docs}
        return State(origins={o: h for o, h in origins.items() if o not in self.skipped_origins})
