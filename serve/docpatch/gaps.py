"""The gaps report: what people ask that the official docs answer weakly, clustered and ranked.

Questions come from the unofficial threads of the index (mail, issues, chat: a thread's
question is its subject plus its first question sentence, `sources.thread_question`), from
the server's votes when it keeps any, in `[serve] database_url`'s PostgreSQL or the data
directory's SQLite file (down-voted answers and abstentions count double: someone was
left without an answer) and from a JSONL file of questions (one `{"question": ...}` per
line).

1. Every question is embedded (the index's embedder, through its embedding cache, so a
   re-run embeds only new questions) and searched over the official docs and man pages
   (one batched search); its best dense cosine says how well the docs answer it.
   Questions at or above `docpatch.answered_score` are answered and leave the report.
2. The rest are clustered greedily, weakest first: a question joins the first cluster
   whose centroid it reaches with `docpatch.cluster_score`, else starts one.
3. A gap's score is the sum over its questions of weight × (1 − best cosine): many
   askers and poor docs both raise it. It is halved when the closest official passages
   already name every library name the answers use (the knowledge may be there, only hard
   to find), and scaled between for a partial match. Each gap lists example questions, the best
   official passage for its centroid and that passage's score, the threads that answer
   it (maintainers' replies first), and a suggested target page (`locate.suggest`).

Gaps are numbered by rank and saved to `<data_dir>/gaps.json`, so `sciknow patch --gap N`
drafts the gap the last report showed as N.

The report's `code` part lists other candidates: the docs' own C code blocks (the Markdown
pages of the config's local docs sources) that do not compile against the configured
PETSc, each with its file, line and first error (`serve/codecheck/blocks.py`). Blocks that
cannot be wrapped into a program (synopses, elided code) are counted, not listed. Verdicts
are cached by content in the data directory and at most `[check] gaps_blocks` blocks go
through the compiler per run (a second or two each; a synopsis rejected unread costs
nothing), so a large tree is covered over a few runs and a rerun compiles only changed
blocks. Without a PETSc the part says how to install one.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from sciknow.config import Config
from sciknow.index.embed import Embedder
from sciknow.index.store import Filters, Store
from sciknow.ingest.symbols import find_symbols
from sciknow.records import content_hash
from sciknow.serve.answer import ABSTAIN_TEXT
from sciknow.serve.codecheck.blocks import CodeBlock, VerdictCache, check_block, code_blocks
from sciknow.serve.codecheck.check import build_checker
from sciknow.serve.codecheck.petsc import PetscNotFound
from sciknow.serve.docpatch.locate import suggest
from sciknow.serve.docpatch.sources import (
    THREAD_KINDS,
    DraftError,
    thread_posts,
    thread_question,
    thread_title,
)
from sciknow.serve.docpatch.write import answer_units
from sciknow.serve.web.feedback import FILE_NAME
from sciknow.serve.web.feedback_stores import open_feedback

REPORT_FILE = "gaps.json"
REFERENCE = Filters(kinds=("doc", "manpage"), official=True)
PAGES = Filters(kinds=("doc",), official=True)
FAILED_WEIGHT = 2.0  # a down vote or an abstention: someone was left without an answer
EXCERPT_CHARS = 240
EXAMPLES = 3
ANSWERS = 5
TOP_PASSAGES = 5  # official passages whose names count as the docs naming them


@dataclass
class Asked:
    """One question someone asked, where, and who answered it."""

    question: str
    text: str  # what is embedded
    origin: str  # mail | issue | chat | feedback | abstained | file
    doc_id: str = ""
    title: str = ""
    uri: str = ""
    date: str = ""
    answers: list[dict[str, Any]] = field(default_factory=list)
    weight: float = 1.0
    best: float = 0.0


def thread_asks(store: Store, since: str, prefixes: Sequence[str]) -> list[Asked]:
    """One question per unofficial thread, with its replies (maintainers' first) and the
    library names each reply uses."""
    asks = []
    for doc in store.documents(THREAD_KINDS, since):
        posts = thread_posts(doc)
        question, title = thread_question(doc, posts), thread_title(doc)
        text = title if question == title else f"{title}. {question}"
        replies = [p for p in posts[1:] if p.author != posts[0].author and p.body.strip()]
        answers = [
            {
                "title": doc.title,
                "uri": p.url or doc.uri,
                "author": p.author,
                "maintainer": p.maintainer,
                "excerpt": _excerpt(p.body),
                "names": find_symbols(p.body, prefixes),
            }
            for p in sorted(replies, key=lambda p: not p.maintainer)
        ]
        asks.append(
            Asked(question, text, doc.kind, doc.id, doc.title, doc.uri, doc.date or "", answers)
        )
    return asks


def _excerpt(body: str) -> str:
    text = " ".join(u.text for u in answer_units(body) if u.kind != "code")
    return text if len(text) <= EXCERPT_CHARS else text[:EXCERPT_CHARS].rsplit(" ", 1)[0] + " …"


def feedback_asks(config: Config, since: str) -> list[Asked]:
    """Down-voted answers and abstentions from the server's feedback table, where it keeps
    it (`[serve] database_url`, else the SQLite file in the data directory, if any)."""
    url = config.serve.database_url
    if not url and not (config.data_path / FILE_NAME).is_file():
        return []
    moment = datetime.fromisoformat(since) if since else None
    asks = []
    for row in open_feedback(url, config.data_path).rows(since=moment):
        abstained = row["answer"].strip().startswith(ABSTAIN_TEXT[:40])
        if row["vote"] != "down" and not abstained:
            continue
        origin = "abstained" if abstained else "feedback"
        asks.append(
            Asked(
                row["question"], row["question"], origin, date=row["created"], weight=FAILED_WEIGHT
            )
        )
    return asks


def file_asks(path: Path) -> list[Asked]:
    """Questions from a JSONL file (`{"question": ...}` per line; other keys are ignored)."""
    asks = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            question = str(json.loads(line)["question"])
        except (json.JSONDecodeError, KeyError, TypeError):
            raise DraftError(f"{path}:{number}: not a JSON object with a question") from None
        asks.append(Asked(question, question, "file"))
    return asks


def _embed(store: Store, embedder: Embedder, texts: list[str]) -> np.ndarray:
    """Vectors through the index's embedding cache: a re-run embeds only new questions."""
    hashes = [content_hash(text) for text in texts]
    missing = set(store.cache.missing(hashes, embedder.name))
    todo = {h: t for h, t in zip(hashes, texts, strict=True) if h in missing}
    if todo:
        store.cache.put(list(todo), embedder.embed(list(todo.values())), embedder.name)
    return store.cache.get(hashes, embedder.name)


def cluster(vectors: np.ndarray, order: list[int], threshold: float) -> list[list[int]]:
    """Greedy clusters of the rows `order` lists: each joins the first centroid it reaches."""
    members: list[list[int]] = []
    sums = np.zeros((0, vectors.shape[1]), dtype=np.float32)
    for i in order:
        if len(members):
            centroids = sums / np.linalg.norm(sums, axis=1, keepdims=True)
            scores = centroids @ vectors[i]
            best = int(np.argmax(scores))
            if scores[best] >= threshold:
                members[best].append(i)
                sums[best] += vectors[i]
                continue
        members.append([i])
        sums = np.vstack([sums, vectors[i][None, :]])
    return members


def gaps_report(
    config: Config, store: Store, embedder: Embedder, since: str = "", questions: Path | None = None
) -> dict[str, Any]:
    """The ranked gaps (every one, numbered) and the figures of the run; saved for --gap."""
    started = time.perf_counter()
    prefixes = config.profile.symbol_prefixes
    asks = thread_asks(store, since, prefixes) + feedback_asks(config, since)
    asks += file_asks(questions) if questions else []
    settings = config.docpatch
    code = docs_code(config, store)
    if not asks:
        return _save(config, {"gaps": [], "questions": 0, "weak": 0, "seconds": 0.0, "code": code})
    vectors = _embed(store, embedder, [a.text for a in asks])
    hits = store.search_dense_many(vectors, 1, store.allowed_rowids(REFERENCE))
    for ask, found in zip(asks, hits, strict=True):
        ask.best = found[0][1] if found else 0.0
    weak = [i for i, a in enumerate(asks) if a.best < settings.answered_score]
    weak.sort(key=lambda i: -asks[i].weight * (1 - asks[i].best))
    groups = cluster(vectors, weak, settings.cluster_score)
    gaps = [_gap(config, store, asks, vectors, g) for g in groups]
    gaps.sort(key=lambda g: (-g["score"], -g["size"]))
    for number, gap in enumerate(gaps, start=1):
        gap["id"] = number
    seconds = time.perf_counter() - started
    return _save(
        config,
        {
            "gaps": gaps,
            "questions": len(asks),
            "weak": len(weak),
            "seconds": round(seconds, 2),
            "since": since,
            "code": code,
        },
    )


def docs_blocks(config: Config) -> list[tuple[str, str, CodeBlock]]:
    """(source, page path, block) for each C block of the local docs sources' Markdown pages
    (their `exclude` prefixes left out), in path order."""
    found = []
    for source in config.sources:
        root = Path(source.path)
        if source.kind != "docs" or not root.is_dir():
            continue
        for path in sorted(root.rglob("*.md")):
            relpath = path.relative_to(root).as_posix()
            if any(relpath.startswith(prefix) for prefix in source.exclude):
                continue
            text = path.read_text(encoding="utf-8", errors="replace")
            for block in code_blocks(text, config.profile.symbol_prefixes):
                found.append((source.name, relpath, block))
    return found


def docs_code(config: Config, store: Store) -> dict[str, Any]:
    """The docs' C blocks that do not compile against the configured PETSc (see the module
    docstring), with the counts of the check."""
    started = time.perf_counter()
    out: dict[str, Any] = {"petsc": "", "blocks": 0, "skipped": "", "candidates": []}
    if not config.check.gaps_blocks:
        out["skipped"] = "off ([check] gaps_blocks = 0)"
        return out
    blocks = docs_blocks(config)
    out["blocks"] = len(blocks)
    if not blocks:
        out["skipped"] = "no C code blocks in the config's local docs sources"
        return out
    try:
        checker = build_checker(config.check, config.profile, store)
    except PetscNotFound as err:
        out["skipped"] = str(err)
        return out
    out["petsc"] = checker.build.describe()
    counts: Counter[str] = Counter()
    cache = VerdictCache.in_data_dir(config.data_path)
    budget = config.check.gaps_blocks
    try:
        for source, page, block in tqdm(blocks, desc="docs code", unit="block", disable=None):
            if budget == 0 and cache.get(block, out["petsc"]) is None:
                counts["left"] += 1
                continue
            verdict, cached = check_block(checker, block, cache)
            budget -= not cached and verdict.compile_s > 0  # a synopsis costs no compiler
            counts["cached" if cached else "compiled"] += 1
            counts[verdict.status] += 1
            if verdict.status == "error":
                out["candidates"].append(
                    {
                        "source": source,
                        "file": page,
                        "line": block.line,
                        "language": block.language,
                        "error": verdict.diagnostic,
                        "verdict": verdict.verdict,
                    }
                )
    finally:
        cache.close()
    keys = ("compiled", "cached", "left", "compiles", "error", "cannot-wrap")
    out.update({key.replace("-", "_"): counts[key] for key in keys})
    out["seconds"] = round(time.perf_counter() - started, 2)
    return out


def _gap(
    config: Config, store: Store, asks: list[Asked], vectors: np.ndarray, group: list[int]
) -> dict[str, Any]:
    centroid = vectors[group].sum(axis=0)
    centroid /= np.linalg.norm(centroid)
    closeness = {i: float(vectors[i] @ centroid) for i in group}
    ordered = sorted(group, key=lambda i: -closeness[i])
    kinds = Counter(asks[i].origin for i in group)
    top = store.search_dense(centroid, TOP_PASSAGES, store.allowed_rowids(REFERENCE))
    reference = _passage(store, top[:1], config)
    page = _passage(store, store.search_dense(centroid, 1, store.allowed_rowids(PAGES)), config)
    answers = [a for i in ordered for a in asks[i].answers]
    answers.sort(key=lambda a: not a["maintainer"])
    used, in_docs = _coverage(store, answers, top, config.profile.symbol_prefixes)
    coverage = len(in_docs) / len(used) if used else 0.0
    examples = list(dict.fromkeys(asks[i].question for i in ordered))[:EXAMPLES]
    members = [_member(asks[i]) for i in ordered if asks[i].doc_id]
    members.sort(key=lambda m: (not m["maintainer"], not m["answered"]))
    why = [f"asked {len(group)} times ({', '.join(f'{k} {n}' for k, n in kinds.most_common())})"]
    if reference:
        why.append(f"best official passage: {reference['title']} (cosine {reference['score']:.2f})")
    if used:
        why.append(
            f"the closest official passages name {len(in_docs)} of the {len(used)} names the "
            "answers use"
        )
    return {
        "id": 0,
        "size": len(group),
        "score": round(
            sum(asks[i].weight * (1 - asks[i].best) for i in group) * (1 - coverage / 2), 4
        ),
        "answer_names": used,
        "names_in_docs": in_docs,
        "kinds": dict(kinds),
        "questions": examples,
        "best_official": reference,
        "answers": answers[:ANSWERS],
        "target": page["target"] if page else {},
        "members": members,
        "why": why,
    }


def _member(ask: Asked) -> dict[str, Any]:
    return {
        "doc_id": ask.doc_id,
        "title": ask.title,
        "uri": ask.uri,
        "question": ask.question,
        "kind": ask.origin,
        "date": ask.date,
        "answered": bool(ask.answers),
        "maintainer": any(a["maintainer"] for a in ask.answers),
    }


def _coverage(
    store: Store,
    answers: list[dict[str, Any]],
    top: list[tuple[int, float]],
    prefixes: Sequence[str],
) -> tuple[list[str], list[str]]:
    """The names the answers use (maintainers' when any answered) and those of them that the
    closest official passages also name."""
    answering = [a for a in answers if a["maintainer"]] or answers
    used = list(dict.fromkeys(n for a in answering for n in a.get("names", [])))
    texts = "\n".join(e.text for e in store.evidence([rowid for rowid, _ in top]).values())
    named = {n.lower() for n in find_symbols(texts, prefixes)}
    return used, [n for n in used if n.lower() in named]


def _passage(store: Store, hits: list[tuple[int, float]], config: Config) -> dict[str, Any] | None:
    """The first of `hits` as the report shows it, with the target it suggests."""
    if not hits:
        return None
    rowid, score = hits[0]
    evidence = store.evidence([rowid])[rowid]
    evidence.scores = {"dense": score}
    doc = store.document(evidence.doc_id)
    out = {
        "title": evidence.section or evidence.title,
        "uri": evidence.uri,
        "score": round(score, 4),
        "doc_id": evidence.doc_id,
    }
    if doc is not None:
        out["target"] = suggest(evidence, doc, config.docpatch)
    return out


def _save(config: Config, report: dict[str, Any]) -> dict[str, Any]:
    """Write the report next to the index (atomically: a reader never sees half of it)."""
    path = config.data_path / REPORT_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(".partial")
    partial.write_text(json.dumps(report, ensure_ascii=False, indent=1), encoding="utf-8")
    partial.replace(path)
    return report


def load_gap(config: Config, number: int) -> dict[str, Any]:
    """Gap `number` of the last saved report."""
    path = config.data_path / REPORT_FILE
    if not path.is_file():
        raise DraftError(f"no gaps report in {config.data_path}: run `sciknow gaps` first")
    for gap in json.loads(path.read_text(encoding="utf-8"))["gaps"]:
        if gap["id"] == number:
            return gap
    raise DraftError(f"the last gaps report ({path}) has no gap {number}")
