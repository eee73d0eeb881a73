"""Find the library's names in text: functions, types, constants and options.

The patterns are driven by the profile's `symbol_prefixes`, so SLEPc (`EPS`,
`ST`, ...) or another library only needs a different list.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from functools import lru_cache

# Command-line options such as -ksp_rtol or -pc_factor_mat_ordering_type: a dash,
# a lowercase word, then at least one underscore-joined part. Requiring the
# underscore keeps ordinary hyphenated words and flags like -g out.
OPTION_RE = re.compile(r"(?<![\w\-/.])-[a-z][a-z0-9]*(?:_[a-z0-9]+)+\b")


@lru_cache(maxsize=16)
def _name_re(prefixes: tuple[str, ...]) -> re.Pattern[str]:
    alternatives = "|".join(sorted((re.escape(p) for p in prefixes), key=len, reverse=True))
    # A prefix followed by an uppercase letter or underscore: KSPSetTolerances,
    # MATAIJ, PETSC_COMM_WORLD, PetscInt. A bare prefix ("Mat") is not a symbol.
    return re.compile(rf"\b(?:{alternatives})(?:[A-Z_][A-Za-z0-9_]*)\b")


def symbol_spans(text: str, prefixes: Iterable[str]) -> Iterator[tuple[str, int, int]]:
    """Every occurrence of a symbol in `text` as (name, start, end): names first, then
    options. A trailing `_` is not part of a name (`MatCreate_` in a link target)."""
    for match in _name_re(tuple(prefixes)).finditer(text):
        name = match.group(0).rstrip("_")
        if len(name) > 3:
            yield name, match.start(), match.start() + len(name)
    for match in OPTION_RE.finditer(text):
        yield match.group(0), match.start(), match.end()


def find_symbols(text: str, prefixes: Iterable[str]) -> list[str]:
    """Return the distinct symbols in `text`: names, then options, each in order of first
    appearance."""
    return list(dict.fromkeys(name for name, _, _ in symbol_spans(text, prefixes)))
