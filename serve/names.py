"""The API-name check: library names in a text that the index does not hold.

A small model (or a user) writes `KSPSetTolerence` or `-ksp_rtoll` as readily as a real
name; the index's symbol table knows every function, type, enum value, man-page title
and option its documents name, so a name it does not hold is almost surely wrong.

What is checked. The names `ingest/symbols.py` finds with the profile's prefixes
(`KSPSetTolerances`, `MATAIJ`, `KSP_CONVERGED_RTOL`, `-ksp_rtol`), everywhere in the
text, code blocks included; a brace form stands for each of its expansions
(`KSP{Set|Get}MatSolveBlockSize()` names `KSPSetMatSolveBlockSize` and
`KSPGetMatSolveBlockSize`, never the fragment `MatSolveBlockSize`; see
`release_notes.name_spans`); plus *near misses*: identifiers of six or more characters
that the prefixes miss — with two or more capitals, or a prefix then a small letter —
but that are one edit away from a known name (`KPSetTolerances`, `Petscnt`).

When a name is fine. It is spelled exactly so in some document of the index (any kind);
or the profile lists it in `ignore_names`; or it is a pattern — followed by `*`, `{` or
`[`, or ending in `XXX` — that begins some known name (`VecGetArray*`); or it is an
all-capital word among other all-capital words (shouting: "PLEASE CHECK MATH"). An
option is fine too when it becomes a known option after dropping leading `word_` parts:
`-mg_levels_ksp_type` is `-ksp_type` with the prefix `mg_levels_`.

Reasons. `removed-name`: a release note (a document of kind `changelog`) says that exact
name was removed, renamed, replaced or deprecated (`release_notes.py` has the rules), and
no current document holds it — no man page or source defines it, no other page mentions
it (the deprecated `SNESGetSNESLineSearch` that a header still defines is known, not
removed); the suggestions are the replacements the notes name. A removed name the text
presents as history is not flagged, since quoting a release note is not using the name:
the text itself says it was removed or renamed, or the name sits in a sentence about a
release ("in 3.3", "PETSc 3.15", "the release notes", "earlier versions"), or in a unit
whose citation marker points at a changelog passage (`check(text, citations)`: the
text from the previous marker or blank line up to the marker). `unknown-name`:
anything else, with up to three close known names: by edit distance (letters dropped,
swapped or changed, case ignored) and by shared identifier parts (`KSPSetRelativeTolerance`
→ `KSPSetTolerances`); an option may get a suggestion with its prefix kept.

Cost. `NameChecker.from_store` reads the names once per index generation and caches the
checker in memory; the names are also saved beside the index (`names.json`, keyed by the
generation), so a new process (`sciknow verify`) reads a file instead of every symbol row.
A check is a regex pass and set lookups. The suggestion index (trigrams and
identifier parts, numpy postings) is built the first time a name is unknown, and a
suggestion scores only the few dozen names that share the most trigrams and parts.
`bench/bench_names.py` measures both.
"""

from __future__ import annotations

import bisect
import json
import logging
import math
import os
import re
import threading
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from sciknow.config import Profile
from sciknow.index.store import Store
from sciknow.index.terms import identifier_parts
from sciknow.records import Citation, Flag, FlagKind
from sciknow.serve.release_notes import name_spans, removals

log = logging.getLogger(__name__)

MAX_SUGGESTIONS = 3
NAMES_FILE = "names.json"  # the names of the current generation, beside index.sqlite
_NAMES_FORMAT = 2  # in the names file's key: a file written by an older reading is re-read
MIN_SCORE = 0.5  # a suggestion's similarity (0..1, see `_Suggester.score`) at least this
_PATTERN_FOLLOWERS = "*{["
# Other libraries' names that PETSc text quotes (MPI_Count is one edit from MPI_Comm):
# never near misses of a library name.
_INTRODUCED_CODE_RE = re.compile(r":\n(```|~~~)[^\n]*\n.*?^\1[ \t]*$", re.DOTALL | re.MULTILINE)
_FOREIGN = ("MPI_", "MPIX_", "std::")
_IDENTIFIER_RE = re.compile(r"(?<![\w\-./])[A-Za-z][A-Za-z0-9_]{5,}\b")
_WORD_RE = re.compile(r"[\w-]+")
_BATCH = 500  # names per SQL IN (...) (SQLite's variable limit)
_HISTORY_KIND = "changelog"  # a unit citing a passage of this kind quotes history
# A sentence about a release: a version number after a word that dates it, or release notes.
_RELEASE_RE = re.compile(
    r"\b(?:PETSc|version|release|v)\s*\d+\.\d+"
    r"|\b(?:in|since|until|before|after|from|changes:?)\s+(?:PETSc\s+)?[23]\.\d{1,2}\b"
    r"|\brelease\s+notes?\b|\bchangelog\b|\bchanges\s+in\b"
    r"|\b(?:older|earlier|previous|prior)\s+(?:PETSc\s+)?(?:versions?|releases?)\b",
    re.IGNORECASE,
)
_SENTENCE_END_RE = re.compile(r"[.!?](?=\s)|\n")
Range = tuple[int, int]
_FLAG_KIND: dict[str, FlagKind] = {"unknown-name": "unknown_name", "removed-name": "removed_name"}


