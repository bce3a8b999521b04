"""Claims on a mailbox's Graph limits through the table (issue 20), over the in-memory table
whose behaviour ``tests/integration/test_storage_contract.py`` holds to Azurite's: what they
cost in Table transactions, and how the gates of several instances share the mailbox."""

from __future__ import annotations

import threading
import time
import weakref
from typing import Any

import pytest

from shared.graph.gate import GateTimeout, MailboxGate, ShareTooSmall
from shared.graph.mailbox_lease import IDLE_SECONDS, LEASE_SECONDS, MAX_CHUNK, SharedMailboxes, row_partition
from shared.graph.mailbox_shares import MailboxLimits, MailboxLimitsRow
from tests.fakes.tables import CountsRequests, TableRepositoryInMemory

MAILBOX = "tenant-1/5ab13abb-ac37-51e7-b210-bfbe6d7086ae"


class Clock:
    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now


class CountingRows(CountsRequests, TableRepositoryInMemory[MailboxLimitsRow]):
    """The table, counting what the claims ask of it (each call is one Table transaction)."""

    def __init__(self) -> None:
        super().__init__(MailboxLimitsRow)


def instances(count: int, rows: CountingRows, clock: Clock, idle_seconds: float = IDLE_SECONDS,
              **limits: Any) -> list[SharedMailboxes]:
    return [SharedMailboxes(rows, holder=f"host-{n}", clock=clock, limits=MailboxLimits(**limits),
                            idle_seconds=idle_seconds, tend_in_background=False) for n in range(count)]


def soon(seconds: float = 2.0) -> float:
    return time.monotonic() + seconds


def test_an_initial_sync_of_10000_items_costs_a_few_dozen_table_transactions() -> None:
    """500 batches of 20 over ten and a half minutes (the bench's initial sync of 10,000
    contacts took 629 s): one claim, renewals every ~10 s, top-ups doubling to 2,000."""
    clock, rows = Clock(), CountingRows()
    [host] = instances(1, rows, clock)
    gate = host.gate(MAILBOX)
    for _ in range(500):
        gate.acquire(4, soon(), requests=20)
        gate.release(4)
        clock.now += 1.26
        host.tend()  # the background tick, once a second
    lease = gate.lease
    assert lease is not None and lease.claims_begun == 1
    assert rows.requests <= 70, rows.requests  # vs 500 batches (10,000 requests): O(lease periods), not O(batches)


def test_alone_an_instance_holds_all_four_slots_and_asks_nothing_per_request() -> None:
    clock, rows = Clock(), CountingRows()
    [host] = instances(1, rows, clock)
    gate = host.gate(MAILBOX)
    with gate.slots(4, soon(), requests=20):
        pass
    asked = rows.requests
    for _ in range(20):  # the rest of the first reservation (40)
        with gate.slots(1, soon()):
            pass
    assert asked == 2 and rows.requests == asked  # one read, one write; then nothing
    with gate.slots(1, soon()):
        pass
    assert rows.requests == asked + 1  # a top-up: one write (160 more)
    assert gate.share() == 4


def test_a_step_that_says_what_it_will_send_reserves_it_with_its_first_claim() -> None:
    """An initial sync of 1,000 items: one read and one write for 50 batches of 20 (a growing
    chunk would top up three times), and what it did not send goes back with the claim."""
    clock, rows = Clock(), CountingRows()
    [host] = instances(1, rows, clock)
    gate = host.gate(MAILBOX)
    gate.expect(1_000)
    for _ in range(50):
        with gate.slots(4, soon(), requests=20):
            pass
    assert rows.requests == 2
    with gate.slots(1, soon()):  # past what it said: a top-up, as without a word
        pass
    assert rows.requests == 3
    gate._last_active -= IDLE_SECONDS
    host.tend()
    stored = rows.get(row_partition(MAILBOX), "limits").entity
    assert stored.claims == {} and sum(n for _, n in stored.spent) == 1_001


