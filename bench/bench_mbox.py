"""Benchmark: ingest a synthetic 50,000-message mbox through `MboxSource`.

Shows throughput and that the mbox is streamed: peak memory stays well below the
file size. Run: `python bench/bench_mbox.py [--messages N] [--tracemalloc]`.
The mbox is generated in a temporary folder (fictional senders) and removed after.
"""

from __future__ import annotations

import argparse
import base64
import random
import resource
import tempfile
import time
import tracemalloc
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from pathlib import Path

from sciknow.config import Profile
from sciknow.ingest.mbox import MboxSource

TOPICS = [
    "KSPSolve diverges",
    "MatSetValues slow",
    "DMPlex distribution",
    "SNES line search",
    "TSAdapt step rejected",
    "PCGAMG setup",
    "VecScatter on GPU",
    "configure fails",
]
PARAGRAPH = (
    "I am solving a Poisson problem with KSPCG and PCGAMG on 64 ranks. With -ksp_monitor "
    "the residual stalls after 40 iterations; -ksp_rtol 1e-8 is never reached. The matrix "
    "is assembled with MatSetValuesLocal after MatXAIJSetPreallocation. Any idea what to check?"
)


LOG = base64.encodebytes(("KSP Residual norm 1.234e-05 % true resid norm\n" * 150).encode())


def _message(i: int, thread: int, depth: int, when: datetime) -> str:
    """A reply quotes the thread so far, and every tenth message carries a log attachment,
    as on the real list, so messages average a few kilobytes."""
    sender = f"User {i % 997} <user{i % 997}@example.invalid>"
    subject = f"{'Re: ' if depth else ''}[petsc-users] {TOPICS[thread % len(TOPICS)]} #{thread}"
    refs = " ".join(f"<t{thread}.m{d}@bench.invalid>" for d in range(depth))
    reply = f"In-Reply-To: <t{thread}.m{depth - 1}@bench.invalid>\nReferences: {refs}\n"
    quoted = "\n".join(">" * level + " " + PARAGRAPH for level in range(1, min(depth, 4) + 1))
    body = f"{PARAGRAPH}\n\nOn a previous day, someone wrote:\n{quoted}\n\n-- \nUser {i % 997}\n"
    head = (
        f"From user{i % 997}@example.invalid {when.strftime('%a %b %d %H:%M:%S %Y')}\n"
        f"From: {sender}\nDate: {format_datetime(when)}\nSubject: {subject}\n"
        f"Message-ID: <t{thread}.m{depth}@bench.invalid>\n{reply if depth else ''}"
    )
    if i % 10:
        return f"{head}\n{body}\n"
    return (
        f'{head}MIME-Version: 1.0\nContent-Type: multipart/mixed; boundary="b{i}"\n\n'
        f"--b{i}\nContent-Type: text/plain; charset=utf-8\n\n{body}\n"
        f"--b{i}\nContent-Type: text/plain; name=log.txt\nContent-Disposition: attachment\n"
        f"Content-Transfer-Encoding: base64\n\n{LOG.decode()}--b{i}--\n\n"
    )


def generate(path: Path, count: int, seed: int = 0) -> None:
    """Write `count` messages in threads of 1-9 messages, streaming to disk."""
    rng = random.Random(seed)
    when = datetime(2015, 1, 1, tzinfo=UTC)
    written, thread = 0, 0
    with path.open("w", encoding="utf-8") as out:
        while written < count:
            for depth in range(min(rng.randint(1, 9), count - written)):
                when += timedelta(minutes=rng.randint(1, 90))
                out.write(_message(written, thread, depth, when))
                written += 1
            thread += 1


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=50_000)
    parser.add_argument("--tracemalloc", action="store_true", help="also trace Python's heap")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp, "bench.mbox")
        generate(path, args.messages)
        size = path.stat().st_size
        rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        if args.tracemalloc:
            tracemalloc.start()
        start = time.perf_counter()
        source = MboxSource("bench", str(path), Profile(), maintainers=["User 1"])
        threads = sum(1 for _ in source.iter_documents(None))
        seconds = time.perf_counter() - start
        rss_after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        print(f"mbox: {args.messages} messages, {size / 2**20:.1f} MiB")
        print(f"threads: {threads}, skipped: {len(source.skipped)}")
        print(f"time: {seconds:.1f} s, {args.messages / seconds:.0f} messages/s")
        print(f"peak RSS: {rss_after:.0f} MiB (before ingest {rss_before:.0f} MiB)")
        grew = (rss_after - rss_before) * 2**20 / args.messages
        print(f"RSS growth per message: {grew:.0f} bytes (mean message {size / args.messages:.0f})")
        if args.tracemalloc:
            peak = tracemalloc.get_traced_memory()[1] / 2**20
            print(f"peak Python heap during ingest (tracemalloc): {peak:.1f} MiB")


if __name__ == "__main__":
    main()
