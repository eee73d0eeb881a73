"""Diversity: drop near-duplicate passages and cap passages per document.

A model is given a fixed context budget; two overlapping chunks of one section,
or the same paragraph copied into two pages, spend it twice on one fact. This
stage walks the ranked list in order and keeps a passage only when it adds
something: it is not a near duplicate (word-shingle Jaccard similarity) of a
passage already kept, and its document has fewer than `max_per_doc` kept.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from sciknow.records import Evidence

_WORD_RE = re.compile(r"\w+")
SHINGLE = 3  # words per shingle: robust to re-wrapping, sensitive to real differences


def shingles(text: str, size: int = SHINGLE) -> frozenset[tuple[str, ...]]:
    """The set of `size`-word windows of a text, lowercased (the whole text when shorter)."""
    words = _WORD_RE.findall(text.lower())
    if len(words) <= size:
        return frozenset([tuple(words)])
    return frozenset(tuple(words[i : i + size]) for i in range(len(words) - size + 1))


def jaccard(a: frozenset, b: frozenset) -> float:
    return len(a & b) / len(a | b) if a or b else 1.0


def page_of(evidence: Evidence) -> str:
    """The page a passage belongs to: its document id without the section anchor."""
    return evidence.doc_id.split("#", 1)[0]


@dataclass
class Diversifier:
    """Keeps the best passages that are neither near duplicates nor over a per-document cap.

    `max_per_doc` counts passages of one document (a docs section, a man page);
    `max_per_page` counts passages of one page (all sections of `manual/ksp.md`);
    0 disables a cap. `max_similarity` is the shingle Jaccard above which a passage
    counts as a duplicate (1.0 disables the check).
    """

    max_per_doc: int = 0
    max_per_page: int = 0
    max_similarity: float = 1.0

    def rerank(self, question: str, candidates: list[Evidence], k: int) -> list[Evidence]:
        kept: list[Evidence] = []
        seen: list[frozenset] = []
        per_doc: dict[str, int] = {}
        per_page: dict[str, int] = {}
        for evidence in candidates:
            if len(kept) == k:
                break
            doc, page = evidence.doc_id, page_of(evidence)
            if self.max_per_doc and per_doc.get(doc, 0) >= self.max_per_doc:
                continue
            if self.max_per_page and per_page.get(page, 0) >= self.max_per_page:
                continue
            if self.max_similarity < 1.0:
                words = shingles(evidence.text)
                if any(jaccard(words, other) > self.max_similarity for other in seen):
                    continue
                seen.append(words)
            kept.append(evidence)
            per_doc[doc] = per_doc.get(doc, 0) + 1
            per_page[page] = per_page.get(page, 0) + 1
        return kept
