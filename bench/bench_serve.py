"""Answer and server benchmarks on the embedded backend (run by hand; figures go in the notes).

    python bench/bench_serve.py --data-dir /path/to/petsc-doc-index [--concurrent 20]
    python bench/bench_serve.py --data-dir /path/to/petsc-doc-index --load [--clients 20]
        [--seconds 60] [--abandon 0.25] [--mode extractive|generative] [--max-tokens 96]

1. `ask` in-process over FAQ dev questions: retrieval ms, time to first token,
   tokens/s (median over the questions).
2. `sciknow serve` in its own process: peak RSS (VmHWM) with the index loaded,
   and N concurrent `/ask` requests: answered, failed, p50/p95 latency.
3. `--load` instead: `clients` clients, each from its own loopback address (so each has
   its own per-client limits, as on a real network), ask streamed questions back to
   back for `seconds`; a share `abandon` of the streams hang up at a random point
   (before any byte, after the headers, after the first token). A failure is anything
   but a whole answer for a stream that was not abandoned (an error event, a status
   other than 200, a transport error) and any /health (polled each second) that is not
   200. Reports p50/p95 of the answered requests, the longest any request waited, and
   how long one more question takes after the run.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import socket
import statistics
import subprocess
import sys
import threading
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


def start_server(data_dir: str, env: dict[str, str]) -> tuple[subprocess.Popen, str]:
    """`sciknow serve` on a free port, once /health answers."""
    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "sciknow.ui.cli", "--data-dir", data_dir, "serve",
         "--port", str(port)],
        env={**os.environ, "HF_HUB_OFFLINE": "1", **env},
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and server.poll() is None:
        try:
            if httpx.get(f"{url}/health", timeout=2).status_code == 200:
                return server, url
        except httpx.HTTPError:
            time.sleep(0.5)
    server.kill()
    raise SystemExit("sciknow serve did not come up")


def bench_server(data_dir: str, questions: list[str], concurrent: int) -> dict:
    started = time.perf_counter()
    server, url = start_server(data_dir, {})
    try:
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


def abandon(url: str, address: str, question: str, point: str) -> None:
    """A streamed ask that hangs up `point`: "before" any byte, after the "headers", after
    the first "token"."""
    body = json.dumps({"question": question}).encode()
    head = (
        f"POST /ask HTTP/1.1\r\nHost: bench\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    ).encode()
    until = {"before": None, "headers": b"\r\n\r\n", "token": b"event: token"}[point]
    with socket.socket() as sock:
        sock.settimeout(600)
        sock.bind((address, 0))
        sock.connect(("127.0.0.1", int(url.rsplit(":", 1)[1])))
        sock.sendall(head + body)
        seen = b""
        while until is not None and until not in seen and (chunk := sock.recv(4096)):
            seen += chunk


def streamed_ask(client: httpx.Client, url: str, question: str) -> bool:
    """One whole streamed answer: True when it ended with `answer` and `done`."""
    events = []
    with client.stream("POST", f"{url}/ask", json={"question": question}) as reply:
        if reply.status_code != 200:
            return False
        events = [line for line in reply.iter_lines() if line.startswith("event: ")]
    return events[-2:] == ["event: answer", "event: done"]


def load_client(url: str, n: int, questions: list[str], until: float, abandon_share: float):
    """One client's loop; returns (seconds, ok) per answered request and the abandons."""
    address = f"127.0.1.{n + 1}"
    rng = random.Random(n)
    timings: list[tuple[float, bool]] = []
    abandoned = 0
    transport = httpx.HTTPTransport(local_address=address)
    with httpx.Client(transport=transport, timeout=900) as client:
        while time.monotonic() < until:
            question = rng.choice(questions)
            started = time.perf_counter()
            if rng.random() < abandon_share:
                abandon(url, address, question, rng.choice(["before", "headers", "token"]))
                abandoned += 1
                continue
            try:
                ok = streamed_ask(client, url, question)
            except httpx.HTTPError:
                ok = False
            timings.append((time.perf_counter() - started, ok))
    return timings, abandoned


