"""The anchor to beat: the retrieval pipeline the PETSc team published (arXiv 2506.20608).

Their RAG database splits the Markdown docs with LangChain's
`RecursiveCharacterTextSplitter`, embeds the chunks with all-MiniLM-L6-v2 into a
FAISS `IndexFlatIP`, retrieves the top k (k=4) by inner product and, when a
cross-encoder is available, reranks 2k+4 candidates with an ms-marco MiniLM
cross-encoder. The paper names the splitter but not its sizes; we use
LangChain's customary 1,000 characters with 200 overlap on the raw `.md` text
(no heading paths, no label resolution), with the same embedding model and the
same corpus as sciknow, so only the pipeline differs.

The chunks go through sciknow's own ingest and store (one document per chunk,
embedded once and cached), whose dense search is exactly a flat inner-product
FAISS index; nothing of sciknow's fusion or symbol table is used to retrieve.
For gold matching only, each chunk records the sections it covers
(`meta["anchors"]`), found with sciknow's Markdown parser.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from langchain_text_splitters import RecursiveCharacterTextSplitter

from sciknow.config import Profile
from sciknow.index.chunking import Chunker
from sciknow.index.embed import Embedder
from sciknow.index.store import Filters, Store
from sciknow.ingest.base import SkipLog, State, file_fingerprint, read_text_file
from sciknow.ingest.docs import local_page_path
from sciknow.ingest.markdown import parse_markdown
from sciknow.ingest.rest import Labels, Section
from sciknow.records import Document, Evidence
from sciknow.rerank.base import Reranker

CHUNK_CHARS = 1000
OVERLAP_CHARS = 200
TOP_K = 4


def whole_chunker() -> Chunker:
    """A chunker that keeps each (already split) baseline document as one chunk, untitled."""
    return Chunker(max_tokens=10**9, overlap=0, count_tokens=len)


def covered_anchors(first: int, last: int, sections: list[Section]) -> list[str]:
    """Identifiers of the sections a chunk on lines first..last covers.

    A chunk covers a section when they share at least half the lines of the
    shorter of the two: a chunk that only clips a section's heading does not
    count, a chunk inside a long section does.
    """
    out: list[str] = []
    for section in sections:
        shared = min(last, section.end_line) - max(first, section.start_line) + 1
        shorter = min(last - first, section.end_line - section.start_line) + 1
        if shared > 0 and 2 * shared >= shorter:
            out += [section.anchor, section.slug, *section.labels]
    return list(dict.fromkeys(a for a in out if a))


class MarkdownChunkSource:
    """The baseline's documents: LangChain chunks of every `.md` page under `root`."""

    def __init__(
        self,
        name: str,
        root: str | Path,
        profile: Profile,
        exclude: list[str] | tuple[str, ...] = (),
        chunk_chars: int = CHUNK_CHARS,
        overlap_chars: int = OVERLAP_CHARS,
    ) -> None:
        self.name = name
        self.root = Path(root)
        self.base_url = profile.docs_url
        self.exclude = tuple(exclude)
        self.splitter = RecursiveCharacterTextSplitter(
            chunk_size=chunk_chars, chunk_overlap=overlap_chars, add_start_index=True
        )
        self._log = SkipLog()
        self.skipped = self._log.skipped
        self._origins: dict[str, str] = {}

    def state(self) -> State:
        return State(origins=dict(self._origins))

    def pages(self) -> list[str]:
        """Relative paths of the Markdown pages, minus excluded and hidden folders."""
        found = []
        for path in self.root.rglob("*.md"):
            rel = path.relative_to(self.root).as_posix()
            hidden = any(part.startswith((".", "_")) for part in rel.split("/")[:-1])
            if not hidden and not rel.startswith(self.exclude):
                found.append(rel)
        return sorted(found)

    def iter_documents(self, since: State | None) -> Iterator[Document]:
        self._log, self._origins = SkipLog(), {}
        self.skipped = self._log.skipped
        for rel in self.pages():
            fingerprint = file_fingerprint(self.root / rel)
            self._origins[rel] = fingerprint
            if since is not None and since.origins.get(rel) == fingerprint:
                continue
            text = read_text_file(self.root / rel, 10**8, self._log, rel)
            if text is None:
                del self._origins[rel]
                continue
            yield from self._chunks(rel, text)

    def _chunks(self, rel: str, text: str) -> Iterator[Document]:
        sections = parse_markdown(text, rel, Labels())
        for i, piece in enumerate(self.splitter.create_documents([text])):
            start = piece.metadata["start_index"]
            first = text.count("\n", 0, start) + 1
            last = first + piece.page_content.count("\n")
            yield Document(
                id=f"{self.name}:{rel}#{i}",
                source=self.name,
                kind="doc",
                uri=self.base_url + local_page_path(rel),
                title="",
                text=piece.page_content,
                origin=rel,
                section=rel,
                start_line=first,
                end_line=last,
                meta={"path": rel, "anchors": covered_anchors(first, last, sections)},
            )


class BaselineRetriever:
    """Dense top-k over the baseline index; 2k+4 candidates when a reranker follows."""

    def __init__(self, store: Store, embedder: Embedder, reranker: Reranker | None = None):
        self.store = store
        self.embedder = embedder
        self.reranker = reranker

    def search(
        self, question: str, k: int | None = None, filters: Filters | None = None
    ) -> list[Evidence]:
        k = k or TOP_K
        n = 2 * k + 4 if self.reranker is not None else k
        allowed = self.store.allowed_rowids(filters or Filters())
        hits = self.store.search_dense(self.embedder.embed([question])[0], n, allowed)
        records = self.store.evidence([rowid for rowid, _ in hits])
        candidates = []
        for rowid, score in hits:
            evidence = records[rowid]
            evidence.score = score
            evidence.scores = {"dense": score}
            evidence.reason = "dense"
            candidates.append(evidence)
        if self.reranker is None:
            return candidates
        return self.reranker.rerank(question, candidates, k)
