"""Answer metrics that need no judge: names, citations, loops, flags.

- Symbol recall: the share of the reference answer's library names that the answer
  contains as whole tokens (the retrieval metric's matching, `metrics.coverage`).
- Symbol precision: of the library names the answer uses (`find_symbols`), the share
  the reference uses too. Names that exist nowhere in the index are counted apart, as
  invented, and removed ones too, by the product's own name check (`serve/names.py`).
- Lead hit: the answer's first unit (paragraph, list item or code block) names one of
  the reference's library names, as a whole token: does the answer lead with the answer
  (an abstention leads with "I don't know": a miss).
- Unit precision: the share of the answer's units (the sentences of its prose, its code
  blocks whole) whose best cosine to a sentence or block of the reference is at least
  `UNIT_MATCH`, embedded with the project's embedder: how much of the answer says what
  the reference says, rather than something beside it. Markers, MyST directive fences
  and roles are dropped first, and a one-word unit is no sentence (the FAQ's bare "No",
  "Yes." or `-l` broken off `og_view`): a reference with nothing longer gives none.
  The units are cut here, not by the product's `serve/segment.py`, so that the
  measurement does not move when the answer's own segmentation changes. An abstention
  claims nothing: no unit precision.
- Citation support: each `[n]` marker must point at a passage that was given and that
  shares a library name with the cited text, or a sentence: one of the cited text's
  sentences has at least `SHARED_TERMS` of its terms (`index.terms`, at least
  `MIN_TERMS` of them) in the passage. The cited text is what stands between the marker
  (or the run of adjacent markers it belongs to) and the previous marker or blank line.
- Loops: the guard's own `LoopDetector`, fed the finished text.
- Flags as an error detector: errors are the occurrences of invented names and of real
  names that neither the reference nor any given passage uses; a flag of a doubting
  type (`DOUBT_FLAGS`) catches an error when their character spans overlap.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from sciknow.eval.metrics import coverage, tokens
from sciknow.index.embed import Embedder
from sciknow.index.terms import terms
from sciknow.ingest.symbols import find_symbols
from sciknow.records import DOUBT_FLAGS, Flag
from sciknow.serve.citations import check_citations
from sciknow.serve.guard import LoopDetector
from sciknow.serve.names import NameChecker
from sciknow.serve.segment import split_sentences

SHARED_TERMS = 0.6
MIN_TERMS = 3
_BLANK_LINE_RE = re.compile(r"\n\s*\n")
UNIT_MATCH = 0.5  # an answer unit resembles the reference at this cosine or above
_FENCE_RE = re.compile(r"^[ \t]*(```|~~~)[^\n]*\n.*?(?:^[ \t]*\1[ \t]*$|\Z)", re.DOTALL | re.M)
_ITEM_RE = re.compile(r"^\s*(?:[-*+]|\d{1,2}[.)])\s+|^\s*#{1,6}\s")
_MARKER_RE = re.compile(r"[ \t]*\[\d+\]")
_MYST_RE = re.compile(r"^[ \t]*:::.*$|\{[a-z][\w:-]*\}(?=`)", re.MULTILINE)
_UNIT_SENTENCE_RE = re.compile(r"(?<=[.!?])\s+(?=[A-Z`\"'(\[\d-])")
_LETTER_RE = re.compile(r"[A-Za-z]")


def answer_recall(reference: Iterable[str], text: str) -> float | None:
    """Share of the reference names found in the answer; None when the reference has none."""
    return coverage(reference, tokens(text))


def answer_precision(reference: Iterable[str], names: Sequence[str]) -> float | None:
    """Share of the answer's names that the reference uses; None when the answer has none."""
    if not names:
        return None
    wanted = set(reference)
    return sum(name in wanted for name in names) / len(names)


