"""Queue ``mail-outbox``: send one e-mail through Microsoft Graph (SPEC R2.1, R2.4).

A failure raises, so the host retries it (visibilityTimeout) and, after maxDequeueCount
attempts, moves it to ``mail-outbox-poison`` where operators see it."""

import logging

import azure.functions as func

from shared.mail.outbox import DELIVERY_ATTEMPTS, OUTBOX_QUEUE
from shared.observability import correlated, invocation, new_correlation_id
from shared.wiring import get_services

bp = func.Blueprint()
log = logging.getLogger("functions.mail")


@bp.queue_trigger(arg_name="msg", queue_name=OUTBOX_QUEUE, connection="AzureWebJobsStorage")
def mail_sender(msg: func.QueueMessage, context: func.Context) -> None:
    with invocation(context):
        services = get_services()
        message = services.outbox.unseal(msg.get_body())
        with correlated(new_correlation_id(f"mail:{message.message_id}")):
            try:
                sent = services.mail_sender.deliver(message)
            except Exception as error:
                if (msg.dequeue_count or 0) >= DELIVERY_ATTEMPTS:  # the host poisons it after this one
                    services.mail_sender.record_failure(message, error)
                raise
            log.info("mail %s to %s: %s", message.message_id, message.to_email, "sent" if sent else "already sent")
