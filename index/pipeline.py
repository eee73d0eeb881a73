"""Ingest: run sources, chunk what changed, embed what is new, commit atomically.

Incremental at three levels: a source yields only origins whose fingerprint
changed; a document whose content hash is unchanged is not re-chunked; a chunk
whose text is unchanged reuses its cached embedding. Origins that vanished from
a source that lists everything (`State.complete`) are deleted; origins that were
skipped this time (unreadable, too big) keep their previous documents, so a
broken edit never erases good data.

Overlapped: a reading thread runs the sources and chunks each changed document
as it arrives, handing its chunk texts through a bounded queue to the embedding
loop in the calling thread, so the model works while files are parsed (the
runtimes release the GIL while they compute). The loop embeds windows of texts
sorted by length (little padding) and writes the embedding cache in large
transactions. Rows are written only after both finish, in one atomic commit, so
the index is the same as the sequential run's (`overlap=False`).
"""

from __future__ import annotations

import contextlib
import logging
import queue
import re
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Collection, Iterable, Mapping
from dataclasses import dataclass, field

import numpy as np
from tqdm import tqdm

from sciknow.index.chunking import Chunker
from sciknow.index.embed import Embedder
from sciknow.index.embed_policy import EmbedPolicy
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
    reembedded_from: str = ""  # the embedder (runtime) whose vectors were replaced

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
            + (
                f"; every stored chunk re-embedded (the vectors were {self.reembedded_from}'s)"
                if self.reembedded_from
                else ""
            )
        )


@dataclass
class SourceBatch:
    """What one source produced in this run, ready to write."""

    source: str
    state: State
    removed_origins: set[str]
    stale_ids: set[str]
    documents: list[tuple[Document, list[Chunk]]]


WINDOW = 1024  # texts sorted by length together before embedding
SLICE = 256  # texts per embed call (the progress bar moves after each)
FLUSH_VECTORS = 4096  # vectors per embedding-cache transaction ...
FLUSH_SECONDS = 30.0  # ... or fewer, when that long has passed (a crash loses at most this)
QUEUE_GROUPS = 512  # documents' texts waiting for the embedder (bounds the reader's lead)


class _Stopped(Exception):
    """The embedding loop failed or was interrupted: the reading thread stops too."""


class _Handoff:
    """The bounded queue from the reading thread to the embedding loop, with counters for
    the progress bar. A group is the chunk texts (by hash) of one document; None ends."""

    def __init__(self, bounded: bool) -> None:
        self.queue: queue.Queue[dict[str, str] | None] = queue.Queue(QUEUE_GROUPS if bounded else 0)
        self.stop = threading.Event()
        self.documents = 0
        self.error: BaseException | None = None

    def put(self, group: dict[str, str] | None) -> None:
        while not self.stop.is_set():
            try:
                self.queue.put(group, timeout=0.5)
                return
            except queue.Full:
                continue
        raise _Stopped


def _collect(
    source: Source,
    store: Store,
    chunker: Chunker,
    report: IngestReport,
    handoff: _Handoff,
    policy: EmbedPolicy,
) -> SourceBatch:
    old = State.from_dict(store.get_state(source.name))
    old_origins = old.origins if old else {}
    stored = store.document_hashes(source.name, old_origins)
    by_origin: dict[str, list[tuple[Document, list[Chunk] | None]]] = defaultdict(list)
    for doc in source.iter_documents(old):
        chunks = None
        if stored.get(doc.id) != doc.content_hash:  # new or changed: chunk and embed now
            chunks = _chunk(chunker, doc, policy, handoff)
        by_origin[doc.origin].append((doc, chunks))
        handoff.documents += 1
    new = source.state()
    skipped_origins = {s.where for s in source.skipped}
    report.skipped.extend(source.skipped)
    for origin in skipped_origins & old_origins.keys():
        new.origins[origin] = old_origins[origin]  # keep what we had
    changed = {o for o, fp in new.origins.items() if old_origins.get(o) != fp}
    changed = (changed | by_origin.keys()) - skipped_origins
    removed = set()
    if new.complete:
        removed = old_origins.keys() - new.origins.keys()
    known = store.document_hashes(source.name, changed)
    docs: list[tuple[Document, list[Chunk]]] = []
    for origin, yielded in by_origin.items():
        if origin not in changed:
            continue
        for doc, chunks in yielded:
            if known.pop(doc.id, None) == doc.content_hash:
                report.unchanged_documents += 1
                continue
            if chunks is None:  # stored elsewhere with this hash: rare, chunked only now
                chunks = _chunk(chunker, doc, policy, handoff)
            docs.append((doc, chunks))
            report.by_kind[doc.kind] += 1
    # Documents of a changed origin that were not yielded again are gone.
    return SourceBatch(source.name, new, removed, set(known), docs)


def _chunk(chunker: Chunker, doc: Document, policy: EmbedPolicy, handoff: _Handoff) -> list[Chunk]:
    """Chunk a document and hand what the policy embeds of it to the embedding loop.
    Chunks not embedded whole are cut by an estimated token count: exact counts only
    matter for what the embedder reads, and counting cost most of a source tree's ingest
    (174 of 248 s reading PETSc's src/ and include/)."""
    chunks = chunker.chunk(doc, exact=policy.whole(doc.kind))
    texts = policy.texts(doc.kind, chunks)
    if texts:
        handoff.put(texts)
    return chunks


