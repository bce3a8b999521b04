"""Limits kept by every instance together (issue 20), and the two tools they are built with:
``update_row`` (a read-modify-write of one row with its ETag, trying the copy already in hand
first) and ``tend_while_alive`` (a background thread renewing leases while their owner lives).

``SharedSlots``: a concurrency limit, the CRM's calls in flight per org, whatever the number of
Function instances sending them. (Graph's per-mailbox limits, which also ration requests per
10 minutes, use a row per mailbox instead: ``shared.graph.mailbox_lease``.)

One Table row per slot of the limit (PartitionKey = what is limited, RowKey = the slot's
number). An instance leases a slot by writing its name and an expiry on the row, with the
row's ETag, so two instances never hold one slot; it then uses its slots locally as a
semaphore and asks the table for another only when all of them are busy. A lease is renewed
in the background while the instance uses its slots. Slots it holds but has not used for
``IDLE_SECONDS`` are given back with one write each (found by the multi-host bench: with an
org's 4 slots held idle by two instances, the third waited out their 15-s leases, and every
change of that org waited with it); an instance that dies gives its slots back within
``lease_seconds``, with no write.

Cost: one query and one write per slot leased, one write per slot per renewal while busy, one
write per slot given back after a burst; nothing per call. What an instance knows of a limited
thing it no longer uses (its share) is forgotten ``FORGET_SECONDS`` later: memory grows with the
orgs in use, not with every org the instance ever called. Fairness between instances is first
come: a busy instance keeps the slots it holds until it idles (the limit is never exceeded; an
instance may wait).
"""

from __future__ import annotations

import logging
import threading
import time
import weakref
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, TypeVar

from shared.storage.errors import ConcurrencyConflict, EntityAlreadyExists
from shared.storage.tables import Stored, TableEntity, TableRepository

E = TypeVar("E", bound=TableEntity)

log = logging.getLogger(__name__)

LEASE_SECONDS = 15.0
POLL_SECONDS = 0.1
LEASE_MARGIN = 3.0  # a slot this close to its lease's end is not used: renewed first, or given up
IDLE_SECONDS = 1.0  # a held slot unused this long goes back to the table (by the renewal thread)
# A share (what this instance knows of one org's slots) holding nothing and unused this long is
# forgotten: a long-lived instance meets every org in time. Its next use reads the table again.
FORGET_SECONDS = 600.0


class SlotRow(TableEntity):
    """PartitionKey = the limited thing (``crm|{org id}``), RowKey = the slot's number."""

    holder: str = ""
    until: float = 0.0  # epoch seconds: the lease's end


class SlotsExhausted(Exception):
    """No slot came free before the caller's deadline."""


@dataclass
class _Held:
    etag: str
    until: float


@dataclass
class _Share:
    """This instance's slots of one limited thing, and how many are busy."""

    limit: int
    held: dict[str, _Held] = field(default_factory=dict)
    busy: int = 0
    next_look: float = 0.0  # when the table may be asked again after it had no free slot
    idle_since: float | None = None  # clock time the share last became idle (busy 0)
    # Slots this instance gave back, with the ETag its give-back left: taken again with one
    # write and no read, unless another instance wrote the row since (then the ETag fails).
    returned: dict[str, str] = field(default_factory=dict)


