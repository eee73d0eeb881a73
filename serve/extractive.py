"""Extractive answers: the retrieved passages' own sentences, items, rows and code, cited.

A 135M model cannot write answers people can rely on (README, "Answers"), so on the
embedded default the answer is assembled from the evidence instead:

1. Every passage is cut into units (`segment.py`).
2. Each unit is scored: cosine between the question and the unit (the index's own
   embedder), BM25 of the question's terms within the passages' units, the share of the
   question's library names the unit contains, a bonus for library names and options the
   question does not name (the answer to "how do I ..." is usually another function or
   option), and the passage's retrieval rank.
3. Units are chosen greedily, MMR-style: score minus similarity to what is already chosen;
   near-duplicates (across passages too) are skipped; selection stops at the length
   budget or when units fall far below the best.
4. A function the question names gets its man-page synopsis on top when the index has
   its man page (added as a cited passage if retrieval did not return it).
5. Chosen units are printed grouped by passage (best passage first), in their order
   within the passage, each with its `[n]`.

Everything here is deterministic and costs one embedder batch; no model generates text.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from sciknow.index.embed import Embedder
from sciknow.index.store import Store
from sciknow.index.terms import terms
from sciknow.ingest.symbols import find_symbols
from sciknow.records import Evidence
from sciknow.serve.segment import Unit, segment

WEIGHTS = {"dense": 1.0, "bm25": 0.3, "symbols": 0.2, "api": 0.3, "rank": 0.1}
MMR_LAMBDA = 0.75
DUPLICATE_COSINE = 0.92
MIN_SHARE_OF_BEST = 0.55  # stop when a unit scores below this share of the best
MAX_UNITS = 8
MAX_UNIT_CHARS = 700
MIN_UNIT_CHARS = 25
# Units embedded per answer (the cheap scores pick them), in batches of `EMBED_BATCH`
# (the embedder runs batches that small on one thread, 4x faster on a busy machine),
# each cut to `EMBED_CHARS`: a unit's head is enough to judge it, and cost grows with length.
MAX_CANDIDATES = 15
EMBED_BATCH = 8
EMBED_CHARS = 200


@dataclass
class Candidate:
    unit: Unit
    passage: int  # 1-based passage number
    cheap: float = 0.0  # lexical score, before the embedder
    score: float = 0.0
    vector: np.ndarray | None = field(default=None, repr=False)


@dataclass
class Extract:
    """The answer text (Markdown with `[n]` markers) and the passages it numbers."""

    text: str
    evidence: list[Evidence]


class Extractor:
    """Builds extractive answers from evidence with the index's embedder and symbol table."""

    def __init__(
        self, embedder: Embedder, store: Store, prefixes: Sequence[str], max_chars: int = 1500
    ) -> None:
        self.embedder = embedder
        self.store = store
        self.prefixes = tuple(prefixes)
        self.max_chars = max_chars

    def answer(
        self, question: str, evidence: Sequence[Evidence], names: Sequence[str] = ()
    ) -> Extract:
        """`names`: the question's library names (the retriever's `query_symbols`)."""
        evidence = list(evidence)
        synopses = self._synopses(names, evidence)
        budget = self.max_chars - sum(len(s) for _, s in synopses)
        chosen = self.select(question, evidence, names, budget)
        return Extract(_render(synopses, chosen, evidence), evidence)

    # ----- selection ---------------------------------------------------------------

    def select(
        self, question: str, evidence: list[Evidence], names: Sequence[str], budget: int
    ) -> list[Candidate]:
        candidates = _candidates(evidence)
        if not candidates:
            return []
        _score_lexical(question, candidates, names, len(evidence), self.prefixes)
        candidates = sorted(candidates, key=lambda c: -c.cheap)[:MAX_CANDIDATES]
        texts = [question] + [_plain(c.unit.text)[:EMBED_CHARS] for c in candidates]
        vectors = np.concatenate(
            [
                self.embedder.embed(texts[i : i + EMBED_BATCH])
                for i in range(0, len(texts), EMBED_BATCH)
            ]
        )
        for candidate, vector in zip(candidates, vectors[1:], strict=True):
            candidate.vector = vector
            candidate.score = candidate.cheap + WEIGHTS["dense"] * float(vector @ vectors[0])
        return _mmr(candidates, budget)

    # ----- synopses ----------------------------------------------------------------

    def _synopses(self, names: Sequence[str], evidence: list[Evidence]) -> list[tuple[int, str]]:
        """(passage number, Markdown) for each named function with a man-page synopsis."""
        out = []
        for name in names[:3]:
            if name.startswith("-"):
                continue
            for doc in self.store.defining_documents(name, limit=1):
                synopsis = str(doc.meta.get("synopsis") or "").strip()
                if doc.kind != "manpage" or not synopsis:
                    continue
                n = self._passage_number(doc.id, name, evidence)
                if n is None:
                    continue
                summary = str(doc.meta.get("summary") or "").strip()
                head = f"**{doc.title}**" + (f" – {summary}" if summary else "")
                out.append((n, f"{head} [{n}]\n```c\n{synopsis}\n```"))
        return out

    def _passage_number(self, doc_id: str, name: str, evidence: list[Evidence]) -> int | None:
        """The number of `doc_id`'s passage among `evidence`, appending it when absent."""
        for n, item in enumerate(evidence, start=1):
            if item.doc_id == doc_id:
                return n
        rowids = [rowid for rowid, _ in self.store.lookup_symbols([name], 10)]
        for item in self.store.evidence(rowids).values():
            if item.doc_id == doc_id:
                item.reason = f"man page of {name}"
                evidence.append(item)
                return len(evidence)
        return None


