"""C signatures of library functions, to type the variables a fragment passes to them.

A fragment such as `KSPSetOperators(ksp, A, A);` declares nothing; the parameter types of
the functions it calls say what `ksp` and `A` are (`KSP`, `Mat`; `&pc` passed as `PC *`
makes `pc` a `PC`). The types come from the man-page synopses in the index when it has
the function's page, else from the prototypes in the configured PETSc's headers (the
docs-only index has no man pages, and the headers are the version compiled against).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from functools import cache
from pathlib import Path

_CALL_RE = re.compile(r"\b([A-Za-z_]\w*)\s*\(")
_COMMENT_RE = re.compile(r"/\*.*?\*/|//[^\n]*", re.S)
_TOKEN_RE = re.compile(r"[A-Za-z_]\w*|\*|\[[^\]]*\]")
_QUALIFIERS = {"const", "struct", "enum", "restrict", "volatile", "PETSC_RESTRICT", "register"}
_BUILTIN = {"int", "char", "double", "float", "long", "short", "unsigned", "signed", "size_t"}
_NOT_FUNCTIONS = {"if", "for", "while", "switch", "return", "sizeof", "defined", "else"}
_ATTRIBUTE_RE = re.compile(
    r"\bPETSC_\w+\s*(\([^()]*(\([^()]*\)[^()]*)*\))?|\b(static|inline|extern)\b"
)


@dataclass(frozen=True)
class Signature:
    """A function's return type and the type of each parameter (None where the type
    cannot declare a variable: a function pointer, `void *`, a macro's `type`)."""

    name: str
    returns: str
    params: tuple[str | None, ...]
    source: str  # "man page" or the header's file name


def closing_paren(text: str, open_at: int) -> int:
    """The index of the `)` matching the `(` at `open_at`, or -1."""
    depth = 0
    for i in range(open_at, len(text)):
        if text[i] == "(":
            depth += 1
        elif text[i] == ")":
            depth -= 1
            if depth == 0:
                return i
    return -1


def split_arguments(text: str) -> list[str]:
    """Split an argument or parameter list at its top-level commas."""
    parts, depth, start = [], 0, 0
    for i, char in enumerate(text):
        if char in "([{":
            depth += 1
        elif char in ")]}":
            depth -= 1
        elif char == "," and depth == 0:
            parts.append(text[start:i])
            start = i + 1
    parts.append(text[start:])
    return [part.strip() for part in parts]


def parameter_type(param: str, known_type: Callable[[str], bool]) -> str | None:
    """`KSP ksp` → `KSP`; `const PetscScalar v[]` → `PetscScalar *`; `PetscInt *n` →
    `PetscInt *`; None for what cannot declare a variable (see `Signature`)."""
    if "(" in param or param.strip() in ("", "..."):
        return None
    tokens = _TOKEN_RE.findall(param)
    words = [t for t in tokens if t[0].isalpha() or t[0] == "_"]
    words = [w for w in words if w not in _QUALIFIERS]
    stars = sum(1 for t in tokens if not (t[0].isalpha() or t[0] == "_"))
    if len(words) >= 2 and words[-1] not in _BUILTIN:
        words.pop()  # the parameter's name
    if not words or words == ["void"] or not all(w in _BUILTIN or known_type(w) for w in words):
        return None
    return " ".join(words) + (" " + "*" * stars if stars else "")


def parse_prototypes(text: str, source: str, known_type: Callable[[str], bool]) -> list[Signature]:
    """Every `RETURN NAME(PARAMS)` in `text` (a synopsis or a header declaration)."""
    text = _ATTRIBUTE_RE.sub(" ", _COMMENT_RE.sub(" ", text))
    text = re.sub(r"^[ \t]*#.*$", "", text, flags=re.M)  # `#include <petscksp.h>`
    found = []
    for match in _CALL_RE.finditer(text):
        name = match.group(1)
        if name in _NOT_FUNCTIONS:
            continue
        before = text[: match.start()].rsplit(";", 1)[-1].rsplit("}", 1)[-1].rsplit("\n\n", 1)
        returns = " ".join(before[-1].split())
        if not re.fullmatch(r"[A-Za-z_][\w\s\*]*", returns or "-") or returns.startswith("return"):
            continue
        end = closing_paren(text, match.end() - 1)
        if end < 0:
            continue
        params = split_arguments(text[match.end() : end])
        if params in (["void"], [""]):
            params = []
        typed = tuple(parameter_type(p, known_type) for p in params)
        found.append(Signature(name, returns.strip(), typed, source))
    return found


