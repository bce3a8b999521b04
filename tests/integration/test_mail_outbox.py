"""The mail outbox through the local host: retried on Graph throttling and failures,
delivered once, and moved to ``mail-outbox-poison`` only after maxDequeueCount attempts."""

from __future__ import annotations

import base64
import contextlib
import json
import time
import uuid

from azure.storage.queue import QueueServiceClient

from shared.mail.outbox import OUTBOX_QUEUE, OutboxMessage
from shared.wiring import get_services
from tests.conftest import storage_connection
from tests.product_stack import CONTOSO, ProductStack

ADELE = "adele@contoso.test"


def grant_consent(product: ProductStack) -> None:
    from local.demo_world import APP_REGISTRATION

    product.m365_control("POST", "consents", json={"tenantId": CONTOSO, "clientId": APP_REGISTRATION["client_id"], "kind": "admin"})


def message(subject: str) -> OutboxMessage:
    return OutboxMessage(
        message_id=f"test-{uuid.uuid4().hex}", tenant_id=CONTOSO, sender=ADELE, to_email="megan@contoso.test",
        to_name="Megan", subject=subject, html="<p>hello</p>", text="hello",
    )


def inbox_subjects(product: ProductStack, upn: str) -> list[str]:
    for tenant in product.m365_snapshot()["tenants"]:
        for user in tenant["users"]:
            if user["userPrincipalName"] == upn:
                return [m["subject"] for m in user["mailbox"]["messages"] if m.get("parentFolderId", m.get("folder")) == "inbox"]
    return []


def test_throttled_sends_are_retried_and_delivered_once(product: ProductStack) -> None:
    grant_consent(product)
    # Seeded, and enough sends that "no 429 at all" cannot happen by chance.
    product.m365_control("PUT", "faults", json={"rate_429": 0.5, "retry_after_seconds": 0, "seed": 7})
    subjects = [f"throttled {i} {uuid.uuid4().hex[:6]}" for i in range(8)]
    for subject in subjects:
        get_services().outbox.enqueue(message(subject))
    deadline = time.monotonic() + 60
    while not all(s in inbox_subjects(product, "megan@contoso.test") for s in subjects):
        assert time.monotonic() < deadline, "messages were not delivered"
        time.sleep(0.5)
    time.sleep(2)  # a late duplicate would show up now
    delivered = inbox_subjects(product, "megan@contoso.test")
    assert all(delivered.count(s) == 1 for s in subjects)
    assert product.m365_control("GET", "counters")["totals"]["throttled429"] > 0


def test_a_message_that_never_succeeds_lands_in_poison_after_five_attempts(product: ProductStack) -> None:
    grant_consent(product)
    product.m365_control("PUT", "faults", json={"rate_503": 1.0, "retry_after_seconds": 0})
    poisoned = message(f"never {uuid.uuid4().hex[:6]}")
    get_services().outbox.enqueue(poisoned)
    queues = QueueServiceClient.from_connection_string(storage_connection())
    poison = queues.get_queue_client(f"{OUTBOX_QUEUE}-poison")
    deadline = time.monotonic() + 90
    found = None
    while found is None:
        assert time.monotonic() < deadline, "the message never reached the poison queue"
        with contextlib.suppress(Exception):  # the poison queue does not exist until the first poison
            for raw in poison.peek_messages(max_messages=32):
                body = json.loads(base64.b64decode(raw.content))
                if body["message_id"] == poisoned.message_id:
                    found = body
        time.sleep(0.5)
    assert found["subject"] == poisoned.subject  # the raw body, intact, for an operator to replay
    assert "hello" not in json.dumps(found) and found["sealed_body"]  # the e-mail's body sealed at rest (issue 18 §5)
    assert get_services().outbox.unseal(json.dumps(found)).html == "<p>hello</p>"
    assert poisoned.subject not in inbox_subjects(product, "megan@contoso.test")
