"""`sciknow attribute`: how much a response leans on each prompt token, with bounds.

    sciknow attribute --prompt TEXT --response TEXT [--raw] [--json] [--exact] [--backend NAME]

The prompt goes through the model's chat template as a user message (`--raw`: plain text),
the response is the assistant's text. Scored positions are the prompt's own tokens: the
template's tokens and special tokens are excluded (see `serve/attribution.py`). The table
gives, per token, LogA (the statistical estimate) with its standard error and 95 %
interval, the certified interval, H_I and H; the rendering below it highlights the tokens
the model is unsure of given both sides and the response (H). `--exact` sums the whole
vocabulary at every position instead (brute force, batched): it prints its cost first
(token evaluations, and seconds from a short timing probe) and a progress bar.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from dataclasses import replace
from typing import Any

from sciknow.config import BACKENDS, Config
from sciknow.serve.attribution import (
    CERTIFY_CANDIDATES,
    EPSILON,
    MAX_CANDIDATES,
    SAMPLES,
    STRATA,
    WIDTH,
    Attribution,
    attribute,
    brute_force,
    exact_cost,
    special_positions,
    vocab_size,
)
from sciknow.serve.backends.base import Backend

UNSURE, VERY_UNSURE, INFLUENTIAL = 1.0, 2.5, 1.0  # nats: H thresholds, LogA threshold
_STYLE = {"unsure": "\x1b[43;30m", "very": "\x1b[41;97m", "bold": "\x1b[1m", "end": "\x1b[0m"}


def add_attribute_parser(verbs: Any) -> None:
    """Register the `attribute` verb on the `sciknow` sub-parsers."""
    parser = verbs.add_parser("attribute", help="per-token attribution of a response to a prompt")
    parser.add_argument("--prompt", required=True, help="the prompt (a user message)")
    parser.add_argument("--response", required=True, help="the response to attribute")
    parser.add_argument(
        "--backend",
        choices=BACKENDS,
        help="default: models.backend",
    )
    parser.add_argument("--raw", action="store_true", help="no chat template around the prompt")
    parser.add_argument("--epsilon", type=float, default=EPSILON, help="excluded prior mass")
    parser.add_argument("--width", type=float, default=WIDTH, help="target LogA width (nats)")
    parser.add_argument(
        "--max-candidates", type=int, default=MAX_CANDIDATES, help="candidates per token for ε"
    )
    parser.add_argument(
        "--certify-candidates",
        type=int,
        default=CERTIFY_CANDIDATES,
        help="more candidates allowed where they bring the LogA interval under --width",
    )
    parser.add_argument(
        "--samples", type=int, default=SAMPLES, help="tail tokens drawn per token (0: none)"
    )
    parser.add_argument("--strata", type=int, default=STRATA, help="prior bands they come from")
    parser.add_argument("--seed", type=int, default=0, help="seed of the tail draw")
    parser.add_argument(
        "--exact", action="store_true", help="the whole vocabulary per token (slow; cost first)"
    )
    parser.add_argument("--json", action="store_true", help="print the per-token table as JSON")
    parser.set_defaults(run=run_attribute)


def run_attribute(args: argparse.Namespace, config: Config) -> int:
    """Attribution compares log-probabilities a few hundredths of a nat apart, so an
    in-process model runs in float32 unless `models.dtype` names another type."""
    from sciknow.serve.factory import build_backend

    if config.models.dtype == "auto":
        config = replace(config, models=replace(config.models, dtype="float32"))
    backend = build_backend(config, args.backend)
    if args.exact:
        result = exact_text(backend, args.prompt, args.response, raw=args.raw)
    else:
        result = attribute_text(
            backend,
            args.prompt,
            args.response,
            raw=args.raw,
            epsilon=args.epsilon,
            width=args.width,
            max_candidates=args.max_candidates,
            certify_candidates=args.certify_candidates,
            samples=args.samples,
            strata=args.strata,
            seed=args.seed,
        )
    if args.json:
        print(json.dumps(to_json(backend, result), indent=2, ensure_ascii=False))
    else:
        color = sys.stdout.isatty() and "NO_COLOR" not in os.environ
        print(render(backend, result, color))
    return 0


def scored_tokens(
    backend: Backend, prompt: str, response: str, raw: bool = False
) -> tuple[list[int], list[int], list[int]]:
    """Prompt ids (a chat user message unless `raw`), response ids, and the positions to
    score: the prompt's own tokens after position 0, without special tokens."""
    answer = backend.tokenize(response)
    if raw:
        ids = backend.tokenize(prompt)
        head, tail = 1, 0
    else:
        ids = backend.chat_tokens([{"role": "user", "content": prompt}])
        empty = backend.chat_tokens([{"role": "user", "content": ""}])
        head, tail = max(_shared(ids, empty), 1), _shared(ids[::-1], empty[::-1])
    special = special_positions(backend, ids)
    return ids, answer, [mu for mu in range(head, len(ids) - tail) if mu not in special]


def attribute_text(
    backend: Backend, prompt: str, response: str, raw: bool = False, **settings: Any
) -> Attribution:
    """Attribution of `response` to the tokens of `prompt` (a chat user message unless `raw`)."""
    ids, answer, positions = scored_tokens(backend, prompt, response, raw)
    return attribute(backend, ids, answer, positions=positions, **settings)


