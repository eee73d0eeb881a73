"""Load check of the web chat: concurrent sessions through the Gradio API client, and the
time to first token a reader sees in a real browser against the backend's own.

    python bench/bench_chat.py [--docs ../shared/corpus/petsc-doc] [--data-dir DIR]
        [--sessions 10] [--questions 3] [--mode extractive|generative] [--browser 5]

Starts `sciknow serve` on 127.0.0.1 over the docs index (built into `--data-dir` with
`sciknow ingest` the first time), then:
- load: `--sessions` clients at once (gradio_client, one session each, the chat's `/ask`
  endpoint), each asking `--questions` questions in a row (the FAQ questions of
  ../shared/eval/faq_dev.jsonl): failures, latency and time to first token as the client
  sees them (p50/p95), the backend's own time to first token, the server's peak memory;
- browser: one chromium tab asks `--browser` questions; the page's time to first token
  (Enter to the first answer text drawn) against the backend's (`first token` in the
  answer's details line, measured from the start of the answer, after the queue).
Figures go to bench/results/chat/bench_chat.json and are printed as a table.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import socket
import statistics
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results" / "chat"
FAQ = ROOT.parent / "shared" / "eval" / "faq_dev.jsonl"
FALLBACK_QUESTIONS = [
    "How do I set the relative tolerance of a KSP solver?",
    "Which preconditioner uses algebraic multigrid?",
    "How do I preallocate a sparse AIJ matrix?",
    "How do I install PETSc without MPI?",
    "How do I monitor the true residual?",
]
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--disable-sync",
]
EMPTY_STREAM = '<div class="sk-answer sk-streaming"></div>'
FIRST_TOKEN_RE = re.compile(r"first token (\d+) ms")


def questions(count: int) -> list[str]:
    if FAQ.is_file():
        lines = FAQ.read_text(encoding="utf-8").splitlines()
        found = [json.loads(line)["question"] for line in lines if line.strip()]
    else:
        found = FALLBACK_QUESTIONS
    return [found[i % len(found)] for i in range(count)]


def sciknow(*args: str) -> list[str]:
    return [sys.executable, "-m", "sciknow.ui.cli", *args]


def ensure_index(data_dir: Path, docs: Path, env: dict[str, str]) -> None:
    """Ingest `docs` into `data_dir` unless an index is there already."""
    if (data_dir / "index.sqlite").is_file():
        return
    print(f"ingesting {docs} into {data_dir} ...", flush=True)
    subprocess.run(sciknow("--data-dir", str(data_dir), "ingest", str(docs)), env=env, check=True)


def start_server(data_dir: Path, env: dict[str, str]) -> tuple[subprocess.Popen, str]:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    command = sciknow("--data-dir", str(data_dir), "serve", "--port", str(port))
    process = subprocess.Popen(command, env=env)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"sciknow serve exited with {process.returncode}")
        try:
            httpx.get(f"{url}/health", timeout=2)
            return process, url
        except httpx.TransportError:
            time.sleep(0.5)
    process.kill()
    raise SystemExit("sciknow serve did not start in 300 s")


class PeakMemory:
    """Peak resident memory of a process, from /proc (VmHWM)."""

    def __init__(self, pid: int) -> None:
        self.status = Path(f"/proc/{pid}/status")

    def mib(self) -> float:
        for line in self.status.read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
        return float("nan")


def last_reply(output: tuple) -> str:
    """The assistant message's HTML in one output of the chat's `/ask` endpoint."""
    messages = output[1] or []
    if not messages:
        return ""
    content = messages[-1]["content"]
    if isinstance(content, list):
        return "".join(part.get("text", "") for part in content if isinstance(part, dict))
    return str(content)


def ask_once(client, question: str) -> dict[str, float | bool]:
    """One question through gradio_client; times seen by the client and the backend's."""
    started = time.perf_counter()
    job = client.submit(question, False, [], "all", 6, api_name="/ask")
    first = None
    seen = 0
    while not job.done():
        outputs = job.outputs()
        if first is None and len(outputs) > seen:
            seen = len(outputs)
            reply = last_reply(outputs[-1])
            if reply and reply != EMPTY_STREAM:
                first = time.perf_counter() - started
        time.sleep(0.002)
    final = last_reply(job.result())
    latency = time.perf_counter() - started
    backend = FIRST_TOKEN_RE.search(final)
    return {
        "ok": "sk-footer" in final and "sk-error" not in final,
        "latency_s": latency,
        "client_ttft_s": first if first is not None else latency,
        "backend_ttft_s": int(backend.group(1)) / 1000 if backend else float("nan"),
    }


