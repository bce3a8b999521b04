"""Graph's per-mailbox limits kept by three instances together (issue 20): three processes'
worth of state (each its own ``SharedMailboxes``, gates and background tending, as Flex's
instances have) share one mailbox's row in Azurite and send to the M365 emulator, which counts
what reaches the mailbox (``concurrentPeak``, ``throttled429``, requests)."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from azure.data.tables import TableServiceClient

from shared.graph.calendars import CalendarClient
from shared.graph.container import ItemDraft
from shared.graph.errors import MailboxThrottled
from shared.graph.gate import MailboxGate
from shared.graph.mailbox import GraphMailbox
from shared.graph.mailbox_lease import IDLE_SECONDS, SharedMailboxes
from shared.graph.mailbox_shares import MailboxLimits, MailboxLimitsRow
from shared.graph.pacing import Pacing
from shared.storage import TableRepository
from tests.fakes.tables import CountsRequests

from .conftest import ADELE, TENANT, Emulator
from .test_calendars import event_fields

MAILBOX = f"{TENANT}/{ADELE}"


class CountingRows(CountsRequests, TableRepository[MailboxLimitsRow]):
    """The Azurite table, counting the Table transactions of one instance (``requests``)."""


@pytest.fixture
def table_name(azurite) -> str:  # type: ignore[no-untyped-def]
    name = f"t{uuid.uuid4().hex[:12]}graphmailboxes"
    TableServiceClient.from_connection_string(azurite.connection_string).create_table(name)
    return name


@pytest.fixture
def instances(azurite, table_name: str) -> Iterator[Callable[..., list[tuple[SharedMailboxes, CountingRows]]]]:  # type: ignore[no-untyped-def]
    made: list[SharedMailboxes] = []

    def make(count: int = 3, idle_seconds: float = IDLE_SECONDS, **limits: Any) -> list[tuple[SharedMailboxes, CountingRows]]:
        out = []
        for n in range(count):
            rows = CountingRows(TableServiceClient.from_connection_string(azurite.connection_string), table_name,
                                MailboxLimitsRow)
            shared = SharedMailboxes(rows, holder=f"host-{n}-{uuid.uuid4().hex[:6]}", limits=MailboxLimits(**limits),
                                     idle_seconds=idle_seconds)
            made.append(shared)
            out.append((shared, rows))
        return out

    yield make
    made.clear()  # their tending threads end with them


def mailbox(emulator: Emulator, entra, http, gate: MailboxGate, pacing: Pacing | None = None) -> GraphMailbox:  # type: ignore[no-untyped-def]
    return GraphMailbox(emulator.graph_url, ADELE, lambda: entra.app_token(TENANT), http, tenant_id=TENANT,
                        gate=gate, pacing=pacing)


def three_at_once(emulator: Emulator, mailboxes: list[GraphMailbox]) -> list[Exception]:
    """Each instance, in two threads: 40 events created in batches, and 8 single reads."""
    calendar = CalendarClient(mailboxes[0]).ensure_calendar()
    emulator.control("POST", "counters/reset")
    errors: list[Exception] = []

    def batches(n: int, box: GraphMailbox) -> None:
        try:
            created = CalendarClient(box).create_events(
                calendar.id, [ItemDraft(crm_id=f"i{n}-{i}", fields=event_fields(f"E{n}-{i}")) for i in range(40)])
            errors.extend(item for item in created if isinstance(item, Exception))
        except Exception as error:  # collected and asserted by the caller
            errors.append(error)

    def singles(box: GraphMailbox) -> None:
        try:
            for _ in range(8):
                CalendarClient(box).get_calendar(calendar.id)
        except Exception as error:  # collected and asserted by the caller
            errors.append(error)

    threads = [threading.Thread(target=batches, args=(n, box)) for n, box in enumerate(mailboxes)]
    threads += [threading.Thread(target=singles, args=(box,)) for box in mailboxes]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    return errors


@pytest.mark.parametrize("emulator_concurrency", [4, 12], ids=["outlook-limit", "peak-measured"])
def test_three_instances_stay_inside_the_mailboxs_four_in_flight(
    emulator: Emulator, entra, http, instances, emulator_concurrency: int  # type: ignore[no-untyped-def]
) -> None:
    """With Outlook's own limit (4) no 429 is earned; with the emulator letting 12 through,
    what we sent at once is measured: never more than 4 across the three."""
    emulator.faults(latency_ms=30, mailbox_concurrency=emulator_concurrency)
    hosts = instances(3)
    boxes = [mailbox(emulator, entra, http, shared.gate(MAILBOX)) for shared, _ in hosts]
    errors = three_at_once(emulator, boxes)

    counters = emulator.counters()
    transactions = sum(rows.requests for _, rows in hosts)
    claims = sum(lease.claims_begun for shared, _ in hosts for lease in shared.leases())
    print(f"\n{emulator_concurrency}: counters {counters}, table transactions {transactions} for {claims} claims "
          f"({transactions / max(1, claims):.1f} per claim), per instance {[rows.requests for _, rows in hosts]}")
    assert errors == []
    assert counters["total"] == 3 * (40 + 8)
    assert counters["concurrentPeak"] <= 4 and counters["throttled429"] == 0, counters
    assert transactions <= 12 * claims, (transactions, claims)  # O(claims), not O(requests): 144 requests here


@pytest.mark.parametrize("emulator_concurrency", [4, 12], ids=["outlook-limit", "peak-measured"])
def test_without_the_shared_part_three_instances_overrun_the_mailbox(
    emulator: Emulator, entra, http, emulator_concurrency: int  # type: ignore[no-untyped-def]
) -> None:
    """The control: the same load with each instance's gate on its own (as before issue 20)
    sends up to 12 at once, and Outlook throttles it. So the test above can fail."""
    emulator.faults(latency_ms=30, mailbox_concurrency=emulator_concurrency)
    boxes = [mailbox(emulator, entra, http, MailboxGate()) for _ in range(3)]
    errors = three_at_once(emulator, boxes)
    counters = emulator.counters()
    assert errors == []  # the retries absorb the 429s...
    if emulator_concurrency == 4:
        assert counters["throttled429"] > 0, counters  # ...which Outlook had to send
    else:
        assert counters["concurrentPeak"] > 4, counters


def test_the_ten_minute_window_is_kept_by_the_three_together(
    emulator: Emulator, entra, http, instances  # type: ignore[no-untyped-def]
) -> None:
    """Both windows at 60 requests: the three send 60 between them (each up to 30), and those
    left wanting defer with the window's own wait; Outlook never has to throttle."""
    hosts = instances(3, window_requests=60)
    calendar = CalendarClient(mailbox(emulator, entra, http, MailboxGate())).ensure_calendar()
    emulator.faults(mailbox_requests_per_10_minutes=60)
    emulator.control("POST", "counters/reset")
    sent = 0
    deferred: list[float] = []
    lock = threading.Lock()

    def reads(shared: SharedMailboxes) -> None:
        nonlocal sent
        calendars = CalendarClient(mailbox(emulator, entra, http, shared.gate(MAILBOX), Pacing(max_wait_seconds=15)))
        for _ in range(30):
            try:
                calendars.get_calendar(calendar.id)
            except MailboxThrottled as held:
                with lock:
                    deferred.append(held.retry_after)
                return
            with lock:
                sent += 1

    threads = [threading.Thread(target=reads, args=(shared,)) for shared, _ in hosts]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    counters = emulator.counters()
    assert sent == 60 and counters["total"] == 60 and counters["throttled429"] == 0, (sent, counters)
    assert deferred and all(wait > 500 for wait in deferred), deferred


def test_a_429_seen_by_one_instance_pauses_the_mailbox_for_the_others(
    emulator: Emulator, entra, http, instances  # type: ignore[no-untyped-def]
) -> None:
    (first, _), (second, _) = instances(2, idle_seconds=0.5)  # the first's slots come back within ~1.5 s
    calendar = CalendarClient(mailbox(emulator, entra, http, MailboxGate())).ensure_calendar()
    emulator.faults(rate_429=1.0, retry_after_seconds=6)
    with pytest.raises(MailboxThrottled):  # the first instance defers its job: 6 s is past its budget
        CalendarClient(mailbox(emulator, entra, http, first.gate(MAILBOX), Pacing(max_wait_seconds=1))).get_calendar(calendar.id)
    emulator.faults()
    emulator.control("POST", "counters/reset")
    started = time.monotonic()
    CalendarClient(mailbox(emulator, entra, http, second.gate(MAILBOX), Pacing(max_wait_seconds=15))).get_calendar(calendar.id)
    assert time.monotonic() - started > 4  # it waited out the first one's 6-s Retry-After before sending
    assert emulator.counters()["total"] == 1
