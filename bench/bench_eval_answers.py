"""What do the judge-free answer metrics cost next to the answer itself? (run by hand)

    python bench/bench_eval_answers.py REPORT.json [--index DIR] [--repeat 5]

Reads an `answers-<mode>.json` written by `sciknow eval answers` (every answer, its
passages and its answer time), then re-scores each answer with the judge-free metrics
(`eval/answers.py` `score`: names and the name check, citation support, both loop
checks, the generation's figures) `--repeat` times, keeping the fastest. Prints, per
run, the metric time p50/p95 in milliseconds, the answer time p50, and the metric time
as a share of the answer's own time (p50 and the worst answer). Target: under 5%.

`--index` is the sciknow index the run checked names against (default: the
`sciknow-<mode>` folder beside the report's out folder, i.e. `DATA_DIR/eval/`).
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path

from sciknow.config import load_config
from sciknow.eval.answers import score
from sciknow.eval.metrics import percentile
from sciknow.eval.retrieval import load_questions
from sciknow.index.store import Store
from sciknow.serve.names import NameChecker


def fastest(call: Callable[[], object], repeat: int) -> float:
    """The fastest of `repeat` timed calls, in milliseconds."""
    best = float("inf")
    for _ in range(repeat):
        started = time.perf_counter()
        call()
        best = min(best, (time.perf_counter() - started) * 1000)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("report", type=Path)
    parser.add_argument("--index", type=Path, help="the sciknow index the names were checked in")
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    report = json.loads(args.report.read_text(encoding="utf-8"))
    index = args.index or args.report.resolve().parent.parent / f"sciknow-{report['mode']}"
    profile = load_config().profile
    checker = NameChecker.from_store(Store(index), profile)
    questions = {q.id: q for q in load_questions(report["dataset"], profile.symbol_prefixes)}
    print(f"{report['questions']} questions, index {index}, fastest of {args.repeat}")
    print("| run | metrics p50 ms | metrics p95 ms | answer p50 ms | share p50 | share max |")
    print("|---|---|---|---|---|---|")
    for run in report["runs"]:
        costs, shares = [], []
        for row in run["per_question"]:
            question = questions[row["id"]]
            call = partial(score, row, question, checker, profile.symbol_prefixes)
            ms = fastest(call, args.repeat)
            costs.append(ms)
            shares.append(ms / row["total_ms"])
        answer = percentile([r["total_ms"] for r in run["per_question"]], 50)
        print(
            f"| {run['name']} | {percentile(costs, 50):.2f} | {percentile(costs, 95):.2f} | "
            f"{answer:,.0f} | {percentile(shares, 50):.2%} | {max(shares):.2%} |"
        )


if __name__ == "__main__":
    main()
