"""`sciknow ingest`: read sources into the index.

    sciknow ingest [PATH_OR_URL ...]

With locations, each is ingested as the source kind it looks like; without, the
sources configured in `sciknow.toml`. Only what changed since the last ingest is read.
A location that no `[[sources]]` entry declares is unofficial and gets no links invented
for it (`ingest/registry.py`); declare it to make it official or give it a `base_url`.
"""

from __future__ import annotations

import argparse
from typing import Any

from sciknow.config import Config
from sciknow.errors import ConfigError

MAX_SKIPS_LISTED = 20  # more are summarized in one line (-v lists them all)


def add_ingest_parser(verbs: Any) -> None:
    """Register the `ingest` verb on the `sciknow` sub-parsers."""
    parser = verbs.add_parser("ingest", help="ingest paths/URLs, or the configured sources")
    parser.add_argument("locations", nargs="*", metavar="PATH_OR_URL")
    parser.set_defaults(run=run_ingest)


def run_ingest(args: argparse.Namespace, config: Config) -> int:
    from sciknow.index.factory import load_embedder, make_chunker, open_store
    from sciknow.index.pipeline import ingest
    from sciknow.ingest.registry import make_sources, source_for_location

    specs = [source_for_location(loc, config) for loc in args.locations] or config.sources
    if not specs:
        raise ConfigError(
            "nothing to ingest: pass a path or URL (sciknow ingest ../petsc) "
            "or add [[sources]] to sciknow.toml"
        )
    sources = [source for spec in specs for source in make_sources(spec, config)]
    report = ingest(
        open_store(config),
        sources,
        load_embedder(config),
        make_chunker(config),
        skip_embedding_kinds=config.ingest.skip_embedding_kinds,
        embed_head_chars=config.ingest.embed_head_chars,
    )
    print(report.summary())
    if args.verbose or len(report.skipped) <= MAX_SKIPS_LISTED:
        for skip in report.skipped:
            print(f"  skipped {skip.where}: {skip.reason}")
    else:
        print(f"  ({len(report.skipped)} skipped files; -v lists them)")
    return 0
