"""Running a compiled program under `mpiexec -n N` inside a bubblewrap sandbox.

The sandbox (bubblewrap, `bwrap`): every namespace unshared, so no network (only a
loopback of its own, which MPI's ranks use to talk to each other) and no view of the
host's processes; `/usr` and `/etc` read-only and nothing else of the host; `/tmp` a
private tmpfs of bounded size, the only writable place, where the program runs; the
environment cleared. When sciknow runs as root, the sandbox runs as `nobody` with no
capabilities, because the kernel applies no process limit to root.

Limits (`Limits`): wall time (the whole sandbox is killed), CPU time, address space,
processes (per user, RLIMIT_NPROC) and file size per process (through `prlimit`), the
tmpfs size, and output size (reading stops and the sandbox is killed past it). Each stop
is reported with its reason.
"""

from __future__ import annotations

import contextlib
import functools
import os
import selectors
import shutil
import signal
import subprocess
import time
from dataclasses import asdict, dataclass, fields
from pathlib import Path

from sciknow.config import CheckConfig
from sciknow.errors import SciknowError

NOBODY = 65534
TAIL_CHARS = 4000
_READ = 65536
SANDBOX_HINT = "install bubblewrap (apt-get install bubblewrap)"
_MEMORY_SIGNS = ("Out of memory", "Cannot allocate memory", "PetscMallocAlign()", "bad_alloc")
_DENIALS = (
    (
        ("Network is unreachable", "Temporary failure in name resolution"),
        "network access (the sandbox has no network)",
    ),
    (("Read-only file system",), "a write outside /tmp (the system is read-only in the sandbox)"),
)


class SandboxUnavailable(SciknowError):
    """bubblewrap is missing or cannot create its namespaces here; the message says which."""


_DEFAULT = CheckConfig()
MAX_NP = 16  # MPI ranks one run may start


@dataclass(frozen=True)
class Limits:
    """What a check may use: the compiler's time, and a sandboxed run's (the defaults and
    their meaning are `[check]`'s, `sciknow/config.py`)."""

    wall_s: float = _DEFAULT.wall_s
    cpu_s: int = _DEFAULT.cpu_s
    memory_mb: int = _DEFAULT.memory_mb
    processes: int = _DEFAULT.processes
    output_bytes: int = _DEFAULT.output_bytes
    tmp_mb: int = _DEFAULT.tmp_mb
    file_mb: int = _DEFAULT.file_mb
    compile_s: float = _DEFAULT.compile_s

    @classmethod
    def of(cls, check: CheckConfig) -> Limits:
        """The limits a `[check]` section sets."""
        return cls(**{f.name: getattr(check, f.name) for f in fields(cls)})


@dataclass
class RunResult:
    """What a sandboxed run did."""

    exit_status: int | None  # None when the sandbox stopped it
    seconds: float
    output_tail: str
    output_bytes: int
    stopped: str  # why the sandbox stopped it, or ""
    np: int
    denied: str = ""  # what the sandbox refused that the output shows (network, a write)

    def to_dict(self) -> dict[str, object]:
        return asdict(self)

    @property
    def ok(self) -> bool:
        return self.exit_status == 0 and not self.stopped


def _drop_privileges() -> dict[str, int | list[int]]:
    """Popen arguments to run as nobody when we are root (else nothing)."""
    if os.geteuid() != 0:
        return {}
    return {"user": NOBODY, "group": NOBODY, "extra_groups": []}


def _bwrap_arguments(limits: Limits, binary: Path) -> list[str]:
    mounts = ["--ro-bind", "/usr", "/usr", "--ro-bind", "/etc", "/etc"]
    for link in ("lib", "lib64", "bin", "sbin"):
        target = Path("/") / link
        if target.is_symlink():
            mounts += ["--symlink", os.readlink(target), str(target)]
        elif target.is_dir():
            mounts += ["--ro-bind", str(target), str(target)]
    topology = "/sys/devices/system"  # hwloc (inside MPI) reads the CPU layout here
    if Path(topology).is_dir():
        mounts += ["--ro-bind", topology, topology]
    return [
        "bwrap",
        "--unshare-all",
        "--die-with-parent",
        "--new-session",
        "--cap-drop",
        "ALL",
        *mounts,
        "--proc",
        "/proc",
        "--dev",
        "/dev",
        "--size",
        str(limits.tmp_mb << 20),
        "--tmpfs",
        "/tmp",
        "--ro-bind",
        str(binary),
        f"/tmp/{binary.name}",
        "--chdir",
        "/tmp",
        "--clearenv",
        "--setenv",
        "PATH",
        "/usr/bin:/bin",
        "--setenv",
        "HOME",
        "/tmp",
        "--setenv",
        "TMPDIR",
        "/tmp",
        "--setenv",
        "OMPI_ALLOW_RUN_AS_ROOT",
        "1",
        "--setenv",
        "OMPI_ALLOW_RUN_AS_ROOT_CONFIRM",
        "1",
        "--setenv",
        "OMPI_MCA_rmaps_base_oversubscribe",
        "1",
    ]