def _body(item: Evidence) -> str:
    """The passage without the title and heading path every chunk starts with."""
    lines = item.text.splitlines()
    while lines and (
        lines[0].strip() in (item.title, item.section)
        or (" > " in lines[0] and not lines[0].rstrip().endswith((".", ":")))
    ):
        lines = lines[1:]
    return "\n".join(lines)


def _candidates(evidence: list[Evidence]) -> list[Candidate]:
    out = []
    for n, item in enumerate(evidence, start=1):
        for unit in segment(_body(item)):
            size = len(unit.text)
            if MIN_UNIT_CHARS <= size <= MAX_UNIT_CHARS or (unit.kind == "code" and size > 0):
                out.append(Candidate(unit, n))
    return out


def _plain(text: str) -> str:
    return text.replace("```", " ").replace("`", "")


def _score_lexical(
    question: str,
    candidates: list[Candidate],
    names: Sequence[str],
    passages: int,
    prefixes: tuple[str, ...],
) -> None:
    """BM25 within the units, share of the question's names, any API name, passage rank."""
    bm25 = _bm25(terms(question), [terms(c.unit.text) for c in candidates])
    top = max(bm25) or 1.0
    wanted = {n.lower() for n in names}
    for candidate, lexical in zip(candidates, bm25, strict=True):
        found = {s.lower() for s in find_symbols(candidate.unit.text, prefixes)}
        share = len(found & wanted) / len(wanted) if wanted else 0.0
        novel = len(found - wanted)
        rank = 1.0 - (candidate.passage - 1) / max(passages, 1)
        candidate.cheap = (
            WEIGHTS["bm25"] * lexical / top
            + WEIGHTS["symbols"] * share
            + WEIGHTS["api"] * min(novel, 3) / 3
            + WEIGHTS["rank"] * rank
        )


def _bm25(
    query: list[str], documents: list[list[str]], k1: float = 1.2, b: float = 0.75
) -> list[float]:
    """Okapi BM25 of `query` against each of `documents` (the units are the collection)."""
    if not documents:
        return []
    frequency = Counter(t for doc in documents for t in set(doc))
    average = sum(len(d) for d in documents) / len(documents) or 1.0
    n = len(documents)
    idf = {t: math.log(1 + (n - frequency[t] + 0.5) / (frequency[t] + 0.5)) for t in set(query)}
    scores = []
    for doc in documents:
        counts = Counter(doc)
        norm = k1 * (1 - b + b * len(doc) / average)
        scores.append(
            sum(idf[t] * counts[t] * (k1 + 1) / (counts[t] + norm) for t in idf if counts[t])
        )
    return scores


