"""Where knowledge belongs: an official docs page and section, or a new FAQ entry.

Retrieval is restricted to official docs pages (`kind = "doc"`, official). The best
ranked Markdown page that also exists in the docs clone is the target when its dense
cosine with the question reaches `docpatch.min_section_score`; the new text then becomes
the last subsection of that section (a sibling entry on the FAQ page, whose sections are
questions). Below the threshold no section fits, and the text becomes a new FAQ entry
after the closest FAQ question (or at the end of the FAQ page).

Line numbers come from the page in the clone at the base commit, not from the index: the
heading is found again by its title and level (the one nearest the indexed line), so a
clone that moved on since the last ingest still gets the right place.
"""

from __future__ import annotations

import posixpath
from dataclasses import dataclass, field

from sciknow.config import DocPatchConfig
from sciknow.index.store import Filters
from sciknow.ingest.markdown import scan_markdown
from sciknow.ingest.rest import Heading
from sciknow.records import Document, Evidence
from sciknow.rerank.hybrid import HybridRetriever
from sciknow.serve.docpatch.gitops import DocsRepo
from sciknow.serve.docpatch.sources import DraftError

OFFICIAL_DOCS = Filters(kinds=("doc",), official=True)
CANDIDATES = 12


@dataclass
class Target:
    """A place in one page of the clone (0-based line indices into the base file)."""

    path: str  # in the repository
    page: str  # as indexed (relative to a docs root)
    heading: str
    section: str  # heading path
    level: int
    mode: str  # "child" | "sibling" | "faq-end"
    line: int  # the heading line
    body_end: int  # end of the section's own text (first child heading or the next one)
    subtree_end: int  # end of its subsections: where a new entry is inserted
    score: float
    uri: str
    reason: str
    closest: list[Evidence] = field(default_factory=list)


def official_candidates(
    retriever: HybridRetriever, question: str
) -> list[tuple[Evidence, Document]]:
    """The closest official docs sections, with their documents, best first."""
    evidence = retriever.search(question, CANDIDATES, OFFICIAL_DOCS)
    out = []
    for item in evidence:
        doc = retriever.store.document(item.doc_id)
        if doc is not None:
            out.append((item, doc))
    return out


def suggest(item: Evidence, doc: Document, settings: DocPatchConfig) -> dict[str, str]:
    """The target a gap report suggests for its best official passage (no clone needed)."""
    score = item.scores.get("dense", 0.0)
    if score >= settings.min_section_score and doc.meta.get("path"):
        why = f"closest official section (cosine {score:.2f})"
        return {"page": doc.meta["path"], "section": doc.section, "uri": doc.uri, "why": why}
    why = f"no section fits (best cosine {score:.2f} < {settings.min_section_score})"
    return {"page": settings.faq_page, "section": "new FAQ entry", "uri": "", "why": why}


def locate(
    retriever: HybridRetriever,
    repo: DocsRepo,
    base: str,
    question: str,
    settings: DocPatchConfig,
) -> Target:
    """The target for `question` in the clone at commit `base` (see the module docstring)."""
    candidates = official_candidates(retriever, question)
    usable = [(e, d, p) for e, d in candidates if (p := _repo_page(repo, base, settings, d))]
    closest = [e for e, _, _ in usable]
    best = usable[0][0].scores.get("dense", 0.0) if usable else 0.0
    if usable and best >= settings.min_section_score:
        _, doc, path = usable[0]
        reason = f"closest official section (cosine {best:.2f})"
        return _target(repo, base, path, doc, best, reason, settings, closest)
    reason = f"no section fits (best cosine {best:.2f} < {settings.min_section_score})"
    for item, doc, path in usable:
        if doc.meta["path"] == settings.faq_page and doc.meta.get("level", 0) >= 2:
            score = item.scores.get("dense", 0.0)
            return _target(repo, base, path, doc, score, reason, settings, closest)
    return _faq_end(repo, base, settings, reason, closest)


def _repo_page(repo: DocsRepo, base: str, settings: DocPatchConfig, doc: Document) -> str:
    """The clone's path of the document's Markdown page ("" when it has none)."""
    page = str(doc.meta.get("path") or "")
    if not page.endswith(".md"):
        return ""
    for root in settings.roots:
        path = posixpath.normpath(posixpath.join(root, page))
        if repo.read(base, path) is not None:
            return path
    return ""


def _target(
    repo: DocsRepo,
    base: str,
    path: str,
    doc: Document,
    score: float,
    reason: str,
    settings: DocPatchConfig,
    closest: list[Evidence],
) -> Target:
    """The section of `doc` in the clone's page. A FAQ question without subsections gets a
    sibling entry; any other section a new last subsection."""
    text = repo.read(base, path) or ""
    headings = scan_markdown(text)
    index = _find_heading(headings, doc)
    if index is None:
        raise DraftError(f"{path}: section {doc.section!r} is no longer on the page; re-ingest")
    heading = headings[index]
    total = len(text.splitlines())
    body_end = headings[index + 1].first - 1 if index + 1 < len(headings) else total
    subtree_end = next(
        (h.first - 1 for h in headings[index + 1 :] if h.level <= heading.level), total
    )
    leaf = subtree_end == body_end
    mode = "sibling" if leaf and doc.meta.get("path") == settings.faq_page else "child"
    return Target(
        path,
        doc.meta.get("path", path),
        heading.title,
        doc.section,
        heading.level,
        mode,
        heading.line - 1,
        body_end,
        subtree_end,
        score,
        doc.uri,
        reason,
        closest,
    )


def _find_heading(headings: list[Heading], doc: Document) -> int | None:
    """The heading with the document's title and level nearest its indexed line."""
    level = doc.meta.get("level", 0)
    if not level:  # a page's preamble: its first heading stands for it
        return 0 if headings else None
    matches = [i for i, h in enumerate(headings) if h.title == doc.title and h.level == level]
    line = doc.start_line or 0
    return min(matches, key=lambda i: abs(headings[i].line - line), default=None)


def _faq_end(
    repo: DocsRepo, base: str, settings: DocPatchConfig, reason: str, closest: list[Evidence]
) -> Target:
    """A new entry at the end of the FAQ page, at the level of its last heading."""
    for root in settings.roots:
        path = posixpath.normpath(posixpath.join(root, settings.faq_page))
        text = repo.read(base, path)
        if text is None:
            continue
        headings = scan_markdown(text)
        last = headings[-1] if headings else None
        level = max(last.level if last else 2, 2)
        total = len(text.splitlines())
        return Target(
            path,
            settings.faq_page,
            last.title if last else "",
            "",
            level,
            "faq-end",
            total,
            total,
            total,
            0.0,
            "",
            reason,
            closest,
        )
    raise DraftError(
        f"no section fits and the FAQ page {settings.faq_page!r} is not in the docs clone "
        f"under {settings.roots}; set docpatch.faq_page"
    )
