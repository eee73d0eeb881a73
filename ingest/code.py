"""Source code into citable pieces: functions, tutorial examples, changelogs.

A function is the unit people ask about ("what does MatMult_SeqAIJ do?") and
the unit a GitLab `#L<start>-<end>` link should point at, so C, Fortran and
Python files are split at top-level definitions. The splitters are line-based
heuristics, not compilers: they must never fail on odd code, only split it less
finely (whatever they miss lands in the file's leftover document).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field


@dataclass
class Span:
    """A named range of 1-based lines of a file and its text."""

    name: str
    start: int
    end: int
    text: str


def _span(lines: list[str], name: str, first: int, last: int) -> Span:
    """Span from 0-based line indexes `first`..`last` (inclusive)."""
    return Span(name, first + 1, last + 1, "\n".join(lines[first : last + 1]))


# ---- C, C++, CUDA -------------------------------------------------------------------------

C_TOKEN_RE = re.compile(r"/\*|//|\"(?:\\.|[^\"\\])*\"|'(?:\\.|[^'\\])*'|[{}]")
C_CALL_RE = re.compile(r"([A-Za-z_~][\w:~]*)\s*@")
C_NOT_FUNCTION_RE = re.compile(r"\s*(typedef|struct|union|enum|class)\b")
C_TRANSPARENT_RE = re.compile(r"\s*(extern\s*\"C\"|namespace\b)")
MAX_HEADER_LINES = 30


def _braces(lines: list[str]) -> Iterator[tuple[int, str, int]]:
    """(line, brace, column) for braces in code, not in comments, strings or `#` lines."""
    in_comment = continued = False
    for i, line in enumerate(lines):
        if not in_comment and (continued or line.lstrip().startswith("#")):
            continued = line.rstrip().endswith("\\")
            continue
        pos = 0
        while pos < len(line):
            if in_comment:
                end = line.find("*/", pos)
                if end < 0:
                    break
                in_comment, pos = False, end + 2
                continue
            tok = C_TOKEN_RE.search(line, pos)
            if not tok or tok.group() == "//":
                break
            in_comment = tok.group() == "/*"
            if tok.group() in "{}":
                yield i, tok.group(), tok.start()
            pos = tok.end()


def _header_start(lines: list[str], i: int) -> int:
    """First line of the declaration whose body opens on line `i`."""
    j = i
    while j > 0 and i - j < MAX_HEADER_LINES:
        prev = lines[j - 1].strip()
        if not prev or prev.endswith((";", "}", "{", "*/", "\\")) or prev.startswith(("#", "//")):
            break
        j -= 1
    return j


def _function_name(header: str) -> str | None:
    """Name of the function a declaration defines, or None for structs, arrays, etc."""
    header = re.sub(r"/\*.*?\*/|//[^\n]*", " ", header, flags=re.S)
    if C_NOT_FUNCTION_RE.match(header):
        return None
    flat = header
    while (inner := re.sub(r"\([^()]*\)", "@", flat)) != flat:  # "@" marks a (...) group
        flat = inner
    if "=" in flat.replace("operator=", ""):
        return None
    names = C_CALL_RE.findall(flat)
    # Skip attribute macros such as PETSC_DEPRECATED_FUNCTION(...) around the real name.
    fallback = names[-1] if names else None
    return next((n for n in names if not re.fullmatch(r"[A-Z0-9_]+", n)), fallback)


def split_c(text: str) -> list[Span]:
    """Top-level function definitions: declaration line through the matching brace.

    A `}` in column 0 always ends the current function, which resynchronizes
    after braces unbalanced by `#if` branches.
    """
    lines = text.split("\n")
    spans: list[Span] = []
    stack: list[bool] = []  # one entry per open brace; True = namespace / extern "C"
    current: tuple[str, int] | None = None
    for i, brace, col in _braces(lines):
        if brace == "{":
            if current is None and all(stack):
                first = _header_start(lines, i)
                header = "\n".join([*lines[first:i], lines[i][:col]])
                if C_TRANSPARENT_RE.match(header):
                    stack.append(True)
                    continue
                name = _function_name(header)
                current = (name, first) if name else None
            stack.append(False)
            continue
        if stack:
            stack.pop()
        if current and (col == 0 or all(stack)):
            spans.append(_span(lines, current[0], current[1], i))
            current, stack = None, [t for t in stack if t]
    return spans


# ---- Fortran ------------------------------------------------------------------------------

F_PREFIX = (
    r"(?:(?:pure|impure|elemental|recursive|module|abstract)\s+"
    r"|(?:integer|real|logical|complex|character|double\s+precision|(?:type|class)\s*\(\s*\w+\s*\))"
    r"(?:\s*\([^)]*\)|\s*\*\s*\d+)?\s+)*"
)
F_START_RE = re.compile(
    rf"^\s*{F_PREFIX}(subroutine|function|program|module|interface)\b\s*(\w*)", re.I
)
F_END_RE = re.compile(
    r"^\s*end\s*(subroutine|function|program|module|interface)?\s*(\w*)\s*$", re.I
)
F_PROCEDURES = ("subroutine", "function")


def split_fortran(text: str, fixed_form: bool = False) -> list[Span]:
    """Subroutines and functions that are not nested in another procedure or an interface."""
    lines = text.split("\n")
    spans: list[Span] = []
    stack: list[tuple[str, str, int]] = []  # (unit kind, name, first line)
    for i, line in enumerate(lines):
        if (fixed_form and line[:1] in ("c", "C", "*")) or line.lstrip().startswith("#"):
            continue
        code = line.split("!")[0]
        end = F_END_RE.match(code)
        if end and (end.group(1) or not end.group(2)):
            if stack:
                kind, name, first = stack.pop()
                enclosing = {k for k, _, _ in stack}
                if kind in F_PROCEDURES and not enclosing & {*F_PROCEDURES, "interface"}:
                    spans.append(_span(lines, name, first, i))
            continue
        start = F_START_RE.match(code)
        kind, name = (start.group(1).lower(), start.group(2)) if start else ("", "")
        if (name or kind == "interface") and name.lower() != "procedure":  # not "module procedure"
            stack.append((kind, name, i))
    return spans


# ---- Python -------------------------------------------------------------------------------

PY_DEF_RE = re.compile(r"(?:async\s+def|def|(?:cdef\s+)?(class))\s+(\w+)")


def split_python(text: str) -> list[Span]:
    """Top-level functions, and classes split into a header part and one span per method.

    Methods are split out because a class such as petsc4py's `KSP` runs to
    thousands of lines while people ask about (and cite) `KSP.setTolerances`.
    """
    lines = text.split("\n")
    free = _statement_lines(lines)
    spans: list[Span] = []
    for is_class, name, first, last in _py_blocks(lines, free, 0, len(lines), 0):
        body = next((k for k in range(first + 1, last + 1) if free[k] and lines[k].strip()), None)
        indent = len(lines[body]) - len(lines[body].lstrip()) if body is not None else 0
        methods = _py_blocks(lines, free, body, last + 1, indent) if is_class and indent else []
        header_end = methods[0][2] - 1 if methods else last
        while header_end > first and not lines[header_end].strip():
            header_end -= 1
        spans.append(_span(lines, name, first, header_end))
        spans += [_span(lines, f"{name}.{m}", lo, hi) for _, m, lo, hi in methods]
    return spans


def _statement_lines(lines: list[str]) -> list[bool]:
    """For each line, whether it starts outside a multi-line (triple-quoted) string."""
    free, in_string = [], None
    for line in lines:
        free.append(in_string is None)
        if in_string:
            in_string = None if line.count(in_string) % 2 else in_string
        else:
            in_string = _opens_string(line)
    return free


def _py_blocks(
    lines: list[str], free: list[bool], lo: int, hi: int, indent: int
) -> list[tuple[bool, str, int, int]]:
    """(is class, name, first, last line) of the def/class blocks indented by `indent` in lo..hi.

    A block ends before the next statement or comment at its indentation or less.
    """
    blocks = []
    current: tuple[bool, str, int] | None = None
    decorator: int | None = None
    last = lo  # last non-blank line seen
    for i in range(lo, hi):
        stripped = lines[i].lstrip()
        if free[i] and stripped and len(lines[i]) - len(stripped) <= indent:
            if current:
                blocks.append((*current, last))
            match = PY_DEF_RE.match(stripped)
            first = i if decorator is None else decorator
            current = (bool(match.group(1)), match.group(2), first) if match else None
            decorator = first if stripped.startswith("@") else None
        last = i if stripped else last
    if current:
        blocks.append((*current, last))
    return blocks


def _opens_string(line: str) -> str | None:
    """The triple quote left open at the end of `line`, if any (a heuristic)."""
    return next((q for q in ('"""', "'''") if line.count(q) % 2), None)


