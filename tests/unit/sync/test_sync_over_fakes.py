"""The runner and the service, fast, over in-memory stores and sides held to the real
things' contracts (``tests/sync_harness.py``; issue 17 §2): the whole life of a member's
contacts sync (Enable, initial pages, two-way rounds, Disable, Enable again, a deleted
folder) with processes dying at any write and messages delivered twice."""

from __future__ import annotations

import logging
import threading
from datetime import timedelta
from types import SimpleNamespace
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from shared.crm.errors import CrmError
from shared.crm.records import ListQuery
from shared.sync import echoes, initial_sync
from shared.sync.jobs import StepReason, SyncJob
from shared.sync.lifecycle import Reason, SyncState
from shared.sync.profiles import LeaseHeartbeat, LeaseLost
from shared.sync.retries import MAX_RETRIES
from shared.sync.step_failures import NothingToResume
from tests.sync_harness import KIND, MEMBER_KEY, SyncHarness


def _seed(harness: SyncHarness, mine: int, others: int) -> list[str]:
    made = [harness.crm_store.user_create({"subject": f"Contact {n}"}) for n in range(mine)]
    for n in range(others):
        harness.crm.owners[harness.crm_store.user_create({"subject": f"Colleague {n}"})] = "4000000000999"
    return made


def test_initial_sync_over_pages_then_two_way() -> None:
    harness = SyncHarness()
    made = _seed(harness, 8, 2)
    harness.enable()
    harness.settle()
    profile = harness.profile()
    assert profile.state is SyncState.ACTIVE and profile.subscription_id and profile.delta_link
    assert profile.initial_done == 8 and profile.synced_items == 8
    route = harness.service.routes.get(f"graph|{profile.subscription_id}", "hook")
    assert route is not None and route.entity.links_partition == profile.links_partition  # echoes told without the profile
    harness.assert_in_step()
    assert len(harness.outlook_store.items) == 8  # the colleagues' contacts stay out (R4.5)

    made.append(harness.outlook_store.user_create({"subject": "Made in Outlook"}))
    harness.crm_store.user_edit(made[0], {"subject": "Contact 0, renamed in the CRM"})
    gone = next(i for i, item in harness.outlook_store.items.items() if item.origin == made[1])
    harness.outlook_store.delete(gone)
    harness.user_deleted.add(made[1])
    harness.webhook()
    harness.webhook()  # a flood of notifications: one step
    assert len(harness.pending) == 1
    harness.settle()
    harness.assert_in_step()
    harness.assert_nothing_lost(made)
    assert made[1] not in harness.origins(harness.crm_store)  # deleted in Outlook while syncing: deleted in the CRM


def test_a_full_round_adopts_our_items_whose_link_rows_are_missing_instead_of_copying_them_back() -> None:
    """make soak once ended with one initial page of contacts twice in the CRM: their Outlook
    copies had no link rows when two-way sync's first (full) round listed them, and with no
    create pending it did not read their markers. The full round reads the markers of every
    Outlook item no row knows: ours are adopted (N5), the member's own stay new (N2)."""
    harness = SyncHarness()
    made = _seed(harness, 5, 0)
    harness.enable()
    harness.settle()
    partition = harness.profile().links_partition
    lost = harness.links.all(partition)[:2]
    harness.links.forget(partition, lost)  # rows that never landed
    made.append(harness.outlook_store.user_create({"subject": "Made in Outlook"}))
    harness.profiles.update(MEMBER_KEY, KIND, lambda p: p.model_copy(update={"delta_link": None}))  # a full round
    harness.webhook()
    harness.settle()
    harness.assert_in_step()
    harness.assert_nothing_lost(made)
    assert {row.crm_id for row in lost} <= {row.crm_id for row in harness.links.all(partition)}


def test_a_record_the_crm_lists_twice_is_sent_once() -> None:
    """The CRM pages a listing by offset: a record edited while the selection pass lists it
    can come on two pages. Kept twice in the selection, the first step failed on its second
    copy (a KeyError: the listed records are handed to the pages once), and the steps after
    it planned it twice."""
    harness = SyncHarness()
    made = _seed(harness, 7, 0)
    listing = harness.crm.pages

    def with_a_page_twice(start):  # type: ignore[no-untyped-def]
        pages = list(listing(start))
        yield from [pages[0], *pages] if isinstance(start, ListQuery) and start.modified_since is None else pages

    harness.crm.pages = with_a_page_twice  # type: ignore[method-assign]
    harness.enable()
    harness.settle()
    harness.assert_in_step()
    harness.assert_nothing_lost(made)
    assert harness.profile().initial_total == 7


def test_a_webhook_silenced_by_a_mark_no_step_takes_leaves_a_warning(caplog) -> None:  # type: ignore[no-untyped-def]
    """propagation-under-load stalled 18 s with no trace: webhooks found the mark set and queued
    nothing. A mark older than 5 s that no running step holds is now named in the log."""
    harness = SyncHarness()
    _seed(harness, 2, 0)
    harness.enable()
    harness.settle()
    harness.webhook()  # marks and queues a step, not delivered yet
    harness.clock.advance(timedelta(seconds=6))
    with caplog.at_level(logging.INFO, logger="shared.sync.webhooks"):
        harness.webhook()
    waiting = [r for r in caplog.records if "has not taken the lease yet" in r.getMessage()]
    assert len(waiting) == 1 and waiting[0].levelno == logging.WARNING and "queued; lease free" in waiting[0].getMessage()
    assert len(harness.pending) == 1  # still the one step: within 60 s a mark is not stale
    harness.settle()
    harness.assert_in_step()