def _user_processes(uid: int) -> int:
    """How many processes `uid` runs now: RLIMIT_NPROC counts them all, so the sandbox's
    allowance comes on top."""
    count = 0
    for status in Path("/proc").glob("[0-9]*/status"):
        try:
            text = status.read_text()
        except OSError:
            continue
        for line in text.splitlines():
            if line.startswith("Uid:"):
                count += line.split()[1] == str(uid)
                break
    return count


def _prlimit(limits: Limits) -> list[str]:
    uid = NOBODY if os.geteuid() == 0 else os.getuid()
    return [
        "prlimit",
        f"--cpu={limits.cpu_s}:{limits.cpu_s + 1}",  # SIGXCPU first, SIGKILL a second on
        f"--as={limits.memory_mb << 20}",
        f"--nproc={_user_processes(uid) + limits.processes}",
        f"--fsize={limits.file_mb << 20}",
        "--core=0",
        "--",
    ]


@functools.cache
def sandbox_problem() -> str:
    """Why programs cannot be run here ("" when they can): bubblewrap or prlimit missing,
    or the kernel refusing the namespaces (some containers do)."""
    for tool, hint in (("bwrap", SANDBOX_HINT), ("prlimit", "install util-linux")):
        if shutil.which(tool) is None:
            return f"{tool} is not installed: {hint}"
    true = shutil.which("true") or "/usr/bin/true"
    command = [*_bwrap_arguments(Limits(), Path(true)), true]
    try:
        done = subprocess.run(
            command,
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
            **_drop_privileges(),
        )
    except (OSError, subprocess.SubprocessError) as err:
        return f"bubblewrap cannot start: {err}"
    if done.returncode != 0:
        why = (done.stderr.strip().splitlines() or ["no message"])[-1]
        return f"bubblewrap cannot create its sandbox here ({why})"
    return ""


def run_sandboxed(
    binary: Path, mpiexec: tuple[str, ...], np: int, limits: Limits, args: tuple[str, ...] = ()
) -> RunResult:
    """Run `mpiexec -n np binary args` in the sandbox; the binary must be readable by
    everyone (the sandbox may run as nobody)."""
    problem = sandbox_problem()
    if problem:
        raise SandboxUnavailable(problem)
    inner = [*mpiexec, "-n", str(np), f"./{binary.name}", *args]
    command = [*_prlimit(limits), *_bwrap_arguments(limits, binary), *inner]
    started = time.perf_counter()
    process = subprocess.Popen(
        command,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,
        **_drop_privileges(),
    )
    tail, total, stopped = _read_output(process, limits, started)
    if stopped:
        _kill(process)
    status = process.wait()
    seconds = time.perf_counter() - started
    text = tail.decode("utf-8", errors="replace")[-TAIL_CHARS:]
    stopped = stopped or _limit_hit(status, text, limits)
    exit_status = None if stopped and status < 0 else status
    return RunResult(exit_status, round(seconds, 3), text, total, stopped, np, _denied(text))


def _read_output(
    process: subprocess.Popen[bytes], limits: Limits, started: float
) -> tuple[bytes, int, str]:
    """Read until the program ends or a limit stops it: (tail, bytes read, why stopped)."""
    assert process.stdout is not None
    selector = selectors.DefaultSelector()
    selector.register(process.stdout, selectors.EVENT_READ)
    tail, total = b"", 0
    try:
        while True:
            left = limits.wall_s - (time.perf_counter() - started)
            if left <= 0:
                return tail, total, f"wall time limit ({limits.wall_s:g} s) reached"
            if not selector.select(timeout=min(left, 0.5)):
                continue
            chunk = os.read(process.stdout.fileno(), _READ)
            if not chunk:
                return tail, total, ""
            total += len(chunk)
            tail = (tail + chunk)[-TAIL_CHARS * 4 :]
            if total > limits.output_bytes:
                return tail, total, f"output limit ({limits.output_bytes} bytes) reached; cut"
    finally:
        selector.close()
        process.stdout.close()


def _kill(process: subprocess.Popen[bytes]) -> None:
    """Kill the sandbox; `--die-with-parent` and the PID namespace take every process in
    it down with bubblewrap."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)


def _limit_hit(status: int, output: str, limits: Limits) -> str:
    """The limit a finished run ran into, as far as its status and output tell."""
    cpu_signal = int(signal.SIGXCPU)
    if status in (-cpu_signal, 128 + cpu_signal) or f"signal {cpu_signal} " in output:
        return f"CPU time limit ({limits.cpu_s} s per process) reached"
    if status in (-int(signal.SIGXFSZ), 128 + int(signal.SIGXFSZ)):
        return f"file size limit ({limits.file_mb} MiB) reached"
    if status != 0 and any(sign in output for sign in _MEMORY_SIGNS):
        return f"memory limit ({limits.memory_mb} MiB per process) reached"
    if status != 0 and "Resource temporarily unavailable" in output:
        return f"process limit ({limits.processes}) reached"
    return ""


def _denied(output: str) -> str:
    """What the output shows the sandbox refused, as far as error messages tell."""
    found = [what for signs, what in _DENIALS if any(sign in output for sign in signs)]
    return "; ".join(found)
