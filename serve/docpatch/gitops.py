"""The local clone of the docs, read and written with git plumbing only.

Pages are read from the base commit (`git show base:path`), never from the working tree,
and a patch is committed by building a tree in a temporary index and pointing the branch
at a new commit (`hash-object`, `update-index`, `write-tree`, `commit-tree`,
`update-ref`): the checked-out branch, the working tree and the index people work in are
never touched. A branch that is checked out, or that is the base, is refused.
"""

from __future__ import annotations

import os
import subprocess
import tempfile
from pathlib import Path

from sciknow.errors import DraftError

SYMLINK_MODE = "120000"
DEFAULT_AUTHOR = ("sciknow", "sciknow@localhost")


class GitError(DraftError):
    """A git command failed; the message carries git's own words."""


class DocsRepo:
    """A git repository holding the docs pages."""

    def __init__(self, path: str | Path) -> None:
        folder = Path(path).expanduser()
        if not folder.is_dir():
            raise GitError(f"--docs-repo {folder} is not a folder")
        self.root = Path(self._git(folder, "rev-parse", "--show-toplevel").strip())

    @staticmethod
    def _git(cwd: Path, *args: str, env: dict[str, str] | None = None, stdin: str = "") -> str:
        done = subprocess.run(
            ["git", *args],
            cwd=cwd,
            input=stdin,
            capture_output=True,
            encoding="utf-8",
            env={**os.environ, **(env or {})},
            check=False,
        )
        if done.returncode:
            raise GitError(f"git {args[0]}: {done.stderr.strip() or done.stdout.strip()}")
        return done.stdout

    def git(self, *args: str, env: dict[str, str] | None = None, stdin: str = "") -> str:
        return self._git(self.root, *args, env=env, stdin=stdin)

    def commit_of(self, ref: str) -> str | None:
        try:
            return self.git("rev-parse", "--verify", "--quiet", f"{ref}^{{commit}}").strip()
        except GitError:
            return None

    def base(self, preferred: str) -> str:
        """The commit a patch is made against: `preferred` when it exists, else HEAD."""
        commit = (preferred and self.commit_of(preferred)) or self.commit_of("HEAD")
        if not commit:
            raise GitError(f"{self.root} has no commit to patch against")
        return commit

    def read(self, commit: str, path: str) -> str | None:
        """The file's text at `commit`, or None when it is not a regular file there."""
        if self.mode(commit, path) not in ("100644", "100755"):
            return None
        return self.git("show", f"{commit}:{path}")

    def mode(self, commit: str, path: str) -> str | None:
        """The tree entry's mode (`120000` for a symlink), or None when absent."""
        listing = self.git("ls-tree", commit, "--", path).strip()
        return listing.split()[0] if listing else None

    def last_change(self, commit: str, path: str) -> str:
        """The last commit up to `commit` that changed `path`."""
        return self.git("log", "-1", "--format=%H", commit, "--", path).strip()

    def apply_check(self, commit: str, patch: str) -> str:
        """git's complaint when `patch` does not apply to `commit` ("" when it does)."""
        with tempfile.TemporaryDirectory() as tmp:
            env = {"GIT_INDEX_FILE": str(Path(tmp) / "index")}
            self.git("read-tree", commit, env=env)
            try:
                self.git("apply", "--check", "--cached", "-", env=env, stdin=patch)
            except GitError as err:
                return str(err).removeprefix("git apply: ")
        return ""

    def checked_out(self) -> str:
        """The branch checked out in the main working tree ("" when detached)."""
        try:
            return self.git("symbolic-ref", "--quiet", "--short", "HEAD").strip()
        except GitError:
            return ""

    def commit_branch(
        self, branch: str, base: str, files: dict[str, str], message: str, protected: str
    ) -> str:
        """Point `branch` at one new commit on `base` holding `files`; return its id.

        A re-run rewrites the branch the same way, so it always holds exactly one commit
        on top of the base. `protected` (the target branch) and the checked-out branch
        are refused.
        """
        if branch in (protected, self.checked_out()) or not branch:
            raise GitError(f"refusing to write branch {branch!r}: it is checked out or the base")
        with tempfile.TemporaryDirectory() as tmp:
            env = {"GIT_INDEX_FILE": str(Path(tmp) / "index"), **self._identity()}
            self.git("read-tree", base, env=env)
            for path, text in files.items():
                blob = self.git("hash-object", "-w", "--stdin", stdin=text).strip()
                self.git("update-index", "--add", "--cacheinfo", f"100644,{blob},{path}", env=env)
            tree = self.git("write-tree", env=env).strip()
            commit = self.git("commit-tree", tree, "-p", base, env=env, stdin=message).strip()
        self.git("update-ref", f"refs/heads/{branch}", commit)
        return commit

    def _identity(self) -> dict[str, str]:
        """The repository's configured author, else sciknow's."""
        try:
            name = self.git("config", "user.name").strip()
            email = self.git("config", "user.email").strip()
        except GitError:
            name, email = DEFAULT_AUTHOR
        return {
            "GIT_AUTHOR_NAME": name,
            "GIT_AUTHOR_EMAIL": email,
            "GIT_COMMITTER_NAME": name,
            "GIT_COMMITTER_EMAIL": email,
        }