def test_what_a_step_expects_is_reserved_a_fifth_of_the_window_at_most() -> None:
    clock, rows = Clock(), CountingRows()
    [host] = instances(1, rows, clock)
    gate = host.gate(MAILBOX)
    gate.expect(50_000)
    with gate.slots(1, soon()):
        pass
    assert gate.lease is not None and gate.lease.remaining() == MAX_CHUNK - 1
    assert rows.get(row_partition(MAILBOX), "limits").entity.claims["host-0"].open == MAX_CHUNK
    clock.now += LEASE_SECONDS / 2 + 0.1
    host.tend()  # a renewal with plenty open reports the one sent, and reserves no more for what is expected
    assert rows.get(row_partition(MAILBOX), "limits").entity.claims["host-0"].open == MAX_CHUNK - 1


def test_a_second_instance_gets_a_share_once_the_holder_renews_and_shrinks() -> None:
    clock, rows = Clock(), CountingRows()
    first, second = instances(2, rows, clock)
    a, b = first.gate(MAILBOX), second.gate(MAILBOX)
    a.acquire(4, soon(), requests=20)  # a batch of 20 in flight: all 4 slots
    with pytest.raises(GateTimeout):
        b.acquire(1, soon(0.3))  # its wish is written; nothing free
    clock.now += LEASE_SECONDS / 2 + 0.1
    first.tend()  # a renews: its share is 2, its 4 still in flight
    with pytest.raises(GateTimeout):
        b.acquire(1, soon(0.3))
    a.release(4)
    first.tend()  # drained: the row says 2
    clock.now += 1
    b.acquire(1, soon(1.5))  # polls the row again: 2 are free
    assert b.share() == 2 and a.share() == 2
    with pytest.raises(ShareTooSmall):
        a.acquire(4, soon())  # a parallel batch runs 4 at Graph: the sender splits it


def test_a_dead_instances_share_comes_back_when_its_claim_ends() -> None:
    clock, rows = Clock(), CountingRows()
    dead, alive = instances(2, rows, clock)
    dead.gate(MAILBOX).acquire(4, soon(), requests=20)  # and it dies: no release, no renewal
    with pytest.raises(GateTimeout):
        alive.gate(MAILBOX).acquire(1, soon(0.3))
    clock.now += LEASE_SECONDS + 0.1
    alive.gate(MAILBOX).acquire(4, soon(1.5), requests=20)
    assert alive.gate(MAILBOX).share() == 4


def test_an_idle_claim_is_given_back_when_others_want_the_mailbox() -> None:
    clock, rows = Clock(), CountingRows()
    first, second = instances(2, rows, clock)
    a, b = first.gate(MAILBOX), second.gate(MAILBOX)
    with a.slots(4, soon(), requests=20):
        with pytest.raises(GateTimeout):
            b.acquire(1, soon(0.3))  # b's wish, seen by a at its next write
        clock.now += LEASE_SECONDS / 2 + 0.1
        first.tend()
    a._last_active -= IDLE_SECONDS  # a is idle now
    first.tend()  # gives back: contended
    assert rows.get(row_partition(MAILBOX), "limits").entity.claims.keys() == {"host-1"}
    b.acquire(4, soon(1.5), requests=20)


def test_an_instance_done_with_a_mailbox_gives_it_back_at_once_and_the_next_claims_it_without_waiting() -> None:
    """An Enable's calls on one instance, then its initial step on another: the step claims all
    four slots with one read and one write, no wish and no poll (it used to wait a second)."""
    clock, rows = Clock(), CountingRows()
    enabling, stepping = instances(2, rows, clock)
    with enabling.gate(MAILBOX).slots(1, soon()):
        pass  # the container made
    enabling.give_back_if_idle(MAILBOX)
    assert rows.get(row_partition(MAILBOX), "limits").entity.claims == {}
    asked = rows.requests
    started = time.monotonic()
    stepping.gate(MAILBOX).acquire(4, soon(), requests=20)
    assert time.monotonic() - started < 0.2 and rows.requests == asked + 2
    assert stepping.gate(MAILBOX).share() == 4


def test_an_instance_still_using_a_mailbox_keeps_its_claim_when_told_it_is_done() -> None:
    clock, rows = Clock(), CountingRows()
    [host] = instances(1, rows, clock)
    gate = host.gate(MAILBOX)
    with gate.slots(1, soon()):
        host.give_back_if_idle(MAILBOX)  # another call of the process is in flight
        assert "host-0" in rows.get(row_partition(MAILBOX), "limits").entity.claims
    host.give_back_if_idle(MAILBOX)
    assert rows.get(row_partition(MAILBOX), "limits").entity.claims == {}
    host.give_back_if_idle("tenant-1/never-used")  # a mailbox this process never touched: nothing to do


