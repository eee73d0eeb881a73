"""Sources over documents held in memory, for tests that build real indexes."""

from __future__ import annotations

from collections.abc import Iterator

from sciknow.ingest.base import SkipLog, State
from sciknow.records import Document


class ListSource:
    """A source over documents held in memory; one origin per document title."""

    def __init__(self, name: str, docs: list[Document], skipped_origins: tuple[str, ...] = ()):
        self.name = name
        self.docs = docs
        self.skip_log = SkipLog()
        self.skipped_origins = skipped_origins
        self.skipped = self.skip_log.skipped

    def iter_documents(self, since: State | None) -> Iterator[Document]:
        for origin in self.skipped_origins:
            self.skip_log.skip(origin, "unreadable in this test")
        for doc in self.docs:
            if since is None or since.origins.get(doc.origin) != doc.content_hash:
                yield doc

    def state(self) -> State:
        origins = {d.origin: d.content_hash for d in self.docs}
        return State(origins={o: h for o, h in origins.items() if o not in self.skipped_origins})