def session(url: str, asked: list[str], headers: dict[str, str]) -> list[dict]:
    from gradio_client import Client

    client = Client(url, verbose=False, headers=headers)
    results = []
    for question in asked:
        try:
            results.append(ask_once(client, question))
        except Exception as err:  # a failure is a figure here, not a crash
            results.append({"ok": False, "error": f"{type(err).__name__}: {err}"})
    return results


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def load(url: str, sessions: int, per_session: int, headers: dict[str, str]) -> dict:
    pool = questions(sessions * per_session)
    plans = [pool[i * per_session : (i + 1) * per_session] for i in range(sessions)]
    started = time.perf_counter()
    with ThreadPoolExecutor(sessions) as executor:
        results = [r for rs in executor.map(lambda p: session(url, p, headers), plans) for r in rs]
    wall = time.perf_counter() - started
    ok = [r for r in results if r["ok"]]

    def stats(key: str) -> dict[str, float]:
        values = [float(r[key]) for r in ok]
        return {"p50": percentile(values, 0.5), "p95": percentile(values, 0.95)}

    return {
        "sessions": sessions,
        "questions": len(results),
        "failures": len(results) - len(ok),
        "errors": sorted({r["error"] for r in results if "error" in r}),
        "wall_s": wall,
        "latency_s": stats("latency_s"),
        "client_ttft_s": stats("client_ttft_s"),
        "backend_ttft_s": stats("backend_ttft_s"),
    }


_WATCH = """() => {
  window.__skFirst = null;
  const before = document.querySelectorAll('.sk-answer').length;
  const seen = () => {
    const answers = document.querySelectorAll('.sk-answer');
    const last = answers[answers.length - 1];
    if (answers.length > before && last.textContent.trim()) {
      window.__skFirst = performance.now(); observer.disconnect();
    }
  };
  const observer = new MutationObserver(seen);
  observer.observe(document.body, {subtree: true, childList: true, characterData: true});
  window.__skStart = performance.now();
}"""


def browser(url: str, count: int, token: str) -> dict:
    """Page-visible against backend time to first token, one question at a time."""
    from playwright.sync_api import sync_playwright

    rows = []
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(
            executable_path="/usr/bin/chromium", headless=True, args=CHROMIUM_ARGS
        )
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        tab = chromium.new_context(extra_http_headers=headers).new_page()
        tab.goto(url)
        tab.wait_for_selector("#sk-question textarea")
        for n, question in enumerate(questions(count), start=1):
            tab.fill("#sk-question textarea", question)
            tab.evaluate(_WATCH)
            tab.press("#sk-question textarea", "Enter")
            tab.wait_for_function(
                f"document.querySelectorAll('.sk-footer').length >= {n}", timeout=600_000
            )
            page_ms = tab.evaluate("window.__skFirst - window.__skStart")
            details = tab.locator("details.sk-details").last.text_content() or ""
            backend_ms = int(FIRST_TOKEN_RE.search(details).group(1))
            rows.append({"page_ms": page_ms, "backend_ms": backend_ms})
        chromium.close()
    gaps = [r["page_ms"] - r["backend_ms"] for r in rows]
    return {
        "questions": rows,
        "page_minus_backend_ms": {"median": statistics.median(gaps), "max": max(gaps)},
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--docs", default=str(ROOT.parent / "shared" / "corpus" / "petsc-doc"))
    parser.add_argument("--data-dir", default=str(RESULTS / "index"))
    parser.add_argument("--sessions", type=int, default=10)
    parser.add_argument("--questions", type=int, default=3, help="per session")
    parser.add_argument("--mode", choices=["extractive", "generative"], default="extractive")
    parser.add_argument("--browser", type=int, default=5, help="questions in chromium (0: none)")
    args = parser.parse_args()

    token = os.environ.get("SCIKNOW_API_TOKEN", "")
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "SCIKNOW_ANSWER__MODE": args.mode}
    data_dir = Path(args.data_dir)
    ensure_index(data_dir, Path(args.docs), env)
    process, url = start_server(data_dir, env)
    memory = PeakMemory(process.pid)
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    try:
        session(url, questions(1), headers)  # warm-up: first embedding, first model call
        report = {"mode": args.mode, "index": str(data_dir)}
        report["load"] = load(url, args.sessions, args.questions, headers)
        if args.browser and Path("/usr/bin/chromium").exists():
            report["browser"] = browser(url, args.browser, token)
        report["peak_memory_mib"] = memory.mib()
    finally:
        process.terminate()
        process.wait(timeout=30)
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "bench_chat.json").write_text(json.dumps(report, indent=2))
    print_table(report)
    return 0 if report["load"]["failures"] == 0 else 1


def print_table(report: dict) -> None:
    load_ = report["load"]
    print(f"\n{load_['sessions']} sessions, {load_['questions']} questions, mode {report['mode']}")
    print("| | p50 | p95 |\n|---|---|---|")
    for key, label in (
        ("latency_s", "latency (s)"),
        ("client_ttft_s", "time to first token, client (s)"),
        ("backend_ttft_s", "time to first token, backend (s)"),
    ):
        print(f"| {label} | {load_[key]['p50']:.2f} | {load_[key]['p95']:.2f} |")
    print(f"failures {load_['failures']} {load_['errors']}; wall {load_['wall_s']:.1f} s; ", end="")
    print(f"peak memory {report['peak_memory_mib']:.0f} MiB")
    if "browser" in report:
        gap = report["browser"]["page_minus_backend_ms"]
        print(
            f"page minus backend time to first token: median {gap['median']:.0f} ms, "
            f"max {gap['max']:.0f} ms over {len(report['browser']['questions'])} questions"
        )


if __name__ == "__main__":
    sys.exit(main())