def test_a_give_back_that_storage_refuses_is_not_the_callers_failure() -> None:
    """An Enable has written its profile and must still queue its step; a step that did its
    work must not be delivered again: the claim idles out or lapses, as before."""
    clock, rows = Clock(), CountingRows()
    [host] = instances(1, rows, clock)
    gate = host.gate(MAILBOX)
    with gate.slots(1, soon()):
        pass

    def refused(*args: Any, **kwargs: Any) -> Any:
        raise OSError("storage out of reach")

    rows.replace = refused  # type: ignore[method-assign]
    rows.get = refused  # type: ignore[method-assign]
    host.give_back_if_idle(MAILBOX)  # logged, not raised
    assert gate.lease is not None and gate.lease.held()  # still ours until it idles out or lapses


def test_an_idle_claim_is_given_back_once_with_its_unsent_requests() -> None:
    clock, rows = Clock(), CountingRows()
    [host] = instances(1, rows, clock)
    gate = host.gate(MAILBOX)
    with gate.slots(1, soon()):
        pass
    asked = rows.requests
    gate._last_active -= IDLE_SECONDS
    for _ in range(30):
        clock.now += 1
        host.tend()
    assert rows.requests == asked + 1  # one write, whatever the idle time
    stored = rows.get(row_partition(MAILBOX), "limits").entity
    assert stored.claims == {} and sum(n for _, n in stored.spent) == 1  # 39 of the 40 reserved returned


def test_the_window_is_kept_by_all_instances_together() -> None:
    clock, rows = Clock(), CountingRows()
    hosts = instances(3, rows, clock, window_requests=100)
    sent = 0
    for host in hosts:  # one after another, each giving back when done
        gate = host.gate(MAILBOX)
        try:
            while True:
                with gate.slots(1, soon(0.5), requests=10):
                    sent += 10
        except GateTimeout:
            pass
        gate._last_active -= IDLE_SECONDS
        host.tend()
    assert sent == 100
    assert 500 < hosts[0].gate(MAILBOX).window_wait(10) <= 610  # until the first sends leave the window


def test_the_room_in_the_window_is_asked_of_the_row_by_an_instance_that_sent_nothing() -> None:
    """An initial sync looks before each page (``room_wait``): an instance that has sent nothing
    to the mailbox learns from the shared row that the others spent its window, and for how long."""
    clock, rows = Clock(), CountingRows()
    spender, newcomer = instances(2, rows, clock, window_requests=100)
    assert newcomer.gate(MAILBOX).room_wait(20) == 0  # room: and its claim is made (the first send's)
    newcomer.gate(MAILBOX)._last_active -= IDLE_SECONDS
    newcomer.tend()  # given back unused
    gate = spender.gate(MAILBOX)
    for _ in range(10):
        with gate.slots(1, soon(0.5), requests=10):
            pass
    gate._last_active -= IDLE_SECONDS
    spender.tend()
    clock.now += 60
    assert 500 < newcomer.gate(MAILBOX).room_wait(20) <= 560  # the window frees 10 minutes after the first sends


def test_a_pause_written_by_one_instance_holds_the_others() -> None:
    clock, rows = Clock(), CountingRows()
    first, second = instances(2, rows, clock)
    first.gate(MAILBOX).pause(30)  # a 429 with Retry-After: 30 seen by the first
    gate = second.gate(MAILBOX)
    with pytest.raises(GateTimeout):
        gate.acquire(1, soon(0.5))  # its claim read the pause
    assert 25 < gate.pause_remaining() <= 30


def test_three_instances_threads_never_hold_more_than_four_slots_together() -> None:
    clock, rows = Clock(), CountingRows()
    hosts = instances(3, rows, clock, idle_seconds=0.2)  # the clock runs 50 times faster than the idle timer
    lock = threading.Lock()
    in_flight = peak = done = 0
    stop = threading.Event()

    def tick() -> None:  # time passes and every instance tends its claims
        while not stop.is_set():
            clock.now += 0.5
            for host in hosts:
                host.tend()
            time.sleep(0.01)

    def work(host: SharedMailboxes) -> None:
        nonlocal in_flight, peak, done
        gate = host.gate(MAILBOX)
        for _ in range(8):
            weight = 4
            while True:
                try:
                    gate.acquire(weight, soon(20), requests=weight)
                    break
                except ShareTooSmall as small:
                    weight = small.slots
            with lock:
                in_flight += weight
                peak = max(peak, in_flight)
            time.sleep(0.002)
            with lock:
                in_flight -= weight
            gate.release(weight)
            with lock:
                done += 1

    ticker = threading.Thread(target=tick)
    ticker.start()
    workers = [threading.Thread(target=work, args=(hosts[n % 3],)) for n in range(6)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=60)
    stop.set()
    ticker.join()
    assert done == 6 * 8 and peak <= 4


