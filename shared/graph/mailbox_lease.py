"""This process's claim on a mailbox's Graph limits, kept with every instance's in one Table
row per mailbox (issue 20; the arithmetic is ``mailbox_shares``, pure).

Why this shape. Graph's limits are per app and mailbox, not per process, and the same mailbox
is touched by several instances at once (a member's calendar and contacts steps, an e-mail
they send, a page). A table call per Graph request or per ``$batch`` would cost more than the
sync itself (an initial sync of 10,000 contacts is 500 batches; its whole Table budget is
about 120 transactions), so an instance claims a *share* of the mailbox for a while and uses
it locally, through its ``MailboxGate``, with no table call:

- a claim is a lease of ``LEASE_SECONDS`` on a number of the 4 slots (all 4 when alone, split
  when another instance wants the mailbox) and a reservation of requests from the 10-minute
  window. It is renewed while the process uses the mailbox, by the background ``tend``
  (renewals come every ``LEASE_SECONDS / 2``: one write, which also tops up the reservation
  when it runs low and reports what was sent); a reservation spent before then is topped up
  on demand, in chunks that grow fourfold while the mailbox stays busy (``FIRST_CHUNK`` to
  ``MAX_CHUNK``; the next claim of the process starts where the last one ended), so a quiet
  step reserves little and a long sync writes rarely; a step that knows what it will send
  (an initial sync: one create per item) says so (``expect``) and its first claim reserves
  that much at once (up to ``MAX_CHUNK``) instead of growing to it a top-up at a time;
- an idle claim (``IDLE_SECONDS`` without a request) is given back with one write: its slots
  free at once for an instance that waits (which an idle holder, renewing nothing, would not
  hear of before its claim lapsed), its unsent requests back in the window. A dead
  instance's claim lapses instead, its unsent requests counted as sent at its end (never
  undercounted);
- a waiting instance writes its wish once and then polls the row (``POLL_SECONDS``); holders
  see the wish at their next renewal and shrink to their share;
- a 429's Retry-After long enough to matter to others (``SHARE_PAUSES_FROM``) is written into
  the row at once, and any pause rides along with the next write; every claim and renewal
  reads the row's pause, so the whole mailbox waits, in every instance.

Cost: one read and one write to claim (one write when our last copy of the row is still
current), one write per renewal while busy, one per top-up, one to give back. A
newcomer's wish is seen within ``LEASE_SECONDS / 2``; a dead holder's slots come back within
``LEASE_SECONDS``.
"""

from __future__ import annotations

import itertools
import logging
import re
import threading
import time
import weakref
from collections.abc import Callable

from shared.graph import mailbox_shares as shares
from shared.graph.gate import MailboxGate
from shared.graph.mailbox_shares import GRAPH_LIMITS, MailboxLimits, MailboxLimitsRow
from shared.storage import Stored, TableRepository
from shared.storage.shared_slots import tend_while_alive, update_row

log = logging.getLogger(__name__)

LEASE_SECONDS = 20.0
LEASE_MARGIN = 3.0  # a claim this close to its end is not used: renewed first
# Half a second: an Enable's one-off calls (made where the HTTP request ran) left the mailbox
# claimed for 2-3 s, and the initial step on another instance waited that out (bench
# initial-calendar N=1,000: 13.5 s -> 11.0 s, 1.49x -> 1.24x the floor, 57 -> 50 Table
# transactions). A step's own pauses between Graph calls are shorter.
IDLE_SECONDS = 0.5
POLL_SECONDS = 1.0
TEND_SECONDS = 0.25  # how often idle claims are looked for (in memory; a write only to give one back)
# A gate unused this long with no claim is let go (``SharedMailboxes``): the 10-minute window's
# length, so its local count of requests is empty by then. Its next use reads the row again.
RETIRE_SECONDS = 600.0
RETIRE_SCAN_SECONDS = 30.0
FIRST_CHUNK = 40  # two batches
MAX_CHUNK = 2_000  # a fifth of the window
# Fourfold, not twofold: an initial sync of 1,000 events (1,000 requests) tops up 3 times, not 5
# (each a Table write; issue 21 counts them). What a chunk leaves unsent goes back with the claim.
CHUNK_GROWTH = 4
SHARE_PAUSES_FROM = 5.0  # shorter pauses are over before another instance would read them
ROW_KEY = "limits"
_KEY_UNSAFE = re.compile(r"[/\\#?%\x00-\x1f\x7f-\x9f]")


