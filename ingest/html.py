"""Built HTML pages → sections, and which links of a published site to follow.

Sphinx HTML wraps the text in navigation, sidebars and "¶" header links; those
are dropped so only the page's own words are indexed. Section anchors come
from the page itself (the heading's `id`, or its `<section id>`), so links
always land where the site puts them.
"""

from __future__ import annotations

import posixpath
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urldefrag, urljoin, urlsplit

from bs4 import BeautifulSoup, NavigableString, Tag
from bs4.builder import ParserRejectedMarkup

from sciknow.ingest.rest import Section, make_id, tidy

HTML_SUFFIXES = (".html", ".htm")
_LEVELS = {f"h{n}": n for n in range(1, 7)}
_CHROME_TAGS = frozenset("script style nav header footer noscript template form button".split())
_CHROME_ROLES = frozenset({"navigation", "search", "banner", "contentinfo"})
_CHROME_CLASSES = frozenset(
    "headerlink related toctree-wrapper bd-toc bd-header bd-footer bd-header-article "
    "prev-next-area footer header breadcrumbs navbar searchbox skip-link".split()
)
_BLOCKS = frozenset(
    "p div section article main aside li ul ol dl dt dd table tr blockquote figure "
    "figcaption br hr caption details summary pre".split()
)


def parse_html(markup: str | bytes) -> BeautifulSoup:
    """Parse leniently (bytes: encoding from the page); ValueError if html.parser rejects it."""
    try:
        return BeautifulSoup(markup, "html.parser")
    except ParserRejectedMarkup as err:
        cause = str(err).splitlines()[-1].strip()
        raise ValueError(f"HTML rejected by the parser: {cause}") from None


def _is_chrome(tag: Tag) -> bool:
    classes = tag.get("class") or []
    return (
        tag.name in _CHROME_TAGS
        or tag.get("role") in _CHROME_ROLES
        or any(c in _CHROME_CLASSES or "sidebar" in c for c in classes)
    )


def html_sections(soup: BeautifulSoup, relpath: str, total_lines: int) -> list[Section]:
    """Sections of a parsed page, one per h1–h6 plus any text before the first heading."""
    for tag in soup.find_all(_is_chrome):
        if not tag.decomposed:
            tag.decompose()
    h1 = soup.find("h1")
    fallback = soup.title.get_text(strip=True) if soup.title else ""
    page = _heading_text(h1) if h1 else fallback or posixpath.basename(relpath)
    root = soup.find(attrs={"role": "main"}) or soup.find("main") or soup.body or soup
    parts: list[tuple[Tag | None, _Lines]] = [(None, _Lines())]
    for kind, value in _events(root):
        lines = parts[-1][1]
        if kind == "heading":
            parts.append((value, _Lines()))
        elif kind == "pre":
            lines.pre(value.get_text())
        elif kind == "text":
            lines.text(value)
        else:
            lines.brk()
    return _build(parts, page, total_lines)


def _build(parts: list[tuple[Tag | None, _Lines]], page: str, total_lines: int) -> list[Section]:
    sections: list[Section] = []
    path: list[tuple[int, str]] = []
    used: set[str] = set()
    for n, (tag, lines) in enumerate(parts):
        body = lines.result()
        next_tag = parts[n + 1][0] if n + 1 < len(parts) else None
        end = (next_tag.sourceline or 1) - 1 if next_tag is not None else total_lines
        if tag is None:
            if body:
                sections.append(Section(page, 0, [page], "", "", [], body, 1, max(1, end)))
            continue
        title, level = _heading_text(tag), _LEVELS[tag.name]
        while path and path[-1][0] >= level:
            path.pop()
        path.append((level, title))
        anchor = _anchor(tag, title, used)
        start = tag.sourceline or 1
        sections.append(
            Section(
                title=title,
                level=level,
                path=[t for _, t in path],
                slug=anchor,
                anchor=anchor,
                labels=_labels(tag, anchor),
                body=body,
                start_line=start,
                end_line=max(start, end),
            )
        )
    return sections


def _heading_text(tag: Tag) -> str:
    title, _ = _split_heading(tag)
    text = " ".join(c.get_text(" ") if isinstance(c, Tag) else str(c) for c in title)
    return re.sub(r"\s+", " ", text).rstrip("¶# ").strip()