def _read(
    store: Store,
    sources: Iterable[Source],
    chunker: Chunker,
    report: IngestReport,
    handoff: _Handoff,
    policy: EmbedPolicy,
    rebuild_vectors: bool,
) -> list[SourceBatch]:
    """The reading side: stored texts to re-embed (when the vectors are rebuilt), then each
    source's changed documents, chunked; always ends the handoff, keeping any error."""
    batches = []
    try:
        if rebuild_vectors:
            handoff.put(store.texts_by_hash(policy))
        for source in sources:
            batches.append(_collect(source, store, chunker, report, handoff, policy))
    except _Stopped:
        pass  # the embedding loop ended first and reports why
    except Exception as err:  # handed to the calling thread, which re-raises it
        handoff.error = err
    with contextlib.suppress(_Stopped):
        handoff.put(None)
    return batches


class _CacheWriter:
    """Vectors buffered and committed to the embedding cache in large transactions."""

    def __init__(self, store: Store, model: str) -> None:
        self.store, self.model = store, model
        self.hashes: list[str] = []
        self.vectors: list[np.ndarray] = []
        self.since = time.monotonic()

    def add(self, hashes: list[str], vectors: np.ndarray) -> None:
        self.hashes.extend(hashes)
        self.vectors.append(vectors)
        if len(self.hashes) >= FLUSH_VECTORS or time.monotonic() - self.since > FLUSH_SECONDS:
            self.flush()

    def flush(self) -> None:
        if self.hashes:
            self.store.cache.put(self.hashes, np.concatenate(self.vectors), self.model)
        self.hashes, self.vectors, self.since = [], [], time.monotonic()


def _embed_stream(store: Store, embedder: Embedder, handoff: _Handoff, bar: tqdm) -> int:
    """The embedding side: texts not in the cache, a window at a time, shortest first.
    Returns how many were embedded."""
    cache = _CacheWriter(store, embedder.name)
    try:
        return _embed_loop(store, embedder, handoff, bar, cache)
    finally:
        cache.flush()  # an interrupted ingest keeps what it embedded


def _embed_loop(
    store: Store, embedder: Embedder, handoff: _Handoff, bar: tqdm, cache: _CacheWriter
) -> int:
    seen: set[str] = set()
    window: dict[str, str] = {}
    embedded, finished = 0, False
    while not finished:
        try:
            group = handoff.queue.get(timeout=0.5)
        except queue.Empty:
            bar.set_postfix_str(f"{handoff.documents} documents read", refresh=True)
            continue
        if handoff.error is not None:
            break  # reading failed: stop embedding, the error is raised by `ingest`
        finished = group is None
        for chash, text in (group or {}).items():
            if chash not in seen:
                seen.add(chash)
                window[chash] = text
        bar.total = len(seen)
        if len(window) < WINDOW and not finished:
            continue
        missing = store.cache.missing(window, embedder.name)
        bar.update(len(window) - len(missing))
        missing.sort(key=lambda h: len(window[h]))
        for start in range(0, len(missing), SLICE):
            hashes = missing[start : start + SLICE]
            cache.add(hashes, embedder.embed([window[h] for h in hashes]))
            bar.set_postfix_str(f"{handoff.documents} documents read", refresh=False)
            bar.update(len(hashes))
        embedded += len(missing)
        window = {}
    return embedded


def ingest(
    store: Store,
    sources: Iterable[Source],
    embedder: Embedder,
    chunker: Chunker,
    before_commit: Callable[[], None] | None = None,
    skip_embedding_kinds: Collection[str] = (),
    overlap: bool = True,
    embed_head_chars: Mapping[str, int] | None = None,
) -> IngestReport:
    """Bring the index up to date with `sources` in one atomic commit.

    Chunks of `skip_embedding_kinds` are searchable by terms and symbols only; of the
    kinds in `embed_head_chars` only the head of a document's first chunk is embedded
    (`embed_policy.py`). Every stored chunk is embedded again when that policy changed or
    the index was built by another embedder or runtime (`Store.embedder_differs`): a tuned model
    (`sciknow tune`) re-embeds the chunks as they were cut, nothing is re-read.
    `overlap=False` reads everything before embedding (the sequential reference).
    `before_commit` is a test hook (see `Store.writer`).
    """
    started = time.perf_counter()
    report = IngestReport()
    if store.embedder_differs(embedder.name):
        report.reembedded_from = store.meta_value("embedder") or ""
    policy = EmbedPolicy.of(skip_embedding_kinds, embed_head_chars)
    rebuild = bool(report.reembedded_from) or store.embed_policy_differs(policy)
    handoff = _Handoff(bounded=overlap)
    batches: list[SourceBatch] = []

    def read() -> None:
        batches.extend(_read(store, sources, chunker, report, handoff, policy, rebuild))

    reader = threading.Thread(target=read, name="sciknow-read", daemon=True)
    with tqdm(total=0, desc="ingest", unit="chunk", disable=None) as bar:
        if overlap:
            reader.start()
        else:
            read()
        try:
            report.embedded = _embed_stream(store, embedder, handoff, bar)
        finally:
            handoff.stop.set()  # a failed or interrupted embedder stops the reader
            if overlap:
                reader.join()
    if handoff.error is not None:
        raise handoff.error
    known_dimension = store.meta_value("dimension")
    reuse = known_dimension and not report.reembedded_from  # no need to load the model
    dimension = int(known_dimension) if reuse else embedder.dimension
    with store.writer(embedder.name, dimension, before_commit, policy) as writer:
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
