"""Subscriptions: validation handshake, change notifications with clientState, lifecycle events, renewal."""

from __future__ import annotations

import datetime as dt
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

import pytest

MEGAN = "megan@contoso.test"


class Receiver:
    def __init__(self, echo: bool = True):
        self.received: list[dict] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length)
                token = parse_qs(urlsplit(self.path).query).get("validationToken")
                if token:
                    answer = token[0].encode() if echo else b"nope"
                    self.send_response(200)
                    self.send_header("Content-Type", "text/plain")
                    self.send_header("Content-Length", str(len(answer)))
                    self.end_headers()
                    self.wfile.write(answer)
                    return
                receiver.received.append({"path": self.path, **json.loads(body)})
                self.send_response(202)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_port}"

    def wait_for(self, predicate, timeout: float = 10.0) -> list[dict]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = [r for r in self.received if predicate(r)]
            if found:
                return found
            time.sleep(0.02)
        raise AssertionError(f"nothing matching arrived; got {self.received}")


@pytest.fixture
def receiver():
    r = Receiver()
    yield r
    r.server.shutdown()


def _expiry(minutes: int) -> str:
    return (dt.datetime.now(dt.UTC) + dt.timedelta(minutes=minutes)).strftime("%Y-%m-%dT%H:%M:%S.0000000Z")


def test_subscription_handshake_notifications_lifecycle_and_renewal(http, m365, app_headers, receiver):
    calendar = http.post(f"{m365.graph_url}/users/{MEGAN}/calendars", headers=app_headers, json={"name": "Zoho CRM"}).json()
    body = {"changeType": "created,updated,deleted", "notificationUrl": f"{receiver.url}/notify",
            "lifecycleNotificationUrl": f"{receiver.url}/lifecycle", "resource": f"users/{MEGAN}/calendars/{calendar['id']}/events",
            "expirationDateTime": _expiry(10_081), "clientState": "secret-123"}
    too_long = http.post(f"{m365.graph_url}/subscriptions", headers=app_headers, json=body)
    assert too_long.status_code == 400
    created = http.post(f"{m365.graph_url}/subscriptions", headers=app_headers, json={**body, "expirationDateTime": _expiry(10_000)})
    assert created.status_code == 201, created.text
    sub = created.json()
    assert sub["clientState"] == "secret-123"
    event = http.post(f"{m365.graph_url}/users/{MEGAN}/calendars/{calendar['id']}/events", headers=app_headers, json={
        "subject": "Ping", "start": {"dateTime": "2030-01-01T10:00:00", "timeZone": "UTC"},
        "end": {"dateTime": "2030-01-01T11:00:00", "timeZone": "UTC"}}).json()
    note = receiver.wait_for(lambda r: r["path"] == "/notify")[0]["value"][0]
    assert note["changeType"] == "created" and note["clientState"] == "secret-123" and note["resourceData"]["id"] == event["id"]
    assert note["subscriptionId"] == sub["id"]
    http.delete(f"{m365.base_url}/__emulator/mailbox/{MEGAN}/events/{event['id']}")
    receiver.wait_for(lambda r: r["path"] == "/notify" and r["value"][0]["changeType"] == "deleted")
    # The default calendar is a different resource: no notification for it.
    renewed = http.patch(f"{m365.graph_url}/subscriptions/{sub['id']}", headers=app_headers, json={"expirationDateTime": _expiry(60)})
    assert renewed.status_code == 200 and renewed.json()["expirationDateTime"] != sub["expirationDateTime"]
    http.post(f"{m365.base_url}/__emulator/subscriptions/{sub['id']}/lifecycle", json={"lifecycleEvent": "missed"}).raise_for_status()
    life = receiver.wait_for(lambda r: r["path"] == "/lifecycle")[0]["value"][0]
    assert life["lifecycleEvent"] == "missed" and life["subscriptionId"] == sub["id"]
    assert http.post(f"{m365.graph_url}/subscriptions/{sub['id']}/reauthorize", headers=app_headers).status_code == 204
    assert http.delete(f"{m365.graph_url}/subscriptions/{sub['id']}", headers=app_headers).status_code == 204
    assert http.get(f"{m365.graph_url}/subscriptions/{sub['id']}", headers=app_headers).status_code == 404


def test_subscription_fails_when_validation_is_not_echoed(http, m365, app_headers):
    bad = Receiver(echo=False)
    try:
        response = http.post(f"{m365.graph_url}/subscriptions", headers=app_headers, json={
            "changeType": "created", "notificationUrl": f"{bad.url}/notify", "resource": f"users/{MEGAN}/contacts",
            "expirationDateTime": _expiry(60)})
        assert response.status_code == 400 and response.json()["error"]["code"] == "InvalidRequest"
    finally:
        bad.server.shutdown()
