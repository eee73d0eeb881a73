"""Identifier-aware tokenization for the BM25 index and for queries.

Scientific-library questions name identifiers: `KSPSetTolerances`, `MATAIJ`,
`-ksp_rtol`. A plain word tokenizer either keeps them whole (so "set
tolerances" misses) or breaks them (so the exact name loses its weight). We
emit both: the whole identifier, lowercased, and its camel-case / underscore
parts. Options keep their leading dash so `-ksp_rtol` is one exact term.
"""

from __future__ import annotations

import re

_TOKEN_RE = re.compile(r"-[a-z][a-z0-9]*(?:_[a-z0-9]+)+|[A-Za-z_][A-Za-z0-9_]*|\d+(?:\.\d+)?")
_CAMEL_RE = re.compile(r"[A-Z]+(?=[A-Z][a-z])|[A-Z]?[a-z]+|[A-Z]+|\d+")

STOPWORDS = frozenset(
    """a an and are as at be but by can do does for from how i if in into is it its of on
    or so such that the their then there these this to was we what when where which who
    why will with you your my me should would could have has had not no yes""".split()
)


def identifier_parts(word: str) -> list[str]:
    """Split `KSPSetTolerances` into ksp/set/tolerances and `PETSC_COMM_WORLD` at `_`."""
    parts: list[str] = []
    for piece in word.strip("_-").split("_"):
        parts.extend(p.lower() for p in _CAMEL_RE.findall(piece))
    return parts


def terms(text: str) -> list[str]:
    """Tokens for BM25: lowercased words, whole identifiers and their parts, no stopwords."""
    out: list[str] = []
    for match in _TOKEN_RE.finditer(text):
        word = match.group(0)
        whole = word.lower()
        if whole not in STOPWORDS:
            out.append(whole)
        parts = identifier_parts(word)
        if len(parts) > 1:
            out.extend(p for p in parts if p not in STOPWORDS and p != whole)
    return out
