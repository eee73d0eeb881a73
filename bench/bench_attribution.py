"""Token attribution and answer flags on SmolLM2-135M (run by hand; figures go in the notes).

    python bench/bench_attribution.py [--backend transformers|embedded] [--dtype D] [--data-dir DIR]

1. A 30-token prompt + 30-token response (plain text, positions 1..29):
   - the prior's top-K needed for ε ≤ 1e-3 and 1e-2 at every position (from the full
     next-token distributions), hence the token evaluations of the fast path at that ε and
     of brute force (every vocabulary token at every position);
   - seconds per token evaluation, timed on candidate batches at three positions, which
     turns those counts into wall-clock estimates;
   - the fast path run with practical caps (`--caps`): evaluations, seconds, LogA widths;
   - the LogA point estimate against K at three positions (how fast it settles);
   - the cost at other prompt/response lengths with K fixed.
2. Answer flags for a 64-token answer over 4 passages: seconds for the uncertain spans
   alone, with the support of 2 passages (as cited) and of all 4. The answer is a fixed text
   scored as if generated (the model's own answers stop early); passages come from the
   index in `--data-dir` (the question's top 4), else from the corpus snapshot.

Prints one JSON document. Wall seconds depend on what else runs on the machine: the load
average and this process's CPU seconds are recorded with them.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from sciknow.serve.attribution import STRATA, attribute, candidate_terms, marginalize
from sciknow.serve.backends.base import Backend, GenToken, ScoredSequence
from sciknow.serve.backends.factory import make_backend
from sciknow.serve.flags import answer_flags

PROMPT = (
    "In PETSc, how do I set the relative convergence tolerance of a KSP linear solver, and "
    "which command-line option shows the true residual norm at each iteration?"
)
RESPONSE = (
    " Call KSPSetTolerances(ksp, rtol, abstol, dtol, maxits) or pass -ksp_rtol on the command "
    "line; -ksp_monitor_true_residual prints the true residual norm."
)
QUESTION = "How can I monitor the true residual norm of a KSP solve?"
ANSWER = (
    " Pass -ksp_monitor_true_residual on the command line [1]: at each iteration it prints the"
    " norm of the true residual b - Ax next to the preconditioned residual norm. In code, call"
    " KSPMonitorSet() with KSPMonitorTrueResidual [2]. Add -ksp_converged_reason to see why the"
    " solve stopped, and -ksp_view to check the solver and preconditioner."
)
CORPUS = Path(__file__).resolve().parents[2] / "shared" / "corpus" / "petsc-doc"
RESULTS = Path(__file__).resolve().parent / "results"
PAIRS = {  # plain-text prompt/response pairs of the exact-value comparison (issue 13)
    "einstein": (
        "What year did Albert Einstein visit Mars?",
        " Albert Einstein never visited Mars.",
    ),
}


def clock() -> dict[str, float]:
    return {"wall": time.perf_counter(), "cpu": time.process_time()}


def since(start: dict[str, float]) -> dict[str, float]:
    now = clock()
    return {k: round(now[k] - start[k], 2) for k in now}


def load_backend(name: str, dtype: str) -> Backend:
    options = {"n_ctx": 2048} if name == "embedded" else {"dtype": dtype}
    return make_backend(name, **options)


def top_needed(prior: list[tuple[int, float]], token: int, epsilon: float) -> int:
    """Candidates the fast path evaluates at ε: the top-K leaving ≤ ε, plus the token."""
    cum = np.cumsum(np.exp([lp for _, lp in prior]))
    k = int(np.searchsorted(cum, 1 - epsilon)) + 1
    return min(k, len(prior)) + (token not in {v for v, _ in prior[:k]})


def counts(backend: Backend, prompt: list[int], response: list[int]) -> dict[str, Any]:
    """Per-position K at ε = 1e-3 and 1e-2, and the evaluations they imply."""
    ids, n = prompt + response, len(prompt)
    vocab = backend.max_top_k
    base = backend.score([ids], top_k=vocab)[0]
    suffix = {mu: len(ids) - mu for mu in range(1, n)}
    out: dict[str, Any] = {"brute_force": len(ids) + (vocab - 1) * sum(suffix.values())}
    for eps in (1e-3, 1e-2):
        ks = {mu: top_needed(base.top[mu], ids[mu], eps) for mu in suffix}
        out[f"k_at_{eps:g}"] = [ks[mu] for mu in suffix]
        out[f"fast_at_{eps:g}"] = len(ids) + sum((ks[mu] - 1) * suffix[mu] for mu in suffix)
    out["entropies"] = [round(base.entropies[mu], 2) for mu in suffix]
    return out


def seconds_per_evaluation(
    backend: Backend, prompt: list[int], response: list[int], k: int
) -> dict[str, float]:
    """Wall and CPU seconds per token evaluation, on k candidates at three positions."""
    ids = prompt + response
    base = backend.score([ids], top_k=k)[0]
    out = {}
    for mu in (1, len(prompt) // 2, len(prompt) - 1):
        seqs = [[*ids[:mu], v, *ids[mu + 1 :]] for v, _ in base.top[mu][:k]]
        start = clock()
        backend.score(seqs)
        spent = since(start)
        tokens = k * (len(ids) - mu)
        out[f"mu_{mu}"] = {key: round(v / tokens, 5) for key, v in spent.items()}
    return out


def fast_runs(
    backend: Backend, prompt: list[int], response: list[int], caps: list[int]
) -> list[dict]:
    """The fast path at ε = 1e-3, width 0.05, with at most `cap` candidates per position."""
    runs = []
    for cap in caps:
        start = clock()
        result = attribute(backend, prompt, response, epsilon=1e-3, max_candidates=cap)
        widths = [s.width for s in result.positions]
        runs.append(
            {
                "max_candidates": cap,
                "evaluations": result.evaluations,
                "seconds": since(start),
                "epsilon_median": statistics.median(s.epsilon for s in result.positions),
                "width_median": round(statistics.median(widths), 2),
                "width_max": round(max(widths), 2),
                "narrower_than_0.05": sum(w < 0.05 for w in widths),
                "positions": len(widths),
                "loga": [round(s.loga, 3) for s in result.positions],
            }
        )
    return runs


def convergence(
    backend: Backend, prompt: list[int], response: list[int], ks: list[int]
) -> dict[str, list]:
    """LogA (point, certified width) with the top-K candidates, K growing, at 3 positions."""
    out = {}
    for mu in (2, len(prompt) // 2, len(prompt) - 1):
        rows = []
        for k in ks:
            r = attribute(
                backend, prompt, response, [mu], epsilon=0.0, width=math.inf, max_candidates=k
            )
            s = r.positions[0]
            rows.append({"k": k, "loga": round(s.loga, 4), "width": round(s.width, 2)})
            rows[-1] |= {"epsilon": round(s.epsilon, 4), "h": round(s.h, 3)}
        out[f"mu_{mu}"] = rows
    return out


def scaling(backend: Backend, prompt: list[int], response: list[int], k: int) -> list[dict]:
    """Fast-path evaluations and seconds at fixed K for shorter prompts and responses."""
    out = []
    for n, m in ((15, 30), (30, 15), (30, 30)):
        start = clock()
        r = attribute(
            backend, prompt[:n], response[:m], epsilon=0.0, width=math.inf, max_candidates=k
        )
        out.append(
            {"prompt": n, "response": m, "k": k, "evaluations": r.evaluations} | since(start)
        )
    return out


def passages(data_dir: str | None) -> list[Any]:
    """Four `Evidence` for QUESTION: from the index when given, else corpus pages."""
    from sciknow.records import Evidence

    if data_dir:
        from sciknow.config import load_config
        from sciknow.serve.factory import build_retriever

        config = load_config(environ={**os.environ, "SCIKNOW_DATA_DIR": data_dir})
        return build_retriever(config).search(QUESTION, 4)
    pages = ["manual/ksp.md", "manual/snes.md", "manual/mat.md", "manual/vec.md"]
    return [
        Evidence(
            p, p, " ".join((CORPUS / p).read_text().split()[200:330]), p, p, "doc", "docs", True
        )
        for p in pages
    ]


def as_generated(backend: Backend, messages: list, text: str, n: int) -> list[GenToken]:
    """The first `n` tokens of `text` as if generated after `messages`, with their scores."""
    prompt, ids = backend.chat_tokens(messages), backend.tokenize(text)[:n]
    scored = backend.score([prompt + ids])[0]
    texts = [backend.detokenize(ids[: i + 1]) for i in range(len(ids))]
    pieces = [t[len(before) :] for before, t in zip(["", *texts], texts, strict=False)]
    return [
        GenToken(piece, token, scored.logprobs[len(prompt) + i], scored.entropies[len(prompt) + i])
        for i, (piece, token) in enumerate(zip(pieces, ids, strict=True))
    ]


def flag_timing(backend: Backend, data_dir: str | None) -> dict[str, Any]:
    """Flags of a 64-token answer (ANSWER, scored as if generated) over 4 passages."""
    from sciknow.serve.prompt import pack

    packed = pack(QUESTION, passages(data_dir), lambda m: len(backend.chat_tokens(m)), 2048, 64)
    tokens = as_generated(backend, packed.messages, ANSWER, 64)
    text = "".join(t.text for t in tokens).strip()
    out: dict[str, Any] = {"prompt_tokens": packed.prompt_tokens, "answer_tokens": len(tokens)}
    for name, numbers in (("spans_only", []), ("cited_1_2", [1, 2]), ("all_4", [1, 2, 3, 4])):
        start = clock()
        flags = answer_flags(backend, packed.messages, tokens, text, numbers)
        out[name] = since(start)
    out["spans"] = [(f["text"], f["score"]) for f in flags if f["type"] == "uncertain_span"]
    out["support"] = [
        (f["passage"], f["log_ratio"])
        for f in flags
        if f["type"] == "support" and f["sentence"] is None
    ]
    return out


def priors(backend: Backend, ids: list[int], n: int) -> np.ndarray:
    """log p(v | ids[:mu]) for every token v, one row per prompt position mu < n (row 0 empty)."""
    vocab = backend.max_top_k
    top = backend.score([ids[:n]], top_k=vocab)[0].top
    table = np.full((n, vocab), -np.inf)
    for mu in range(1, n):
        tokens, values = zip(*top[mu], strict=True)
        table[mu, list(tokens)] = values
    return table


class TableBackend:
    """`score` served from the stored exact terms of one pair (`exact_values`), so that the
    fast path runs offline, for many seeds, exactly as on the model: a candidate sequence
    (one token changed at a prompt position mu) gets log p(v | s_<mu) at mu, the rest of ℓ_den
    at mu + 1 and ℓ_num − ℓ_den at the first response position (the sums the attribution code
    takes)."""

    name, context_window = "table", 4096

    def __init__(self, base: ScoredSequence, n: int, prior: np.ndarray, terms: dict) -> None:
        self.base, self.n, self.prior, self.terms = base, n, prior, terms
        self.vocab_size = self.max_top_k = prior.shape[1]
        order = np.argsort(-prior, axis=1)
        self._top = [[(int(v), float(prior[mu, v])) for v in row] for mu, row in enumerate(order)]

    def score(self, sequences: Sequence[Sequence[int]], top_k: int = 0) -> list[ScoredSequence]:
        return [self._one(list(seq), top_k) for seq in sequences]

    def special_ids(self) -> frozenset[int]:
        return frozenset()

    def _one(self, seq: list[int], top_k: int) -> ScoredSequence:
        ids = self.base.ids
        if seq == ids:
            top = [t[:top_k] for t in self._top] + [[]] * (len(ids) - self.n)
            return ScoredSequence(ids, self.base.logprobs, top, self.base.entropies)
        mu = next(i for i, (a, b) in enumerate(zip(seq, ids, strict=True)) if a != b)
        v = seq[mu]
        den, num = self.terms[mu][v]
        logprobs: list[float | None] = [None] + [0.0] * (len(ids) - 1)
        logprobs[mu] = float(self.prior[mu, v])
        logprobs[mu + 1] = den - logprobs[mu]
        logprobs[self.n] = (logprobs[self.n] or 0.0) + num - den
        return ScoredSequence(seq, logprobs, [[] for _ in seq], [None] * len(seq))


def exact_values(backend: Backend, pair: str) -> dict[str, Any]:
    """Exact (full-vocabulary) attribution of a pair, position by position, cheapest (shortest
    suffix) first. Each finished position is written at once to
    `results/exact-<pair>.json` (values, seconds) and `exact-<pair>-<mu>.npy` (the terms
    ℓ_den, ℓ_num of every token, for studying estimators offline); positions already in the
    JSON are skipped, so an interrupted run resumes."""
    prompt_text, response_text = PAIRS[pair]
    prompt, response = backend.tokenize(prompt_text), backend.tokenize(response_text)
    ids, vocab = prompt + response, backend.max_top_k
    RESULTS.mkdir(exist_ok=True)
    out_path = RESULTS / f"exact-{pair}.json"
    base = backend.score([ids])[0]
    report = json.loads(out_path.read_text()) if out_path.exists() else {}
    report |= {"backend": backend.name, "prompt": prompt_text, "response": response_text}
    report |= {"prompt_ids": prompt, "response_ids": response, "vocab": vocab}
    report["log_p_response"] = math.fsum(base.logprobs[len(prompt) :])
    if not (RESULTS / f"exact-{pair}-prior.npy").exists():
        np.save(RESULTS / f"exact-{pair}-prior.npy", priors(backend, ids, len(prompt)))
    done = report.setdefault("positions", {})
    for mu in range(len(prompt) - 1, 0, -1):
        if str(mu) in done:
            continue
        start = clock()
        terms = candidate_terms(backend, prompt, response, mu, range(vocab))
        np.save(RESULTS / f"exact-{pair}-{mu}.npy", terms)
        s = marginalize(terms[:, 0], terms[:, 1], ids[mu], 0.0, mu, ids[mu])
        spent = since(start)
        evaluations = (vocab - 1) * (len(ids) - mu)
        done[str(mu)] = {
            "token": backend.detokenize([ids[mu]]),
            "loga": s.loga,
            "log_p_marginal": s.log_p_marginal,
            "log_z_den": s.log_z_den[0],
            "log_z_num": s.log_z_num[0],
            "h_i": s.h_i,
            "h": s.h,
            "evaluations": evaluations,
            "seconds": spent,
            "evaluations_per_second": round(evaluations / spent["wall"], 1),
        }
        out_path.write_text(json.dumps(report, indent=1, ensure_ascii=False))
        print(json.dumps({mu: done[str(mu)]}, ensure_ascii=False), flush=True)
    return report


def estimate_vs_exact(
    backend: Backend,
    pair: str,
    seeds: int,
    samples: list[int],
    strata: int,
    real: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The estimate against the exact values of `exact_values` (the positions done so far):
    1. one real run of the fast path (defaults, seed 0): seconds, token evaluations against
       brute force's, and per position LogA, its error, se, the 95 % interval and the certified
       one (`real`: a previous run's, compared again); 2. the same code over `TableBackend` for
       `seeds` seeds at each sample size: per position the mean and worst error, the share of
       runs within 0.05 nats, the interval's coverage and mean width (the real run's draw is
       seed 0 of the table's)."""
    report = json.loads((RESULTS / f"exact-{pair}.json").read_text())
    prompt, response = report["prompt_ids"], report["response_ids"]
    ids, n = prompt + response, len(prompt)
    exact = {int(mu): v["loga"] for mu, v in report["positions"].items()}
    prior_path = RESULTS / f"exact-{pair}-prior.npy"
    if not prior_path.exists():
        np.save(prior_path, priors(backend, ids, n))
    out: dict[str, Any] = {"pair": pair, "samples": samples[0], "strata": strata}
    out["real"] = real or _real_run(backend, prompt, response, samples[0], strata)
    for row in out["real"]["positions"]:
        if row["position"] in exact:
            value = exact[row["position"]]
            row |= {"exact": round(value, 4), "error": round(row["loga"] - value, 4)}
            row["covered"] = bool(row["ci"][0] <= value <= row["ci"][1])
    print(json.dumps({"real": out["real"]}, ensure_ascii=False), flush=True)
    terms = {mu: np.load(RESULTS / f"exact-{pair}-{mu}.npy") for mu in exact}
    table = TableBackend(backend.score([ids])[0], n, np.load(prior_path), terms)
    out["offline"] = {}
    for size in samples:
        runs = [
            attribute(table, prompt, response, sorted(exact), samples=size, strata=strata, seed=i)
            for i in range(seeds)
        ]
        by_position = zip(*(r.positions for r in runs), strict=True)
        out["offline"][size] = [_summary(list(p), exact[p[0].position]) for p in by_position]
        print(json.dumps({size: out["offline"][size]}, ensure_ascii=False), flush=True)
    return out