def bench_load(data_dir: str, questions: list[str], args: argparse.Namespace) -> dict:
    env = {"SCIKNOW_ANSWER__MODE": args.mode, "SCIKNOW_ANSWER__MAX_TOKENS": str(args.max_tokens)}
    if args.mode == "generative":
        env |= {"SCIKNOW_MODELS__BACKEND": "embedded", "SCIKNOW_ANSWER__FALLBACK": "false"}
    server, url = start_server(data_dir, env)
    unhealthy: list[int] = []
    try:
        httpx.post(f"{url}/ask", json={"question": questions[0], "stream": False}, timeout=600)
        until = time.monotonic() + args.seconds
        stop = threading.Event()

        def watch() -> None:
            while not stop.wait(1.0):
                try:
                    status = httpx.get(f"{url}/health", timeout=10).status_code
                except httpx.HTTPError:
                    status = 0
                if status != 200:
                    unhealthy.append(status)

        watcher = threading.Thread(target=watch, daemon=True)
        watcher.start()
        started = time.perf_counter()
        with ThreadPoolExecutor(max_workers=args.clients) as pool:
            runs = list(
                pool.map(
                    lambda n: load_client(url, n, questions, until, args.abandon),
                    range(args.clients),
                )
            )
        wall = time.perf_counter() - started
        stop.set()
        after = time.perf_counter()
        last = httpx.post(
            f"{url}/ask", json={"question": questions[1], "stream": False}, timeout=600
        )
        after_s = time.perf_counter() - after
        stopping = time.perf_counter()
        server.terminate()
        server.wait(timeout=60)
        stop_s = time.perf_counter() - stopping
    finally:
        if server.poll() is None:
            server.kill()
    timings = [t for run, _ in runs for t in run]
    seconds = [t for t, _ in timings]
    return {
        "clients": args.clients,
        "seconds": args.seconds,
        "mode": args.mode,
        "wall_s": round(wall, 1),
        "answered": sum(ok for _, ok in timings),
        "abandoned": sum(a for _, a in runs),
        "failed": sum(not ok for _, ok in timings) + len(unhealthy),
        "unhealthy_health_polls": len(unhealthy),
        "latency_s_p50": round(percentile(seconds, 50), 2),
        "latency_s_p95": round(percentile(seconds, 95), 2),
        "longest_wait_s": round(max(seconds), 2),
        "next_ask_after_run_s": round(after_s, 2),
        "next_ask_status": last.status_code,
        "sigterm_exit_s": round(stop_s, 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", required=True)
    parser.add_argument("--questions", type=Path, default=Path("../shared/eval/faq_dev.jsonl"))
    parser.add_argument("--n", type=int, default=10, help="questions for the in-process run")
    parser.add_argument("--concurrent", type=int, default=20)
    parser.add_argument("--out", type=Path, default=Path("bench/results/serve.json"))
    parser.add_argument("--load", action="store_true", help="the load run instead (3. above)")
    parser.add_argument("--clients", type=int, default=20)
    parser.add_argument("--seconds", type=float, default=60)
    parser.add_argument("--abandon", type=float, default=0.25, help="share of streams dropped")
    parser.add_argument("--mode", choices=["extractive", "generative"], default="extractive")
    parser.add_argument("--max-tokens", type=int, default=96, help="generative answers")
    args = parser.parse_args()
    questions = [json.loads(line)["question"] for line in args.questions.open()]
    if args.load:
        results = bench_load(args.data_dir, questions, args)
        print(json.dumps(results, indent=2))
        out = args.out.with_name(f"serve_load_{args.mode}.json")
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(results, indent=2))
        return
    results = {"ask": bench_ask(args.data_dir, questions[: args.n])}
    print(json.dumps(results, indent=2))
    results["server"] = bench_server(args.data_dir, questions, args.concurrent)
    print(json.dumps(results, indent=2))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
