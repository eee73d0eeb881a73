"""How fast is the API-name check on a whole-repository-sized index? (run by hand)

    python bench/bench_names.py [--names 100000] [--rows-per-name 13] [--repeat 50]

Writes a synthetic index (SQLite only: documents, chunks and a symbol table of `--names`
distinct PETSc-like names, `--rows-per-name` mentions each on average, like the 1.3 M
rows of a whole PETSc tree) into a temporary folder, then times:
- the first `NameChecker.from_store` (reading the names and the release notes), and a
  cached one;
- the suggestion index, built the first time a name is unknown;
- `check` on a ~400-token answer (prose, a code block, options) whose names all exist,
  and on the same answer with three unknown names that were never seen before (so no
  cached suggestion helps): median and 95th percentile over `--repeat` answers.
"""

from __future__ import annotations

import argparse
import itertools
import random
import statistics
import tempfile
import time

from sciknow.config import Profile
from sciknow.index.store import Store
from sciknow.serve.names import NameChecker

VERBS = "Set Get Create Destroy View Solve Apply Compute Register Reset Load Restore Use".split()
NOUNS = (
    "Tolerances Type Operators Options Monitor Residual Norm Matrix Vector Section Field "
    "Coloring Preallocation Values Block Size Local Global Ghost Array Layout Partition "
    "Jacobian Function Solution Step Time Adapt Event Label Stratum Point Cone Support "
    "Closure Face Cell Vertex Quadrature Basis Space Discretization Level Coarse Fine "
    "Interpolation Restriction Smoother Shell Context Communicator Viewer Draw Info Log"
).split()
SUFFIXES = ["", "", "", "_Private", "_Internal", "_SeqAIJ", "_MPIAIJ", "_CUDA", "_Kokkos", "F90"]
PREFIXES = Profile().symbol_prefixes


def synthetic_names(count: int, rng: random.Random) -> list[str]:
    """PETSc-like function names, enum values and options, distinct."""
    names: dict[str, None] = {}
    combos = itertools.product(PREFIXES, VERBS, NOUNS, NOUNS, SUFFIXES)
    pool = list(itertools.islice(combos, count * 3))
    rng.shuffle(pool)
    for prefix, verb, first, second, suffix in pool:
        if len(names) >= count * 0.85:
            break
        names.setdefault(f"{prefix}{verb}{first}{'' if first == second else second}{suffix}")
    while len(names) < count * 0.95:
        parts = rng.sample(NOUNS, 2)
        names.setdefault(f"{rng.choice(PREFIXES).upper()}_{'_'.join(p.upper() for p in parts)}")
    names.update(dict.fromkeys(["PetscCall", "PETSC_DETERMINE"]))  # the answers' code uses them
    while len(names) < count:
        parts = rng.sample(NOUNS, rng.choice([2, 3]))
        names.setdefault(f"-{rng.choice(PREFIXES).lower()}_{'_'.join(p.lower() for p in parts)}")
    return list(names)


