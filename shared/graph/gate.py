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

Alone (tests, one process), the gate holds the mailbox's 4 slots and counts the window itself.
With a ``MailboxLease`` (deployed: ``mailbox_lease.SharedMailboxes``), what it may use is this
process's claim on the mailbox, kept with every instance's in Table Storage: its slots (4 when
alone, a share when other instances want the mailbox) and its reservation of requests. The
head of the queue asks the table only when the claim lacks slots or requests; every other
acquire is local. A batch heavier than the share raises ``ShareTooSmall`` so the sender
splits it (a parallel batch of 4 or more items always runs 4 at Graph).
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from shared.graph.mailbox_lease import MailboxLease

log = logging.getLogger(__name__)

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


class ShareTooSmall(Exception):
    """This process's share of the mailbox holds fewer slots than the call needs: split it."""

    def __init__(self, slots: int) -> None:
        super().__init__(f"the share of the mailbox is {slots} slots")
        self.slots = slots


class MailboxGate:
    """A fair, weighted semaphore with a pause, for one mailbox."""

    def __init__(
        self,
        capacity: int = MAILBOX_CONCURRENCY,
        window_requests: int = MAILBOX_WINDOW_REQUESTS,
        window_seconds: float = MAILBOX_WINDOW_SECONDS,
        lease: MailboxLease | None = None,
    ) -> None:
        self.capacity = capacity
        self.lease = lease
        self.window_requests = window_requests
        self.window_seconds = window_seconds
        self._in_use = 0
        self._paused_until = 0.0
        self._queue: deque[object] = deque()
        self._sent: deque[tuple[float, int]] = deque()  # (monotonic time, requests) in the window
        self._sent_total = 0
        self._cond = threading.Condition()
        self._asking = False  # a thread is talking to the table for the lease
        self._last_active = time.monotonic()
        self.peak = 0  # highest number of slots ever held at once (for tests and benchmarks)

    @property
    def in_use(self) -> int:
        with self._cond:
            return self._in_use

    def pause(self, seconds: float) -> None:
        """Hold every new request back for ``seconds`` (a mailbox-wide Retry-After), in every
        instance when the gate has a lease."""
        with self._cond:
            self._paused_until = max(self._paused_until, time.monotonic() + seconds)
            self._cond.notify_all()
        if self.lease is not None:
            try:
                self.lease.share_pause(self.lease.clock() + seconds)
            except Exception as error:  # noqa: BLE001 - this process waits anyway; the others may earn their own 429
                log.warning("could not share a mailbox pause: %s", error)

    def share(self) -> int:
        """The slots this process may hold at once now (its claim's, or all when alone); before
        any claim, all: the claim tells."""
        if self.lease is None:
            return self.capacity
        slots = self.lease.usable_slots(self.lease.clock())
        return slots or self.capacity

    def expect(self, requests: int) -> None:
        """About ``requests`` are coming (an initial sync's creates): the shared claim reserves
        them at once (``MailboxLease.expect``). Alone, nothing to do."""
        if self.lease is not None:
            self.lease.expect(requests)

    def _lease_pause(self) -> None:
        """The row's pause, as this process's (called under the lock)."""
        if self.lease is not None:
            remaining = self.lease.paused_until - self.lease.clock()
            if remaining > 0:
                self._paused_until = max(self._paused_until, time.monotonic() + remaining)

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
            return self._budget_wait(requests)

    def room_wait(self, requests: int) -> float:
        """``window_wait``, having asked the shared row first when this process holds too few
        requests for ``requests`` (the claim the next send would make anyway): how long the
        mailbox's 10-minute window, as every instance spends it, makes them wait."""
        with self._cond:
            if not self._queue and self._must_ask(requests):
                self._ask(requests)
                self._last_active = time.monotonic()  # claimed for sends to come: not idle yet
            return self._budget_wait(requests)

    def _budget_wait(self, requests: int) -> float:
        """``window_wait`` under the lock: this process's window and the shared claim's."""
        return max(self._window_wait(time.monotonic(), requests), self._lease_wait(requests))

    def _lease_wait(self, requests: int) -> float:
        """Seconds until the shared window has room, when the claim has too few requests."""
        lease = self.lease
        if lease is None or lease.remaining() >= requests:
            return 0.0
        return max(0.0, lease.next_look - lease.clock())

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
        waiting at most until ``deadline`` (monotonic); return the seconds waited. Raises
        ``GateTimeout``, or ``ShareTooSmall`` when the claim's share is below ``weight``."""
        weight = max(1, min(weight, self.capacity))
        started = time.monotonic()
        ticket = object()
        with self._cond:
            self._queue.append(ticket)
            try:
                while True:
                    now = time.monotonic()
                    first = self._queue[0] is ticket
                    if first and self._must_ask(requests):
                        self._ask(requests)
                        continue
                    slots = self._slots_now()
                    has_requests = self.lease is None or self.lease.remaining() >= requests
                    budget_wait = max(self._window_wait(now, requests), self._lease_wait(requests))
                    if first and 0 < slots < weight and has_requests:
                        raise ShareTooSmall(slots)
                    ready = (first and self._in_use + weight <= slots and has_requests
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
                    if first and self._needs_claim(requests):  # the next look at the table
                        wake = min(wake, now + max(0.0, self.lease.next_look - self.lease.clock()))  # type: ignore[union-attr]
                    # Otherwise nothing but a release, a claim or the times above can let it go, and
                    # each of those wakes it: a wake for a look at the table it does not need made
                    # every batch waiting behind another poll every millisecond (bench many-members).
                    self._cond.wait(timeout=max(0.001, wake - now))
                self._in_use += weight
                self._last_active = now
                self.peak = max(self.peak, self._in_use)
                self._sent.append((now, requests))
                self._sent_total += requests
                if self.lease is not None:
                    self.lease.spend(requests)
            finally:
                self._queue.remove(ticket)
                self._cond.notify_all()  # the next in line may now fit
        return time.monotonic() - started

    def _slots_now(self) -> int:
        return self.capacity if self.lease is None else self.lease.usable_slots(self.lease.clock())

    def _must_ask(self, requests: int) -> bool:
        """Whether the claim lacks slots or requests and the table may be asked now."""
        lease = self.lease
        if lease is None or lease.clock() < lease.next_look:
            return False
        return self._needs_claim(requests)

    def _needs_claim(self, requests: int) -> bool:
        """Whether the claim lacks slots or requests, and nobody is asking the table already
        (whose answer wakes every waiter)."""
        lease = self.lease
        if lease is None or self._asking:
            return False
        return lease.usable_slots(lease.clock()) == 0 or lease.remaining() < requests

    def _ask(self, requests: int) -> None:
        """Claim (or top up) through the lease, the lock released during the table call."""
        assert self.lease is not None
        self._asking = True
        holding = self._in_use
        self._cond.release()
        try:
            self.lease.claim(need=requests, holding=holding)
        except Exception as error:  # noqa: BLE001 - storage away: wait and ask again, until the deadline
            log.warning("could not claim a share of the mailbox: %s", error)
            self.lease.next_look = self.lease.clock() + 1.0
        finally:
            self._cond.acquire()
            self._asking = False
            self._lease_pause()
            self._cond.notify_all()

    def tend(self, idle_seconds: float) -> None:
        """Renew the claim while the mailbox is in use here; give it back once idle. Called
        every second or so by ``SharedMailboxes``."""
        lease = self.lease
        if lease is None:
            return
        with self._cond:
            if self._asking or not lease.held():
                return
            idle = not self._in_use and not self._queue and time.monotonic() - self._last_active >= idle_seconds
            in_flight = self._in_use
            if not idle and not lease.renewal_due(lease.clock(), in_flight):
                return
            self._asking = True
        try:
            if idle:
                lease.give_back()
            else:
                lease.claim(need=0, holding=in_flight)
        finally:
            with self._cond:
                self._asking = False
                self._lease_pause()
                self._cond.notify_all()

    def retirable(self, idle_seconds: float) -> bool:
        """Whether nothing of this gate is worth keeping: no call running or waiting, no table
        exchange, no claim, no pause, and no request for ``idle_seconds`` (the 10-minute window's
        length: its local count is empty by then)."""
        with self._cond:
            now = time.monotonic()
            return (not self._in_use and not self._queue and not self._asking and now >= self._paused_until
                    and now - self._last_active >= idle_seconds and (self.lease is None or not self.lease.claimed()))

    def release(self, weight: int) -> None:
        weight = max(1, min(weight, self.capacity))
        with self._cond:
            self._in_use = max(0, self._in_use - weight)
            self._last_active = time.monotonic()
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
