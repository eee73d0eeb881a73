"""MCP round trips against in-process calls (run by hand; figures go in
docs/operations.md, "MCP server (coding agents)").

    python bench/bench_mcp.py [--data-dir DIR] [--questions ../shared/eval/faq_dev.jsonl]

Starts `sciknow serve` over the index (extractive answers: nothing loads a model) and
`sciknow mcp` over stdio as an agent would, then times, per FAQ question, `search` (k = 8)
and `lookup` of each library name the question uses, through the SDK's `ClientSession`
and in this process (`HybridRetriever.search`, `routes_tools.lookup`), alternated so both
see the same load; each is the fastest of `--repeat` runs. The MCP path adds JSON-RPC over
pipes, the MCP server, HTTP to the API and JSON both ways; the target is a p95 of that
overhead (per call: MCP minus in-process) under 100 ms.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
from mcp import ClientSession, StdioServerParameters, stdio_client

from sciknow.config import load_config
from sciknow.eval.metrics import percentile
from sciknow.ingest.symbols import find_symbols
from sciknow.serve.factory import build_retriever
from sciknow.serve.web.routes_tools import lookup


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def elapsed_ms(started: float) -> float:
    return (time.perf_counter() - started) * 1000


async def measure(
    config: Any, api_url: str, questions: list[str], names: list[str], repeat: int
) -> dict[str, dict[str, list[float]]]:
    """Per call, the in-process time and the MCP round trip, alternated so that both see
    the same load."""
    retriever = build_retriever(config)
    store, profile, weights = retriever.store, config.profile, config.retrieval.kind_weights
    env = {**os.environ, "SCIKNOW_MCP__API_URL": api_url}
    params = StdioServerParameters(
        command=sys.executable, args=["-m", "sciknow.ui.cli", "mcp"], env=env
    )
    async with stdio_client(params) as (read, write), ClientSession(read, write) as session:
        await session.initialize()

        async def pair(local: Callable[[], Any], tool: str, arguments: dict) -> tuple[float, float]:
            """The fastest in-process run and MCP round trip of `repeat`, alternated."""
            best_local = best_mcp = float("inf")
            for _ in range(repeat):
                started = time.perf_counter()
                local()
                best_local = min(best_local, elapsed_ms(started))
                started = time.perf_counter()
                result = await session.call_tool(tool, arguments)
                best_mcp = min(best_mcp, elapsed_ms(started))
                assert not result.is_error, result.content[0].text
            return best_local, best_mcp

        calls = {
            "search": [
                (lambda q=q: retriever.search(q, 8), "search", {"query": q, "k": 8})
                for q in questions
            ],
            "lookup": [
                (lambda n=n: lookup(store, profile, n, weights), "lookup", {"name": n})
                for n in names
            ],
        }
        for row in (calls["search"][0], calls["lookup"][0]):  # warm up both paths
            await pair(*row)
        times: dict[str, dict[str, list[float]]] = {}
        for kind, rows in calls.items():
            measured = [await pair(*row) for row in rows]
            times[kind] = {"local": [m[0] for m in measured], "mcp": [m[1] for m in measured]}
        return times


def summary(local: list[float], remote: list[float]) -> dict[str, float]:
    overhead = [r - loc for loc, r in zip(local, remote, strict=True)]
    return {
        "calls": len(local),
        "in_process_p50_ms": round(percentile(local, 50), 1),
        "in_process_p95_ms": round(percentile(local, 95), 1),
        "mcp_p50_ms": round(percentile(remote, 50), 1),
        "mcp_p95_ms": round(percentile(remote, 95), 1),
        "overhead_p50_ms": round(percentile(overhead, 50), 1),
        "overhead_p95_ms": round(percentile(overhead, 95), 1),
    }


def start_serve(data_dir: str) -> tuple[subprocess.Popen, str]:
    port = free_port()
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "SCIKNOW_ANSWER__MODE": "extractive"}
    env.pop("SCIKNOW_API_TOKEN", None)
    server = subprocess.Popen(
        [sys.executable, "-m", "sciknow.ui.cli", "--data-dir", data_dir, "serve",
         "--port", str(port)],
        env=env,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 300
    while True:
        try:
            if httpx.get(f"{url}/health", timeout=2).status_code == 200:
                return server, url
        except httpx.HTTPError:
            time.sleep(0.5)
        if server.poll() is not None or time.monotonic() > deadline:
            raise SystemExit("sciknow serve did not come up")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", help="the index (default: the config's data_dir)")
    parser.add_argument("--questions", type=Path, default=Path("../shared/eval/faq_dev.jsonl"))
    parser.add_argument("--n", type=int, default=50, help="questions")
    parser.add_argument("--repeat", type=int, default=5, help="runs per call; the fastest counts")
    parser.add_argument("--out", type=Path, default=Path("bench/results/mcp.json"))
    args = parser.parse_args()
    environ = {**os.environ, **({"SCIKNOW_DATA_DIR": args.data_dir} if args.data_dir else {})}
    config = load_config(environ=environ)
    rows = [json.loads(line) for line in args.questions.open()][: args.n]
    questions = [row["question"] for row in rows]
    prefixes = config.profile.symbol_prefixes
    names = list(dict.fromkeys(n for q in questions for n in find_symbols(q, prefixes)))
    server, url = start_serve(str(config.data_path))
    try:
        times = asyncio.run(measure(config, url, questions, names, args.repeat))
    finally:
        server.terminate()
        server.wait(timeout=30)
    results = {
        "data_dir": str(config.data_path),
        "repeat": args.repeat,
        **{kind: summary(t["local"], t["mcp"]) for kind, t in times.items()},
    }
    print(json.dumps(results, indent=2))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
