"""The member's sync lease against Azurite: one step at a time, a live step's lease renewed
by its heartbeat (so a second delivery of its message waits), a crashed step's lease lapsing."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace

import pytest
from azure.data.tables import TableServiceClient

from shared.storage import TableRepository
from shared.sync import profiles as profiles_module
from shared.sync import runner as runner_module
from shared.sync import webhooks as webhooks_module
from shared.sync.jobs import StepReason, SyncJob
from shared.sync.lifecycle import Event, decide
from shared.sync.profiles import LeaseHeld, LeaseLost, ProfileStore, SyncKind, SyncProfile, SyncState
from shared.sync.runner import StepContext, SyncRunner
from shared.sync.service import SyncService

MEMBER = "ms|tenant|member"


@pytest.fixture
def store(azurite, unique_name) -> ProfileStore:  # type: ignore[no-untyped-def]
    service = TableServiceClient.from_connection_string(azurite.connection_string)
    repository = TableRepository(service, unique_name("lease"), SyncProfile)
    repository.ensure_table()
    store = ProfileStore(repository)
    store.create_or_get(SyncProfile(partition_key=MEMBER, row_key=SyncKind.CALENDAR.value, tenant_id="t", object_id="o"))
    return store


def test_a_held_lease_refuses_every_other_taker_even_the_same_message(store: ProfileStore) -> None:
    _, _, owner = store.acquire(MEMBER, SyncKind.CALENDAR, holder="message-1")
    with pytest.raises(LeaseHeld) as held:
        store.acquire(MEMBER, SyncKind.CALENDAR, holder="message-1")  # a second delivery of the same message
    assert 0 < held.value.retry_after <= profiles_module.LEASE.total_seconds() + 1
    assert store.extend(MEMBER, SyncKind.CALENDAR, owner)
    assert not store.extend(MEMBER, SyncKind.CALENDAR, "someone-else")


def test_the_heartbeat_keeps_a_running_step_s_lease_past_its_duration(store: ProfileStore, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setattr(profiles_module, "LEASE", timedelta(seconds=2))
    monkeypatch.setattr(profiles_module, "LEASE_RENEWAL", timedelta(seconds=0.5))
    _, _, owner = store.acquire(MEMBER, SyncKind.CALENDAR, holder="message-1")
    with store.heartbeat(MEMBER, SyncKind.CALENDAR, owner) as lease:
        time.sleep(3.5)  # longer than the lease: only the heartbeat keeps it
        with pytest.raises(LeaseHeld):
            store.acquire(MEMBER, SyncKind.CALENDAR, holder="message-1")
    assert not lease.lost
    stored = store.get(MEMBER, SyncKind.CALENDAR)
    assert stored is not None and stored.entity.lease_owner == owner


def test_a_renewal_that_fails_is_tried_again_soon_not_a_whole_period_later(store: ProfileStore, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """Renewals come at half the lease (a 15-s step writes none); a storage blip on one must not
    let the lease lapse before the next period: it is tried again after LEASE_RETRY."""
    monkeypatch.setattr(profiles_module, "LEASE", timedelta(seconds=2))
    monkeypatch.setattr(profiles_module, "LEASE_RENEWAL", timedelta(seconds=1))
    monkeypatch.setattr(profiles_module, "LEASE_RETRY", timedelta(seconds=0.2))
    extend, calls = store.extend, []

    def blip_once(*args, **kwargs):  # type: ignore[no-untyped-def]
        calls.append(time.monotonic())
        if len(calls) == 1:
            raise ConnectionError("storage blip")
        return extend(*args, **kwargs)

    monkeypatch.setattr(store, "extend", blip_once)
    _, _, owner = store.acquire(MEMBER, SyncKind.CALENDAR, holder="message-1")
    with store.heartbeat(MEMBER, SyncKind.CALENDAR, owner) as lease:
        time.sleep(2.4)  # past the lease: the blip at 1 s was tried again at about 1.2 s
        with pytest.raises(LeaseHeld):
            store.acquire(MEMBER, SyncKind.CALENDAR, holder="message-2")
    assert not lease.lost and len(calls) >= 2 and calls[1] - calls[0] < 0.6


def test_a_crashed_step_s_lease_lapses_and_its_late_heartbeat_finds_it_taken(store: ProfileStore, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setattr(profiles_module, "LEASE", timedelta(seconds=1))
    _, _, crashed = store.acquire(MEMBER, SyncKind.CALENDAR, holder="message-1")
    time.sleep(1.2)  # no heartbeat: the step died
    profile, etag, owner = store.acquire(MEMBER, SyncKind.CALENDAR, holder="message-1")
    assert owner != crashed and profile.lease_until is not None and profile.lease_until > datetime.now(UTC)
    assert not store.extend(MEMBER, SyncKind.CALENDAR, crashed)  # a stalled step learns it lost the lease
    store.release(profile, etag)
    store.acquire(MEMBER, SyncKind.CALENDAR)  # released: free at once


def test_a_step_that_lost_its_lease_publishes_nothing(store: ProfileStore, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setattr(profiles_module, "LEASE", timedelta(seconds=1))
    _, etag, stalled = store.acquire(MEMBER, SyncKind.CALENDAR, holder="message-1")
    known = store.get(MEMBER, SyncKind.CALENDAR)
    time.sleep(1.2)  # the step stalled past its lease: another took it
    _, _, other = store.acquire(MEMBER, SyncKind.CALENDAR, holder="message-2")
    lease = store.heartbeat(MEMBER, SyncKind.CALENDAR, stalled, known)
    assert not lease.publish(lambda row: row.model_copy(update={"state": SyncState.ACTIVE, "subscription_id": "stale"}))
    assert lease.lost
    stored = store.get(MEMBER, SyncKind.CALENDAR)
    assert stored is not None and stored.entity.lease_owner == other and stored.entity.subscription_id is None


def test_a_step_whose_lease_cannot_be_renewed_stops_writing_before_the_lease_lapses(store: ProfileStore, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """Storage out of reach for the heartbeat (or the instance frozen): once the lease's last
    write is two thirds of the lease old, the step's next page finds it not surely its own and
    stops, before another step could take the lease over and write the same pages. Released
    as usual when the storage answers again, and deferred (its message comes back)."""
    monkeypatch.setattr(profiles_module, "LEASE", timedelta(seconds=1.5))
    monkeypatch.setattr(profiles_module, "LEASE_RENEWAL", timedelta(seconds=0.3))
    monkeypatch.setattr(profiles_module, "LEASE_RETRY", timedelta(seconds=0.1))

    def unreachable(*args, **kwargs):  # type: ignore[no-untyped-def]
        raise ConnectionError("storage out of reach")

    monkeypatch.setattr(store, "extend", unreachable)
    _state(store, SyncState.INITIAL)
    pages: list[float] = []

    class Pages(SyncRunner):
        def _initial_step(self, profile, ctx):  # type: ignore[no-untyped-def,override]
            for _ in range(40):
                ctx.check_lease()  # as ``Cycle.run`` does before a plan's writes
                pages.append(time.monotonic())
                time.sleep(0.05)
            return profile

    ctx = StepContext(rules=None, outlook=None, records=None, enqueue=lambda job, delay: None)  # type: ignore[arg-type]
    job = SyncJob(member=MEMBER, kind=SyncKind.CALENDAR, step="initial", reason="enable")
    started = time.monotonic()
    with pytest.raises(LeaseLost):
        Pages(store, links=None, conflicts=None).run(job, ctx, delivery="initial-1")  # type: ignore[arg-type]
    assert 5 < len(pages) < 40
    assert pages[-1] - started < 1.0 + 0.05  # two thirds of the lease, never past it
    stored = store.get(MEMBER, SyncKind.CALENDAR)
    assert stored is not None and stored.entity.lease_owner is None  # the release still reached the row


def test_a_lease_found_taken_stops_the_step_at_its_next_page(store: ProfileStore, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setattr(profiles_module, "LEASE", timedelta(seconds=1))
    _, _, stalled = store.acquire(MEMBER, SyncKind.CALENDAR, holder="message-1")
    known = store.get(MEMBER, SyncKind.CALENDAR)
    lease = store.heartbeat(MEMBER, SyncKind.CALENDAR, stalled, known)
    lease.check()  # just taken: its own
    time.sleep(1.2)  # stalled past the lease: another step takes it
    store.acquire(MEMBER, SyncKind.CALENDAR, holder="message-2")
    with pytest.raises(LeaseLost):
        lease.check()
    assert not lease.publish(lambda row: row) and lease.lost
    with pytest.raises(LeaseLost, match="taken"):
        lease.check()


# --- what a step does when it finds the lease held (SyncRunner._leave_to_holder) --------------


def _runner(store: ProfileStore) -> SyncRunner:
    return SyncRunner(store, links=None, conflicts=None)  # type: ignore[arg-type]  # never reached: the lease is held


def _state(store: ProfileStore, state: SyncState) -> None:
    store.update(MEMBER, SyncKind.CALENDAR, lambda p: p.model_copy(update={"state": state}))


def test_a_webhook_step_behind_a_running_step_asks_it_for_one_more_round(store: ProfileStore) -> None:
    _state(store, SyncState.ACTIVE)
    profile, etag, owner = store.acquire(MEMBER, SyncKind.CALENDAR, holder="running")
    job = SyncJob(member=MEMBER, kind=SyncKind.CALENDAR, step="delta", reason="graph webhook")
    _runner(store).run(job, None, delivery="webhook-1")  # type: ignore[arg-type]  # left to the holder, no error
    stored = store.get(MEMBER, SyncKind.CALENDAR)
    assert stored is not None and stored.entity.delta_rerun and stored.entity.lease_owner == owner


def test_a_duplicate_initial_step_is_left_to_the_chain_but_its_own_redelivery_waits(store: ProfileStore) -> None:
    _state(store, SyncState.INITIAL)
    store.acquire(MEMBER, SyncKind.CALENDAR, holder="page-7")
    job = SyncJob(member=MEMBER, kind=SyncKind.CALENDAR, step="initial", reason="continue")
    _runner(store).run(job, None, delivery="a-copy")  # type: ignore[arg-type]  # a duplicate: dropped
    with pytest.raises(LeaseHeld):  # the holder's own message came back (its host died): deferred
        _runner(store).run(job, None, delivery="page-7")  # type: ignore[arg-type]
    with pytest.raises(LeaseHeld):  # ... and deferred again under the same name
        _runner(store).run(job.model_copy(update={"holder": "page-7"}), None, delivery="deferred-1")  # type: ignore[arg-type]


def test_a_failing_step_still_queues_the_round_a_dropped_webhook_step_asked_for(store: ProfileStore) -> None:
    """The webhook's step was dropped for the holder's rerun: if the holder then fails, the
    rerun is queued anyway (the holder's own retry may be hours away: poison, or a pause)."""
    _state(store, SyncState.ACTIVE)
    queued: list[tuple[SyncJob, int]] = []

    class FailingRunner(SyncRunner):
        def _delta_step(self, profile, ctx, **options):  # type: ignore[no-untyped-def,override]
            webhook = SyncJob(member=MEMBER, kind=SyncKind.CALENDAR, step="delta", reason="graph webhook")
            _runner(store).run(webhook, None, delivery="webhook-1")  # type: ignore[arg-type]  # asks for one more round
            raise RuntimeError("Graph kept failing")

    ctx = StepContext(rules=None, outlook=None, records=None, enqueue=lambda job, delay: queued.append((job, delay)))  # type: ignore[arg-type]
    job = SyncJob(member=MEMBER, kind=SyncKind.CALENDAR, step="delta", reason="sweep")
    with pytest.raises(RuntimeError):
        FailingRunner(store, links=None, conflicts=None).run(job, ctx, delivery="running")  # type: ignore[arg-type]
    assert [(j.step, j.reason) for j, _ in queued] == [("delta", "rerun")]
    stored = store.get(MEMBER, SyncKind.CALENDAR)
    assert stored is not None and stored.entity.lease_owner is None and not stored.entity.delta_rerun


def test_a_subscription_made_while_a_step_runs_survives_the_step_s_release(store: ProfileStore) -> None:
    """Graph's lifecycle notification (or the renewal timer) replaces the subscription while a
    step holds the lease: the step's release must not write back the one it replaced, whose
    notifications no longer come (the member's changes would then wait for the sweep)."""
    store.update(MEMBER, SyncKind.CALENDAR, lambda p: p.model_copy(update={
        "state": SyncState.ACTIVE, "subscription_id": "old", "client_state": "old-secret",
        "channel_id": "channel-1"}))
    renewed = datetime.now(UTC) + timedelta(days=3)

    class ResubscribedMeanwhile(SyncRunner):
        def _delta_step(self, profile, ctx, **options):  # type: ignore[no-untyped-def,override]
            store.update(MEMBER, SyncKind.CALENDAR, lambda p: p.model_copy(update={
                "subscription_id": "new", "client_state": "new-secret", "subscription_expires": renewed}))
            return profile.model_copy(update={"delta_link": "after-the-round", "channel_id": "channel-2"})

    ctx = StepContext(rules=None, outlook=None, records=None, enqueue=lambda job, delay: None)  # type: ignore[arg-type]
    job = SyncJob(member=MEMBER, kind=SyncKind.CALENDAR, step="delta", reason="sweep")
    ResubscribedMeanwhile(store, links=None, conflicts=None).run(job, ctx, delivery="running")  # type: ignore[arg-type]
    stored = store.get(MEMBER, SyncKind.CALENDAR)
    assert stored is not None and stored.entity.lease_owner is None
    assert (stored.entity.subscription_id, stored.entity.client_state, stored.entity.subscription_expires) == \
        ("new", "new-secret", renewed)
    # What the step itself changed is its own: its cursors, and a channel it made.
    assert stored.entity.delta_link == "after-the-round" and stored.entity.channel_id == "channel-2"


def test_an_initial_sync_shows_done_before_its_first_round_and_a_change_notified_during_it_is_not_lost(store: ProfileStore) -> None:
    """The initial sync's pages are in and Outlook's changes are pushed: the member sees the
    sync on while two-way sync's first round still runs under the lease. A change the member
    makes in Outlook after that round read Graph's delta comes as a webhook then: it must get
    a round of its own, here one more round of the same step (before, the profile said
    "initial" until the release, the webhook was ignored, and the change waited for the sweep)."""
    _state(store, SyncState.INITIAL)
    service, webhooks_queue = _service(store)
    queued: list[tuple[SyncJob, int]] = []
    seen_during_round: list[SyncProfile] = []

    class PagesDone(SyncRunner):
        def _initial_step(self, profile, ctx):  # type: ignore[no-untyped-def,override]
            ctx.enqueue(SyncJob.of(profile, "delta", StepReason.INITIAL_DONE), 0)
            return profile.living(decide(profile.life, Event.INITIAL_DONE).life)

        def _delta_step(self, profile, ctx, **options):  # type: ignore[no-untyped-def,override]
            stored = store.get(MEMBER, SyncKind.CALENDAR)
            assert stored is not None
            seen_during_round.append(stored.entity)
            if len(seen_during_round) == 1:
                # The round has read Graph's delta; the member edits an event; its webhook comes.
                assert not service.request_delta(MEMBER, SyncKind.CALENDAR, StepReason.GRAPH_WEBHOOK)  # left to the holder
                return profile.model_copy(update={"delta_link": "after-the-first-round"})
            return profile.model_copy(update={"delta_link": "after-the-webhook-s-round"})

    ctx = StepContext(rules=None, outlook=None, records=None, enqueue=lambda job, delay: queued.append((job, delay)),  # type: ignore[arg-type]
                      subscribe=lambda profile: {"subscription_id": "sub-1", "client_state": "secret"})
    job = SyncJob(member=MEMBER, kind=SyncKind.CALENDAR, step="initial", reason="enable")
    PagesDone(store, links=None, conflicts=None).run(job, ctx, delivery="initial-1")  # type: ignore[arg-type]

    during, webhook_round = seen_during_round
    assert during.state is SyncState.ACTIVE and during.subscription_id == "sub-1" and during.lease_owner is not None
    # The webhook's round: under the same lease, the mark taken, from where the first round ended.
    assert webhook_round.lease_owner == during.lease_owner and not webhook_round.delta_queued
    assert webhook_round.delta_link == "after-the-first-round"
    assert webhooks_queue.sent == [] and queued == []  # no queued step: the running one did it
    stored = store.get(MEMBER, SyncKind.CALENDAR)
    assert stored is not None and stored.entity.lease_owner is None and stored.entity.state is SyncState.ACTIVE
    assert stored.entity.delta_link == "after-the-webhook-s-round" and stored.entity.subscription_id == "sub-1"


def test_a_step_marked_again_and_again_runs_its_extra_rounds_then_leaves_the_rest_to_a_queued_step(store: ProfileStore) -> None:
    """A member whose webhooks never stop (a bulk edit in Outlook) does not keep one worker for
    ever: after ``MORE_ROUNDS`` extra rounds the step releases, and the last mark queues a
    step behind the others. A failing extra round releases the lease and queues its mark too."""
    _state(store, SyncState.ACTIVE)
    service, _ = _service(store)
    queued: list[tuple[SyncJob, int]] = []
    rounds: list[bool] = []

    class Busy(SyncRunner):
        def _delta_step(self, profile, ctx, **options):  # type: ignore[no-untyped-def,override]
            rounds.append(options["read_deleted"])
            service.request_delta(MEMBER, SyncKind.CALENDAR, StepReason.CRM_WEBHOOK, crm_deletion=True)
            return profile

    ctx = StepContext(rules=None, outlook=None, records=None, enqueue=lambda job, delay: queued.append((job, delay)))  # type: ignore[arg-type]
    job = SyncJob(member=MEMBER, kind=SyncKind.CALENDAR, step="delta", reason="graph webhook")
    Busy(store, links=None, conflicts=None).run(job, ctx, delivery="busy-1")  # type: ignore[arg-type]
    assert len(rounds) == 1 + runner_module.MORE_ROUNDS
    assert rounds[1:] == [True] * runner_module.MORE_ROUNDS  # each extra round reads the deletions it was told of
    assert [(j.step, j.reason) for j, _ in queued] == [("delta", StepReason.HELD_WEBHOOK)]
    stored = store.get(MEMBER, SyncKind.CALENDAR)
    assert stored is not None and stored.entity.lease_owner is None and stored.entity.delta_queued

    class FailsOnItsExtraRound(SyncRunner):
        def _delta_step(self, profile, ctx, **options):  # type: ignore[no-untyped-def,override]
            failing.append(options)
            service.request_delta(MEMBER, SyncKind.CALENDAR, StepReason.GRAPH_WEBHOOK)
            if len(failing) == 2:
                raise RuntimeError("Graph kept failing")
            return profile

    failing: list[dict[str, bool]] = []
    queued.clear()
    store.update(MEMBER, SyncKind.CALENDAR, lambda p: p.model_copy(update={"delta_queued": False, "delta_for_holder": False}))
    with pytest.raises(RuntimeError):
        FailsOnItsExtraRound(store, links=None, conflicts=None).run(job, ctx, delivery="busy-2")  # type: ignore[arg-type]
    assert len(failing) == 2  # no round after the failure: released, and the mark left queued
    assert [(j.step, j.reason) for j, _ in queued] == [("delta", StepReason.HELD_WEBHOOK)]
    stored = store.get(MEMBER, SyncKind.CALENDAR)
    assert stored is not None and stored.entity.lease_owner is None


def test_an_initial_step_that_died_in_its_first_round_runs_that_round_when_its_message_comes_back(store: ProfileStore) -> None:
    """The process died after showing the sync active, during the first round: no release, no
    follow-up queued. Its own message comes back once the lease lapsed; skipped as out of
    phase, the changes made in Outlook during the initial sync would wait for the daily sweep."""
    store.update(MEMBER, SyncKind.CALENDAR, lambda p: p.model_copy(update={
        "state": SyncState.ACTIVE, "subscription_id": "sub-1", "lease_owner": "initial-1|dead",
        "lease_until": datetime.now(UTC) - timedelta(seconds=1)}))
    rounds: list[dict[str, bool]] = []

    class FirstRound(SyncRunner):
        def _initial_step(self, profile, ctx):  # type: ignore[no-untyped-def,override]
            raise AssertionError("the pages are done")

        def _delta_step(self, profile, ctx, **options):  # type: ignore[no-untyped-def,override]
            rounds.append({**options, "full": profile.delta_link is None})
            return profile.model_copy(update={"delta_link": "after-the-first-round"})

    ctx = StepContext(rules=None, outlook=None, records=None, enqueue=lambda job, delay: None)  # type: ignore[arg-type]
    job = SyncJob(member=MEMBER, kind=SyncKind.CALENDAR, step="initial", reason="enable")
    FirstRound(store, links=None, conflicts=None).run(job, ctx, delivery="initial-1")  # type: ignore[arg-type]
    assert rounds == [{"read_deleted": True, "look_outside": True, "full": True}]
    stored = store.get(MEMBER, SyncKind.CALENDAR)
    assert stored is not None and stored.entity.lease_owner is None and stored.entity.delta_link == "after-the-first-round"
    # Another message of the initial sync (not the one that died) is still out of phase.
    FirstRound(store, links=None, conflicts=None).run(job, ctx, delivery="initial-2")  # type: ignore[arg-type]
    assert len(rounds) == 1


# --- webhook floods coalesced into one queued step (SyncService.request_delta) ----------------


class _RecordedQueue:
    def __init__(self) -> None:
        self.sent: list[SyncJob] = []

    def send(self, job: SyncJob, delay: object = None) -> None:
        self.sent.append(job)


def _service(store: ProfileStore) -> tuple[SyncService, _RecordedQueue]:
    queue = _RecordedQueue()
    dependencies = SimpleNamespace(profiles=store, links=None, conflicts=None, ledger=None, jobs=queue,
                                   routes=None, clock=lambda: datetime.now(UTC), initial_page_size=99,
                                   org_channels=None, org_members=None, crm_changes=None, crm_channels=None, holder_filters=None,
                                   public_base_url="https://sync.example")
    return SyncService(dependencies), queue  # type: ignore[arg-type]


def test_webhooks_queue_one_step_until_a_step_takes_the_mark(store: ProfileStore) -> None:
    _state(store, SyncState.ACTIVE)
    service, queue = _service(store)
    assert service.request_delta(MEMBER, SyncKind.CALENDAR, "graph webhook")
    assert not service.request_delta(MEMBER, SyncKind.CALENDAR, "graph webhook")  # a flood: coalesced
    assert len(queue.sent) == 1
    profile, etag, _ = store.acquire(MEMBER, SyncKind.CALENDAR, holder="step", taking=lambda p: {"delta_queued": False})
    # Taken: a new change is left to the step running (it queues the step as it ends) ...
    assert not service.request_delta(MEMBER, SyncKind.CALENDAR, "crm webhook")
    assert len(queue.sent) == 1
    stored = store.get(MEMBER, SyncKind.CALENDAR)
    assert stored is not None and stored.entity.delta_queued and stored.entity.delta_for_holder
    store.release(stored.entity.model_copy(update={"delta_queued": False, "delta_for_holder": False}), stored.etag)
    assert service.request_delta(MEMBER, SyncKind.CALENDAR, "crm webhook")  # ... released: a new change queues again
    assert len(queue.sent) == 2


def test_a_queued_mark_left_by_a_lost_step_does_not_silence_webhooks(store: ProfileStore) -> None:
    """The queued step never ran (its send failed after the mark, or it was poisoned): after a
    minute the next webhook queues another instead of waiting for the 5-minute sweep."""
    lost_at = datetime.now(UTC) - webhooks_module.STALE_DELTA_MARK - timedelta(seconds=1)
    store.update(MEMBER, SyncKind.CALENDAR, lambda p: p.model_copy(
        update={"state": SyncState.ACTIVE, "delta_queued": True, "delta_queued_at": lost_at}))
    service, queue = _service(store)
    assert service.request_delta(MEMBER, SyncKind.CALENDAR, "graph webhook")
    assert not service.request_delta(MEMBER, SyncKind.CALENDAR, "graph webhook")  # fresh again: coalesced
    assert [job.reason for job in queue.sent] == ["graph webhook"]
