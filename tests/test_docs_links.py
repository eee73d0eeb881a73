"""The README and docs/ link to each other by file and heading: every relative link and
image must reach a file, and every `#anchor` a heading of that file, so moving a
section or renaming a heading cannot leave a dead link behind. Headings are read with
markdown-it (the parser the doc-patch checks use), so text inside code fences is no
heading, as on GitHub."""

from __future__ import annotations

import re
from pathlib import Path

from markdown_it import MarkdownIt

ROOT = Path(__file__).resolve().parent.parent
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
PARSER = MarkdownIt("commonmark")


def slug(title: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to dashes."""
    return re.sub(r"[^\w\- ]", "", title.strip().lower()).replace(" ", "-")


def headings(page: Path) -> list[str]:
    tokens = PARSER.parse(page.read_text(encoding="utf-8"))
    return [tokens[i + 1].content for i, t in enumerate(tokens) if t.type == "heading_open"]


def links(page: Path) -> list[str]:
    """Targets of the page's relative links and images."""
    found = []
    for token in PARSER.parse(page.read_text(encoding="utf-8")):
        for child in token.children or []:
            target = child.attrs.get("href") or child.attrs.get("src")
            if isinstance(target, str) and not re.match(r"[a-z]+:", target):
                found.append(target)
    return found


def test_every_relative_link_reaches_a_file_and_a_heading() -> None:
    dead = []
    for page in PAGES:
        for target in links(page):
            path, _, anchor = target.partition("#")
            file = (page.parent / path).resolve() if path else page
            if not file.exists():
                dead.append(f"{page.relative_to(ROOT)}: {target} (no such file)")
            elif anchor and file.suffix == ".md" and anchor not in map(slug, headings(file)):
                dead.append(f"{page.relative_to(ROOT)}: {target} (no such heading)")
    assert not dead, "dead links:\n" + "\n".join(dead)


def test_every_docs_page_opens_with_its_contents() -> None:
    """A page's first section after its title is its contents list."""
    for page in PAGES:
        assert headings(page)[1] == "Contents", f"{page.relative_to(ROOT)} has no contents first"


def test_the_links_are_read() -> None:
    """The checks above pass vacuously if nothing is parsed as a link."""
    targets = links(ROOT / "README.md")
    assert "docs/configuration.md" in targets
    assert slug("MCP server (coding agents)") == "mcp-server-coding-agents"
