"""The `sciknow eval` verb: `sciknow eval retrieval|answers --dataset FILE [options]`.

Registered by `ui/cli.py` through `add_eval_parser`; heavy imports happen when
the verb runs, so `sciknow --help` stays instant.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

from sciknow.config import ANSWER_MODES, BACKENDS, Config, ConfigError

if TYPE_CHECKING:
    from sciknow.eval.judge import Judge
    from sciknow.index.embed import Embedder

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


def _repo(args: argparse.Namespace, config: Config) -> str:
    """--repo, else the config's first local source tree (the main job's corpus), unless
    --docs-only or an explicit --corpus (then the docs alone, as given)."""
    if args.repo:
        return args.repo
    if args.docs_only or args.corpus:
        return ""
    for source in config.sources:
        if source.kind in ("source", "git") and Path(source.path).is_dir():
            return source.path
    return ""


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
        repo=_repo(args, config),
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


def run_answers(args: argparse.Namespace, config: Config) -> int:
    """Answer, score and report; print the summary table, the deltas against `--compare`
    and the files written."""
    from sciknow.eval.answer_report import compare_table, headline_table, write_answer_report
    from sciknow.eval.answers import AnswerRequest, run
    from sciknow.eval.retrieval import PipelineOptions, mode_name
    from sciknow.index.factory import load_embedder

    corpus = _corpus(args, config)
    if not corpus.is_dir():
        raise ConfigError(f"corpus {str(corpus)!r} is not a folder")
    if not Path(args.dataset).is_file():
        raise ConfigError(f"dataset {args.dataset!r} does not exist")
    old = _earlier_report(args.compare)
    exclude = args.exclude_path or []
    cache = Path(args.cache) if args.cache else config.data_path / "eval"
    repo = _repo(args, config)
    mode = ("repo-" if repo else "") + mode_name(exclude)
    request = AnswerRequest(
        dataset=Path(args.dataset),
        corpus=corpus,
        pipelines=list(dict.fromkeys(args.pipeline or DEFAULT_PIPELINES)),
        modes=list(dict.fromkeys(args.mode or ["auto"])),
        out=Path(args.out) if args.out else cache / f"answers-{mode}",
        exclude=exclude,
        repo=repo,
        cache=cache,
        limit=args.limit,
        backend=args.backend,
        flags=args.flags,
        compile=args.compile,
        options=PipelineOptions(cross_encoder=args.cross_encoder or "", backend=args.backend),
    )
    embedder = load_embedder(config)
    judge = _judge(args, config, embedder) if args.judge else None
    try:
        report = run(request, config, embedder, judge)
    finally:
        if judge is not None:
            judge.close()
    paths = write_answer_report(report, request.out, old)
    print(headline_table(report))
    if old is not None:
        print(f"\nchange since {args.compare}:\n{compare_table(report, old)}")
    print("wrote " + ", ".join(str(p) for p in paths.values()))
    return 0


def _earlier_report(path: str | None) -> dict | None:
    """The `--compare` report, read before anything runs so a wrong path fails fast."""
    if not path:
        return None
    import json

    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as err:
        raise ConfigError(f"--compare {path!r} is not a readable answers report: {err}") from None


def _judge(args: argparse.Namespace, config: Config, embedder: Embedder) -> Judge:
    """The ragas judge of `--judge`, embedding with `--judge-embedder` or the index's model."""
    from sciknow.eval.judge import Judge, JudgeSpec
    from sciknow.index.embed import make_embedder

    try:
        spec = JudgeSpec.parse(args.judge)
    except ValueError as err:
        raise ConfigError(str(err)) from None
    if args.judge_embedder:
        embedder = make_embedder(args.judge_embedder, config.models.threads)
    return Judge(spec, embedder, timeout=args.judge_timeout)


def _common(parser: argparse.ArgumentParser, pipelines: str) -> None:
    """The options `eval retrieval` and `eval answers` share."""
    parser.add_argument("--dataset", required=True, help="JSONL questions (faq_dev format)")
    parser.add_argument(
        "--pipeline",
        action="append",
        help=f"baseline, baseline-ce, dense, fusion, default, ce, llm (repeatable; {pipelines})",
    )
    parser.add_argument(
        "--exclude-path", action="append", metavar="PREFIX", help="leave pages out (faq/)"
    )
    parser.add_argument("--corpus", help="docs folder (default: the config's docs source)")
    parser.add_argument(
        "--repo",
        help="also index this source tree (folder or git URL; man pages, examples, code) "
        "in sciknow's index (default: the config's local source tree); the baseline stays "
        "docs-only",
    )
    parser.add_argument(
        "--docs-only", action="store_true", help="index the docs alone, no source tree"
    )
    parser.add_argument("--cache", help="index cache folder (default: DATA_DIR/eval)")
    parser.add_argument("--limit", type=int, default=0, help="only the first N questions")
    parser.add_argument("--cross-encoder", help="local CrossEncoder folder (ce pipelines)")


def add_eval_parser(verbs: argparse._SubParsersAction) -> None:
    """Register `sciknow eval retrieval` and `sciknow eval answers` on the verb parser."""
    evaluate = verbs.add_parser("eval", help="evaluate retrieval and answers on question sets")
    kinds = evaluate.add_subparsers(dest="eval_kind", required=True, metavar="KIND")
    retrieval = kinds.add_parser(
        "retrieval", help="recall@k, MRR, symbol recall@k and latency per pipeline"
    )
    _common(retrieval, "default: baseline and default")
    retrieval.add_argument("-k", type=_ks, default=[1, 4, 8], help="cut-offs (default 1,4,8)")
    retrieval.add_argument("--out", help="report folder (default: DATA_DIR/eval/report-MODE)")
    retrieval.add_argument(
        "--repeat", type=int, default=1, help="time each question N times, keep the fastest"
    )
    retrieval.add_argument("--backend", choices=BACKENDS, help="LLM for the `llm` pipeline")
    retrieval.set_defaults(run=run_retrieval)
    answers = kinds.add_parser(
        "answers",
        help="answer quality per pipeline and answer mode: names, citations, loops, time; "
        "ragas with a judge",
    )
    _common(answers, "default: baseline and default")
    answers.add_argument(
        "--mode",
        action="append",
        choices=ANSWER_MODES,
        help="answer mode (repeatable: extractive and generative side by side; default: auto)",
    )
    answers.add_argument("--backend", choices=BACKENDS, help="answering model backend")
    answers.add_argument(
        "--judge", metavar="URL#MODEL", help="OpenAI-compatible judge: http://host:port/v1#model"
    )
    answers.add_argument(
        "--judge-embedder",
        metavar="SPEC",
        help="embedder for the judged metrics (default: models.embedder; or openai:URL#MODEL)",
    )
    answers.add_argument(
        "--judge-timeout", type=float, default=120.0, help="seconds per judge request"
    )
    answers.add_argument("--out", help="report folder (default: DATA_DIR/eval/answers-MODE)")
    answers.add_argument("--compare", metavar="OLD.json", help="an earlier answers-*.json")
    answers.add_argument(
        "--flags", action="store_true", help="compute answer flags and score them against errors"
    )
    answers.add_argument(
        "--compile",
        action="store_true",
        help="compile the answers' C code blocks against the configured PETSc ([check])",
    )
    answers.set_defaults(run=run_answers)
