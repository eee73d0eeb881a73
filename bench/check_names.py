"""Does the API-name check catch wrong PETSc names, and leave real ones alone? (run by hand)

    python bench/check_names.py [--data-dir DIR] [--seed 0] [--out FILE.json]

Over the FAQ reference answers of `../shared/eval/faq_dev.jsonl` and the index in DIR:

- *Caught*: every distinct PETSc name of a reference answer (functions, types, enum
  values, options) is perturbed three ways — a letter dropped, two adjacent letters
  swapped, a plausible invented name (a word such as `Relative` inserted, the last word
  replaced, a middle word dropped; for options the same on `_` parts) — skipping
  variants the index holds. Each variant replaces the name's first occurrence in its
  answer, the whole answer is checked, and the variant is caught when an issue starts
  where it stands. For dropped and swapped letters, the report also says how often the
  real name is the first suggestion, or among the three.
- *False alarms*: the unmodified reference answers are checked; every issue is a false
  alarm (the references are the truth), counted per distinct name per answer.

Settings: the index as it is (it holds the FAQ, so every reference name is in it); the
FAQ held out (a copy of the index without the `faq/` documents): there a name that only
the FAQ mentions is unknown, so the false alarms measure the index's coverage; and with
`--repo PATH` (a PETSc checkout), the FAQ held out plus the names of the source tree's
documents (man pages, functions, examples; `doc/` left out), parsed by the same
`GitSource` as `sciknow ingest` but not embedded — the symbol table a whole-repository
index would have, without its hour of ingest.
"""

from __future__ import annotations

import argparse
import json
import logging
import random
import re
import sqlite3
import tempfile
import time
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

from sciknow.config import Profile, load_config
from sciknow.index.chunking import defined_symbol
from sciknow.index.store import Store
from sciknow.ingest.gitsrc import GitSource
from sciknow.ingest.symbols import symbol_spans
from sciknow.serve.names import NameChecker

DATASET = Path(__file__).resolve().parents[2] / "shared" / "eval" / "faq_dev.jsonl"
WORDS = ["Relative", "Default", "Global", "Local", "Max", "Initial", "All", "Block", "Fast"]
OPTION_WORDS = ["max", "use", "default", "relative", "type", "tolerance", "view", "all"]
_CHUNK_RE = re.compile(r"[A-Z]+(?=[A-Z][a-z])|[A-Z]?[a-z0-9]+|[A-Z]+|_")


def drop_letter(name: str, rng: random.Random) -> str:
    positions = [i for i, c in enumerate(name) if c.isalnum()]
    i = rng.choice(positions)
    return name[:i] + name[i + 1 :]


def swap_letters(name: str, rng: random.Random) -> str:
    pairs = [i for i in range(len(name) - 1) if name[i] != name[i + 1] and name[i] != "-"]
    i = rng.choice(pairs)
    return name[:i] + name[i + 1] + name[i] + name[i + 2 :]


def invent(name: str, rng: random.Random) -> str:
    """A plausible name that is not this one: a word inserted, replaced or dropped."""
    if name.startswith("-"):
        parts = name[1:].split("_")
        choice = rng.randrange(3 if len(parts) > 2 else 2)
        if choice == 0:
            parts.insert(rng.randint(1, len(parts)), rng.choice(OPTION_WORDS))
        elif choice == 1:
            parts[-1] = rng.choice([w for w in OPTION_WORDS if w != parts[-1]])
        else:
            del parts[rng.randint(1, len(parts) - 2)]
        return "-" + "_".join(parts)
    chunks = _CHUNK_RE.findall(name)
    upper = name.isupper()
    words = [w.upper() for w in WORDS] if upper else WORDS
    joiner = "_" if upper and "_" in name else ""
    chunks = [c for c in chunks if c != "_"] if joiner else chunks
    choice = rng.randrange(3 if len(chunks) > 2 else 2 if len(chunks) > 1 else 1)
    if choice == 0:
        chunks.insert(rng.randint(1, len(chunks)), rng.choice(words))
    elif choice == 1:
        chunks[-1] = rng.choice([w for w in words if w != chunks[-1]])
    else:
        del chunks[rng.randint(1, len(chunks) - 2)]
    return joiner.join(chunks)


PERTURB = {"drop": drop_letter, "swap": swap_letters, "invent": invent}


def repository_names(repo: str, profile: Profile) -> tuple[set[str], set[str]]:
    """Every symbol of a source tree's documents (`doc/` left out), and the defined ones."""
    names: set[str] = set()
    defined: set[str] = set()
    with tempfile.TemporaryDirectory() as clones:
        source = GitSource("repo", repo, profile, Path(clones), exclude=["doc/"])
        for doc in source.iter_documents(None):
            names.update(doc.symbols)
            if name := defined_symbol(doc):
                defined.add(name)
    return names, defined


def with_names(checker: NameChecker, names: set[str], defined: set[str]) -> NameChecker:
    """`checker` with more names known (a removed name found among them is no longer)."""
    removed = {old: new for old, new in checker.removed.items() if old not in names}
    return NameChecker(
        checker.known | names, checker.prefixes, removed, checker.ignore, checker.defined | defined
    )


