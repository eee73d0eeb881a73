"""PETSc man-page comment blocks (`/*@ ... @*/`, `/*MC ... M*/`, `/*S`, `/*E`, `/*J`).

PETSc writes its reference manual inside the C sources, in a small markup of
its own: a `Name - summary` first line, headed sections (`Input Parameters:`,
`Options Database Keys:`, `Notes:`, ...), bullets `+ name - text`, `. name - text`,
`- name - text`, verbatim regions `.vb` ... `.ve`, a `Level:` line and a
`.seealso:` list. Parsing that structure (instead of chunking the raw comment)
lets retrieval and answers name the exact parameter, option or related routine.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from sciknow.ingest.base import SkipLog

OPEN_RE = re.compile(r"^\s*/\*(@[A-Z]?|MC|M|S|E|J)(?=\s|$)(.*)$")
CLOSE_RE = re.compile(r"(@|MC|M|S|E|J)\*/\s*$")
KINDS = {"@": "function", "M": "macro", "S": "struct", "E": "enum", "J": "type"}
# "KSPSolve - Solves ...", "DMPLEX = "plex" - A DM ...", or a bare name.
NAME_RE = re.compile(r"^([A-Za-z_][\w:]*)(?:\(\))?(?:\s+--?\s+(.*)|\s*=\s*(.*)|\s*)$")
BULLET_RE = re.compile(r"^\s*[+.\-]\s+(\S.*?)(?:\s+-\s+(.*))?$")
COLLECTIVE_RE = re.compile(r"^(?:Not |Logically |Neighbor-wise )?Collective\b")
LEVEL_RE = re.compile(r"^Level:\s*(.*)$")
HEADING_RE = re.compile(r"^([A-Z][\w ()`'/-]*?)\s*:\s*(.*)$")
LINK_RE = re.compile(r"\[[^\]]*\]\([^)]*\)")
MAX_SIGNATURE_LINES = 20
# Heading text (lowercased) -> ManPage field; other headings are kept in `sections`.
FIELD_HEADINGS = (
    (r"(input )?parameters?", "input_parameters"),
    (r"output parameters?", "output_parameters"),
    (r"options? database.*", "options"),
    (r"notes?", "notes"),
    (r"developer notes?", "developer_notes"),
    (r"fortran notes?", "fortran_notes"),
    (r"synopsis", "synopsis"),
)
# Sections whose body ends at the first blank line; the others run to the next heading.
LIST_SECTIONS = {
    "input_parameters",
    "output_parameters",
    "options",
    "synopsis",
    "seealso",
    "keywords",
}


@dataclass
class ManPage:
    """One parsed man-page block; the `meta` of its Document is `to_dict()`."""

    name: str
    kind: str
    marker: str
    start_line: int
    end_line: int
    summary: str = ""
    collective: str = ""
    synopsis: str = ""
    description: str = ""
    input_parameters: list[tuple[str, str]] = field(default_factory=list)
    output_parameters: list[tuple[str, str]] = field(default_factory=list)
    options: dict[str, str] = field(default_factory=dict)
    level: str = ""
    notes: str = ""
    developer_notes: str = ""
    fortran_notes: str = ""
    sections: dict[str, str] = field(default_factory=dict)
    seealso: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return dict(vars(self))


def _family(tag: str) -> str:
    return "@" if tag.startswith("@") else tag[0]


def _find_close(lines: list[str], start: int, family: str) -> int | None:
    """Index of the closing line, -1 for a plain `/*E...*/`-style comment, None if unterminated."""
    for j in range(start, len(lines)):
        close = CLOSE_RE.search(lines[j])
        if close and _family(close.group(1)) == family:
            return j
        if "*/" in lines[j]:
            return -1
        if j > start and OPEN_RE.match(lines[j]):
            return None
    return None


def parse_manpages(text: str, where: str, skips: SkipLog) -> list[ManPage]:
    """All man-page blocks of a C-family file; a broken block is a Skip, not an error."""
    lines = text.split("\n")
    pages = []
    i = 0
    while i < len(lines):
        opened = OPEN_RE.match(lines[i])
        if not opened:
            i += 1
            continue
        marker, first = opened.groups()
        end = _find_close(lines, i, _family(marker))
        if end is None:
            skips.skip(where, f"unterminated /*{marker} man-page block at line {i + 1}")
        elif end >= 0:
            body = [first, *lines[i + 1 : end], CLOSE_RE.sub("", lines[end])] if end > i else []
            page = _parse_block(marker, body, lines, i, end)
            if page is None:
                skips.skip(where, f"/*{marker} block at line {i + 1} has no 'Name - summary' line")
            else:
                pages.append(page)
            i = end
        i += 1
    return pages


def _parse_block(
    marker: str, body: list[str], lines: list[str], start: int, close: int
) -> ManPage | None:
    body = _drop_blank_head(body)
    head = NAME_RE.match(body[0].strip()) if body else None
    if head is None:
        return None
    summary = [head.group(2) or head.group(3) or ""]
    rest = body[1:]
    while rest and rest[0].strip() and not _structural(rest[0].strip()):
        summary.append(rest.pop(0).strip())
    page = ManPage(
        name=head.group(1),
        kind=KINDS[_family(marker)],
        marker=marker,
        start_line=start + 1,
        end_line=close + 1,
        summary=" ".join(s for s in summary if s),
    )
    raw = _split_sections(rest, page)
    _fill(page, raw)
    if page.kind == "function":
        signature, sig_end = _signature(lines, close + 1)
        if signature:
            page.synopsis = page.synopsis or signature
            page.end_line = sig_end + 1
    return page


def _drop_blank_head(body: list[str]) -> list[str]:
    while body and not body[0].strip():
        body = body[1:]
    return body


def _structural(s: str) -> bool:
    """A line that starts a new part of the block rather than continuing a paragraph."""
    return bool(
        COLLECTIVE_RE.match(s)
        or LEVEL_RE.match(s)
        or s.startswith((".seealso", ".keywords", ".vb"))
        or _heading(s, True)
    )


def _heading(s: str, after_blank: bool) -> tuple[str, str] | None:
    """(field or section title, text after the colon) for a section heading line."""
    m = HEADING_RE.match(s)
    if not m:
        return None
    title, tail = m.groups()
    for pattern, key in FIELD_HEADINGS:
        if re.fullmatch(pattern, title.lower()):
            return key, tail
    if not tail and after_blank and len(title.split()) <= 6:
        return title, ""
    return None


def _split_sections(rest: list[str], page: ManPage) -> dict[str, list[str]]:
    """Group the lines after the summary by section; `Level` and `Collective` go straight in."""
    raw: dict[str, list[str]] = {"description": []}
    section, verbatim, prev_blank = "description", False, True
    for line in rest:
        s = line.strip()
        if verbatim or s == ".vb":
            verbatim = s != ".ve"
            raw[section].append(line)
            continue
        level, heading = LEVEL_RE.match(s), _heading(s, prev_blank)
        if level:
            page.level, section = level.group(1).strip(), "description"
        elif s.startswith((".seealso", ".keywords")):
            section = s[1:].split(":")[0]
            raw[section] = [s.partition(":")[2]]
        elif COLLECTIVE_RE.match(s) and not page.collective and section == "description":
            page.collective = s
        elif heading:
            section = heading[0]
            raw.setdefault(section, []).extend([heading[1]] if heading[1] else [])
        elif not s and section in LIST_SECTIONS:
            section = "description"
        else:
            raw[section].append(line)
        prev_blank = not s
    return raw


def _fill(page: ManPage, raw: dict[str, list[str]]) -> None:
    for key, lines in raw.items():
        if key in ("input_parameters", "output_parameters"):
            setattr(page, key, _bullets(lines, page))
        elif key == "options":
            page.options.update(_bullets(lines, page))
        elif key == "seealso":
            page.seealso = seealso_names(" ".join(lines))
        elif key == "synopsis":
            page.synopsis = _prose([ln for ln in lines if ln.strip() not in (".vb", ".ve")])
        elif key in ("description", "notes", "developer_notes", "fortran_notes"):
            setattr(page, key, _prose(lines))
        elif key != "keywords" and _prose(lines):
            page.sections[key] = _prose(lines)


def _bullets(lines: list[str], page: ManPage) -> list[tuple[str, str]]:
    """`+ name - text` items with their continuation lines; loose text joins the description."""
    items: list[list[str]] = []
    for line in lines:
        bullet = BULLET_RE.match(line)
        if bullet:
            items.append([bullet.group(1).strip("` "), (bullet.group(2) or "").strip()])
        elif items and line.strip():
            items[-1][1] = f"{items[-1][1]} {line.strip()}".strip()
        elif line.strip():
            page.description = f"{page.description}\n{line.strip()}".strip()
    return [(name, desc) for name, desc in items]


def _prose(lines: list[str]) -> str:
    """Dedented text with `.vb`/`.ve` (often at column 0) turned into Markdown code fences."""
    fence = [line.strip() in (".vb", ".ve") for line in lines]
    indents = [
        len(ln) - len(ln.lstrip())
        for ln, f in zip(lines, fence, strict=True)
        if ln.strip() and not f
    ]
    cut = min(indents, default=0)
    text = "\n".join("```" if f else ln[cut:].rstrip() for ln, f in zip(lines, fence, strict=True))
    return text.strip("\n")


def seealso_names(text: str) -> list[str]:
    """Names in a `.seealso:` list: "`KSPSolve()`, `KSP`" -> ["KSPSolve", "KSP"]."""
    text = LINK_RE.sub("", text)
    parts = re.findall(r"`([^`]+)`", text) if "`" in text else re.split(r"[,\s]+", text)
    names = (re.sub(r"\(\)$", "", p.strip()) for p in parts)
    return list(dict.fromkeys(n for n in names if re.fullmatch(r"[A-Za-z_][\w:]*", n)))


def _signature(lines: list[str], start: int) -> tuple[str, int]:
    """The declaration after a `/*@` block, up to its opening brace (or `;` for a prototype)."""
    sig: list[str] = []
    last = start
    for j in range(start, min(start + MAX_SIGNATURE_LINES, len(lines))):
        s = lines[j].strip()
        if not sig and (not s or s.startswith(("#if", "#el", "#endif"))):
            continue
        if not sig and s.startswith(("/*", "//", "#")):
            break
        before, brace, _ = lines[j].partition("{")
        if before.strip():
            sig.append(before.rstrip())
            last = j
        if brace or s.endswith(";"):
            return "\n".join(sig), last
        if not s:
            break
    return "", start


def render(page: ManPage) -> str:
    """A readable plain-text page: what a person (and the embedder) should see."""
    parts = [f"{page.name} – {page.summary}" if page.summary else page.name]
    if page.synopsis:
        parts.append(f"Synopsis:\n{page.synopsis}")
    parts += [page.collective, page.description]
    for title, items in (
        ("Input Parameters", page.input_parameters),
        ("Output Parameters", page.output_parameters),
        ("Options Database Keys", list(page.options.items())),
    ):
        if items:
            lines = (f"  {n} - {d}" if d else f"  {n}" for n, d in items)
            parts.append(f"{title}:\n" + "\n".join(lines))
    for title, text in (
        ("Notes", page.notes),
        ("Developer Notes", page.developer_notes),
        ("Fortran Notes", page.fortran_notes),
        *page.sections.items(),
    ):
        if text:
            parts.append(f"{title}:\n{text}")
    if page.level:
        parts.append(f"Level: {page.level}")
    if page.seealso:
        parts.append("See also: " + ", ".join(page.seealso))
    return "\n\n".join(p for p in parts if p)
