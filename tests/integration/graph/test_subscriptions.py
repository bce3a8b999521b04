"""Subscriptions on our calendar and folder, and the webhook-side checks (SPEC R3.3, R4.4)."""

from __future__ import annotations

import json
import queue
import socket
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

import pytest

from shared.graph.calendars import CalendarClient
from shared.graph.contacts import ContactsClient
from shared.graph.notifications import (
    NotificationRejected,
    authentic,
    new_client_state,
    parse_change_notifications,
    parse_lifecycle_notifications,
    validation_token,
)
from shared.graph.subscriptions import (
    MAX_LIFETIME,
    EndpointNotValidated,
    SubscriptionClient,
    SubscriptionGone,
)
from tests.integration.sync_port_contracts import outlook_subscriptions
from tests.sync_sides import SubscriptionsInMemory, WallClock

from .conftest import ADELE_UPN, Emulator
from .test_calendars import event_fields


class Receiver:
    """A loopback webhook: echoes validation tokens like the product's function must, and keeps
    every notification body it receives."""

    def __init__(self) -> None:
        self.bodies: queue.Queue[tuple[str, bytes]] = queue.Queue()
        received = self.bodies

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's naming
                parts = urlsplit(self.path)
                query = {k: v[0] for k, v in parse_qs(parts.query).items()}
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                token = validation_token(query)
                if token is not None:
                    payload = token.encode()
                    self.send_response(200)
                    self.send_header("Content-Type", "text/plain")
                    self.send_header("Content-Length", str(len(payload)))
                    self.end_headers()
                    self.wfile.write(payload)
                    return
                received.put((parts.path, body))
                self.send_response(202)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()
        self.url = f"http://127.0.0.1:{self.server.server_port}"

    def next_body(self, path: str, timeout: float = 10) -> bytes:
        while True:
            got_path, body = self.bodies.get(timeout=timeout)
            if got_path == path:
                return body

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    instance = Receiver()
    try:
        yield instance
    finally:
        instance.stop()


def test_calendar_subscription_create_notify_renew_delete(mailbox, emulator: Emulator, receiver: Receiver) -> None:
    calendars = CalendarClient(mailbox)
    calendar = calendars.ensure_calendar()
    subscriptions = SubscriptionClient(mailbox)
    secret = new_client_state()
    sub = subscriptions.subscribe_calendar(calendar.id, notification_url=f"{receiver.url}/notify",
                                           lifecycle_url=f"{receiver.url}/lifecycle", client_state=secret)
    assert sub.resource.endswith(f"/calendars/{calendar.id}/events")
    assert sub.change_type == "created,updated,deleted" and sub.client_state == secret
    assert sub.expiration_date_time <= datetime.now(UTC) + MAX_LIFETIME

    event = calendars.create_event(calendar.id, event_fields("Notify me"), crm_id="zcrm_1")
    body = receiver.next_body("/notify")
    notifications = parse_change_notifications(body)
    known = {sub.id: secret}
    [accepted] = authentic(notifications, known.get)
    assert accepted.change_type == "created" and accepted.resource_data and accepted.resource_data.id == event.id
    assert authentic(notifications, {sub.id: "another secret"}.get) == []  # forged or stale: dropped
    assert authentic(notifications, {}.get) == []  # unknown subscription: dropped

    renewed = subscriptions.renew(sub.id, timedelta(days=2))
    assert renewed.expiration_date_time > datetime.now(UTC) + timedelta(days=1, hours=23)
    assert renewed.expiration_date_time < sub.expiration_date_time

    emulator.control("POST", f"subscriptions/{sub.id}/lifecycle", json={"lifecycleEvent": "reauthorizationRequired"})
    [lifecycle] = parse_lifecycle_notifications(receiver.next_body("/lifecycle"))
    assert lifecycle.lifecycle_event == "reauthorizationRequired" and lifecycle.subscription_id == sub.id

    assert subscriptions.delete(sub.id) is True
    assert subscriptions.delete(sub.id) is False
    with pytest.raises(SubscriptionGone):
        subscriptions.renew(sub.id)


def test_an_endpoint_that_does_not_answer_the_validation_is_told_apart(mailbox) -> None:  # type: ignore[no-untyped-def]
    """Our webhook down (a port nobody listens on): Graph refuses the create with its 400
    "Subscription validation request failed", which the sync treats as its own passing failure."""
    calendar = CalendarClient(mailbox).ensure_calendar()
    closed = socket.socket()
    closed.bind(("127.0.0.1", 0))
    port = closed.getsockname()[1]
    closed.close()
    with pytest.raises(EndpointNotValidated) as refused:
        SubscriptionClient(mailbox).subscribe_calendar(calendar.id, notification_url=f"http://127.0.0.1:{port}/notify",
                                                       lifecycle_url=f"http://127.0.0.1:{port}/lifecycle",
                                                       client_state=new_client_state())
    assert refused.value.status == 400 and refused.value.code == "InvalidRequest"


def test_contacts_subscription(mailbox, receiver: Receiver) -> None:
    folder = ContactsClient(mailbox).ensure_folder()
    subscriptions = SubscriptionClient(mailbox)
    sub = subscriptions.subscribe_contacts(folder.id, notification_url=f"{receiver.url}/notify",
                                           lifecycle_url=f"{receiver.url}/lifecycle", client_state=new_client_state())
    assert sub.resource.endswith(f"/contactFolders/{folder.id}/contacts")
    assert subscriptions.delete(sub.id) is True


@pytest.mark.parametrize("body", [b"not json", b"{}", b'{"value": [{"changeType": "created"}]}',
                                  json.dumps({"value": [{"subscriptionId": "s", "changeType": "exploded",
                                                         "resource": "r"}]}).encode()])
def test_malformed_notifications_are_rejected(body: bytes) -> None:
    with pytest.raises(NotificationRejected):
        parse_change_notifications(body)


def test_validation_token_is_echoed_only_when_asked() -> None:
    assert validation_token({"validationToken": "Validation: Testing client application"}) == \
        "Validation: Testing client application"
    assert validation_token({}) is None


@pytest.mark.parametrize("side", ["m365 emulator", "in memory"])
def test_outlook_subscriptions_port(mailbox, emulator: Emulator, receiver: Receiver, side: str) -> None:  # type: ignore[no-untyped-def]
    """``OutlookSubscriptions``: the Microsoft 365 emulator and the fast tests' subscriptions
    keep one contract (issue 17 §2)."""
    folder = ContactsClient(mailbox).ensure_folder()
    gone = emulator.control("POST", f"mailbox/{ADELE_UPN}/contactFolders", json={"displayName": "Deleted Before Subscribing"})["id"]
    emulator.control("DELETE", f"mailbox/{ADELE_UPN}/contactFolders/{gone}")
    port = SubscriptionClient(mailbox) if side == "m365 emulator" else \
        SubscriptionsInMemory(WallClock(), container_exists=lambda container_id: container_id != gone)
    outlook_subscriptions(port, folder.id, receiver.url, gone_folder_id=gone)  # type: ignore[arg-type]
