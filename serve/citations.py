"""Find `[n]` citations in an answer and keep only those that point at given passages.

A citation counts only outside code (fenced blocks and inline backticks), where
`a[1]` is an array index, not a reference. Forms accepted: `[1]`, `[1][2]`,
`[1, 3]`, `[1-3]`. A number with no passage behind it (`[99]`) is removed from
the text and logged, so a reader never follows a dead reference.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass, field

from sciknow.records import Citation, Evidence

log = logging.getLogger(__name__)

_CITE_RE = re.compile(r"\[(\d{1,3}(?:\s*[-–,]\s*\d{1,3})*)\]")
_CODE_RE = re.compile(r"```.*?(?:```|\Z)|`[^`\n]*`", re.DOTALL)
MAX_RANGE = 20


@dataclass
class CitationResult:
    text: str  # the answer with invalid citations removed
    cited: list[int] = field(default_factory=list)  # valid passage numbers, first-use order
    spans: dict[int, list[tuple[int, int]]] = field(default_factory=dict)  # n → marker spans
    removed: list[int] = field(default_factory=list)


def parse_numbers(inside: str) -> list[int]:
    """`1, 3-5` → [1, 3, 4, 5] (ranges capped at MAX_RANGE numbers)."""
    numbers: list[int] = []
    for part in re.split(r"\s*,\s*", inside.strip()):
        low, dash, high = re.sub(r"\s*[-–]\s*", "-", part).partition("-")
        if dash and int(high) >= int(low):
            numbers.extend(range(int(low), min(int(high), int(low) + MAX_RANGE - 1) + 1))
        else:
            numbers.append(int(low))
    return numbers


def _code_spans(text: str) -> list[tuple[int, int]]:
    return [m.span() for m in _CODE_RE.finditer(text)]


def _in_code(position: int, spans: list[tuple[int, int]]) -> bool:
    return any(start <= position < end for start, end in spans)


def check_citations(text: str, given: int) -> CitationResult:
    """Validate citations against passages 1..`given`; rewrite markers to keep valid ones."""
    code = _code_spans(text)
    result = CitationResult(text="")
    out = ""
    last = 0
    for match in _CITE_RE.finditer(text):
        if _in_code(match.start(), code):
            continue
        numbers = parse_numbers(match.group(1))
        valid = [n for n in numbers if 1 <= n <= given]
        bad = [n for n in numbers if not 1 <= n <= given]
        if bad:
            log.warning("removed citation(s) %s: only %d passages were given", bad, given)
            result.removed.extend(bad)
        out += text[last : match.start()]
        if not valid:
            out = out.rstrip(" \t")  # no dangling space where a marker was dropped
        for n in valid:
            marker = f"[{n}]"
            result.spans.setdefault(n, []).append((len(out), len(out) + len(marker)))
            out += marker
            if n not in result.cited:
                result.cited.append(n)
        last = match.end()
    result.text = out + text[last:]
    return result


def citation_records(result: CitationResult, evidence: Sequence[Evidence]) -> list[Citation]:
    """The `Answer.citations` entries of the cited passages, with their marker spans."""
    return [passage_record(n, evidence[n - 1], result.spans.get(n, [])) for n in result.cited]


def passage_record(n: int, item: Evidence, spans: Sequence[tuple[int, int]] = ()) -> Citation:
    """One citation entry: number, chunk id, title, link, marker spans, and what a front end
    shows of the passage (kind, official or not, section, its text)."""
    return Citation(
        n=n,
        chunk_id=item.chunk_id,
        title=item.title,
        uri=item.uri,
        spans=list(spans),
        kind=item.kind,
        official=item.official,
        section=item.section,
        text=item.text,
    )
