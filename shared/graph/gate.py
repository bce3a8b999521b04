"""Per-mailbox pacing: at most 4 Outlook requests in flight and at most 10,000 requests in any
10 minutes per mailbox in this process (SPEC §5).

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
# throttling-limits: "10,000 API requests in a 10 minute period" per app per mailbox, every
# $batch item counted. Sending the 10,001st only earns a 429 with a Retry-After of minutes, so
# the gate holds requests back once the window is spent instead.
MAILBOX_WINDOW_REQUESTS = 10_000
MAILBOX_WINDOW_SECONDS = 600.0


def batch_weight(item_count: int, sequential: bool) -> int:
    """Slots a ``$batch`` holds: its items run 4 at a time, or 1 at a time with ``dependsOn``."""
    return 1 if sequential else max(1, min(BATCH_PARALLEL_ITEMS, item_count))


class GateTimeout(Exception):
    """No slot became free before the caller's deadline."""


class MailboxGate:
    """A fair, weighted semaphore with a pause, for one mailbox."""

    def __init__(
        self,
        capacity: int = MAILBOX_CONCURRENCY,
        window_requests: int = MAILBOX_WINDOW_REQUESTS,
        window_seconds: float = MAILBOX_WINDOW_SECONDS,
    ) -> None:
        self.capacity = capacity
        self.window_requests = window_requests
        self.window_seconds = window_seconds
        self._in_use = 0
        self._paused_until = 0.0
        self._queue: deque[object] = deque()
        self._sent: deque[tuple[float, int]] = deque()  # (monotonic time, requests) in the window
        self._sent_total = 0
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

    def forget_window(self) -> None:
        """Start the 10-minute request window afresh (Graph's own window started over)."""
        with self._cond:
            self._sent.clear()
            self._sent_total = 0
            self._cond.notify_all()

    def window_wait(self, requests: int = 1) -> float:
        """Seconds until ``requests`` more fit in the mailbox's 10-minute request window."""
        with self._cond:
            return self._window_wait(time.monotonic(), requests)

    def _window_wait(self, now: float, requests: int) -> float:
        horizon = now - self.window_seconds
        while self._sent and self._sent[0][0] <= horizon:
            self._sent_total -= self._sent.popleft()[1]
        excess = self._sent_total + min(requests, self.window_requests) - self.window_requests
        if excess <= 0:
            return 0.0
        for sent_at, count in self._sent:  # the oldest sends leave the window first
            excess -= count
            if excess <= 0:
                return sent_at - horizon
        return self.window_seconds  # pragma: no cover - the window cannot hold more than it counts

    def acquire(self, weight: int, deadline: float, requests: int = 1) -> float:
        """Take ``weight`` slots for ``requests`` Graph requests (a ``$batch`` counts its items),
        waiting at most until ``deadline`` (monotonic); return the seconds waited."""
        weight = max(1, min(weight, self.capacity))
        started = time.monotonic()
        ticket = object()
        with self._cond:
            self._queue.append(ticket)
            try:
                while True:
                    now = time.monotonic()
                    budget_wait = self._window_wait(now, requests)
                    ready = (self._queue[0] is ticket and self._in_use + weight <= self.capacity
                             and now >= self._paused_until and budget_wait == 0)
                    if ready:
                        break
                    if now >= deadline or now + budget_wait > deadline:
                        raise GateTimeout()
                    wake = deadline
                    if self._paused_until > now:
                        wake = min(wake, self._paused_until)
                    if budget_wait > 0:
                        wake = min(wake, now + budget_wait)
                    self._cond.wait(timeout=max(0.001, wake - now))
                self._in_use += weight
                self.peak = max(self.peak, self._in_use)
                self._sent.append((now, requests))
                self._sent_total += requests
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
    def slots(self, weight: int, deadline: float, requests: int = 1) -> Iterator[float]:
        waited = self.acquire(weight, deadline, requests)
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


def forget_request_windows() -> None:
    """Start every mailbox's 10-minute request window afresh in this process: for a process
    whose Graph was reset (an emulator between tests), whose windows started over too."""
    with _gates_lock:
        gates = list(_gates.values())
    for gate in gates:
        gate.forget_window()
