"""Answer and server benchmarks on the embedded backend (run by hand; figures go in the notes).

    python bench/bench_serve.py --data-dir /path/to/petsc-doc-index [--concurrent 20]

1. `ask` in-process over FAQ dev questions: retrieval ms, time to first token,
   tokens/s (median over the questions).
2. `sciknow serve` in its own process: peak RSS (VmHWM) with the index loaded,
   and N concurrent `/ask` requests: answered, failed, p50/p95 latency.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx

from sciknow.config import load_config
from sciknow.eval.metrics import percentile
from sciknow.serve.factory import build_assistant


def bench_ask(data_dir: str, questions: list[str]) -> dict:
    config = load_config(environ={**os.environ, "SCIKNOW_DATA_DIR": data_dir})
    assistant = build_assistant(config)
    assistant.answer("warm up: what is KSP?")
    rows = [assistant.answer(q).timings for q in questions]
    answered = [t for t in rows if "ttft_ms" in t]
    return {
        "questions": len(rows),
        "abstained": len(rows) - len(answered),
        "retrieval_ms_p50": round(statistics.median(t["retrieval_ms"] for t in rows), 1),
        "ttft_ms_p50": round(statistics.median(t["ttft_ms"] for t in answered), 1),
        "tokens_per_s_p50": round(statistics.median(t["tokens_per_s"] for t in answered), 1),
        "prompt_tokens_p50": statistics.median(t["prompt_tokens"] for t in answered),
    }


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def peak_rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def bench_server(data_dir: str, questions: list[str], concurrent: int) -> dict:
    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "sciknow.ui.cli", "--data-dir", data_dir, "serve",
         "--port", str(port)],
        env={**os.environ, "HF_HUB_OFFLINE": "1"},
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        started = time.perf_counter()
        while True:
            try:
                if httpx.get(f"{url}/health", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.5)
            if server.poll() is not None or time.perf_counter() - started > 300:
                raise SystemExit("sciknow serve did not come up")
        startup_s = time.perf_counter() - started
        rss_loaded = peak_rss_mib(server.pid)

        def ask(question: str) -> tuple[bool, float]:
            t0 = time.perf_counter()
            try:
                reply = httpx.post(
                    f"{url}/ask", json={"question": question, "stream": False}, timeout=1800
                )
                ok = reply.status_code == 200 and bool(reply.json()["text"])
            except httpx.HTTPError:
                ok = False
            return ok, time.perf_counter() - t0

        batch = [questions[i % len(questions)] for i in range(concurrent)]
        with ThreadPoolExecutor(max_workers=concurrent) as pool:
            results = list(pool.map(ask, batch))
        latencies = [seconds for _, seconds in results]
        return {
            "startup_s": round(startup_s, 1),
            "peak_rss_mib_loaded": round(rss_loaded),
            "peak_rss_mib_after_load_test": round(peak_rss_mib(server.pid)),
            "requests": concurrent,
            "answered": sum(ok for ok, _ in results),
            "failed": sum(not ok for ok, _ in results),
            "latency_s_p50": round(percentile(latencies, 50), 1),
            "latency_s_p95": round(percentile(latencies, 95), 1),
        }
    finally:
        server.terminate()
        server.wait(timeout=30)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", required=True)
    parser.add_argument("--questions", type=Path, default=Path("../shared/eval/faq_dev.jsonl"))
    parser.add_argument("--n", type=int, default=10, help="questions for the in-process run")
    parser.add_argument("--concurrent", type=int, default=20)
    parser.add_argument("--out", type=Path, default=Path("bench/results/serve.json"))
    args = parser.parse_args()
    questions = [json.loads(line)["question"] for line in args.questions.open()]
    results = {"ask": bench_ask(args.data_dir, questions[: args.n])}
    print(json.dumps(results, indent=2))
    results["server"] = bench_server(args.data_dir, questions, args.concurrent)
    print(json.dumps(results, indent=2))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
