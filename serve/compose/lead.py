"""What an answer leads with when a man page answers: the page's summary, synopsis,
options and notes that matter, and one line of a tutorial that calls the function, linked
to its line. Which page: `rerank/target.py`."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from sciknow.index.store import Store
from sciknow.records import Document, Evidence
from sciknow.serve.segment import split_sentences

MAX_OPTIONS = 6
MAX_NOTES = 2
# Notes that matter in a first answer: defaults, values that keep a setting, what to call.
NOTE_RE = re.compile(r"\b(default|PETSC_[A-Z_]+|SetFromOptions|must be called|before|unchanged)")
MAX_TUTORIAL_CHUNKS = 24
COMMENT_STARTS = ("!", "//", "/*", "*", "#", "C ")  # C, C++, Fortran and Python comments
LINE_FRAGMENT_RE = re.compile(r"#L\d+(?:-\d+)?$")


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
    language: str = "c"


def tutorial_call(store: Store, name: str) -> Call | None:
    """The first tutorial line (shortest path first) that calls `name`."""
    rows = store.conn.execute(
        "SELECT c.rowid FROM symbols s JOIN chunks c ON c.rowid = s.chunk_rowid "
        "JOIN documents d ON d.id = c.doc_id WHERE s.lower = ? AND d.kind = 'example' "
        "AND d.origin LIKE '%/tutorials/%' ORDER BY length(d.origin), d.origin, c.rowid "
        "LIMIT ?",
        (name.lower(), MAX_TUTORIAL_CHUNKS),
    )
    rowids = [int(rowid) for (rowid,) in rows]
    items = store.evidence(rowids)
    pattern = re.compile(rf"\b{re.escape(name)}\s*\(")
    for rowid in rowids:
        text = items[rowid].text
        for found in pattern.finditer(text):
            line = text[text.rfind("\n", 0, found.start()) + 1 : found.start()]
            if not line.lstrip().startswith(COMMENT_STARTS) and not _in_block_comment(
                text, found.start()
            ):  # a call, not its mention
                return _call(store, items[rowid], found.start())
    return None


def _in_block_comment(text: str, offset: int) -> bool:
    """Whether `offset` lies inside a `/* ... */` comment (a line of a tutorial's help text
    that names the function need not start with a comment marker)."""
    return text.rfind("/*", 0, offset) > text.rfind("*/", 0, offset)


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
    return Call(code, doc.origin, uri, item, str(doc.meta.get("language") or "c"))
