"""Self-supervised training pairs from an index: (query, passage) in the library's own words.

The index already holds thousands of questions with their answers, only not phrased as
such. Each kind gives one pair per document:

- `manpage`: the one-line summary ("Sets the relative, absolute, … tolerances") → the
  page's first chunk. The name is left out of the query: users describe what they want
  to do, and a query holding the name would teach nothing BM25 does not already know.
- `heading`: a docs section's heading path ("Users Manual > KSP > Convergence Tests") →
  the section's first chunk.
- `example`: an example's help string → its first chunk.
- `mail`: a thread's subject and first message → the first maintainer reply (the first
  reply when no maintainer answered).

Every passage loses the lines that repeat its query (`without_query`).

A hard negative is the best BM25 hit, for the query, from another document: a passage
that shares the query's words but answers something else. Pages under an excluded path
(`exclude`: the FAQ when it is evaluated held out) give neither pairs nor negatives, and
a pair is dropped when its query or passage shares a run of `LEAK_WORDS` words with an
evaluation record (`holdout`), so no evaluation question or answer is ever trained on.
"""

from __future__ import annotations

import json
import random
import re
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

from sciknow.errors import SourceError
from sciknow.index.store import Store
from sciknow.records import Document

PAIR_KINDS = ("manpage", "heading", "example", "mail")
DOC_KINDS = {"manpage": "manpage", "heading": "doc", "example": "example", "mail": "mail"}
MIN_QUERY_WORDS = 3
MIN_PASSAGE_WORDS = 12
MAX_QUERY_CHARS = 400
LEAK_WORDS = 8  # a shared run this long counts as a leak of evaluation text
NEGATIVE_DEPTH = 20  # BM25 hits read to find a negative from another document
WORD = re.compile(r"\w+")


@dataclass(frozen=True)
class Pair:
    kind: str
    query: str
    positive: str
    doc_id: str
    negative: str = ""


@dataclass
class PairSet:
    """Pairs with what was dropped and why, for the model card."""

    pairs: list[Pair]
    found: dict[str, int] = field(default_factory=dict)  # per kind, before sampling
    excluded: int = 0  # documents under an excluded path
    leaked: int = 0  # pairs dropped for sharing text with the hold-out set
    without_negative: int = 0

    def by_kind(self) -> dict[str, int]:
        return dict(Counter(p.kind for p in self.pairs))

    def write_jsonl(self, path: Path) -> None:
        lines = (json.dumps(asdict(p), ensure_ascii=False) for p in self.pairs)
        path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def _words(text: str) -> list[str]:
    return WORD.findall(text.lower())


def shingles(text: str, size: int = LEAK_WORDS) -> set[tuple[str, ...]]:
    words = _words(text)
    return {tuple(words[i : i + size]) for i in range(max(0, len(words) - size + 1))}