def test_a_batch_waiting_for_the_one_in_flight_sleeps_until_it_ends_instead_of_polling() -> None:
    """An initial sync sends its batches one after the other, each holding the whole share:
    the next one waits ~0.2 s at the gate for the one in flight. It sleeps until that one
    releases its slots (the release wakes it). Its claim's "next look at the table" lies in
    the past and has nothing to do with it (it has slots and requests): waking for it every
    millisecond cost 100 waiting batches 100,000 wake-ups a second (bench many-members)."""
    rows = CountingRows()
    [host] = instances(1, rows, time.time)  # type: ignore[arg-type]
    gate = host.gate(MAILBOX)
    gate.acquire(4, soon(), requests=20)  # the batch in flight (the claim is made: it holds slots and requests)
    lease = gate.lease
    assert lease is not None and lease.next_look <= time.time()
    waits = 0
    wait = gate._cond.wait

    def counted(timeout: float | None = None) -> bool:
        nonlocal waits
        waits += 1
        return wait(timeout)

    gate._cond.wait = counted  # type: ignore[method-assign]
    waiter = threading.Thread(target=lambda: (gate.acquire(4, soon(), requests=20), gate.release(4)))
    waiter.start()
    time.sleep(0.2)
    gate.release(4)
    waiter.join(5)
    assert not waiter.is_alive()
    assert waits <= 3, f"the waiting batch woke {waits} times in 0.2 s"


def test_a_long_lived_instance_lets_go_of_the_mailboxes_it_no_longer_uses() -> None:
    """A Flex instance lives for hours and meets thousands of mailboxes (every member of every
    tenant it serves): their gates were kept for ever (10,000: 54 MB), and the tend, four times
    a second, went over every one of them (24 ms a pass)."""
    clock, rows = Clock(), CountingRows()
    host = SharedMailboxes(rows, holder="host-0", clock=clock, idle_seconds=0.0, tend_in_background=False)
    for n in range(2_000):
        with host.gate(f"tenant-1/{n}").slots(1, soon()):
            pass
    host.tend()  # every claim idle: given back
    assert all(row.entity.claims == {} for row in rows.query())
    assert host.let_go_of_unused() == 0 and len(host) == 2_000  # used moments ago: kept (the next use writes, no read)
    host.retire_seconds = 0.0  # ten minutes later
    assert host.let_go_of_unused() == 2_000 and len(host) == 0
    asked = rows.requests
    with host.gate("tenant-1/7").slots(4, soon(), requests=20):  # used again: a gate anew, one read and one write
        pass
    assert rows.requests == asked + 2 and len(host) == 1


def test_the_tend_goes_over_the_gates_with_a_claim_only(monkeypatch: pytest.MonkeyPatch) -> None:
    clock, rows = Clock(), CountingRows()
    host = SharedMailboxes(rows, holder="host-0", clock=clock, idle_seconds=0.0, tend_in_background=False)
    for n in range(100):
        with host.gate(f"tenant-1/{n}").slots(1, soon()):
            pass
    host.tend()  # given back
    tended: list[object] = []
    original = MailboxGate.tend
    monkeypatch.setattr(MailboxGate, "tend", lambda gate, idle_seconds: (tended.append(gate), original(gate, idle_seconds)))
    host.tend()
    assert tended == []
    busy = host.gate("tenant-1/3")
    busy.acquire(1, soon())
    host.tend()
    assert tended == [busy]


