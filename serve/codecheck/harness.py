"""Wrapping a fragment (a few calls, no `main`) into a program a compiler accepts.

A fragment is split into what must stay at file scope (preprocessor lines, function
definitions, `typedef`/`struct`/`enum` declarations) and the statements, which go into
`main` between `PetscInitialize` and `PetscFinalize`. `#line` directives keep every
diagnostic on the fragment's own line numbers (file `fragment.c`); what the harness adds
reports as `harness.c`.

The variables a fragment uses without declaring are found by the compiler itself (a first
pass reports them undeclared) and typed from the signatures of the functions the fragment
passes them to (`signatures.py`): `KSPSetOperators(ksp, A, A)` declares `KSP ksp` and
`Mat A`; `KSPGetPC(ksp, &pc)` declares `PC pc`; `ierr = KSPSolve(...)` gives `ierr` the
return type. A variable no call types, elided code (`...`), unbalanced brackets, or text
that is not C (shell commands, Fortran, Python) make the fragment unwrappable, with the
reason, rather than a guess.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field

from sciknow.serve.codecheck.signatures import Signatures, closing_paren, split_arguments

FRAGMENT_FILE = "fragment"  # the file name diagnostics of the fragment's own lines carry
HARNESS_FILE = "harness"
_MAIN_RE = re.compile(r"\bmain\s*\(")
_MASK_RE = re.compile(r"/\*.*?\*/|//[^\n]*|\"(?:\\.|[^\"\\\n])*\"|'(?:\\.|[^'\\\n])*'", re.S)
_DEFINITION_HEAD_RE = re.compile(r"\)\s*(?:const\s*)?$")
_CONTROL_RE = re.compile(r"^\s*(?:else\b|do\b|(?:if|for|while|switch)\s*\()")
_FILE_SCOPE_RE = re.compile(r"^\s*(?:typedef\b|struct\s+\w+\s*\{|enum\s+\w*\s*\{|static\b)")
_SHELL_RE = re.compile(
    r"^\s*(?:\$ |\./|make\b|mpiexec\b|mpirun\b|cd |export |git |python3? )", re.M
)
_FORTRAN_RE = re.compile(
    r"^\s*(?:call\s+\w+|use\s+\w+|implicit\s+none|program\s+\w+|end\s+program)", re.I | re.M
)
# A call whose arguments are typed parameters: `MatCreateBAIJ(MPI_Comm comm, int m, ...)`.
_SYNOPSIS_RE = re.compile(
    r"^\s*[A-Za-z_]\w*\s*\((?:[^()]*,)?\s*(?:const\s+)?[A-Za-z_]\w*\s+\**\s*[A-Za-z_]\w*\s*[,)\[]"
)
_PYTHON_RE = re.compile(r"^\s*(?:from\s+\w+\s+import|import\s+\w+|def\s+\w+\(.*\):)", re.M)


class CannotWrap(ValueError):
    """The fragment cannot be made a program without guessing; the message says why."""


@dataclass
class Piece:
    """A part of the fragment: its text and the line (1-based) and column it starts at."""

    text: str
    line: int
    column: int


@dataclass
class Fragment:
    """A fragment split for the harness."""

    directives: list[Piece] = field(default_factory=list)  # `#include`, `#define`, ...
    file_scope: list[Piece] = field(default_factory=list)  # definitions, typedefs
    body: list[Piece] = field(default_factory=list)  # statements for main
    masked: str = ""  # the whole fragment with comments and literals blanked

    def body_lines(self) -> set[int]:
        return {piece.line + n for piece in self.body for n in range(piece.text.count("\n") + 1)}


def mask(code: str) -> str:
    """`code` with comments and string and character literals blanked (same offsets and
    newlines), so brackets and words inside them are not read as code."""

    def blank(match: re.Match[str]) -> str:
        text = match.group(0)
        if text[0] in "\"'":
            return text[0] + re.sub(r"[^\n]", " ", text[1:-1]) + text[-1]
        return re.sub(r"[^\n]", " ", text)

    return _MASK_RE.sub(blank, code)


def is_program(code: str) -> bool:
    """A whole program (it defines `main`), compiled as it is."""
    return _MAIN_RE.search(mask(code)) is not None


def _not_c(masked: str) -> str:
    """Why the text is not C, or ""."""
    if _SHELL_RE.search(masked):
        return "it looks like shell commands, not C"
    if _FORTRAN_RE.search(masked):
        return "it looks like Fortran, not C"
    if _PYTHON_RE.search(masked):
        return "it looks like Python, not C"
    return ""


def _line_column(code: str, offset: int) -> tuple[int, int]:
    line = code.count("\n", 0, offset) + 1
    return line, offset - (code.rfind("\n", 0, offset) + 1)


def _elision(masked: str) -> str:
    """Where the fragment leaves code out (`...`, except a variadic parameter list)."""
    for match in re.finditer(r"\.\.\.", masked):
        after = masked[match.end() :].lstrip()[:1]
        before = masked[: match.start()].rstrip()[-1:]
        if not (before == "," and after == ")" and _in_prototype(masked, match.start())):
            return f"it leaves code out (`...` on line {_line_column(masked, match.start())[0]})"
    return ""


def _in_prototype(masked: str, offset: int) -> bool:
    """Whether `...` at `offset` closes a parameter list whose first parameter is typed."""
    open_at = masked.rfind("(", 0, offset)
    head = masked[masked.rfind("\n", 0, open_at) + 1 : open_at].split()
    return len(head) >= 2 and not head[0].endswith(";")


def split(code: str) -> Fragment:
    """Split a fragment into directives, file-scope items and statements."""
    masked = mask(code)
    reason = _not_c(masked) or _elision(masked)
    if reason:
        raise CannotWrap(reason)
    fragment = Fragment(masked=masked)
    depth = parens = 0
    start = 0
    i = 0
    while i < len(masked):
        char = masked[i]
        at_line_start = masked[masked.rfind("\n", 0, i) + 1 : i].strip() == ""
        if char == "#" and depth == 0 and at_line_start:
            end = _directive_end(masked, i)
            _add(fragment, code, masked, start, i)
            fragment.directives.append(Piece(code[i:end], *_line_column(code, i)))
            start = i = end
            continue
        if char in "([":
            parens += 1
        elif char in ")]":
            parens -= 1
        elif char == "{":
            depth += 1
        elif char == "}":
            depth -= 1
            if depth == 0 and parens == 0 and not _continues(masked, i + 1):
                _add(fragment, code, masked, start, i + 1)
                start = i + 1
        elif char == ";" and depth == 0 and parens == 0:
            _add(fragment, code, masked, start, i + 1)
            start = i + 1
        if depth < 0 or parens < 0:
            raise CannotWrap(f"unbalanced brackets (line {_line_column(code, i)[0]})")
        i += 1
    if depth or parens:
        raise CannotWrap("unbalanced brackets: a block or call is not closed")
    _add(fragment, code, masked, start, len(code))
    if not (fragment.body or fragment.file_scope):
        raise CannotWrap("there is no C statement in it")
    for piece in fragment.body:
        if _SYNOPSIS_RE.search(piece_masked(fragment, piece)):
            raise CannotWrap(
                f"it is a synopsis, not code (typed parameters in a call, line {piece.line})"
            )
    return fragment


def _directive_end(masked: str, at: int) -> int:
    """The end of a preprocessor line, continuation lines included."""
    end = at
    while True:
        newline = masked.find("\n", end)
        if newline < 0:
            return len(masked)
        if not masked[:newline].rstrip(" \t").endswith("\\"):
            return newline + 1
        end = newline + 1


def _continues(masked: str, after: int) -> bool:
    """A `}` that does not end the statement: `} else`, `} while (...);`, `} name;`."""
    rest = masked[after:].lstrip()
    return bool(re.match(r"(?:else\b|while\b|[A-Za-z_]\w*\s*[;,=\[]|;)", rest))


def _add(fragment: Fragment, code: str, masked: str, start: int, end: int) -> None:
    """File the item `code[start:end]` (blank items are dropped)."""
    item = masked[start:end]
    if not item.strip():
        return
    offset = start + len(item) - len(item.lstrip())
    piece = Piece(code[offset:end], *_line_column(code, offset))
    head = item.split("{", 1)[0]
    is_definition = (
        "{" in item
        and _DEFINITION_HEAD_RE.search(head) is not None
        and not _CONTROL_RE.match(head)
        and len(head.split("(", 1)[0].split()) >= 2  # a return type before the name
    )
    if is_definition or _FILE_SCOPE_RE.match(item):
        fragment.file_scope.append(piece)
    else:
        fragment.body.append(piece)


@dataclass
class Declaration:
    """A variable the harness declares, and what typed it."""

    name: str
    type: str
    because: str  # "KSPSetOperators() argument 1 (petscksp.h)"

    def c(self, cxx: bool) -> str:
        init = "{}" if cxx else "{0}"
        declarator = f"{self.type} {self.name}".replace("* ", "*")
        return f"  {declarator} = {init}; /* {self.because} */"


def type_variables(
    names: list[str], fragment: Fragment, signatures: Signatures
) -> tuple[list[Declaration], dict[str, str]]:
    """Declarations for `names` from the calls of the fragment's statements, and for each
    name no call types, why."""
    body = "\n".join(piece_masked(fragment, piece) for piece in fragment.body)
    typed: dict[str, Declaration] = {}
    seen: dict[str, list[str]] = {name: [] for name in names}
    for function, index, argument in _call_arguments(body):
        name = argument.lstrip("&").strip()
        if name not in seen or name in typed:
            continue
        signature = signatures.lookup(function)
        if signature is None:
            seen[name].append(f"{function}() has no known synopsis")
            continue
        if index >= len(signature.params):
            seen[name].append(f"{function}() takes {len(signature.params)} arguments")
            continue
        kind = _argument_type(
            signature.params[index], argument.startswith("&"), signatures.is_object
        )
        if kind is None:
            seen[name].append(f"{function}() argument {index + 1} is untyped ({signature.source})")
            continue
        where = f"{function}() argument {index + 1} ({signature.source})"
        typed[name] = Declaration(name, kind, where)
    for name, function in _assignments(body):
        if name in seen and name not in typed:
            signature = signatures.lookup(function)
            if signature is not None:
                typed[name] = Declaration(name, signature.returns, f"{function}() result")
    missing = {
        name: "; ".join(dict.fromkeys(seen[name])) or "it is not passed to any library function"
        for name in names
        if name not in typed
    }
    return [typed[name] for name in names if name in typed], missing


def piece_masked(fragment: Fragment, piece: Piece) -> str:
    """The masked text of a piece (its offsets recovered from line and column)."""
    lines = fragment.masked.split("\n")
    offset = sum(len(line) + 1 for line in lines[: piece.line - 1]) + piece.column
    return fragment.masked[offset : offset + len(piece.text)]


def _argument_type(
    param: str | None, by_address: bool, is_object: Callable[[str], bool]
) -> str | None:
    """The variable's type from the parameter's: `PC *` taking `&pc` makes `pc` a `PC`.
    An object handle passed where its address belongs (`KSPGetPC(ksp, pc)`) is typed as
    the object too — almost always a forgotten `&`, which the compiler then reports —
    while data arrays (`PetscInt *`) keep the pointer."""
    if param is None:
        return None
    if not by_address:
        stem = param.removesuffix("*").rstrip()
        return stem if param.endswith("*") and is_object(stem) else param
    if not param.endswith("*"):
        return None
    return param[:-1].rstrip()


def _call_arguments(text: str) -> list[tuple[str, int, str]]:
    """(function, argument index, argument) for each plain `x` or `&x` argument of a call,
    calls nested in arguments included."""
    found = []
    for match in re.finditer(r"\b([A-Za-z_]\w*)\s*\(", text):
        end = closing_paren(text, match.end() - 1)
        if end < 0:
            continue
        for index, argument in enumerate(split_arguments(text[match.end() : end])):
            if re.fullmatch(r"&?\s*[A-Za-z_]\w*", argument):
                found.append((match.group(1), index, argument.replace(" ", "")))
    return found


def _assignments(text: str) -> list[tuple[str, str]]:
    """(variable, function) for each `variable = function(`."""
    return re.findall(r"\b([A-Za-z_]\w*)\s*=\s*([A-Za-z_]\w*)\s*\(", text)


def _piece_lines(piece: Piece, file: str) -> list[str]:
    return [f'#line {piece.line} "{file}"', " " * piece.column + piece.text.rstrip()]


def harness(
    fragment: Fragment, declarations: list[Declaration], cxx: bool = False
) -> tuple[str, str]:
    """The program around `fragment`, and the names of its two files (the fragment's
    lines report as FRAGMENT_FILE, the harness's own as HARNESS_FILE)."""
    suffix = ".cxx" if cxx else ".c"
    fragment_file, harness_file = FRAGMENT_FILE + suffix, HARNESS_FILE + suffix
    masked_body = "\n".join(piece_masked(fragment, p) for p in fragment.body)
    initializes = re.search(r"\bPetscInitialize\w*\s*\(", masked_body) is not None
    finalizes = re.search(r"\bPetscFinalize\s*\(", masked_body) is not None
    out = ["/* sciknow harness: the fragment's lines keep their numbers (#line) */"]
    for piece in fragment.directives:
        out += _piece_lines(piece, fragment_file)
    out.append(f'#line {_count_lines(out) + 2} "{harness_file}"')
    out.append("#include <petsc.h>")
    for piece in fragment.file_scope:
        out += _piece_lines(piece, fragment_file)
    out.append(f'#line {_count_lines(out) + 2} "{harness_file}"')
    out.append("int main(int argc, char **argv)\n{")
    out += [declaration.c(cxx) for declaration in declarations]
    if not initializes:
        out.append("  PetscCall(PetscInitialize(&argc, &argv, NULL, NULL));")
    for piece in fragment.body:
        out += _piece_lines(piece, fragment_file)
    out.append(f'#line {_count_lines(out) + 2} "{harness_file}"')
    if not finalizes:
        out.append("  PetscCall(PetscFinalize());")
    out.append("  return 0;\n}")
    return "\n".join(out) + "\n", fragment_file


def _count_lines(out: list[str]) -> int:
    return sum(part.count("\n") + 1 for part in out)