@dataclass
class NameIssue:
    """One occurrence of an unknown or removed name in a checked text."""

    name: str
    line: int  # 1-based
    start: int  # character offsets in the text
    end: int
    reason: str  # "unknown-name" | "removed-name"
    suggestions: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "line": self.line,
            "reason": self.reason,
            "suggestions": list(self.suggestions),
            "start": self.start,
            "end": self.end,
        }

    def as_flag(self) -> Flag:
        """The issue as an `Answer.flags` entry."""
        return Flag(
            type=_FLAG_KIND[self.reason],
            text=self.name,
            start=self.start,
            end=self.end,
            reason=self.reason,
            suggestions=list(self.suggestions),
        )


def _osa_distance(a: str, b: str) -> int:
    """Edit distance with adjacent swaps counted as one edit (optimal string alignment),
    computed bit-parallel (Hyyrö 2003): one pass of integer operations per character of
    `b`, ~10× faster in Python than the dynamic-programming table."""
    if not a:
        return len(b)
    full, last = (1 << len(a)) - 1, 1 << (len(a) - 1)
    masks: dict[str, int] = {}
    for i, char in enumerate(a):
        masks[char] = masks.get(char, 0) | 1 << i
    vp, vn, d0, previous, distance = full, 0, 0, 0, len(a)
    for char in b:
        pm = masks.get(char, 0)
        swap = ((~d0 & pm) << 1) & previous
        d0 = ((((pm & vp) + vp) ^ vp) | pm | vn | swap) & full
        hp = (vn | ~(d0 | vp)) & full
        hn = d0 & vp
        distance += 1 if hp & last else -1 if hn & last else 0
        hp = (hp << 1 | 1) & full
        hn = (hn << 1) & full
        vp = (hn | ~(d0 | hp)) & full
        vn = hp & d0
        previous = pm
    return distance


@lru_cache(maxsize=65536)
def _parts(name: str) -> frozenset[str]:
    """Identifier parts, lowercased, a plural `s` dropped (`tolerances` ~ `tolerance`)."""
    parts = identifier_parts(name)
    return frozenset(p[:-1] if len(p) > 3 and p.endswith("s") else p for p in parts)


def _gram_codes(lowered: str) -> list[int]:
    """The distinct trigrams of `^name$` as integers (three bytes)."""
    data = f"^{lowered}$".encode("ascii", "replace")
    return sorted({data[i] << 16 | data[i + 1] << 8 | data[i + 2] for i in range(len(data) - 2)})


def _distinct(values: np.ndarray) -> np.ndarray:
    """The distinct values of a sorted array (by sorting: numpy's hashing `unique` is ~50×
    slower on millions of integers)."""
    return values[np.r_[True, values[1:] != values[:-1]]] if len(values) else values