def test_a_gate_still_held_by_a_caller_is_never_made_twice_and_is_tended_when_it_claims_again() -> None:
    """A step's mailbox holds its gate: once let go by the map, the same gate must come back
    (two gates of one mailbox would be two claims under one holder's name, fighting over its
    entry), and a claim it makes must be renewed and given back like any other."""
    clock, rows = Clock(), CountingRows()
    host = SharedMailboxes(rows, holder="host-0", clock=clock, idle_seconds=0.0, tend_in_background=False)
    held = host.gate(MAILBOX)
    with held.slots(1, soon()):
        pass
    host.tend()
    host.retire_seconds = 0.0  # ten minutes later
    assert host.let_go_of_unused() == 1  # let go of by the map, alive in the caller's hands
    assert len(host) == 1 and host.gate(MAILBOX) is held
    assert host.let_go_of_unused() == 1
    held.acquire(1, soon())  # the caller uses it again, long after: a claim
    assert "host-0" in rows.get(row_partition(MAILBOX), "limits").entity.claims
    held.release(1)
    del held  # the caller is done: the claim keeps its gate alive until it is given back
    assert len(host) == 1
    host.tend()
    assert rows.get(row_partition(MAILBOX), "limits").entity.claims == {}
    assert len(host) == 0


def test_a_gate_with_a_claim_is_kept_however_long_its_last_request() -> None:
    clock, rows = Clock(), CountingRows()
    host = SharedMailboxes(rows, holder="host-0", clock=clock, idle_seconds=60.0, tend_in_background=False)
    gate = host.gate(MAILBOX)
    with gate.slots(1, soon()):
        pass
    del gate
    host.tend()  # not idle for a minute yet: the claim stays, and so does its gate
    host.retire_seconds = 0.0
    assert host.let_go_of_unused() == 0 and len(host) == 1
    assert "host-0" in rows.get(row_partition(MAILBOX), "limits").entity.claims
    host.idle_seconds = 0.0
    host.tend()
    assert host.let_go_of_unused() == 1 and len(host) == 0


def test_gates_let_go_of_while_threads_use_them_are_never_two_per_mailbox_and_end_given_back() -> None:
    """The tend letting go of gates (as fast as it can) while eight threads take and release
    slots of four mailboxes, four of them holding their gate across idle spells (as a step
    holds its mailbox), four asking for it each time: a mailbox never has two live gates in the
    process, a gate in a thread's hands is the one the map finds, and every claim is given back
    in the end."""
    clock, rows = Clock(), CountingRows()
    host = SharedMailboxes(rows, holder="host-0", clock=clock, idle_seconds=0.0, retire_seconds=0.0,
                           tend_in_background=False)
    keys = [f"tenant-1/{n}" for n in range(4)]
    seen: dict[str, list[Any]] = {key: [] for key in keys}
    lock = threading.Lock()
    stop = threading.Event()
    problems: list[str] = []

    def tend() -> None:
        while not stop.is_set():
            host.tend()
            time.sleep(0.0005)

    def found(key: str) -> Any:
        gate = host.gate(key)
        with lock:
            if {id(g) for g in (r() for r in seen[key]) if g is not None} - {id(gate)}:
                problems.append(f"two gates of {key}")
            seen[key].append(weakref.ref(gate))
        return gate

    def holding(worker: int) -> None:
        key = keys[worker % 3]
        gate = found(key)  # held across idle spells, as a step holds its mailbox
        for n in range(150):
            with gate.slots(1, soon()):
                time.sleep(0.0002)
            if n % 10 == 0:
                time.sleep(0.003)  # idle, the gate in hand: the tend may let go of it meanwhile
                if found(key) is not gate:
                    problems.append(f"the gate of {key} a thread holds was not found again")

    def dropping(worker: int) -> None:
        for n in range(150):
            with found(keys[(worker + n) % 4]).slots(1, soon()):  # the last mailbox only these use
                time.sleep(0.0002)
            if n % 10 == 0:
                time.sleep(0.003)  # long enough, now and then, for the tend to let go

    tender = threading.Thread(target=tend)
    tender.start()
    workers = [threading.Thread(target=holding if w < 4 else dropping, args=(w,)) for w in range(8)]
    for thread in workers:
        thread.start()
    for thread in workers:
        thread.join(timeout=60)
    stop.set()
    tender.join(timeout=10)
    host.tend()
    assert problems == []
    assert len({id(r()) for s in seen.values() for r in s if r() is not None}) <= 4
    assert all(row.entity.claims == {} for row in rows.query())
