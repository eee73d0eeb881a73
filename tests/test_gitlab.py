"""GitLab issues/MRs through python-gitlab against a local fake of the v4 API, and exports."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any

import gitlab
import pytest
from support.gitlab import PROJECT, FakeGitLab
from support.http import serving

from sciknow.config import Profile
from sciknow.ingest.gitlab import GitLabSource

ADDRESS_RE = re.compile(r"[\w.+-]+(?:@|%40| at )[\w-]+\.[A-Za-z]{2,}")
WEB = "https://gitlab.example.org/petsc/petsc/-"


def user(name: str, username: str) -> dict[str, Any]:
    # An admin token would also show e-mail addresses; they must never be used.
    return {"id": 1, "name": name, "username": username, "email": f"{username}@example.org"}


ALICE, BOB = user("Alice Solver", "asolver"), user("Bob Krylov", "bkrylov")


def note(nid: int, author: dict, when: str, body: str, system: bool = False) -> dict[str, Any]:
    return {"id": nid, "author": author, "created_at": when, "body": body, "system": system}


def item(iid: int, title: str, author: dict, day: int, updated: int, **extra: Any) -> dict:
    kind = "merge_requests" if "source_branch" in extra else "issues"
    return {
        "iid": iid,
        "title": title,
        "state": "opened",
        "description": "",
        "author": author,
        "labels": [],
        "web_url": f"{WEB}/{kind}/{iid}",
        "created_at": f"2024-01-{day:02d}T10:00:00.000Z",
        "updated_at": f"2024-01-{updated:02d}T10:00:00.000Z",
        "closed_at": None,
        "notes": [],
        **extra,
    }


def fixture_items() -> dict[str, list[dict[str, Any]]]:
    gamg_notes = [
        note(11, BOB, "2024-01-02T10:00:00.000Z", "Can you send -log_view output?"),
        note(12, BOB, "2024-01-02T10:01:00.000Z", "added ~bug label", system=True),
        note(13, ALICE, "2024-01-03T09:00:00.000Z", "Attached."),
        note(14, BOB, "2024-01-03T10:00:00.000Z", "Fixed in PCGAMGSetThreshold."),
    ]
    gamg = "-pc_type gamg crashes. Mail me at alice.solver@example.org"
    review = [note(71, ALICE, "2024-01-07T12:00:00.000Z", "LGTM")]
    issues = [
        item(1, "KSPSolve fails with GAMG", ALICE, 1, 3, labels=["bug", "KSP"], notes=gamg_notes),
        item(2, "Docs typo", BOB, 4, 5, state="closed", closed_at="2024-01-05T10:00:00.000Z"),
        item(3, "SNES divergence", ALICE, 6, 6, description="SNESSolve diverges."),
    ]
    issues[0]["description"] = gamg
    merged = {"state": "merged", "merged_at": "2024-01-08T10:00:00.000Z", "notes": review}
    merge_requests = [item(7, "Fix VecScatter", BOB, 7, 8, source_branch="bob/fix", **merged)]
    return {"issues": issues, "merge_requests": merge_requests}


@pytest.fixture
def fake() -> Iterator[FakeGitLab]:
    state = FakeGitLab(fixture_items())
    with serving(state.handle) as state.base:
        yield state


def assert_no_addresses(docs) -> None:
    dumped = json.dumps([d.to_dict() for d in docs])
    assert not ADDRESS_RE.search(dumped), ADDRESS_RE.search(dumped)


def test_api_pagination_documents_and_incremental_updated_after(fake):
    client = gitlab.Gitlab(url=fake.base, private_token="t0ken")
    location = f"{fake.base}/petsc/petsc"
    options = {"client": client, "maintainers": ["bkrylov"], "per_page": 2}
    src = GitLabSource("petsc-gitlab", location, Profile(), **options)
    docs = list(src.iter_documents(None))
    titles = ["#1 KSPSolve fails with GAMG", "#2 Docs typo", "#3 SNES divergence"]
    assert [d.title for d in docs] == [*titles, "!7 Fix VecScatter"]
    assert fake.tokens == {"t0ken"}
    assert any(q.get("page") == "2" and p.endswith("/issues") for p, q in fake.requests)
    assert any(q.get("page") == "2" and p.endswith("/issues/1/notes") for p, q in fake.requests)
    issue = docs[0]
    assert issue.kind == "issue" and issue.official is False
    assert issue.uri == issue.origin == f"{WEB}/issues/1"
    assert issue.id == f"petsc-gitlab:{issue.uri}"
    assert "added ~bug label" not in issue.text  # system note dropped
    alice, bob = "Alice Solver (@asolver)", "Bob Krylov (@bkrylov)"
    assert [m["author"] for m in issue.meta["messages"]] == [alice, bob, alice, bob]
    assert issue.meta["messages"][1]["url"] == f"{WEB}/issues/1#note_11"
    assert issue.meta["maintainer_replied"] is True and issue.meta["labels"] == ["bug", "KSP"]
    assert issue.meta["state"] == "opened" and issue.date == "2024-01-01T10:00:00+00:00"
    assert {"-pc_type", "-log_view", "PCGAMGSetThreshold"} <= set(issue.symbols)
    assert docs[3].meta["type"] == "merge_request" and docs[3].meta["merged_at"]
    assert_no_addresses(docs)

    state = src.state()
    assert state.complete is False
    marks = {"issue": "2024-01-06T10:00:00.000Z", "merge_request": "2024-01-08T10:00:00.000Z"}
    assert state.extra["updated_after"] == marks
    fake.items["issues"][1]["notes"].append(note(21, ALICE, "2024-02-01T10:00:00.000Z", "Thanks"))
    fake.items["issues"][1]["updated_at"] = "2024-02-01T10:00:00.000Z"
    fake.requests.clear()
    again = GitLabSource("petsc-gitlab", location, Profile(), **options)
    changed = list(again.iter_documents(state))
    assert [d.title for d in changed] == ["#2 Docs typo"]  # the boundary MR is unchanged
    assert "Thanks" in changed[0].text
    listed = {p.rsplit("/", 1)[1]: q for p, q in fake.requests if not p.endswith("notes")}
    assert listed["issues"]["updated_after"] == marks["issue"]
    assert listed["merge_requests"]["updated_after"] == marks["merge_request"]
    assert again.state().extra["updated_after"]["issue"] == "2024-02-01T10:00:00.000Z"
    assert state.extra["updated_after"] == marks  # the input state is not mutated


def test_client_built_from_location_and_token_env(fake, monkeypatch):
    monkeypatch.setenv("GITLAB_TOKEN", "from-env")
    src = GitLabSource("g", f"{fake.base}/petsc/petsc", Profile(), merge_requests=False)
    assert len(list(src.iter_documents(None))) == 3
    assert fake.tokens == {"from-env"}
    assert not any("merge_requests" in p for p, _ in fake.requests)


def test_json_export(tmp_path):
    items = fixture_items()
    export = [*items["issues"], *items["merge_requests"], {"title": "no url"}]
    path = tmp_path / "issues.json"
    path.write_text(json.dumps(export))
    src = GitLabSource("g", str(path), Profile())
    docs = list(src.iter_documents(None))
    assert len(docs) == 4 and len(src.skipped) == 1
    assert "added ~bug label" not in docs[0].text
    assert docs[3].meta["type"] == "merge_request" and docs[3].title.startswith("!7")
    assert_no_addresses(docs)
    assert list(GitLabSource("g", str(path), Profile()).iter_documents(src.state())) == []


def test_api_error_stops_the_listing_at_the_last_item_read(fake):
    fake.failing.add(f"{PROJECT}/issues/3/notes")
    client = gitlab.Gitlab(url=fake.base, private_token="t0ken")
    src = GitLabSource("g", f"{fake.base}/petsc/petsc", Profile(), client=client)
    docs = list(src.iter_documents(None))
    assert [d.title for d in docs] == [
        "#1 KSPSolve fails with GAMG",
        "#2 Docs typo",
        "!7 Fix VecScatter",
    ]
    assert "500" in src.skipped[0].reason
    assert src.state().extra["updated_after"]["issue"] == "2024-01-05T10:00:00.000Z"
    fake.failing.clear()
    again = GitLabSource("g", f"{fake.base}/petsc/petsc", Profile(), client=client)
    assert [d.title for d in again.iter_documents(src.state())] == ["#3 SNES divergence"]