def held_out_store(data_dir: Path, scratch: Path) -> Store:
    """A copy of the index without the FAQ documents (their chunks and symbols cascade)."""
    source = sqlite3.connect(data_dir / "index.sqlite")
    target = sqlite3.connect(scratch / "index.sqlite")
    source.backup(target)
    source.close()
    target.execute("PRAGMA foreign_keys=ON")
    target.execute("DELETE FROM documents WHERE origin LIKE 'faq/%'")
    target.commit()
    target.close()
    return Store(scratch)


def false_alarms(checker: NameChecker, answers: list[str]) -> tuple[int, int, Counter]:
    """(flagged, total) distinct names per answer, and the flagged names."""
    total, flagged, names = 0, 0, Counter()
    for text in answers:
        real = {name for name, _, _ in symbol_spans(text, checker.prefixes)}
        issues = {issue.name for issue in checker.check(text)}
        total += len(real | issues)
        flagged += len(issues)
        names.update(issues)
    return flagged, total, names


def catch_rate(checker: NameChecker, answers: list[str], seed: int) -> dict[str, Any]:
    """Variants per kind of perturbation: how many were caught, how well suggested."""
    rng = random.Random(seed)
    stats: dict[str, Counter] = defaultdict(Counter)
    missed: dict[str, list[str]] = defaultdict(list)
    for text in answers:
        first: dict[str, int] = {}
        for name, start, _ in sorted(symbol_spans(text, checker.prefixes), key=lambda s: s[1]):
            first.setdefault(name, start)
        for name, start in first.items():
            for kind, perturb in PERTURB.items():
                try:
                    variant = perturb(name, rng)
                except (IndexError, ValueError):  # too short to perturb this way
                    continue
                if variant == name or variant in checker.known or len(variant) < 4:
                    stats[kind]["skipped (exists or too short)"] += 1
                    continue
                changed = text[:start] + variant + text[start + len(name) :]
                hit = [i for i in checker.check(changed) if i.start == start]
                stats[kind]["variants"] += 1
                if not hit:
                    missed[kind].append(f"{name} -> {variant}")
                    continue
                stats[kind]["caught"] += 1
                stats[kind]["top1"] += hit[0].suggestions[:1] == [name]
                stats[kind]["top3"] += name in hit[0].suggestions
    return {"stats": stats, "missed": missed}


def report(label: str, checker: NameChecker, answers: list[str], seed: int) -> dict[str, Any]:
    flagged, total, names = false_alarms(checker, answers)
    caught = catch_rate(checker, answers, seed)
    print(f"\n## {label}: {len(checker.known):,} names in the index")
    print("| variants | n | caught | real name 1st suggestion | in top 3 |")
    print("|---|---|---|---|---|")
    totals = Counter()
    for kind, stats in caught["stats"].items():
        totals.update(stats)
        print(_row(kind, stats))
    print(_row("all", totals))
    share = flagged / total if total else 0.0
    print(f"false alarms: {flagged} of {total} distinct names per answer ({share:.1%})")
    if names:
        print("  flagged real names: " + ", ".join(f"{n} ({c})" for n, c in names.most_common()))
    for kind, lines in caught["missed"].items():
        print(f"  missed ({kind}): " + "; ".join(lines[:15]) + (" ..." if len(lines) > 15 else ""))
    return {
        "label": label,
        "known": len(checker.known),
        "false_alarms": {"flagged": flagged, "total": total, "names": dict(names)},
        "caught": {k: dict(v) for k, v in caught["stats"].items()},
        "missed": caught["missed"],
    }


def _row(kind: str, stats: Counter) -> str:
    n, hit = stats["variants"], stats["caught"]
    pct = lambda k: f"{stats[k] / n:.1%}" if n else "–"  # noqa: E731
    return f"| {kind} | {n} | {hit} ({pct('caught')}) | {pct('top1')} | {pct('top3')} |"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", help="the index (default: data_dir of the config)")
    parser.add_argument("--dataset", default=str(DATASET))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--repo", help="a PETSc checkout: add its names to the held-out index")
    parser.add_argument("--out", help="also write the figures as JSON here")
    args = parser.parse_args()
    logging.getLogger("sciknow").setLevel(logging.ERROR)  # the source tree's skipped files
    environ = {"SCIKNOW_DATA_DIR": args.data_dir} if args.data_dir else None
    config = load_config(environ=environ)
    lines = Path(args.dataset).read_text(encoding="utf-8").splitlines()
    answers = [json.loads(line)["answer"] for line in lines if line.strip()]
    results = []
    store = Store(config.data_path)
    results.append(
        report("FAQ indexed", NameChecker.from_store(store, config.profile), answers, args.seed)
    )
    with tempfile.TemporaryDirectory() as scratch:
        held_out = held_out_store(config.data_path, Path(scratch))
        checker = NameChecker.from_store(held_out, config.profile)
        results.append(report("faq/ held out", checker, answers, args.seed))
        if args.repo:
            started = time.perf_counter()
            names, defined = repository_names(args.repo, config.profile)
            seconds = time.perf_counter() - started
            print(f"\n({len(names):,} names from {args.repo} in {seconds:.0f} s)")
            checker = with_names(checker, names, defined)
            results.append(report("faq/ held out + repository", checker, answers, args.seed))
    if args.out:
        Path(args.out).write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
