"""The docs-tree source: MyST/Markdown, reST and built HTML pages → one Document per section.

`root` is a local folder (Sphinx sources or a built site) or the http(s) URL
of a published site, which is crawled. Published links:

- a source page `x/index.md` (or `.rst`) → `{base_url}x/`, `x/y.md` → `{base_url}x/y/`,
  `index.md` → `{base_url}` (Sphinx's dirhtml layout, as on petsc.org);
- a local built page `x/index.html` → `{base_url}x/`, `x.html` → `{base_url}x.html`;
- a crawled page keeps its own URL;
- with neither `base_url` nor the profile's `docs_url` (an unofficial folder, see
  `ingest/registry.py`), a local page has no link (`uri` is empty), not an invented one.

A section's anchor is the id Sphinx gives it (docutils `make_id` of the title,
or the HTML page's own id); `meta["anchor"]` prefers the MyST/reST label
before the heading, because labels survive title edits.

Change detection is per page (`State.origins`: relative path → fingerprint).
Labels are collected from every source page on each run, even unchanged ones,
so a `{ref}` in an edited page still reads as the title it points to. A page
that cannot be read is a `Skip` and is left out of the state (its old
documents are dropped and it is retried next run), except a crawled page whose
fetch failed transiently, which keeps its previous fingerprint and documents.
Folders whose names start with "." or "_" (`.git`, `_static`, `_sources`) are
not walked.

A crawl (http/https root) stays under the root URL's folder, follows only
links to `.html`/`.htm` or folder URLs without a query, and uses the shared
`Fetcher` (User-Agent, delay between requests, retries with backoff). Its
origins are paths under that folder, a folder URL naming its `index.html`;
its fingerprints are SHA-1 hashes of the pages (the body is fetched anyway for
its links, and Last-Modified has one-second resolution). A crawl cut short by
`max_pages` reports an incomplete state, so nothing beyond it is deleted.
"""

from __future__ import annotations

import hashlib
import os
import posixpath
from collections import deque
from collections.abc import Iterator
from pathlib import Path

from bs4 import BeautifulSoup

from sciknow.config import Profile
from sciknow.ingest.base import Skip, SkipLog, State, file_fingerprint, read_text_file
from sciknow.ingest.html import (
    HTML_SUFFIXES,
    html_sections,
    parse_html,
    site_links,
    site_origin,
    site_root,
)
from sciknow.ingest.http import Fetcher, FetchError
from sciknow.ingest.markdown import parse_markdown, scan_markdown
from sciknow.ingest.rest import Labels, Section, parse_rst, scan_rst
from sciknow.ingest.symbols import find_symbols
from sciknow.records import Document

SOURCE_SUFFIXES = (".md", ".rst")


