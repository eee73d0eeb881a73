"""Every check a doc patch passes before anyone sees it; a failure refuses the patch.

- Paths: each file the diff names is relative, has no `..`, lies under a configured docs
  root, is no symlink in the base tree (nor under one), and resolves inside the clone on
  disk; a diff that creates a symlink or changes a mode is refused.
- It applies: `git apply --check` against the base commit (in a temporary index).
- MyST: the new text's fences, directives (`:::{note}`, ```` ```{code-block} ````) and
  roles are closed and named; and the page parsed with markdown-it-py before and after has
  the same block structure outside the edited lines (a fence left open swallows the rest
  of the page, which this catches too). Messages name the page line.
- Names: every library name in the new text exists in the index (the API-name check,
  `serve/names.py`); one that release notes say was removed is a review flag.
- Links: a relative link or `{doc}` names a page of the clone, `#anchor`/`{ref}` a heading
  or label there, and a web link appears in the evidence or the page (never invented).
- Private data: no e-mail address, address placeholder or secret-looking token.
- Size: at most `max_files` files, `max_added_lines` added and `max_removed_lines` removed.
"""

from __future__ import annotations

import posixpath
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from markdown_it import MarkdownIt

from sciknow.config import DocPatchConfig, Profile
from sciknow.index.store import Store
from sciknow.ingest.mail import ADDRESS_PLACEHOLDER, ADDRESS_RE
from sciknow.ingest.markdown import scan_markdown
from sciknow.ingest.rest import make_id
from sciknow.ingest.symbols import find_symbols
from sciknow.records import Flag
from sciknow.serve.docpatch.gitops import SYMLINK_MODE, DocsRepo
from sciknow.serve.docpatch.sources import DraftError
from sciknow.serve.names import NameChecker

