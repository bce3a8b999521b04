"""A step the Functions host gives up (its message in ``sync-jobs-poison`` or
``sync-bulk-poison`` after five failed deliveries) stops that member's sync with a reason, until they resume it (issue 23): the
poison queue's trigger on the running host, and the sweep queuing nothing meanwhile."""

from __future__ import annotations

import contextlib

import pytest
from azure.core.exceptions import ResourceExistsError
from azure.storage.queue import QueueClient

from shared.storage import encode_message
from shared.sync.jobs import SYNC_BULK_QUEUE, SYNC_QUEUE, StepReason, SyncJob
from shared.sync.lifecycle import Reason
from shared.sync.profiles import SyncKind, SyncState
from shared.wiring import get_services
from tests.integration.sync_setup import linked_member, profile, wait_until
from tests.product_stack import ProductStack

KIND = SyncKind.CONTACTS


@pytest.mark.parametrize(("queue", "reason"), [(SYNC_QUEUE, StepReason.SWEEP), (SYNC_BULK_QUEUE, StepReason.INITIAL_DONE)])
def test_a_given_up_step_stops_the_sync_until_the_member_resumes_it(product: ProductStack, queue: str,
                                                                   reason: StepReason) -> None:
    member = linked_member(product)
    services = get_services()
    services.sync.enable(member, KIND)
    wait_until(lambda: profile(member, KIND).state is SyncState.ACTIVE and profile(member, KIND).delta_link,
               what="two-way sync")
    current = profile(member, KIND)
    poison = QueueClient.from_connection_string(services.settings.storage_connection_string or "", f"{queue}-poison")
    with contextlib.suppress(ResourceExistsError):
        poison.create_queue()
    # What the host does after the fifth failed delivery of a step (and a message that is no step at all).
    poison.send_message("bm90IGEgc3RlcA==")
    poison.send_message(encode_message(SyncJob.of(current, "delta", reason)))
    wait_until(lambda: profile(member, KIND).state is SyncState.PAUSED, what="the sync to stop")
    stopped = profile(member, KIND)
    assert stopped.reason is Reason.STEP_FAILED and stopped.life.paused_from is SyncState.ACTIVE
    assert services.sync.sweep() == 0  # nothing queued for a stopped sync
    services.sync.resume(member, KIND)
    wait_until(lambda: profile(member, KIND).state is SyncState.ACTIVE and not profile(member, KIND).delta_queued
               and profile(member, KIND).lease_owner is None, what="the sync to resume")
    wait_until(lambda: int(poison.get_queue_properties().approximate_message_count) == 0, what="the poison queue read")

