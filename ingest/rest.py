"""reStructuredText pages → sections, and the docutils rules every docs format shares.

MyST pages are docutils documents written in Markdown and Sphinx HTML is their
output, so the section model, docutils' id rule (`make_id`, which gives the
`#anchors` of petsc.org), the tree-wide label index and role resolution live
here once; `markdown.py` and `html.py` reuse them and all formats agree.
"""

from __future__ import annotations

import posixpath
import re
import textwrap
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass, field

# docutils' `_non_id_translate_digraphs` and the single letters NFKD cannot strip.
_DIGRAPHS = str.maketrans(
    {"ß": "sz", "æ": "ae", "œ": "oe", "þ": "th", "ø": "o", "đ": "d", "ł": "l", "ħ": "h", "ı": "i"}
)


def make_id(text: str) -> str:
    """docutils' `make_id`: the id Sphinx gives a section titled `text`.

    Lowercase ASCII, runs of other characters become one "-", and leading
    digits and hyphens are dropped (docutils ids must start with a letter).
    """
    ascii_text = unicodedata.normalize("NFKD", text.lower().translate(_DIGRAPHS))
    ascii_text = ascii_text.encode("ascii", "ignore").decode("ascii")
    slug = re.sub(r"[^a-z0-9]+", "-", ascii_text)
    return re.sub(r"^[-0-9]+|-+$", "", slug)


@dataclass
class Heading:
    """A section title found by the cheap structural scan of a page."""

    line: int  # 1-based line of the title text
    level: int
    title: str
    labels: list[str]
    first: int  # first line of the heading's markup (its labels, an overline)
    body: int  # first line after the heading's markup
    rubric: bool = False  # an informal heading (MyST `{rubric}`) inside the previous section


@dataclass
class Section:
    """One heading's section of a page, with its body already made readable."""

    title: str
    level: int
    path: list[str]
    slug: str
    anchor: str
    labels: list[str]
    body: str
    start_line: int
    end_line: int


def page_key(relpath: str) -> str:
    """How `{doc}` targets name a page: its path without the suffix."""
    return posixpath.splitext(relpath)[0]


@dataclass
class Labels:
    """Cross-reference targets of the whole tree, so roles read as the titles they show."""

    titles: dict[str, str] = field(default_factory=dict)
    pages: dict[str, str] = field(default_factory=dict)

    def add(self, relpath: str, headings: list[Heading]) -> None:
        for heading in headings:
            for label in heading.labels:
                self.titles.setdefault(label.lower(), heading.title)
        if headings:
            self.pages[page_key(relpath)] = page_title(headings, relpath)

    def title(self, label: str) -> str:
        """Title of the section a label marks (labels are case-insensitive), else the label."""
        return self.titles.get(label.lower(), label)

    def doc_title(self, target: str, page: str) -> str:
        """Title of the page a `{doc}` target names, relative to `page` unless absolute."""
        base = "" if target.startswith("/") else posixpath.dirname(page)
        key = posixpath.normpath(posixpath.join(base, target.lstrip("/")))
        return self.pages.get(key, target)


def page_title(headings: list[Heading], relpath: str) -> str:
    """The first top-level heading, else the first heading, else the file name."""
    tops = [h for h in headings if h.level == 1] or headings
    return tops[0].title if tops else posixpath.splitext(posixpath.basename(relpath))[0]


_EXPLICIT = re.compile(r"^(.*?)\s*<([^<>]+)>$", re.DOTALL)


def resolve_role(role: str, content: str, labels: Labels, page: str) -> str:
    """Readable text of a Sphinx role, e.g. {ref}`label` → the title of its section."""
    name = role.rsplit(":", 1)[-1]
    if name == "math":
        return content
    if role.startswith(("cite", "footcite")):
        return f"[{content}]"
    explicit = _EXPLICIT.match(content)
    target = explicit.group(2) if explicit else content
    if name in ("ref", "any", "numref"):
        title = labels.title(target)
        return explicit.group(1).replace("%s", title) if explicit else title
    if explicit and explicit.group(1):
        return explicit.group(1)
    if name == "doc":
        return labels.doc_title(target, page)
    return target.split(".")[-1].lstrip("~") if target.startswith("~") else target.lstrip("!")


def link_text(text: str, url: str, labels: Labels) -> str:
    """A link as read: external ones keep their URL, internal ones read as their text,
    or with no text (MyST `[](label)`) as the title of the labelled section."""
    if re.match(r"^[a-z][a-z0-9+.-]*:", url):
        return f"{text} ({url})" if text else url
    return text or labels.title(url.lstrip("#"))


def tidy(lines: list[str]) -> str:
    """Strip trailing spaces and collapse runs of blank lines."""
    text = "\n".join(line.rstrip() for line in lines)
    return re.sub(r"\n{3,}", "\n\n", text).strip()


