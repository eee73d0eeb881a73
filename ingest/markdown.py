"""MyST Markdown pages → sections with readable text.

The scan (`scan_markdown`) only finds headings and their `(label)=` lines, so
the label index of a whole tree is cheap to build; `parse_markdown` then cleans
each section's body: roles become the text a reader sees, directive fences
are unwrapped (or dropped when they only build navigation), code stays code.
Headings count only at column 0 outside every fence, which keeps `# comment`
lines of shell and Python examples (often indented inside list items) out.

A `{rubric}` fence (an unnumbered heading that Sphinx gives no id, used as
"KSP:", "Mat:" ... on every changelog page) also opens a section, one level
below the heading before it: its chunks then carry that context. Such a
section links to the enclosing section's anchor (the rubric has none) and its
`meta["anchor"]` is made unique from both titles.
"""

from __future__ import annotations

import re
import textwrap

from sciknow.ingest.rest import (
    CODE_DIRECTIVES,
    PATH_DIRECTIVES,
    Heading,
    Labels,
    Section,
    build_sections,
    clean_rst,
    drop_options,
    link_text,
    plain_title,
    resolve_role,
    tidy,
)

# A fence may sit in a list item, a block quote or a definition (`- `, `> `, `: ` before it).
_FENCE = re.compile(
    r"^((?:[ \t]*(?:>|(?:[-*+:]|\d+[.)])(?=[ \t])))*[ \t]*)"
    r"(`{3,}|~{3,}|:{3,})\s*(?:\{([\w:.-]+)\})?\s*(.*?)\s*$"
)
_HEADING = re.compile(r"^(#{1,6})(?:[ \t]+(.*?))?(?:[ \t]+#+)?[ \t]*$")
_LABEL = re.compile(r"^\(([^()\s]+)\)=\s*$")
_FRONT_MATTER = re.compile(r"\A---\n.*?\n---[ \t]*\n", re.DOTALL)
_COMMENT = re.compile(r"<!--.*?-->", re.DOTALL)
_ROLE = re.compile(r"\{([\w:.+-]+)\}`([^`]+)`")
_IMAGE = re.compile(r"!\[([^\]]*)\]\([^)]*\)")
_LINK = re.compile(r"\[([^\]]*)\]\(<?([^)\s>]*)>?(?:\s+\"[^\"]*\")?\)")
_AUTOLINK = re.compile(r"<((?:https?|ftp|mailto):[^>\s]+)>")
_FOOTNOTE = re.compile(r"\[\^([^\]]+)\]")
# Inline HTML that only wraps text; placeholders such as `<n>` or `<p>` are left alone.
_HTML_TAG = re.compile(r"</?(?:a|sup|sub|hr|br|img|span|div|center|font|em|strong)\b[^<>]*>")
_ESCAPE = re.compile(r"\\([!-/:-@\[-`{-~])")
_BREAK = re.compile(r"^\s{0,3}([-_*])(?:\s*\1){2,}\s*$")

DROP_DIRECTIVES = frozenset(
    "contents toctree include raw bibliography literalinclude image highlight index".split()
)


def _blank_out(match: re.Match[str]) -> str:
    return "\n" * match.group(0).count("\n")


def prepare(text: str) -> list[str]:
    """Drop front matter and HTML comments, keeping line numbers."""
    text = _FRONT_MATTER.sub(_blank_out, text, count=1)
    return _COMMENT.sub(_blank_out, text).split("\n")


def _fence(line: str) -> re.Match[str] | None:
    """A fence opening (``` or ~~~ code, ::: directive); backtick info strings hold no backtick."""
    match = _FENCE.match(line)
    if match and match.group(2)[0] == "`" and "`" in match.group(4):
        return None
    return match


def _fence_end(lines: list[str], start: int, marker: str) -> int:
    """Index of the line closing the fence opened at `start` (len(lines) if unclosed)."""
    for i in range(start + 1, len(lines)):
        stripped = lines[i].lstrip(" \t>").strip()
        if stripped and set(stripped) == {marker[0]} and len(stripped) >= len(marker):
            return i
    return len(lines)


