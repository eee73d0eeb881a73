"""A fake of the GitLab v4 API for one project, as much as sciknow uses: issues and merge
requests with their notes, paginated as GitLab does (ingest), and branches, commits and
merge requests to create or update (doc patches)."""

from __future__ import annotations

from typing import Any
from urllib.parse import unquote

from support.http import Reply, Request

PROJECT = "/api/v4/projects/petsc%2Fpetsc"


class FakeGitLab:
    """The project's state and the calls made to it, in order.

    `items` holds the issues and merge requests (each with its `notes`); with `token` set,
    any other token is refused (401). `failing` paths answer 500; `conflict_branch` makes
    branch creation answer 409 (another run made it meanwhile); `hide_open_once` makes the
    first merge-request listing miss an open one. `calls` records (method, route in the
    project), `requests` (path, query), `tokens` the tokens seen."""

    def __init__(self, items: dict[str, list[dict[str, Any]]] | None = None, token: str = ""):
        self.items = items or {"issues": [], "merge_requests": []}
        self.token = token
        self.base = ""  # the server's URL, once it serves
        self.branches: dict[str, int] = {"main": 0}
        self.commits: list[dict[str, Any]] = []
        self.calls: list[tuple[str, str]] = []
        self.requests: list[tuple[str, dict[str, str]]] = []
        self.tokens: set[str] = set()
        self.failing: set[str] = set()
        self.conflict_branch = False
        self.hide_open_once = False

    @property
    def merge_requests(self) -> list[dict[str, Any]]:
        return self.items["merge_requests"]

    def handle(self, request: Request) -> Reply:
        token = request.headers.get("private-token", "")
        route = request.path.removeprefix(PROJECT)
        self.calls.append((request.method, route))
        self.requests.append((request.path, request.query))
        self.tokens.add(token)
        if self.token and token != self.token:
            return Reply(401, {"message": "401 Unauthorized"})
        if not request.path.startswith(PROJECT):
            return Reply(404, {"message": "404 Project Not Found"})
        if request.path in self.failing:
            return Reply(500, [])
        return self._route(request, route)

    def _route(self, request: Request, route: str) -> Reply:
        if route.startswith("/repository/branches"):
            name = unquote(route.removeprefix("/repository/branches")).lstrip("/")
            return self._branches(request, name)
        if route == "/repository/commits" and request.method == "POST":
            return self._commit(request.form())
        kind, _, rest = route.strip("/").partition("/")
        if kind not in self.items:
            return Reply(404, {"message": "404 Not Found"})
        if kind == "merge_requests" and request.method == "POST":
            return self._open(request.form())
        if kind == "merge_requests" and request.method == "PUT":
            return self._update(int(rest), request.form())
        if rest:  # :iid/notes
            iid = rest.split("/")[0]
            notes = next(i for i in self.items[kind] if str(i["iid"]) == iid)["notes"]
            return self._page(request, notes)
        return self._page(request, self._listed(kind, request.query))

    def _listed(self, kind: str, query: dict[str, str]) -> list[dict[str, Any]]:
        rows = sorted(self.items[kind], key=lambda i: i.get("updated_at", ""))
        after, state = query.get("updated_after", ""), query.get("state", "all")
        if "source_branch" in query:
            rows = [r for r in rows if r["source_branch"] == query["source_branch"]]
            if self.hide_open_once:
                self.hide_open_once, rows = False, []
        return [
            r | {"notes": None}
            for r in rows
            if r.get("updated_at", "") >= after and state in ("all", r["state"])
        ]

    def _page(self, request: Request, rows: list[dict[str, Any]]) -> Reply:
        """`rows` a page at a time, with GitLab's pagination headers (2 per page unless
        the client asks for more, so a few items make several pages)."""
        query = request.query
        page, per_page = int(query.get("page", 1)), int(query.get("per_page", 2))
        pages = max(1, -(-len(rows) // per_page))
        headers = {
            "X-Page": str(page),
            "X-Per-Page": str(per_page),
            "X-Total": str(len(rows)),
            "X-Total-Pages": str(pages),
            "X-Next-Page": str(page + 1) if page < pages else "",
        }
        if page < pages:
            rest = "&".join(f"{k}={v}" for k, v in {**query, "page": page + 1}.items())
            headers["Link"] = f'<{self.base}{request.path}?{rest}>; rel="next"'
        return Reply(200, rows[(page - 1) * per_page : page * per_page], headers)

    def _branches(self, request: Request, name: str) -> Reply:
        if request.method == "GET":
            if name in self.branches:
                return Reply(200, {"name": name, "commit": {"id": f"c{self.branches[name]}"}})
            return Reply(404, {"message": "404 Branch Not Found"})
        body = request.form()
        if self.conflict_branch or body["branch"] in self.branches:
            self.branches[body["branch"]] = 0
            return Reply(409, {"message": "Branch already exists"})
        self.branches[body["branch"]] = self.branches[body["ref"]]
        return Reply(201, {"name": body["branch"], "commit": {"id": "c0"}})

    def _commit(self, body: dict[str, Any]) -> Reply:
        if body["branch"] not in self.branches and "start_branch" not in body:
            return Reply(
                400, {"message": "You can only create or edit files when you are on a branch"}
            )
        self.commits.append(body)
        self.branches[body["branch"]] = len(self.commits)
        return Reply(201, {"id": f"c{len(self.commits)}", "message": body["commit_message"]})

    def _open(self, body: dict[str, Any]) -> Reply:
        if any(m["source_branch"] == body["source_branch"] for m in self.merge_requests):
            return Reply(409, {"message": ["Another open merge request already exists"]})
        iid = len(self.merge_requests) + 1
        mr = {
            **body,
            "iid": iid,
            "state": "opened",
            "id": 100 + iid,
            "web_url": f"http://gitlab.test/petsc/petsc/-/merge_requests/{iid}",
            "labels": _labels(body.get("labels")),
        }
        self.merge_requests.append(mr)
        return Reply(201, mr)

    def _update(self, iid: int, body: dict[str, Any]) -> Reply:
        mr = next(m for m in self.merge_requests if m["iid"] == iid)
        mr.update({k: _labels(v) if k == "labels" else v for k, v in body.items()})
        return Reply(200, mr)


def _labels(value: Any) -> list[str]:
    return value.split(",") if isinstance(value, str) else list(value or [])