def build_sections(
    lines: list[str], headings: list[Heading], clean: Callable[[list[str]], str], relpath: str
) -> list[Section]:
    """Cut a scanned page into sections: a preamble (if it has text) and one per heading."""
    title = page_title(headings, relpath)
    cut = headings[0].first - 1 if headings else len(lines)
    sections = []
    preamble = clean(lines[:cut])
    if preamble:
        start, end = _content_span(lines, 0, cut)
        sections.append(Section(title, 0, [title], "", "", [], preamble, start, end))
    path: list[tuple[int, str]] = []
    ids = _Ids()
    for i, heading in enumerate(headings):
        stop = headings[i + 1].first - 1 if i + 1 < len(headings) else len(lines)
        while path and path[-1][0] >= heading.level:
            path.pop()
        path.append((heading.level, heading.title))
        body = clean(lines[heading.body - 1 : stop])
        if heading.rubric and not body:
            continue
        slug, anchor = ids.assign(heading)
        sections.append(
            Section(
                title=heading.title,
                level=heading.level,
                path=[t for _, t in path],
                slug=slug,
                anchor=anchor,
                labels=heading.labels,
                body=body,
                start_line=heading.line,
                end_line=max(heading.body - 1, _content_span(lines, heading.body - 1, stop)[1]),
            )
        )
    return sections


@dataclass
class _Ids:
    """The anchors of one page: docutils ids for URLs, unique anchors for document ids."""

    used: set[str] = field(default_factory=set)  # docutils ids: labels' and sections'
    anchors: set[str] = field(default_factory=set)
    section_slug: str = ""

    def assign(self, heading: Heading) -> tuple[str, str]:
        """(slug for the URL, anchor for the document id) of the next heading."""
        if heading.rubric:
            return self.section_slug, self._unique(make_id(f"{self.section_slug} {heading.title}"))
        # Labels claim their ids first; a taken or empty slug becomes `idN`, as in docutils.
        self.used.update(make_id(label) for label in heading.labels)
        slug, n = make_id(heading.title), 0
        while not slug or slug in self.used:
            n += 1
            slug = f"id{n}"
        self.used.add(slug)
        self.section_slug = slug
        anchor = heading.labels[-1] if heading.labels else slug
        return slug, self._unique(slug if anchor in self.anchors else anchor)

    def _unique(self, anchor: str) -> str:
        """`anchor`, or `anchor-N` when the page already has it (document ids must be unique)."""
        base, n = anchor, 1
        while anchor in self.anchors:
            n += 1
            anchor = f"{base}-{n}"
        self.anchors.add(anchor)
        return anchor


def _content_span(lines: list[str], start: int, stop: int) -> tuple[int, int]:
    """1-based first and last non-blank lines in `lines[start:stop]` (or the bounds)."""
    filled = [i for i in range(start, stop) if lines[i].strip()]
    return (filled[0] + 1, filled[-1] + 1) if filled else (start + 1, max(start + 1, stop))


# --- reStructuredText -----------------------------------------------------------------

_ADORNMENT = re.compile(r"""^([!-/:-@\[-`{-~])\1+\s*$""")
_LABEL = re.compile(r"^\.\. _([^:`]+|`[^`]+`):\s*$")
_DIRECTIVE = re.compile(r"^\s*\.\. ([\w:.-]+)::(?:\s+(.*))?$")
_COMMENT = re.compile(r"^\s*\.\.(?:\s|$)")
_OPTION = re.compile(r"^\s*:(?:[\w.-]+:(?:\s|$)|\s)")  # an option line or its continuation
_ROLE = re.compile(r"(?<![\w`]):([\w.+-]+(?::[\w.+-]+)*):`((?:[^`\\]|\\.)+?)`")
_LINK = re.compile(r"`([^`<]*?)\s*<([^`>]+)>`__?")
_REF = re.compile(r"`([^`]+)`__?(?!\w)")
_LITERAL = re.compile(r"``(.+?)``", re.DOTALL)

DROP_DIRECTIVES = frozenset(
    "toctree include raw bibliography literalinclude image highlight contents index meta".split()
)
CODE_DIRECTIVES = frozenset("code-block code sourcecode code-cell".split())
PATH_DIRECTIVES = frozenset({"figure"})


def _adornment(line: str) -> str | None:
    match = _ADORNMENT.match(line)
    return match.group(1) if match else None


def scan_rst(text: str) -> list[Heading]:
    """Find section titles (underline, optional overline) and the `.. _label:` before them.

    Levels follow the order in which adornment styles first appear, as in docutils.
    """
    lines = text.split("\n")
    styles: list[tuple[str, bool]] = []
    headings: list[Heading] = []
    labels: list[tuple[int, str]] = []
    i = 0
    while i < len(lines):
        found = _title_at(lines, i)
        if found is None:
            label = _LABEL.match(lines[i])
            if label:
                labels.append((i + 1, label.group(1).strip("`")))
            elif lines[i].strip():
                labels = []
            i += 1
            continue
        style, title_line, after = found
        if style not in styles:
            styles.append(style)
        first = labels[0][0] if labels else i + 1
        title = clean_rst_title(lines[title_line - 1])
        level = styles.index(style) + 1
        names = [n for _, n in labels]
        headings.append(Heading(title_line, level, title, names, first, after + 1))
        labels = []
        i = after
    return headings


