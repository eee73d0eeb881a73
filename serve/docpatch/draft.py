"""A validated doc patch: locate, write, splice, diff, check, and describe.

`make_draft` never writes anything: it reads the clone at the base commit, builds the
unified diff of one page and runs every check of `validate.py`. `write_outputs` writes
`<slug>.patch` and `<slug>.md` (the merge-request description); `commit_draft` and
`merge_request_change` hand the same page text to `gitops.py` and `gitlab_mr.py`.
The slug, and so the branch `sciknow/<slug>`, comes from the source alone (the thread's
id, or the question and answer), so a re-run revises the same branch and merge request.
"""

from __future__ import annotations

import difflib
import hashlib
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sciknow.config import Config
from sciknow.records import Flag
from sciknow.rerank.hybrid import HybridRetriever
from sciknow.serve.backends.base import Backend
from sciknow.serve.docpatch.gitlab_mr import Change
from sciknow.serve.docpatch.gitops import DocsRepo
from sciknow.serve.docpatch.locate import Target, locate
from sciknow.serve.docpatch.sources import Knowledge
from sciknow.serve.docpatch.validate import Edit, Report, validate
from sciknow.serve.docpatch.write import Written, assemble, generate
from sciknow.serve.extractive import Extractor

NOT_MAINTAINER = "no maintainer replied: the answer is another participant's"
MAX_EVIDENCE = 8  # evidence links in a description; the rest are counted


@dataclass
class Draft:
    slug: str
    branch: str
    base: str
    knowledge: Knowledge
    target: Target
    written: Written
    edit: Edit
    patch: str
    report: Report
    flags: list[Flag] = field(default_factory=list)
    needs_review: bool = False

    @property
    def title(self) -> str:
        return f"Draft: docs: {self.written.heading.replace('`', '')}"

    def summary(self, patch_path: Path, description_path: Path) -> dict[str, Any]:
        """What `sciknow patch --json` prints."""
        return {
            "patch": str(patch_path),
            "description": str(description_path),
            "files": [self.edit.path],
            "needs_review": self.needs_review,
            "evidence": [r.to_dict() for r in self.knowledge.references],
            "model": self.written.model,
            "branch": self.branch,
        }


def slug_for(knowledge: Knowledge) -> str:
    """Words of the question and a hash of the source's key: stable across re-runs."""
    words = re.findall(r"[a-z0-9]+", knowledge.question.lower().replace("`", ""))
    stem = "-".join(words)[:48].rstrip("-") or "entry"
    return f"{stem}-{hashlib.sha1(knowledge.key.encode()).hexdigest()[:6]}"


def make_draft(
    config: Config,
    repo: DocsRepo,
    knowledge: Knowledge,
    retriever: HybridRetriever,
    backend: Backend | None = None,
    base_ref: str = "",
) -> Draft:
    """Locate, write and validate a patch; `backend` None assembles the text."""
    settings, prefixes = config.docpatch, config.profile.symbol_prefixes
    base = repo.base(base_ref or settings.target_branch)
    target = locate(retriever, repo, base, knowledge.question, settings)
    before = repo.read(base, target.path) or ""
    if backend is None:
        extractor = Extractor(retriever.embedder, retriever.store, prefixes, settings.max_chars)
        written = assemble(knowledge, target, prefixes, extractor, settings.max_chars)
    else:
        written = generate(
            knowledge,
            target,
            before,
            backend,
            prefixes,
            config.profile.display_name,
            settings.max_tokens,
        )
    edit = splice(target.path, before, written)
    patch = unified_diff(target.path, before, edit.after)
    known = "\n".join(
        [
            knowledge.answer,
            *(e.text for e in knowledge.evidence),
            *(r.uri for r in knowledge.references),
        ]
    )
    report = validate(edit, patch, repo, base, retriever.store, settings, config.profile, known)
    flags = written.flags + report.flags
    if knowledge.maintainer is False:
        flags.append(Flag(type="not_maintainer", reason=NOT_MAINTAINER))
    slug = slug_for(knowledge)
    return Draft(
        slug,
        settings.branch_prefix + slug,
        base,
        knowledge,
        target,
        written,
        edit,
        patch,
        report,
        flags,
        len(flags) > settings.review_threshold,
    )


def splice(path: str, before: str, written: Written) -> Edit:
    """The page with lines [start, end) replaced by the new text, blank-line separated."""
    lines = before.splitlines(keepends=True)
    start, end = written.start, written.end
    new = written.text.splitlines(keepends=True)
    if start == len(lines) and lines and not lines[-1].endswith("\n"):
        start, new = start - 1, [lines[-1] + "\n", *new]  # the last line gains its newline
    elif start > 0 and lines[start - 1].strip():
        new = ["\n", *new]
    if end < len(lines) and lines[end].strip():
        new.append("\n")
    after = "".join(lines[:start] + new + lines[end:])
    return Edit(path, before, after, start, max(end, start), len(new))


def unified_diff(path: str, before: str, after: str) -> str:
    """A git-style unified diff of one page (with git's marker for a missing final newline)."""
    body = difflib.unified_diff(
        before.splitlines(keepends=True), after.splitlines(keepends=True), f"a/{path}", f"b/{path}"
    )
    out = [f"diff --git a/{path} b/{path}\n"]
    for line in body:
        out.append(line if line.endswith("\n") else line + "\n\\ No newline at end of file\n")
    return "".join(out)


