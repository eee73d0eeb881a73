"""Extractive answers: the retrieved passages' own sentences, items, rows and code, cited.

A 135M model cannot write answers people can rely on (docs/design.md, "Answers"), so on the
embedded default the answer is composed from the evidence, around what the question asks
(ARCHITECTURE.md, "The answer"):

1. The lead. The question's kind (`rerank/question.py`) picks it: for an API how-to, an
   option or a troubleshooting question, the man page closest to the question among
   those retrieval and the top passages name (`compose/lead.py`), when it clears
   `LEAD_FLOOR`: its summary line, synopsis, options database keys, the notes that say
   what a default is or what to call, and one tutorial line that calls it, linked to its
   line. Otherwise the passage of the best-scored unit (no release note unless the
   question is about versions; the manual, FAQ or mail before a man page unless it is an
   API how-to), quoted in order from its opening sentence.
2. The rest. Every other passage is cut into units (`segment.py`) and each unit scored:
   cosine to the question (the index's own embedder), BM25 of the question's terms
   within the units, the share of the question's library names it contains, a bonus for
   names and options the question does not name, and the passage's rank. Units are
   chosen greedily, MMR-style, above a cosine floor and a share of the best score,
   within the length budget left by the lead, and printed in order of relevance.
3. Units that cannot stand alone are never quoted: a sentence that starts mid-way or
   points back ("As discussed in the preceding section"), one that ends on a colon or
   "the command" with nothing after it, code that uses none of the names the answer is
   about, MyST residue (roles, math, list-table cells) is cleaned first.
4. Markers are numbered in reading order and the evidence is reordered to match.

Everything here is deterministic and costs one embedder batch; no model generates text.
"""

from __future__ import annotations

import dataclasses
import math
import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from sciknow.index.embed import Embedder
from sciknow.index.store import Store
from sciknow.index.terms import terms
from sciknow.ingest.symbols import find_symbols
from sciknow.records import Evidence
from sciknow.rerank.question import question_kind
from sciknow.rerank.target import Target, target_page
from sciknow.serve.compose.lead import manpage_lead, tutorial_call
from sciknow.serve.compose.units import clean, code_is_about, stands_alone
from sciknow.serve.segment import Unit, segment

WEIGHTS = {"dense": 1.0, "bm25": 0.3, "symbols": 0.2, "api": 0.3, "rank": 0.1}
MMR_LAMBDA = 0.75
DUPLICATE_COSINE = 0.92
MIN_SHARE_OF_BEST = 0.55  # stop when a unit scores below this share of the best
MAX_UNITS = 8
MAX_UNIT_CHARS = 700
MIN_UNIT_CHARS = 25
# Units embedded per answer (the cheap scores pick them), in batches of `EMBED_BATCH`
# (the embedder runs batches that small on one thread, 4x faster on a busy machine),
# each cut to `EMBED_CHARS`: a unit's head is enough to judge it, and cost grows with length.
MAX_CANDIDATES = 15
# A man page leads when its target score (rerank/target.py) clears this and the question
# uses a word of its name or an option it lists: MiniLM alone put PetscBenchCreate at
# 0.66 for "How can I generate performance summaries?".
LEAD_FLOOR = 0.65
# Below this cosine to the question a unit is quoted only as part of the lead passage
# (the passage of the best-scored unit, however weak: retrieval judged it relevant).
MIN_UNIT_COSINE = 0.1
# What the units after the lead may use: at least MIN_REST_CHARS, at most REST_CHARS, or
# REST_AFTER_PAGE after a man page (its fields already say what it does; the sources
# carry the rest).
MIN_REST_CHARS = 250
REST_CHARS = 500
REST_AFTER_PAGE = 350
LEAD_UNITS = 4
LEAD_CHARS = 500
LEAD_CODE_LINES = 8
EMBED_BATCH = 8
EMBED_CHARS = 200


