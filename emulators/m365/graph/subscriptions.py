"""Change notifications: subscriptions with the validation handshake, delivery with retries, lifecycle events.

Deliberate loosening: notificationUrl may be http on loopback (real Graph requires https),
because the product's Functions host runs on http://127.0.0.1 in dev and tests.
"""

from __future__ import annotations

import datetime as dt
import queue
import re
import secrets
import threading
import time
import uuid
from urllib.parse import urlsplit

import requests
from flask import Blueprint, g, request

from ..errors import GraphError
from ..runtime import emulator
from ..store import Store, now_utc
from . import access, contacts, events
from .routes import context_url, json_body, reply

blueprint = Blueprint("graph_subscriptions", __name__, url_prefix="/v1.0")
MAX_MINUTES = 10_080  # Outlook message, event, contact (change-notifications-subscription-lifetime)
MAX_MINUTES_WITH_RESOURCE_DATA = 1_440
MAX_PER_MAILBOX = 1_000
VALIDATION_TIMEOUT = 10
DELIVERY_TIMEOUT = 3
DELIVERY_ATTEMPTS = 5
RESOURCE_PATTERNS = [
    (re.compile(r"^(?:users/(?P<u>[^/]+)|me)/events$", re.I), "event", "default"),
    (re.compile(r"^(?:users/(?P<u>[^/]+)|me)/calendars/(?P<c>[^/]+)/events$", re.I), "event", "container"),
    (re.compile(r"^(?:users/(?P<u>[^/]+)|me)/contacts$", re.I), "contact", "default"),
    (re.compile(r"^(?:users/(?P<u>[^/]+)|me)/contactFolders/(?P<c>[^/]+)/contacts$", re.I), "contact", "container"),
    (re.compile(r"^(?:users/(?P<u>[^/]+)|me)/(?:mailFolders\('?inbox'?\)|mailFolders/inbox)/messages$", re.I), "message", "inbox"),
    (re.compile(r"^(?:users/(?P<u>[^/]+)|me)/messages$", re.I), "message", "any"),
]
ODATA_TYPES = {"event": ("#Microsoft.Graph.Event", "Events"), "contact": ("#Microsoft.Graph.Contact", "Contacts"),
               "message": ("#Microsoft.Graph.Message", "Messages")}
AREA = {"event": "calendar", "contact": "contact", "message": "mail"}


@blueprint.before_request
def authenticate() -> None:
    g.client_request_id = request.headers.get("client-request-id")
    access.authenticate()


class Notifier:
    """Delivers change and lifecycle notifications from a background thread, with retries."""

    def __init__(self, store: Store, throttle):
        self.store = store
        self.throttle = throttle
        self.queue: queue.Queue = queue.Queue()
        self.log: list[dict] = []
        self.session = requests.Session()
        self.session.trust_env = False
        self._stop = threading.Event()
        self.thread = threading.Thread(target=self._run, name="m365-notifier", daemon=True)
        self.thread.start()
        store.add_listener(self.on_change)

    def stop(self) -> None:
        self._stop.set()
        self.queue.put(None)
        self.thread.join(timeout=5)

    def on_change(self, user_id: str, kind: str, container_id: str, item_id: str, change_type: str) -> None:
        store = self.store
        with store.lock:
            box = store.mailboxes.get(user_id)
            subs = [s for s in store.subscriptions.values() if s["_userId"] == user_id and s["_kind"] == kind]
            for sub in subs:
                if change_type not in sub["changeType"].split(","):
                    continue
                if _expired(sub):
                    continue
                scope = sub["_scope"]
                if scope == "container" and sub["_container"] != container_id:
                    continue
                if scope == "default" and box is not None and not _is_default(box, kind, container_id):
                    continue
                if scope == "inbox" and container_id != "inbox":
                    continue
                odata_type, segment = ODATA_TYPES[kind]
                resource = f"Users/{user_id}/{segment}/{item_id}"
                notification = {
                    "subscriptionId": sub["id"], "subscriptionExpirationDateTime": sub["expirationDateTime"],
                    "changeType": change_type, "resource": resource, "clientState": sub.get("clientState"),
                    "tenantId": sub["_tenantId"],
                    "resourceData": {"@odata.type": odata_type, "@odata.id": resource, "id": item_id,
                                     "@odata.etag": f'W/"{_etag(box, kind, item_id)}"'} ,
                }
                if notification["clientState"] is None:
                    del notification["clientState"]
                self.queue.put((sub["notificationUrl"], {"value": [notification]}, sub["id"], "change", 0))

    def lifecycle(self, sub: dict, event: str) -> None:
        url = sub.get("lifecycleNotificationUrl")
        if not url:
            return
        body = {"value": [{"subscriptionId": sub["id"], "subscriptionExpirationDateTime": sub["expirationDateTime"],
                           "tenantId": sub["_tenantId"], "clientState": sub.get("clientState"), "lifecycleEvent": event}]}
        self.queue.put((url, body, sub["id"], event, 0))

    def _run(self) -> None:
        retries: list[tuple[float, tuple]] = []
        while not self._stop.is_set():
            now = time.monotonic()
            due = [r for r in retries if r[0] <= now]
            retries = [r for r in retries if r[0] > now]
            for _, job in due:
                self.queue.put(job)
            try:
                job = self.queue.get(timeout=0.1)
            except queue.Empty:
                continue
            if job is None:
                return
            url, body, sub_id, kind, attempt = job
            drop = self.throttle.settings.notification_drop_rate
            if kind == "change" and attempt == 0 and drop and self.throttle.random.random() < drop:
                # Lost on the way: Graph does not promise delivery; only a delta query finds the change.
                with self.store.lock:
                    self.log.append({"at": now_utc().isoformat(), "url": url, "kind": kind, "subscriptionId": sub_id,
                                     "attempt": 1, "status": None, "delivered": False, "dropped": True, "body": body})
                    del self.log[:-500]
                continue
            ok, status = self._post(url, body)
            entry = {"at": now_utc().isoformat(), "url": url, "kind": kind, "subscriptionId": sub_id, "attempt": attempt + 1,
                     "status": status, "delivered": ok, "body": body}
            with self.store.lock:
                self.log.append(entry)
                del self.log[:-500]
            if ok:
                duplicate = self.throttle.settings.notification_duplicate_rate
                if duplicate and self.throttle.random.random() < duplicate and attempt >= 0:
                    # At-least-once delivery: replay the same notification once more.
                    self.queue.put((url, body, sub_id, kind, -10))
                continue
            if 0 <= attempt < DELIVERY_ATTEMPTS - 1:
                retries.append((time.monotonic() + 0.2 * (2 ** attempt), (url, body, sub_id, kind, attempt + 1)))
            elif kind == "change":
                with self.store.lock:
                    sub = self.store.subscriptions.get(sub_id)
                if sub is not None:
                    self.lifecycle(sub, "missed")

    def _post(self, url: str, body: dict) -> tuple[bool, int | None]:
        try:
            response = self.session.post(url, json=body, timeout=DELIVERY_TIMEOUT, verify=True)
        except requests.RequestException:
            return False, None
        return 200 <= response.status_code < 300, response.status_code


