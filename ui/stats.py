"""`sciknow stats`: what the index holds.

sciknow stats [--json]
"""

from __future__ import annotations

import argparse
import json
from typing import Any

from sciknow.config import Config


def add_stats_parser(verbs: Any) -> None:
    """Register the `stats` verb on the `sciknow` sub-parsers."""
    parser = verbs.add_parser("stats", help="what the index holds")
    parser.add_argument("--json", action="store_true")
    parser.set_defaults(run=run_stats)


def run_stats(args: argparse.Namespace, config: Config) -> int:
    from sciknow.index.factory import open_store

    stats = open_store(config).stats()
    if args.json:
        print(json.dumps(stats, indent=2))
        return 0
    for key, value in stats.items():
        print(f"{key:>20}: {value}")
    return 0