class SharedSlots:
    """Leases of slots shared through one table; thread-safe, one instance per process."""

    def __init__(
        self, rows: TableRepository[SlotRow], *, holder: str, lease_seconds: float = LEASE_SECONDS,
        clock: Callable[[], float] = time.time, renew_in_background: bool = True,
    ) -> None:
        self._rows = rows
        self._holder = holder
        self._lease = lease_seconds
        self._clock = clock
        self._shares: dict[str, _Share] = {}
        self._cond = threading.Condition()
        if renew_in_background:
            tend_while_alive(self, SharedSlots._tend, period=min(IDLE_SECONDS / 2, lease_seconds / 4), name="shared-slots-renewal")

    @contextmanager
    def slot(self, key: str, limit: int, timeout: float = 60.0) -> Iterator[None]:
        """Hold one of ``limit`` slots of ``key`` across every instance while the block runs."""
        self.acquire(key, limit, timeout)
        try:
            yield
        finally:
            self.release(key)

    def acquire(self, key: str, limit: int, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                # Looked up on every turn: while this waited, an unused share may have been forgotten.
                share = self._share(key, limit)
                self._forget_lapsing(share)
                if share.busy < len(share.held):
                    share.busy += 1
                    share.idle_since = None
                    return
                # The table is asked under the lock (a query and a write, a few ms): simpler than a
                # second state for "asking", and rare (only when every held slot is busy).
                if len(share.held) < share.limit and time.monotonic() >= share.next_look:
                    if self._lease_one(key, share):
                        continue
                    share.next_look = time.monotonic() + POLL_SECONDS  # one look per poll, however many wait
                if time.monotonic() >= deadline:
                    raise SlotsExhausted(f"no slot of {key} came free in {timeout:.0f} s")
                # Every slot is busy, here or elsewhere: wait for a local release or poll the table.
                self._cond.wait(timeout=POLL_SECONDS)

    def _share(self, key: str, limit: int) -> _Share:
        """This instance's share of ``key`` (under the lock), made idle if new: a share no call
        ever used is forgotten like any other."""
        share = self._shares.get(key)
        if share is None:
            share = self._shares[key] = _Share(limit, idle_since=self._clock())
        share.limit = limit
        return share

    def forget_unused(self) -> int:
        """Forget the shares that hold no slot and were not used for ``FORGET_SECONDS``; how many."""
        now = self._clock()
        with self._cond:
            unused = [key for key, share in self._shares.items()
                      if not share.busy and not share.held and share.idle_since is not None
                      and now - share.idle_since >= FORGET_SECONDS]
            for key in unused:
                del self._shares[key]
        return len(unused)

    def __len__(self) -> int:
        """How many limited things this instance keeps a share of."""
        with self._cond:
            return len(self._shares)

    def release(self, key: str) -> None:
        with self._cond:
            share = self._shares.get(key)
            if share is not None and share.busy > 0:
                share.busy -= 1
                if share.busy == 0:
                    share.idle_since = self._clock()
            self._cond.notify_all()

    def busy(self, key: str) -> int:
        with self._cond:
            share = self._shares.get(key)
            return share.busy if share else 0

    def renew_due(self) -> int:
        """Renew the leases of the slots this instance is using that end soon; how many."""
        renewed = 0
        with self._cond:
            due = [(key, number, held) for key, share in self._shares.items() if share.busy
                   for number, held in share.held.items() if held.until - self._clock() < self._lease / 2]
        for key, number, held in due:
            until = self._clock() + self._lease
            try:
                stored = self._rows.replace(SlotRow(partition_key=key, row_key=number, holder=self._holder, until=until), held.etag)
            except (ConcurrencyConflict, LookupError):
                with self._cond:  # lapsed and taken by another instance meanwhile: not ours any more
                    if (share := self._shares.get(key)) is not None:
                        share.held.pop(number, None)
                continue
            with self._cond:
                if (share := self._shares.get(key)) is not None and number in share.held:
                    share.held[number] = _Held(stored.etag, until)
            renewed += 1
        return renewed

    def _tend(self) -> None:
        self.renew_due()
        self.give_back_idle()
        self.forget_unused()

    def give_back_idle(self) -> int:
        """Give back the slots of shares idle for ``IDLE_SECONDS`` (one write each, with the
        ETag: a slot taken over meanwhile is simply forgotten); how many."""
        now = self._clock()
        with self._cond:
            idle = [(key, number, held) for key, share in self._shares.items()
                    if share.busy == 0 and share.idle_since is not None and now - share.idle_since >= IDLE_SECONDS
                    for number, held in share.held.items()]
            for key, number, _ in idle:  # no call starts on them from now on
                self._shares[key].held.pop(number, None)
        for key, number, held in idle:
            try:
                given = self._rows.replace(SlotRow(partition_key=key, row_key=number, holder="", until=0.0), held.etag)
            except (ConcurrencyConflict, LookupError):
                continue  # lapsed and taken meanwhile: not ours to give
            with self._cond:
                if (share := self._shares.get(key)) is not None:  # forgotten meanwhile: nothing to remember
                    share.returned[number] = given.etag
        return len(idle)

    def _forget_lapsing(self, share: _Share) -> None:
        """Slots whose lease ends too soon to start a call on are not counted as held."""
        now = self._clock()
        for number in [n for n, h in share.held.items() if h.until - now < LEASE_MARGIN]:
            del share.held[number]  # calls still running on it stay counted in ``busy``: no new one starts

    def _lease_one(self, key: str, share: _Share) -> bool:
        """Lease a free slot of ``key`` (never held, or its lease over); False if none is.
        A slot this instance gave back is tried first, with no read (a steady trickle of
        calls costs one write to take a slot and one to give it back)."""
        now = self._clock()
        while share.returned:
            number, etag = share.returned.popitem()
            if number in share.held or int(number) >= share.limit:
                continue
            row = SlotRow(partition_key=key, row_key=number, holder=self._holder, until=now + self._lease)
            try:
                written = self._rows.replace(row, etag)
            except (ConcurrencyConflict, LookupError):
                continue  # another instance wrote it since: the table says who holds what
            share.held[number] = _Held(written.etag, row.until)
            return True
        rows = {s.entity.row_key: s for s in self._rows.query(key)}
        for number in (f"{n:03d}" for n in range(share.limit)):
            if number in share.held:
                continue
            stored = rows.get(number)
            if stored is not None and stored.entity.until > now and stored.entity.holder != self._holder:
                continue
            row = SlotRow(partition_key=key, row_key=number, holder=self._holder, until=now + self._lease)
            try:
                written = self._rows.replace(row, stored.etag) if stored else self._rows.insert(row)
            except (ConcurrencyConflict, EntityAlreadyExists):
                continue  # another instance leased it first
            share.held[number] = _Held(written.etag, row.until)
            return True
        return False


def tend_while_alive(owner: Any, tend: Callable[[Any], object], *, period: float, name: str) -> None:
    """Call ``tend(owner)`` every ``period`` seconds in a daemon thread, until ``owner`` is gone
    (the thread holds no strong reference: a dropped owner does not live on in its thread).
    A failure is logged: storage away, the leases lapse and their users wait."""
    ref = weakref.ref(owner)

    def run() -> None:
        while (alive := ref()) is not None:
            try:
                tend(alive)
            except Exception as error:  # noqa: BLE001 - logged; the next tick tries again
                log.warning("%s: %s", name, error)
            del alive
            time.sleep(period)

    threading.Thread(target=run, name=name, daemon=True).start()


def update_row(
    rows: TableRepository[E], partition_key: str, row_key: str, change: Callable[[E | None], E | None], *,
    cached: Stored[E] | None = None, attempts: int = 10,
) -> Stored[E] | None:
    """Write ``change(current)`` with the current row's ETag (insert when there is none); on a
    conflict read the row again and recompute. ``cached``, the copy from our last write, is
    tried first: one write when nobody else wrote since. ``change`` returns None for "nothing
    to write"; the row as read is returned then. ``change`` may run several times: keep it pure.
    """
    current = cached if cached is not None else rows.get(partition_key, row_key)
    for _ in range(attempts):
        new = change(current.entity if current else None)
        if new is None:
            return current
        try:
            return rows.replace(new, current.etag) if current else rows.insert(new)
        except (ConcurrencyConflict, EntityAlreadyExists, LookupError):
            current = rows.get(partition_key, row_key)
    raise ConcurrencyConflict(f"{partition_key}/{row_key} kept changing under {attempts} attempts")
