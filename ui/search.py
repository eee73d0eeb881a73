"""`sciknow search`: the ranked passages for a question, and the filters `ask` shares.

sciknow search QUESTION [-k K] [--kind KIND] [--source NAME] [--official yes|no] [--json]
"""

from __future__ import annotations

import argparse
import json
from typing import Any

from sciknow.config import Config


def add_filters(parser: argparse.ArgumentParser) -> None:
    """The options that narrow retrieval, for every verb that retrieves."""
    parser.add_argument("--kind", action="append", help="only this document kind (repeatable)")
    parser.add_argument("--source", action="append", help="only this source (repeatable)")
    parser.add_argument("--official", choices=["yes", "no"], help="only (un)official documents")


def parse_filters(args: argparse.Namespace) -> Any:
    """The `Filters` the options of `add_filters` ask for."""
    from sciknow.index.store import Filters

    official = {"yes": True, "no": False, None: None}[args.official]
    return Filters(tuple(args.kind or ()), tuple(args.source or ()), official)


def add_search_parser(verbs: Any) -> None:
    """Register the `search` verb on the `sciknow` sub-parsers."""
    parser = verbs.add_parser("search", help="print ranked passages for a question")
    parser.add_argument("question")
    parser.add_argument("-k", type=int, default=None, help="how many passages (default 8)")
    add_filters(parser)
    parser.add_argument("--json", action="store_true", help="print JSON")
    parser.set_defaults(run=run_search)


def run_search(args: argparse.Namespace, config: Config) -> int:
    from sciknow.serve.factory import build_retriever

    retriever = build_retriever(config)
    results = retriever.search(args.question, args.k, parse_filters(args))
    if args.json:
        print(json.dumps([e.to_dict() for e in results], indent=2, ensure_ascii=False))
        return 0
    if not results:
        print("no passages found")
    for n, evidence in enumerate(results, start=1):
        print(f"[{n}] {evidence.title}  ({evidence.kind}, score {evidence.score:.4f})")
        print(f"    {evidence.uri}")
        snippet = " ".join(evidence.text.split())[:300]
        print(f"    {snippet}\n")
    return 0
