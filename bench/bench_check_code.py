"""How many C code blocks of the PETSc docs compile against the installed PETSc, and how
fast a fragment compiles (README, "Checking code").

    python bench/bench_check_code.py [--docs ../shared/corpus/petsc-doc] [--limit N]
        [--json OUT]

Blocks: fences tagged `c`/`C`/`c++` (or a `{code-block}` of those), and untagged fences
whose text looks like C (a `;`, a call and a PETSc name, no shell prompt). Each is checked
as `sciknow check-code` would (a program as is, else a fragment in the harness), with no
index (types and names from the headers). Failures are grouped by reason: why a fragment
could not be wrapped, or the compiler's first error with names and numbers blanked.
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

from sciknow.config import load_config
from sciknow.serve.codecheck.check import checker_for

FENCE_RE = re.compile(r"^(\s*)(`{3,}|~{3,})\s*(.*)$")
C_TAGS = {"c", "c++", "cpp", "{code-block} c", "{code-block} c++", "{code} c"}
LOOKS_LIKE_C = re.compile(r"\b(?:Petsc|KSP|SNES|TS|Vec|Mat|PC|DM)\w*\s*\(")


def code_blocks(path: Path) -> list[tuple[str, int, str]]:
    """(tag, first line, text) of each fenced block of a Markdown file."""
    blocks, lines, i = [], path.read_text(encoding="utf-8").splitlines(), 0
    while i < len(lines):
        match = FENCE_RE.match(lines[i])
        if not match:
            i += 1
            continue
        fence, tag, body = match.group(2), match.group(3).strip(), []
        i += 1
        while i < len(lines) and not lines[i].strip().startswith(fence):
            body.append(lines[i])
            i += 1
        text = "\n".join(line for line in body if not line.lstrip().startswith(":"))
        blocks.append((tag.lower(), i - len(body), text + "\n"))
        i += 1
    return blocks


def c_blocks(docs: Path) -> list[tuple[str, str, str]]:
    """(where, group, text): `tagged` C blocks and `untagged` ones that look like C."""
    found = []
    for path in sorted(docs.rglob("*.md")):
        for tag, line, text in code_blocks(path):
            where = f"{path.relative_to(docs)}:{line}"
            if tag in C_TAGS:
                found.append((where, "tagged", text))
            elif not tag and ";" in text and LOOKS_LIKE_C.search(text) and "$ " not in text:
                found.append((where, "untagged", text))
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
    blocks = c_blocks(Path(args.docs))[: args.limit or None]
    checker.check("PetscCall(VecDuplicate(x, &y));\n")  # warm: headers read, compiler cached
    results, times = [], []
    for where, group, text in blocks:
        started = time.perf_counter()
        report = checker.check(text, "c++" if "++" in where else "c")
        times.append(time.perf_counter() - started)
        results.append((where, group, report))
    print(f"{checker.build.describe()}: {len(blocks)} C blocks")
    for group in ("tagged", "untagged"):
        mine = [r for _, g, r in results if g == group]
        if not mine:
            continue
        compiled = sum(r.compiled for r in mine)
        wrapped = sum(not r.cannot_wrap for r in mine)
        print(f"  {group}: {len(mine)} blocks, {wrapped} wrapped, {compiled} compile")
    failures = Counter(reason(r) for _, _, r in results if not r.compiled)
    print("failures by reason:")
    for text, count in failures.most_common(15):
        print(f"  {count:4d}  {text}")
    fragments = [r.compile_s for _, _, r in results if r.kind == "fragment" and not r.cannot_wrap]
    if fragments:
        print(
            "compile time per wrapped fragment (warm): "
            f"median {statistics.median(fragments):.2f} s,"
            f" max {max(fragments):.2f} s; whole check median {statistics.median(times):.2f} s"
        )
    if args.json:
        rows = [{"where": w, "group": g, **r.to_dict()} for w, g, r in results]
        Path(args.json).write_text(json.dumps(rows, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
