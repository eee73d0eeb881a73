"""Storage faults end in one line that says what, which file and what to do, and
`sciknow serve` refuses to start with it: a read-only data directory, a full disk, a
damaged or 0-byte index.sqlite.

The read-only and full file systems are small tmpfs mounts in a private mount namespace
(`unshare`), so the tests need no privileges beyond unprivileged user namespaces; where
those are off, the tests say so and skip.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

READ_ONLY = "is read-only: make it writable, or point --data-dir (SCIKNOW_DATA_DIR)"
FULL = "free space and rerun; the last index is intact"
DAMAGED = "is damaged ("
ENV = {**os.environ, "HF_HUB_OFFLINE": "1"}
VERBS = {"stats": ["stats"], "serve": ["serve", "--port", "9"]}


def sciknow(data_dir: Path, *args: str) -> list[str]:
    """A `sciknow` command line (for a shell script or subprocess)."""
    return [sys.executable, "-m", "sciknow.ui.cli", "--data-dir", str(data_dir), *args]


def one_error_line(stderr: str, expected: str) -> str:
    lines = stderr.strip().splitlines()
    assert len(lines) == 1, stderr
    assert lines[0].startswith("sciknow: error: ") and expected in lines[0], lines[0]
    return lines[0]


@pytest.fixture(scope="module")
def namespace() -> None:
    probe = subprocess.run(
        ["unshare", "--mount", "--map-root-user", "sh", "-c", "mount -t tmpfs tmpfs /mnt"],
        capture_output=True,
        text=True,
    )
    if shutil.which("unshare") is None or probe.returncode != 0:
        pytest.skip(f"cannot mount a private tmpfs here (unshare): {probe.stderr.strip()}")


def in_tmpfs(mount: Path, size: str, setup: str, commands: list[list[str]]) -> list[tuple]:
    """Run `commands` one after the other on a tmpfs of `size` at `mount` after the shell
    `setup`; returns (exit status, stderr) of each."""
    mount.mkdir()
    script = [f"mount -t tmpfs -o size={size} tmpfs {mount}", setup]
    for n, command in enumerate(commands):
        quoted = " ".join(f"'{part}'" for part in command)
        script.append(f"{quoted} >/dev/null 2>{mount.parent}/err{n}; echo $? >{mount.parent}/rc{n}")
    done = subprocess.run(
        ["unshare", "--mount", "--map-root-user", "sh", "-c", " && ".join(script[:2]) + "; "
         + "; ".join(script[2:])],
        env=ENV, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    parent = mount.parent
    return [
        (int((parent / f"rc{n}").read_text()), (parent / f"err{n}").read_text())
        for n in range(len(commands))
    ]


def test_a_read_only_data_directory(docs_config, namespace, tmp_path):
    """Writing verbs and `serve` (which records votes) refuse; reading may still work."""
    mount = tmp_path / "data"
    setup = f"cp -a {docs_config.data_path}/. {mount}/ && mount -o remount,ro {mount}"
    docs = str(docs_config.data_path.parent / "docs")
    commands = [sciknow(mount, "ingest", docs), sciknow(mount, *VERBS["serve"])]
    for status, stderr in in_tmpfs(mount, "4m", setup, commands):
        assert status == 2
        assert str(mount) in one_error_line(stderr, READ_ONLY)


def test_a_full_disk_keeps_the_last_index(docs_config, namespace, tmp_path):
    docs = tmp_path / "docs"
    shutil.copytree(docs_config.data_path.parent / "docs", docs)
    words = " ".join(f"word{n}" for n in range(3000))
    (docs / "new.md").write_text(f"# A new page\n\n## Words\n\n{words}\n")
    mount = tmp_path / "data"
    setup = (
        f"cp -a {docs_config.data_path}/. {mount}/ && "
        f"(dd if=/dev/zero of={mount}/filler bs=4k 2>/dev/null; true)"
    )
    commands = [
        sciknow(mount, "ingest", str(docs)),
        sciknow(mount, *VERBS["serve"]),
        ["rm", f"{mount}/filler"],
        sciknow(mount, "search", "MATAIJ", "-k", "1"),
    ]
    ingest, serve, _, search = in_tmpfs(mount, "2m", setup, commands)
    assert ingest[0] == 2 and str(mount) in one_error_line(ingest[1], f"the disk is full ({mount})")
    assert serve[0] == 2
    one_error_line(serve[1], FULL)
    assert search[0] == 0, search[1]  # space freed: the last index answers


@pytest.fixture()
def copy_of_index(docs_config, tmp_path) -> Path:
    """A copy of the fixture index with every page in index.sqlite (none in its WAL)."""
    import sqlite3

    data = tmp_path / "data"
    shutil.copytree(docs_config.data_path, data)
    with sqlite3.connect(data / "index.sqlite") as conn:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        conn.execute("PRAGMA journal_mode=DELETE")
    return data


def run(data: Path, verb: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        sciknow(data, *VERBS[verb]), env=ENV, capture_output=True, text=True, timeout=120
    )


@pytest.mark.parametrize(
    "damage",
    ["header", "pages", "empty"],
    ids=["overwritten header", "overwritten pages", "0 bytes"],
)
def test_a_damaged_index(copy_of_index, damage):
    index = copy_of_index / "index.sqlite"
    raw = bytearray(index.read_bytes())
    if damage == "header":
        raw[:100] = os.urandom(100)
    elif damage == "pages":  # everything after the first page: the schema survives
        raw[4096:] = os.urandom(len(raw) - 4096)
    else:
        raw = bytearray()
    index.write_bytes(bytes(raw))
    # Pages SQLite never reads can hide damage from `stats`; serve reads them all first.
    for verb in ["serve"] if damage == "pages" else VERBS:
        done = run(copy_of_index, verb)
        assert done.returncode == 2, (verb, done.stderr)
        line = one_error_line(done.stderr, f"index.sqlite {DAMAGED}{index})")
        assert "restore it from a backup, or move it aside and re-ingest" in line
