"""Ingest: run sources, chunk what changed, embed what is new, commit atomically.

Incremental at three levels: a source yields only origins whose fingerprint
changed; a document whose content hash is unchanged is not re-chunked; a chunk
whose text is unchanged reuses its cached embedding. Origins that vanished from
a source that lists everything (`State.complete`) are deleted; origins that were
skipped this time (unreadable, too big) keep their previous documents, so a
broken edit never erases good data.
"""

from __future__ import annotations

import logging
import re
import time
from collections import defaultdict
from collections.abc import Callable, Collection, Iterable
from dataclasses import dataclass, field

from tqdm import tqdm

from sciknow.index.chunking import Chunker
from sciknow.index.embed import Embedder
from sciknow.index.store import Store
from sciknow.ingest.base import Skip, Source, State
from sciknow.records import Chunk, Document

log = logging.getLogger(__name__)


def _reason_kind(reason: str) -> str:
    """A skip reason without its particulars (file name, line number, detail after a
    colon), so the summary counts 915 makefiles as one kind of skip, not 915 kinds."""
    general = re.sub(r"\s*\([^)]*\)", "", reason.split(":")[0].split(",")[0])
    return re.sub(r"\d+", "N", general).strip()


@dataclass
class IngestReport:
    documents: int = 0
    unchanged_documents: int = 0
    chunks: int = 0
    embedded: int = 0
    deleted_documents: int = 0
    skipped: list[Skip] = field(default_factory=list)
    seconds: float = 0.0
    by_kind: dict[str, int] = field(default_factory=lambda: defaultdict(int))

    def summary(self) -> str:
        kinds = ", ".join(f"{k} {v}" for k, v in sorted(self.by_kind.items()))
        reasons: dict[str, int] = defaultdict(int)
        for skip in self.skipped:
            reasons[_reason_kind(skip.reason)] += 1
        skipped = "; ".join(f"{n} × {r}" for r, n in sorted(reasons.items())) or "none"
        return (
            f"{self.documents} new or changed documents ({kinds or 'none'}), "
            f"{self.unchanged_documents} unchanged, {self.deleted_documents} deleted; "
            f"{self.chunks} chunks written, {self.embedded} embedded; "
            f"skipped {len(self.skipped)} ({skipped}); {self.seconds:.1f} s"
        )


@dataclass
class SourceBatch:
    """What one source produced in this run, ready to write."""

    source: str
    state: State
    removed_origins: set[str]
    stale_ids: set[str]
    documents: list[tuple[Document, list[Chunk]]]


def _collect(
    source: Source, store: Store, chunker: Chunker, report: IngestReport, progress: tqdm
) -> SourceBatch:
    old = State.from_dict(store.get_state(source.name))
    by_origin: dict[str, list[Document]] = defaultdict(list)
    for doc in source.iter_documents(old):
        by_origin[doc.origin].append(doc)
        progress.update(1)
    new = source.state()
    skipped_origins = {s.where for s in source.skipped}
    report.skipped.extend(source.skipped)
    old_origins = old.origins if old else {}
    for origin in skipped_origins & old_origins.keys():
        new.origins[origin] = old_origins[origin]  # keep what we had
    changed = {o for o, fp in new.origins.items() if old_origins.get(o) != fp}
    changed = (changed | by_origin.keys()) - skipped_origins
    removed = set()
    if new.complete:
        removed = old_origins.keys() - new.origins.keys()
    known = store.document_hashes(source.name, changed)
    docs: list[tuple[Document, list[Chunk]]] = []
    for origin in changed:
        for doc in by_origin.get(origin, []):
            if known.pop(doc.id, None) == doc.content_hash:
                report.unchanged_documents += 1
                continue
            docs.append((doc, chunker.chunk(doc)))
            report.by_kind[doc.kind] += 1
    # Documents of a changed origin that were not yielded again are gone.
    return SourceBatch(source.name, new, removed, set(known), docs)


def _texts_to_embed(
    store: Store, batches: list[SourceBatch], skip_kinds: Collection[str]
) -> dict[str, str]:
    """Texts by hash of the new chunks that get vectors, and of the stored ones when the
    set of unembedded kinds changed since the last generation."""
    texts = {
        c.content_hash: c.text
        for batch in batches
        for doc, chunks in batch.documents
        if doc.kind not in skip_kinds
        for c in chunks
    }
    if store.unembedded_kinds_differ(skip_kinds):
        texts.update(store.texts_by_hash(skip_kinds))
    return texts


def _embed_missing(
    store: Store, embedder: Embedder, by_hash: dict[str, str], batch_size: int = 256
) -> int:
    # Similar lengths batch together, so little compute goes to padding.
    missing = sorted(store.cache.missing(by_hash, embedder.name), key=lambda h: len(by_hash[h]))
    with tqdm(total=len(missing), desc="embedding", unit="chunk", disable=None) as bar:
        for start in range(0, len(missing), batch_size):
            hashes = missing[start : start + batch_size]
            store.cache.put(hashes, embedder.embed([by_hash[h] for h in hashes]), embedder.name)
            bar.update(len(hashes))
    return len(missing)


def ingest(
    store: Store,
    sources: Iterable[Source],
    embedder: Embedder,
    chunker: Chunker,
    before_commit: Callable[[], None] | None = None,
    skip_embedding_kinds: Collection[str] = (),
) -> IngestReport:
    """Bring the index up to date with `sources` in one atomic commit.

    Chunks of `skip_embedding_kinds` are searchable by terms and symbols only.
    `before_commit` is a test hook (see `Store.writer`).
    """
    started = time.perf_counter()
    report = IngestReport()
    batches = []
    with tqdm(desc="reading", unit="doc", disable=None) as progress:
        for source in sources:
            batches.append(_collect(source, store, chunker, report, progress))
    texts = _texts_to_embed(store, batches, skip_embedding_kinds)
    report.embedded = _embed_missing(store, embedder, texts)
    known_dimension = store.meta_value("dimension")
    dimension = int(known_dimension) if known_dimension else embedder.dimension
    with store.writer(embedder.name, dimension, before_commit, skip_embedding_kinds) as writer:
        for batch in batches:
            report.deleted_documents += writer.delete_origins(batch.source, batch.removed_origins)
            report.deleted_documents += writer.delete_ids(batch.stale_ids)
            for doc, chunks in batch.documents:
                writer.add(doc, chunks)
                report.documents += 1
                report.chunks += len(chunks)
            writer.set_state(batch.source, batch.state.to_dict())
    report.seconds = time.perf_counter() - started
    return report