def _is_default(box, kind: str, container_id: str) -> bool:
    if kind == "event":
        return box.calendars.get(container_id, {}).get("isDefaultCalendar", False)
    if kind == "contact":
        return box.contact_folders.get(container_id, {}).get("isDefault", False)
    return True


def _etag(box, kind: str, item_id: str) -> str:
    if box is None:
        return ""
    if kind == "event":
        record = box.events.get(events.split_occurrence_id(item_id)[0])
        return record["changeKey"] if record else ""
    if kind == "contact":
        return box.contacts.get(item_id, {}).get("changeKey", "")
    return box.messages.get(item_id, {}).get("changeKey", "")


def _expired(sub: dict) -> bool:
    return dt.datetime.fromisoformat(sub["expirationDateTime"].replace("Z", "+00:00")) <= now_utc()


def _parse_expiration(value, include_resource_data: bool) -> str:
    if not value:
        raise GraphError(400, "InvalidRequest", "expirationDateTime is required.")
    try:
        moment = dt.datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        raise GraphError(400, "InvalidRequest", f"Cannot convert '{value}' to a DateTimeOffset.") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=dt.UTC)
    limit = MAX_MINUTES_WITH_RESOURCE_DATA if include_resource_data else MAX_MINUTES
    now = now_utc()
    if moment <= now:
        raise GraphError(400, "InvalidRequest", "Subscription expiration can only be in the future.")
    if moment > now + dt.timedelta(minutes=limit):
        raise GraphError(400, "InvalidRequest", f"Subscription expiration can only be {limit} minutes in the future.")
    return moment.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%f") + "0Z"


def _check_url(url: str | None, name: str) -> None:
    parts = urlsplit(url or "")
    loopback = parts.hostname in ("127.0.0.1", "localhost", "::1")
    if parts.scheme != "https" and not (parts.scheme == "http" and loopback):
        raise GraphError(400, "InvalidRequest", f"The {name} must be an https URL.")


def _validate_endpoint(url: str) -> None:
    token = f"Validation: Testing client application reachability for subscription Request-Id: {uuid.uuid4()}"
    session = requests.Session()
    session.trust_env = False
    try:
        response = session.post(url, params={"validationToken": token}, data=b"",
                                headers={"Content-Type": "text/plain; charset=utf-8"}, timeout=VALIDATION_TIMEOUT)
    except requests.RequestException:
        raise GraphError(400, "InvalidRequest", "Subscription validation request failed. Notification endpoint must respond "
                         "with 200 OK to validation request.") from None
    if response.status_code != 200:
        raise GraphError(400, "InvalidRequest", "Subscription validation request failed. Notification endpoint must respond "
                         "with 200 OK to validation request.")
    if response.text != token:
        raise GraphError(400, "InvalidRequest", "Subscription validation request failed. Response must exactly match "
                         "validationToken query parameter.")


def render(sub: dict) -> dict:
    return {k: v for k, v in sub.items() if not k.startswith("_")}


