"""What release notes say was removed or renamed, and what replaced it.

The API-name check (`names.py`) flags a name that the index knows only from release
notes, and only when the notes say it went away. Release notes are terse lists
("- Removed `X()`", "- `X()` renamed to `Y()`", "- Deprecate `X` in favor of `Y`"),
so a few precise rules read them; a sentence they do not match claims nothing.

The rules, per list item (a `-`/`*`/`1.` line with its continuation lines, or a
paragraph), per sentence in it:

1. A *removal sentence* has a past-tense verb anywhere — removed, renamed, replaced,
   deprecated — or an imperative one first — Remove, Rename, Replace, Deprecate. "Change
   X to Y" / "Changed X to Y" counts only when a name directly follows "to"/"into"
   (so "Change `X()` to be variadic" claims nothing). A sentence that speaks of an
   argument or parameter ("Remove the `n` argument from `X()`") claims nothing: X stays.
2. The *old names*: the run of names (joined by commas, "and", "or", "-", backticks,
   "()") right before the verb when only "is/are/was/were/has been/now" stand between
   ("`X()` was renamed to ..."); otherwise the names after the verb up to the first
   marker (below) or stop word (from, of, since, because, which, that, now, when, if,
   ";", ":") — "Removed `X()` since ..." names X only.
3. The *replacement*: the run of names starting within a few words after a marker
   that follows the verb — "to"/"into"/"as" after rename/change, "with"/"by" after
   replace, and after any verb "in favor of", "use", "instead", "replaced by/with",
   "superseded by". With no marker in the sentence, a next sentence of the item that
   says "use", "instead" or "in favor of" gives it ("Removed `X()`. Use `Y()`.").
   After rename, change or replace (or with "respectively"), runs of equal length pair
   up (`A`, `B` renamed to `C`, `D`: A→C, B→D); otherwise every old name gets the whole
   run ("Removed `A()`. Use `B()` and `C()` instead": A→B, C).

Only exact names claim anything: a brace form (`KSP{Set|Get}MatSolveBlockSize()`) names
each of its expansions (`KSPSetMatSolveBlockSize`, `KSPGetMatSolveBlockSize`), never the
fragment after the brace, and a pattern (`KSPMonitorLGResidualNorm*()`, `KSPSetXXX`)
names nothing. Two brace forms of the same size pair up alternative by alternative
("Deprecate `KSP{Set|Get}A()`, use `KSP{Set|Get}B()`": KSPSetA→KSPSetB, KSPGetA→KSPGetB).
Escaped Markdown (`MAT\\_NO\\_SYMMETRIC`) is read unescaped.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Iterable

from sciknow.ingest.symbols import symbol_spans

_ITEM_RE = re.compile(r"^\s*(?:[-*+]|\d+[.)])\s+")
_SENTENCE_RE = re.compile(r"(?<=[.!?])\s+(?=[A-Z`\-])")
_VERB_RE = re.compile(
    r"\b(?P<past>removed|renamed|replaced|deprecated|changed)\b"
    r"|^\W*(?P<imperative>remove|rename|replace|deprecate|change)\b",
    re.IGNORECASE,
)
_MARKERS = {
    "rename": r"\b(?:to|into|as)\b",
    "change": r"\b(?:to|into)\b",
    "replace": r"\b(?:with|by)\b",
}
_STEMS = {"renam": "rename", "repla": "replace", "chang": "change"}  # else: removal
_ANY_MARKER = (
    r"\bin\s+favou?r\s+of\b|\buse\b|\binstead\b|\breplaced\s+(?:by|with)\b|\bsuperseded\s+by\b"
)
_STOP_RE = re.compile(r"[;:]|\b(?:from|of|since|because|which|that|now|when|if)\b", re.I)
_ARGUMENT_RE = re.compile(r"\b(?:argument|parameter)s?\b", re.I)
_SUBJECT_GAP_RE = re.compile(r"^[\s`(),]*(?:(?:is|are|was|were|has|have|been|now)\s+)*$", re.I)
_LIST_GAP_RE = re.compile(r"^[\s`(),*-]*(?:\b(?:and|or)\b)?[\s`(),*-]*$", re.I)
_NEXT_USE_RE = re.compile(r"\buse\b|\binstead\b|\bin\s+favou?r\s+of\b", re.I)
# Words that may stand between a marker and the replacement it introduces ("use instead
# the new `Y()`"); any other word means the marker introduced something else.
_FILLER_RE = re.compile(
    r"^[\s`:,]*(?:(?:the|a|new|instead|use|calling|call|function|routine|option)s?\b[\s`:,]*)*$",
    re.I,
)
_PAIRED = ("rename", "change", "replace")  # verbs whose runs of equal length pair up
_UNESCAPE_RE = re.compile(r"\\([_*\[\]])")
# `KSP{Set|Get}MatSolveBlockSize`, `Vec{Get,Restore}Array`, `-tao_term_sum_{ridge, lasso}_scale`:
# a word with one or more brace groups of `|`- or `,`-separated (possibly empty) alternatives.
_BRACE_RE = re.compile(r"(?<![\w{}\-])-?(?:\w*\{\w*(?:[ \t]*[|,][ \t]*\w*)+\})+\w*")
_ALTERNATIVES_RE = re.compile(r"\{([^{}]*)\}")
Span = tuple[str, int, int]  # a name and its character offsets


def expansions(form: str) -> list[str]:
    """The words a brace form stands for, in order: `KSP{Set|Get}X` → KSPSetX, KSPGetX."""
    pieces = _ALTERNATIVES_RE.split(form)
    choices = [
        [a.strip() for a in re.split(r"[|,]", piece)] if i % 2 else [piece]
        for i, piece in enumerate(pieces)
    ]
    return ["".join(parts) for parts in itertools.product(*choices)]


def name_spans(text: str, prefixes: Iterable[str]) -> list[Span]:
    """`symbol_spans`, sorted by offset, with brace forms read whole: each expansion that is
    a name spans the whole form, and no fragment inside a form is a name (names.py shares
    this reading, and imports this module, so it lives here)."""
    prefixes = tuple(prefixes)
    forms = [m.span() for m in _BRACE_RE.finditer(text)]
    spans = [
        span
        for span in symbol_spans(text, prefixes)
        if not any(start < span[2] and span[1] < end for start, end in forms)
    ]
    for start, end in forms:
        for word in expansions(text[start:end]):
            found = list(symbol_spans(word, prefixes))
            if any(span[1:] == (0, len(word)) for span in found):
                spans.append((word, start, end))
    return sorted(spans, key=lambda span: span[1])


def _exact(spans: list[Span], text: str) -> list[Span]:
    """The spans that name one thing: not a pattern (`X*()`, `KSPSetXXX`)."""
    return [
        span for span in spans if not text.startswith("*", span[2]) and not span[0].endswith("XXX")
    ]


def items(text: str) -> list[str]:
    """List items (with their continuation lines) and paragraphs, each on one line."""
    out: list[list[str]] = []
    current: list[str] | None = None
    for line in text.splitlines():
        if not line.strip():
            current = None
            continue
        marker = _ITEM_RE.match(line)
        if marker or current is None or line.lstrip().startswith("#"):
            current = []
            out.append(current)
        current.append(line[marker.end() :] if marker else line.strip())
    return [" ".join(parts) for parts in out]


def _runs(spans: list[Span], text: str) -> list[list[Span]]:
    """Consecutive names separated only by list punctuation ("A(), B() and C()"); the
    expansions of one brace form are one run."""
    runs: list[list[Span]] = []
    for span in spans:
        if runs and _LIST_GAP_RE.match(text[runs[-1][-1][2] : span[1]]):
            runs[-1].append(span)
        else:
            runs.append([span])
    return runs


def _first_run_after(spans: list[Span], text: str, at: int) -> list[Span]:
    """The run of names that starts right after offset `at` (filler words aside)."""
    after = [s for s in spans if s[1] >= at]
    if not after or not _FILLER_RE.match(text[at : after[0][1]]):
        return []
    return _runs(after, text)[0]


def _old_names(spans: list[Span], text: str, verb: re.Match, end: int) -> list[Span]:
    """Rule 2: the subject run right before the verb, else the object names after it."""
    before = [s for s in spans if s[2] <= verb.start()]
    if before:
        last = _runs(before, text)[-1]
        if _SUBJECT_GAP_RE.match(text[last[-1][2] : verb.start()]):
            return last
    stop = _STOP_RE.search(text, verb.end(), end)
    end = stop.start() if stop else end
    return [span for span in spans if verb.end() <= span[1] < end]


def _one_form(run: list[Span]) -> bool:
    """All the names of `run` are the expansions of a single brace form."""
    return len(run) > 1 and len({(start, end) for _, start, end in run}) == 1


def _sentence_claims(
    sentence: str, following: str, prefixes: tuple[str, ...]
) -> dict[str, list[str]]:
    verb = _VERB_RE.search(sentence)
    if verb is None or _ARGUMENT_RE.search(sentence):
        return {}
    stem = _STEMS.get((verb.group("past") or verb.group("imperative")).lower()[:5], "remove")
    spans = _exact(name_spans(sentence, prefixes), sentence)
    pattern = "|".join(p for p in (_MARKERS.get(stem), _ANY_MARKER) if p)
    marker = re.compile(pattern, re.I).search(sentence, verb.end())
    new_run: list[Span] = []
    if marker is not None:
        new_run = _first_run_after(spans, sentence, marker.end())
    elif following and (use := _NEXT_USE_RE.search(following)):
        later = _exact(name_spans(following, prefixes), following)
        new_run = _first_run_after(later, following, use.end())
    if stem == "change" and not new_run:
        return {}
    new = [name for name, _, _ in new_run]
    end = marker.start() if marker else len(sentence)
    old_run = [s for s in _old_names(spans, sentence, verb, end) if s[0] not in new]
    old = [name for name, _, _ in old_run]
    paired = stem in _PAIRED or "respectively" in sentence.lower()
    paired = paired or (_one_form(old_run) and _one_form(new_run))
    if paired and len(new) == len(old) > 1:
        return {name: [replacement] for name, replacement in zip(old, new, strict=True)}
    return {name: new for name in old}


def removals(text: str, prefixes: Iterable[str]) -> dict[str, list[str]]:
    """Names that release-notes `text` says were removed or renamed, each with the
    replacements the notes name (often one; none when they name none). See the module
    docstring for the rules."""
    prefixes = tuple(prefixes)
    claims: dict[str, list[str]] = {}
    for item in items(_UNESCAPE_RE.sub(r"\1", text)):
        sentences = _SENTENCE_RE.split(item)
        for i, sentence in enumerate(sentences):
            following = sentences[i + 1] if i + 1 < len(sentences) else ""
            for old, new in _sentence_claims(sentence, following, prefixes).items():
                if not claims.get(old):
                    claims[old] = new
    return claims
