"""`sciknow tune`: fine-tune the embedder and train a reranker from the index
(docs/measurements.md, "Retrieval that learns the library (`sciknow tune`)").

    sciknow tune [--out DIR] [--max-pairs N] [--epochs N] [--exclude-path PREFIX ...]
                 [--holdout JSONL ...] [--seed S] [--no-reranker] [--reranker-layers L]

Runs on the CPU from local weights only; a killed run resumes with the same command.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from sciknow.config import Config
from sciknow.errors import StoreError


def add_tune_parser(verbs: Any) -> None:
    """Register the `tune` verb on the `sciknow` sub-parsers."""
    parser = verbs.add_parser(
        "tune", help="train a library-adapted embedder and reranker from the index"
    )
    parser.add_argument("--out", help="output folder (default: DATA_DIR/tuned)")
    parser.add_argument("--max-pairs", type=int, default=4000, help="training pairs (0: all)")
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--learning-rate", type=float, help="default 3e-5")
    parser.add_argument("--max-seq-length", type=int, default=128, help="tokens per text")
    parser.add_argument(
        "--exclude-path",
        action="append",
        default=[],
        metavar="PREFIX",
        help="keep pages under this path out of training (e.g. faq/ when evaluating it)",
    )
    parser.add_argument(
        "--holdout",
        action="append",
        default=[],
        metavar="JSONL",
        help="an evaluation set: pairs sharing text with its questions or answers are dropped",
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--bf16", action="store_true", help="train in bfloat16 autocast")
    parser.add_argument("--no-reranker", action="store_true", help="tune the embedder only")
    parser.add_argument("--reranker-layers", type=int, default=6, help="cross-encoder depth")
    parser.set_defaults(run=run_tune_command)


def run_tune_command(args: argparse.Namespace, config: Config) -> int:
    from sciknow.index.factory import open_store
    from sciknow.index.finetune import TrainSettings
    from sciknow.rerank.tune import TuneRequest, run_tune

    store = open_store(config)
    if store.generation() == 0:
        raise StoreError(f"no index in {config.data_path}: run `sciknow ingest` first")
    out = Path(args.out) if args.out else config.data_path / "tuned"
    settings = TrainSettings(
        epochs=args.epochs,
        batch_size=args.batch_size,
        learning_rate=args.learning_rate or TrainSettings.learning_rate,
        max_seq_length=args.max_seq_length,
        seed=args.seed,
        threads=config.models.threads,
        bf16=args.bf16,
    )
    request = TuneRequest(
        out=out,
        max_pairs=args.max_pairs,
        exclude=args.exclude_path,
        holdout=[Path(p) for p in args.holdout],
        settings=settings,
        reranker=not args.no_reranker,
        reranker_layers=args.reranker_layers,
    )
    card = run_tune(store, config, request)
    print(json.dumps({"pairs": card["pairs"], "minutes": card["minutes"]}, indent=2))
    print(f"wrote {out} (card: {out / 'README.md'})")
    return 0