def exact_text(backend: Backend, prompt: str, response: str, raw: bool = False) -> Attribution:
    """Brute-force attribution, its cost printed to stderr before it starts, then a progress
    bar there (the table or JSON alone goes to stdout)."""
    from tqdm import tqdm

    ids, answer, positions = scored_tokens(backend, prompt, response, raw)
    evaluations, seconds = exact_cost(backend, ids, answer, positions)
    print(
        f"exact: {len(positions)} positions x {vocab_size(backend) or backend.max_top_k} tokens = "
        f"{evaluations:,} token "
        f"evaluations, about {_duration(seconds)} at the probed speed",
        file=sys.stderr,
        flush=True,
    )
    with tqdm(total=evaluations, unit="tok", unit_scale=True, file=sys.stderr) as bar:
        bar.update(len(ids) + len(answer))
        return brute_force(backend, ids, answer, positions=positions, progress=bar.update)


def _duration(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f} s"
    return f"{seconds / 60:.0f} min" if seconds < 7200 else f"{seconds / 3600:.1f} h"


def _shared(a: list[int], b: list[int]) -> int:
    n = 0
    while n < min(len(a), len(b)) and a[n] == b[n]:
        n += 1
    return n


def to_json(backend: Backend, result: Attribution) -> dict[str, Any]:
    """One entry per prompt token; unscored ones (template, special, position 0) carry nulls.

    `loga_low`/`loga_high` bound LogA for certain; `loga_ci` is the 95 % statistical interval
    of the estimate `loga` (standard error `loga_se`); exact results (`--exact`) have se 0 and
    a point interval."""
    tokens = []
    for mu, token in enumerate(result.prompt):
        score = result.at(mu)
        entry: dict[str, Any] = {"position": mu, "token": backend.detokenize([token]), "id": token}
        if score is None:
            entry |= dict.fromkeys(("loga", "loga_se", "loga_ci", "loga_low", "loga_high"))
            entry |= dict.fromkeys(("h_i", "h"))
        else:
            low, high = score.loga_bounds
            se, ci = _statistical(result, score)
            entry |= {"loga": score.loga, "loga_se": se, "loga_ci": ci}
            entry |= {"loga_low": low, "loga_high": high, "h_i": score.h_i, "h": score.h}
            entry |= {"candidates": score.candidates, "sampled": score.sampled}
            entry["epsilon"] = score.epsilon
        tokens.append(entry)
    return {
        "tokens": tokens,
        "log_p_response": result.log_p_response,
        "evaluations": result.evaluations,
        "seconds": result.seconds,
    }


def _statistical(result: Attribution, score: Any) -> tuple[float | None, list[float] | None]:
    if result.exact:
        return 0.0, [score.loga, score.loga]
    return score.loga_se, list(score.loga_ci) if score.loga_ci else None


def render(backend: Backend, result: Attribution, color: bool) -> str:
    """The per-token table, then the prompt with uncertain tokens highlighted."""
    lines = [
        f"{'pos':>4}  {'token':<16} {'LogA':>8} {'± se':>6}  {'95% interval':<17} "
        f"{'certified':<21} {'H_I':>5} {'H':>5}"
    ]
    for s in result.positions:
        token = repr(backend.detokenize([s.token]))[:16]
        se, ci = _statistical(result, s)
        spread = f"{se:6.3f}" if se is not None else f"{'-':>6}"
        interval = f"[{ci[0]:.3f}, {ci[1]:.3f}]" if ci else "-"
        bounds = f"[{s.loga_bounds[0]:.3f}, {s.loga_bounds[1]:.3f}]"
        lines.append(
            f"{s.position:>4}  {token:<16} {s.loga:>8.3f} {spread}  {interval:<17} {bounds:<21} "
            f"{s.h_i:>5.2f} {s.h:>5.2f}"
        )
    widest = max((s.width for s in result.positions), default=0.0)
    method = "exact (whole vocabulary)" if result.exact else "estimate (exact top candidates"
    method += "" if result.exact else " + stratified sample of the rest)"
    lines += [
        "",
        _highlighted(backend, result, color),
        "",
        f"log P(response | prompt) = {result.log_p_response:.3f}; LogA {method}; widest "
        f"certified interval {widest:.3g} nats; {result.evaluations} token evaluations in "
        f"{result.seconds:.1f} s",
        f"highlighted: H ≥ {UNSURE:g} nats (strong: ≥ {VERY_UNSURE:g}); "
        f"bold: LogA ≥ {INFLUENTIAL:g} nats",
    ]
    return "\n".join(lines)


def _highlighted(backend: Backend, result: Attribution, color: bool) -> str:
    pieces = []
    for s in result.positions:
        text = backend.detokenize([s.token])
        style = "very" if s.h >= VERY_UNSURE else "unsure" if s.h >= UNSURE else ""
        bold = s.loga >= INFLUENTIAL
        if color:
            prefix = (_STYLE["bold"] if bold else "") + (_STYLE[style] if style else "")
            pieces.append(f"{prefix}{text}{_STYLE['end']}" if prefix else text)
        else:
            word = text.lstrip()
            marked = f"«{word}»" if style else word
            pieces.append(text[: len(text) - len(word)] + (f"*{marked}*" if bold else marked))
    return "".join(pieces)