def _real_run(
    backend: Backend, prompt: list[int], response: list[int], samples: int, strata: int
) -> dict[str, Any]:
    """The fast path on the model at every prompt position: seconds, evaluations, values."""
    ids, vocab = prompt + response, backend.max_top_k
    start = clock()
    real = attribute(backend, prompt, response, samples=samples, strata=strata)
    spent = since(start)
    brute = len(ids) + (vocab - 1) * sum(len(ids) - s.position for s in real.positions)
    return {
        "seconds": spent,
        "evaluations": real.evaluations,
        "brute_force_evaluations": brute,
        "share_of_brute_force": round(real.evaluations / brute, 5),
        "brute_force_seconds_estimated": round(brute * spent["wall"] / real.evaluations),
        "positions": [_row(s) for s in real.positions],
    }


def _row(s: Any) -> dict[str, Any]:
    row = {"position": s.position, "loga": round(s.loga, 4), "se": round(s.loga_se, 4)}
    row |= {"ci": [round(x, 4) for x in s.loga_ci], "ci_width": round(np.ptp(s.loga_ci), 4)}
    row |= {"certified": [round(x, 2) for x in s.loga_bounds], "certified_width": round(s.width, 2)}
    return row | {"candidates": s.candidates, "sampled": s.sampled}


