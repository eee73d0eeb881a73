"""Which quoted units can stand alone in an answer, cleaned of markup residue.

A unit is quoted out of its page, so it must read on its own: no sentence that starts
mid-way (a chunk boundary or a split after an abbreviation), none that points back at a
section the reader does not see, none that ends on a colon or "the command" whose
continuation was not quoted, and no list-table cells flattened into "* - a - b". MyST
roles and math are reduced to their text: `{any}`KSPSolve()`` to `KSPSolve()`,
`:math:`^*`` and `^\\dagger` dropped.
"""

from __future__ import annotations

import re
from collections.abc import Collection

from sciknow.ingest.symbols import find_symbols
from sciknow.serve.segment import Unit

_MIDWAY_RE = re.compile(r"^(?:[a-z(]|(?:and|or|but|which|that|so|then|also|thus)\b)")
_BACKREF_RE = re.compile(
    r"^(?:as (?:discussed|shown|mentioned|described|noted|seen|explained)|"
    r"in the (?:preceding|previous|following|next)|see (?:above|below)|"
    r"(?:this|these|the above|the following) (?:is|are|was|were|shows?|example|code|command))",
    re.IGNORECASE,
)
_DANGLING_RE = re.compile(
    r"(?::|\bthe (?:command|commands|following|routine|function|options?)\.?|"
    r"\bas follows\.?|\be\.g\.|\bfor example,?)\s*$",
    re.IGNORECASE,
)
# A man page's trailing fields: lists of names, not statements.
_FIELD_RE = re.compile(r"^(?:See also|Level|Keywords?|Concepts?)\s*:", re.IGNORECASE)
_LIST_TABLE_RE = re.compile(r"^\s*\*?\s*-\s+\S+(?:\s+-\s+\S+)+\s*$|^\s*\*\s+-\s")
_ROLE_RE = re.compile(r"\{(?:any|ref|doc|numref|term|eq|code|file|envvar|option)\}`([^`]*)`")
_MATH_ROLE_RE = re.compile(r":?\{?math\}?:?`([^`]*)`")
_SUPERSCRIPT_RE = re.compile(r"\^(?:\\[A-Za-z]+|\*|\{[^}]*\})")
_VERBATIM_RE = re.compile(r"(?<!\S)\.v[be](?!\S)|\\(?=:)")  # man-page .vb/.ve, `\:`
_LABEL_RE = re.compile(r"\s*<[^<>`]+>$")


def clean(text: str) -> str:
    """The unit's text with MyST roles reduced to their text and math residue dropped."""
    text = _ROLE_RE.sub(_role_text, text)
    text = _MATH_ROLE_RE.sub(lambda m: "" if _is_mark(m.group(1)) else f"`{m.group(1)}`", text)
    return " ".join(_VERBATIM_RE.sub(" ", _SUPERSCRIPT_RE.sub("", text)).split())


def _role_text(match: re.Match[str]) -> str:
    inner = _LABEL_RE.sub("", match.group(1)).strip()
    return f"`{inner}`" if inner and not inner.startswith("`") else inner


def _is_mark(math: str) -> bool:
    """A footnote-like mark (`^*`, `^\\dagger`) rather than a formula worth keeping."""
    return bool(re.fullmatch(r"\s*\^?\s*(?:\\[A-Za-z]+|\*+|\{[^}]*\})\s*", math))


def stands_alone(unit: Unit) -> bool:
    """Whether a unit reads on its own (see the module docstring)."""
    text = unit.text.strip()
    if unit.kind == "code":
        return True
    if _LIST_TABLE_RE.match(text) or _FIELD_RE.match(text):
        return False
    if unit.kind == "sentence" and (_MIDWAY_RE.match(text) or _BACKREF_RE.match(text)):
        return False
    return not _DANGLING_RE.search(text)


def code_is_about(unit: Unit, names: Collection[str], prefixes: tuple[str, ...]) -> bool:
    """A code block belongs in the answer only when it uses a name the answer is about
    (when the answer is about no name: any block but a man page's synopsis, which is
    about its own function: a configure line, a makefile rule)."""
    if not names:
        return unit.context.lower() != "synopsis"
    wanted = {n.lower() for n in names}
    return any(s.lower() in wanted for s in find_symbols(unit.text, prefixes))
