"""The `sciknow` command line: `sciknow [--data-dir DIR] [--config FILE] [-v] VERB ...`.

Each verb is a small function taking the parsed arguments and the loaded
config; heavy imports (torch, FAISS) happen inside them so `sciknow --help`
stays instant.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from collections.abc import Callable
from typing import Any

from sciknow.config import Config, ConfigError, load_config

log = logging.getLogger("sciknow")


def _ingest(args: argparse.Namespace, config: Config) -> int:
    from sciknow.index.factory import load_embedder, make_chunker, open_store
    from sciknow.index.pipeline import ingest
    from sciknow.ingest.registry import make_source, source_for_location

    specs = [source_for_location(loc, config) for loc in args.locations] or config.sources
    if not specs:
        raise ConfigError(
            "nothing to ingest: pass a path or URL (sciknow ingest ../petsc) "
            "or add [[sources]] to sciknow.toml"
        )
    sources = [make_source(spec, config) for spec in specs]
    report = ingest(open_store(config), sources, load_embedder(config), make_chunker(config))
    print(report.summary())
    if args.verbose or len(report.skipped) <= 20:
        for skip in report.skipped:
            print(f"  skipped {skip.where}: {skip.reason}")
    else:
        print(f"  ({len(report.skipped)} skipped files; -v lists them)")
    return 0


def _parse_filters(args: argparse.Namespace) -> Any:
    from sciknow.index.store import Filters

    official = {"yes": True, "no": False, None: None}[args.official]
    return Filters(tuple(args.kind or ()), tuple(args.source or ()), official)


def _search(args: argparse.Namespace, config: Config) -> int:
    from sciknow.index.factory import load_embedder, open_store
    from sciknow.rerank.hybrid import HybridRetriever

    store = open_store(config)
    if store.generation() == 0:
        raise ConfigError(f"the index in {config.data_path} is empty: run `sciknow ingest` first")
    retriever = HybridRetriever(store, load_embedder(config), config.retrieval, config.profile)
    results = retriever.search(args.question, args.k, _parse_filters(args))
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


def _stats(args: argparse.Namespace, config: Config) -> int:
    from sciknow.index.factory import open_store

    stats = open_store(config).stats()
    if args.json:
        print(json.dumps(stats, indent=2))
        return 0
    for key, value in stats.items():
        print(f"{key:>20}: {value}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="sciknow", description="Knowledge assistant for scientific software."
    )
    parser.add_argument("--data-dir", help="index directory (default: data_dir in the config)")
    parser.add_argument("--config", help="config file (default: ./sciknow.toml if present)")
    parser.add_argument("-v", "--verbose", action="store_true", help="log more")
    verbs = parser.add_subparsers(dest="verb", required=True, metavar="VERB")

    ingest = verbs.add_parser("ingest", help="ingest paths/URLs, or the configured sources")
    ingest.add_argument("locations", nargs="*", metavar="PATH_OR_URL")
    ingest.set_defaults(run=_ingest)

    search = verbs.add_parser("search", help="print ranked passages for a question")
    search.add_argument("question")
    search.add_argument("-k", type=int, default=None, help="how many passages (default 8)")
    search.add_argument("--kind", action="append", help="only this document kind (repeatable)")
    search.add_argument("--source", action="append", help="only this source (repeatable)")
    search.add_argument("--official", choices=["yes", "no"], help="only (un)official documents")
    search.add_argument("--json", action="store_true", help="print JSON")
    search.set_defaults(run=_search)

    stats = verbs.add_parser("stats", help="what the index holds")
    stats.add_argument("--json", action="store_true")
    stats.set_defaults(run=_stats)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
    )
    if not args.verbose:
        logging.getLogger("sciknow").setLevel(logging.ERROR)
    environ = dict(os.environ)
    if args.data_dir:
        environ["SCIKNOW_DATA_DIR"] = args.data_dir
    run: Callable[[argparse.Namespace, Config], int] = args.run
    try:
        return run(args, load_config(args.config, environ))
    except (ConfigError, RuntimeError) as err:
        print(f"sciknow: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("sciknow: interrupted; the index keeps its last committed state", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