def blocks(text: str) -> list[tuple[str, bool]]:
    """The text's blocks in reading order as (text, is code): fenced code blocks whole,
    list items and headings each alone, paragraphs (lines up to a blank line); citation
    markers, MyST directive fences and roles dropped."""
    text = _MYST_RE.sub("", _MARKER_RE.sub("", text))
    out: list[tuple[str, bool]] = []
    last = 0
    for match in _FENCE_RE.finditer(text):
        out += [(b, False) for b in _prose_blocks(text[last : match.start()])]
        out.append((match.group(0).strip(), True))
        last = match.end()
    out += [(b, False) for b in _prose_blocks(text[last:])]
    return [(b, code) for b, code in out if _LETTER_RE.search(b)]


def _prose_blocks(text: str) -> list[str]:
    out: list[list[str]] = []
    current: list[str] = []
    for line in text.splitlines():
        if current and (not line.strip() or _ITEM_RE.match(line)):
            out.append(current)
            current = []
        if line.strip():
            current.append(line.strip())
    return [" ".join(lines) for lines in [*out, current] if lines]


def units(text: str) -> list[str]:
    """The units unit precision weighs: each sentence of the prose blocks, each code block;
    one word is no sentence."""
    out: list[str] = []
    for block, code in blocks(text):
        pieces = [block] if code else _UNIT_SENTENCE_RE.split(block)
        out += [p for p in pieces if _LETTER_RE.search(p) and len(p.split()) > 1]
    return out


def lead_hit(reference: Iterable[str], text: str) -> bool | None:
    """Whether the first block names a reference name; None when the reference has none."""
    wanted = set(reference)
    if not wanted:
        return None
    first = blocks(text)[:1]
    return bool(first) and bool(wanted & tokens(first[0][0]))


class UnitMatcher:
    """Each answer unit's best cosine to the reference's units, with the project's embedder
    (vectors of a reference are kept: every run of an evaluation scores the same ones)."""

    def __init__(self, embedder: Embedder) -> None:
        self.embedder = embedder
        self._references: dict[str, np.ndarray] = {}

    def best_cosines(self, text: str, reference: str) -> list[float]:
        """One cosine per unit of `text` (none when either side has no unit)."""
        mine = units(text)
        theirs = self._reference(reference)
        if not mine or not len(theirs):
            return []
        return [float(c) for c in (self.embedder.embed(mine) @ theirs.T).max(axis=1)]

    def _reference(self, reference: str) -> np.ndarray:
        if reference not in self._references:
            pieces = units(reference)
            self._references[reference] = (
                self.embedder.embed(pieces) if pieces else np.zeros((0, 0), dtype=np.float32)
            )
        return self._references[reference]


def unit_precision(cosines: Sequence[float]) -> float | None:
    """Share of the units at or above `UNIT_MATCH`; None without units."""
    return sum(c >= UNIT_MATCH for c in cosines) / len(cosines) if cosines else None


def name_issues(
    text: str, checker: NameChecker, quoted: Sequence[tuple[int, int]] = ()
) -> tuple[list[str], list[str]]:
    """The answer's invented names (in no document of the index) and removed names (only in
    release notes that say they were removed), each once, by the product's name check;
    `quoted`: the ranges that quote release notes (`names.history_ranges`)."""
    invented: dict[str, None] = {}
    removed: dict[str, None] = {}
    for issue in checker.check(text, quoted):
        (removed if issue.reason == "removed-name" else invented).setdefault(issue.name, None)
    return list(invented), list(removed)


@dataclass
class CitationCheck:
    markers: int = 0  # every [n] outside code, those pointing at no passage included
    supported: int = 0  # markers whose passage shares a name or a sentence with the text

    @property
    def rate(self) -> float | None:
        return self.supported / self.markers if self.markers else None


