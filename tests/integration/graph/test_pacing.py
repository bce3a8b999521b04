"""Per-mailbox pacing: never more than 4 in flight, 429 storms survived, bounded waits (SPEC §5)."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from shared.graph.batch import GraphRequest
from shared.graph.calendars import CALENDAR_NAME, CalendarClient
from shared.graph.contacts import FOLDER_NAME, ContactsClient
from shared.graph.container import ItemDraft
from shared.graph.gate import MailboxGate, gate_for
from shared.graph.mailbox import GraphMailbox
from shared.graph.pacing import Pacing
from shared.graph.send_order import SendCancelled, SendOrder, current_turn, sending_in
from shared.graph.sync_errors import MailboxThrottled

from .conftest import ADELE, TENANT, Emulator
from .test_calendars import event_fields


def test_one_gate_per_mailbox_in_the_process(emulator: Emulator, entra, http) -> None:
    def make(user: str) -> GraphMailbox:
        return GraphMailbox(emulator.graph_url, user, lambda: "unused", http, tenant_id=TENANT)

    assert make(ADELE).gate is make(ADELE.upper()).gate is gate_for(f"{TENANT}/{ADELE}")
    assert make("someone-else").gate is not make(ADELE).gate


def test_a_batch_waits_for_all_its_slots_and_is_not_starved() -> None:
    gate = MailboxGate()
    order: list[str] = []
    gate.acquire(1, time.monotonic() + 5)

    def batch() -> None:
        with gate.slots(4, time.monotonic() + 5):
            order.append("batch")

    def single() -> None:
        with gate.slots(1, time.monotonic() + 5):
            order.append("single")

    waiting = threading.Thread(target=batch)
    waiting.start()
    time.sleep(0.05)
    later = threading.Thread(target=single)  # arrives after the batch: must not overtake it
    later.start()
    time.sleep(0.05)
    assert order == []
    gate.release(1)
    waiting.join(2)
    later.join(2)
    assert order == ["batch", "single"] and gate.peak == 4 and gate.in_use == 0


def test_concurrency_never_exceeds_four(mailbox: GraphMailbox, emulator: Emulator) -> None:
    calendars = CalendarClient(mailbox)
    contacts = ContactsClient(mailbox)
    calendar = calendars.ensure_calendar()
    folder = contacts.ensure_folder()
    emulator.faults(latency_ms=20)
    emulator.control("POST", "counters/reset")

    def batch_of_events(n: int) -> None:
        calendars.create_events(calendar.id, [ItemDraft(crm_id=f"e{n}-{i}", fields=event_fields(f"E{i}")) for i in range(30)])

    def singles(n: int) -> None:
        for i in range(5):
            contacts.create_contact(folder.id, {"givenName": f"C{n}-{i}"}, crm_id=f"c{n}-{i}")
            calendars.get_calendar(calendar.id)

    with ThreadPoolExecutor(max_workers=8) as pool:
        jobs = [pool.submit(batch_of_events, n) for n in range(2)] + [pool.submit(singles, n) for n in range(6)]
        for job in jobs:
            job.result()
    counters = emulator.counters()
    assert counters["concurrentPeak"] <= 4 and mailbox.gate.peak <= 4
    assert counters["throttled429"] == 0  # the gate kept us under Outlook's limit: no ApplicationThrottled
    assert counters["total"] == 60 + 30 + 30


def test_a_429_storm_delays_but_loses_and_duplicates_nothing(mailbox: GraphMailbox, emulator: Emulator) -> None:
    calendars = CalendarClient(mailbox)
    contacts = ContactsClient(mailbox)
    calendar = calendars.ensure_calendar()
    folder = contacts.ensure_folder()
    emulator.faults(rate_429=0.2, rate_503=0.03, retry_after_seconds=1, latency_ms=5, seed=11)
    emulator.control("POST", "counters/reset")

    with ThreadPoolExecutor(max_workers=3) as pool:
        events = pool.submit(calendars.create_events, calendar.id,
                             [ItemDraft(crm_id=f"e{i}", fields=event_fields(f"E{i}")) for i in range(40)])
        people = pool.submit(contacts.create_contacts, folder.id,
                             [ItemDraft(crm_id=f"c{i}", fields={"givenName": f"C{i}"}) for i in range(20)])
        singles = pool.submit(lambda: [calendars.create_event(calendar.id, event_fields(f"S{i}"), crm_id=f"s{i}")
                                       for i in range(5)])
        created = events.result() + people.result() + singles.result()
    assert all(not isinstance(item, Exception) for item in created)

    counters = emulator.counters()
    assert counters["throttled429"] > 0  # the storm happened
    assert counters["concurrentPeak"] <= 4
    emulator.faults()
    box = emulator.mailbox()
    [ours] = [c for c in box["calendars"] if c["name"] == CALENDAR_NAME]
    event_tags = sorted(p["value"] for e in ours["events"] for p in e["singleValueExtendedProperties"])
    assert event_tags == sorted([*(f"e{i}" for i in range(40)), *(f"s{i}" for i in range(5))])
    [folder_seen] = [f for f in box["contactFolders"] if f["displayName"] == FOLDER_NAME]
    contact_tags = sorted(p["value"] for c in folder_seen["contacts"] for p in c["singleValueExtendedProperties"])
    assert contact_tags == sorted(f"c{i}" for i in range(20))


def test_items_sent_again_ride_with_fresh_ones_in_full_batches(mailbox: GraphMailbox, emulator: Emulator) -> None:
    """A 429 storm on a long list: throttled items go back into the next batches with fresh
    items, so the round trips stay near ceil(item sends / 20), not one extra batch per throttled one."""
    calendars = CalendarClient(mailbox)
    calendar = calendars.ensure_calendar()
    emulator.faults(rate_429=0.2, retry_after_seconds=0.2, seed=5)
    emulator.control("POST", "counters/reset")
    created = calendars.create_events(calendar.id, [ItemDraft(crm_id=f"e{i}", fields=event_fields(f"E{i}")) for i in range(200)])
    assert all(not isinstance(item, Exception) for item in created)
    totals = emulator.control("GET", "counters")["totals"]
    sends = totals["requests"]  # every item send
    assert emulator.counters()["throttled429"] >= 20  # the storm happened
    # The tail: the last throttled items of each of the 2 batches under way go out in partial
    # batches (the floor's tail too). Retrying in batches of their own would cost ~30.
    assert totals["httpRequests"] <= -(-sends // 20) + 5
    emulator.faults()
    [ours] = [c for c in emulator.mailbox()["calendars"] if c["name"] == CALENDAR_NAME]
    assert sorted(p["value"] for e in ours["events"] for p in e["singleValueExtendedProperties"]) == sorted(f"e{i}" for i in range(200))


def test_throttling_past_the_budget_raises_a_retryable_error(make_mailbox, emulator: Emulator) -> None:
    mailbox = make_mailbox(pacing=Pacing(max_wait_seconds=1.0))
    calendars = CalendarClient(mailbox)
    calendar = calendars.ensure_calendar()
    emulator.faults(rate_429=1.0, retry_after_seconds=5)
    started = time.monotonic()
    with pytest.raises(MailboxThrottled) as raised:
        calendars.get_calendar(calendar.id)
    assert raised.value.retry_after == 5 and time.monotonic() - started < 1.0  # deferred, not slept on

    with pytest.raises(MailboxThrottled) as raised:
        calendars.create_events(calendar.id, [ItemDraft(crm_id=f"e{i}", fields=event_fields("x")) for i in range(3)])
    assert raised.value.completed == [None, None, None]
    assert time.monotonic() - started < 2.5


def test_dependent_batch_items_run_in_order_and_fail_together(mailbox: GraphMailbox, emulator: Emulator) -> None:
    calendars = CalendarClient(mailbox)
    calendar = calendars.ensure_calendar()
    event = calendars.create_event(calendar.id, event_fields("Chain"), crm_id="zcrm_1")
    url = f"{mailbox.user_path}/calendars/{calendar.id}/events"
    answers = mailbox.send_batch([
        GraphRequest(method="PATCH", url=f"{url}/{event.id}", body={"subject": "Chained"}),
        GraphRequest(method="GET", url=f"{url}/{event.id}", depends_on=(0,)),
        GraphRequest(method="GET", url=f"{url}/missing"),
        GraphRequest(method="GET", url=f"{url}/{event.id}", depends_on=(2,)),
    ])
    assert [a.status for a in answers] == [200, 200, 404, 424]
    assert answers[1].json_object()["subject"] == "Chained"


def test_the_gate_holds_requests_back_once_the_mailbox_s_10_minute_window_is_spent(
    emulator: Emulator, entra, http  # type: ignore[no-untyped-def]
) -> None:
    """Graph counts every request (each $batch item) against 10,000 per 10 minutes per mailbox; the
    10,001st only earns a 429 with minutes to wait. Here both windows are 25 requests: the gate
    sends 25 and then defers with the window's own wait, and Graph never has to throttle us."""
    gate = MailboxGate(window_requests=25)
    mailbox = GraphMailbox(emulator.graph_url, ADELE, lambda: entra.app_token(TENANT), http, tenant_id=TENANT,
                           pacing=Pacing(max_wait_seconds=2), gate=gate)
    calendars = CalendarClient(mailbox)
    calendar = calendars.ensure_calendar()
    emulator.faults(mailbox_requests_per_10_minutes=25)
    emulator.control("POST", "counters/reset")
    gate.forget_window()
    created = calendars.create_events(calendar.id, [ItemDraft(crm_id=f"w{i}", fields=event_fields(f"W{i}")) for i in range(20)])
    assert all(not isinstance(item, Exception) for item in created)
    for _ in range(5):
        calendars.get_calendar(calendar.id)
    assert 0 < gate.window_wait(1) <= 600
    with pytest.raises(MailboxThrottled) as held:
        calendars.get_calendar(calendar.id)  # the 26th
    assert held.value.retry_after is not None and held.value.retry_after > 500  # the job is deferred that long
    counters = emulator.counters()
    assert counters["throttled429"] == 0 and counters["total"] == 25


