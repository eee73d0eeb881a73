"""`sciknow verify`: the API-name check over any text or source file.

    sciknow verify (TEXT | --file PATH) [--json]

Every library name of the text (functions, types, enum values, options, in code too)
is looked up in the index (`serve/names.py`); each unknown or removed one is printed
with its line, reason and suggestions. Exit status: 0 when every name is known, 1 when
some is not, 2 on an error (no index, a missing, binary or non-UTF-8 file).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from sciknow.config import Config
from sciknow.errors import SourceError, StoreError


def add_verify_parser(verbs: Any) -> None:
    """Register the `verify` verb on the `sciknow` sub-parsers."""
    parser = verbs.add_parser(
        "verify", help="flag library names in a text or file that the index does not hold"
    )
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("text", nargs="?", help="the text to check")
    source.add_argument("--file", metavar="PATH", help="check this file ('-': standard input)")
    parser.add_argument(
        "--json", action="store_true", help='print [{"name", "line", "reason", "suggestions"}]'
    )
    parser.set_defaults(run=run_verify)


def read_text(path: str) -> str:
    """A file's text; a clear error for a missing, binary or non-UTF-8 file."""
    try:
        data = sys.stdin.buffer.read() if path == "-" else Path(path).read_bytes()
    except OSError as err:
        raise SourceError(f"cannot read {path}: {err.strerror or err}") from None
    if b"\0" in data:
        raise SourceError(f"{path} is a binary file, not text")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as err:
        raise SourceError(f"{path} is not UTF-8 text (byte {err.start})") from None


def describe(issue: dict[str, Any]) -> str:
    """One line per issue: where, why, and what to use instead."""
    suggestions = ", ".join(issue["suggestions"])
    if issue["reason"] == "removed-name":
        hint = f"replaced by {suggestions}" if suggestions else "no replacement named"
    else:
        hint = f"did you mean {suggestions}?" if suggestions else "no close name"
    return f"line {issue['line']}: {issue['name']}: {issue['reason']} ({hint})"


def run_verify(args: argparse.Namespace, config: Config) -> int:
    from sciknow.index.factory import open_store
    from sciknow.serve.names import NameChecker

    text = read_text(args.file) if args.file is not None else args.text
    store = open_store(config)
    if store.generation() == 0:
        raise StoreError(f"the index in {config.data_path} is empty: run `sciknow ingest` first")
    issues = NameChecker.from_store(store, config.profile).check(text)
    found = [
        {key: issue.to_dict()[key] for key in ("name", "line", "reason", "suggestions")}
        for issue in issues
    ]
    if args.json:
        print(json.dumps(found, indent=2, ensure_ascii=False))
    elif found:
        where = f"{args.file}:" if args.file not in (None, "-") else ""
        for issue in found:
            print(f"{where}{describe(issue)}")
    else:
        print("every library name is in the index")
    return 1 if found else 0