def holdout_shingles(paths: Iterable[Path]) -> set[tuple[str, ...]]:
    """Word runs of every question and answer of JSONL evaluation sets; a set that cannot
    be read is an error, never a silent empty hold-out."""
    found: set[tuple[str, ...]] = set()
    for path in paths:
        try:
            lines = Path(path).read_text(encoding="utf-8").splitlines()
        except (OSError, UnicodeDecodeError) as err:
            raise SourceError(f"hold-out set {path} cannot be read ({err})") from None
        for n, line in enumerate(lines, start=1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
                texts = [str(record.get(key) or "") for key in ("question", "answer")]
            except (json.JSONDecodeError, AttributeError) as err:
                raise SourceError(f"{path}:{n}: not a JSON question record ({err})") from None
            for text in texts:
                found |= shingles(text)
    return found


def under(prefixes: Iterable[str], meta: dict, origin: str) -> bool:
    """Under an excluded path: the docs' own path (`faq/index.md`) or the source's
    origin (`doc/faq/index.md` in a git tree)."""
    paths = (str(meta.get("path", "")), origin)
    return any(p and path.startswith(p) for p in prefixes for path in paths)


def _first_chunk(store: Store, doc_id: str) -> str:
    row = store.conn.execute(
        "SELECT text FROM chunks WHERE doc_id = ? ORDER BY rowid LIMIT 1", (doc_id,)
    ).fetchone()
    return row[0] if row else ""


def without_query(passage: str, query: str) -> str:
    """The passage minus the lines that repeat the query (a man page's "Name – summary"
    line, a section's heading path, an example's help string): a pair whose passage
    holds its query verbatim teaches only what word overlap already finds."""
    needle = " ".join(_words(query))
    kept = [line for line in passage.splitlines() if needle not in " ".join(_words(line))]
    return "\n".join(kept).strip()


def _mail_pair(doc: Document) -> tuple[str, str] | None:
    posts = doc.meta.get("messages") or []
    if len(posts) < 2:
        return None
    reply = next((p for p in posts[1:] if p.get("maintainer")), posts[1])

    def body(post: dict) -> str:  # the post's span minus its author/date line
        return doc.text[post["start"] : post["end"]].partition("\n")[2].strip()

    return f"{doc.title}\n{body(posts[0])}"[:MAX_QUERY_CHARS], body(reply)


def pair_of(kind: str, doc: Document, store: Store) -> Pair | None:
    """The pair one document gives, or None when it gives none (too short, no reply)."""
    if kind == "mail":
        found = _mail_pair(doc)
        if found is None:
            return None
        query, positive = found
    else:
        query = {
            "manpage": str(doc.meta.get("summary", "")),
            "heading": doc.section or doc.title,
            "example": doc.title.partition(": ")[2],
        }[kind]
        positive = without_query(_first_chunk(store, doc.id), query)
    if len(_words(query)) < MIN_QUERY_WORDS or len(_words(positive)) < MIN_PASSAGE_WORDS:
        return None
    return Pair(kind, query.strip(), positive.strip(), doc.id)


def _candidates(
    store: Store, kinds: Iterable[str], exclude: list[str], stats: PairSet
) -> Iterator[Pair]:
    for kind in kinds:
        count = 0
        for doc in store.documents([DOC_KINDS[kind]]):
            if under(exclude, doc.meta, doc.origin):
                stats.excluded += 1
                continue
            pair = pair_of(kind, doc, store)
            if pair is not None:
                count += 1
                yield pair
        stats.found[kind] = count


def _sample(pairs: list[Pair], limit: int, rng: random.Random) -> list[Pair]:
    """At most `limit` pairs, each kind its fair share (a kind with fewer gives the rest
    to the others), in a seeded order."""
    by_kind: dict[str, list[Pair]] = {}
    for pair in pairs:
        by_kind.setdefault(pair.kind, []).append(pair)
    for group in by_kind.values():
        rng.shuffle(group)
    chosen: list[Pair] = []
    groups = sorted(by_kind.values(), key=len)
    for n, group in enumerate(groups):
        share = (limit - len(chosen)) // (len(groups) - n) if limit else len(group)
        chosen += group[:share]
    rng.shuffle(chosen)
    return chosen


def _negative(store: Store, pair: Pair, allowed: set[str], leaks: set) -> str:
    """The best BM25 hit for the query from another allowed document."""
    hits = [rowid for rowid, _ in store.search_terms(pair.query, NEGATIVE_DEPTH)]
    found = store.evidence(hits)
    for rowid in hits:
        evidence = found.get(rowid)
        if evidence is None or evidence.doc_id == pair.doc_id or evidence.doc_id not in allowed:
            continue
        if not shingles(evidence.text) & leaks:
            return evidence.text
    return ""


def _allowed_documents(store: Store, exclude: list[str]) -> set[str]:
    """Ids of the documents outside the excluded paths (read without their texts)."""
    rows = store.conn.execute("SELECT id, origin, meta FROM documents")
    return {doc_id for doc_id, origin, meta in rows if not under(exclude, json.loads(meta), origin)}


def extract_pairs(
    store: Store,
    *,
    max_pairs: int = 0,
    exclude: list[str] | None = None,
    holdout: set[tuple[str, ...]] | None = None,
    seed: int = 0,
    kinds: Iterable[str] = PAIR_KINDS,
    negatives: bool = True,
) -> PairSet:
    """Training pairs from `store` (see the module docstring); deterministic given `seed`."""
    exclude, leaks = list(exclude or []), holdout or set()
    stats = PairSet([])
    clean = []
    for pair in _candidates(store, kinds, exclude, stats):
        if leaks and (shingles(pair.query) | shingles(pair.positive)) & leaks:
            stats.leaked += 1
        else:
            clean.append(pair)
    chosen = _sample(clean, max_pairs, random.Random(seed))
    if negatives:
        allowed = _allowed_documents(store, exclude)
        with_negatives = []
        for pair in chosen:
            negative = _negative(store, pair, allowed, leaks)
            stats.without_negative += not negative
            with_negatives.append(replace(pair, negative=negative))
        chosen = with_negatives
    stats.pairs = chosen
    return stats
