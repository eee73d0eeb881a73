"""Backend benchmarks through the `Backend` protocol (run by hand; figures go in the notes).

    python bench/bench_backend.py [--backends transformers,transformers:float32,embedded]
                                  [--vllm-url http://127.0.0.1:8000]
                                  [--out bench/results/backend.json]

Each backend runs in its own process, so peak RSS (VmHWM) is that backend's own:
load time, time to first token and decode tokens/s of a greedy chat reply, time to
first token after a RAG-sized prompt (~1,200 tokens), `score` tokens/s on a cold
300-token sequence, and `score` of 20 attribution-like candidates (a shared 280-token
prefix, each with its own 20-token suffix). `transformers:DTYPE` picks the torch dtype.
For vLLM, the RSS is the client's; the server's processes are not ours to measure.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from sciknow.serve.backends.base import Backend
from sciknow.serve.backends.factory import make_backend

QUESTION = "How do I make KSPSolve print the true residual norm at every iteration?"
TEXT = (
    "PETSc's KSP object manages Krylov subspace methods for linear systems. After "
    "KSPSetOperators(ksp, A, P) and KSPSetFromOptions(ksp), KSPSolve(ksp, b, x) solves "
    "Ax = b; -ksp_type gmres -pc_type ilu selects GMRES with ILU(0), and "
    "-ksp_monitor_true_residual prints the unpreconditioned residual norm at each step. "
)


def peak_rss_mib() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def bench_generate(backend: Backend, runs: int = 3, max_tokens: int = 64) -> dict[str, float]:
    """Greedy replies; each run opens with its own system message, so no run finds its
    prompt in a KV or prefix cache (the time to first token includes the prompt)."""
    ttft, rates, counts = [], [], []
    for run in range(runs):
        messages = [
            {"role": "system", "content": f"Run {run}. You answer questions about PETSc."},
            {"role": "user", "content": QUESTION},
        ]
        start = time.perf_counter()
        first = None
        count = 0
        for _token in backend.generate(messages, max_tokens=max_tokens, top_logprobs=5):
            count += 1
            first = first or time.perf_counter()
        end = time.perf_counter()
        ttft.append((first or end) - start)
        rates.append((count - 1) / (end - first) if first and count > 1 else 0.0)
        counts.append(count)
    return {
        "ttft_s": round(statistics.median(ttft), 3),
        "decode_tokens_per_s": round(statistics.median(rates), 1),
        "tokens": statistics.median(counts),
    }


def bench_long_prompt(backend: Backend) -> dict[str, float]:
    """Time to first token after a prompt the size of a 6-passage RAG prompt."""
    messages = [{"role": "user", "content": TEXT * 18 + "\n\n" + QUESTION}]
    start = time.perf_counter()
    next(iter(backend.generate(messages, max_tokens=2)))
    return {
        "long_prompt_tokens": len(backend.chat_tokens(messages)),
        "long_prompt_ttft_s": round(time.perf_counter() - start, 2),
    }


def bench_score(backend: Backend) -> dict[str, float]:
    ids = (backend.tokenize(TEXT) * 10)[:300]
    unrelated = [[ids[0] + 1, ids[0] + 1]]  # shares no prefix: later scores start cold
    times = []
    for _ in range(3):
        backend.score(unrelated)
        start = time.perf_counter()
        backend.score([ids], top_k=5)
        times.append(time.perf_counter() - start)
    suffixes = (backend.tokenize(TEXT[::-1]) * 5)[:40]
    candidates = [ids[:280] + suffixes[i : i + 20] for i in range(20)]
    backend.score(unrelated)
    start = time.perf_counter()
    backend.score(candidates, top_k=5)
    batch = time.perf_counter() - start
    return {
        "score_300_s": round(statistics.median(times), 3),
        "score_tokens_per_s": round(300 / statistics.median(times), 1),
        "candidates_20x300_s": round(batch, 3),
    }


def build(spec: str, vllm_url: str) -> Backend:
    name, _, dtype = spec.partition(":")
    options: dict[str, Any] = {"n_ctx": 2048}
    if name == "transformers":
        options = {"dtype": dtype or "auto", "threads": 2, "context_window": 2048}
    elif name == "vllm":
        options = {"url": vllm_url}
    return make_backend(name, **options)


def run_one(name: str, vllm_url: str) -> dict[str, Any]:
    start = time.perf_counter()
    backend = build(name, vllm_url)
    result: dict[str, Any] = {
        "backend": backend.name,
        "load_s": round(time.perf_counter() - start, 2),
    }
    result |= bench_generate(backend)
    result |= bench_long_prompt(backend)
    result |= bench_score(backend)
    result["peak_rss_mib"] = round(peak_rss_mib())
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--backends", default="transformers,embedded", help="comma list (transformers:DTYPE)"
    )
    parser.add_argument("--vllm-url", default="", help="also benchmark this vLLM server")
    parser.add_argument("--out", type=Path, help="write the results as JSON here too")
    parser.add_argument("--one", help=argparse.SUPPRESS)  # the per-backend child process
    args = parser.parse_args()
    if args.one:
        print(json.dumps(run_one(args.one, args.vllm_url)))
        return
    names = args.backends.split(",") + ["vllm"] * bool(args.vllm_url)
    results = []
    for name in names:
        cmd = [sys.executable, __file__, "--one", name, "--vllm-url", args.vllm_url]
        child = subprocess.run(cmd, capture_output=True, text=True, check=True)
        results.append(json.loads(child.stdout.strip().splitlines()[-1]))
        print(json.dumps(results[-1]), flush=True)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
