"""The library's source tree as a Source: man pages, functions, examples, changelogs.

`GitSource` reads a local checkout (or a shallow clone it keeps of a git URL)
and turns each file into documents: C-family files give their man-page
comment blocks (`manpage`) and functions (`code`), tutorials and tests give
one `example` each, Fortran and Python files give their functions, and
`doc/changes/*` gives `changelog` documents. The rest of `doc/` is left out on
purpose: the documentation tree is ingested by the docs source, which reads it
as MyST/reST with headings and cross-references.

Change detection uses git's own bookkeeping so a 15k-file checkout is
fingerprinted in seconds: a file's fingerprint is its git blob id, taken from
the index for tracked files that are unmodified in the work tree and hashed
here for modified and untracked ones. Editing, adding or deleting a file is
therefore noticed without a commit. A plain directory (e.g. an unpacked
release tarball) works too; then every file is hashed. Links of files that did
not change keep the commit of the run that ingested them, which stays valid.

Every file considered is accounted for: the ones that give no document
(generated test output, binaries, bad UTF-8, empty or huge files, types with
no parser) are logged as `Skip`s with a reason. They are fingerprinted like
the rest, so they are reported again only when they change.

Links come from the profile's templates (`blob_url`, `manpage_url`, `docs_url`); an
empty template gives no link, which is how an unofficial tree is read (see
`ingest/registry.py`).
"""

from __future__ import annotations

import hashlib
import os
import re
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path, PurePosixPath
from urllib.parse import quote

from sciknow.config import Profile
from sciknow.errors import SourceError
from sciknow.ingest.base import Skip, SkipLog, State, file_fingerprint, read_text_file
from sciknow.ingest.code import (
    Span,
    changelog_title,
    is_example,
    leftover,
    parse_example,
    split_c,
    split_fortran,
    split_python,
)
from sciknow.ingest.manpage import ManPage, parse_manpages, render
from sciknow.ingest.symbols import find_symbols
from sciknow.records import Document

URL_PREFIXES = ("http://", "https://", "git@", "file://", "ssh://", "git://")
LANGUAGES = {
    **dict.fromkeys((".c", ".h"), "c"),
    **dict.fromkeys((".cxx", ".cpp", ".cc", ".hpp", ".hh"), "cpp"),
    **dict.fromkeys((".cu", ".cuh"), "cuda"),
    **dict.fromkeys((".F90", ".F", ".f90", ".f"), "fortran"),
    **dict.fromkeys((".py", ".pyx", ".pxd", ".pxi"), "python"),
}
HEADER_SUFFIXES = (".h", ".hpp", ".hh", ".cuh")
FIXED_FORM_SUFFIXES = (".F", ".f")
CHANGELOG_RE = re.compile(r"^doc/changes/[^/]+\.(?:md|rst)$")
# `MANSEC = KSP` / `SUBMANSEC = PC` in a folder's makefile or a header's comment: the
# manual section its man pages are published under (SUBMANSEC wins).
MANSEC_RE = re.compile(r"^\s*(?:/\*\s*)?(SUB)?MANSEC\s*=\s*(\w+)", re.M)
MANSEC_HEAD_CHARS = 4000
LOCAL_TIMEOUT_S = 300
NETWORK_TIMEOUT_S = 1800

Parser = Callable[[str, str, SkipLog], list[Document]]


def is_url(location: str) -> bool:
    """Whether `location` names a repository to clone rather than a local checkout."""
    return location.startswith(URL_PREFIXES) or location.rstrip("/").endswith(".git")


def run_git(args: list[str], cwd: Path | None, what: str, hint: str, timeout: int) -> str:
    """Run git; on failure raise a SourceError saying what failed and what to do."""
    try:
        proc = subprocess.run(
            ["git", *args],
            cwd=cwd,
            capture_output=True,
            encoding="utf-8",
            errors="surrogateescape",
            timeout=timeout,
            env={**os.environ, "GIT_TERMINAL_PROMPT": "0"},
        )
    except FileNotFoundError:
        raise SourceError("git is not installed or not on PATH; install git") from None
    except subprocess.TimeoutExpired:
        raise SourceError(f"{what} timed out after {timeout} s; {hint}") from None
    if proc.returncode:
        raise SourceError(f"{what} failed: {proc.stderr.strip()}; {hint}")
    return proc.stdout


def blob_fingerprint(path: Path, max_bytes: int) -> str:
    """git's blob id of a file (as `git hash-object`), or size:mtime for huge files."""
    try:
        if path.is_symlink() or not path.is_file():
            return "not-a-file"
        if path.stat().st_size > max_bytes:
            return file_fingerprint(path)
        data = path.read_bytes()
    except OSError:
        return "unreadable"
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


