"""Structure-aware chunking: Documents → Chunks.

Sources already cut along structure (a doc section, a man page, a function, a
thread), so a document that fits the token budget becomes one chunk. Longer
ones are split with LangChain's recursive splitter, bounded in tokens of the
embedding model and overlapping, on separators that suit their kind. Man pages
get a larger budget (one page per chunk unless huge). Mail threads split by
message, each chunk carrying the opening question so a hit shows question and
answer together. Every chunk starts with its document's title so it stands alone.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from sciknow.ingest.symbols import find_symbols
from sciknow.records import Chunk, Document

CODE_SEPARATORS = ["\n}\n", "\n\n", "\n", " ", ""]
PROSE_SEPARATORS = ["\n#", "\n\n", "\n", ". ", " ", ""]
QUESTION_CONTEXT_CHARS = 600


def defined_symbol(doc: Document) -> str | None:
    """The symbol a document defines: its title, when that is its first symbol (a man page,
    a function). Symbol lookup ranks definitions above mentions."""
    return doc.symbols[0] if doc.symbols and doc.symbols[0] == doc.title else None


def approx_tokens(text: str) -> int:
    """Word-piece count estimate (~4 characters a token) when no tokenizer is given."""
    return max(1, len(text) // 4)


@dataclass
class Chunker:
    """Cuts documents into chunks of at most `max_tokens` (man pages: `manpage_tokens`)."""

    max_tokens: int = 256
    overlap: int = 32
    manpage_tokens: int = 1024
    count_tokens: Callable[[str], int] = approx_tokens
    symbol_prefixes: tuple[str, ...] = ()

    def chunk(self, doc: Document, exact: bool = True) -> list[Chunk]:
        """`exact=False` budgets by an estimate (4 characters a token) instead of the
        tokenizer: for chunks no embedder reads, where counting is most of the cost."""
        count = self.count_tokens if exact else approx_tokens
        # Chunks start with the title (see `_make`): leave room for it in the budget.
        room = count(doc.title) + 1
        if doc.kind == "mail" and doc.meta.get("messages"):
            pieces = self._by_message(doc, room, count)
        else:
            pieces = self._split(doc.text, doc.kind, count, room=room)
        return [self._make(doc, i, *piece) for i, piece in enumerate(pieces)]

    def _budget(self, kind: str, room: int) -> int:
        budget = self.manpage_tokens if kind == "manpage" else self.max_tokens
        return max(budget - room, self.overlap + 1)

    def _split(
        self, text: str, kind: str, count: Callable[[str], int], base: int = 0, room: int = 0
    ) -> list[tuple[str, int, int]]:
        """Pieces of `text` as (text, start, end), offsets in the document (`base` + index)."""
        budget = self._budget(kind, room)
        if count(text) <= budget:
            return [(text, base, base + len(text))]
        # LangChain loads in about a second; the query path imports this module, not it.
        from langchain_text_splitters import RecursiveCharacterTextSplitter

        splitter = RecursiveCharacterTextSplitter(
            chunk_size=budget,
            chunk_overlap=self.overlap,
            length_function=count,
            separators=CODE_SEPARATORS if kind in ("code", "example") else PROSE_SEPARATORS,
            keep_separator="end",
        )
        pieces, cursor = [], 0
        for piece in splitter.split_text(text):
            found = text.find(piece, max(0, cursor - len(piece)))
            start = found if found >= 0 else cursor
            cursor = start + len(piece)
            if piece.strip():
                pieces.append((piece, base + start, base + cursor))
        return pieces

    def _by_message(
        self, doc: Document, room: int, count: Callable[[str], int]
    ) -> list[tuple[str, int, int]]:
        messages = doc.meta["messages"]
        first = messages[0]
        question = doc.text[first["start"] : first["end"]]
        pieces = self._split(question, "mail", count, first["start"], room)
        context = question[:QUESTION_CONTEXT_CHARS]
        room += count(context) + 2
        for message in messages[1:]:
            body = doc.text[message["start"] : message["end"]]
            for text, start, end in self._split(body, "mail", count, message["start"], room):
                pieces.append((f"{context}\n…\n{text}", start, end))
        return pieces

    def _make(self, doc: Document, index: int, text: str, start: int, end: int) -> Chunk:
        if not text.lstrip().startswith(doc.title):
            text = f"{doc.title}\n{text}"
        symbols = find_symbols(text, self.symbol_prefixes) if self.symbol_prefixes else []
        defined = [name] if (name := defined_symbol(doc)) else []
        return Chunk(
            id=f"{doc.id}::{index}",
            doc_id=doc.id,
            text=text,
            section=doc.section or doc.title,
            start=start,
            end=end,
            symbols=list(dict.fromkeys(defined + symbols)),
        )


def hf_token_counter(tokenizer_file: str) -> Callable[[str], int]:
    """Count tokens with the embedding model's own fast tokenizer (tokenizer.json)."""
    from tokenizers import Tokenizer

    tokenizer = Tokenizer.from_file(tokenizer_file)
    tokenizer.no_truncation()
    tokenizer.no_padding()  # tokenizer.json pads to 128, which would count every text as 128

    def count(text: str) -> int:
        return len(tokenizer.encode(text, add_special_tokens=False).ids)

    return count