@blueprint.post("/subscriptions")
def create_subscription():
    store = emulator().store
    payload = json_body()
    claims = g.claims
    resource = str(payload.get("resource") or "").strip().lstrip("/")
    found = next(((p.match(resource), k, s) for p, k, s in RESOURCE_PATTERNS if p.match(resource)), None)
    if found is None:
        raise GraphError(400, "InvalidRequest", f"Resource '{resource}' is not supported for change notifications.")
    match, kind, scope = found
    change_types = [c.strip() for c in str(payload.get("changeType") or "").split(",") if c.strip()]
    if not change_types or set(change_types) - {"created", "updated", "deleted"}:
        raise GraphError(400, "InvalidRequest", "changeType must be one or more of created, updated, deleted.")
    client_state = payload.get("clientState")
    if client_state is not None and len(str(client_state)) > 128:
        raise GraphError(400, "InvalidRequest", "clientState must be at most 128 characters.")
    include = bool(payload.get("includeResourceData"))
    if include and not payload.get("encryptionCertificate"):
        raise GraphError(400, "InvalidRequest", "encryptionCertificate is required when includeResourceData is true.")
    expiration = _parse_expiration(payload.get("expirationDateTime"), include)
    _check_url(payload.get("notificationUrl"), "notificationUrl")
    if payload.get("lifecycleNotificationUrl"):
        _check_url(payload["lifecycleNotificationUrl"], "lifecycleNotificationUrl")
    box = access.resolve_mailbox(match.group("u") or "me", AREA[kind])
    with store.lock:
        container = None
        if scope == "container":
            container = match.group("c")
            if kind == "event":
                events.get_calendar(box, container)
            else:
                contacts.get_folder(box, container)
        if sum(1 for s in store.subscriptions.values() if s["_userId"] == box.user_id) >= MAX_PER_MAILBOX:
            raise GraphError(403, "ExtensionError", f"Operation: Create; Exception: [Status Code: Forbidden; Reason: Maximum "
                             f"number of subscriptions ({MAX_PER_MAILBOX}) for this mailbox has been reached.]")
    _validate_endpoint(payload["notificationUrl"])
    if payload.get("lifecycleNotificationUrl") and payload["lifecycleNotificationUrl"] != payload["notificationUrl"]:
        _validate_endpoint(payload["lifecycleNotificationUrl"])
    sub = {
        "id": str(uuid.uuid4()), "resource": payload["resource"], "applicationId": claims["appid"],
        "changeType": ",".join(change_types), "clientState": client_state, "notificationUrl": payload["notificationUrl"],
        "notificationQueryOptions": None, "lifecycleNotificationUrl": payload.get("lifecycleNotificationUrl"),
        "expirationDateTime": expiration, "creatorId": claims.get("oid"), "includeResourceData": include,
        "latestSupportedTlsVersion": payload.get("latestSupportedTlsVersion", "v1_2"),
        "encryptionCertificate": payload.get("encryptionCertificate"), "encryptionCertificateId": payload.get("encryptionCertificateId"),
        "notificationUrlAppId": None,
        "_userId": box.user_id, "_tenantId": claims["tid"], "_kind": kind, "_scope": scope, "_container": container,
        "_secret": secrets.token_hex(4),
    }
    with store.lock:
        store.subscriptions[sub["id"]] = sub
    return reply({"@odata.context": context_url("subscriptions/$entity"), **render(sub)}, 201)


def _own_subscription(sub_id: str) -> dict:
    sub = emulator().store.subscriptions.get(sub_id)
    if sub is None or sub["applicationId"] != g.claims["appid"] or sub["_tenantId"] != g.claims["tid"] or _expired(sub):
        raise GraphError(404, "ResourceNotFound", f"The object was not found. Subscription '{sub_id}' does not exist.")
    return sub


@blueprint.get("/subscriptions")
def list_subscriptions():
    store = emulator().store
    with store.lock:
        value = [render(s) for s in store.subscriptions.values()
                 if s["applicationId"] == g.claims["appid"] and s["_tenantId"] == g.claims["tid"] and not _expired(s)]
    return reply({"@odata.context": context_url("subscriptions"), "value": value})


@blueprint.route("/subscriptions/<sub_id>", methods=["GET", "PATCH", "DELETE"])
def subscription_item(sub_id: str):
    store = emulator().store
    with store.lock:
        sub = _own_subscription(sub_id)
        if request.method == "DELETE":
            del store.subscriptions[sub_id]
            return reply(status=204)
        if request.method == "PATCH":
            payload = json_body()
            if set(payload) - {"expirationDateTime", "notificationUrl", "@odata.type"}:
                raise GraphError(400, "InvalidRequest", "Only expirationDateTime and notificationUrl can be updated.")
            if "expirationDateTime" in payload:
                sub["expirationDateTime"] = _parse_expiration(payload["expirationDateTime"], sub["includeResourceData"])
        return reply({"@odata.context": context_url("subscriptions/$entity"), **render(sub)})


@blueprint.post("/subscriptions/<sub_id>/reauthorize")
def reauthorize(sub_id: str):
    with emulator().store.lock:
        _own_subscription(sub_id)
    return reply(status=204)