@cache
def header_signatures(include_dirs: tuple[Path, ...]) -> dict[str, Signature]:
    """Prototypes of the functions the public headers declare (`PETSC_EXTERN ...;` and
    `static inline` definitions), read once per process and include path."""
    known_type = header_types(include_dirs).__contains__
    signatures: dict[str, Signature] = {}
    for path in _headers(include_dirs):
        text = _COMMENT_RE.sub(" ", path.read_text(encoding="utf-8", errors="replace"))
        statements = re.findall(r"PETSC_EXTERN\b[^;{]*", text)
        statements += re.findall(r"static inline\b[^;{]*", text)
        for statement in statements:
            for signature in parse_prototypes(statement, path.name, known_type):
                signatures.setdefault(signature.name, signature)
    return signatures


@cache
def header_types(include_dirs: tuple[Path, ...]) -> frozenset[str]:
    """The type names the headers define (typedefs), to tell a type from a parameter name."""
    names = set(_BUILTIN)
    for path in _headers(include_dirs):
        text = _COMMENT_RE.sub(" ", path.read_text(encoding="utf-8", errors="replace"))
        names.update(re.findall(r"typedef\b[^;]*?\b([A-Za-z_]\w*)\s*;", text))
    return frozenset(names)


@cache
def header_names(include_dirs: tuple[Path, ...]) -> frozenset[str]:
    """Every identifier the public headers spell outside comments: the names to suggest
    when no index is at hand."""
    names: set[str] = set()
    for path in _headers(include_dirs):
        text = _COMMENT_RE.sub(" ", path.read_text(encoding="utf-8", errors="replace"))
        names.update(re.findall(r"\b[A-Za-z_]\w{2,}", text))
    return frozenset(names)


@cache
def header_objects(include_dirs: tuple[Path, ...]) -> frozenset[str]:
    """The object handle types (`typedef struct _p_KSP *KSP;`): `KSP`, `Vec`, `Mat`, ..."""
    names: set[str] = set()
    for path in _headers(include_dirs):
        text = path.read_text(encoding="utf-8", errors="replace")
        names.update(re.findall(r"typedef\s+struct\s+_p_\w+\s*\*\s*([A-Za-z_]\w*)\s*;", text))
    return frozenset(names)


def _headers(include_dirs: Iterable[Path]) -> list[Path]:
    """The public PETSc headers (`petsc*.h` directly in an include folder)."""
    return sorted(path for folder in include_dirs for path in folder.glob("petsc*.h"))


class Signatures:
    """Look a function's signature up: man page first, then the headers."""

    def __init__(
        self, include_dirs: tuple[Path, ...], synopsis: Callable[[str], str | None] | None = None
    ) -> None:
        self.include_dirs = include_dirs
        self.synopsis = synopsis

    def lookup(self, name: str) -> Signature | None:
        types = header_types(self.include_dirs)
        text = self.synopsis(name) if self.synopsis else None
        if text:
            # A synopsis's own types need no header: library types are capitalized, and a
            # macro's placeholder (`type **r`) is not.
            def known(word: str) -> bool:
                return word in types or word[:1].isupper()

            for signature in parse_prototypes(text, "man page", known):
                if signature.name == name:
                    return signature
        return header_signatures(self.include_dirs).get(name)

    def is_object(self, type_name: str) -> bool:
        """Whether `type_name` is a library object handle (`KSP`, `Vec`)."""
        return type_name in header_objects(self.include_dirs)


def index_synopsis(store) -> Callable[[str], str | None]:
    """The synopsis of a function's man page in the index (`store.defining_documents`)."""

    def synopsis(name: str) -> str | None:
        for doc in store.defining_documents(name, limit=3):
            text = str(doc.meta.get("synopsis") or "").strip()
            if doc.kind == "manpage" and text:
                return text
        return None

    return synopsis
