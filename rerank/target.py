"""The man page of the function that does what a question asks: the target an API
how-to ranks first (`hybrid.py`) and an answer leads with (`serve/compose/lead.py`).

Candidates are the man pages retrieval returned, the pages of the names the question
types or of the options it names (`-ksp_rtol` → the pages listing it), and the pages of
the names the top passages use (the manual section that answers "how do I set the
tolerances" names `KSPSetTolerances`; its man page says exactly that in one line).
Each is scored by the cosine between the question and the page's stored vector, which
embeds the page's head (name, summary line, synopsis; `[ingest] embed_head_chars`), plus
`NAME_WEIGHT` × the share of the name's words the question uses: MiniLM puts
`KSPMonitorDynamicToleranceCreate` (0.72) above `KSPSetTolerances` (0.62) for "How do I
set the tolerances of a KSP solver?", and the name's words "set" and "tolerances" settle
it. No text is embedded here: choosing costs one FAISS call.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from sciknow.index.store import Store
from sciknow.ingest.symbols import find_symbols
from sciknow.records import Document, Evidence

NAMES_FROM_PASSAGES = 3  # top passages whose names are candidates
MAX_CANDIDATES = 24
NAME_WEIGHT = 0.3
_NAME_WORD_RE = re.compile(r"[A-Z]+(?![a-z])|[A-Z]?[a-z]+|\d+")
_WORD_RE = re.compile(r"[a-z_]+")


@dataclass
class Target:
    """The man page a question is about: its cosine to the question, its score (cosine plus
    the name's words the question uses) and its first chunk."""

    page: Document
    similarity: float
    score: float
    evidence: Evidence
    overlap: float = 0.0  # the share of the name's words the question uses


def target_page(
    store: Store,
    question: str,
    question_vector: np.ndarray,
    names: Sequence[str],
    evidence: Sequence[Evidence],
    prefixes: Sequence[str],
) -> Target | None:
    """The best-scored candidate man page (None when there is none)."""
    listing = _option_pages(store, names)
    wanted = listing or _candidate_names(names, evidence, prefixes)
    pages = _first_chunks(store, wanted)
    if not pages:
        return None
    rowids = np.array(sorted(pages), dtype=np.int64)
    ranked = store.search_dense(question_vector, len(rowids), rowids)
    if not ranked:
        return None
    words = {w.rstrip("s") for w in _WORD_RE.findall(question.lower())}
    words |= {n.lower().rstrip("s") for n in names}
    overlaps = {r: name_overlap(pages[r], words, prefixes) for r, _ in ranked}
    score, similarity, rowid = max((s + NAME_WEIGHT * overlaps[r], s, r) for r, s in ranked)
    item = store.evidence([rowid])[rowid]
    page = store.document(item.doc_id)
    if page is None:
        return None
    return Target(page, similarity, score, item, overlaps[rowid] or float(bool(listing)))


def name_overlap(name: str, words: set[str], prefixes: Sequence[str]) -> float:
    """The share of a name's words (its library prefix aside) that `words` holds:
    `KSPSetTolerances` → set, tolerances; 1 when `words` holds the name itself."""
    if name.lower().rstrip("s") in words:
        return 1.0
    parts = [p.lower().rstrip("s") for p in _NAME_WORD_RE.findall(name)]
    if parts and any(name.startswith(p) and len(parts[0]) <= len(p) for p in prefixes):
        parts = parts[1:]
    return sum(p in words for p in parts) / len(parts) if parts else 0.0


def _candidate_names(
    names: Sequence[str], evidence: Sequence[Evidence], prefixes: Sequence[str]
) -> list[str]:
    """Names typed in the question, titles of retrieved man pages, names in top passages."""
    out = [n for n in names if not n.startswith("-")]
    out += [e.title for e in evidence if e.kind == "manpage"]
    for item in evidence[:NAMES_FROM_PASSAGES]:
        out += [n for n in find_symbols(item.text, prefixes) if not n.startswith("-")]
    return list(dict.fromkeys(out))[:MAX_CANDIDATES]


def _option_pages(store: Store, names: Sequence[str]) -> list[str]:
    """Man pages whose options database keys list an option the question names
    (`-ksp_rtol` → KSPSetTolerances): for an option question, the only candidates."""
    options = {n for n in names if n.startswith("-")}
    if not options:
        return []
    rows = store.conn.execute(
        "SELECT DISTINCT d.title, d.meta FROM symbols s JOIN chunks c ON c.rowid = s.chunk_rowid "
        "JOIN documents d ON d.id = c.doc_id WHERE d.kind = 'manpage' "
        f"AND s.lower IN ({','.join('?' * len(options))}) LIMIT 500",
        [o.lower() for o in options],
    )
    return [
        title
        for title, meta in rows
        if options & {key.split()[0] for key in json.loads(meta).get("options", {}) if key}
    ][:MAX_CANDIDATES]


def _first_chunks(store: Store, names: Sequence[str]) -> dict[int, str]:
    """Row id of the first chunk of each name's man page → the name."""
    if not names:
        return {}
    lowered = [n.lower() for n in names]
    rows = store.conn.execute(
        "SELECT c.rowid, s.symbol FROM symbols s JOIN chunks c ON c.rowid = s.chunk_rowid "
        "JOIN documents d ON d.id = c.doc_id WHERE s.defines = 1 AND d.kind = 'manpage' "
        f"AND c.id LIKE '%::0' AND s.lower IN ({','.join('?' * len(lowered))})",
        lowered,
    )
    return {int(rowid): symbol for rowid, symbol in rows}
