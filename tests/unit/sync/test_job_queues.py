"""Which queue carries a sync step (issue 21): bulk work (initial syncs, re-syncs, the first full
round) on ``sync-bulk``, the steps a change waits on on ``sync-jobs``; the one place that
decides, the router every sender goes through, and both queues' triggers on the app."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

import pytest

from shared.sync import initial_sync
from shared.sync.jobs import (
    SYNC_BULK_QUEUE,
    SYNC_QUEUE,
    SYNC_QUEUES,
    StepReason,
    SyncJob,
    SyncJobQueues,
    queue_for,
)
from tests.fakes.queues import JobQueueInMemory
from tests.sync_harness import SyncHarness

STEPS = ("initial", "delta", "remap")


def _job(step: str, reason: StepReason) -> SyncJob:
    return SyncJob(member="ms|t|o", kind="calendar", step=step, reason=reason)  # type: ignore[arg-type]


def _expected(step: str, reason: StepReason) -> str:
    """The docstring's table of ``queue_for``, written out."""
    if step in ("initial", "remap"):
        return SYNC_BULK_QUEUE
    return SYNC_BULK_QUEUE if reason is StepReason.INITIAL_DONE else SYNC_QUEUE


@pytest.mark.parametrize("step", STEPS)
@pytest.mark.parametrize("reason", list(StepReason))
def test_every_step_and_reason_has_its_queue(step: str, reason: StepReason) -> None:
    assert queue_for(_job(step, reason)) == _expected(step, reason)


def test_what_a_change_waits_on_never_rides_with_bulk_work() -> None:
    for reason in (StepReason.GRAPH_WEBHOOK, StepReason.CRM_WEBHOOK, StepReason.RERUN, StepReason.SWEEP,
                   StepReason.MASS_CHANGE_ANSWERED, StepReason.AUTHORIZATION_BACK, StepReason.LIFECYCLE):
        assert queue_for(_job("delta", reason)) == SYNC_QUEUE
    assert queue_for(_job("initial", StepReason.STALLED)) == SYNC_BULK_QUEUE


def test_a_message_of_an_older_version_is_routed_by_its_step() -> None:
    old = SyncJob.model_validate_json(json.dumps({"member": "ms|t|o", "kind": "contacts", "step": "initial"}))
    assert old.reason is StepReason.OTHER and queue_for(old) == SYNC_BULK_QUEUE
    unknown = SyncJob.model_validate_json(json.dumps({"member": "ms|t|o", "kind": "contacts", "step": "delta",
                                                      "reason": "a reason from the future"}))
    assert queue_for(unknown) == SYNC_QUEUE


def _queues() -> tuple[SyncJobQueues, dict[str, JobQueueInMemory[SyncJob]]]:
    fakes = {name: JobQueueInMemory(SyncJob, name) for name in SYNC_QUEUES}
    return SyncJobQueues(fakes), fakes  # type: ignore[arg-type]


def test_the_router_sends_each_step_to_its_queue_with_its_delay() -> None:
    router, fakes = _queues()
    router.send(_job("initial", StepReason.ENABLE))
    router.send(_job("delta", StepReason.GRAPH_WEBHOOK), delay=timedelta(seconds=5))
    router.send(_job("remap", StepReason.MAPPING_CHANGED), delay=timedelta(seconds=30))
    bulk = [(s.message.step, s.delay) for s in fakes[SYNC_BULK_QUEUE].take()]
    jobs = [(s.message.step, s.delay) for s in fakes[SYNC_QUEUE].take()]
    assert bulk == [("initial", None), ("remap", timedelta(seconds=30))]
    assert jobs == [("delta", timedelta(seconds=5))]


def test_a_router_without_one_of_the_queues_is_refused() -> None:
    with pytest.raises(ValueError, match=SYNC_BULK_QUEUE):
        SyncJobQueues({SYNC_QUEUE: JobQueueInMemory(SyncJob)})  # type: ignore[dict-item]


def test_bulk_waiting_looks_at_the_bulk_queue_only() -> None:
    router, fakes = _queues()
    router.send(_job("delta", StepReason.GRAPH_WEBHOOK))
    assert router.bulk_waiting() is False
    router.send(_job("initial", StepReason.CONTINUE), delay=timedelta(seconds=30))
    assert router.bulk_waiting() is False  # not visible yet: nobody waits for a worker
    router.send(_job("initial", StepReason.ENABLE))
    assert router.bulk_waiting() is True
    fakes[SYNC_BULK_QUEUE].take()
    assert router.bulk_waiting() is False