# ---- What is left over --------------------------------------------------------------------

TRIVIAL_LINE_RE = re.compile(r"^\s*(#\s*include\b|#\s*undef\b|#\s*define\s+__FUNCT__|[/*!#\s]*$)")
MIN_LEFTOVER_LINES = 3


def leftover(text: str, covered: Iterable[tuple[int, int]]) -> str:
    """The file outside the 1-based line ranges `covered`, or "" if it is only boilerplate."""
    lines = text.split("\n")
    keep = [True] * len(lines)
    for start, end in covered:
        keep[start - 1 : end] = [False] * (end - start + 1)
    rest = "\n".join(line if k else "" for line, k in zip(lines, keep, strict=True))
    substantive = [
        ln for ln, k in zip(lines, keep, strict=True) if k and not TRIVIAL_LINE_RE.match(ln)
    ]
    if len(substantive) < MIN_LEFTOVER_LINES:
        return ""
    return re.sub(r"\n\s*\n(\s*\n)+", "\n\n", rest).strip("\n")


# ---- Tutorials and tests ------------------------------------------------------------------

EXAMPLE_RE = re.compile(r"^src/(?:.+/)?(?:tutorials|tests)/ex[^/]*\.(?:c|cxx|F90|F|py)$")
HELP_RE = re.compile(
    r"(?:static\s+)?(?:const\s+)?char\s+help\[\]\s*=\s*((?:\"(?:\\.|[^\"\\])*\"\s*)+);", re.S
)
TEST_BLOCK_RE = re.compile(r"^[ \t]*[!#]?[ \t]*/\*TEST.*?TEST\*/[ \t]*\n?", re.S | re.M)
TEST_ARGS_RE = re.compile(r"^[ \t!#]*args:[ \t]*(\S[^\n]*?)[ \t]*$", re.M)
HEADER_SEARCH_LINES = 20  # where a Fortran or Python example's introducing comment may start
C_ESCAPES = {"n": "\n", "t": "\t", "\n": "", "r": "", "a": "", "0": ""}


