"""`sciknow attribute`: how much a response leans on each prompt token, with certified bounds.

    sciknow attribute --prompt TEXT --response TEXT [--raw] [--json] [--backend NAME]

The prompt goes through the model's chat template as a user message (`--raw`: plain text),
the response is the assistant's text. Scored positions are the prompt's own tokens: the
template's tokens and special tokens are excluded (see `serve/attribution.py`). The table
gives, per token, LogA with its certified interval, H_I and H; the rendering below it
highlights the tokens the model is unsure of given both sides and the response (H).
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
    WIDTH,
    Attribution,
    attribute,
    special_positions,
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
    parser.add_argument("--json", action="store_true", help="print the per-token table as JSON")
    parser.set_defaults(run=run_attribute)


def run_attribute(args: argparse.Namespace, config: Config) -> int:
    """Attribution compares log-probabilities a few hundredths of a nat apart, so an
    in-process model runs in float32 unless `models.dtype` names another type."""
    from sciknow.serve.factory import build_backend

    if config.models.dtype == "auto":
        config = replace(config, models=replace(config.models, dtype="float32"))
    backend = build_backend(config, args.backend)
    result = attribute_text(
        backend,
        args.prompt,
        args.response,
        raw=args.raw,
        epsilon=args.epsilon,
        width=args.width,
        max_candidates=args.max_candidates,
        certify_candidates=args.certify_candidates,
    )
    if args.json:
        print(json.dumps(to_json(backend, result), indent=2, ensure_ascii=False))
    else:
        color = sys.stdout.isatty() and "NO_COLOR" not in os.environ
        print(render(backend, result, color))
    return 0


def attribute_text(
    backend: Backend, prompt: str, response: str, raw: bool = False, **settings: Any
) -> Attribution:
    """Attribution of `response` to the tokens of `prompt` (a chat user message unless `raw`)."""
    answer = backend.tokenize(response)
    if raw:
        return attribute(backend, backend.tokenize(prompt), answer, **settings)
    ids = backend.chat_tokens([{"role": "user", "content": prompt}])
    empty = backend.chat_tokens([{"role": "user", "content": ""}])
    head = _shared(ids, empty)
    tail = _shared(ids[::-1], empty[::-1])
    special = special_positions(backend, ids)
    positions = [mu for mu in range(max(head, 1), len(ids) - tail) if mu not in special]
    return attribute(backend, ids, answer, positions=positions, **settings)


def _shared(a: list[int], b: list[int]) -> int:
    n = 0
    while n < min(len(a), len(b)) and a[n] == b[n]:
        n += 1
    return n


def to_json(backend: Backend, result: Attribution) -> dict[str, Any]:
    """One entry per prompt token; unscored ones (template, special, position 0) carry nulls."""
    tokens = []
    for mu, token in enumerate(result.prompt):
        score = result.at(mu)
        entry: dict[str, Any] = {"position": mu, "token": backend.detokenize([token]), "id": token}
        if score is None:
            entry |= dict.fromkeys(("loga", "loga_low", "loga_high", "h_i", "h"))
        else:
            low, high = score.loga_bounds
            entry |= {"loga": score.loga, "loga_low": low, "loga_high": high}
            entry |= {"h_i": score.h_i, "h": score.h}
            entry |= {"candidates": score.candidates, "epsilon": score.epsilon}
        tokens.append(entry)
    return {
        "tokens": tokens,
        "log_p_response": result.log_p_response,
        "evaluations": result.evaluations,
        "seconds": result.seconds,
    }


def render(backend: Backend, result: Attribution, color: bool) -> str:
    """The per-token table, then the prompt with uncertain tokens highlighted."""
    lines = [f"{'pos':>4}  {'token':<16} {'LogA':>8}  {'[low, high]':<21} {'H_I':>5} {'H':>5}"]
    for s in result.positions:
        token = repr(backend.detokenize([s.token]))[:16]
        bounds = f"[{s.loga_bounds[0]:.3f}, {s.loga_bounds[1]:.3f}]"
        lines.append(
            f"{s.position:>4}  {token:<16} {s.loga:>8.3f}  {bounds:<21} {s.h_i:>5.2f} {s.h:>5.2f}"
        )
    widest = max((s.width for s in result.positions), default=0.0)
    lines += [
        "",
        _highlighted(backend, result, color),
        "",
        f"log P(response | prompt) = {result.log_p_response:.3f}; widest LogA interval "
        f"{widest:.3g} nats; {result.evaluations} token evaluations in {result.seconds:.1f} s",
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