class _Tap:
    """One of the harness's queues, noting which of ours each step was sent to."""

    def __init__(self, name: str, inner: Any, seen: list[tuple[str, str, StepReason]]) -> None:
        self.name, self.inner, self.seen = name, inner, seen

    def send(self, job: SyncJob, *, delay: timedelta | None = None) -> str:
        self.seen.append((self.name, job.step, job.reason))
        return str(self.inner.send(job, delay=delay))

    def has_waiting(self) -> bool:
        return bool(self.inner.has_waiting())


def test_a_members_whole_sync_sends_through_the_router(monkeypatch: pytest.MonkeyPatch) -> None:
    """Enable, the initial sync's own follow-ups (the runner's ``ctx.enqueue``), webhooks and
    the sweep: every step the service sends lands where ``queue_for`` says. (Two-way sync's
    first round runs in the initial sync's last step.)"""
    monkeypatch.setattr(initial_sync, "INITIAL_STEP_SECONDS", -1.0)  # each page gives its worker up
    monkeypatch.setattr(initial_sync.InitialSync, "_others_wait", staticmethod(lambda ctx: True))
    harness = SyncHarness(crm_per_page=2)
    seen: list[tuple[str, str, StepReason]] = []
    harness.service.jobs = SyncJobQueues({name: _Tap(name, harness.queue, seen) for name in SYNC_QUEUES})
    for n in range(7):  # pages of 2, two in flight: the first step yields after its second page
        harness.crm_store.user_create({"subject": f"Contact {n}"})
    harness.enable()
    harness.settle()
    harness.outlook_store.user_create({"subject": "Made in Outlook"})
    harness.webhook()
    harness.settle()
    harness.sweep()
    harness.settle()
    harness.assert_in_step()
    assert seen[0] == (SYNC_BULK_QUEUE, "initial", StepReason.ENABLE)
    assert (SYNC_QUEUE, "delta", StepReason.GRAPH_WEBHOOK) in seen
    assert (SYNC_QUEUE, "delta", StepReason.SWEEP) in seen
    assert all(name == queue_for(_job(step, reason)) for name, step, reason in seen)
    assert sum(1 for _, step, _ in seen if step == "initial") >= 2  # the chain's own next steps too


@pytest.mark.parametrize(("items", "steps"), [(2, 1), (3, 1), (4, 1), (5, 1), (6, 1), (7, 2), (9, 2), (11, 3)])
def test_a_slice_never_yields_with_a_page_or_less_left(monkeypatch: pytest.MonkeyPatch, items: int, steps: int) -> None:
    """Others wait and every slice is over (pages of 2, two in flight: a slice that yields ends
    with the page already being sent behind the one it decided on): a step still finishes a
    sync with at most one page left rather than queue a step for it behind every other member's."""
    monkeypatch.setattr(initial_sync, "INITIAL_STEP_SECONDS", -1.0)
    monkeypatch.setattr(initial_sync.InitialSync, "_others_wait", staticmethod(lambda ctx: True))
    harness = SyncHarness(crm_per_page=2, initial_page_size=2)
    seen: list[tuple[str, str, StepReason]] = []
    harness.service.jobs = SyncJobQueues({name: _Tap(name, harness.queue, seen) for name in SYNC_QUEUES})
    for n in range(items):
        harness.crm_store.user_create({"subject": f"Contact {n}"})
    harness.enable()
    harness.settle()
    assert sum(1 for _, step, _ in seen if step == "initial") == steps
    assert len(harness.outlook_store.items) == items


def test_the_app_listens_on_both_queues_and_both_poison_queues() -> None:
    """An initial step an earlier version queued on ``sync-jobs`` still runs there (both
    triggers run any step), and a step given up on either queue stops the sync."""
    from functions import sync_workers

    triggers = {}
    for builder in sync_workers.bp._function_builders:  # the blueprint's registered functions
        function = builder._function
        trigger = function.get_trigger()
        if trigger.type == "queueTrigger":
            triggers[trigger.queue_name] = function.get_user_function()
    assert {*SYNC_QUEUES, *(f"{name}-poison" for name in SYNC_QUEUES)} <= set(triggers)
    runs = {name: triggers[name] for name in SYNC_QUEUES}
    given_up = {name: triggers[f"{name}-poison"] for name in SYNC_QUEUES}
    # each pair is the same code under two queue names
    assert len({f.__code__.co_code + str(f.__code__.co_names).encode() for f in runs.values()}) == 1
    assert "_run_step" in runs[SYNC_QUEUE].__code__.co_names
    assert len({f.__code__.co_code + str(f.__code__.co_names).encode() for f in given_up.values()}) == 1
    assert "_give_up" in given_up[SYNC_QUEUE].__code__.co_names