def citation_support(
    text: str, passages: Mapping[int, str], prefixes: Sequence[str]
) -> CitationCheck:
    """Check each `[n]` of `text` against `passages` (number → passage text)."""
    result = check_citations(text, max(passages, default=0))
    spans = sorted((span, n) for n, found in result.spans.items() for span in found)
    check = CitationCheck(markers=len(spans) + len(result.removed))
    cited = ""
    previous_end = 0
    for (start, end), n in spans:
        if result.text[previous_end:start].strip() or not cited:
            cited = _cited_text(result.text, previous_end, start)
        previous_end = end
        if n in passages and supports(cited, passages[n], prefixes):
            check.supported += 1
    return check


def _cited_text(text: str, previous_end: int, start: int) -> str:
    """What a marker at `start` cites: back to the previous marker or blank line."""
    before = text[previous_end:start]
    breaks = list(_BLANK_LINE_RE.finditer(before.rstrip()))
    return before[breaks[-1].end() :] if breaks else before


def supports(cited: str, passage: str, prefixes: Sequence[str]) -> bool:
    """The passage shares a library name with the cited text, or one of its sentences."""
    if set(find_symbols(cited, prefixes)) & set(find_symbols(passage, prefixes)):
        return True
    passage_terms = set(terms(passage))
    for sentence in split_sentences(cited):
        wanted = set(terms(sentence))
        if len(wanted) >= MIN_TERMS and len(wanted & passage_terms) >= SHARED_TERMS * len(wanted):
            return True
    return False


def loops(text: str) -> bool:
    """Whether the guard's loop detector fires on the whole of `text`.

    The guard stops generation as soon as the text repeats itself, so in an answer a loop
    can only stand at the end or as repeated lines: one pass over the finished text sees
    both (the closing newline lets its last line count), at a fraction of the cost of
    replaying the stream word by word."""
    return LoopDetector().feed(text + "\n")


def name_spans(text: str, names: Iterable[str]) -> list[tuple[int, int]]:
    """Character spans of every whole-token occurrence of `names` in `text`."""
    spans = []
    for name in set(names):
        pattern = re.compile(rf"(?<![\w-]){re.escape(name)}(?!\w)")
        spans += [m.span() for m in pattern.finditer(text)]
    return sorted(spans)


@dataclass
class FlagCheck:
    errors: int = 0  # error occurrences in the answer
    caught: int = 0  # of those, inside a doubting flag
    flags: int = 0  # doubting flags with a span
    right: int = 0  # of those, overlapping an error

    def add(self, other: FlagCheck) -> FlagCheck:
        return FlagCheck(*(a + b for a, b in zip(self.counts(), other.counts(), strict=True)))

    def counts(self) -> tuple[int, int, int, int]:
        return self.errors, self.caught, self.flags, self.right

    @property
    def recall(self) -> float | None:
        return self.caught / self.errors if self.errors else None

    @property
    def precision(self) -> float | None:
        return self.right / self.flags if self.flags else None


def flag_check(text: str, flags: Sequence[Flag], errors: Iterable[str]) -> FlagCheck:
    """How the doubting flags of one answer line up with its erroneous names."""
    wrong = name_spans(text, errors)
    marked = [
        (int(f["start"]), int(f["end"]))
        for f in flags
        if f.get("type") in DOUBT_FLAGS and f.get("start") is not None and f.get("end") is not None
    ]
    return FlagCheck(
        errors=len(wrong),
        caught=sum(any(_overlap(e, f) for f in marked) for e in wrong),
        flags=len(marked),
        right=sum(any(_overlap(f, e) for e in wrong) for f in marked),
    )


def _overlap(a: tuple[int, int], b: tuple[int, int]) -> bool:
    return a[0] < b[1] and b[0] < a[1]


def wrong_names(
    names: Sequence[str], flagged: Sequence[str], reference: Iterable[str], passages: Iterable[str]
) -> list[str]:
    """The names the name check flagged (invented or removed), and real names that neither
    the reference nor a given passage uses."""
    seen = set(reference)
    for passage in passages:
        seen |= tokens(passage)
    return list(dict.fromkeys([*flagged, *(n for n in names if n not in seen)]))