DIRECTIVES = frozenset(
    "admonition attention caution code code-block container contents danger deprecated "
    "div dropdown epigraph error eval-rst figure glossary highlight hint image important "
    "include list-table literalinclude math note only raw rubric seealso sidebar table tip "
    "toctree topic versionadded versionchanged warning bibliography csv-table tab-set "
    "tab-item".split()
)
CODE_DIRECTIVES = frozenset({"code", "code-block", "literalinclude", "math", "raw", "eval-rst"})
_OPEN_RE = re.compile(r"^\s{0,3}(`{3,}|~{3,}|:{3,})\s*(\{[^}\s]*\}?)?(.*)$")
_ROLE_RE = re.compile(r"\{([\w:.+-]+)\}`")
_LINK_RE = re.compile(r"(?<!!)\[[^\]\n]*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
_AUTOLINK_RE = re.compile(r"<((?:https?|mailto):[^>\s]+)>")
_LABEL_ROLES = ("ref", "numref", "any")
_SECRET_RE = re.compile(
    r"glpat-[\w-]{20,}|gh[pousr]_[A-Za-z0-9]{30,}|AKIA[0-9A-Z]{16}|xox[baprs]-[\w-]{10,}"
    r"|-----BEGIN [A-Z ]*PRIVATE KEY-----"
    r"|(?i:\b(?:password|passwd|secret|token|api[_-]?key)\s*[:=]\s*\S{6,})"
)
_MD = MarkdownIt("commonmark").enable("table")


class PatchRefused(DraftError):
    """A patch failed its checks; `problems` lists each, naming the file and line."""

    def __init__(self, problems: Sequence[str]) -> None:
        self.problems = list(problems)
        super().__init__("patch refused:\n  " + "\n  ".join(self.problems))


@dataclass
class Edit:
    """One page before and after, and where the new lines are (0-based, end exclusive)."""

    path: str
    before: str
    after: str
    start: int  # first replaced line of `before` (= first new line of `after`)
    end: int  # end of the replaced lines in `before`
    new_lines: int

    @property
    def new_text(self) -> str:
        lines = self.after.splitlines(keepends=True)
        return "".join(lines[self.start : self.start + self.new_lines])


@dataclass
class Report:
    """What the checks found that does not refuse the patch."""

    flags: list[Flag] = field(default_factory=list)
    names: list[str] = field(default_factory=list)
    checks: list[str] = field(default_factory=list)


# ----- paths ---------------------------------------------------------------------------

_DIFF_PATH_RE = re.compile(r"^(?:--- |\+\+\+ |rename from |rename to |copy from |copy to )(.+)$")
_MODE_RE = re.compile(r"^(?:new file mode|new mode|old mode|deleted file mode) (\d+)$")


def patch_files(patch: str) -> tuple[list[str], list[str]]:
    """The paths a diff names (a/ b/ prefixes removed) and its mode lines."""
    paths: dict[str, None] = {}
    modes = []
    for line in patch.splitlines():
        if line.startswith("diff --git "):
            for part in line.split()[2:4]:
                paths.setdefault(_strip_prefix(part), None)
        elif match := _DIFF_PATH_RE.match(line):
            name = match.group(1).split("\t")[0].strip()
            if name != "/dev/null":
                paths.setdefault(_strip_prefix(name), None)
        elif match := _MODE_RE.match(line):
            modes.append(match.group(1))
    return list(paths), modes


def _strip_prefix(name: str) -> str:
    return name[2:] if name.startswith(("a/", "b/")) else name


def path_problems(repo: DocsRepo, base: str, patch: str, roots: Sequence[str]) -> list[str]:
    """Why the diff's files may not be written (see the module docstring)."""
    files, modes = patch_files(patch)
    problems = [f"the diff sets file mode {m}: only edits of regular files" for m in modes]
    if not files:
        problems.append("the diff names no file")
    for name in files:
        problems += _path_problem(repo, base, name, roots)
    return problems


def _path_problem(repo: DocsRepo, base: str, name: str, roots: Sequence[str]) -> list[str]:
    parts = name.split("/")
    if name.startswith("/") or re.match(r"^[A-Za-z]:", name):
        return [f"{name}: absolute path"]
    if ".." in parts or "" in parts or "." in parts:
        return [f"{name}: path leaves or re-enters folders ('..', '.' or '//')"]
    if not any(_under(name, root) for root in roots):
        return [f"{name}: outside the docs roots {list(roots)}"]
    for i in range(1, len(parts) + 1):
        if repo.mode(base, "/".join(parts[:i])) == SYMLINK_MODE:
            return [f"{name}: {'/'.join(parts[:i])} is a symlink in the base tree"]
    on_disk = (repo.root / name).resolve()
    if not on_disk.is_relative_to(repo.root.resolve()):
        return [f"{name}: resolves to {on_disk}, outside the clone (symlink)"]
    return []


def _under(name: str, root: str) -> bool:
    root = posixpath.normpath(root).strip("/")
    return root in ("", ".") or name.startswith(root + "/")


# ----- MyST ----------------------------------------------------------------------------


def myst_problems(text: str, first_line: int, path: str) -> list[str]:
    """Unclosed or unnamed fences and directives, unclosed roles (lines are 1-based page
    lines: `first_line` is the page line of the text's first line)."""
    problems: list[str] = []
    stack: list[tuple[str, int, str]] = []  # (fence marker, line, directive)
    for i, line in enumerate(text.splitlines()):
        where = f"{path}:{first_line + i}"
        opened = _OPEN_RE.match(line)
        if stack and _closes(line, stack[-1][0]):
            stack.pop()
            continue
        if stack and (stack[-1][0][0] != ":" or stack[-1][2] in CODE_DIRECTIVES):
            continue  # inside code: anything goes
        if opened:
            directive = opened.group(2) or ""
            name = directive.strip("{}").lower()
            if directive and not directive.endswith("}"):
                problems.append(f"{where}: directive {directive!r} is not closed by '}}'")
            elif directive and name not in DIRECTIVES:
                problems.append(f"{where}: unknown directive {{{name}}}")
            stack.append((opened.group(1), first_line + i, name))
            continue
        problems += [f"{where}: {p}" for p in _role_problems(line)]
    problems += [f"{path}:{line}: fence {m!r} opened here is never closed" for m, line, _ in stack]
    return problems


def _closes(line: str, marker: str) -> bool:
    stripped = line.strip()
    return len(stripped) >= len(marker) and set(stripped) == {marker[0]}


def _role_problems(line: str) -> list[str]:
    problems = []
    for match in _ROLE_RE.finditer(line):
        if "`" not in line[match.end() :]:
            problems.append(f"role {{{match.group(1)}}} is not closed by a backtick")
    return problems


def structure_problems(edit: Edit) -> list[str]:
    """Differences in block structure outside the edited lines, by page line."""
    shift = edit.new_lines - (edit.end - edit.start)
    before, after = _blocks(edit.before), _blocks(edit.after)
    head_b = [b for b in before if b[0][1] <= edit.start]
    head_a = [b for b in after if b[0][1] <= edit.start]
    tail_b = [((m[0] + shift, m[1] + shift), s) for m, s in before if m[0] >= edit.end]
    tail_a = [b for b in after if b[0][0] >= edit.start + edit.new_lines]
    for old, new in ((head_b, head_a), (tail_b, tail_a)):
        if old != new:
            line = _first_difference(old, new)
            return [
                f"{edit.path}:{line}: the page's structure changes outside the edited section "
                "(a fence, directive or list left open above this line?)"
            ]
    return []


def _blocks(text: str) -> list[tuple[tuple[int, int], tuple[str, str, str, str, int]]]:
    return [
        ((t.map[0], t.map[1]), (t.type, t.tag, t.markup, t.info, t.level))
        for t in _MD.parse(text)
        if t.map is not None and t.nesting >= 0
    ]


def _first_difference(old: list, new: list) -> int:
    for a, b in zip(old, new, strict=False):
        if a != b:
            return min(a[0][0], b[0][0]) + 1
    longer = old if len(old) > len(new) else new
    return longer[min(len(old), len(new))][0][0] + 1 if longer else 1


# ----- names, links, private data, size --------------------------------------------------


def link_problems(
    edit: Edit, repo: DocsRepo, base: str, known_text: str, roots: Sequence[str]
) -> list[str]:
    """Links and cross-references of the new text that resolve nowhere."""
    problems = []
    text = _without_code(edit.new_text)
    page_dir = posixpath.dirname(edit.path)
    for url in [m.group(1) for m in _LINK_RE.finditer(text)] + _AUTOLINK_RE.findall(text):
        problem = _link_problem(url, repo, base, page_dir, edit, known_text)
        if problem:
            problems.append(f"{edit.path}: link {url!r} {problem}")
    roles = [
        (m.group(1).rsplit(":", 1)[-1], _role_target(text, m.end()))
        for m in _ROLE_RE.finditer(text)
    ]
    if any(role in (*_LABEL_ROLES, "doc") for role, _ in roles):
        labels = _tree_labels(repo, base, roots)
        for role, target in roles:
            if role in _LABEL_ROLES and target.lower() not in labels:
                problems.append(f"{edit.path}: {{{role}}}`{target}` names no label of the docs")
            elif role == "doc" and not _page_exists(repo, base, page_dir, target, roots):
                problems.append(f"{edit.path}: {{doc}}`{target}` names no page of the docs")
    return problems


def _without_code(text: str) -> str:
    return re.sub(r"```.*?```|~~~.*?~~~|(?<!\})`[^`\n]+`", "", text, flags=re.DOTALL)


def _role_target(text: str, start: int) -> str:
    content = text[start : text.find("`", start)]
    explicit = re.match(r"^.*<([^<>]+)>$", content, re.DOTALL)
    return (explicit.group(1) if explicit else content).strip().lstrip("~!")


def _link_problem(
    url: str, repo: DocsRepo, base: str, page_dir: str, edit: Edit, known: str
) -> str:
    """Web links must come from the evidence or the page as it was; others must resolve."""
    if url.startswith("mailto:"):
        return "is an e-mail link"
    if re.match(r"^[a-z][a-z0-9+.-]*:", url):
        return "" if url in known or url in edit.before else "appears in none of the evidence"
    target, _, anchor = url.partition("#")
    if not target:
        found = _anchor_on_page(edit.after, anchor)
        return "" if found else "names no heading or label on the page"
    path = posixpath.normpath(posixpath.join(page_dir, target))
    return "" if repo.mode(base, path) else "names no file of the docs"


def _anchor_on_page(page: str, anchor: str) -> bool:
    anchors = set()
    for heading in scan_markdown(page):
        anchors.add(make_id(heading.title))
        anchors.update(label.lower() for label in heading.labels)
    return anchor.lower() in anchors


def _tree_labels(repo: DocsRepo, base: str, roots: Sequence[str]) -> set[str]:
    labels = set()
    for path in _tree_pages(repo, base, roots):
        for heading in scan_markdown(repo.read(base, path) or ""):
            labels.update(label.lower() for label in heading.labels)
    return labels


def _tree_pages(repo: DocsRepo, base: str, roots: Sequence[str]) -> Iterable[str]:
    for root in roots:
        listing = repo.git("ls-tree", "-r", "--name-only", base, "--", root)
        yield from (p for p in listing.splitlines() if p.endswith(".md"))


def _page_exists(
    repo: DocsRepo, base: str, page_dir: str, target: str, roots: Sequence[str]
) -> bool:
    bases = [posixpath.normpath(r) for r in roots] if target.startswith("/") else [page_dir]
    for folder in bases:
        stem = posixpath.normpath(posixpath.join(folder, target.lstrip("/")))
        if any(repo.mode(base, stem + suffix) for suffix in ("", ".md", ".rst")):
            return True
    return False


def private_problems(text: str, path: str, first_line: int) -> list[str]:
    """E-mail addresses, address placeholders and secret-looking tokens, by page line."""
    problems = []
    for i, line in enumerate(text.splitlines()):
        if ADDRESS_RE.search(line) or ADDRESS_PLACEHOLDER in line:
            problems.append(f"{path}:{first_line + i}: an e-mail address")
        if _SECRET_RE.search(line):
            problems.append(f"{path}:{first_line + i}: something that looks like a secret")
    return problems


def size_problems(patch: str, settings: DocPatchConfig) -> list[str]:
    files, _ = patch_files(patch)
    lines = patch.splitlines()
    added = sum(1 for x in lines if x.startswith("+") and not x.startswith("+++"))
    removed = sum(1 for x in lines if x.startswith("-") and not x.startswith("---"))
    problems = []
    if len(files) > settings.max_files:
        problems.append(f"the diff touches {len(files)} files (at most {settings.max_files})")
    if added > settings.max_added_lines:
        problems.append(f"the diff adds {added} lines (at most {settings.max_added_lines})")
    if removed > settings.max_removed_lines:
        problems.append(f"the diff removes {removed} lines (at most {settings.max_removed_lines})")
    return problems


def validate(
    edit: Edit,
    patch: str,
    repo: DocsRepo,
    base: str,
    store: Store,
    settings: DocPatchConfig,
    profile: Profile,
    known_text: str,
) -> Report:
    """Run every check; raise `PatchRefused` listing all problems, or return the flags."""
    problems = path_problems(repo, base, patch, settings.roots)
    if not problems and (complaint := repo.apply_check(base, patch)):
        problems.append(f"the diff does not apply to {base[:12]}: {complaint}")
    first = edit.start + 1
    myst = myst_problems(edit.new_text, first, edit.path)
    problems += myst or structure_problems(edit)
    report = Report(names=find_symbols(edit.new_text, profile.symbol_prefixes))
    for issue in NameChecker.from_store(store, profile).check(edit.new_text):
        if issue.reason == "removed-name":
            report.flags.append(issue.as_flag())
        else:
            close = ", ".join(issue.suggestions) or "no close name"
            line = first + issue.line - 1
            problems.append(
                f"{edit.path}:{line}: {issue.name} exists nowhere in the index "
                f"(did you mean: {close})"
            )
    problems += link_problems(edit, repo, base, known_text, settings.roots)
    problems += private_problems(edit.new_text, edit.path, first)
    problems += size_problems(patch, settings)
    if problems:
        raise PatchRefused(problems)
    report.checks = [
        f"applies to {base[:12]} (git apply --check)",
        f"touches only {', '.join(patch_files(patch)[0])}, under the docs roots {settings.roots}",
        "MyST fences, directives and roles closed; block structure unchanged outside the edit",
        f"{len(report.names)} library names checked against the index",
        "links and cross-references resolve; web links come from the evidence",
        "no e-mail address or secret",
        f"size within limits (at most {settings.max_added_lines} added lines)",
    ]
    return report
