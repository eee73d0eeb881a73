"""Cut a passage into the units an extractive answer quotes: sentences, list items,
table rows and code blocks.

Passages come from Markdown/reST docs, man pages rendered by `ingest/manpage.py`
(`Name – summary`, `Synopsis:`, `Input Parameters:` with `  name - text` items), mail
(quotes, signatures, greetings) and code. Each unit keeps its position in the passage,
so an answer can quote several units of one passage in their original order, and the
heading it sits under (a man page's `Input Parameters`), so an item reads on its own.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_FENCE_RE = re.compile(r"^(```|~~~)[^\n]*\n.*?(?:^\1[ \t]*$|\Z)", re.DOTALL | re.MULTILINE)
_HEADING_RE = re.compile(r"^#{1,6}\s+(.*)$")
_SECTION_RE = re.compile(r"^([A-Z][A-Za-z ]{2,40}):\s*$")  # man page "Input Parameters:"
_ITEM_RE = re.compile(r"^\s*(?:[-*+]|\d{1,2}[.)])\s+(.*)$")
_MANPAGE_ITEM_RE = re.compile(r"^\s{2,}(\S+)\s+-\s+(.*)$")
_TABLE_SEP_RE = re.compile(r"^\s*\|?\s*:?-{3,}")
_QUOTE_RE = re.compile(r"^\s*>")
_WROTE_RE = re.compile(r"^(On .{0,200}wrote:|.{0,80} writes:)\s*$")
_GREETING_RE = re.compile(
    r"^(hi|hello|dear|hey|thanks|thank you|best|regards|cheers|sincerely)\b[^.!?\n]{0,40}[,!.]?$",
    re.IGNORECASE,
)
_SIGNATURE_RE = re.compile(r"^--\s*$")
# A sentence ends at . ! ? followed by space and a capital, backtick, quote or digit; not
# after common abbreviations ("e.g.", "i.e.", "etc.", "vs.") or a single letter.
_SENTENCE_END_RE = re.compile(
    r"(?<!\b[A-Z])(?<!\be\.g)(?<!\bi\.e)(?<!\betc)(?<!\bvs)[.!?](?=\s+[A-Z`\"'(\d\[])"
)
_DIRECTIVE_RE = re.compile(r"^\s*(?:\.\. |:::|```\{|\(\w[\w-]*\)=|%)")
MAX_CODE_LINES = 20


@dataclass
class Unit:
    """One quotable piece of a passage."""

    text: str
    kind: str  # "sentence" | "item" | "row" | "code"
    position: int  # order within the passage
    context: str = ""  # the heading it sits under, when that helps it read alone


def segment(text: str) -> list[Unit]:
    """The passage's units in reading order (quotes, signatures and greetings left out)."""
    units: list[Unit] = []
    last = 0
    for match in _FENCE_RE.finditer(text):
        units += _prose_units(text[last : match.start()], len(units))
        units.append(Unit(_trim_code(match.group(0)), "code", len(units)))
        last = match.end()
    units += _prose_units(text[last:], len(units))
    return units


def _trim_code(block: str) -> str:
    lines = block.rstrip().splitlines()
    if len(lines) <= MAX_CODE_LINES + 2:
        return "\n".join(lines) if lines[-1].startswith(lines[0][:3]) else block.rstrip() + "\n```"
    return "\n".join([*lines[: MAX_CODE_LINES + 1], "...", lines[0][:3]])


def _prose_units(text: str, start: int) -> list[Unit]:
    units: list[Unit] = []
    context = ""
    for block in _blocks(_strip_mail(text)):
        first = block[0].strip()
        heading = _HEADING_RE.match(first) or _SECTION_RE.match(first)
        if heading or _bare_title(block):
            context = heading.group(1).strip() if heading else first
            block = block[1:]
            if not block:
                continue
        pieces = _block_pieces(block)
        if context.lower() == "synopsis":  # a man page's C signature
            pieces = [("code", "```c\n" + "\n".join(line.strip() for line in block) + "\n```")]
        for kind, piece in pieces:
            units.append(Unit(piece, kind, start + len(units), context))
    return units


def _bare_title(block: list[str]) -> bool:
    """A lone short line without sentence punctuation: the heading path a chunk starts with."""
    line = block[0].strip()
    return (
        len(block) == 1
        and len(line) <= 80
        and not line.endswith((".", ":", ";", "!", "?", ")", ","))
        and " – " not in line
        and " - " not in line
        and not _ITEM_RE.match(line)
        and not line.startswith("|")
    )


def _strip_mail(text: str) -> str:
    """Drop quoted lines, "On … wrote:" lines, greetings and everything after a signature."""
    kept = []
    for line in text.splitlines():
        if _SIGNATURE_RE.match(line):
            break
        if _QUOTE_RE.match(line) or _WROTE_RE.match(line.strip()):
            continue
        if _GREETING_RE.match(line.strip()):
            continue
        kept.append(line)
    return "\n".join(kept)


def _blocks(text: str) -> list[list[str]]:
    """Paragraphs: runs of non-blank lines; a heading line starts its own block."""
    blocks: list[list[str]] = [[]]
    for line in text.splitlines():
        if not line.strip() or _DIRECTIVE_RE.match(line):
            blocks.append([])
            continue
        if _HEADING_RE.match(line.strip()) or _SECTION_RE.match(line.strip()):
            blocks.append([])
        blocks[-1].append(line)
    return [b for b in blocks if b]


def _block_pieces(block: list[str]) -> list[tuple[str, str]]:
    if all(line.lstrip().startswith("|") for line in block):
        return _table_rows(block)
    if any(_ITEM_RE.match(line) or _MANPAGE_ITEM_RE.match(line) for line in block[:1]):
        return [("item", item) for item in _items(block)]
    if all(line.startswith(("    ", "\t")) for line in block):
        return [("code", "```\n" + "\n".join(line[4:] for line in block) + "\n```")]
    return [("sentence", s) for s in split_sentences(" ".join(line.strip() for line in block))]


def _items(block: list[str]) -> list[str]:
    """List items with their continuation lines joined; man-page `name - text` as `name: text`."""
    items: list[str] = []
    for line in block:
        manpage = _MANPAGE_ITEM_RE.match(line)
        bullet = _ITEM_RE.match(line)
        if manpage:
            items.append(f"`{manpage.group(1)}` - {manpage.group(2).strip()}")
        elif bullet:
            items.append(bullet.group(1).strip())
        elif items:
            items[-1] += " " + line.strip()
        else:
            items.append(line.strip())
    return items


def _table_rows(block: list[str]) -> list[tuple[str, str]]:
    """Each data row of a Markdown table as `cell — cell — cell` (the header row is skipped)."""
    rows = [line for line in block if not _TABLE_SEP_RE.match(line)]
    has_header = len(block) > 1 and _TABLE_SEP_RE.match(block[1]) is not None
    out = []
    for line in rows[1:] if has_header else rows:
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if any(cells):
            out.append(("row", " — ".join(c for c in cells if c)))
    return out


def split_sentences(paragraph: str) -> list[str]:
    """Sentences of one paragraph (whitespace collapsed)."""
    text = " ".join(paragraph.split())
    out, last = [], 0
    for match in _SENTENCE_END_RE.finditer(text):
        out.append(text[last : match.end()].strip())
        last = match.end()
    out.append(text[last:].strip())
    return [s for s in out if s]