def test_disable_then_enable_keeps_what_was_made_in_outlook() -> None:
    """Issue 17's data loss, at the speed of a unit test: the Outlook-made item stays in the
    CRM through Disable and comes back into the new folder with the others."""
    harness = SyncHarness()
    made = _seed(harness, 3, 0)
    harness.enable()
    harness.settle()
    made.append(harness.outlook_store.user_create({"subject": "Made in Outlook"}))
    made.append(harness.crm_store.user_create({"subject": "Made in the CRM"}))
    harness.webhook()
    harness.settle()
    first = harness.profile().generation
    harness.disable()
    assert harness.outlook_store.items == {} and len(harness.crm_store.items) == 5
    harness.enable()
    harness.settle()
    assert harness.profile().generation != first
    harness.assert_in_step()
    harness.assert_nothing_lost(made)
    harness.sweep()  # a full round later: still nothing taken for a deletion
    harness.settle()
    harness.assert_nothing_lost(made)


def test_a_deleted_folder_disables_the_sync_and_the_crm_keeps_everything() -> None:
    harness = SyncHarness()
    made = _seed(harness, 4, 0)
    harness.enable()
    harness.settle()
    harness.outlook.delete_container(harness.profile().container_id or "")
    harness.webhook()
    harness.settle()
    profile = harness.profile()
    assert profile.state is SyncState.DISABLED and profile.reason is Reason.CONTAINER_DELETED
    assert not harness.subscriptions.subscriptions and not harness.channels.channels  # nothing left to notify us
    harness.assert_nothing_lost(made)


def test_a_disable_during_a_step_leaves_no_row_of_that_enable() -> None:
    """The member disables while a step runs: the step cannot write after the purge (its
    rows would belong to no generation that reads them)."""
    harness = SyncHarness()
    made = _seed(harness, 5, 0)
    harness.enable()
    harness.settle()
    old = harness.profile()
    reads = harness.outlook.delta_pages

    def disabled_meanwhile(container_id: str, resume: str | None):  # type: ignore[no-untyped-def]
        harness.outlook.delta_pages = reads  # type: ignore[method-assign]
        harness.service.disable(harness.member, KIND)
        return reads(container_id, resume)

    harness.outlook.delta_pages = disabled_meanwhile  # type: ignore[method-assign]
    harness.crm_store.user_edit(made[0], {"subject": "Edited as the member disabled"})
    harness.webhook()
    harness.settle()
    assert harness.profile().state is SyncState.DISABLED
    assert harness.links.all(old.links_partition) == []
    harness.assert_nothing_lost(made)


def test_an_initial_sync_nobody_interrupted_looks_nothing_up_by_marker(monkeypatch: pytest.MonkeyPatch) -> None:
    """The range reserved ahead is looked up only after a crash: a plain initial sync sends
    each page once, no read before it (found by make bench: 200 needless Graph reads)."""
    harness = SyncHarness()
    made = _seed(harness, 7, 0)
    lookups: list[str] = []
    find = harness.outlook.find_items_by_crm_id
    monkeypatch.setattr(harness.outlook, "find_items_by_crm_id", lambda container, marker: lookups.append(marker) or find(container, marker))
    harness.enable()
    harness.settle()
    harness.assert_in_step()
    harness.assert_nothing_lost(made)
    assert lookups == []


@pytest.mark.parametrize("full_from", [0, 1, 2])
def test_a_mailbox_window_without_room_stops_the_initial_sync_between_pages_and_it_comes_back_later(
    monkeypatch: pytest.MonkeyPatch, full_from: int
) -> None:
    """Graph's 10,000 requests per 10 minutes spent (bench initial-contacts at 10,000): a page
    is not started that would wait past its budget at the gate; the step stops between pages,
    nothing reserved ahead of what it sent, and comes back when the window has room. Started
    anyway, it was deferred in mid-page and the next step looked each create up by marker."""
    looks: list[int] = []

    def room_wait(requests: int) -> float:
        looks.append(requests)
        return 120.0 if len(looks) - 1 == full_from else 0.0  # one look finds the window spent

    harness = SyncHarness(graph_room_wait=room_wait)
    made = _seed(harness, 9, 0)
    lookups: list[str] = []
    find = harness.outlook.find_items_by_crm_id
    monkeypatch.setattr(harness.outlook, "find_items_by_crm_id", lambda container, marker: lookups.append(marker) or find(container, marker))
    delays: list[timedelta | None] = []
    send = harness.queue.send
    monkeypatch.setattr(harness.queue, "send", lambda message, delay=None: delays.append(delay) or send(message, delay=delay))
    harness.enable()
    harness.deliver_one(None)  # the first step: its selection, then pages until the window is spent
    assert len(harness.outlook_store.items) == [0, 4, 6][full_from]  # pages of 2, two in flight
    assert delays[-1] == timedelta(seconds=120)  # back when the window has room
    assert harness.profile().initial_resume_at is not None  # the sweep's safety net waits for it
    harness.settle()
    harness.assert_in_step()
    harness.assert_nothing_lost(made)
    assert lookups == []  # nothing was sent beyond what the step committed
    assert looks[0] == 4  # two pages of 2: the room the pages in flight need


