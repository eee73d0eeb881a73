"""Open or update the GitLab merge request of a doc patch, with python-gitlab; never merge.

The branch is pushed through the API, not with `git push`, so `GITLAB_TOKEN` is the only
credential involved: the branch is found or created from the target branch, then one
commit carries the patched files (`last_commit_id` per file, so GitLab refuses the
commit if the page changed on the target since the local clone's base). A re-run for
the same source finds the branch and rewrites it as that one commit on the target
(`start_branch` + `force`), then finds the open merge request by source branch and
updates its title, description and labels instead of opening another. The title starts
with "Draft:", so GitLab will not merge it until a person marks it ready.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import gitlab
from gitlab.exceptions import (
    GitlabAuthenticationError,
    GitlabCreateError,
    GitlabError,
    GitlabGetError,
)

from sciknow.config import DocPatchConfig
from sciknow.serve.docpatch.sources import DraftError

CONFLICT = 409


class GitLabError(DraftError):
    """GitLab refused a step; the message says which and what to do."""


@dataclass
class MergeRequest:
    url: str
    iid: int
    created: bool


@dataclass
class Change:
    """What goes to GitLab: the branch, its one commit, and the merge request text."""

    branch: str
    files: dict[str, str]  # path → full new text
    last_commits: dict[str, str]  # path → the base's last commit of that file
    message: str
    title: str
    description: str
    labels: list[str]


def open_merge_request(settings: DocPatchConfig, token: str, change: Change) -> MergeRequest:
    """Push `change` as one commit on its branch and open or update its merge request."""
    client = gitlab.Gitlab(settings.gitlab_url, private_token=token, timeout=30)
    project = client.projects.get(settings.project, lazy=True)
    try:
        existed = _ensure_branch(project, change.branch, settings.target_branch)
        _commit(project, change, settings.target_branch, rewrite=existed)
        return _merge_request(project, change, settings.target_branch)
    except GitlabAuthenticationError as err:
        raise GitLabError(
            f"GitLab refused GITLAB_TOKEN ({err.response_code} {err.error_message}): check "
            "that it is valid and has the api scope"
        ) from None
    except GitlabError as err:
        stale = "changed since" in str(err.error_message)
        hint = " (the page changed on the target: update the clone and re-run)" if stale else ""
        raise GitLabError(f"GitLab: {err.response_code} {err.error_message}{hint}") from None


def _ensure_branch(project: Any, branch: str, target: str) -> bool:
    """Whether the branch already existed; created from `target` when it did not."""
    try:
        project.branches.get(branch)
        return True
    except GitlabGetError as err:
        if err.response_code != 404:
            raise
    try:
        project.branches.create({"branch": branch, "ref": target})
        return False
    except GitlabCreateError as err:  # created meanwhile (409), or GitLab's 400 wording
        if err.response_code == CONFLICT or "already exists" in str(err.error_message):
            return True
        raise


def _commit(project: Any, change: Change, target: str, rewrite: bool) -> None:
    actions = [
        {
            "action": "update",
            "file_path": path,
            "content": text,
            "last_commit_id": change.last_commits.get(path),
        }
        for path, text in change.files.items()
    ]
    data: dict[str, Any] = {
        "branch": change.branch,
        "commit_message": change.message,
        "actions": actions,
    }
    if rewrite:  # the branch becomes one commit on the target again
        data |= {"start_branch": target, "force": True}
    project.commits.create(data)


def _merge_request(project: Any, change: Change, target: str) -> MergeRequest:
    found = _open_for(project, change.branch)
    if found is None:
        try:
            created = project.mergerequests.create(
                {
                    "source_branch": change.branch,
                    "target_branch": target,
                    "title": change.title,
                    "description": change.description,
                    "labels": change.labels,
                    "remove_source_branch": True,
                }
            )
            return MergeRequest(created.web_url, created.iid, True)
        except GitlabCreateError as err:  # another run opened it meanwhile
            if err.response_code != CONFLICT:
                raise
            found = _open_for(project, change.branch)
            if found is None:
                raise
    found.title, found.description = change.title, change.description
    found.labels = change.labels
    found.save()
    return MergeRequest(found.web_url, found.iid, False)


def _open_for(project: Any, branch: str) -> Any | None:
    found = project.mergerequests.list(source_branch=branch, state="opened", get_all=False)
    return found[0] if found else None
