"""`--open-mr` through python-gitlab against a scripted GitLab v4 server on 127.0.0.1.

The server speaks the endpoints the doc-patch flow uses (branch get/create, commits,
merge request list/create/update), checks the token, records every call, and can be told
to answer 409 (a branch or merge request created meanwhile by another run).
"""

from __future__ import annotations

import copy
from collections.abc import Iterator

import pytest
from support.docpatch_data import make_repo
from support.gitlab import FakeGitLab
from support.http import serving

from sciknow.serve.docpatch import sources
from sciknow.serve.docpatch.draft import commit_draft, make_draft, merge_request_change
from sciknow.serve.docpatch.gitlab_mr import GitLabError, open_merge_request
from sciknow.serve.docpatch.gitops import DocsRepo
from sciknow.serve.factory import build_retriever

TOKEN = "test-token"


@pytest.fixture
def gitlab_server() -> Iterator[FakeGitLab]:
    state = FakeGitLab(token=TOKEN)
    with serving(state.handle) as state.base:
        yield state


@pytest.fixture(scope="module")
def retriever(docpatch_config):
    return build_retriever(docpatch_config)


@pytest.fixture
def setup(docpatch_config, retriever, tmp_path, gitlab_server):
    config = copy.deepcopy(docpatch_config)
    config.docpatch.gitlab_url = gitlab_server.base
    repo = DocsRepo(make_repo(tmp_path / "docs"))
    doc_id = next(
        d.id
        for d in retriever.store.documents(("mail",))
        if d.title == "Different tolerances on each multigrid level"
    )

    def draft():
        knowledge = sources.from_thread(retriever.store, doc_id)
        made = make_draft(config, repo, knowledge, retriever)
        commit_draft(repo, made, "main")
        return made, merge_request_change(repo, made, config.docpatch.labels, "needs-review")

    return config, repo, draft, doc_id


def test_first_run_creates_branch_commit_and_merge_request(setup, gitlab_server):
    config, repo, draft, _ = setup
    made, change = draft()
    request = open_merge_request(config.docpatch, TOKEN, change)
    assert request.created and request.url.endswith("/merge_requests/1")
    branch = made.branch.replace("/", "%2F")
    assert gitlab_server.calls == [
        ("GET", f"/repository/branches/{branch}"),
        ("POST", "/repository/branches"),
        ("POST", "/repository/commits"),
        ("GET", "/merge_requests"),
        ("POST", "/merge_requests"),
    ]
    (commit,) = gitlab_server.commits
    assert commit["branch"] == made.branch and "force" not in commit
    (action,) = commit["actions"]
    assert action["action"] == "update" and action["file_path"] == "manual/ksp.md"
    assert action["content"] == made.edit.after
    assert action["last_commit_id"] == repo.last_change(made.base, "manual/ksp.md")
    assert "Barry Smith (maintainer)" in commit["commit_message"]
    (mr,) = gitlab_server.merge_requests
    assert mr["title"].startswith("Draft: docs: How do I set a different relative tolerance")
    assert mr["source_branch"] == made.branch and mr["target_branch"] == "main"
    assert mr["labels"] == ["docs", "sciknow-draft"]
    assert "assembled from the evidence" in mr["description"]


def test_second_run_updates_the_same_branch_and_merge_request(setup, gitlab_server):
    config, _, draft, _ = setup
    first = open_merge_request(config.docpatch, TOKEN, draft()[1])
    gitlab_server.calls.clear()
    change = draft()[1]
    change.description += "\nRevised."
    second = open_merge_request(config.docpatch, TOKEN, change)
    assert not second.created and second.url == first.url
    assert [c[0] for c in gitlab_server.calls] == ["GET", "POST", "GET", "PUT"]
    assert gitlab_server.calls[-1] == ("PUT", "/merge_requests/1")
    rewrite = gitlab_server.commits[-1]
    assert rewrite["start_branch"] == "main" and rewrite["force"] is True
    assert len(gitlab_server.merge_requests) == 1
    assert gitlab_server.merge_requests[0]["description"].endswith("Revised.")


def test_wrong_token_is_a_clear_401(setup, gitlab_server):
    config, _, draft, _ = setup
    with pytest.raises(GitLabError, match=r"refused GITLAB_TOKEN \(401"):
        open_merge_request(config.docpatch, "wrong", draft()[1])
    assert gitlab_server.merge_requests == [] and gitlab_server.commits == []


def test_409_branch_and_merge_request_created_meanwhile(setup, gitlab_server):
    config, _, draft, _ = setup
    open_merge_request(config.docpatch, TOKEN, draft()[1])
    made, change = draft()
    del gitlab_server.branches[made.branch]
    gitlab_server.conflict_branch = True  # another run creates the branch between our calls
    gitlab_server.hide_open_once = True  # and its merge request is not listed yet
    gitlab_server.calls.clear()
    request = open_merge_request(config.docpatch, TOKEN, change)
    assert not request.created and len(gitlab_server.merge_requests) == 1
    methods = [c[0] for c in gitlab_server.calls]
    assert methods == ["GET", "POST", "POST", "GET", "POST", "GET", "PUT"]
    assert gitlab_server.commits[-1]["force"] is True  # the branch existed: rewritten


def test_cli_open_mr_prints_the_url(setup, gitlab_server, tmp_path, capsys, monkeypatch):
    from sciknow.ui.cli import main

    config, repo, _, doc_id = setup
    config_file = tmp_path / "sciknow.toml"
    config_file.write_text(
        f'[answer]\nmode = "extractive"\n[docpatch]\ngitlab_url = "{gitlab_server.base}"\n'
    )
    monkeypatch.setenv("GITLAB_TOKEN", TOKEN)
    argv = [
        "--config",
        str(config_file),
        "--data-dir",
        str(config.data_path),
        "patch",
        "--docs-repo",
        str(repo.root),
        "--thread",
        doc_id,
        "--out",
        str(tmp_path / "o"),
        "--open-mr",
    ]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "merge request opened: http://gitlab.test/petsc/petsc/-/merge_requests/1" in out
    assert main(argv) == 0
    assert "merge request updated" in capsys.readouterr().out
    assert len(gitlab_server.merge_requests) == 1
    monkeypatch.setenv("GITLAB_TOKEN", "wrong")
    assert main(argv) == 2
    assert "401" in capsys.readouterr().err