def _mmr(candidates: list[Candidate], budget: int) -> list[Candidate]:
    """Greedy MMR within `budget` characters; near-duplicates never chosen twice."""
    chosen: list[Candidate] = []
    pool = sorted(candidates, key=lambda c: -c.score)
    best = pool[0].score if pool else 0.0
    used = 0
    seen_texts: set[str] = set()
    while pool and len(chosen) < MAX_UNITS:
        picked = max(pool, key=lambda c: _mmr_value(c, chosen))
        pool.remove(picked)
        key = " ".join(picked.unit.text.lower().split())
        if picked.score < MIN_SHARE_OF_BEST * best:
            break
        if key in seen_texts or _redundancy(picked, chosen) >= DUPLICATE_COSINE:
            continue
        if used + len(picked.unit.text) > budget and chosen:
            continue
        chosen.append(picked)
        seen_texts.add(key)
        used += len(picked.unit.text)
    return chosen


def _redundancy(candidate: Candidate, chosen: list[Candidate]) -> float:
    if not chosen or candidate.vector is None:
        return 0.0
    return max(float(candidate.vector @ c.vector) for c in chosen if c.vector is not None)


def _mmr_value(candidate: Candidate, chosen: list[Candidate]) -> float:
    return MMR_LAMBDA * candidate.score - (1 - MMR_LAMBDA) * _redundancy(candidate, chosen)


# ----- rendering ---------------------------------------------------------------------

_SPACE_BEFORE_CITE_RE = re.compile(r"[ \t]+$")
_BRACKETED_NUMBER_RE = re.compile(r"\[(\d[\d,\s–-]*)\]")
_INLINE_CODE_RE = re.compile(r"(`[^`\n]*`)")


def _render(
    synopses: list[tuple[int, str]], chosen: list[Candidate], evidence: list[Evidence]
) -> str:
    """Synopses first, then passages in order of their best unit, units in passage order."""
    parts = [text for _, text in synopses]
    best: dict[int, float] = {}
    for candidate in chosen:
        best[candidate.passage] = max(best.get(candidate.passage, -1e9), candidate.score)
    for passage in sorted(best, key=lambda p: -best[p]):
        units = sorted((c.unit for c in chosen if c.passage == passage), key=lambda u: u.position)
        parts.append(render_units(units, passage))
    return "\n\n".join(p for p in parts if p)


def render_units(units: list[Unit], n: int | None = None) -> str:
    """Consecutive sentences form one paragraph; items, rows and code keep their own lines.
    Each unit is cited as passage `n`; with no `n` (a docs patch) nothing is cited."""
    lines: list[str] = []
    paragraph: list[str] = []
    for unit in units:
        if unit.kind == "sentence":
            paragraph.append(_cite(unit.text, n))
            continue
        if paragraph:
            lines.append(" ".join(paragraph))
            paragraph = []
        if unit.kind == "code":
            lines.append(unit.text if n is None else f"{unit.text}\n[{n}]")
        else:
            label = f"{unit.context}: " if unit.context and unit.kind == "item" else ""
            lines.append(f"- {label}{_cite(unit.text, n)}")
    if paragraph:
        lines.append(" ".join(paragraph))
    return "\n".join(lines) if all(line.startswith("- ") for line in lines) else "\n\n".join(lines)


def _cite(text: str, n: int | None) -> str:
    """The unit with its citation; a quoted `[0]` (an array index, a reference of the page)
    is escaped so that it renders the same but is not taken for a citation. No `n`: the
    unit as it is (no citation to confuse it with)."""
    if n is None:
        return text
    pieces = _INLINE_CODE_RE.split(_SPACE_BEFORE_CITE_RE.sub("", text))
    quoted = "".join(
        piece if i % 2 else _BRACKETED_NUMBER_RE.sub(r"\\[\1\\]", piece)
        for i, piece in enumerate(pieces)
    )
    return f"{quoted} [{n}]"