class DocsSource:
    """Documentation pages from a local tree or a published site (see the module docstring)."""

    def __init__(
        self,
        name: str,
        root: str,
        profile: Profile,
        base_url: str = "",
        max_file_bytes: int = 2_000_000,
        official: bool = True,
        exclude: list[str] | tuple[str, ...] = (),
        *,
        max_pages: int = 2000,
        delay: float = 0.2,
        retries: int = 3,
        backoff: float = 1.0,
        timeout: float = 30.0,
        fetcher: Fetcher | None = None,
    ) -> None:
        self.name = name
        self.root = root
        self.profile = profile
        base = base_url or profile.docs_url
        self.base_url = base if not base or base.endswith("/") else base + "/"
        self.max_file_bytes = max_file_bytes
        self.official = official
        self.exclude = tuple(exclude)
        self.max_pages = max_pages
        self.fetcher = fetcher or Fetcher(
            delay=delay, timeout=timeout, retries=retries, backoff=backoff
        )
        self._log = SkipLog()
        self.skipped: list[Skip] = self._log.skipped  # pages the last run skipped, with reasons
        self._origins: dict[str, str] = {}
        self._complete = True

    def state(self) -> State:
        """Fingerprints of the pages read (or unchanged) in the last run."""
        return State(origins=dict(self._origins), complete=self._complete)

    def iter_documents(self, since: State | None) -> Iterator[Document]:
        """One Document per section of every page that changed since `since` (all if None)."""
        self._log, self._origins, self._complete = SkipLog(), {}, True
        self.skipped = self._log.skipped
        if self.root.startswith(("http://", "https://")):
            yield from self._iter_site(since)
        else:
            yield from self._iter_tree(Path(self.root), since)

    def _excluded(self, relpath: str) -> bool:
        return any(relpath.startswith(prefix) for prefix in self.exclude)

    # --- local tree --------------------------------------------------------------------

    def _files(self, root: Path) -> list[str]:
        """Relative paths of the doc pages under root, sorted, minus excluded ones."""
        found = []
        for folder, dirs, files in os.walk(root):
            dirs[:] = sorted(d for d in dirs if not d.startswith((".", "_")))
            rel_folder = Path(folder).relative_to(root).as_posix()
            for file in files:
                rel = posixpath.normpath(posixpath.join(rel_folder, file))
                suffix = posixpath.splitext(file)[1].lower()
                if suffix in SOURCE_SUFFIXES + HTML_SUFFIXES and not self._excluded(rel):
                    found.append(rel)
        return sorted(found)

    def _iter_tree(self, root: Path, since: State | None) -> Iterator[Document]:
        if not root.is_dir():
            self._log.skip(str(root), "docs root is not a folder")
            self._complete = False  # a missing tree must not delete what was indexed
            return
        labels = Labels()
        todo: list[tuple[str, str, str]] = []
        for rel in self._files(root):
            fingerprint = file_fingerprint(root / rel)
            changed = since is None or since.origins.get(rel) != fingerprint
            is_html = rel.lower().endswith(HTML_SUFFIXES)
            if is_html and not changed:
                self._origins[rel] = fingerprint
                continue
            text = read_text_file(root / rel, self.max_file_bytes, self._log, rel)
            if text is None:
                continue
            if not is_html:
                labels.add(rel, scan_rst(text) if rel.endswith(".rst") else scan_markdown(text))
            if changed:
                todo.append((rel, fingerprint, text))
            else:
                self._origins[rel] = fingerprint
        for rel, fingerprint, text in todo:
            sections = self._sections(rel, text, labels)
            if sections is not None:
                self._origins[rel] = fingerprint
                page_url = self.base_url and self.base_url + local_page_path(rel)
                yield from self._documents(rel, sections, page_url)

    def _sections(self, rel: str, text: str, labels: Labels) -> list[Section] | None:
        """Parse one page; anything unparseable becomes a Skip, never an exception."""
        suffix = posixpath.splitext(rel)[1].lower()
        try:
            if suffix == ".md":
                return parse_markdown(text, rel, labels)
            if suffix == ".rst":
                return parse_rst(text, rel, labels)
            return self._html_sections(rel, parse_html(text), text.count("\n") + 1)
        except Exception as err:  # one bad page must not stop the ingest
            self._log.skip(rel, f"could not parse: {type(err).__name__}: {err}")
            return None

    def _html_sections(self, rel: str, soup: BeautifulSoup, lines: int) -> list[Section] | None:
        try:
            sections = html_sections(soup, rel, lines)
        except Exception as err:  # one bad page must not stop the ingest
            self._log.skip(rel, f"could not parse: {type(err).__name__}: {err}")
            return None
        if not sections:
            self._log.skip(rel, "no readable text in the HTML page")
            return None
        return sections

    # --- published site ----------------------------------------------------------------

    def _iter_site(self, since: State | None) -> Iterator[Document]:
        """Breadth-first crawl of the pages under the root URL (the Fetcher spaces requests)."""
        root = site_root(self.root)
        start = self.root if self.root.startswith(root) else root
        queue, seen = deque([start]), {site_origin(start, root)}
        fetched = 0
        while queue:
            if fetched >= self.max_pages:
                self._complete = False
                self._log.skip(self.root, f"crawl stopped at max_pages={self.max_pages}")
                return
            url = queue.popleft()
            rel = site_origin(url, root)
            fetched += 1
            page = self._fetch(url, rel, since)
            if page is None:
                continue
            soup, fingerprint, lines = page
            for link in site_links(soup, url, root):
                origin = site_origin(link, root)
                if origin not in seen and not self._excluded(origin):
                    seen.add(origin)
                    queue.append(link)
            if since is None or since.origins.get(rel) != fingerprint:
                sections = self._html_sections(rel, soup, lines)
                if sections is None:
                    continue
                yield from self._documents(rel, sections, url)
            self._origins[rel] = fingerprint

    def _fetch(
        self, url: str, rel: str, since: State | None
    ) -> tuple[BeautifulSoup, str, int] | None:
        """Fetch and parse one page (with its fingerprint and line count), or log why not.

        A fetch that failed on retryable errors (the Fetcher then gives no
        status) keeps the page's previous fingerprint, so its documents stay.
        """
        try:
            data = self.fetcher.get(url)
        except FetchError as err:
            self._log.skip(rel, str(err))
            if err.status is None and since is not None and rel in since.origins:
                self._origins[rel] = since.origins[rel]
            return None
        if len(data) > self.max_file_bytes:
            self._log.skip(rel, f"page is {len(data)} bytes, over max_file_bytes")
            return None
        try:
            soup = parse_html(data)
        except ValueError as err:
            self._log.skip(rel, str(err))
            return None
        return soup, hashlib.sha1(data).hexdigest(), data.count(b"\n") + 1

    # --- documents ---------------------------------------------------------------------

    def _documents(self, rel: str, sections: list[Section], page_url: str) -> Iterator[Document]:
        kind = "changelog" if rel.startswith("changes/") else "doc"
        for section in sections:
            heading = " > ".join(section.path)
            text = f"{heading}\n\n{section.body}".strip()
            yield Document(
                id=f"{self.name}:{rel}#{section.anchor}",
                source=self.name,
                kind=kind,
                uri=f"{page_url}#{section.slug}" if page_url and section.slug else page_url,
                title=section.title,
                text=text,
                origin=rel,
                official=self.official,
                symbols=find_symbols(text, self.profile.symbol_prefixes),
                section=heading,
                start_line=section.start_line,
                end_line=section.end_line,
                meta={
                    "anchor": section.anchor,
                    "slug": section.slug,
                    "labels": list(section.labels),
                    "path": rel,
                    "level": section.level,
                },
            )


def local_page_path(relpath: str) -> str:
    """Where a local page is published, relative to base_url (see the module docstring)."""
    stem, suffix = posixpath.splitext(relpath)
    folder, name = posixpath.split(stem)
    if name == "index":
        return f"{folder}/" if folder else ""
    return relpath if suffix.lower() in HTML_SUFFIXES else f"{stem}/"
