"""`sciknow ask`: answer a question with cited sources, streamed to the terminal.

sciknow ask QUESTION [-k K] [--backend B] [--mode M] [--flags] [--no-fallback]
            [--kind KIND] [--source NAME] [--official yes|no] [--json]
"""

from __future__ import annotations

import argparse
import json
from typing import Any

from sciknow.config import ANSWER_MODES, BACKENDS, Config
from sciknow.records import Flag
from sciknow.ui.search import add_filters, parse_filters


def add_ask_parser(verbs: Any) -> None:
    """Register the `ask` verb on the `sciknow` sub-parsers."""
    parser = verbs.add_parser("ask", help="answer a question with cited sources")
    parser.add_argument("question")
    parser.add_argument(
        "-k", type=int, default=None, help="passages given to the model (default 6)"
    )
    parser.add_argument("--backend", choices=BACKENDS, help="default: models.backend")
    add_filters(parser)
    parser.add_argument("--json", action="store_true", help="print the Answer record as JSON")
    parser.add_argument(
        "--flags", action="store_true", help="also flag uncertain spans and passage support"
    )
    parser.add_argument(
        "--mode", choices=ANSWER_MODES, help="extractive, generative or auto (answer.mode)"
    )
    parser.add_argument(
        "--no-fallback",
        action="store_true",
        help="keep a generated answer that fails its checks (loop, no citation, unknown "
        "names) and flag it, instead of replacing it with the extractive answer",
    )
    parser.set_defaults(run=run_ask)


def run_ask(args: argparse.Namespace, config: Config) -> int:
    from sciknow.serve.factory import build_assistant

    if args.mode:
        config.answer.mode = args.mode
    if args.no_fallback:
        config.answer.fallback = False
    assistant = build_assistant(config, args.backend)
    answer = None
    stream = assistant.stream(
        args.question, k=args.k, filters=parse_filters(args), flags=args.flags
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
    for line in filter(None, map(describe_flag, answer.flags)):
        print(f"  {line}")
    label = "Closest passages" if answer.abstained else "Sources"
    print(f"\n{label}:")
    for citation in answer.citations:
        print(f"  [{citation['n']}] {citation['title']}\n      {citation['uri']}")
    _print_timings(answer.timings)
    return 0


def _print_timings(timings: dict[str, float]) -> None:
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


def describe_flag(flag: Flag) -> str:
    """One line per flag for the terminal."""
    kind = flag["type"]
    if kind == "uncertain_span":
        return f"uncertain: {flag['text']!r} ({flag['reason']})"
    if kind == "removed_name":
        replacements = ", ".join(flag.get("suggestions", [])) or "no replacement named"
        return f"{flag['reason']}: {flag['text']} (replaced by: {replacements})"
    if kind == "unknown_name":
        suggestions = ", ".join(flag.get("suggestions", [])) or "no close name"
        return f"{flag['reason']}: {flag['text']} (did you mean: {suggestions})"
    if kind == "compile":
        return describe_compile(flag)
    if kind == "support":  # shown by front ends beside each source, not as a line here
        return ""
    return f"{kind}: {flag.get('reason', '')}"


def describe_compile(flag: Flag) -> str:
    """A compile flag as one line: the block's first line in the answer, then its verdict
    ("Code at line 9 compiles against PETSc 3.18.5", "... does not compile: line 10: ...")."""
    where, reason = f"Code at line {flag.get('line', '?')}", flag.get("reason", "")
    if flag.get("status") == "compiles":
        return f"{where} {reason}"
    if flag.get("status") == "error":
        return f"{where} does not compile: {reason}"
    return f"{where}: {reason}"
