"""GitLab issues and merge requests → one `Document(kind="issue")` each, with its discussion.

Two inputs: the GitLab API through python-gitlab (`location` is the project's web
URL, e.g. `https://gitlab.com/petsc/petsc`; a token is read from `$GITLAB_TOKEN`
for private projects), or a JSON export file in the API's issue/note format (a
list of issue or merge-request objects, each with a `"notes"` list).

API runs are incremental: items are listed by `updated_at` ascending with
`updated_after` = the newest `updated_at` seen on the last run (kept per item
type in `State.extra["updated_after"]`), so an interrupted run resumes where it
stopped and a discussion that grew is re-listed and re-yielded under the same id.
The boundary item is listed again (GitLab's filter is inclusive); `State.origins`
(web URL → content hash) keeps it from being re-yielded unchanged.

The text is the description then every human note in order, each introduced by
its author (name and username, never an e-mail address) and date; system notes
("changed the description", "added label") are dropped.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Iterator
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import gitlab

from sciknow.config import Profile
from sciknow.ingest.base import SkipLog, State, file_fingerprint
from sciknow.ingest.mail import (
    Post,
    is_maintainer,
    iso,
    maintainer_set,
    render_posts,
    scrub_addresses,
)
from sciknow.ingest.symbols import find_symbols
from sciknow.records import Document

ITEM_TYPES = ("issue", "merge_request")


def _date(value: Any) -> datetime | None:
    try:
        return datetime.fromisoformat(str(value)) if value else None
    except ValueError:
        return None


def _person(user: Any) -> tuple[str, list[str]]:
    """Display name and the names a maintainer list may use (no e-mail fields are read)."""
    if not isinstance(user, dict):
        return "unknown", []
    name, username = str(user.get("name") or ""), str(user.get("username") or "")
    shown = f"{name} (@{username})" if name and username else name or username or "unknown"
    return scrub_addresses(shown), [n for n in (name, username) if n]


def _labels(labels: Any) -> list[str]:
    return [str(x["name"] if isinstance(x, dict) else x) for x in labels or []]


def item_type(item: dict[str, Any]) -> str:
    mr = "/merge_requests/" in str(item.get("web_url", "")) or "source_branch" in item
    return "merge_request" if mr else "issue"


def _post(author: Any, created: Any, url: str, body: Any, maintainers: frozenset[str]) -> Post:
    shown, names = _person(author)
    maintainer = any(is_maintainer(n, maintainers) for n in names)
    return Post(shown, _date(created), url, scrub_addresses(str(body or "")).strip(), maintainer)


def issue_document(
    source: str,
    profile: Profile,
    item: dict[str, Any],
    notes: Iterable[dict[str, Any]],
    maintainers: frozenset[str] = frozenset(),
) -> Document:
    """One issue or merge request with its human discussion, in order."""
    kind, url = item_type(item), str(item["web_url"])
    human = sorted(
        (n for n in notes if not n.get("system")),
        key=lambda n: (str(n.get("created_at") or ""), n.get("id") or 0),
    )
    entries = [(item, url, item.get("description"))]
    entries += [(n, f"{url}#note_{n.get('id')}", n.get("body")) for n in human]
    posts = [_post(e.get("author"), e.get("created_at"), u, b, maintainers) for e, u, b in entries]
    text, spans = render_posts(posts)
    title = f"{'!' if kind == 'merge_request' else '#'}{item['iid']} "
    title += scrub_addresses(" ".join(str(item.get("title") or "").split()))
    meta = {
        "type": kind,
        "iid": item["iid"],
        "state": item.get("state"),
        "labels": _labels(item.get("labels")),
        "created_at": iso(_date(item.get("created_at"))),
        "updated_at": iso(_date(item.get("updated_at"))),
        "closed_at": iso(_date(item.get("closed_at"))),
        "messages": spans,
        "maintainer_replied": any(p.maintainer for p in posts[1:]),
        "replies": len(posts) - 1,
    }
    if kind == "merge_request":
        meta["merged_at"] = iso(_date(item.get("merged_at")))
    return Document(
        id=f"{source}:{url}",
        source=source,
        kind="issue",
        uri=url,
        title=title,
        text=text,
        origin=url,
        official=False,
        date=iso(_date(item.get("created_at"))),
        symbols=find_symbols(f"{title}\n{text}", profile.symbol_prefixes),
        meta=meta,
    )


class GitLabSource:
    """Issues and merge requests of one GitLab project, from the API or a JSON export.

    `location` is the project URL (server + project path), or a `.json` export.
    For a GitLab served under a sub-path, pass the server URL as `location` and
    the project path as `project`. Tests and callers with their own client pass
    `client` (a `gitlab.Gitlab`).
    """

    def __init__(
        self,
        name: str,
        location: str,
        profile: Profile,
        *,
        project: str = "",
        token_env: str = "GITLAB_TOKEN",
        client: gitlab.Gitlab | None = None,
        merge_requests: bool = True,
        maintainers: Iterable[str] = (),
        per_page: int = 100,
    ) -> None:
        self.name = name
        self.location = location
        self.profile = profile
        self.export = None if "://" in location else Path(location).expanduser()
        parts = urlsplit(location)
        self.server = location.rstrip("/") if project else f"{parts.scheme}://{parts.netloc}"
        self.project = project or parts.path.strip("/")
        self.token_env = token_env
        self.client = client
        self.types = ITEM_TYPES if merge_requests else ITEM_TYPES[:1]
        self.maintainers = maintainer_set(maintainers)
        self.per_page = per_page
        self._skips = SkipLog()
        self.skipped = self._skips.skipped
        self._state = State(complete=False)

    def iter_documents(self, since: State | None) -> Iterator[Document]:
        extra = dict(since.extra) if since else {}
        self._state = State(dict(since.origins) if since else {}, complete=False, extra=extra)
        items = self._from_export(self.export, extra) if self.export else self._from_api(extra)
        for item, notes in items:
            doc = issue_document(self.name, self.profile, item, notes, self.maintainers)
            if self._state.origins.get(doc.origin) != doc.content_hash:
                self._state.origins[doc.origin] = doc.content_hash
                yield doc

    def _from_api(self, extra: dict[str, Any]) -> Iterator[tuple[dict[str, Any], list[dict]]]:
        client = self.client or gitlab.Gitlab(
            self.server,
            private_token=os.environ.get(self.token_env) or None,
            retry_transient_errors=True,
            timeout=60,
        )
        project = client.projects.get(self.project, lazy=True)
        marks = extra["updated_after"] = dict(extra.get("updated_after", {}))
        for kind in self.types:
            manager = project.issues if kind == "issue" else project.mergerequests
            query = {"order_by": "updated_at", "sort": "asc", "per_page": self.per_page}
            if marks.get(kind):
                query["updated_after"] = marks[kind]
            try:
                for obj in manager.list(iterator=True, **query):
                    notes = obj.notes.list(iterator=True, sort="asc", order_by="created_at")
                    yield obj.asdict(), [n.asdict() for n in notes]
                    marks[kind] = obj.updated_at
            except (gitlab.exceptions.GitlabError, OSError) as err:
                # Stop this listing; the mark stays at the last item fully read, so the
                # next run resumes there.
                self._skips.skip(f"{self.server}/{self.project} {kind}s", f"GitLab API: {err}")

    def _from_export(
        self, path: Path, extra: dict[str, Any]
    ) -> Iterator[tuple[dict[str, Any], list[dict]]]:
        """Every item of an export file, unless the file is unchanged since the last run."""
        try:
            fingerprint = file_fingerprint(path)
            if extra.get("file") == fingerprint:
                return
            items = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
            self._skips.skip(str(path), f"unreadable export: {err}")
            return
        if not isinstance(items, list):
            self._skips.skip(str(path), "expected a JSON list of issues")
            return
        for i, item in enumerate(items):
            if isinstance(item, dict) and item.get("web_url") and item.get("iid") is not None:
                yield item, [n for n in item.get("notes") or [] if isinstance(n, dict)]
            else:
                self._skips.skip(f"{path}[{i}]", "not an issue object (web_url, iid)")
        extra["file"] = fingerprint

    def state(self) -> State:
        return self._state