def test_enable_each_step_and_disable_give_the_mailbox_back_before_the_next_may_run() -> None:
    """The next step (or Enable) may run on another instance at once: it must not find the claim
    of the Enable, step or Disable before it on the mailbox (it waited for it to idle out, a
    second each time)."""
    queued_when_done: list[int] = []
    harness: SyncHarness | None = None

    def done() -> None:
        assert harness is not None
        queued_when_done.append(len(harness.queue.sent))

    harness = SyncHarness(mailbox_done=done)
    made = _seed(harness, 3, 0)
    harness.enable()
    assert queued_when_done == [0] and [d.job.step for d in harness.pending] == ["initial"]
    harness.enable()  # enabled already: no call made, nothing to give back
    assert queued_when_done == [0]
    harness.settle()
    harness.assert_nothing_lost(made)
    assert harness.deliveries >= 1 and len(queued_when_done) == 1 + harness.deliveries
    done_before = len(queued_when_done)
    harness.disable()  # its Graph calls (the container deleted): an Enable again may run elsewhere
    assert len(queued_when_done) == done_before + 1
    harness.disable()  # disabled already: nothing called, nothing to give back
    assert len(queued_when_done) == done_before + 1


def test_disable_then_enable_during_a_wait_for_the_mailbox_s_window_starts_with_no_wait() -> None:
    """The member disables while their initial sync waits out the window, and enables again:
    the new sync owes nothing to the old one's wait (the settings page's time left, the sweep)."""
    looks: list[int] = []
    harness = SyncHarness(graph_room_wait=lambda requests: looks.append(requests) or (120.0 if len(looks) == 2 else 0.0))
    made = _seed(harness, 9, 0)
    harness.enable()
    harness.deliver_one(None)  # stops for the window
    assert harness.profile().initial_resume_at is not None
    harness.disable()
    harness.enable()
    assert harness.profile().initial_resume_at is None
    harness.settle()
    harness.assert_in_step()
    harness.assert_nothing_lost(made)


def test_an_initial_step_reads_each_record_once_and_a_later_slice_reads_its_pages_by_id(monkeypatch: pytest.MonkeyPatch) -> None:
    """Issue 21: the selection pass lists the records with every field the pages need, so the
    step that made it sends them without a second read of the CRM; a later step of a sync that
    yielded its worker (the selection's records are gone with the step) reads its pages by id."""
    monkeypatch.setattr(initial_sync, "INITIAL_STEP_SECONDS", -1.0)
    monkeypatch.setattr(initial_sync.InitialSync, "_others_wait", staticmethod(lambda ctx: True))
    harness = SyncHarness()  # pages of 2, two in flight: the first step sends 4 of 7, the next 3
    made = _seed(harness, 7, 0)
    read: list[list[str]] = []
    by_ids = harness.crm.by_ids
    monkeypatch.setattr(harness.crm, "by_ids", lambda module, ids, fields: read.append(list(ids)) or by_ids(module, ids, fields))
    harness.enable()
    harness.deliver_one(None)  # the first step: the selection, then 2 pages
    assert read == [] and len(harness.outlook_store.items) == 4
    harness.settle()
    harness.assert_in_step()
    harness.assert_nothing_lost(made)
    assert [len(ids) for ids in read] == [2, 1]  # the second step's two pages


def test_a_selection_that_cannot_list_every_field_lists_the_keys_and_the_pages_read_by_id() -> None:
    """The CRM lists at most 50 fields a call (49 with the owner filter): a contacts mapping of
    nearly 50 fields cannot ride on the selection's listing, which then lists the ordering keys,
    scope and names only, as before issue 21's single read, instead of failing the sync."""
    scan = ("Modified_Time", "Data_Source", "First_Name", "Last_Name")
    small = SimpleNamespace(crm_module="Contacts", scan_fields=scan, crm_fields=("First_Name", "Email", "Owner"))
    query, whole = initial_sync.selection_listing(small, "owner")  # type: ignore[arg-type]
    assert whole and set(query.fields) == {*scan, "Email", "Owner"}
    wide = SimpleNamespace(crm_module="Contacts", scan_fields=scan, crm_fields=tuple(f"Field_{n}" for n in range(50)))
    query, whole = initial_sync.selection_listing(wide, "owner")  # type: ignore[arg-type]
    assert not whole and query.fields == scan


@pytest.mark.parametrize("dies_at", range(16))
def test_an_initial_sync_that_dies_at_any_write_ends_with_each_item_once(dies_at: int) -> None:
    """Pages are committed with the progress, and creates are sent up to two pages ahead of
    it (issue 21): a process that dies after sending a page's creates but before its commit
    leaves items that no row names. Contacts have no Graph transactionId, so only the lookup
    by marker of the range that may have been sent keeps them from being made twice."""
    harness = SyncHarness()  # pages of 2: seven items are four pages
    made = _seed(harness, 7, 0)
    harness.enable()
    harness.settle([dies_at, dies_at])
    harness.assert_in_step()
    harness.assert_nothing_lost(made)
    assert harness.profile().synced_items == 7


