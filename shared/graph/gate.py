"""Per-mailbox pacing: at most 4 Outlook requests in flight per mailbox in this process (SPEC §5).

Outlook counts concurrency per app and mailbox, and counts every ``$batch`` item on its
own. Graph runs at most four items of a batch at once (one at a time when ``dependsOn`` is
used), so a batch holds ``batch_weight(items)`` slots for as long as it runs: a parallel batch
of 4 to 20 items holds all 4, a sequential one holds 1 (graph-notes §5).

The gate is also where a 429's ``Retry-After`` pauses the whole mailbox: throttling is a
mailbox-wide condition, and a request sent before the pause ends is throttled again.

Waiters are served in arrival order, so a batch that needs 4 slots is not starved by a
stream of single requests.

Limit: the gate is per process. Functions instances run in several processes, so the sync
engine's per-member lease keeps one member's mailbox work in one place; 429 handling covers
whatever overlap remains.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Iterator
from contextlib import contextmanager

MAILBOX_CONCURRENCY = 4  # throttling-limits: "Four concurrent requests" per app per mailbox
BATCH_PARALLEL_ITEMS = 4  # Graph sends Outlook up to four items of a batch at a time


def batch_weight(item_count: int, sequential: bool) -> int:
    """Slots a ``$batch`` holds: its items run 4 at a time, or 1 at a time with ``dependsOn``."""
    return 1 if sequential else max(1, min(BATCH_PARALLEL_ITEMS, item_count))


class GateTimeout(Exception):
    """No slot became free before the caller's deadline."""


class MailboxGate:
    """A fair, weighted semaphore with a pause, for one mailbox."""

    def __init__(self, capacity: int = MAILBOX_CONCURRENCY) -> None:
        self.capacity = capacity
        self._in_use = 0
        self._paused_until = 0.0
        self._queue: deque[object] = deque()
        self._cond = threading.Condition()
        self.peak = 0  # highest number of slots ever held at once (for tests and benchmarks)

    @property
    def in_use(self) -> int:
        with self._cond:
            return self._in_use

    def pause(self, seconds: float) -> None:
        """Hold every new request back for ``seconds`` (a mailbox-wide Retry-After)."""
        with self._cond:
            self._paused_until = max(self._paused_until, time.monotonic() + seconds)
            self._cond.notify_all()

    def pause_remaining(self) -> float:
        with self._cond:
            return max(0.0, self._paused_until - time.monotonic())

    def acquire(self, weight: int, deadline: float) -> float:
        """Take ``weight`` slots, waiting at most until ``deadline`` (monotonic); return the seconds waited."""
        weight = max(1, min(weight, self.capacity))
        started = time.monotonic()
        ticket = object()
        with self._cond:
            self._queue.append(ticket)
            try:
                while True:
                    now = time.monotonic()
                    ready = (self._queue[0] is ticket and self._in_use + weight <= self.capacity
                             and now >= self._paused_until)
                    if ready:
                        break
                    if now >= deadline:
                        raise GateTimeout()
                    wake = min(deadline, self._paused_until) if self._paused_until > now else deadline
                    self._cond.wait(timeout=max(0.001, wake - now))
                self._in_use += weight
                self.peak = max(self.peak, self._in_use)
            finally:
                self._queue.remove(ticket)
                self._cond.notify_all()  # the next in line may now fit
        return time.monotonic() - started

    def release(self, weight: int) -> None:
        weight = max(1, min(weight, self.capacity))
        with self._cond:
            self._in_use = max(0, self._in_use - weight)
            self._cond.notify_all()

    @contextmanager
    def slots(self, weight: int, deadline: float) -> Iterator[float]:
        waited = self.acquire(weight, deadline)
        try:
            yield waited
        finally:
            self.release(weight)


_gates: dict[str, MailboxGate] = {}
_gates_lock = threading.Lock()


def gate_for(mailbox_key: str) -> MailboxGate:
    """The one gate of a mailbox in this process.

    Key by what throttling keys on (app and mailbox): callers pass ``"{tenant}/{user}"`` with the
    same user reference every time (the user object id; a UPN and an id of one mailbox would
    get two gates).
    """
    key = mailbox_key.lower()
    with _gates_lock:
        gate = _gates.get(key)
        if gate is None:
            gate = _gates[key] = MailboxGate()
        return gate