class _Suggester:
    """Close known names, by edit distance and shared identifier parts.

    A trigram index (numpy arrays: each trigram's sorted list of name ids) narrows
    ~100k names to the `CANDIDATES` with the highest trigram Dice coefficient; only
    those are scored exactly. Trigrams cover both signals: a misspelling keeps most of
    them, an invented name shares those of its real parts."""

    CANDIDATES = 20

    def __init__(self, names: Iterable[str], defined: set[str]) -> None:
        self.names = sorted(names)
        self.lower = [n.lower() for n in self.names]
        self.by_lower: dict[str, list[str]] = {}
        for name, lowered in zip(self.names, self.lower, strict=True):
            self.by_lower.setdefault(lowered, []).append(name)
        self.defined = defined
        self.is_option = np.array([n.startswith("-") for n in self.names], dtype=bool)
        self._index_grams()

    def _index_grams(self) -> None:
        """Build `codes` (distinct trigrams), `starts` (their slices of `owners`), `owners`
        (name ids by trigram) and `sizes` (distinct trigrams per name), all vectorized."""
        padded = [f"^{low}$" for low in self.lower]
        lengths = np.fromiter(map(len, padded), dtype=np.int64, count=len(padded))
        data = np.frombuffer("".join(padded).encode("ascii", "replace"), dtype=np.uint8)
        data = data.astype(np.int64)
        codes = data[:-2] << 16 | data[1:-1] << 8 | data[2:]
        owner = np.repeat(np.arange(len(padded), dtype=np.int64), lengths)[:-2]
        offset = np.cumsum(lengths) - lengths
        inside = np.arange(len(codes)) - offset[owner] <= lengths[owner] - 3
        shift = len(padded).bit_length()  # (trigram, name id) pairs as one integer
        pairs = _distinct(np.sort(codes[inside] << shift | owner[inside]))
        codes, owner = pairs >> shift, pairs & (1 << shift) - 1
        first = np.flatnonzero(np.r_[True, codes[1:] != codes[:-1]])
        self.codes, self.starts = codes[first], np.append(first, len(codes))
        self.owners = owner.astype(np.int32)
        self.sizes = np.bincount(self.owners, minlength=len(self.names))

    def score(self, name: str, i: int) -> float:
        """0.6 × (1 − edit distance / longer length) + 0.4 × Jaccard of identifier parts."""
        query, other = name.lower(), self.lower[i]
        edit = 1.0 - _osa_distance(query, other) / max(len(query), len(other))
        mine, theirs = _parts(name), _parts(self.names[i])
        shared = len(mine & theirs) / len(mine | theirs) if mine or theirs else 0.0
        return 0.6 * edit + 0.4 * shared

    def candidates(self, name: str) -> list[int]:
        """Ids of the names of the same kind (option or not) with the most trigrams in
        common, relative to both sizes (Dice)."""
        query = np.asarray(_gram_codes(name.lower()), dtype=np.int64)
        if not len(self.codes):
            return []
        at = np.searchsorted(self.codes, query)
        found = at[
            (at < len(self.codes)) & (self.codes[np.minimum(at, len(self.codes) - 1)] == query)
        ]
        if not len(found):
            return []
        ids = np.concatenate([self.owners[self.starts[i] : self.starts[i + 1]] for i in found])
        shared = np.bincount(ids, minlength=len(self.names))
        dice = shared / (self.sizes + len(query))
        dice[self.is_option != name.startswith("-")] = 0.0
        top = min(self.CANDIDATES, len(dice))
        best = np.argpartition(-dice, top - 1)[:top]
        return [int(i) for i in best if dice[i] > 0]

    def suggest(self, name: str, k: int = MAX_SUGGESTIONS) -> list[tuple[float, str]]:
        """Up to `k` (score, known name) pairs with score ≥ MIN_SCORE, best first."""
        scored = []
        for i in self.candidates(name):
            if self.names[i] != name:
                scored.append((self.score(name, i), self.names[i] in self.defined, self.names[i]))
        scored.sort(key=lambda s: (-s[0], not s[1], len(s[2]), s[2]))
        return [(s, n) for s, _, n in scored[:k] if s >= MIN_SCORE]

    def within_one_edit(self, token: str) -> str | None:
        """A known name one edit (case-sensitive) from `token`, if any."""
        for i in self.candidates(token):
            other = self.names[i]
            if abs(len(other) - len(token)) <= 1 and _osa_distance(token, other) == 1:
                return other
        return None


