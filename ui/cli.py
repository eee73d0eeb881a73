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
import traceback
from collections.abc import Callable
from typing import Any

from sciknow.config import ANSWER_MODES, BACKENDS, Config, ConfigError, load_config
from sciknow.errors import SciknowError
from sciknow.eval.cli import add_eval_parser
from sciknow.ui.attribute import add_attribute_parser
from sciknow.ui.auth import serving_token
from sciknow.ui.check_code import add_check_code_parser
from sciknow.ui.discordbot.bot import add_discord_parser
from sciknow.ui.feedback import add_feedback_parser
from sciknow.ui.index_copy import add_index_parser
from sciknow.ui.mcp_server import add_mcp_parser
from sciknow.ui.patch import add_patch_parser
from sciknow.ui.tune import add_tune_parser
from sciknow.ui.verify import add_verify_parser

log = logging.getLogger("sciknow")


def _ingest(args: argparse.Namespace, config: Config) -> int:
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
    from sciknow.serve.factory import build_retriever

    retriever = build_retriever(config)
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


def _ask(args: argparse.Namespace, config: Config) -> int:
    from sciknow.serve.factory import build_assistant

    if args.mode:
        config.answer.mode = args.mode
    if args.no_fallback:
        config.answer.fallback = False
    assistant = build_assistant(config, args.backend)
    answer = None
    stream = assistant.stream(
        args.question, k=args.k, filters=_parse_filters(args), flags=args.flags
    )
    for event in stream:
        if event.kind == "reset" and not args.json:
            print(f"\n\n[the generated answer above was replaced: {event.reason}]\n", flush=True)
        if event.token is not None and not args.json:
            print(event.token.text, end="", flush=True)
        answer = event.answer or answer
    assert answer is not None
    if args.json:
        print(json.dumps(answer.to_dict(), indent=2, ensure_ascii=False))
        return 0
    print(answer.text if answer.abstained else "")
    for line in filter(None, map(_describe_flag, answer.flags)):
        print(f"  {line}")
    label = "Closest passages" if answer.abstained else "Sources"
    print(f"\n{label}:")
    for citation in answer.citations:
        print(f"  [{citation['n']}] {citation['title']}\n      {citation['uri']}")
    timings = answer.timings
    if "tokens_per_s" in timings:
        print(
            f"\n(retrieval {timings['retrieval_ms']:.0f} ms, first token "
            f"{timings['ttft_ms']:.0f} ms, {timings['tokens_per_s']:.1f} tokens/s)"
        )
    elif "extract_ms" in timings:
        print(
            f"\n(quoted from the sources; retrieval {timings['retrieval_ms']:.0f} ms, "
            f"extraction {timings['extract_ms']:.0f} ms)"
        )
    return 0


def _describe_flag(flag: dict[str, Any]) -> str:
    """One line per flag for the terminal."""
    kind = flag.get("type", "")
    if kind == "uncertain_span":
        return f"uncertain: {flag['text']!r} ({flag['reason']})"
    if kind == "removed_name":
        replacements = ", ".join(flag.get("suggestions", [])) or "no replacement named"
        return f"{flag['reason']}: {flag['text']} (replaced by: {replacements})"
    if kind == "unknown_name":
        suggestions = ", ".join(flag.get("suggestions", [])) or "no close name"
        return f"{flag['reason']}: {flag['text']} (did you mean: {suggestions})"
    if kind == "support":  # shown by front ends beside each source, not as a line here
        return ""
    return f"{kind}: {flag.get('reason', '')}"


def _serve(args: argparse.Namespace, config: Config) -> int:
    """Refuses to start, with one line, on a read-only, full or damaged data directory."""
    token = serving_token(args)
    from sciknow.serve.factory import build_assistant
    from sciknow.serve.web.api import create_app
    from sciknow.serve.web.server import run
    from sciknow.ui.webchat.app import mount_chat

    assistant = build_assistant(config, args.backend, allow_empty=True)
    assistant.retriever.store.check()
    app = create_app(assistant, token=token, serve=config.serve)
    mount_chat(app, config.profile.examples, f"{config.profile.display_name} assistant")
    access = "API token required" if token else "no token"
    print(f"sciknow: chat and API on http://{args.host}:{args.port}/ ({access})", flush=True)
    run(app, args.host, args.port, config.serve, "info" if args.verbose else "warning")
    return 0


def _add_filters(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--kind", action="append", help="only this document kind (repeatable)")
    parser.add_argument("--source", action="append", help="only this source (repeatable)")
    parser.add_argument("--official", choices=["yes", "no"], help="only (un)official documents")


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
    _add_filters(search)
    search.add_argument("--json", action="store_true", help="print JSON")
    search.set_defaults(run=_search)

    ask = verbs.add_parser("ask", help="answer a question with cited sources")
    ask.add_argument("question")
    ask.add_argument("-k", type=int, default=None, help="passages given to the model (default 6)")
    ask.add_argument("--backend", choices=BACKENDS, help="default: models.backend")
    _add_filters(ask)
    ask.add_argument("--json", action="store_true", help="print the Answer record as JSON")
    ask.add_argument(
        "--flags", action="store_true", help="also flag uncertain spans and passage support"
    )
    ask.add_argument(
        "--mode", choices=ANSWER_MODES, help="extractive, generative or auto (answer.mode)"
    )
    ask.add_argument(
        "--no-fallback",
        action="store_true",
        help="keep a generated answer that fails its checks (loop, no citation, unknown "
        "names) and flag it, instead of replacing it with the extractive answer",
    )
    ask.set_defaults(run=_ask)

    serve = verbs.add_parser("serve", help="web chat at / and the HTTP API (ask, search, ...)")
    serve.add_argument("--host", default="127.0.0.1", help="address (other than local: token)")
    serve.add_argument("--port", type=int, default=8080)
    serve.add_argument("--backend", choices=BACKENDS, help="default: models.backend")
    serve.add_argument(
        "--token", help="API token every call must send (default: $SCIKNOW_API_TOKEN)"
    )
    serve.add_argument(
        "--no-auth", action="store_true", help="serve a non-local address without a token"
    )
    serve.set_defaults(run=_serve)

    stats = verbs.add_parser("stats", help="what the index holds")
    stats.add_argument("--json", action="store_true")
    stats.set_defaults(run=_stats)

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


def explained(err: Exception) -> bool:
    """Whether `err` is one sciknow raised on purpose, its message all a user needs.

    The store's `StorageError` (disk full, permissions, a broken file) is one too; it is
    looked up only once the store module is loaded, as it must be for one to exist."""
    store = sys.modules.get("sciknow.index.store")
    return isinstance(err, SciknowError) or (
        store is not None and isinstance(err, store.StorageError)
    )


def report_error(err: Exception, verbose: bool) -> int:
    """Print a failed verb's error: an explained one as one line (exit status 2); any
    other is a bug here or a fault in a library underneath, so its traceback is what
    helps: printed with -v, and a line saying so without it (exit status 1)."""
    if explained(err):
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