@dataclass
class Candidate:
    unit: Unit
    passage: int  # 1-based passage number
    cheap: float = 0.0  # lexical score, before the embedder
    similarity: float = 0.0  # cosine to the question
    score: float = 0.0
    vector: np.ndarray | None = field(default=None, repr=False)


@dataclass
class Extract:
    """The answer text (Markdown with `[n]` markers) and the passages it numbers."""

    text: str
    evidence: list[Evidence]


class _Plan:
    """The answer being composed: its parts (with placeholder markers), the evidence they
    cite, and the passages the lead quoted (left out of the rest)."""

    def __init__(self, evidence: list[Evidence]) -> None:
        self.evidence = evidence
        self.parts: list[str] = []
        self.used: set[int] = set()
        self.quoted: list[Candidate] = []  # the lead's units, so the rest does not repeat them

    def repeats(self, candidate: Candidate) -> bool:
        """Whether the lead already quoted this unit (or a near-duplicate of it)."""
        key = _key(candidate.unit.text)
        return any(_key(q.unit.text) == key for q in self.quoted) or (
            _redundancy(candidate, self.quoted) >= DUPLICATE_COSINE
        )

    @staticmethod
    def marker(n: int) -> str:
        """A placeholder for passage `n`'s marker, numbered in reading order at the end."""
        return f"⟦{n}⟧"

    def cite(self, item: Evidence, reason: str) -> int:
        """`item`'s passage number (1-based), appended when retrieval did not return it; a
        given record replaces the retrieved one (a tutorial chunk linked to its line)."""
        for i, known in enumerate(self.evidence):
            if known.chunk_id == item.chunk_id:
                self.evidence[i] = item
                self.used.add(i)
                return i + 1
        item.reason = reason
        self.evidence.append(item)
        self.used.add(len(self.evidence) - 1)
        return len(self.evidence)

    def finish(self) -> Extract:
        """The text with markers numbered in reading order; the evidence in that order,
        then the passages no marker cites."""
        text = "\n\n".join(part for part in self.parts if part)
        order = list(dict.fromkeys(int(n) for n in _PLACEHOLDER_RE.findall(text)))
        number = {old: new for new, old in enumerate(order, start=1)}
        text = _PLACEHOLDER_RE.sub(lambda m: f"[{number[int(m.group(1))]}]", text)
        cited = [self.evidence[old - 1] for old in order]
        uncited = [e for i, e in enumerate(self.evidence, start=1) if i not in number]
        return Extract(text, cited + uncited)


