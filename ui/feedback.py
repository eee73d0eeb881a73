"""`sciknow feedback export`: the stored votes as JSONL or CSV.

    sciknow feedback export [--format jsonl|csv] [--since DATE] [--vote up|down] [--out FILE]

The JSONL is a question set that `sciknow eval retrieval --dataset` reads (see
`eval.retrieval.reference_answer`): `question` is the question as retrieval saw it (a
follow-up joined to the question before it), `answer` the answer voted on, which is the
reference only when voted up (`case: "confirmed"`). A down vote is a regression case
(`case: "regression"`): its reference names are the library names in the voter's comment
(`symbols`), since the answer given was judged wrong; without any it counts for timing
and the passages listed. Every stored field rides along for other tools.

The votes are read where `sciknow serve` writes them (`serve/web/feedback_stores.py`):
`<data_dir>/feedback.sqlite`, or with `[serve] database_url` the PostgreSQL database all
replicas share, so one export holds the votes of every replica.
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
from datetime import datetime
from pathlib import Path
from typing import Any, TextIO

from sciknow.config import Config, ConfigError
from sciknow.ingest.symbols import find_symbols
from sciknow.serve.answer import standalone_question
from sciknow.serve.web.feedback import FILE_NAME, VOTES
from sciknow.serve.web.feedback_stores import open_feedback

FORMATS = ("jsonl", "csv")
CSV_COLUMNS = (
    "id", "created", "client", "vote", "comment", "question", "answer", "backend", "model",
    "citations", "flags", "history", "settings", "pipeline",
)  # fmt: skip


def add_feedback_parser(verbs: Any) -> None:
    """Register `sciknow feedback export` on the `sciknow` sub-parsers."""
    feedback = verbs.add_parser("feedback", help="answer votes from the chat, bot and API")
    actions = feedback.add_subparsers(dest="feedback_action", required=True, metavar="ACTION")
    export = actions.add_parser(
        "export", help="write the votes as JSONL (an eval question set) or CSV"
    )
    export.add_argument("--format", choices=FORMATS, default="jsonl")
    export.add_argument(
        "--since", type=_since, help="only votes from this date or time on (ISO 8601, UTC)"
    )
    export.add_argument("--vote", choices=VOTES, help="only up or only down votes")
    export.add_argument("--out", help="file to write (default: standard output)")
    export.set_defaults(run=run_export)


def _since(text: str) -> datetime:
    try:
        return datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"--since wants a date like 2025-01-31 or 2025-01-31T12:00, not {text!r}"
        ) from None


def eval_record(row: dict[str, Any], prefixes: list[str]) -> dict[str, Any]:
    """One stored vote as a line of an evaluation question set (see the module docstring)."""
    regression = row["vote"] == "down"
    record = {
        "id": f"feedback-{row['id']}",
        "question": standalone_question(row["question"], row["history"]),
        "asked": row["question"],
        "case": "regression" if regression else "confirmed",
        **{k: v for k, v in row.items() if k not in ("id", "question")},
    }
    if regression:
        record["symbols"] = find_symbols(row["comment"], prefixes)
    return record


def write_jsonl(rows: list[dict[str, Any]], out: TextIO, prefixes: list[str]) -> None:
    for row in rows:
        out.write(json.dumps(eval_record(row, prefixes), ensure_ascii=False) + "\n")


def write_csv(rows: list[dict[str, Any]], out: TextIO, prefixes: list[str]) -> None:
    writer = csv.DictWriter(out, fieldnames=CSV_COLUMNS)
    writer.writeheader()
    for row in rows:
        writer.writerow(
            {
                column: json.dumps(row[column], ensure_ascii=False)
                if isinstance(row[column], list | dict)
                else row[column]
                for column in CSV_COLUMNS
            }
        )


def run_export(args: argparse.Namespace, config: Config) -> int:
    url, path = config.serve.database_url, config.data_path / FILE_NAME
    if not url and not path.is_file():
        raise ConfigError(f"no feedback yet: {path} does not exist")
    rows = open_feedback(url, config.data_path).rows(since=args.since, vote=args.vote)
    write = write_jsonl if args.format == "jsonl" else write_csv
    prefixes = config.profile.symbol_prefixes
    if args.out:
        with Path(args.out).open("w", encoding="utf-8", newline="") as out:
            write(rows, out, prefixes)
        print(f"wrote {len(rows)} votes to {args.out}", file=sys.stderr)
    else:
        write(rows, sys.stdout, prefixes)
    return 0