def test_pages_sent_in_turns_reach_outlook_in_order_within_the_mailbox_s_four_slots(mailbox: GraphMailbox, emulator: Emulator) -> None:
    """Issue 21's pipeline: page 2 is ready (planned, its bodies made) before page 1 has sent
    its last batch, yet its items must reach Outlook after page 1's (R3.5's order). Sent in
    turns (``send_order``), the second page's first batch queues at the gate behind the first
    page's last: the order holds, and the mailbox's 4 slots are never exceeded. (That Graph then
    never waits between pages is measured by ``make bench``: docs/benchmarks.md, session 18.)"""
    calendars = CalendarClient(mailbox)
    calendar = calendars.ensure_calendar()
    emulator.faults(latency_ms=10)
    order = SendOrder()

    def page(number: int, size: int) -> None:
        with sending_in(order.turn(number)):
            calendars.create_events(calendar.id, [ItemDraft(crm_id=f"p{number}-{i:02}", fields=event_fields(f"P{number} {i:02}"))
                                                  for i in range(size)])

    with ThreadPoolExecutor(max_workers=3) as pool:
        later = [pool.submit(page, 2, 30), pool.submit(page, 1, 50)]  # ready first, sent after page 0
        time.sleep(0.2)
        first = pool.submit(page, 0, 45)
        for job in [first, *later]:
            job.result()
    [ours] = emulator.calendars_named(CALENDAR_NAME)
    tags = [p["value"] for e in ours["events"] for p in e["singleValueExtendedProperties"]]
    # Graph runs a batch's items 4 at a time (their order within a batch is Graph's); pages never mix.
    assert [tag.split("-")[0] for tag in tags] == ["p0"] * 45 + ["p1"] * 50 + ["p2"] * 30
    assert emulator.counters()["concurrentPeak"] <= 4 and mailbox.gate.peak <= 4