class Extractor:
    """Builds extractive answers from evidence with the index's embedder and symbol table."""

    def __init__(
        self, embedder: Embedder, store: Store, prefixes: Sequence[str], max_chars: int = 1500
    ) -> None:
        self.embedder = embedder
        self.store = store
        self.prefixes = tuple(prefixes)
        self.max_chars = max_chars

    def answer(
        self, question: str, evidence: Sequence[Evidence], names: Sequence[str] = ()
    ) -> Extract:
        """`names`: the question's library names (the retriever's `query_symbols`)."""
        plan = _Plan(list(evidence))
        kind = question_kind(question, names)
        question_vector = self.embedder.embed([question])[0]
        target = None
        if kind != "version":
            found = target_page(
                self.store, question, question_vector, names, evidence, self.prefixes
            )
            target = found if found and found.score >= LEAD_FLOOR and found.overlap else None
        about = [*names, *([target.page.title] if target else [])]
        if target is not None:
            self._lead_with_page(plan, target, names)
        scored = self.scored(question, plan.evidence, about, question_vector)
        if target is None:
            _lead_with_passage(plan, kind, scored)
        room = REST_AFTER_PAGE if target is not None else REST_CHARS
        budget = max(min(self.max_chars - len("\n\n".join(plan.parts)), room), MIN_REST_CHARS)
        rest = [
            c
            for c in scored
            if c.similarity >= MIN_UNIT_COSINE
            and c.passage - 1 not in plan.used
            and not plan.repeats(c)
        ]
        plan.parts.append(_render_rest(_mmr(rest, budget)))
        return plan.finish()

    def _lead_with_page(self, plan: _Plan, target: Target, names: Sequence[str]) -> None:
        """The man page's lead, then a tutorial line that calls the function."""
        n = plan.cite(target.evidence, f"man page of {target.page.title}")
        plan.parts.append(manpage_lead(target.page, plan.marker(n), names))
        call = tutorial_call(self.store, target.page.title)
        if call is not None:
            cited = dataclasses.replace(call.evidence, uri=call.uri)
            m = plan.cite(cited, f"a tutorial that calls {target.page.title}")
            plan.parts.append(
                f"A tutorial calls it, `{call.title}` {plan.marker(m)}:\n"
                f"```{call.language}\n{call.code}\n```"
            )

    # ----- selection ---------------------------------------------------------------

    def select(
        self, question: str, evidence: Sequence[Evidence], names: Sequence[str], budget: int
    ) -> list[Candidate]:
        """Units of the passages chosen within `budget` (a docs patch's selection)."""
        scored = self.scored(question, evidence, names)
        return _mmr([c for c in scored if c.similarity >= MIN_UNIT_COSINE], budget)

    def scored(
        self,
        question: str,
        evidence: Sequence[Evidence],
        names: Sequence[str],
        question_vector: np.ndarray | None = None,
    ) -> list[Candidate]:
        """The passages' units that stand alone, scored (the floor is the caller's); code only
        when it uses one of `names`."""
        candidates = [
            c
            for c in _candidates(evidence)
            if c.unit.kind != "code" or code_is_about(c.unit, names, self.prefixes)
        ]
        if not candidates:
            return []
        _score_lexical(question, candidates, names, len(evidence), self.prefixes)
        candidates = sorted(candidates, key=lambda c: -c.cheap)[:MAX_CANDIDATES]
        texts = [_plain(c.unit.text)[:EMBED_CHARS] for c in candidates]
        if question_vector is None:
            texts.insert(0, question)
        vectors = np.concatenate(
            [
                self.embedder.embed(texts[i : i + EMBED_BATCH])
                for i in range(0, len(texts), EMBED_BATCH)
            ]
        )
        if question_vector is None:
            question_vector, vectors = vectors[0], vectors[1:]
        for candidate, vector in zip(candidates, vectors, strict=True):
            candidate.vector = vector
            candidate.similarity = float(vector @ question_vector)
            candidate.score = candidate.cheap + WEIGHTS["dense"] * candidate.similarity
        return candidates


def _body(item: Evidence) -> str:
    """The passage without the title and heading path every chunk starts with."""
    lines = item.text.splitlines()
    while lines and (
        lines[0].strip() in (item.title, item.section)
        or (" > " in lines[0] and not lines[0].rstrip().endswith((".", ":")))
    ):
        lines = lines[1:]
    return "\n".join(lines)


def _candidates(evidence: Sequence[Evidence]) -> list[Candidate]:
    out = []
    for n, item in enumerate(evidence, start=1):
        for unit in segment(_body(item)):
            unit = _cleaned(unit)
            size = len(unit.text)
            if not stands_alone(unit):
                continue
            if MIN_UNIT_CHARS <= size <= MAX_UNIT_CHARS or (unit.kind == "code" and size > 0):
                out.append(Candidate(unit, n))
    return out