def row_partition(mailbox_key: str) -> str:
    """``graph|{tenant}|{user}`` for ``"{tenant}/{user}"``; what a Table key cannot hold (``/``
    aside: ``\\ # ?`` and control characters, as in a guest's ``...#EXT#@...`` name) escaped."""
    tenant, _, user = mailbox_key.lower().partition("/")
    return "graph|" + "|".join(_KEY_UNSAFE.sub(lambda m: f"%{ord(m.group()):02X}", part) for part in (tenant, user))


class MailboxLease:
    """The claim of this process on one mailbox. Thread-safe; its gate calls ``claim`` (the
    head of its queue, when it lacks slots or requests) and ``tend`` (the background thread)."""

    def __init__(self, rows: TableRepository[MailboxLimitsRow], mailbox_key: str, *, holder: str,
                 clock: Callable[[], float] = time.time, limits: MailboxLimits = GRAPH_LIMITS,
                 lease_seconds: float = LEASE_SECONDS, on_claim: Callable[[], None] | None = None) -> None:
        self.rows = rows
        self._on_claim = on_claim  # told of each claim made or renewed (``SharedMailboxes`` tends its gate)
        self.partition = row_partition(mailbox_key)
        self.holder = holder
        self.clock = clock
        self.limits = limits
        self.lease_seconds = lease_seconds
        self._io = threading.Lock()  # one table exchange at a time
        self._lock = threading.Lock()  # the counters below
        self._cached: Stored[MailboxLimitsRow] | None = None
        self._since: float | None = None
        self._slots = 0
        self._held = 0
        self._until = 0.0
        self._granted = 0  # requests granted under this claim (running total)
        self._spent = 0  # requests sent under it (running total)
        self._reported = 0  # of them, reported to the row
        self._chunk = FIRST_CHUNK
        self._expected = 0  # requests a step said it is about to send (``expect``), not yet reserved
        self._waiting = False
        self._pause_to_share = 0.0
        self.contended = False
        self.paused_until = 0.0  # epoch, as the row said
        self.next_look = 0.0  # epoch: the table is not asked again before (a waiter's poll)
        self.claims_begun = 0  # fresh claims (leases) this process took on the mailbox: for measurements

    # ---- read by the gate, under its own lock: no table call -----------------------------
    def usable_slots(self, now: float) -> int:
        with self._lock:
            return self._slots if self._until - now >= LEASE_MARGIN else 0

    def remaining(self) -> int:
        with self._lock:
            return self._granted - self._spent

    def spend(self, requests: int) -> None:
        with self._lock:
            self._spent += requests

    def expect(self, requests: int) -> None:
        """This process is about to send about ``requests`` to the mailbox: the next claim or
        top-up reserves that much (up to ``MAX_CHUNK``), not one chunk. Cost: none now; it saves
        the top-ups a growing chunk would write (an initial sync of 1,000 items: 3)."""
        with self._lock:
            self._expected = max(0, requests - max(0, self._granted - self._spent))

    def claimed(self) -> bool:
        """Whether a claim (slots held, or a wish written) is open and not lapsed. Read without
        the lock: the claim changes only in a table exchange, which its gate marks as under way."""
        return self._since is not None and self._until > self.clock()

    def held(self) -> bool:
        """Whether this process holds slots of the mailbox now (not merely waits for some)."""
        with self._lock:
            return self._since is not None and self._held > 0 and self._until > self.clock()

    def renewal_due(self, now: float, in_flight: int) -> bool:
        with self._lock:
            if self._since is None or self._held == 0:
                return False
            draining = self._held > self._slots and in_flight <= self._slots
            return draining or self._until - now < self.lease_seconds / 2

    # ---- table exchanges -------------------------------------------------------------------
    def claim(self, *, need: int, holding: int) -> None:
        """Claim, renew or top up: ``need`` requests for the next call (0 for a renewal)."""
        with self._io:
            now = self.clock()
            with self._lock:
                spent, since, waiting = self._spent, self._since, self._waiting
                reported, keep_open = spent - self._reported, max(0, self._granted - spent)
                # What a step said it will send sizes a top-up, never triggers one: a renewal
                # with plenty open reserves nothing more (the window is every instance's).
                top_up = need > 0 or keep_open < self._chunk // 2
                ask = max(self._chunk, min(MAX_CHUNK, self._expected)) if top_up else 0
                pause = self._pause_to_share
            grant: list[shares.Grant] = []

            def change(row: MailboxLimitsRow | None) -> MailboxLimitsRow | None:
                current = row or MailboxLimitsRow(partition_key=self.partition, row_key=ROW_KEY)
                new_row, result = shares.claim(
                    current, self.holder, now, since=since, wants=self.limits.slots, holding=holding,
                    reported=reported, keep_open=keep_open, need=need, ask=ask,
                    lease_seconds=self.lease_seconds, limits=self.limits, pause_until=pause)
                grant[:] = [result]
                mine = current.claims.get(self.holder)
                if (result.slots == 0 and mine is not None and mine.slots == 0 and mine.since == result.since
                        and mine.until - now > self.lease_seconds / 2 and row is not None
                        and current.paused_until >= pause):
                    return None  # still waiting, our wish still stands: nothing to write
                return new_row

            # A waiter reads afresh (others changed the row); a holder tries its last copy.
            cached = None if waiting else self._cached
            stored = update_row(self.rows, self.partition, ROW_KEY, change, cached=cached)
            result = grant[0]
            with self._lock:
                self._cached = stored
                if result.since != since:  # a new claim: the counters start at what was sent so far
                    self.claims_begun += 1
                    self._reported = spent
                    self._granted = spent + result.granted
                else:
                    self._reported = spent
                    self._granted += result.granted
                if result.granted and need > 0:
                    self._chunk = min(MAX_CHUNK, self._chunk * CHUNK_GROWTH)
                self._expected = max(0, self._expected - result.granted)
                self._since = result.since
                self._slots, self._held, self._until = result.slots, result.held, result.until
                self._waiting = result.slots == 0
                self.contended = result.contended
                self.paused_until = result.paused_until
                if pause <= result.paused_until:
                    self._pause_to_share = 0.0
                self.next_look = now + (POLL_SECONDS if result.slots == 0 else result.budget_wait)
            if self._on_claim is not None:
                self._on_claim()
            if result.budget_wait:
                log.info("mailbox %s: the 10-minute window is spent, %.0f s to wait", self.partition, result.budget_wait)

    def give_back(self) -> None:
        """Return the slots and the unsent requests (the process is idle on this mailbox)."""
        with self._io:
            now = self.clock()
            with self._lock:
                if self._since is None:
                    return
                since, reported, pause = self._since, self._spent - self._reported, self._pause_to_share
            stored = update_row(self.rows, self.partition, ROW_KEY, lambda row: shares.give_back(
                row or MailboxLimitsRow(partition_key=self.partition, row_key=ROW_KEY), self.holder, now,
                since=since, reported=reported, limits=self.limits, pause_until=pause), cached=self._cached)
            with self._lock:
                self._cached = stored
                self._since, self._slots, self._held, self._until = None, 0, 0, 0.0
                self._granted = self._reported = self._spent
                self._expected = 0  # said by a step that is over
                # The chunk stays: the next claim of this process asks what its last one needed.
                self._waiting, self.contended, self._pause_to_share = False, False, 0.0

    def share_pause(self, until: float) -> None:
        """Tell every instance to hold this mailbox's requests until ``until`` (epoch)."""
        with self._lock:
            self._pause_to_share = max(self._pause_to_share, until)
            if until - self.clock() < SHARE_PAUSES_FROM or self.paused_until >= until:
                return  # rides along with the next write, if any
        with self._io:
            stored = update_row(self.rows, self.partition, ROW_KEY, lambda row: shares.paused(
                row or MailboxLimitsRow(partition_key=self.partition, row_key=ROW_KEY), until), cached=self._cached)
            with self._lock:
                self._cached = stored
                self.paused_until = max(self.paused_until, until)