class NameChecker:
    """Flags the unknown and removed library names of a text (see the module docstring)."""

    def __init__(
        self,
        names: Iterable[str],
        prefixes: Iterable[str],
        removed: dict[str, list[str]] | None = None,
        ignore: Iterable[str] = (),
        defined: Iterable[str] = (),
    ) -> None:
        self.prefixes = tuple(prefixes)
        self.defined = set(defined)
        # A name the current sources define is not removed, whatever a release note said.
        self.removed = {k: v for k, v in (removed or {}).items() if k not in self.defined}
        self.known = set(names) | set(self.removed)
        self.ignore = set(ignore)
        self._sorted = sorted(self.known)
        self._suggester: _Suggester | None = None
        self._lock = threading.Lock()
        self.suggest = lru_cache(maxsize=4096)(self._suggest)
        self._near_miss = lru_cache(maxsize=16384)(self._find_near_miss)

    # ----- building -----------------------------------------------------------------

    @classmethod
    def from_store(cls, store: Store, profile: Profile) -> NameChecker:
        """The checker of the store's current index generation: read once, then cached (a
        call costs one SQLite read of the generation number), so call it per check."""
        key = (str(store.root.resolve()), tuple(profile.symbol_prefixes))
        key += (tuple(profile.ignore_names),)
        generation = store.generation()
        with _CACHE_LOCK:
            cached = _CACHE.get(key)
            if cached is None or cached[0] != generation:
                cached = (generation, cls._load(store, profile))
                _CACHE[key] = cached
        return cached[1]

    @classmethod
    def _load(cls, store: Store, profile: Profile) -> NameChecker:
        """From the names file of this generation when there is one, else from SQLite."""
        prefixes = list(profile.symbol_prefixes)
        last_row = store.conn.execute("SELECT MAX(rowid) FROM symbols").fetchone()[0]
        key = [store.generation(), last_row, prefixes, _NAMES_FORMAT]
        path = store.root / NAMES_FILE
        data = _read_names_file(path, key)
        if data is None:
            data = _read_names(store, prefixes)
            _write_names_file(path, key, data)
        return cls(data["names"], prefixes, data["removed"], profile.ignore_names, data["defined"])

    # ----- checking -----------------------------------------------------------------

    def check(self, text: str, quoted: Sequence[Range] = ()) -> list[NameIssue]:
        """Every occurrence of an unknown or removed name in `text`, in text order.
        `quoted`: character ranges of `text` quoted from release notes (see
        `history_ranges`); a removed name there is history, not use."""
        newlines = [m.start() for m in re.finditer("\n", text)]
        issues, covered, described = [], [], None
        for name, start, end in name_spans(text, self.prefixes):
            covered.append((start, end))
            verdict = self._verdict(name, text, start, end)
            if verdict is None:
                continue
            reason, suggestions = verdict
            if reason == "removed-name":
                if described is None:
                    described = set(removals(text, self.prefixes))
                if name in described or _as_history(text, start, end, sorted(quoted)):
                    continue
            line = bisect.bisect_left(newlines, start) + 1
            issues.append(NameIssue(name, line, start, end, reason, suggestions))
        issues += self._near_misses(text, covered, newlines)
        return sorted(issues, key=lambda issue: issue.start)

    def _verdict(self, name: str, text: str, start: int, end: int) -> tuple[str, list[str]] | None:
        """None when `name` is fine here, else (reason, suggestions)."""
        if name in self.removed:
            return "removed-name", self._replacements(name)
        if name in self.known or name in self.ignore:
            return None
        if name.startswith("-"):
            parts = name[1:].split("_")
            for i in range(1, len(parts) - 1):
                prefix, option = "-" + "_".join(parts[:i]) + "_", "-" + "_".join(parts[i:])
                if option in self.removed:
                    return "removed-name", [prefix + r[1:] for r in self._replacements(option)]
                if option in self.known:
                    return None
        if self._is_pattern(name, text[end : end + 1]) or self._shouting(text, start, end, name):
            return None
        return "unknown-name", self.suggest(name)

    def _replacements(self, name: str) -> list[str]:
        """The replacements the release notes name, each followed through later renames."""
        out = []
        for replacement in self.removed[name]:
            seen = {name}
            while self.removed.get(replacement) and replacement not in seen:
                seen.add(replacement)
                replacement = self.removed[replacement][0]
            out.append(replacement)
        return list(dict.fromkeys(out))[:MAX_SUGGESTIONS]

    def _shouting(self, text: str, start: int, end: int, name: str) -> bool:
        """An all-capital word whose neighbour on the line is an all-capital non-name too."""
        if not name.isalpha() or not name.isupper():
            return False
        line_start = text.rfind("\n", 0, start) + 1
        line_end = text.find("\n", end)
        before = _WORD_RE.findall(text[line_start:start])[-1:]
        after = _WORD_RE.findall(text[end : len(text) if line_end < 0 else line_end])[:1]
        neighbours = before + after
        return any(
            len(w) > 1 and w.isalpha() and w.isupper() and w not in self.known for w in neighbours
        )

    def _is_pattern(self, name: str, follower: str) -> bool:
        """`VecGetArray*`, `PetscViewerHDF5{Get,Set}...`, `KSPSetXXX`: a known name begins so."""
        if follower and follower in _PATTERN_FOLLOWERS:
            stem = name
        elif name.endswith("XXX"):
            stem = name.rstrip("X")
        elif follower == "_":  # a family written as its prefix: `MATOP_` for MATOP_*
            stem = name + "_"
        else:
            return False
        at = bisect.bisect_left(self._sorted, stem)
        return at < len(self._sorted) and self._sorted[at].startswith(stem)

    def _near_misses(self, text: str, covered: list[Range], newlines: list[int]) -> list[NameIssue]:
        """Identifiers the prefixes miss that are one edit away from a known name (those
        inside a name already read, a brace form's fragments included, are not)."""
        issues = []
        for match in _IDENTIFIER_RE.finditer(text):
            token = match.group(0)
            if _inside(match.span(), covered) or not self._looks_like_a_name(token):
                continue
            if token in self.known or token in self.ignore or token.startswith(_FOREIGN):
                continue
            if token.endswith("_"):  # a family written as its prefix (`MATOP_`)
                continue
            if self._near_miss(token) is None:
                continue
            line = bisect.bisect_left(newlines, match.start()) + 1
            issues.append(
                NameIssue(
                    token, line, match.start(), match.end(), "unknown-name", self.suggest(token)
                )
            )
        return issues

    def _looks_like_a_name(self, token: str) -> bool:
        """Two capitals (`KPSetTolerances`), or a prefix and a small letter (`Petscnt`)."""
        return sum(c.isupper() for c in token) >= 2 or token.startswith(self.prefixes)

    def _find_near_miss(self, token: str) -> str | None:
        return self._suggestions_index().within_one_edit(token)

    def _suggest(self, name: str) -> list[str]:
        """Up to three known names close to `name` (an exact match in another case first);
        an option also gets the suggestions of its unprefixed forms, prefix kept."""
        suggester = self._suggestions_index()
        scored = [(2.0, n) for n in suggester.by_lower.get(name.lower(), []) if n != name]
        scored += suggester.suggest(name)
        if name.startswith("-"):
            parts = name[1:].split("_")
            for i in range(1, len(parts) - 1):
                prefix = "-" + "_".join(parts[:i]) + "_"
                found = suggester.suggest("-" + "_".join(parts[i:]))
                scored += [(s, prefix + n[1:]) for s, n in found]
        scored.sort(key=lambda s: -s[0])
        return list(dict.fromkeys(n for _, n in scored))[:MAX_SUGGESTIONS]

    def _suggestions_index(self) -> _Suggester:
        with self._lock:
            if self._suggester is None:
                candidates = self.known - set(self.removed)
                self._suggester = _Suggester(candidates, self.defined)
            return self._suggester