def test_pages_sent_in_turns_send_their_throttled_items_with_the_next_pages(mailbox: GraphMailbox, emulator: Emulator) -> None:
    """An initial sync's pages under a 429 storm: the items Graph throttled near a page's end ride
    in the next page's batches (one stream of batches for the order, ``batch_stream``) instead of
    small batches of their own, so the round trips stay near ceil(item sends / 20) across pages
    as within one (bench initial-calendar-throttled: 108 ``$batch``es for 1,000 events, the
    floor 67). Every item once, none lost."""
    calendars = CalendarClient(mailbox)
    calendar = calendars.ensure_calendar()
    emulator.faults(rate_429=0.2, retry_after_seconds=0.2, seed=7)
    emulator.control("POST", "counters/reset")
    order = SendOrder()
    pages, size = 8, 30

    def page(number: int) -> list[object]:
        with sending_in(order.turn(number)):
            return list(calendars.create_events(calendar.id, [ItemDraft(crm_id=f"p{number}-{i:02}", fields=event_fields(f"P{number} {i:02}"))
                                                              for i in range(size)]))

    with ThreadPoolExecutor(max_workers=2) as pool:  # two pages in flight, as the initial sync
        created = [item for items in pool.map(page, range(pages)) for item in items]
    assert all(not isinstance(item, Exception) for item in created)
    totals = emulator.control("GET", "counters")["totals"]
    assert emulator.counters()["throttled429"] >= 30  # the storm happened
    emulator.faults()
    [ours] = emulator.calendars_named(CALENDAR_NAME)
    tags = [p["value"] for e in ours["events"] for p in e["singleValueExtendedProperties"]]
    assert sorted(tags) == sorted(f"p{n}-{i:02}" for n in range(pages) for i in range(size))
    # A batch carries the fresh items of one page only (R3.5's order): 20 and 10 here, the 10
    # topped up with what was throttled before. Each page draining its own pool sent 42 (its
    # throttled items in small batches of their own); the stream, 28.
    assert totals["httpRequests"] <= -(-totals["requests"] // 20) + 2 * pages, totals


def test_one_item_pages_sent_in_turns_reach_outlook_one_after_the_other(mailbox: GraphMailbox, emulator: Emulator) -> None:
    """A batch of fewer than 4 items needs fewer than the mailbox's 4 slots: sent in turns it
    still holds them all, or the next page's would run beside it and overtake it (found by
    make test: the initial sync with pages of one sent "Tomorrow" before the running series)."""
    calendars = CalendarClient(mailbox)
    calendar = calendars.ensure_calendar()
    emulator.faults(latency_ms=15)
    order = SendOrder()

    def page(number: int) -> None:
        with sending_in(order.turn(number)):
            calendars.create_events(calendar.id, [ItemDraft(crm_id=f"p{number}", fields=event_fields(f"P{number}"))])

    with ThreadPoolExecutor(max_workers=6) as pool:
        jobs = [pool.submit(page, n) for n in (5, 4, 3, 2, 1, 0)]
        for job in jobs:
            job.result()
    [ours] = emulator.calendars_named(CALENDAR_NAME)
    assert [p["value"] for e in ours["events"] for p in e["singleValueExtendedProperties"]] == [f"p{n}" for n in range(6)]


def test_a_page_that_fails_cancels_the_turns_behind_it() -> None:
    """The initial sync's page k fails (throttled past its budget, a crash): pages k+1, k+2
    already prepared send nothing; the next step goes on from the committed progress."""
    order = SendOrder()
    started = threading.Event()
    outcome: list[str] = []

    def second() -> None:
        turn = order.turn(1)
        started.set()
        try:
            turn.wait()
            outcome.append("sent")
        except SendCancelled:
            outcome.append("cancelled")

    waiting = threading.Thread(target=second)
    waiting.start()
    started.wait(2)
    with pytest.raises(RuntimeError), sending_in(order.turn(0)):
        order.cancel()  # what InitialSync._send_page does when its page fails
        raise RuntimeError("page 0 failed")
    waiting.join(2)
    assert outcome == ["cancelled"]
    with pytest.raises(SendCancelled):
        order.turn(2).wait()


def test_turns_are_taken_in_order_whoever_is_ready_first() -> None:
    order = SendOrder()
    went: list[int] = []
    lock = threading.Lock()

    def go(number: int) -> None:
        with sending_in(order.turn(number)):
            turn = current_turn()
            assert turn is not None and turn.number == number
            turn.wait()
            with lock:
                went.append(number)

    threads = [threading.Thread(target=go, args=(n,)) for n in (3, 1, 2, 0)]
    for thread in threads:
        thread.start()
        time.sleep(0.02)
    for thread in threads:
        thread.join(2)
    assert went == [0, 1, 2, 3] and current_turn() is None


def _mixed(mailbox: GraphMailbox, calendar_id: str, n: int) -> list[GraphRequest]:
    """``n`` independent creates and, among them, chains: a create then a read of what it made."""
    url = f"{mailbox.user_path}/calendars/{calendar_id}/events"
    requests_: list[GraphRequest] = []
    for i in range(n):
        requests_.append(GraphRequest(method="POST", url=url, body=event_fields(f"M{i:02}")))
        if i % 10 == 0:
            requests_.append(GraphRequest(method="GET", url=f"{mailbox.user_path}/calendars/{calendar_id}", depends_on=(len(requests_) - 1,)))
    return requests_


def test_one_call_s_chains_and_independent_items_under_a_storm_are_each_answered_once(
    mailbox: GraphMailbox, emulator: Emulator
) -> None:
    """Outside an initial sync's turns, one ``send_all`` is its own stream of batches, its
    dependency chains in batches of their own beside it: a 429 storm delays, loses nothing,
    sends nothing twice."""
    calendars = CalendarClient(mailbox)
    calendar = calendars.ensure_calendar()
    emulator.faults(rate_429=0.2, retry_after_seconds=0.2, seed=11)
    requests_ = _mixed(mailbox, calendar.id, 50)
    answers = mailbox.send_all(requests_)
    emulator.faults()
    assert [a.status for a in answers] == [201 if r.method == "POST" else 200 for r in requests_]
    [ours] = emulator.calendars_named(CALENDAR_NAME)
    assert sorted(e["subject"] for e in ours["events"]) == [f"M{i:02}" for i in range(50)]
    assert emulator.counters()["concurrentPeak"] <= 4


def test_one_call_past_its_budget_answers_every_item_given_up_and_sends_no_more(make_mailbox, emulator: Emulator) -> None:
    mailbox = make_mailbox(pacing=Pacing(max_wait_seconds=1.0))
    calendars = CalendarClient(mailbox)
    calendar = calendars.ensure_calendar()
    requests_ = _mixed(mailbox, calendar.id, 45)
    emulator.faults(rate_429=1.0, retry_after_seconds=5)
    emulator.control("POST", "counters/reset")
    started = time.monotonic()
    answers = mailbox.send_all(requests_)
    assert all(a.gave_up for a in answers) and time.monotonic() - started < 2.5
    # Each of the call's first batches and chains went once; once one gave up, nothing more.
    assert emulator.control("GET", "counters")["totals"]["httpRequests"] <= 2 + 5
    emulator.faults()
    assert emulator.calendars_named(CALENDAR_NAME)[0]["events"] == []