def write_index(root: str, names: list[str], rows_per_name: int, rng: random.Random) -> Store:
    """A Store whose SQLite holds one changelog document and chunks naming `names`."""
    store = Store(root)
    conn = store.conn
    conn.execute("BEGIN")
    doc_row = "INSERT INTO documents VALUES (?, 's', ?, ?, '', ?, 1, NULL, NULL, NULL, NULL, NULL, '[]', '{}', '', ?)"  # noqa: E501
    notes = "- Removed `KSPSetInitialGuessKnoll()`\n- `MatGetSubMatrix()` renamed to `MatCreateSubMatrix()`\n"  # noqa: E501
    conn.execute(doc_row, ("changes", "changes.md", "changelog", "Changes", notes))
    conn.execute(doc_row, ("code", "code.c", "code", "Code", ""))
    per_chunk = 10
    chunks = max(1, len(names) * rows_per_name // per_chunk)
    rows = []
    for rowid in range(1, chunks + 1):
        conn.execute(
            "INSERT INTO chunks (rowid, id, doc_id, text, symbols, content_hash, terms) "
            "VALUES (?, ?, 'code', '', '[]', '', '')",
            (rowid, f"c{rowid}"),
        )
        for name in rng.sample(names, per_chunk):
            rows.append((name, name.lower(), rowid, int(rng.random() < 0.05)))
    for name in names:  # every name at least once
        rows.append((name, name.lower(), rng.randint(1, chunks), 0))
    conn.executemany("INSERT INTO symbols VALUES (?, ?, ?, ?)", rows)
    conn.execute("INSERT OR REPLACE INTO meta VALUES ('generation', '1')")
    conn.execute("COMMIT")
    print(f"index: {len(names):,} distinct names, {len(rows):,} symbol rows, {chunks:,} chunks")
    return store


def answer_text(names: list[str], rng: random.Random, unknown: list[str]) -> str:
    """~400 tokens: prose naming functions and options, a code block, three unknown names."""
    functions = [n for n in names if not n.startswith("-")]
    options = [n for n in names if n.startswith("-")]
    pick = rng.sample(functions, 12) + unknown
    rng.shuffle(pick)
    prose = " ".join(
        f"To configure the solver, call {name}() after creating the object; it takes the "
        f"context and the values, and the option {rng.choice(options)} sets it at run time."
        for name in pick[:7]
    )
    code = "\n".join(f"  PetscCall({name}(obj, 1.0e-8, PETSC_DETERMINE));" for name in pick[7:])
    return f"{prose}\n\n```c\nint main(void)\n{{\n{code}\n}}\n```\n"


def timed(function, *args):
    started = time.perf_counter()
    result = function(*args)
    return result, (time.perf_counter() - started) * 1000


def percentile(values: list[float], q: float) -> float:
    return sorted(values)[min(len(values) - 1, int(q * len(values)))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--names", type=int, default=100_000)
    parser.add_argument("--rows-per-name", type=int, default=13)
    parser.add_argument("--repeat", type=int, default=50)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    rng = random.Random(args.seed)
    names = synthetic_names(args.names, rng)
    with tempfile.TemporaryDirectory() as root:
        store = write_index(root, names, args.rows_per_name, rng)
        profile = Profile()
        checker, load_ms = timed(NameChecker.from_store, store, profile)
        _, cached_ms = timed(NameChecker.from_store, store, profile)
        _, file_ms = timed(NameChecker._load, store, profile)  # a new process: names.json
        _, index_ms = timed(checker._suggestions_index)
        print(
            f"load: from SQLite {load_ms:.0f} ms, from names.json {file_ms:.0f} ms, "
            f"cached in memory {cached_ms:.2f} ms"
        )
        print(f"suggestion index (first unknown name): {index_ms:.0f} ms")
        known_ms, unknown_ms, flagged = [], [], []
        for i in range(args.repeat):
            invented = [f"KSPSetTolerence{i}x", f"MatCreateVecsFast{i}", f"-ksp_rtoll{i}_x"]
            clean = answer_text(names, rng, [])
            dirty = answer_text(names, rng, invented)
            _, ms = timed(checker.check, clean)
            known_ms.append(ms)
            issues, ms = timed(checker.check, dirty)
            unknown_ms.append(ms)
            flagged.append(len({issue.name for issue in issues}))
        words = len(dirty.split())
        print(f"answer: ~{len(dirty) // 4} tokens ({words} words, {len(dirty)} characters)")
        for label, values in (("all names known", known_ms), ("3 new unknown", unknown_ms)):
            print(
                f"check, {label}: median {statistics.median(values):.2f} ms, "
                f"p95 {percentile(values, 0.95):.2f} ms"
            )
        print(f"unknown names flagged per answer: {statistics.mean(flagged):.2f} (3 planted)")


if __name__ == "__main__":
    main()