def _lead_with_passage(plan: _Plan, kind: str, scored: list[Candidate]) -> None:
    """The passage of the best-scored unit leads (a release note only when the question is
    about versions; never a function body; for a question that is no API how-to, a page
    of the manual, FAQ or mail before a man page), quoted in order from its opening
    sentence, or from that unit when it stands further in. With no unit above the floor,
    the first such passage in retrieval order leads: retrieval judged it closest."""
    ranked = sorted(scored, key=lambda c: -c.score)
    choices = [(c.passage, c.unit.position) for c in ranked]
    choices += [(n, -1) for n in range(1, len(plan.evidence) + 1)]
    if kind not in ("api", "option"):  # the manual, the FAQ or mail before a man page
        choices.sort(key=lambda choice: plan.evidence[choice[0] - 1].kind == "manpage")
    for passage, position in choices:
        item = plan.evidence[passage - 1]
        if (item.kind == "changelog" and kind != "version") or item.kind == "code":
            continue
        units = [_cleaned(u) for u in segment(_body(item)) if u.kind != "code" or _short(u)]
        at = next((i for i, u in enumerate(units) if u.position == position), 0)
        lead = _opening(units if at < LEAD_UNITS else units[at:])
        if lead:
            positions = {u.position for u in lead}
            plan.quoted += [
                c for c in scored if c.passage == passage and c.unit.position in positions
            ]
            plan.used.add(passage - 1)
            plan.parts.append(render_units(lead, plan.marker(passage)))
            return


def _cleaned(unit: Unit) -> Unit:
    return unit if unit.kind == "code" else dataclasses.replace(unit, text=clean(unit.text))


def _short(unit: Unit) -> bool:
    return unit.text.count("\n") <= LEAD_CODE_LINES + 1


def _opening(units: list[Unit]) -> list[Unit]:
    """A passage's opening: its first units in order, from a sentence that stands alone,
    up to `LEAD_UNITS` units or `LEAD_CHARS` characters; stops at a unit that does not."""
    start = next((i for i, u in enumerate(units) if stands_alone(u) and u.kind != "code"), None)
    if start is None:
        return []
    lead: list[Unit] = []
    used = 0
    for unit in units[start:]:
        if not stands_alone(unit) or len(lead) >= LEAD_UNITS or used > LEAD_CHARS:
            break
        lead.append(unit)
        used += len(unit.text)
    return lead


def _plain(text: str) -> str:
    return text.replace("```", " ").replace("`", "")


def _score_lexical(
    question: str,
    candidates: list[Candidate],
    names: Sequence[str],
    passages: int,
    prefixes: tuple[str, ...],
) -> None:
    """BM25 within the units, share of the question's names, any API name, passage rank."""
    bm25 = _bm25(terms(question), [terms(c.unit.text) for c in candidates])
    top = max(bm25) or 1.0
    wanted = {n.lower() for n in names}
    for candidate, lexical in zip(candidates, bm25, strict=True):
        found = {s.lower() for s in find_symbols(candidate.unit.text, prefixes)}
        share = len(found & wanted) / len(wanted) if wanted else 0.0
        novel = len(found - wanted)
        rank = 1.0 - (candidate.passage - 1) / max(passages, 1)
        candidate.cheap = (
            WEIGHTS["bm25"] * lexical / top
            + WEIGHTS["symbols"] * share
            + WEIGHTS["api"] * min(novel, 3) / 3
            + WEIGHTS["rank"] * rank
        )


def _bm25(
    query: list[str], documents: list[list[str]], k1: float = 1.2, b: float = 0.75
) -> list[float]:
    """Okapi BM25 of `query` against each of `documents` (the units are the collection)."""
    if not documents:
        return []
    frequency = Counter(t for doc in documents for t in set(doc))
    average = sum(len(d) for d in documents) / len(documents) or 1.0
    n = len(documents)
    idf = {t: math.log(1 + (n - frequency[t] + 0.5) / (frequency[t] + 0.5)) for t in set(query)}
    scores = []
    for doc in documents:
        counts = Counter(doc)
        norm = k1 * (1 - b + b * len(doc) / average)
        scores.append(
            sum(idf[t] * counts[t] * (k1 + 1) / (counts[t] + norm) for t in idf if counts[t])
        )
    return scores