def _inside(span: Range, ranges: Sequence[Range]) -> bool:
    """Whether `span` lies within one of `ranges` (sorted, none inside another: a bisection,
    not a scan, since a long file holds thousands of names)."""
    at = bisect.bisect_right(ranges, (span[0], math.inf)) - 1
    return at >= 0 and span[1] <= ranges[at][1]


def _as_history(text: str, start: int, end: int, quoted: Sequence[Range]) -> bool:
    """The name at `start:end` is presented as history: inside a range quoted from release
    notes, or in a sentence about a release."""
    if _inside((start, end), quoted):
        return True
    ends = [m.end() for m in _SENTENCE_END_RE.finditer(text, 0, start)]
    after = _SENTENCE_END_RE.search(text, end)
    sentence = text[ends[-1] if ends else 0 : after.end() if after else len(text)]
    return _RELEASE_RE.search(sentence) is not None


def history_ranges(text: str, citations: Sequence[Mapping[str, Any]]) -> list[Range]:
    """The ranges of `text` that cite a changelog passage: for each marker of a citation of
    kind `changelog` (its `spans`), the text back to the previous marker or blank line, as
    the answer metrics read a citation; adjacent markers share what they cite. A marker
    that introduces a code block (`[3]:` above a fence) cites that block too."""
    markers = sorted(
        (tuple(span), c.get("kind")) for c in citations for span in c.get("spans") or ()
    )
    ranges: list[Range] = []
    cited_from = previous_end = 0
    for (at, marker_end), kind in markers:
        if text[previous_end:at].strip():
            blank = text.rfind("\n\n", previous_end, at)
            cited_from = blank + 2 if blank >= 0 else previous_end
        if kind == _HISTORY_KIND:
            ranges.append((cited_from, at))
            block = _INTRODUCED_CODE_RE.match(text, marker_end)
            if block:
                ranges.append((marker_end, block.end()))
        previous_end = marker_end
    return ranges


