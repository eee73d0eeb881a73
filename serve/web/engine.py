"""The one engine behind every front end: one answer at a time, never held by a client
that left, with a watchdog that tells a long answer from a wedged engine.

Why a worker thread per answer: the HTTP stream used to iterate the assistant while it
held the generation lock, so a client that stopped reading left the generator suspended
inside the lock, and one dropped stream froze answering for everyone. Here a daemon
thread takes the lock, runs the whole answer and hands its events to the request over an
asyncio queue; the request only reads that queue. The lock is held for the generation
alone, whatever the client does, and a request that ends early (the client left, the
server shuts down) cancels its run: a run waiting for the lock gives up its place, a
running one stops at its next event and closes the model's stream.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections import deque
from collections.abc import AsyncIterator
from typing import Any

from sciknow.records import Answer
from sciknow.serve.answer import Assistant, Event

WAIT_POLL_S = 0.2  # how often a waiter for the lock checks whether it was cancelled
STALL_S = 300.0  # default: a holder silent this long is reported as stalled


class WatchedLock:
    """The generation lock: taken in arrival order (a busy server's longest wait is the
    queue ahead of it, not luck), left by a waiter whose run was cancelled, and watched:
    when it was taken and when its holder last showed progress, so that `/health` can
    tell a long answer from a wedged engine (a run counts from its last event).
    """

    def __init__(self) -> None:
        self._turn = threading.Condition()
        self._waiting: deque[object] = deque()
        self._held = False
        self._progress: float | None = None

    def acquire(
        self, blocking: bool = True, timeout: float = -1, cancelled: threading.Event | None = None
    ) -> bool:
        """Take the lock after everyone who asked before; False when not `blocking` and
        it is busy, after `timeout` seconds, or once `cancelled` is set."""
        deadline = None if timeout < 0 else time.monotonic() + timeout
        ticket = object()
        with self._turn:
            self._waiting.append(ticket)
            try:
                while self._held or self._waiting[0] is not ticket:
                    left = WAIT_POLL_S if deadline is None else deadline - time.monotonic()
                    if not blocking or left <= 0 or (cancelled and cancelled.is_set()):
                        return False
                    self._turn.wait(min(left, WAIT_POLL_S))
                self._held = True
                self._progress = time.monotonic()
                return True
            finally:
                self._waiting.remove(ticket)
                self._turn.notify_all()

    def release(self) -> None:
        with self._turn:
            self._held = False
            self._progress = None
            self._turn.notify_all()

    def __enter__(self) -> WatchedLock:
        self.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()

    def touch(self) -> None:
        """The holder made progress (an event of its answer)."""
        if self._progress is not None:
            self._progress = time.monotonic()

    def silent_for(self) -> float | None:
        """Seconds since the holder last made progress; None when nobody holds it."""
        progress = self._progress
        return None if progress is None else time.monotonic() - progress


class _Done:
    """Marks the end of a run's events."""


class Run:
    """One answer's events, from the worker thread to the request's event loop."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.queue: asyncio.Queue[Event | BaseException | _Done] = asyncio.Queue()
        self.cancelled = threading.Event()

    def put(self, item: Event | BaseException | _Done) -> None:
        """Hand an item to the request (from the worker thread); dropped once the loop is
        closed, as at shutdown."""
        with contextlib.suppress(RuntimeError):
            self.loop.call_soon_threadsafe(self.queue.put_nowait, item)

    def cancel(self) -> None:
        self.cancelled.set()


class Engine:
    """Runs answers of one assistant one at a time (see the module docstring)."""

    def __init__(self, assistant: Assistant, stall_s: float = STALL_S) -> None:
        self.assistant = assistant
        self.lock = WatchedLock()
        self.stall_s = stall_s
        self._runs: set[Run] = set()

    def start(self, question: str, options: dict[str, Any]) -> Run:
        """Queue one answer; its events arrive through `events(run)`."""
        run = Run(asyncio.get_running_loop())
        self._runs.add(run)
        worker = threading.Thread(
            target=self._work, args=(run, question, options), name="sciknow-answer", daemon=True
        )
        worker.start()
        return run

    async def events(self, run: Run) -> AsyncIterator[Event]:
        """The run's events as they come; leaving early (or being cancelled) cancels it."""
        try:
            while True:
                item = await run.queue.get()
                if isinstance(item, _Done):
                    return
                if isinstance(item, BaseException):
                    raise item
                yield item
        finally:
            run.cancel()

    async def answer(self, question: str, options: dict[str, Any]) -> Answer:
        """The final answer, for requests that do not stream."""
        final = None
        async for event in self.events(self.start(question, options)):
            final = event.answer or final
        assert final is not None
        return final

    def stalled_for(self) -> float | None:
        """How long the lock's holder has been silent, when that is past `stall_s`."""
        silent = self.lock.silent_for()
        return silent if silent is not None and silent > self.stall_s else None

    def shutdown(self) -> None:
        """Cancel every run (the server is stopping)."""
        for run in list(self._runs):
            run.cancel()

    def _work(self, run: Run, question: str, options: dict[str, Any]) -> None:
        try:
            if not self.lock.acquire(cancelled=run.cancelled):  # the client left
                return
            try:
                self._generate(run, question, options)
            finally:
                self.lock.release()
        except Exception as err:  # reported to the request, which reports it in-band
            run.put(err)
        finally:
            run.put(_Done())
            self._runs.discard(run)

    def _generate(self, run: Run, question: str, options: dict[str, Any]) -> None:
        if run.cancelled.is_set():  # the client left while the run waited
            return
        stream = self.assistant.stream(question, **options)
        try:
            for event in stream:
                self.lock.touch()
                if run.cancelled.is_set():
                    return
                run.put(event)
        finally:
            stream.close()  # stops the model's generation when the run ends early