@dataclass
class Example:
    """A tutorial or test program: its help string, header comment and code."""

    help: str
    header: str
    code: str
    test_args: list[str] = field(default_factory=list)

    def render(self) -> str:
        return "\n\n".join(part for part in (self.help, self.header, self.code) if part)


def is_example(relpath: str) -> bool:
    return bool(EXAMPLE_RE.match(relpath))


def c_string(literals: str) -> str:
    """The value of adjacent C string literals, escapes such as \\n turned into text."""
    body = "".join(re.findall(r"\"((?:\\.|[^\"\\])*)\"", literals, re.S))
    return re.sub(r"\\(.)", lambda m: C_ESCAPES.get(m.group(1), m.group(1)), body, flags=re.S)


def parse_example(text: str, language: str) -> Example:
    """Split an example into help, header comment, code (without its TEST block) and test args."""
    tests = "".join(m.group() for m in TEST_BLOCK_RE.finditer(text))
    code = TEST_BLOCK_RE.sub("", text).strip("\n")
    found = HELP_RE.search(code)
    help_text = c_string(found.group(1)).strip() if found else ""
    return Example(help_text, _header_comment(code, language), code, TEST_ARGS_RE.findall(tests))


def _header_comment(code: str, language: str) -> str:
    """The comment that introduces the program, without its comment markers."""
    if language not in ("python", "fortran"):
        found = re.search(r"/\*(.*?)\*/", code.split("{", 1)[0], re.S)
        body = found.group(1) if found else ""
        return _dedent_comment(re.sub(r"^\s*\*+ ?", "", body, flags=re.M))
    docstring = re.match(r"(?:\s*#[^\n]*\n)*\s*[rRuU]?(\"\"\"|\'\'\')(.*?)\1", code, re.S)
    if language == "python" and docstring:
        return _dedent_comment(docstring.group(2))
    mark = "#" if language == "python" else "!"
    lines: list[str] = []
    for line in code.split("\n")[:HEADER_SEARCH_LINES]:
        s = line.strip()
        if s.startswith(mark) and not s.startswith(("#!", "# -*-", "#include")):
            if lines or not re.fullmatch(r"[\s\-=*]*", s.lstrip(mark)):
                lines.append(s.lstrip(mark))
        elif lines:  # the first comment paragraph ends
            break
    return _dedent_comment("\n".join(ln for ln in lines if not re.fullmatch(r"[\s\-=*]*", ln)))


def _dedent_comment(text: str) -> str:
    return "\n".join(line.strip() for line in text.strip().split("\n")).strip()


# ---- Changelogs ---------------------------------------------------------------------------


def changelog_title(text: str, fallback: str) -> str:
    """First Markdown `#` heading or reST underlined title, else `fallback`."""
    found = re.search(r"^#+\s+(\S.*)$", text, re.M) or re.search(
        r"^(\w.*)\n[=\-~^*#]{3,}\s*$", text, re.M
    )
    return found.group(1).strip() if found else fallback