def commit_message(draft: Draft) -> str:
    """One line, what changed, and credit to every source."""
    knowledge = draft.knowledge
    lines = [
        draft.title.removeprefix("Draft: "),
        "",
        f'Adds "{draft.written.heading.replace("`", "")}" to {draft.edit.path} '
        f"({_where(draft.target)}), answered {knowledge.origin}.",
        "",
        "Sources:",
    ]
    lines += [f"- {_credit(r)}" for r in knowledge.references] or ["- an answer given for it"]
    lines += ["", f"Written by: {draft.written.model}.", f"Sciknow-Source: {knowledge.key}", ""]
    return "\n".join(lines)


def _credit(reference: Any) -> str:
    who = f"{reference.author}{' (maintainer)' if reference.maintainer else ''}, "
    who = who if reference.author else ""
    when = f"{reference.date}, " if reference.date else ""
    title = "" if reference.title == reference.uri else f"{reference.title}: "
    return f"{title}{who}{when}{reference.uri}"


def _where(target: Target) -> str:
    if target.mode == "faq-end":
        return "a new FAQ entry at the end of the page"
    if target.mode == "sibling":
        return f'a new entry after "{target.heading}"'
    return f'a new subsection of "{target.section or target.heading}"'


def describe(draft: Draft, patch_name: str) -> str:
    """The merge-request description: what changed and why, evidence, model, checks, flags."""
    knowledge, target = draft.knowledge, draft.target
    review = "**Needs expert review** (flags below)." if draft.needs_review else "No flags."
    out = [
        f"## {draft.written.heading}",
        "",
        f"**What changed:** {_where(target)} in `{draft.edit.path}`"
        f"{f' ({target.uri})' if target.uri else ''}. {review}",
        "",
        f'**Why:** the question "{knowledge.question}" was answered {knowledge.origin}'
        f"{_by(knowledge)}; placed here because of the {target.reason}.",
        *(f"- {line}" for line in knowledge.context),
        "",
        "**Evidence:**",
        *_evidence_lines(knowledge),
        "",
        "**Closest official passages:**",
        *(f"- [{e.title}]({e.uri}) ({_cosine(e)})" for e in _distinct(target.closest)[:3]),
        "",
        f"**Written by:** {draft.written.model}.",
        "",
        "**Checks passed:**",
        *(f"- {check}" for check in draft.report.checks),
        "",
        "**Flags:**",
        *([f"- {_flag(f)}" for f in draft.flags] or ["- none"]),
        "",
        f"**Library names used:** {', '.join(f'`{n}`' for n in draft.report.names) or 'none'}",
        "",
        f"Patch: `{patch_name}` against `{draft.base[:12]}`; branch `{draft.branch}`. "
        "Drafted by sciknow; it never merges.",
        f"<!-- sciknow-source: {knowledge.key} -->",
        "",
    ]
    return "\n".join(out)


def _evidence_lines(knowledge: Knowledge) -> list[str]:
    lines = [f"- {_credit(r)}" for r in knowledge.references[:MAX_EVIDENCE]]
    more = len(knowledge.references) - MAX_EVIDENCE
    return (lines or ["- the answer given for this patch"]) + (
        [f"- and {more} more threads"] if more > 0 else []
    )


def _distinct(evidence: Sequence[Any]) -> list[Any]:
    """One passage per document (several chunks of one section read as one)."""
    return list({e.doc_id: e for e in reversed(evidence)}.values())[::-1]


def _by(knowledge: Knowledge) -> str:
    if knowledge.maintainer is None:
        return ""
    return " by a maintainer" if knowledge.maintainer else " (no maintainer replied)"


def _cosine(evidence: Any) -> str:
    return f"cosine {evidence.scores.get('dense', 0.0):.2f}"


def _flag(flag: Flag) -> str:
    text = f" {flag['text']!r}" if flag.get("text") else ""
    return f"{flag.get('type', 'flag')}{text}: {flag.get('reason', '')}"


def write_outputs(draft: Draft, out_dir: Path) -> tuple[Path, Path]:
    """`<slug>.patch` and `<slug>.md` in `out_dir` (overwritten on a re-run)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    patch_path, description_path = out_dir / f"{draft.slug}.patch", out_dir / f"{draft.slug}.md"
    patch_path.write_text(draft.patch, encoding="utf-8")
    description_path.write_text(describe(draft, patch_path.name), encoding="utf-8")
    return patch_path, description_path


def commit_draft(repo: DocsRepo, draft: Draft, protected: str) -> str:
    """The local branch `sciknow/<slug>`: one commit on the base holding the patched page."""
    return repo.commit_branch(
        draft.branch,
        draft.base,
        {draft.edit.path: draft.edit.after},
        commit_message(draft),
        protected,
    )


def merge_request_change(
    repo: DocsRepo, draft: Draft, labels: Sequence[str], review: str
) -> Change:
    """What `gitlab_mr.open_merge_request` pushes for this draft."""
    path = draft.edit.path
    return Change(
        branch=draft.branch,
        files={path: draft.edit.after},
        last_commits={path: repo.last_change(draft.base, path)},
        message=commit_message(draft),
        title=draft.title,
        description=describe(draft, f"{draft.slug}.patch"),
        labels=[*labels, review] if draft.needs_review else list(labels),
    )
