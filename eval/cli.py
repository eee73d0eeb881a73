"""The `sciknow eval` verb: `sciknow eval retrieval --dataset FILE [options]`.

Registered by `ui/cli.py` through `add_eval_parser`; heavy imports happen when
the verb runs, so `sciknow --help` stays instant.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from sciknow.config import BACKENDS, Config, ConfigError

DEFAULT_PIPELINES = ["baseline", "default"]


def _ks(text: str) -> list[int]:
    try:
        ks = sorted({int(k) for k in text.split(",") if k.strip()})
    except ValueError:
        raise argparse.ArgumentTypeError(f"-k wants numbers like 1,4,8, not {text!r}") from None
    if not ks or ks[0] < 1:
        raise argparse.ArgumentTypeError("-k values must be positive")
    return ks


def _corpus(args: argparse.Namespace, config: Config) -> Path:
    """--corpus, else the first docs source of the config."""
    if args.corpus:
        return Path(args.corpus).expanduser().resolve()
    for source in config.sources:
        if source.kind == "docs" and "://" not in source.path:
            return Path(source.path)
    raise ConfigError("no corpus: pass --corpus DIR or add a local docs source to sciknow.toml")


def run_retrieval(args: argparse.Namespace, config: Config) -> int:
    """Evaluate the pipelines, write JSON/Markdown/PNG under --out and print the table."""
    from sciknow.eval.report import markdown_table, write_report
    from sciknow.eval.retrieval import EvalRequest, PipelineOptions, run
    from sciknow.index.factory import load_embedder

    corpus = _corpus(args, config)
    if not corpus.is_dir():
        raise ConfigError(f"corpus {str(corpus)!r} is not a folder")
    exclude = args.exclude_path or []
    cache = Path(args.cache) if args.cache else config.data_path / "eval"
    request = EvalRequest(
        dataset=Path(args.dataset),
        corpus=corpus,
        pipelines=list(dict.fromkeys(args.pipeline or DEFAULT_PIPELINES)),
        ks=args.k,
        exclude=exclude,
        repo=args.repo or "",
        cache=cache,
        limit=args.limit,
        repeat=args.repeat,
        options=PipelineOptions(cross_encoder=args.cross_encoder or "", backend=args.backend),
    )
    if not request.dataset.is_file():
        raise ConfigError(f"dataset {str(request.dataset)!r} does not exist")
    report = run(request, config, load_embedder(config))
    out = Path(args.out) if args.out else cache / f"report-{report['mode']}"
    paths = write_report(report, out)
    print(markdown_table(report))
    print("wrote " + ", ".join(str(p) for p in paths.values()))
    return 0


def add_eval_parser(verbs: argparse._SubParsersAction) -> None:
    """Register `sciknow eval retrieval` on the top-level verb parser."""
    evaluate = verbs.add_parser("eval", help="evaluate retrieval against question sets")
    kinds = evaluate.add_subparsers(dest="eval_kind", required=True, metavar="KIND")
    retrieval = kinds.add_parser(
        "retrieval", help="recall@k, MRR, symbol recall@k and latency per pipeline"
    )
    retrieval.add_argument("--dataset", required=True, help="JSONL questions (faq_dev format)")
    retrieval.add_argument(
        "--pipeline",
        action="append",
        help="baseline, baseline-ce, dense, fusion, default, ce, llm (repeatable; "
        "default: baseline and default)",
    )
    retrieval.add_argument(
        "--exclude-path", action="append", metavar="PREFIX", help="leave pages out (faq/)"
    )
    retrieval.add_argument("-k", type=_ks, default=[1, 4, 8], help="cut-offs (default 1,4,8)")
    retrieval.add_argument("--out", help="report folder (default: DATA_DIR/eval/report-MODE)")
    retrieval.add_argument("--corpus", help="docs folder (default: the config's docs source)")
    retrieval.add_argument(
        "--repo",
        help="also index this git repository (folder or URL; man pages, examples, code) "
        "in sciknow's index; the baseline stays docs-only",
    )
    retrieval.add_argument("--cache", help="index cache folder (default: DATA_DIR/eval)")
    retrieval.add_argument("--limit", type=int, default=0, help="only the first N questions")
    retrieval.add_argument(
        "--repeat", type=int, default=1, help="time each question N times, keep the fastest"
    )
    retrieval.add_argument("--cross-encoder", help="local CrossEncoder folder (ce pipelines)")
    retrieval.add_argument("--backend", choices=BACKENDS, help="LLM for the `llm` pipeline")
    retrieval.set_defaults(run=run_retrieval)