def _split_heading(tag: Tag) -> tuple[list[Any], list[Any]]:
    """A heading's title children, and what an unclosed heading swallowed after them."""
    children = [c for c in tag.children if isinstance(c, Tag) or type(c) is NavigableString]
    for n, child in enumerate(children):
        if isinstance(child, Tag) and (child.name in _BLOCKS or child.name in _LEVELS):
            return children[:n], children[n:]
    return children, []


def _section_of(tag: Tag) -> Tag | None:
    """The `<section>` (or old Sphinx `<div class="section">`) a heading opens, if any."""
    parent = tag.parent
    if parent is None or not parent.get("id"):
        return None
    is_section = parent.name == "section" or "section" in (parent.get("class") or [])
    return parent if is_section else None


def _anchor(tag: Tag, title: str, used: set[str]) -> str:
    """The heading's id, its section's id, or (for hand-written HTML) a unique make_id slug."""
    section = _section_of(tag)
    own = tag.get("id") or (section.get("id") if section is not None else None)
    anchor = str(own) if own else make_id(title) or "section"
    base, n = anchor, 0
    while anchor in used:
        n += 1
        anchor = f"{base}-{n}"
    used.add(anchor)
    return anchor


def _labels(tag: Tag, anchor: str) -> list[str]:
    """Ids of the empty `<span id>` targets Sphinx writes for labels before a heading/section."""
    section = _section_of(tag)
    labels: list[str] = []
    for node in (tag, section) if section is not None else (tag,):
        for sib in node.previous_siblings:
            if isinstance(sib, Tag) and sib.get("id") and not sib.get_text(strip=True):
                labels.insert(0, str(sib["id"]))
            elif isinstance(sib, Tag) or str(sib).strip():
                break
    return [label for label in labels if label != anchor]


def _events(root: Tag) -> Iterator[tuple[str, Any]]:
    """Walk the tree in document order without recursion (broken pages nest very deep)."""
    stack: list[tuple[Iterator[Any], bool]] = [(iter(root.children), False)]
    while stack:
        node = next(stack[-1][0], None)
        if node is None:
            if stack.pop()[1]:
                yield "brk", ""
        elif type(node) is NavigableString:
            yield "text", str(node)
        elif not isinstance(node, Tag):
            continue
        elif node.name == "pre":
            yield "pre", node
        elif node.name in _LEVELS:
            yield "heading", node
            stack.append((iter(_split_heading(node)[1]), False))
        else:
            block = node.name in _BLOCKS
            yield ("brk", "") if block else ("text", " " if node.name in ("td", "th") else "")
            stack.append((iter(node.children), block))


@dataclass
class _Lines:
    """Accumulates readable lines: inline text collapsed, blocks on new lines, <pre> verbatim."""

    lines: list[str] = field(default_factory=list)
    current: list[str] = field(default_factory=list)

    def text(self, value: str) -> None:
        piece = re.sub(r"\s+", " ", value)
        if self.current or piece.strip():
            self.current.append(piece if self.current else piece.lstrip())

    def brk(self) -> None:
        if self.current:
            self.lines.append("".join(self.current).strip())
            self.current = []

    def pre(self, code: str) -> None:
        self.brk()
        self.lines += ["", "```", *code.strip("\n").split("\n"), "```", ""]

    def result(self) -> str:
        self.brk()
        return tidy(self.lines)


# --- crawling a published site -------------------------------------------------------


def site_root(url: str) -> str:
    """The folder URL a crawl stays under: the URL itself, or its parent if it names a file."""
    parts = urlsplit(url)
    path = parts.path or "/"
    if not path.endswith("/"):
        last = posixpath.basename(path)
        path = posixpath.dirname(path) + "/" if "." in last else path + "/"
    return parts._replace(path=path, query="", fragment="").geturl()


def site_origin(url: str, root: str) -> str:
    """A page's path under the site root; folder URLs name their `index.html`."""
    rel = url[len(root) :] if url.startswith(root) else url
    return rel + "index.html" if rel == "" or rel.endswith("/") else rel


def site_links(soup: BeautifulSoup, page_url: str, root: str) -> list[str]:
    """Absolute, fragment-free links to other HTML pages under `root`."""
    links = []
    for anchor in soup.find_all("a", href=True):
        try:
            url = urldefrag(urljoin(page_url, str(anchor["href"]))).url
        except ValueError:
            continue
        parts = urlsplit(url)
        suffix = posixpath.splitext(parts.path)[1].lower()
        if url.startswith(root) and not parts.query and suffix in ("", *HTML_SUFFIXES):
            links.append(url)
    return links