def _summary(scores: list[Any], exact: float) -> dict[str, Any]:
    errors = np.array([s.loga - exact for s in scores])
    covered = [s.loga_ci[0] <= exact <= s.loga_ci[1] for s in scores]
    return {
        "position": scores[0].position,
        "exact": round(exact, 4),
        "mean_abs_error": round(float(np.abs(errors).mean()), 4),
        "max_abs_error": round(float(np.abs(errors).max()), 4),
        "bias": round(float(errors.mean()), 4),
        "within_0.05": round(float(np.mean(np.abs(errors) <= 0.05)), 3),
        "coverage": round(float(np.mean(covered)), 3),
        "mean_se": round(float(np.mean([s.loga_se for s in scores])), 4),
        "mean_ci_width": round(float(np.mean([np.ptp(s.loga_ci) for s in scores])), 4),
        "certified_width": round(float(np.mean([s.width for s in scores])), 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--backend", choices=["transformers", "embedded"], default="transformers")
    parser.add_argument("--dtype", default="auto", help="transformers: auto, float32, bfloat16")
    parser.add_argument("--data-dir", help="an ingested index for the flags' passages")
    parser.add_argument("--caps", default="4,16", help="max candidates for the fast-path runs")
    parser.add_argument("--ks", default="4,16,64", help="K values of the convergence table")
    parser.add_argument(
        "--exact", choices=sorted(PAIRS), help="only compute the exact values of this pair"
    )
    parser.add_argument(
        "--estimate", choices=sorted(PAIRS), help="only compare the estimate with the exact values"
    )
    parser.add_argument("--seeds", type=int, default=100, help="--estimate: offline seeds")
    parser.add_argument(
        "--samples", default="384,128,1024", help="--estimate: tail samples (the first: real run)"
    )
    parser.add_argument("--strata", type=int, default=STRATA, help="--estimate: prior bands")
    parser.add_argument(
        "--offline", action="store_true", help="--estimate: keep the last real run, redo the rest"
    )
    parser.add_argument(
        "--skip", default="", help="comma list: counts,timing,fast,convergence,scaling,flags"
    )
    args = parser.parse_args()
    skip = set(args.skip.split(","))
    report: dict[str, Any] = {"load_average_start": os.getloadavg()}
    start = clock()
    backend = load_backend(args.backend, args.dtype)
    report |= {"backend": backend.name, "load_seconds": since(start)}
    if args.exact:
        exact_values(backend, args.exact)
        return
    if args.estimate:
        sizes = [int(x) for x in args.samples.split(",")]
        path = RESULTS / f"estimate-{args.estimate}.json"
        real = json.loads(path.read_text())["real"] if args.offline else None
        found = estimate_vs_exact(backend, args.estimate, args.seeds, sizes, args.strata, real)
        path.write_text(json.dumps(report | found, indent=1, ensure_ascii=False))
        return
    prompt, response = backend.tokenize(PROMPT)[:30], backend.tokenize(RESPONSE)[:30]
    parts = {
        "counts": lambda: counts(backend, prompt, response),
        "timing": lambda: seconds_per_evaluation(backend, prompt, response, 32),
        "fast": lambda: fast_runs(
            backend, prompt, response, [int(c) for c in args.caps.split(",")]
        ),
        "convergence": lambda: convergence(
            backend, prompt, response, [int(k) for k in args.ks.split(",")]
        ),
        "scaling": lambda: scaling(backend, prompt, response, 4),
        "flags": lambda: flag_timing(backend, args.data_dir),
    }
    for name, run in parts.items():
        if name not in skip:
            report[name] = run()
            print(json.dumps({name: report[name]}, ensure_ascii=False), flush=True)
    report["load_average_end"] = os.getloadavg()
    print(json.dumps(report, indent=1, ensure_ascii=False))


if __name__ == "__main__":
    main()
