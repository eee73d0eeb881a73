"""A real PostgreSQL for a test: a fresh cluster from the server's own `initdb` and `pg_ctl`
(Debian's `postgresql` package) in a temporary folder, on a free 127.0.0.1 port with its
unix socket in that folder, stopped and removed afterwards.

`initdb` refuses to run as root, so as root the cluster belongs to `nobody` (`runuser`).
Without the binaries, or as root without `runuser`, the test is skipped with the reason.
"""

from __future__ import annotations

import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

DATABASE = "sciknow"
USER = "sciknow"


def server_binaries() -> Path | None:
    """The folder holding `initdb` and `pg_ctl`: Debian's newest, else the ones on PATH."""
    folders = sorted(Path("/usr/lib/postgresql").glob("*/bin"), reverse=True)
    if shutil.which("initdb"):
        folders.append(Path(shutil.which("initdb") or "").parent)
    return next((f for f in folders if (f / "initdb").is_file() and (f / "pg_ctl").is_file()), None)


def _owner_prefix(folder: Path) -> list[str]:
    """Run as `nobody` when root (owning `folder`), else as oneself."""
    if os.geteuid() != 0:
        return []
    if not shutil.which("runuser"):
        pytest.skip("running as root without runuser: initdb refuses root")
    nobody = pwd.getpwnam("nobody")
    os.chown(folder, nobody.pw_uid, nobody.pw_gid)
    return ["runuser", "-u", "nobody", "--"]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _run(command: list[str]) -> None:
    done = subprocess.run(command, capture_output=True, text=True, timeout=120)
    if done.returncode:
        raise AssertionError(f"{command[-1]} failed: {done.stdout}{done.stderr}")


@contextmanager
def postgres_server() -> Iterator[str]:
    """A running server with an empty database; yields its `postgresql://` URL."""
    import psycopg

    binaries = server_binaries()
    if binaries is None:
        pytest.skip("PostgreSQL server binaries (initdb, pg_ctl) not installed")
    folder = Path(tempfile.mkdtemp(prefix="sciknow-pg-"))
    data, port = folder / "data", _free_port()
    as_owner = _owner_prefix(folder)
    pg_ctl = [*as_owner, str(binaries / "pg_ctl"), "-D", str(data)]
    try:
        _run([*as_owner, str(binaries / "initdb"), "-D", str(data), "-U", USER, "-A", "trust",
              "-E", "UTF8", "--no-locale", "--no-sync"])  # fmt: skip
        options = f"-p {port} -k {folder} -c listen_addresses=127.0.0.1 -c fsync=off"
        _run([*pg_ctl, "-l", str(folder / "log"), "-o", options, "-w", "-t", "60", "start"])
        try:
            url = f"postgresql://{USER}@127.0.0.1:{port}"
            with psycopg.connect(f"{url}/postgres", autocommit=True) as conn:
                conn.execute(f"CREATE DATABASE {DATABASE}")
            yield f"{url}/{DATABASE}"
        finally:
            _run([*pg_ctl, "-m", "immediate", "-w", "stop"])
    finally:
        shutil.rmtree(folder, ignore_errors=True)
