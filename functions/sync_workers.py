"""Queues ``sync-jobs`` and ``sync-bulk``: one step of one member's calendar or contacts sync
(``shared.sync.jobs.queue_for`` says which queue a step takes; both triggers run any step, so a
step an earlier version queued on ``sync-jobs`` still runs); queue ``crm-changes``: a CRM
callback of an org with several members with sync on, routed to the owners' syncs; queue
``graph-notifications``: what a Graph POST held for later; and the timers behind webhooks: the
safety sweep and the renewal of subscriptions and channels.

Two triggers for steps, not one: the host fetches and runs each queue's messages on its own (up
to batchSize + newBatchThreshold per function per instance, host.json), and Flex Consumption
scales each function on its own instances, so a rollout of initial syncs on ``sync-bulk``
never holds up the webhook-driven steps of ``sync-jobs`` (issue 21)."""

import logging

import azure.functions as func

from shared.observability import correlated, invocation, new_correlation_id
from shared.storage import decode_message
from shared.storage.queues import InvalidMessage
from shared.sync.crm_routing import CRM_CHANGES_QUEUE, CrmChange
from shared.sync.held_notifications import GRAPH_NOTIFICATIONS_QUEUE, HeldNotifications
from shared.sync.jobs import SYNC_BULK_QUEUE, SYNC_QUEUE, SyncJob
from shared.wiring import get_services

bp = func.Blueprint()
log = logging.getLogger("functions.sync")


@bp.queue_trigger(arg_name="msg", queue_name=SYNC_QUEUE, connection="AzureWebJobsStorage")
def sync_step(msg: func.QueueMessage, context: func.Context) -> None:
    with invocation(context):
        job = decode_message(msg.get_body(), SyncJob)
    _run_step(job, msg.id, context)


@bp.queue_trigger(arg_name="msg", queue_name=SYNC_BULK_QUEUE, connection="AzureWebJobsStorage")
def sync_bulk_step(msg: func.QueueMessage, context: func.Context) -> None:
    with invocation(context):
        job = decode_message(msg.get_body(), SyncJob)
    _run_step(job, msg.id, context)


@bp.queue_trigger(arg_name="msg", queue_name=f"{SYNC_QUEUE}-poison", connection="AzureWebJobsStorage")
def sync_step_given_up(msg: func.QueueMessage, context: func.Context) -> None:
    with invocation(context):
        _give_up(msg)


@bp.queue_trigger(arg_name="msg", queue_name=f"{SYNC_BULK_QUEUE}-poison", connection="AzureWebJobsStorage")
def sync_bulk_step_given_up(msg: func.QueueMessage, context: func.Context) -> None:
    with invocation(context):
        _give_up(msg)


def _run_step(job: SyncJob, delivery: str, context: func.Context) -> None:
    with invocation(context, continues=job.traceparent), correlated(new_correlation_id(f"sync:{job.member}:{job.kind}")):
        # The webhook's operation goes on, when one queued the step. The message id names this
        # delivery's lease: a redelivery after a crash takes it over.
        get_services().sync.run(job, delivery=delivery)


def _give_up(msg: func.QueueMessage) -> None:
    """A step the host gave up after its five deliveries: that member's sync stops with the
    error it kept failing with, until they press Resume (issue 23; lifecycle L18, L20)."""
    try:
        job = decode_message(msg.get_body(), SyncJob)
    except InvalidMessage as error:  # nothing to stop: what it was is kept in the log
        log.error("a given-up sync message is not a step: %s", error)
        return
    with correlated(new_correlation_id(f"sync-given-up:{job.member}:{job.kind}")):
        get_services().sync.give_up(job)


@bp.queue_trigger(arg_name="msg", queue_name=CRM_CHANGES_QUEUE, connection="AzureWebJobsStorage")
def crm_change(msg: func.QueueMessage, context: func.Context) -> None:
    """One CRM callback of an org with several members with sync on: a step for each owner
    (one CRM read of the changed ids), or for each member whose links name a deleted record."""
    with invocation(context):
        change = decode_message(msg.get_body(), CrmChange)
    with invocation(context, continues=change.traceparent), correlated(new_correlation_id(f"crm-change:{change.org_id}:{change.kind}")):
        queued = get_services().sync.route_crm_change(change)
        log.info("crm %s of %d %s records in org %s: %d steps queued", change.operation, len(change.ids),
                 change.kind.value, change.org_id, queued)


@bp.queue_trigger(arg_name="msg", queue_name=GRAPH_NOTIFICATIONS_QUEUE, connection="AzureWebJobsStorage")
def graph_notifications_held(msg: func.QueueMessage, context: func.Context) -> None:
    """Graph notifications a webhook POST held for later (those beyond the subscriptions it looked
    up while Graph waited): a delta step for each member they name, as the webhook queues."""
    with invocation(context):
        held = decode_message(msg.get_body(), HeldNotifications)
    with invocation(context, continues=held.traceparent), correlated(new_correlation_id("graph-notifications")):
        queued = get_services().sync.held_graph_notifications(held)
        log.info("held graph notifications of %d subscriptions: %d steps queued", len(held.notifications), queued)


@bp.timer_trigger(arg_name="timer", schedule="0 */5 * * * *", run_on_startup=False, use_monitor=True)
def delta_sweep(timer: func.TimerRequest, context: func.Context) -> None:
    with invocation(context), correlated(new_correlation_id("sweep")):
        queued = get_services().sync.sweep_tick()
        log.info("safety sweep: %d steps queued", queued)


@bp.timer_trigger(arg_name="timer", schedule="0 17 * * * *", run_on_startup=False, use_monitor=True)
def renew_webhooks(timer: func.TimerRequest, context: func.Context) -> None:
    with invocation(context), correlated(new_correlation_id("renew")):
        renewed = get_services().sync.renew_all()
        log.info("webhooks renewed: %d", renewed)
