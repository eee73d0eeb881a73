"""How many C code blocks of the PETSc docs compile against the installed PETSc, and how
fast a fragment compiles (docs/design.md, "Checking code").

    python bench/bench_check_code.py [--docs ../shared/corpus/petsc-doc] [--limit N]
        [--json OUT]

Blocks are those `sciknow gaps` checks (`serve/codecheck/blocks.py`): fences tagged C
(or a `{code-block} c`), and untagged fences with a statement that calls a PETSc name.
Each is checked as `sciknow check-code` would (a program as is, else a fragment in the
harness), with no index (types and names from the headers). Failures are grouped by
reason: why a fragment could not be wrapped, or the compiler's first error with names and
numbers blanked. The wrapped blocks that do not compile are what `sciknow gaps` lists as
candidates against this PETSc.
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
import sys
import time
from collections import Counter
from pathlib import Path

from tqdm import tqdm

from sciknow.config import load_config
from sciknow.serve.codecheck.blocks import CodeBlock, code_blocks, verdict_of
from sciknow.serve.codecheck.check import checker_for


def c_blocks(docs: Path, prefixes: list[str]) -> list[tuple[str, str, CodeBlock]]:
    """(page:line, `tagged` or `untagged`, block) for each C block of the Markdown pages,
    found as `sciknow gaps` finds them (serve/codecheck/blocks.py)."""
    found = []
    for path in sorted(docs.rglob("*.md")):
        text = path.read_text(encoding="utf-8", errors="replace")
        for block in code_blocks(text, prefixes):
            where = f"{path.relative_to(docs)}:{block.line}"
            found.append((where, "tagged" if block.tagged else "untagged", block))
    return found


def reason(report) -> str:
    """A failure's group: the wrapping reason or the first error, specifics blanked."""
    if report.cannot_wrap:
        text = report.cannot_wrap
    else:
        first = report.errors()[:1]
        text = first[0].message if first else "the compiler failed"
    text = re.sub(r"`[^`]*`|'[^']*'", "X", text)
    text = re.sub(r"\(line \d+\)|\bon line \d+|\d+", "N", text)
    return re.sub(r"\s*\[-W[^\]]*\]", "", text)[:90]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--docs", default=str(Path(__file__).parents[2] / "shared/corpus/petsc-doc")
    )
    parser.add_argument("--limit", type=int, default=0)
    parser.add_argument("--json", help="write every block's verdict here")
    args = parser.parse_args()
    config = load_config(environ={"SCIKNOW_DATA_DIR": "/nonexistent-sciknow-bench"})
    checker = checker_for(config)
    blocks = c_blocks(Path(args.docs), config.profile.symbol_prefixes)[: args.limit or None]
    checker.check("PetscCall(VecDuplicate(x, &y));\n")  # warm: headers read, compiler cached
    results, times = [], []
    for where, group, block in tqdm(blocks, unit="block", disable=None):
        started = time.perf_counter()
        report = checker.check(block.code, block.language)
        times.append(time.perf_counter() - started)
        results.append((where, group, report, verdict_of(block, report).status))
    print(f"{checker.build.describe()}: {len(blocks)} C blocks")
    for group in ("tagged", "untagged"):
        mine = [r for _, g, r, _ in results if g == group]
        if not mine:
            continue
        compiled = sum(r.compiled for r in mine)
        wrapped = sum(not r.cannot_wrap for r in mine)
        print(f"  {group}: {len(mine)} blocks, {wrapped} wrapped, {compiled} compile")
    candidates = sum(status == "error" for *_, status in results)
    print(f"gaps candidates (wrapped, do not compile): {candidates}")
    failures = Counter(reason(r) for _, _, r, _ in results if not r.compiled)
    print("failures by reason:")
    for text, count in failures.most_common(15):
        print(f"  {count:4d}  {text}")
    fragments = [
        r.compile_s for _, _, r, _ in results if r.kind == "fragment" and not r.cannot_wrap
    ]
    if fragments:
        print(
            "compile time per wrapped fragment (warm): "
            f"median {statistics.median(fragments):.2f} s,"
            f" max {max(fragments):.2f} s; whole check median {statistics.median(times):.2f} s"
        )
    if args.json:
        rows = [{"where": w, "group": g, **r.to_dict()} for w, g, r, _ in results]
        Path(args.json).write_text(json.dumps(rows, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
