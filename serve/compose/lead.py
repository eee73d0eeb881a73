"""The passage an answer leads with: the man page of the function that does what the
question asks, and one line of a tutorial that calls it.

Candidates are the man pages retrieval returned, the pages of the names the question
types, and the pages of the names the top passages use (the manual section that answers
"how do I set the tolerances" names `KSPSetTolerances`; its man page says exactly that
in one line). Each is scored by the cosine between the question and the page's stored
vector, which embeds the page's head: name, summary line, synopsis (`[ingest]
embed_head_chars`). No text is embedded here, so choosing costs one FAISS call.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from sciknow.index.store import Store
from sciknow.ingest.symbols import find_symbols
from sciknow.records import Document, Evidence
from sciknow.serve.segment import split_sentences

MAX_OPTIONS = 6
MAX_NOTES = 2
# Notes that matter in a first answer: defaults, values that keep a setting, what to call.
NOTE_RE = re.compile(r"\b(default|PETSC_[A-Z_]+|SetFromOptions|must be called|before|unchanged)")
NAMES_FROM_PASSAGES = 3  # top passages whose names are candidates
MAX_CANDIDATES = 24
LINE_FRAGMENT_RE = re.compile(r"#L\d+(?:-\d+)?$")


@dataclass
class Target:
    """The man page an answer leads with, its cosine to the question and its chunk."""

    page: Document
    similarity: float
    evidence: Evidence


def target_page(
    store: Store,
    question_vector: np.ndarray,
    names: Sequence[str],
    evidence: Sequence[Evidence],
    prefixes: Sequence[str],
) -> Target | None:
    """The candidate man page closest to the question (None when there is none)."""
    wanted = _candidate_names(names, evidence, prefixes) + _option_pages(store, names)
    pages = _first_chunks(store, wanted)
    if not pages:
        return None
    rowids = np.array(sorted(pages), dtype=np.int64)
    ranked = store.search_dense(question_vector, len(rowids), rowids)
    if not ranked:
        return None
    rowid, similarity = ranked[0]
    item = store.evidence([rowid])[rowid]
    page = store.document(item.doc_id)
    return Target(page, similarity, item) if page is not None else None


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
    """Man pages that list an option the question names (`-ksp_rtol` → KSPSetTolerances)."""
    options = [n for n in names if n.startswith("-")]
    if not options:
        return []
    hits = store.lookup_symbols(options, MAX_CANDIDATES)
    items = store.evidence([rowid for rowid, _ in hits]).values()
    return [e.title for e in items if e.kind == "manpage"]


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


def manpage_lead(page: Document, marker: str, asked: Sequence[str] = ()) -> str:
    """A man page as an answer's lead, cited with `marker`: summary line, synopsis, options
    database keys (those the question names first) and the notes that matter."""
    meta = page.meta
    call = "()" if meta.get("kind") == "function" else ""
    summary = str(meta.get("summary") or "").strip()
    parts = [f"**{page.title}{call}**" + (f" – {summary}" if summary else "") + f" {marker}"]
    synopsis = str(meta.get("synopsis") or "").strip()
    if synopsis:
        parts[0] += f"\n```c\n{synopsis}\n```"
    wanted = {a.lower() for a in asked}
    options = sorted(
        (meta.get("options") or {}).items(), key=lambda kv: kv[0].split()[0].lower() not in wanted
    )[:MAX_OPTIONS]
    if options:
        keys = "\n".join(f"- `{key}`" + (f" – {text}" if text else "") for key, text in options)
        parts.append(f"Options database keys {marker}:\n{keys}")
    notes = [s for s in split_sentences(str(meta.get("notes") or "")) if NOTE_RE.search(s)]
    if notes:
        parts.append(" ".join(notes[:MAX_NOTES]) + f" {marker}")
    return "\n\n".join(parts)


@dataclass
class Call:
    """One line of a tutorial that calls a function, with a link to that line."""

    code: str
    title: str
    uri: str
    evidence: Evidence


def tutorial_call(store: Store, name: str) -> Call | None:
    """The first tutorial line (shortest path first) that calls `name`."""
    rows = store.conn.execute(
        "SELECT c.rowid FROM symbols s JOIN chunks c ON c.rowid = s.chunk_rowid "
        "JOIN documents d ON d.id = c.doc_id WHERE s.lower = ? AND d.kind = 'example' "
        "AND d.origin LIKE '%/tutorials/%' ORDER BY length(d.origin), d.origin, c.rowid "
        "LIMIT ?",
        (name.lower(), MAX_CANDIDATES),
    )
    rowids = [int(rowid) for (rowid,) in rows]
    items = store.evidence(rowids)
    pattern = re.compile(rf"\b{re.escape(name)}\s*\(")
    for rowid in rowids:
        found = pattern.search(items[rowid].text)
        if found:
            return _call(store, items[rowid], found.start())
    return None


def _call(store: Store, item: Evidence, offset: int) -> Call | None:
    """The line of `item.text` at `offset`, linked to its line in the tutorial's file."""
    line_start = item.text.rfind("\n", 0, offset) + 1
    line_end = item.text.find("\n", offset)
    code = item.text[line_start : line_end if line_end >= 0 else None].strip()
    doc = store.document(item.doc_id)
    if doc is None:
        return None
    row = store.conn.execute("SELECT start FROM chunks WHERE id = ?", (item.chunk_id,)).fetchone()
    where = doc.text.find(code, row[0] if row else 0)
    code_line = int(doc.meta.get("code_line") or 0)
    uri = doc.uri
    if where >= 0 and code_line:
        line = doc.text[:where].count("\n") + 2 - code_line
        uri = LINE_FRAGMENT_RE.sub(f"#L{line}", uri)
    return Call(code, doc.origin, uri, item)
