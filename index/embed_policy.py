"""Which chunks get a vector, and of what text: the embedding policy of an index.

Embedding is the cost of an ingest (a whole PETSc tree is 126k chunks; MiniLM embeds
~45 chunks of 256 tokens a second on 2 cores, ~4x more when they are 32 words), and
most chunks do not need a vector: function bodies are found by their names and terms.
Two rules, both from `[ingest]`:

- `skip_embedding_kinds`: chunks of these kinds get BM25 terms and symbols only;
- `embed_head_chars`: for these kinds only a document's first chunk is embedded, and
  only its first N characters. A man page's head is its name, summary line and
  synopsis, which is what a question matches; a tutorial's head is its help string
  and header comment; the rest of either is found by terms and symbols.

A vector is cached under the hash of the text it embeds (for a whole chunk, the
chunk's own content hash), so a vector of a head is never mistaken for one of the
whole chunk, and changing the policy re-embeds only what changed. The index records
`key()`; a different key rebuilds the vectors.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass, field

from sciknow.records import Chunk, content_hash


def chunk_index(chunk_id: str) -> int:
    """The position of a chunk in its document (chunk ids end in `::N`)."""
    return int(chunk_id.rsplit("::", 1)[1])


@dataclass(frozen=True)
class EmbedPolicy:
    """`skip`: kinds never embedded; `head_chars`: kind → characters of the first chunk."""

    skip: frozenset[str] = frozenset()
    head_chars: Mapping[str, int] = field(default_factory=dict)

    @classmethod
    def of(cls, skip: Collection[str] = (), head_chars: Mapping[str, int] | None = None):
        return cls(frozenset(skip), dict(sorted((head_chars or {}).items())))

    def whole(self, kind: str) -> bool:
        """Whether chunks of `kind` are embedded whole (so their token counts matter)."""
        return kind not in self.skip and kind not in self.head_chars

    def text(self, kind: str, chunk_id: str, text: str) -> str | None:
        """What the chunk's vector embeds, or None when the chunk gets no vector."""
        if kind in self.skip:
            return None
        limit = self.head_chars.get(kind)
        if limit is None:
            return text
        return text[:limit] if chunk_index(chunk_id) == 0 else None

    def texts(self, kind: str, chunks: Iterable[Chunk]) -> dict[str, str]:
        """The texts to embed for one document's chunks, by cache key."""
        out = {}
        for chunk in chunks:
            text = self.text(kind, chunk.id, chunk.text)
            if text is not None:
                out[chunk.content_hash if text == chunk.text else content_hash(text)] = text
        return out

    def key(self) -> str:
        """The policy as the index's meta table stores it ("code" for the old default)."""
        skip = ",".join(sorted(self.skip))
        heads = ",".join(f"{kind}:{n}" for kind, n in self.head_chars.items())
        return f"{skip};{heads}" if heads else skip