def _mmr(candidates: list[Candidate], budget: int) -> list[Candidate]:
    """Greedy MMR within `budget` characters; near-duplicates never chosen twice."""
    chosen: list[Candidate] = []
    pool = sorted(candidates, key=lambda c: -c.score)
    best = pool[0].score if pool else 0.0
    used = 0
    seen_texts: set[str] = set()
    while pool and len(chosen) < MAX_UNITS:
        picked = max(pool, key=lambda c: _mmr_value(c, chosen))
        pool.remove(picked)
        key = _key(picked.unit.text)
        if picked.score < MIN_SHARE_OF_BEST * best:
            break
        if key in seen_texts or _redundancy(picked, chosen) >= DUPLICATE_COSINE:
            continue
        if used + len(picked.unit.text) > budget and chosen:
            continue
        chosen.append(picked)
        seen_texts.add(key)
        used += len(picked.unit.text)
    return chosen


def _key(text: str) -> str:
    return " ".join(text.lower().split())


def _redundancy(candidate: Candidate, chosen: list[Candidate]) -> float:
    if not chosen or candidate.vector is None:
        return 0.0
    return max(float(candidate.vector @ c.vector) for c in chosen if c.vector is not None)


def _mmr_value(candidate: Candidate, chosen: list[Candidate]) -> float:
    return MMR_LAMBDA * candidate.score - (1 - MMR_LAMBDA) * _redundancy(candidate, chosen)


# ----- rendering ---------------------------------------------------------------------

_PLACEHOLDER_RE = re.compile(r"⟦(\d+)⟧")
_SPACE_BEFORE_CITE_RE = re.compile(r"[ \t]+$")
_BRACKETED_NUMBER_RE = re.compile(r"\[(\d[\d,\s–-]*)\]")
_INLINE_CODE_RE = re.compile(r"(`[^`\n]*`)")


def _render_rest(chosen: list[Candidate]) -> str:
    """The units after the lead, in the order they were chosen (most relevant first)."""
    return "\n\n".join(render_units([c.unit], _Plan.marker(c.passage)) for c in chosen)


def render_units(units: list[Unit], n: int | str | None = None) -> str:
    """Consecutive sentences form one paragraph; items, rows and code keep their own lines.
    Each unit is cited as passage `n` (a number, or a marker as it is); with no `n` (a
    docs patch) nothing is cited. A code block follows the paragraph it belongs to
    directly, so its marker stands in that paragraph, never alone under the block."""
    lines: list[str] = []
    paragraph: list[str] = []
    for unit in units:
        if unit.kind == "sentence":
            paragraph.append(_cite(unit.text, n))
            continue
        if paragraph:
            lines.append(" ".join(paragraph))
            paragraph = []
        if unit.kind == "code":
            if n is None:
                lines.append(unit.text)
            elif lines and not lines[-1].startswith(("- ", "```")):
                lines[-1] += f"\n{unit.text}"
            else:
                lines.append(f"{_marker(n)}:\n{unit.text}")
        else:
            label = f"{unit.context}: " if unit.context and unit.kind == "item" else ""
            lines.append(f"- {label}{_cite(unit.text, n)}")
    if paragraph:
        lines.append(" ".join(paragraph))
    return "\n".join(lines) if all(line.startswith("- ") for line in lines) else "\n\n".join(lines)


def _marker(n: int | str) -> str:
    return n if isinstance(n, str) else f"[{n}]"


def _cite(text: str, n: int | str | None) -> str:
    """The unit with its citation; a quoted `[0]` (an array index, a reference of the page)
    is escaped so that it renders the same but is not taken for a citation. No `n`: the
    unit as it is (no citation to confuse it with)."""
    if n is None:
        return text
    pieces = _INLINE_CODE_RE.split(_SPACE_BEFORE_CITE_RE.sub("", text))
    quoted = "".join(
        piece if i % 2 else _BRACKETED_NUMBER_RE.sub(r"\\[\1\\]", piece)
        for i, piece in enumerate(pieces)
    )
    return f"{quoted} {_marker(n)}"
