"""Do the answer flags mean something? Checked against the FAQ references (run by hand).

    python bench/check_flags.py --data-dir DIR [--limit 20] [--max-tokens 80]

For each question of `../shared/eval/faq_dev.jsonl`, the answer pipeline's steps (retrieval
from the index in DIR, packing, greedy generation, citation check) produce an answer, and
`answer_flags` its flags over every given passage. No judge model is available offline, so
"where the answer contradicts the reference" is read from the library's names: an occurrence
of a PETSc symbol or option in the answer is *matched* when the reference answer names it,
*mismatched* when it does not, and *invented* when neither the reference nor any passage
given to the model names it. The report compares how often each kind is flagged with a
left-only baseline (a token of the symbol below probability 0.5), and checks the support
flags: for a sentence naming a symbol found in exactly one passage, is that passage the one
with the largest support?
"""

from __future__ import annotations

import argparse
import json
import os
import re
import time
from collections import Counter
from pathlib import Path
from typing import Any

from sciknow.config import load_config
from sciknow.ingest.symbols import find_symbols
from sciknow.serve.backends.hf import TransformersBackend
from sciknow.serve.citations import check_citations
from sciknow.serve.factory import build_retriever
from sciknow.serve.flags import answer_flags, offset_map
from sciknow.serve.prompt import pack

LOG_HALF = -0.6931471805599453
DATASET = Path(__file__).resolve().parents[2] / "shared" / "eval" / "faq_dev.jsonl"


def occurrences(text: str, symbols: list[str]) -> list[tuple[str, int, int]]:
    """(symbol, start, end) of each whole-token occurrence in `text`."""
    found = []
    for symbol in symbols:
        pattern = rf"(?<![\w\-]){re.escape(symbol)}(?![\w])"
        found += [(symbol, m.start(), m.end()) for m in re.finditer(pattern, text)]
    return sorted(found, key=lambda o: o[1])


def overlaps(start: int, end: int, spans: list[dict[str, Any]]) -> bool:
    return any(s["start"] < end and start < s["end"] for s in spans)


def left_flagged(tokens: list, raw: str, text: str, start: int, end: int) -> bool:
    """Baseline: a generated token inside text[start:end] had left-only probability < 0.5."""
    to_text = offset_map(raw, text)
    at = 0
    for token in tokens:
        a, b = to_text(at), to_text(at + len(token.text))
        if a < end and start < b and token.logprob is not None and token.logprob < LOG_HALF:
            return True
        at += len(token.text)
    return False


def one_question(backend, retriever, item: dict, prefixes: list[str], args) -> dict[str, Any]:
    evidence = retriever.search(item["question"], args.k)
    packed = pack(
        item["question"],
        evidence,
        lambda m: len(backend.chat_tokens(m)),
        2048,
        reserve=args.max_tokens,
    )
    tokens = list(backend.generate(packed.messages, max_tokens=args.max_tokens))
    raw = "".join(t.text for t in tokens)
    text = check_citations(raw.strip(), len(packed.evidence)).text
    started = time.perf_counter()
    flags = answer_flags(backend, packed.messages, tokens, text, range(1, len(packed.evidence) + 1))
    seconds = time.perf_counter() - started
    spans = [f for f in flags if f["type"] == "uncertain_span"]
    reference = set(find_symbols(item["answer"], prefixes))
    given = set(find_symbols(" ".join(e.text for e in packed.evidence), prefixes))
    labelled = []
    for symbol, start, end in occurrences(text, find_symbols(text, prefixes)):
        kind = "matched" if symbol in reference else "mismatched"
        kind = "invented" if kind == "mismatched" and symbol not in given else kind
        labelled.append(
            {
                "symbol": symbol,
                "kind": kind,
                "flagged": overlaps(start, end, spans),
                "left_only": left_flagged(tokens, raw, text, start, end),
                "leaning": leaning(flags, packed.evidence, symbol, start, prefixes),
            }
        )
    covered = sum(s["end"] - s["start"] for s in spans)
    return {
        "id": item["id"],
        "answer": text,
        "tokens": len(tokens),
        "flag_seconds": round(seconds, 2),
        "flagged_fraction": round(covered / max(len(text), 1), 3),
        "symbols": labelled,
        "spans": [(s["text"], s["score"]) for s in spans],
    }


def leaning(flags, evidence, symbol: str, start: int, prefixes) -> bool | None:
    """For a symbol named by exactly one passage: does its sentence lean most on it?"""
    holders = [n for n, e in enumerate(evidence, 1) if symbol in find_symbols(e.text, prefixes)]
    sentences = [f for f in flags if f["type"] == "support" and f["sentence"] is not None]
    mine = [f for f in sentences if f["start"] <= start < f["end"]]
    if len(holders) != 1 or not mine:
        return None
    best = max(mine, key=lambda f: f["log_ratio"])
    return best["passage"] == holders[0]


def summary(results: list[dict]) -> dict[str, Any]:
    kinds = Counter()
    flagged = Counter()
    left = Counter()
    for r in results:
        for s in r["symbols"]:
            kinds[s["kind"]] += 1
            flagged[s["kind"]] += s["flagged"]
            left[s["kind"]] += s["left_only"]
    lean = [s["leaning"] for r in results for s in r["symbols"] if s["leaning"] is not None]
    return {
        "questions": len(results),
        "occurrences": dict(kinds),
        "flagged_rate": {k: round(flagged[k] / kinds[k], 3) for k in kinds},
        "left_only_rate": {k: round(left[k] / kinds[k], 3) for k in kinds},
        "flagged_fraction_of_text": round(
            sum(r["flagged_fraction"] for r in results) / max(len(results), 1), 3
        ),
        "support_points_at_the_holder": f"{sum(lean)}/{len(lean)}",
        "flag_seconds_mean": round(
            sum(r["flag_seconds"] for r in results) / max(len(results), 1), 2
        ),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data-dir", required=True, help="an ingested index of the docs")
    parser.add_argument("--dataset", default=str(DATASET))
    parser.add_argument("--limit", type=int, default=20)
    parser.add_argument("--max-tokens", type=int, default=80)
    parser.add_argument("-k", type=int, default=4, help="passages given to the model")
    args = parser.parse_args()
    config = load_config(environ={**os.environ, "SCIKNOW_DATA_DIR": args.data_dir})
    retriever = build_retriever(config)
    backend = TransformersBackend.from_gguf()
    items = [json.loads(line) for line in Path(args.dataset).read_text().splitlines()]
    prefixes = config.profile.symbol_prefixes
    results = []
    for item in items[: args.limit]:
        results.append(one_question(backend, retriever, item, prefixes, args))
        print(json.dumps(results[-1], ensure_ascii=False), flush=True)
    print(json.dumps(summary(results), indent=1))


if __name__ == "__main__":
    main()
