"""The `sciknow` command line: `sciknow [--data-dir DIR] [--config FILE] [-v] VERB ...`.

Each verb is a module of `ui/` (`ui/ingest.py`, `ui/ask.py`, ...) with an `add_*_parser`
that registers it and a function taking the parsed arguments and the loaded config;
heavy imports (torch, FAISS) happen inside those functions so `sciknow --help` stays
instant. Here: the global options, and how a failed verb is reported.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import traceback
from collections.abc import Callable

from sciknow.config import Config, load_config
from sciknow.errors import SciknowError
from sciknow.eval.cli import add_eval_parser
from sciknow.ui.ask import add_ask_parser
from sciknow.ui.attribute import add_attribute_parser
from sciknow.ui.check_code import add_check_code_parser
from sciknow.ui.discordbot.bot import add_discord_parser
from sciknow.ui.feedback import add_feedback_parser
from sciknow.ui.index_copy import add_index_parser
from sciknow.ui.ingest import add_ingest_parser
from sciknow.ui.mcp_server import add_mcp_parser
from sciknow.ui.patch import add_patch_parser
from sciknow.ui.search import add_search_parser
from sciknow.ui.server import add_serve_parser
from sciknow.ui.stats import add_stats_parser
from sciknow.ui.tune import add_tune_parser
from sciknow.ui.verify import add_verify_parser


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="sciknow", description="Knowledge assistant for scientific software."
    )
    parser.add_argument("--data-dir", help="index directory (default: data_dir in the config)")
    parser.add_argument("--config", help="config file (default: ./sciknow.toml if present)")
    parser.add_argument("-v", "--verbose", action="store_true", help="log more")
    verbs = parser.add_subparsers(dest="verb", required=True, metavar="VERB")

    add_ingest_parser(verbs)
    add_search_parser(verbs)
    add_ask_parser(verbs)
    add_serve_parser(verbs)
    add_stats_parser(verbs)
    add_attribute_parser(verbs)
    add_feedback_parser(verbs)
    add_discord_parser(verbs)
    add_verify_parser(verbs)
    add_check_code_parser(verbs)
    add_eval_parser(verbs)
    add_mcp_parser(verbs)
    add_patch_parser(verbs)
    add_tune_parser(verbs)
    add_index_parser(verbs)
    return parser


def report_error(err: Exception, verbose: bool) -> int:
    """Print a failed verb's error: a `SciknowError` (the store's `StorageError` is one)
    explains itself in one line (exit status 2); any other is a bug here or a fault in a
    library underneath, so its traceback is what helps: printed with -v, and a line
    saying so without it (exit status 1)."""
    if isinstance(err, SciknowError):
        print(f"sciknow: error: {err}", file=sys.stderr)
        return 2
    if verbose:
        traceback.print_exception(err, file=sys.stderr)
    else:
        print(
            f"sciknow: unexpected {type(err).__name__}: {err} "
            "(rerun with -v for the traceback, and report it if it looks like a bug)",
            file=sys.stderr,
        )
    return 1


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
    )
    # bm25s sets its logger to DEBUG when first imported (later, inside the store), which
    # would undo a level set here; a filter stays.
    logging.getLogger("bm25s").addFilter(lambda record: record.levelno >= logging.WARNING)
    if not args.verbose:  # skips are summarized at the end instead
        logging.getLogger("sciknow").setLevel(logging.ERROR)
    environ = dict(os.environ)
    if args.data_dir:
        environ["SCIKNOW_DATA_DIR"] = args.data_dir
    run: Callable[[argparse.Namespace, Config], int] = args.run
    try:
        return run(args, load_config(args.config, environ))
    except Exception as err:
        return report_error(err, args.verbose)
    except KeyboardInterrupt:
        print("sciknow: interrupted; the index keeps its last committed state", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