def _skip_reason(relpath: str) -> str | None:
    if relpath.endswith(".out") or "output" in relpath.split("/")[:-1]:
        return "generated test output"
    return None


class GitSource:
    """A library source tree (see the module docstring); implements `Source`.

    `location` is a checkout path or a git URL (http(s)://, git@, ssh://, file://,
    or a path ending in .git). A URL is cloned with `--depth 1` (branch or tag
    `rev` if given) into `clone_root/<name>` and fetched again on each run. For
    a local checkout `rev` only fills links when there is no commit. `exclude`
    holds relative path prefixes to leave out.
    """

    def __init__(
        self,
        name: str,
        location: str,
        profile: Profile,
        clone_root: Path,
        max_file_bytes: int = 2_000_000,
        rev: str = "",
        official: bool = True,
        exclude: list[str] | tuple[str, ...] = (),
    ) -> None:
        self.name = name
        self.location = location
        self.profile = profile
        self.clone_root = Path(clone_root)
        self.max_file_bytes = max_file_bytes
        self.rev = rev
        self.official = official
        self.exclude = tuple(p.removeprefix("./") for p in exclude if p.strip("./"))
        self.skipped: list[Skip] = []
        self._state: State | None = None
        self._commit = ""
        self._root = Path()
        self._folder_mansec: dict[str, str] = {}

    # ---- Source protocol -------------------------------------------------------------------

    def iter_documents(self, since: State | None) -> Iterator[Document]:
        """Documents of every file whose fingerprint differs from `since` (all when None)."""
        skips = SkipLog()
        self.skipped = skips.skipped
        root = self._worktree()
        self._root, self._folder_mansec = root, {}
        self._state = self._scan(root)
        before = since.origins if since else {}
        for relpath, fingerprint in self._state.origins.items():
            if since is None or before.get(relpath) != fingerprint:
                yield from self._file_documents(root, relpath, skips)

    def state(self) -> State:
        """Fingerprints of all files considered on the last run (scans now if none ran)."""
        if self._state is None:
            self._state = self._scan(self._worktree())
        return self._state

    # ---- Getting and fingerprinting the tree ---------------------------------------------

    def _worktree(self) -> Path:
        if not is_url(self.location):
            root = Path(self.location).expanduser()
            if not root.is_dir():
                raise SourceError(
                    f"source {self.name!r}: {root} is not a directory; "
                    "give the path of a checkout or a git URL"
                )
            return root
        dest = self.clone_root / self.name
        if (dest / ".git").exists():
            self._update(dest)
        elif dest.exists() and any(dest.iterdir()):
            raise SourceError(
                f"{dest} exists but is not a git clone; remove it so {self.location} can be cloned"
            )
        else:
            dest.parent.mkdir(parents=True, exist_ok=True)
            branch = ["--branch", self.rev] if self.rev else []
            run_git(
                ["clone", "--depth", "1", *branch, "--", self.location, str(dest)],
                None,
                f"git clone of {self.location}",
                "check the URL (and rev) or clone it yourself and pass the path",
                NETWORK_TIMEOUT_S,
            )
        return dest

    def _update(self, dest: Path) -> None:
        what, hint = f"git fetch of {self.location}", f"check the URL or delete {dest} to re-clone"
        run_git(["remote", "set-url", "origin", self.location], dest, what, hint, LOCAL_TIMEOUT_S)
        fetch = ["fetch", "--depth", "1", "origin", self.rev or "HEAD"]
        run_git(fetch, dest, what, hint, NETWORK_TIMEOUT_S)
        run_git(["reset", "--hard", "FETCH_HEAD"], dest, what, hint, LOCAL_TIMEOUT_S)

    def _considered(self, relpath: str) -> bool:
        if self.exclude and relpath.startswith(self.exclude):
            return False
        return not relpath.startswith("doc/") or relpath.startswith("doc/changes/")

    def _scan(self, root: Path) -> State:
        if not (root / ".git").exists():
            self._commit = ""
            return State(origins=self._walk(root))
        blobs = {}
        for entry in self._git(root, "ls-files", "-s", "-z"):
            meta, _, path = entry.partition("\t")
            if path:
                blobs[path] = meta.split()[1]
        dirty = set(self._git(root, "ls-files", "-m", "-z"))
        deleted = set(self._git(root, "ls-files", "-d", "-z"))
        untracked = {p for p in self._git(root, "ls-files", "-o", "--exclude-standard", "-z") if p}
        origins = {}
        for path in sorted((blobs.keys() | untracked) - deleted):
            if self._considered(path) and not path.endswith("/"):
                clean = path in blobs and path not in dirty
                origins[path] = blobs[path] if clean else self._hash(root / path)
        try:
            self._commit = self._git(root, "rev-parse", "--verify", "HEAD")[0].strip()
        except SourceError:  # a repository without commits yet
            self._commit = ""
        return State(origins=origins, extra={"commit": self._commit})

    def _git(self, root: Path, *args: str) -> list[str]:
        """NUL-separated output of a local git command in `root`."""
        what = f"git {' '.join(args)} in {root}"
        return run_git(list(args), root, what, "is it a git checkout?", LOCAL_TIMEOUT_S).split("\0")

    def _walk(self, root: Path) -> dict[str, str]:
        origins = {}
        for folder, dirs, files in os.walk(root):
            dirs[:] = [d for d in dirs if not d.startswith(".")]
            for file in files:
                relpath = (Path(folder) / file).relative_to(root).as_posix()
                if self._considered(relpath):
                    origins[relpath] = self._hash(root / relpath)
        return dict(sorted(origins.items()))

    def _hash(self, path: Path) -> str:
        return blob_fingerprint(path, self.max_file_bytes)

    # ---- Files into documents ------------------------------------------------------------

    def _file_documents(self, root: Path, relpath: str, skips: SkipLog) -> list[Document]:
        reason = _skip_reason(relpath)
        path = root / relpath
        if not reason and (path.is_symlink() or not path.is_file()):
            reason = "not a regular file (symbolic link or submodule)"
        if reason:
            skips.skip(relpath, reason)
            return []
        text = read_text_file(path, self.max_file_bytes, skips, relpath)
        if text is None:
            return []
        parser = self._parser(relpath)
        if parser is None:
            skips.skip(relpath, f"no parser for this file type ({PurePosixPath(relpath).name})")
            return []
        return parser(relpath, text, skips)

    def _parser(self, relpath: str) -> Parser | None:
        suffix = PurePosixPath(relpath).suffix
        if CHANGELOG_RE.match(relpath):
            return self._changelog
        if is_example(relpath):
            return self._example
        if suffix in HEADER_SUFFIXES:
            return self._header
        if suffix in LANGUAGES:
            return self._source
        return None

    def _source(self, relpath: str, text: str, skips: SkipLog) -> list[Document]:
        """Man pages (C family), one document per function, and the code around them."""
        suffix = PurePosixPath(relpath).suffix
        language = LANGUAGES[suffix]
        used: set[str] = set()
        pages = [] if language in ("fortran", "python") else parse_manpages(text, relpath, skips)
        if language == "fortran":
            spans = split_fortran(text, fixed_form=suffix in FIXED_FORM_SUFFIXES)
        else:
            spans = split_python(text) if language == "python" else split_c(text)
        mansec = self._mansec(relpath, text) if pages else ""
        docs = [self._manpage(relpath, page, used, mansec) for page in pages]
        docs += [self._function(relpath, span, language, used) for span in spans]
        covered = [(p.start_line, p.end_line) for p in pages] + [(s.start, s.end) for s in spans]
        rest = leftover(text, covered)
        if rest:
            docs.append(self._whole_file(relpath, rest, text, {"language": language}))
        return docs

    def _header(self, relpath: str, text: str, skips: SkipLog) -> list[Document]:
        """A header's man pages plus the header itself as one code document."""
        used: set[str] = set()
        pages = parse_manpages(text, relpath, skips)
        mansec = self._mansec(relpath, text) if pages else ""
        docs = [self._manpage(relpath, page, used, mansec) for page in pages]
        language = LANGUAGES[PurePosixPath(relpath).suffix]
        return [*docs, self._whole_file(relpath, text, text, {"language": language})]

    def _example(self, relpath: str, text: str, skips: SkipLog) -> list[Document]:
        language = LANGUAGES[PurePosixPath(relpath).suffix]
        example = parse_example(text, language)
        first = (example.help or example.header).strip().split("\n")[0]
        rendered = example.render()
        # The program's first line within the rendered text: a line of the text maps to
        # the file's line (text line - code_line + 1), so answers link a call to its line.
        code_line = rendered[: len(rendered) - len(example.code)].count("\n") + 1
        return [
            self._document(
                relpath,
                "example",
                f"{relpath}: {first}" if first else relpath,
                rendered,
                lines=(1, _line_count(text)),
                meta={"language": language, "test_args": example.test_args, "code_line": code_line},
                mentions="\n".join(example.test_args),  # options the test runs use
            )
        ]

    def _changelog(self, relpath: str, text: str, skips: SkipLog) -> list[Document]:
        stem = PurePosixPath(relpath).stem
        docs = self.profile.docs_url.rstrip("/")
        return [
            self._document(
                relpath,
                "changelog",
                changelog_title(text, stem),
                text,
                lines=(1, _line_count(text)),
                uri=f"{docs}/changes/{stem}/" if docs else "",
            )
        ]

    def _manpage(self, relpath: str, page: ManPage, used: set[str], mansec: str) -> Document:
        """A man page, linked to its published page when the manual section is known (the
        comment block's own lines stay in `meta["source_uri"]`)."""
        lines = (page.start_line, page.end_line)
        meta = {**page.to_dict(), "mansec": mansec, "source_uri": self._blob(relpath, lines)}
        published = self.profile.manpage_url if mansec else ""
        return self._document(
            relpath,
            "manpage",
            page.name,
            render(page),
            anchor=_unique(page.name, page.start_line, used),
            section=page.name,
            lines=lines,
            defines=[page.name],
            meta=meta,
            uri=published.format(mansec=mansec, name=quote(page.name)),
        )

    def _blob(self, relpath: str, lines: tuple[int, int]) -> str:
        """The file's lines at the commit (or the configured `rev`) in the blob viewer."""
        rev = self._commit or self.rev or self.profile.default_rev
        start, end = lines
        return self.profile.blob_url.format(rev=rev, path=quote(relpath), start=start, end=end)

    def _mansec(self, relpath: str, text: str) -> str:
        """The manual section of a file's man pages: declared in its own head (headers do),
        else in the makefile of its folder or the nearest folder above that has one."""
        return _declared_mansec(text[:MANSEC_HEAD_CHARS]) or self._folder_section(
            PurePosixPath(relpath).parent
        )

    def _folder_section(self, folder: PurePosixPath) -> str:
        key = folder.as_posix()
        if key not in self._folder_mansec:
            makefile = self._root / folder / "makefile"
            try:
                found = _declared_mansec(makefile.read_text("utf-8", "replace"))
            except OSError:
                found = ""
            if not found and folder.parts:
                found = self._folder_section(folder.parent)
            self._folder_mansec[key] = found
        return self._folder_mansec[key]

    def _function(self, relpath: str, span: Span, language: str, used: set[str]) -> Document:
        return self._document(
            relpath,
            "code",
            span.name,
            span.text,
            anchor=_unique(span.name, span.start, used),
            section=span.name,
            lines=(span.start, span.end),
            defines=[span.name],
            meta={"language": language},
        )

    def _whole_file(self, relpath: str, text: str, full: str, meta: dict) -> Document:
        """A file-level code document; `full` is the file, for the line range of the link."""
        return self._document(
            relpath, "code", relpath, text, lines=(1, _line_count(full)), meta=meta
        )

    def _document(
        self,
        relpath: str,
        kind: str,
        title: str,
        text: str,
        *,
        lines: tuple[int, int],
        anchor: str = "",
        section: str = "",
        defines: list[str] | None = None,
        meta: dict | None = None,
        uri: str = "",
        mentions: str = "",
    ) -> Document:
        """A document of this source; `symbols` = `defines`, then names in `text` and `mentions`."""
        start, end = lines
        found = find_symbols(f"{text}\n{mentions}", self.profile.symbol_prefixes)
        return Document(
            id=f"{self.name}:{relpath}" + (f"#{anchor}" if anchor else ""),
            source=self.name,
            kind=kind,
            uri=uri or self._blob(relpath, lines),
            title=title,
            text=text,
            origin=relpath,
            official=self.official,
            version=self._commit or None,
            symbols=list(dict.fromkeys([*(defines or []), *found])),
            section=section,
            start_line=start,
            end_line=end,
            meta=meta or {},
        )


def _declared_mansec(text: str) -> str:
    """SUBMANSEC if the text declares one, else MANSEC, else empty."""
    found = {bool(sub): name for sub, name in MANSEC_RE.findall(text)}
    return found.get(True) or found.get(False, "")


def _unique(name: str, start: int, used: set[str]) -> str:
    """`name`, or `name-L<start>` (then `-2`, `-3`...) if the file already uses that anchor."""
    anchor, n = name, 1
    while anchor in used:
        anchor = f"{name}-L{start}" + (f"-{n}" if n > 1 else "")
        n += 1
    used.add(anchor)
    return anchor


def _line_count(text: str) -> int:
    return text.rstrip("\n").count("\n") + 1
