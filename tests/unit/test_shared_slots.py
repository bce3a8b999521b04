"""A concurrency limit kept by every instance together (issue 20), over the in-memory table
whose behaviour ``tests/integration/test_storage_contract.py`` holds to Azurite's."""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest

from shared.storage.shared_slots import (
    FORGET_SECONDS,
    IDLE_SECONDS,
    LEASE_SECONDS,
    SharedSlots,
    SlotRow,
    SlotsExhausted,
)
from tests.fakes.tables import CountsRequests, TableRepositoryInMemory

KEY = "crm|org-1"


class Clock:
    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now


class CountingRows(CountsRequests, TableRepositoryInMemory[SlotRow]):
    """The table, counting what the limiter asks of it."""

    def __init__(self) -> None:
        super().__init__(SlotRow)


def instances(count: int, rows: CountingRows, clock: Any = time.time) -> list[SharedSlots]:
    return [SharedSlots(rows, holder=f"host-{n}", clock=clock, renew_in_background=False) for n in range(count)]


def test_three_instances_never_exceed_the_limit_together() -> None:
    rows = CountingRows()
    hosts = instances(3, rows)
    lock = threading.Lock()
    in_flight = peak = done = 0

    def call(host: SharedSlots) -> None:
        nonlocal in_flight, peak, done
        for _ in range(5):
            with host.slot(KEY, limit=5, timeout=30):
                with lock:
                    in_flight += 1
                    peak = max(peak, in_flight)
                time.sleep(0.01)
                with lock:
                    in_flight -= 1
            with lock:
                done += 1

    threads = [threading.Thread(target=call, args=(hosts[n % 3],)) for n in range(24)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert done == 24 * 5 and in_flight == 0
    assert 1 < peak <= 5, peak
    held = [s for s in rows.query(KEY) if s.entity.until > time.time()]
    assert len(held) <= 5 and len({s.entity.row_key for s in held}) == len(held)


def test_calls_on_slots_already_held_ask_nothing_of_the_table() -> None:
    rows = CountingRows()
    [host] = instances(1, rows)
    with host.slot(KEY, limit=5):
        pass
    asked = rows.requests
    for _ in range(100):
        with host.slot(KEY, limit=5):
            pass
    assert asked == 2 and rows.requests == asked  # one look and one lease, then nothing per call


def test_a_dead_instances_slots_come_back_when_their_lease_ends() -> None:
    clock = Clock()
    rows = CountingRows()
    dead, alive = instances(2, rows, clock)
    for _ in range(5):
        dead.acquire(KEY, limit=5)  # and it dies holding them: no release, no renewal
    with pytest.raises(SlotsExhausted):
        alive.acquire(KEY, limit=5, timeout=0.3)
    clock.now += LEASE_SECONDS + 0.1
    alive.acquire(KEY, limit=5, timeout=1)
    assert alive.busy(KEY) == 1


def test_a_busy_instance_keeps_its_slots_by_renewing_them() -> None:
    clock = Clock()
    rows = CountingRows()
    busy, other = instances(2, rows, clock)
    for _ in range(5):
        busy.acquire(KEY, limit=5)
    for _ in range(4):  # long calls: a minute, renewed as they run
        clock.now += LEASE_SECONDS / 2 + 0.1
        assert busy.renew_due() == 5
    with pytest.raises(SlotsExhausted):
        other.acquire(KEY, limit=5, timeout=0.3)
    for _ in range(5):
        busy.release(KEY)
    assert busy.renew_due() == 0  # idle: nothing renewed, the leases lapse by themselves
    clock.now += LEASE_SECONDS
    other.acquire(KEY, limit=5, timeout=1)


def test_a_slot_taken_over_after_a_lapse_is_no_longer_counted_as_held() -> None:
    clock = Clock()
    rows = CountingRows()
    first, second = instances(2, rows, clock)
    first.acquire(KEY, limit=1)
    first.release(KEY)
    clock.now += LEASE_SECONDS + 1  # lapsed while idle
    second.acquire(KEY, limit=1, timeout=1)
    with pytest.raises(SlotsExhausted):
        first.acquire(KEY, limit=1, timeout=0.3)  # its old lease is not a slot any more


def test_an_idle_instance_gives_its_slots_back_so_another_does_not_wait_out_their_leases() -> None:
    """Found by the multi-host bench: an org's 4 slots held idle by two instances made the third
    wait 15 s (their leases) for every CRM call, and every change of the org waited with it."""
    clock = Clock()
    rows = CountingRows()
    first, second, third = instances(3, rows, clock)
    for host in (first, second):
        for _ in range(2):
            host.acquire(KEY, limit=4)
        for _ in range(2):
            host.release(KEY)
    with pytest.raises(SlotsExhausted):
        third.acquire(KEY, limit=4, timeout=0.3)  # all four held, though idle
    clock.now += IDLE_SECONDS / 2
    assert first.give_back_idle() == 0  # not idle long enough: a burst's next call keeps its slot
    clock.now += IDLE_SECONDS
    asked = rows.requests
    assert first.give_back_idle() == 2 and second.give_back_idle() == 2
    assert rows.requests == asked + 4  # one write per slot given back
    for _ in range(4):
        third.acquire(KEY, limit=4, timeout=0.3)  # at once, long before the leases end
    assert third.busy(KEY) == 4
    assert first.give_back_idle() == 0  # nothing held: nothing written


def test_a_slot_given_back_is_taken_again_with_one_write_unless_another_took_it() -> None:
    """A steady trickle of calls (one change now and then): each burst takes a slot and gives
    it back, two writes and no read; once another instance wrote the row, the table is read."""
    clock = Clock()
    rows = CountingRows()
    first, second = instances(2, rows, clock)
    first.acquire(KEY, limit=4)
    first.release(KEY)
    clock.now += IDLE_SECONDS
    assert first.give_back_idle() == 1
    asked = rows.requests
    first.acquire(KEY, limit=4)  # the slot it gave back: one write, no query
    assert rows.requests == asked + 1 and first.busy(KEY) == 1
    first.release(KEY)
    clock.now += IDLE_SECONDS
    assert first.give_back_idle() == 1
    for _ in range(4):
        second.acquire(KEY, limit=4)  # every slot, the one first gave back among them
    asked = rows.requests
    with pytest.raises(SlotsExhausted):
        first.acquire(KEY, limit=4, timeout=0.3)  # its remembered ETag fails: it reads, finds none free
    assert rows.requests > asked + 1
    held = [s.entity.holder for s in rows.query(KEY) if s.entity.until > clock.now]
    assert sorted(held) == ["host-1"] * 4  # never two holders of one slot


def test_a_long_lived_instance_forgets_the_orgs_it_no_longer_calls() -> None:
    """An instance meets every org in time: what it knew of each (its share) was kept for ever,
    and each renewal tick went over all of them."""
    clock = Clock()
    rows = CountingRows()
    host, other = instances(2, rows, clock)
    for n in range(500):
        with host.slot(f"crm|org-{n}", limit=5):
            pass
    other.acquire("crm|busy-org", limit=1)
    with pytest.raises(SlotsExhausted):  # an org whose only slot the other instance holds: never used here
        host.acquire("crm|busy-org", limit=1, timeout=0.01)
    clock.now += IDLE_SECONDS
    assert host.give_back_idle() == 500
    assert host.forget_unused() == 0 and len(host) == 501  # given back moments ago: taken again with one write
    clock.now += FORGET_SECONDS
    assert host.forget_unused() == 501 and len(host) == 0
    asked = rows.requests
    with host.slot("crm|org-7", limit=5):  # used again: the table is read, then a slot leased
        pass
    assert rows.requests == asked + 2 and len(host) == 1


def test_a_call_waiting_for_a_slot_while_its_share_is_forgotten_is_counted_where_it_is_released() -> None:
    clock = Clock()
    rows = CountingRows()
    other, host = instances(2, rows, clock)
    other.acquire(KEY, limit=1)
    got: list[bool] = []
    waiter = threading.Thread(target=lambda: got.append(host.acquire(KEY, limit=1, timeout=10) is None))
    waiter.start()
    deadline = time.monotonic() + 10
    while len(host) == 0 and time.monotonic() < deadline:  # its share made: it waits, the only slot the other's
        time.sleep(0.01)
    time.sleep(0.05)
    clock.now += FORGET_SECONDS
    assert host.forget_unused() == 1  # nothing held, nothing busy: forgotten under the waiter
    other.release(KEY)
    clock.now += IDLE_SECONDS
    other.give_back_idle()
    waiter.join(timeout=10)
    assert got == [True] and host.busy(KEY) == 1
    host.release(KEY)
    assert host.busy(KEY) == 0