def scan_markdown(text: str) -> list[Heading]:
    """Find ATX headings outside fences, with the `(label)=` lines just before each."""
    lines = prepare(text)
    headings: list[Heading] = []
    labels: list[tuple[int, str]] = []
    i = 0
    while i < len(lines):
        line = lines[i]
        fence, heading, label = _fence(line), _HEADING.match(line), _LABEL.match(line)
        if fence:
            end = _fence_end(lines, i, fence.group(2))
            if fence.group(3) == "rubric" and fence.group(4) and not fence.group(1):
                level = next((h.level for h in reversed(headings) if not h.rubric), 0) + 1
                title = clean_title(fence.group(4)).rstrip(":")
                headings.append(Heading(i + 1, level, title, [], i + 1, end + 2, rubric=True))
            i, labels = end + 1, []
            continue
        if heading:
            first = labels[0][0] if labels else i + 1
            names = [name for _, name in labels]
            title = clean_title(heading.group(2) or "")
            headings.append(Heading(i + 1, len(heading.group(1)), title, names, first, i + 2))
            labels = []
        elif label:
            labels.append((i + 1, label.group(1)))
        elif line.strip():
            labels = []
        i += 1
    return headings


def clean_title(title: str) -> str:
    """Heading text as Sphinx renders it (the input of its id): no markup, roles resolved."""
    return plain_title(inline(title.strip(), Labels(), ""))


def inline(text: str, labels: Labels, page: str) -> str:
    """Resolve MyST inline markup: roles, links, images, autolinks, footnote marks, escapes."""
    text = _ROLE.sub(lambda m: resolve_role(m.group(1), m.group(2), labels, page), text)
    text = _IMAGE.sub(r"\1", text)
    text = _LINK.sub(lambda m: link_text(m.group(1), m.group(2), labels), text)
    text = _AUTOLINK.sub(r"\1", text)
    text = _FOOTNOTE.sub(r"[\1]", text)
    text = _HTML_TAG.sub("", text)
    return _ESCAPE.sub(r"\1", text)


def clean_markdown(lines: list[str], labels: Labels, page: str) -> list[str]:
    """Make MyST body lines readable, unwrapping directive fences (recursively)."""
    out: list[str] = []
    prose: list[str] = []
    i = 0
    while i < len(lines):
        fence = _fence(lines[i])
        if not fence:
            keep = not _LABEL.match(lines[i]) and not _BREAK.match(lines[i])
            prose.append(lines[i] if keep else "")
            i += 1
            continue
        out.extend(inline("\n".join(prose), labels, page).split("\n") if prose else [])
        prose = []
        end = _fence_end(lines, i, fence.group(2))
        body = _unprefix(lines[i + 1 : end], len(fence.group(1)))
        out.extend(_fenced(fence.group(3), fence.group(4), body, labels, page))
        i = end + 1
    out.extend(inline("\n".join(prose), labels, page).split("\n") if prose else [])
    return out


def _unprefix(lines: list[str], width: int) -> list[str]:
    """Fence content without the indentation or `>` of the container the fence sits in."""
    strip = re.compile(rf"^[ \t>]{{0,{width}}}")
    return textwrap.dedent("\n".join(strip.sub("", line) for line in lines)).split("\n")


def _fenced(name: str | None, arg: str, body: list[str], labels: Labels, page: str) -> list[str]:
    """Readable lines of one fence: code kept, navigation dropped, directives unwrapped."""
    if name is None:
        return ["", f"```{arg}", *body, "```", ""]
    name = name.lower()
    if name in DROP_DIRECTIVES:
        return []
    body = _drop_options(body)
    if name in CODE_DIRECTIVES:
        return ["", f"```{arg}", *body, "```", ""]
    if name == "math":
        return ["", *body, ""]
    if name == "eval-rst":
        return ["", *clean_rst(body, labels, page), ""]
    head = [] if name in PATH_DIRECTIVES or not arg else [inline(arg, labels, page)]
    return ["", *head, *clean_markdown(body, labels, page), ""]


def _drop_options(body: list[str]) -> list[str]:
    """Remove a directive's leading `:key: value` lines or `---` YAML option block."""
    if body and body[0].strip() == "---":
        close = next((i for i in range(1, len(body)) if body[i].strip() == "---"), 0)
        body = body[close + 1 :]
    return drop_options(body)


def parse_markdown(text: str, relpath: str, labels: Labels) -> list[Section]:
    """Sections of a MyST page, with bodies made readable."""
    lines = prepare(text)
    return build_sections(
        lines,
        scan_markdown(text),
        lambda body: tidy(clean_markdown(body, labels, relpath)),
        relpath,
    )