class SharedMailboxes:
    """The gates of the mailboxes this process touches, each with its claim in the shared
    table; one per process (``Services``), tended in the background.

    Bounded by what is in use (a long-lived instance meets thousands of mailboxes; kept for
    ever, 10,000 gates held 54 MB and each tend pass, four a second, went over all of them in
    24 ms): the tend goes over the gates with a claim only, and a gate unused for
    ``RETIRE_SECONDS`` with no claim is let go (looked for every ``RETIRE_SCAN_SECONDS``). A
    gate is never made twice in a process (two claims under one holder's name would fight over
    its entry): the map holds weak references, so a gate a caller still holds (a step's
    mailbox) is found again, and a claim it makes puts it back among those tended."""

    def __init__(self, rows: TableRepository[MailboxLimitsRow], *, holder: str,
                 clock: Callable[[], float] = time.time, limits: MailboxLimits = GRAPH_LIMITS,
                 lease_seconds: float = LEASE_SECONDS, idle_seconds: float = IDLE_SECONDS,
                 retire_seconds: float = RETIRE_SECONDS, tend_in_background: bool = True) -> None:
        self.rows = rows
        self.holder = holder
        self.clock = clock
        self.limits = limits
        self.lease_seconds = lease_seconds
        self.idle_seconds = idle_seconds
        self.retire_seconds = retire_seconds
        self._gates: weakref.WeakValueDictionary[str, MailboxGate] = weakref.WeakValueDictionary()  # every gate alive here
        # Handed out lately: kept alive for the next use (its cached row), with the hand-out's number.
        self._kept: dict[str, tuple[MailboxGate, int]] = {}
        self._handed = itertools.count()
        self._claimed: dict[str, MailboxGate] = {}  # with a claim open: tended, kept alive until it is given back
        self._next_scan = time.monotonic() + min(RETIRE_SCAN_SECONDS, retire_seconds)
        self._lock = threading.Lock()
        if tend_in_background:
            tend_while_alive(self, SharedMailboxes.tend, period=TEND_SECONDS, name="graph-mailbox-leases")

    def gate(self, mailbox_key: str) -> MailboxGate:
        """The gate of ``"{tenant}/{user object id}"`` in this process, kept with every instance."""
        key = mailbox_key.lower()
        with self._lock:
            gate = self._gates.get(key)
            if gate is None:
                lease = MailboxLease(self.rows, key, holder=self.holder, clock=self.clock, limits=self.limits,
                                     lease_seconds=self.lease_seconds, on_claim=_claim_seen(weakref.ref(self), key))
                gate = self._gates[key] = MailboxGate(self.limits.slots, self.limits.window_requests,
                                                      self.limits.window_seconds, lease=lease)
            self._kept[key] = (gate, next(self._handed))
            return gate

    def claim_seen(self, key: str) -> None:
        """The lease of ``key`` claimed (or renewed): its gate is tended until it gives it back."""
        with self._lock:
            gate = self._gates.get(key)
            if gate is not None:
                self._claimed[key] = gate

    def __len__(self) -> int:
        """How many gates are alive in this process."""
        return len(self._gates)

    def give_back_if_idle(self, mailbox_key: str) -> None:
        """This process is done with the mailbox for now (an Enable's calls are over, or a step's,
        and the member's next step may run on another instance): its claim goes back at once
        unless a call of the process is running or waiting there, not after ``IDLE_SECONDS`` and
        the next tend. The step on another instance would otherwise find the mailbox held, write
        its wish and poll a second later (bench initial-calendar: the first batch sent 1 s late;
        multi-host: a change's propagation). Never raises."""
        with self._lock:
            gate = self._gates.get(mailbox_key.lower())
        if gate is None:
            return
        try:
            gate.tend(idle_seconds=0.0)
        except Exception as error:  # noqa: BLE001 - best effort: the claim idles out or lapses as before
            # Never the caller's failure: an Enable whose profile is written must still queue its
            # step, and a step that did its work must not be delivered again for this.
            log.warning("could not give back the claim on a mailbox: %s", error)

    def leases(self) -> list[MailboxLease]:
        with self._lock:
            return [g.lease for g in self._gates.values() if g.lease is not None]

    def tend(self) -> None:
        """Renew the claims in use, give back the idle ones; now and then, let go of the gates
        long unused."""
        with self._lock:
            claimed = list(self._claimed.items())
        for key, gate in claimed:
            try:
                gate.tend(idle_seconds=self.idle_seconds)
            except Exception as error:  # noqa: BLE001 - storage away: the claim lapses, requests wait
                log.warning("could not tend the claim on a mailbox: %s", error)
            if gate.lease is None or not gate.lease.claimed():
                with self._lock:  # a claim made meanwhile was seen first (its lease says so), or comes after
                    if self._claimed.get(key) is gate and (gate.lease is None or not gate.lease.claimed()):
                        del self._claimed[key]
        if time.monotonic() >= self._next_scan:
            self._next_scan = time.monotonic() + min(RETIRE_SCAN_SECONDS, self.retire_seconds)
            self.let_go_of_unused()

    def let_go_of_unused(self) -> int:
        """Stop keeping the gates unused for ``retire_seconds`` with no claim; how many. Looked
        at outside the map's lock (10,000 gates take a tenth of a second), and freed outside it."""
        with self._lock:
            kept = list(self._kept.items())
        unused = [(key, handed) for key, (gate, handed) in kept if key not in self._claimed and gate.retirable(self.retire_seconds)]
        let_go = []
        with self._lock:
            for key, handed in unused:  # unless handed out again, or claiming, meanwhile
                entry = self._kept.get(key)
                if entry is not None and entry[1] == handed and key not in self._claimed:
                    let_go.append(self._kept.pop(key))
        return len(let_go)  # the gates no caller holds are freed as it returns, outside the lock


def _claim_seen(owner: weakref.ref[SharedMailboxes], key: str) -> Callable[[], None]:
    """What a lease tells of each claim it makes (a weak reference: the gates of a
    ``SharedMailboxes`` do not keep it alive)."""
    def seen() -> None:
        mailboxes = owner()
        if mailboxes is not None:
            mailboxes.claim_seen(key)
    return seen