def _read_names(store: Store, prefixes: list[str]) -> dict[str, Any]:
    """Every symbol (and which are defined somewhere) and the removed names with their
    replacements, from the index. The symbol table holds no brace expansions, so those of
    the release notes, where brace forms live (`KSP{Set|Get}MatSolveBatchSize()`), are
    added: a name the notes spell so is known."""
    names, defined = [], []
    for symbol, defines in store.conn.execute(
        "SELECT symbol, MAX(defines) FROM symbols GROUP BY 1"
    ):
        names.append(symbol)
        if defines:
            defined.append(symbol)
    claims: dict[str, list[str]] = {}
    expanded: set[str] = set()
    for (text,) in store.conn.execute("SELECT text FROM documents WHERE kind = 'changelog'"):
        expanded.update(
            name for name, start, end in name_spans(text, prefixes) if "{" in text[start:end]
        )
        for old, new in removals(text, prefixes).items():
            if not claims.get(old):
                claims[old] = new
    elsewhere = _names_outside_changelogs(store, claims)
    removed = {old: new for old, new in claims.items() if old not in elsewhere}
    names += sorted(expanded.difference(names))
    return {"names": names, "defined": defined, "removed": removed}


def _read_names_file(path: Path, key: list[Any]) -> dict[str, Any] | None:
    """The names saved for `key` (generation, last symbol row, prefixes), or None."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) and data.get("key") == key else None


def _write_names_file(path: Path, key: list[Any], data: dict[str, Any]) -> None:
    """Save the names beside the index (atomically; a read-only data dir just skips it):
    reading 1.4 M symbol rows takes seconds, the file tens of milliseconds."""
    temporary = path.with_name(f"{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    try:
        temporary.write_text(json.dumps({"key": key, **data}), encoding="utf-8")
        os.replace(temporary, path)
    except OSError as err:
        log.info("names file not saved (%s)", err)
        temporary.unlink(missing_ok=True)


def _names_outside_changelogs(store: Store, names: Iterable[str]) -> set[str]:
    """Those of `names` (exact spelling) that some non-changelog document holds."""
    names = list(names)
    found: set[str] = set()
    for at in range(0, len(names), _BATCH):
        batch = [n.lower() for n in names[at : at + _BATCH]]
        rows = store.conn.execute(
            "SELECT DISTINCT s.symbol FROM symbols s JOIN chunks c ON c.rowid = s.chunk_rowid "
            "JOIN documents d ON d.id = c.doc_id WHERE d.kind != 'changelog' "
            f"AND s.lower IN ({','.join('?' * len(batch))})",
            batch,
        )
        found.update(row[0] for row in rows)
    return found


_CACHE: dict[tuple, tuple[int, NameChecker]] = {}
_CACHE_LOCK = threading.Lock()


class NameCheck(Protocol):
    """A text's name flags; `citations` (`Answer.citations`, marker spans in `text`) tell
    which units quote release notes."""

    def __call__(self, text: str, citations: Sequence[Citation] = ()) -> list[Flag]: ...


def name_flags(store: Store, profile: Profile) -> NameCheck:
    """The Assistant's `name_check`: a text's unknown and removed names as `Answer.flags`,
    checked against the store's current generation."""

    def check(text: str, citations: Sequence[Citation] = ()) -> list[Flag]:
        checker = NameChecker.from_store(store, profile)
        issues = checker.check(text, history_ranges(text, citations))
        return [issue.as_flag() for issue in issues]

    return check
