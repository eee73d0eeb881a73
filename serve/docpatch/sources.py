"""Where a doc patch's knowledge comes from: a question and answer, a thread, or a gap.

A thread (mail thread, issue, chat conversation) is stored as one document whose
`meta["messages"]` gives each post's author, date, link, character span and whether the
author is a maintainer (`ingest/mail.py`, `render_posts`). The question is the thread's
subject when it asks one, else the first question sentence of the first post; the
answer is the maintainers' replies (any other replier's when no maintainer answered,
which the draft then flags for expert review).
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sciknow.errors import DraftError as DraftError
from sciknow.index.store import Store
from sciknow.ingest.mail import Post
from sciknow.records import Document, Evidence
from sciknow.serve.segment import segment

THREAD_KINDS = ("mail", "issue", "chat")
_ISSUE_PREFIX_RE = re.compile(r"^[#!]\d+\s+")
MIN_QUESTION_WORDS, MAX_QUESTION_WORDS = 5, 40  # shorter: "Any idea?"; longer: a story


@dataclass
class Reference:
    """A link to the evidence, for the merge-request description and `--json`."""

    title: str
    uri: str
    author: str = ""
    maintainer: bool = False
    date: str = ""

    def to_dict(self) -> dict[str, str]:
        return {"title": self.title, "uri": self.uri}


@dataclass
class Knowledge:
    """What a patch moves into the docs, and where it was said.

    `key` identifies the source (a re-run with the same key revises the same branch);
    `maintainer` is None when a person gave the answer on the command line.
    """

    key: str
    question: str
    answer: str
    references: list[Reference]
    evidence: list[Evidence]
    maintainer: bool | None
    origin: str
    context: list[str] = field(default_factory=list)  # why this matters (gap figures)


def from_answer(question: str, answer: str, links: Sequence[str] = ()) -> Knowledge:
    """A question and answer given by the person drafting the patch; `links` point at where
    the answer was given (a thread, an issue), for the description and the commit."""
    if not question.strip() or not answer.strip():
        raise DraftError("--question and --answer must both be non-empty")
    digest = hashlib.sha1(f"{question}\n{answer}".encode()).hexdigest()[:10]
    evidence = Evidence(
        "answer",
        "answer",
        answer,
        "Answer given for this patch",
        "",
        "answer",
        "command line",
        official=False,
    )
    references = [Reference(link, link) for link in links]
    origin = "by the person drafting this patch"
    return Knowledge(
        f"question:{digest}", question.strip(), answer, references, [evidence], None, origin
    )


def thread_posts(doc: Document) -> list[Post]:
    """The thread's posts, each without its "author (date):" header line."""
    spans = doc.meta.get("messages") or []
    if not spans:
        return [Post("unknown", None, doc.uri, doc.text)]
    posts = []
    for span in spans:
        block = doc.text[span["start"] : span["end"]]
        body = block.split("\n", 1)[1] if "\n" in block else ""
        date = datetime.fromisoformat(span["date"]) if span.get("date") else None
        url = span.get("url") or doc.uri
        posts.append(Post(span["author"], date, url, body.strip(), bool(span.get("maintainer"))))
    return posts


def thread_title(doc: Document) -> str:
    """The subject, without an issue's `#12` or a merge request's `!12`."""
    return _ISSUE_PREFIX_RE.sub("", doc.title).strip()


def thread_question(doc: Document, posts: list[Post]) -> str:
    """The subject when it asks a question, else the first post's first question of a
    readable length, else the subject."""
    title = thread_title(doc)
    if title.endswith("?"):
        return title
    for unit in segment(posts[0].body) if posts else []:
        question = unit.kind == "sentence" and unit.text.endswith("?")
        if question and MIN_QUESTION_WORDS <= len(unit.text.split()) <= MAX_QUESTION_WORDS:
            return unit.text
    return title


def from_thread(store: Store, doc_id: str, question: str = "") -> Knowledge:
    """The maintainers' replies of a thread or issue in the index."""
    doc = store.document(doc_id)
    if doc is None:
        raise DraftError(f"no document {doc_id!r} in the index (sciknow search shows ids)")
    if doc.kind not in THREAD_KINDS:
        raise DraftError(f"{doc_id!r} is a {doc.kind} document, not a thread or issue")
    posts = thread_posts(doc)
    replies = [p for p in posts[1:] if p.maintainer]
    maintainer = bool(replies)
    if not replies:
        replies = [p for p in posts[1:] if p.author != posts[0].author and p.body.strip()]
    if not replies:
        raise DraftError(f"{doc.title!r} has no reply to draft from")
    evidence = Evidence(
        doc.id, doc.id, doc.text, doc.title, doc.uri, doc.kind, doc.source, official=False
    )
    references = [_reference(doc, p) for p in replies]
    return Knowledge(
        key=f"thread:{doc.id}",
        question=question or thread_question(doc, posts),
        answer="\n\n".join(p.body for p in replies),
        references=references,
        evidence=[evidence],
        maintainer=maintainer,
        origin=f"in {'an issue' if doc.kind == 'issue' else f'a {doc.kind} thread'}",
    )


def _reference(doc: Document, post: Post) -> Reference:
    date = post.date.date().isoformat() if post.date else ""
    return Reference(doc.title, post.url or doc.uri, post.author, post.maintainer, date)


def from_gap(store: Store, gap: dict[str, Any]) -> Knowledge:
    """A gap of the last `sciknow gaps` report: its best-answered thread, with the rest of
    the gap's threads as further evidence."""
    members = [m for m in gap.get("members", []) if m.get("doc_id")]
    answered = [m for m in members if m.get("answered")]
    if not answered:
        raise DraftError(
            f"gap {gap.get('id')} has no thread with a reply to draft from; answer it with "
            "--question and --answer"
        )
    chosen = sorted(answered, key=lambda m: not m.get("maintainer"))[0]
    knowledge = from_thread(store, chosen["doc_id"], chosen.get("question", ""))
    for member in members:
        if member is not chosen:
            knowledge.references.append(Reference(member["title"], member["uri"]))
    knowledge.origin += f" (gap {gap.get('id')} of the gaps report)"
    knowledge.context = list(gap.get("why", []))
    return knowledge