def _title_at(lines: list[str], i: int) -> tuple[tuple[str, bool], int, int] | None:
    """((char, overlined), 1-based title line, index after the title) if a title starts at i."""
    char = _adornment(lines[i])
    nxt = lines[i + 1] if i + 1 < len(lines) else ""
    if char is not None:
        overlined = i + 2 < len(lines) and _adornment(lines[i + 2]) == char
        if overlined and nxt.strip() and _adornment(nxt) is None:
            return (char, True), i + 2, i + 3
        return None
    text = lines[i].rstrip()
    if not text or text[0].isspace() or (i > 0 and lines[i - 1].strip()):
        return None
    under, width = _adornment(nxt), len(nxt.rstrip())
    # docutils accepts a short underline (with a warning) once it is 4 characters long
    if under is not None and (width >= len(text) or width >= 4):
        return (under, False), i + 1, i + 2
    return None


def clean_rst_title(title: str) -> str:
    """Title text as rendered (no markup), the input of its id."""
    return plain_title(_inline_rst(title.strip(), Labels(), ""))


def plain_title(text: str) -> str:
    """A title without emphasis stars and code backticks, as Sphinx renders it."""
    return re.sub(r"(\*{1,3})(\S(?:.*?\S)?)\1", r"\2", text).replace("`", "")


def drop_options(block: list[str]) -> list[str]:
    """A directive's content without its leading `:key: value` option lines and blank lines."""
    while block and (_OPTION.match(block[0]) or not block[0].strip()):
        block = block[1:]
    return block


def clean_rst(lines: list[str], labels: Labels, page: str) -> list[str]:
    """Make reST body lines readable: resolve roles, unwrap directives, keep literal blocks."""
    out: list[str] = []
    prose: list[str] = []
    i = 0
    while i < len(lines):
        end = _block_at(lines, i, prose)
        if end <= i:
            prose.append(lines[i])
            i += 1
            continue
        out.extend(_inline_lines(prose, labels, page))
        prose = []
        directive = _DIRECTIVE.match(lines[i])
        if directive:
            out.extend(_directive(directive, lines[i + 1 : end], labels, page))
        elif not _COMMENT.match(lines[i]):
            out.extend(lines[i:end])
        i = end
    out.extend(_inline_lines(prose, labels, page))
    return out


def _block_at(lines: list[str], i: int, prose: list[str]) -> int:
    """End of an explicit-markup block (directive, comment, label) or literal block at i.

    Returns i when no such block starts there. A literal block is the indented
    text after a blank line that follows a paragraph ending in "::".
    """
    if _COMMENT.match(lines[i]):
        return _block_end(lines, i + 1, _indent(lines[i]))
    if prose and prose[-1].rstrip().endswith("::") and not lines[i].strip():
        return _block_end(lines, i, _indent(prose[-1]))
    return i


def _block_end(lines: list[str], start: int, indent: int) -> int:
    """Index after the blank or deeper-indented lines from `start` (trailing blanks excluded)."""
    i = start
    while i < len(lines) and (not lines[i].strip() or _indent(lines[i]) > indent):
        i += 1
    while i > start and not lines[i - 1].strip():
        i -= 1
    return i


def _indent(line: str) -> int:
    return len(line) - len(line.lstrip())


def _directive(match: re.Match[str], block: list[str], labels: Labels, page: str) -> list[str]:
    name, arg = match.group(1).rsplit(":", 1)[-1].lower(), (match.group(2) or "").strip()
    if name in DROP_DIRECTIVES:
        return []
    content = textwrap.dedent("\n".join(drop_options(block))).split("\n")
    if name in CODE_DIRECTIVES:
        return ["", f"```{arg}", *content, "```", ""]
    if name == "math":
        return ["", *content, ""]
    head = [] if name in PATH_DIRECTIVES or not arg else [_inline_rst(arg, labels, page)]
    return ["", *head, *clean_rst(content, labels, page), ""]


def _inline_lines(lines: list[str], labels: Labels, page: str) -> list[str]:
    """Resolve inline markup over a run of prose lines (roles may wrap across lines)."""
    if not lines:
        return []
    text = "\n".join(lines)
    text = re.sub(r"(?m)^\s*::\s*$", "", text)
    text = re.sub(r"(?m)[ \t]+::$", "", text)
    text = re.sub(r"(?m)::$", ":", text)
    return _inline_rst(text, labels, page).split("\n")


def _inline_rst(text: str, labels: Labels, page: str) -> str:
    text = _ROLE.sub(lambda m: resolve_role(m.group(1), m.group(2), labels, page), text)
    text = _LITERAL.sub(r"`\1`", text)
    text = _LINK.sub(lambda m: link_text(m.group(1), m.group(2), labels), text)
    return _REF.sub(r"\1", text)


def parse_rst(text: str, relpath: str, labels: Labels) -> list[Section]:
    """Sections of a reST page, with bodies made readable."""
    lines = text.split("\n")
    return build_sections(
        lines, scan_rst(text), lambda body: tidy(clean_rst(body, labels, relpath)), relpath
    )