@pytest.mark.parametrize("lost_at", range(5))
def test_a_step_whose_lease_is_lost_writes_no_more_pages_and_the_sync_ends_exact(lost_at: int, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """A step whose lease is no longer surely its own (found taken after a stall, or not
    renewed for two thirds of it) stops before its next plan's writes: another step may be
    writing the same pages (make soak, three hosts: a page of contacts made twice). Its
    message comes back deferred, and the sync ends with each item once."""
    checks: list[int] = []
    lost: set[int] = set()
    real = LeaseHeartbeat.check

    def check(self: LeaseHeartbeat) -> None:
        checks.append(id(self))
        if len(checks) == lost_at + 1:
            lost.add(id(self))
        if id(self) in lost:
            raise LeaseLost("taken while the step stalled")
        real(self)

    monkeypatch.setattr(LeaseHeartbeat, "check", check)
    harness = SyncHarness()  # pages of 2: seven items are four pages
    made = _seed(harness, 7, 0)
    harness.enable()
    harness.settle()
    harness.assert_in_step()
    harness.assert_nothing_lost(made)
    assert lost and harness.profile().synced_items == 7


@given(
    mine=st.integers(0, 7), others=st.integers(0, 2),
    crashes=st.lists(st.one_of(st.none(), st.integers(0, 12)), max_size=12),
    duplicates=st.lists(st.booleans(), max_size=12),
    outlook_made=st.integers(0, 3), crm_edits=st.integers(0, 3), outlook_deletes=st.integers(0, 2),
    again=st.booleans(),
)
def test_any_crash_or_redelivery_ends_with_exactly_the_right_items(
    mine: int, others: int, crashes: list[int | None], duplicates: list[bool], outlook_made: int, crm_edits: int,
    outlook_deletes: int, again: bool,
) -> None:
    """Processes die at any write (remote or table), messages come twice: the initial sync,
    a two-way round and, maybe, Disable then Enable again end with both sides equal, nothing
    lost and nothing duplicated."""
    harness = SyncHarness()
    made = _seed(harness, mine, others)
    harness.enable()
    harness.settle(crashes, duplicates)
    harness.assert_in_step()
    made += [harness.outlook_store.user_create({"subject": f"Outlook {n}"}) for n in range(outlook_made)]
    for item_id in sorted(i for i in harness.crm_store.items if harness.crm.owners.get(i) is None)[:crm_edits]:
        harness.crm_store.user_edit(item_id, {"subject": f"{harness.crm_store.items[item_id].fields['subject']}, edited"})
    for item_id in sorted(harness.outlook_store.items)[:outlook_deletes]:
        harness.user_deleted.add(harness.outlook_store.items[item_id].origin)
        harness.outlook_store.delete(item_id)
    harness.webhook()
    harness.settle(crashes, duplicates)
    harness.assert_in_step()
    harness.assert_nothing_lost(made)
    if again:
        harness.disable()
        harness.enable()
        harness.settle(crashes, duplicates)
        harness.assert_in_step()
        harness.assert_nothing_lost(made)


@given(
    fresh=st.integers(1, 5), removed=st.integers(1, 5),
    crashes=st.lists(st.one_of(st.none(), st.integers(0, 12)), max_size=8),
    duplicates=st.lists(st.booleans(), max_size=8),
)
def test_items_we_made_and_the_member_deletes_before_the_next_round_leave_the_crm(
    fresh: int, removed: int, crashes: list[int | None], duplicates: list[bool],
) -> None:
    """The journey's soak-4 finding at unit speed. Graph's delta reports the removal of what its
    round state knew: items our step created in Outlook after its delta read, deleted there
    before the next round, are not reported (the in-memory side reads Graph so). Whether the
    creating step ran cleanly or died at any write, the next round still deletes them in the CRM."""
    harness = SyncHarness()
    made = _seed(harness, 2, 0)
    harness.enable()
    harness.settle()
    made += [harness.crm_store.user_create({"subject": f"New {n}"}) for n in range(fresh)]
    harness.webhook()  # the CRM's callback
    harness.settle(crashes, duplicates)
    harness.assert_in_step()
    for item_id in sorted(i for i, item in harness.outlook_store.items.items() if item.origin in made[2:])[:removed]:
        harness.user_deleted.add(harness.outlook_store.items[item_id].origin)
        harness.outlook_store.delete(item_id)
    harness.webhook()  # Graph's notification of the deletions
    harness.settle()
    harness.assert_in_step()
    harness.assert_nothing_lost(made)
    assert not harness.user_deleted & set(harness.origins(harness.crm_store))
    assert not harness.profile().unconfirmed_outlook  # each was read once


def test_disable_and_enable_keep_no_unconfirmed_item_of_the_container_they_leave() -> None:
    """The items a round waits to confirm are of one container: Disable drops them with it, and
    Enable again starts from none (its first round lists everything)."""
    harness = SyncHarness()
    made = _seed(harness, 2, 0)
    harness.enable()
    harness.settle()
    made.append(harness.crm_store.user_create({"subject": "New"}))
    harness.webhook()
    harness.settle()
    assert harness.profile().unconfirmed_outlook  # made after the round's read: the next round confirms it
    harness.disable()
    assert harness.profile().unconfirmed_outlook == []
    harness.enable()
    harness.settle()
    harness.assert_in_step()
    harness.assert_nothing_lost(made)
    assert harness.profile().unconfirmed_outlook == []

@pytest.mark.parametrize("dies_at", range(12))
def test_items_made_by_a_step_that_died_and_deleted_before_its_redelivery_leave_the_crm(dies_at: int) -> None:
    """As above, when the creating step dies at any write and the member deletes what it had
    made before the step is delivered again: the new step may read from the delta link the
    dead one left, which never knew those items. One window stays open: an item the step made
    but whose row still says "pending" (it died between the create and the row) cannot be told
    from a create that never happened; looked up by marker and not found, it is made again.
    The member's deletion is undone then, and nothing is lost."""
    harness = SyncHarness()
    made = _seed(harness, 2, 0)
    harness.enable()
    harness.settle()
    made += [harness.crm_store.user_create({"subject": f"New {n}"}) for n in range(3)]
    harness.webhook()
    comes_back: set[str] = set()
    if harness.deliver_one(dies_at):
        pending = {row.crm_id for row in harness.links.pending(harness.profile().links_partition)}
        for item_id in [i for i, item in harness.outlook_store.items.items() if item.origin in made[2:]]:
            origin = harness.outlook_store.items[item_id].origin
            (comes_back if origin in pending else harness.user_deleted).add(origin)
            harness.outlook_store.delete(item_id)
    harness.webhook()
    harness.settle()
    harness.assert_in_step()
    harness.assert_nothing_lost(made)
    assert not harness.user_deleted & set(harness.origins(harness.crm_store))
    assert comes_back <= set(harness.origins(harness.outlook_store))


# -- failures the member sees (issue 23) --------------------------------------------------------


def test_a_folder_deleted_during_the_initial_sync_stops_the_sync_instead_of_failing_every_round() -> None:
    harness = SyncHarness()
    made = _seed(harness, 7, 0)
    harness.enable()
    harness.outlook.delete_container(harness.profile().container_id or "")  # before the first page's creates
    harness.settle()
    profile = harness.profile()
    assert profile.state is SyncState.DISABLED and profile.reason is Reason.CONTAINER_DELETED
    assert not harness.poisoned and not harness.channels.channels
    harness.assert_nothing_lost(made)


def test_a_mailbox_graph_refuses_pauses_the_sync_until_the_member_resumes_it() -> None:
    harness = SyncHarness()
    made = _seed(harness, 3, 0)
    harness.enable()
    harness.settle()
    harness.outlook.refused = True  # the admin restricted the app's access to mailboxes
    harness.crm_store.user_edit(made[0], {"subject": "Edited while refused"})
    harness.webhook()
    harness.settle()
    profile = harness.profile()
    assert profile.state is SyncState.PAUSED and profile.reason is Reason.MAILBOX_REFUSED
    assert "403" in (profile.last_error or "") and not harness.poisoned
    harness.sweep()  # the safety net queues nothing for a paused sync
    assert harness.pending == []
    harness.outlook.refused = False
    harness.resume()
    harness.settle()
    assert harness.profile().state is SyncState.ACTIVE and harness.profile().last_error is None
    harness.assert_in_step()
    with pytest.raises(NothingToResume):
        harness.service.resume(harness.member, KIND)  # nothing to resume any more: refused, nothing changes


def test_a_step_that_keeps_failing_is_given_up_and_the_member_sees_why() -> None:
    harness = SyncHarness()
    made = _seed(harness, 4, 0)
    harness.crm.broken = CrmError(500, "INTERNAL_ERROR", "the CRM keeps failing")
    harness.enable()
    harness.settle()
    profile = harness.profile()
    assert len(harness.poisoned) == 1 and harness.failures.most_common(1)[0][1] == 5
    assert profile.state is SyncState.PAUSED and profile.reason is Reason.STEP_FAILED
    assert profile.life.paused_from is SyncState.INITIAL and "the CRM keeps failing" in (profile.last_error or "")
    harness.sweep()
    assert harness.pending == []  # not re-queued for ever
    harness.crm.broken = None
    harness.resume()
    harness.settle()
    assert harness.profile().state is SyncState.ACTIVE
    harness.assert_in_step()
    harness.assert_nothing_lost(made)


def test_an_expired_crm_cursor_starts_the_walk_again_and_repeats_nothing() -> None:
    harness = SyncHarness()
    made = _seed(harness, 10, 0)
    harness.crm.expired_tokens = 2  # the initial sync was paused past the cursor's 24 hours
    harness.enable()
    harness.settle()
    assert harness.profile().state is SyncState.ACTIVE and not harness.poisoned
    harness.assert_in_step()
    harness.assert_nothing_lost(made)


# -- a change made between read and write is never overwritten (issue 23) -------------------------


def test_a_crm_edit_made_while_a_round_runs_is_not_overwritten_by_that_round() -> None:
    harness = SyncHarness()
    [made] = _seed(harness, 1, 0)
    harness.enable()
    harness.settle()
    outlook_id = next(i for i, item in harness.outlook_store.items.items() if item.origin == made)
    harness.outlook_store.user_edit(outlook_id, {"subject": "Renamed in Outlook"})
    listed = harness.crm.changed_since

    def edited_right_after_the_read(query):  # type: ignore[no-untyped-def]
        yield from listed(query)
        harness.crm.changed_since = listed  # type: ignore[method-assign]
        harness.crm_store.user_edit(made, {"subject": "Renamed in the CRM, a moment later"})

    harness.crm.changed_since = edited_right_after_the_read  # type: ignore[method-assign]
    harness.webhook()
    harness.settle()
    # The later edit wins (the conflict rule), on both sides; nothing was overwritten unseen.
    assert harness.crm_store.items[made].fields["subject"] == "Renamed in the CRM, a moment later"
    harness.assert_in_step()


@pytest.mark.parametrize("dies_at", [None, *range(8)])
def test_a_change_whose_webhook_meets_the_running_step_is_synced_even_when_that_step_dies(dies_at: int | None) -> None:
    """Issue 20: a webhook that finds the member's lease held queues nothing; it leaves its
    mark to the holder, which runs one more round for it before it releases the lease (no
    round for an echo of the holder's own writes). A holder that dies instead, at any write,
    leaves its message to be delivered again: that step reads the change."""
    harness = SyncHarness()
    made = _seed(harness, 2, 0)
    harness.enable()
    harness.settle()
    harness.crm_store.user_edit(made[0], {"subject": "Edited first"})
    listed = harness.crm.changed_since

    def edited_right_after_the_read(query):  # type: ignore[no-untyped-def]
        yield from listed(query)
        harness.crm.changed_since = listed  # type: ignore[method-assign]
        harness.crm_store.user_edit(made[1], {"subject": "Edited while the step ran"})
        held = harness.profile()
        assert held.lease_owner is not None
        harness.webhook()  # its webhook, while the lease is held
        assert harness.pending == [] and harness.profile().delta_for_holder

    harness.crm.changed_since = edited_right_after_the_read  # type: ignore[method-assign]
    harness.webhook()
    died = harness.deliver_one(dies_at)
    if not died:  # synced by the same step: nothing queued for it
        assert harness.pending == []
        assert {i.origin: i.fields.get("subject") for i in harness.outlook_store.items.values()}[made[1]] == "Edited while the step ran"
    harness.settle()
    subjects = {item.origin: item.fields.get("subject") for item in harness.outlook_store.items.values()}
    assert subjects[made[1]] == "Edited while the step ran" and subjects[made[0]] == "Edited first"
    harness.assert_in_step()
    assert not harness.profile().delta_for_holder


def test_an_outlook_edit_made_while_a_round_runs_is_not_overwritten_by_that_round() -> None:
    harness = SyncHarness()
    [made] = _seed(harness, 1, 0)
    harness.enable()
    harness.settle()
    outlook_id = next(i for i, item in harness.outlook_store.items.items() if item.origin == made)
    harness.crm_store.user_edit(made, {"subject": "Renamed in the CRM"})
    reads = harness.outlook.delta_pages

    def edited_right_after_the_read(container_id, resume):  # type: ignore[no-untyped-def]
        yield from reads(container_id, resume)
        harness.outlook.delta_pages = reads  # type: ignore[method-assign]
        harness.outlook_store.user_edit(outlook_id, {"email": "now@example.com"})

    harness.outlook.delta_pages = edited_right_after_the_read  # type: ignore[method-assign]
    harness.webhook()
    harness.settle()
    # Both edits survive: different fields, merged, on both sides.
    assert harness.outlook_store.items[outlook_id].fields == {"subject": "Renamed in the CRM", "email": "now@example.com"}
    harness.assert_in_step()


def test_a_renewal_that_fails_stops_no_other_renewal() -> None:
    """Issue 20: the renewal timer renews each subscription and channel on its own; Graph
    refusing one (here the member's subscription) neither raises out of the timer nor keeps
    the channel from its renewal, and the next run renews what failed."""
    from datetime import timedelta

    from shared.graph.errors import GraphError

    harness = SyncHarness()
    _seed(harness, 2, 0)
    harness.enable()
    harness.settle()
    before = harness.profile()
    harness.clock.advance(timedelta(days=6, hours=12))  # both expire within the day
    renew = harness.subscriptions.renew

    def refused(subscription_id: str):  # type: ignore[no-untyped-def]
        raise GraphError(503, "ServiceUnavailable", "Graph is down for this mailbox")

    harness.subscriptions.renew = refused  # type: ignore[method-assign]
    channel_before = harness.org_channel()
    assert harness.service.renew_all() == 1  # the channel's (the org's, since issue 20)
    after = harness.profile()
    channel_after = harness.org_channel()
    assert channel_after.expires_at and channel_before.expires_at and channel_after.expires_at > channel_before.expires_at
    assert after.subscription_expires == before.subscription_expires
    harness.subscriptions.renew = renew  # type: ignore[method-assign]
    assert harness.service.renew_all() == 1  # the subscription now; the channel is no longer due
    assert harness.profile().subscription_expires > before.subscription_expires  # type: ignore[operator]


def test_a_round_reads_the_crm_while_it_reads_outlooks_delta_pages(monkeypatch: pytest.MonkeyPatch) -> None:
    """A webhook's change reaches the other side one round trip sooner: the CRM's changes are
    asked for while Graph's delta pages are read, not after (each read waits for the other
    here; one after the other, the round would wait out the timeout and find nothing)."""
    harness = SyncHarness()
    _seed(harness, 3, 0)
    harness.enable()
    harness.settle()
    crm_asked, pages_asked = threading.Event(), threading.Event()
    changed_since, delta_pages = harness.crm.changed_since, harness.outlook.delta_pages

    def crm_changes(query: Any) -> Any:
        crm_asked.set()
        pages_asked.wait(timeout=5)
        return changed_since(query)

    def outlook_pages(container_id: str, resume: str | None) -> Any:
        pages_asked.set()
        assert crm_asked.wait(timeout=5), "the CRM was not read while Graph's pages were"
        return delta_pages(container_id, resume)

    monkeypatch.setattr(harness.crm, "changed_since", crm_changes)
    monkeypatch.setattr(harness.outlook, "delta_pages", outlook_pages)
    made = harness.outlook_store.user_create({"subject": "Made in Outlook"})
    harness.crm_store.user_edit(next(iter(harness.crm_store.items)), {"subject": "Renamed in the CRM"})
    harness.webhook()
    harness.settle()
    harness.assert_in_step()
    assert any(item.origin == made for item in harness.crm_store.items.values())
    assert any(item.fields.get("subject") == "Renamed in the CRM" for item in harness.outlook_store.items.values())


# -- writes that failed for a passing reason (shared.sync.retries) ----------------------------------

def _delivered_reasons(harness: SyncHarness, monkeypatch: pytest.MonkeyPatch) -> list[StepReason]:
    reasons: list[StepReason] = []
    run = harness.service.run

    def recording(job: Any, **options: Any) -> Any:
        reasons.append(job.reason)
        return run(job, **options)

    monkeypatch.setattr(harness.service, "run", recording)
    return reasons


def test_writes_that_failed_for_a_passing_reason_are_tried_again_with_no_new_change(monkeypatch: pytest.MonkeyPatch) -> None:
    """The CRM answers 500 to a create and Graph 503 to another, twice each: nothing else will
    ever list those changes again (their webhooks have come, the sweep leaves members with
    healthy webhooks alone), so the round keeps its cursors and tries again after a pause."""
    harness = SyncHarness()
    made = _seed(harness, 3, 0)
    harness.enable()
    harness.settle()
    failures = iter(["INTERNAL_ERROR", "INTERNAL_ERROR"])
    harness.crm.refuse = lambda body: next(failures, None)  # type: ignore[method-assign]
    harness.outlook.failing_writes = 2
    reasons = _delivered_reasons(harness, monkeypatch)
    made.append(harness.outlook_store.user_create({"subject": "Made in Outlook"}))
    made.append(harness.crm_store.user_create({"subject": "Made in the CRM"}))
    harness.crm_store.user_edit(made[0], {"subject": "Edited in the CRM"})
    harness.webhook()
    harness.settle()
    harness.assert_in_step()
    harness.assert_nothing_lost(made)
    assert StepReason.RETRY in reasons and reasons.count(StepReason.RETRY) <= 3
    assert harness.profile().retries == 0


def test_a_write_the_crm_refuses_for_good_is_not_retried_forever() -> None:
    """A refusal of the record itself (a value the CRM rejects) would fail again: the round
    ends, its cursors move on, and the ledger says it failed (the member's next edit of it
    is listed again)."""
    harness = SyncHarness()
    _seed(harness, 2, 0)
    harness.enable()
    harness.settle()
    harness.crm.refuse = lambda body: "INVALID_DATA"  # type: ignore[method-assign]
    harness.outlook_store.user_create({"subject": "Refused by the CRM"})
    before = harness.profile().delta_link
    harness.webhook()
    harness.settle(limit=harness.deliveries + 5)
    profile = harness.profile()
    assert profile.retries == 0 and profile.delta_link != before and profile.errors >= 1
    assert "INVALID_DATA" in (profile.last_error or "")


def test_a_passing_failure_that_never_passes_ends_its_round_after_the_last_retry(monkeypatch: pytest.MonkeyPatch) -> None:
    """Graph fails one create for good with 503s: after ``MAX_RETRIES`` rounds the round ends
    (cursors move on, the ledger keeps the failure): the member's other changes are not held."""
    harness = SyncHarness()
    _seed(harness, 2, 0)
    harness.enable()
    harness.settle()
    harness.outlook.failing_writes = 10_000
    reasons = _delivered_reasons(harness, monkeypatch)
    harness.crm_store.user_create({"subject": "Graph keeps failing this one"})
    harness.webhook()
    harness.settle(limit=harness.deliveries + MAX_RETRIES + 5)
    assert reasons.count(StepReason.RETRY) == MAX_RETRIES
    profile = harness.profile()
    assert profile.retries == 0 and "ServiceUnavailable" in (profile.last_error or "")


def test_a_remap_page_whose_writes_failed_for_a_passing_reason_is_tried_again(monkeypatch: pytest.MonkeyPatch) -> None:
    """A changed mapping re-syncs each pair once (issue 8): a pair whose write Graph failed
    with 503s would keep its old mapping until the member remaps again, so the page is retried."""
    harness = SyncHarness()
    made = _seed(harness, 3, 0)
    harness.enable()
    harness.settle()
    linked = next(i for i in harness.outlook_store.items if harness.outlook_store.items[i].origin == made[0])
    harness.outlook_store.items[linked].fields = {**harness.outlook_store.items[linked].fields, "subject": "Old mapping"}
    harness.outlook.failing_writes = 2
    reasons = _delivered_reasons(harness, monkeypatch)
    harness.queue.send(SyncJob.of(harness.profile(), "remap", StepReason.MAPPING_CHANGED).model_copy(
        update={"pairs": {"subject": "crm_to_outlook"}}))
    harness._collect()
    harness.settle()
    assert reasons.count(StepReason.RETRY) == 2
    assert harness.outlook_store.items[linked].fields["subject"] == harness.crm_store.items[made[0]].fields["subject"]


# Where a change's webhook may meet a running step: after its CRM read, after its Graph delta
# read, after its writes to Outlook, after its writes to the CRM.
_MEETING_POINTS = ("crm read", "graph read", "outlook write", "crm write")


@given(
    meetings=st.lists(st.tuples(st.sampled_from(_MEETING_POINTS), st.sampled_from(("crm", "outlook")),
                                st.integers(0, 2), st.booleans()), min_size=1, max_size=6),
    crashes=st.lists(st.one_of(st.none(), st.integers(0, 10)), max_size=4),
)
def test_a_webhook_meeting_a_step_at_any_point_leaves_no_mark_that_no_step_owns(
    meetings: list[tuple[str, str, int, bool]], crashes: list[int | None],
) -> None:
    """A webhook that coalesces into the member's mark queues nothing: some queued or running
    step must own that mark, or every later change waits for the mark to go stale (60 s) or for
    the sweep. (propagation-under-load, 2026-12-07: 18 s of CRM callbacks found a mark and
    queued no step.) Changes made in the CRM or in Outlook, their webhooks (with the items they
    name, as the real ones do), at any point of the steps, processes dying: once the queue is
    empty, no mark is left, and both sides are equal."""
    harness = SyncHarness()
    made = _seed(harness, 3, 0)
    harness.enable()
    harness.settle()
    pending = list(meetings)
    inside = False

    def meet(point: str) -> None:
        nonlocal inside
        if inside:
            return
        for index, (where, side, which, named) in enumerate(pending):
            if where != point:
                continue
            del pending[index]
            inside = True
            try:
                crm_id = made[which]
                outlook_id = next((i for i, item in harness.outlook_store.items.items() if item.origin == crm_id), None)
                items: list[str] | None = None
                if side == "crm" or outlook_id is None:
                    harness.crm_store.user_edit(crm_id, {"subject": f"CRM edit at {point} {index}"})
                else:
                    harness.outlook_store.user_edit(outlook_id, {"subject": f"Outlook edit at {point} {index}"})
                    if named:  # Graph's notification names the item and its new change key
                        items = [f"{echoes.OUTLOOK}|{outlook_id}|{harness.outlook_store.items[outlook_id].version}"]
                harness.service.webhooks.request_unless_echo(MEMBER_KEY, KIND, StepReason.GRAPH_WEBHOOK, items)
                harness._collect()
            finally:
                inside = False
            return

    def hooked(target: object, name: str, point: str) -> None:
        original = getattr(target, name)

        def call(*args, **kwargs):  # type: ignore[no-untyped-def]
            result = original(*args, **kwargs)
            if point.endswith("read") and hasattr(result, "__iter__") and not isinstance(result, (list, dict)):
                result = list(result)
            meet(point)
            return result

        setattr(target, name, call)

    hooked(harness.crm, "changed_since", "crm read")
    hooked(harness.outlook, "delta_pages", "graph read")
    hooked(harness.outlook, "update_items", "outlook write")
    hooked(harness.crm, "update", "crm write")
    harness.webhook()
    harness.settle(crashes)
    while pending:  # meetings no step reached: made between steps
        meet(pending[0][0])
        harness.settle()
    profile = harness.profile()
    assert not profile.delta_queued and not profile.delta_rerun and profile.lease_owner is None, \
        f"a mark no step owns: queued={profile.delta_queued} at {profile.delta_queued_at}, items={profile.delta_items}"
    harness.assert_in_step()


def test_our_webhook_endpoint_down_as_two_way_sync_starts_never_stops_the_sync() -> None:
    """Graph validates our notification URL before it makes a subscription; while our endpoint
    is down or slow (a deployment, a cold start, an instance restarting) it refuses the create
    with a 400. Ours to get over, not the member's: the sync goes two-way without push, the step
    that started it tries again (15 s, doubling, 12 times), then the sweep's rounds do; nothing
    is given up and the sync never pauses (it did: the queue's 5 deliveries in ~25 s)."""
    harness = SyncHarness()
    made = _seed(harness, 4, 0)
    harness.subscriptions.endpoint_up = False
    harness.enable()
    harness.settle()
    profile = harness.profile()
    assert profile.state is SyncState.ACTIVE and profile.subscription_id is None
    assert not harness.poisoned and not harness.failures
    assert harness.subscriptions.attempts == 1 + MAX_RETRIES  # then the chain ends: no endless loop
    harness.assert_in_step()
    made.append(harness.outlook_store.user_create({"subject": "Made in Outlook, no push yet"}))
    harness.sweep()  # the safety net gives an unsubscribed member a round, which subscribes again
    harness.settle()
    assert harness.profile().subscription_id is None and not harness.poisoned
    harness.subscriptions.endpoint_up = True
    harness.sweep()
    harness.settle()
    assert harness.profile().subscription_id is not None and harness.profile().state is SyncState.ACTIVE
    harness.assert_in_step()
    harness.assert_nothing_lost(made)


def test_a_retry_after_our_endpoint_is_back_subscribes_and_ends_the_retries() -> None:
    harness = SyncHarness()
    _seed(harness, 3, 0)
    harness.subscriptions.endpoint_up = False
    harness.enable()
    while harness.profile().state is not SyncState.ACTIVE:
        harness.deliver_one(None)
    assert [d.job.reason for d in harness.pending] == [StepReason.SUBSCRIBE_AGAIN]
    harness.subscriptions.endpoint_up = True  # restarted
    harness.settle()
    assert harness.profile().subscription_id is not None and harness.subscriptions.attempts == 2
    assert not harness.pending and not harness.poisoned
