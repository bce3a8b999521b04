"""Reading what Graph POSTs to our webhooks, for the webhook functions (no I/O; one log line
for a POST whose entries were screened out).

- The validation handshake: Graph POSTs ``?validationToken=...``; we answer 200 text/plain
  with the token, URL-decoded, within 10 seconds (graph-notes §7).
- Change and lifecycle notifications: ``{"value": [...]}``; every entry whose ``clientState``
  is not the one we gave that subscription is dropped (Graph's guidance: ignore them), so a
  forged POST cannot make us sync. Compared in constant time.
- Before any of that costs a storage read, the entries are screened on what they carry
  alone (``screen_*``): a subscription id that is not a GUID (as Graph's are; nothing else
  may become a Table key), a missing or oversized ``clientState``, duplicates, and more
  subscriptions than one POST of Graph's names are dropped, and counted for one log line.
"""

from __future__ import annotations

import hmac
import json
import logging
import re
import secrets
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Generic, TypeVar

from pydantic import BaseModel, ValidationError

from shared.graph.models import ChangeNotification, ItemChange, LifecycleNotification
from shared.observability import untrusted

MAX_BODY_BYTES = 1_000_000  # a notification POST is small; refuse to parse anything huge
MAX_CLIENT_STATE = 128
# Graph's tokens read "Validation: Testing client application reachability for subscription
# Request-Id: <guid>": printable ASCII, far below this. Markup is never part of one, and
# refusing it keeps our echo from ever carrying a page into someone's browser.
MAX_VALIDATION_TOKEN = 1024
VALIDATION_TOKEN = re.compile(r"^[\x20-\x7e]+$")
CHANGE_TYPES = {"created", "updated", "deleted"}
LIFECYCLE_EVENTS = {"reauthorizationRequired", "subscriptionRemoved", "missed"}
# Graph's subscription ids are GUIDs; checking the shape keeps anything else (``/ \\ # ?``,
# megabytes) from ever reaching a Table key or a log line.
SUBSCRIPTION_ID = re.compile(r"^[0-9A-Fa-f]{8}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{12}$")
# Distinct subscriptions kept per POST. Graph puts several subscriptions' notifications in one
# POST, more as a tenant grows: the webhook looks up the first ones while Graph waits and holds
# the rest for a queue (``shared.sync.held_notifications``), since a notification dropped waits
# for the member's daily full round (the sweep checks healthy webhooks only). A 1 MB POST holds
# about 5,000 entries; beyond this many, one POST is not Graph's.
MAX_SUBSCRIPTIONS_PER_POST = 1000
# Items remembered per subscription and POST (to tell our own writes' echoes from changes):
# beyond this many, the POST is taken as a change to look at, as before.
MAX_ITEMS_PER_SUBSCRIPTION = 12
MAX_ITEM_ID = 512
ETAG = re.compile(r'^W/"([^"]{1,256})"$')
N = TypeVar("N", bound=BaseModel)
log = logging.getLogger(__name__)


class Dropped(StrEnum):
    """Why an entry was dropped before any lookup (counted, never logged one by one)."""

    MALFORMED_ID = "subscription id not a GUID"
    BAD_CLIENT_STATE = "clientState missing or oversized"
    DUPLICATE = "duplicate"
    OVER_CAP = "over the per-POST cap"


@dataclass(frozen=True)
class Screened(Generic[N]):
    """The entries of one POST worth a lookup (one per subscription and clientState, in
    order), how many the POST carried, and why the others were dropped."""

    notifications: list[N]
    received: int
    dropped: Counter[Dropped] = field(default_factory=Counter)

    def summary(self) -> str:
        dropped = ", ".join(f"{count} {reason.value}" for reason, count in sorted(self.dropped.items()))
        return f"{self.received} received, {len(self.notifications)} kept; dropped: {dropped or 'none'}"


class NotificationRejected(ValueError):
    """The POST is not a Graph notification (answer 400; change nothing)."""


def new_client_state() -> str:
    """A fresh secret for a subscription's ``clientState`` (at most 128 characters)."""
    return secrets.token_urlsafe(48)


def validation_token(query: Mapping[str, str]) -> str | None:
    """The token to echo if this POST is a validation request, else None.

    Frameworks hand query values over already URL-decoded, which is what Graph wants back.
    """
    token = query.get("validationToken")
    return token if token else None


def validation_request(query: Mapping[str, str], body: bytes) -> str | None:
    """The token to echo when this POST is Graph's validation handshake, None when it is no
    handshake; NotificationRejected when it claims to be one but is not in Graph's shape
    (a body, an empty, huge or non-printable token, markup)."""
    if "validationToken" not in query:
        return None
    token = query["validationToken"]
    if body.strip():
        raise NotificationRejected("a validation request carries no body")
    if not token or len(token) > MAX_VALIDATION_TOKEN or not VALIDATION_TOKEN.fullmatch(token) or set("<>") & set(token):
        raise NotificationRejected("the validationToken is not one Graph sends")
    return token


def _entries(body: bytes | str | Mapping[str, Any]) -> list[Any]:
    if isinstance(body, bytes | str):
        if len(body) > MAX_BODY_BYTES:
            raise NotificationRejected("notification body too large")
        try:
            body = json.loads(body)
        except (ValueError, RecursionError) as error:  # RecursionError: nesting deeper than the parser goes
            raise NotificationRejected("notification body is not JSON") from error
    if not isinstance(body, Mapping) or not isinstance(body.get("value"), list):
        raise NotificationRejected('a notification body is {"value": [...]}')
    return list(body["value"])


def _drop_reason(entry: Mapping[str, Any], kept: Mapping[tuple[str, str], Any]) -> Dropped | None:
    subscription_id, client_state = entry["subscriptionId"], entry.get("clientState")
    if not SUBSCRIPTION_ID.fullmatch(subscription_id):
        return Dropped.MALFORMED_ID
    if not isinstance(client_state, str) or not client_state or len(client_state) > MAX_CLIENT_STATE:
        return Dropped.BAD_CLIENT_STATE
    if (subscription_id, client_state) in kept:
        return Dropped.DUPLICATE
    if len(kept) >= MAX_SUBSCRIPTIONS_PER_POST:
        return Dropped.OVER_CAP
    return None


def _screen(body: bytes | str | Mapping[str, Any], model: type[N], event_field: str, events: set[str]) -> Screened[N]:
    """Refuse a POST not in Graph's shape (NotificationRejected); drop, and count, the
    entries that name no subscription of ours or repeat one; validate the rest."""
    entries = _entries(body)
    kept: dict[tuple[str, str], Mapping[str, Any]] = {}
    items: dict[tuple[str, str], list[ItemChange] | None] = {}
    dropped: Counter[Dropped] = Counter()
    for entry in entries:
        if not isinstance(entry, Mapping):
            raise NotificationRejected(f"a {model.__name__} is a JSON object")
        event = entry.get(event_field)
        if not isinstance(event, str) or event not in events:
            raise NotificationRejected(f"unknown {event_field} {untrusted(event, 40)!r}")
        if not isinstance(entry.get("subscriptionId"), str):
            raise NotificationRejected(f"a {model.__name__} names its subscriptionId")
        reason = _drop_reason(entry, kept)
        if reason is not None and reason is not Dropped.DUPLICATE:
            dropped[reason] += 1
            continue
        key = (entry["subscriptionId"], entry["clientState"])
        if reason is None:
            kept[key], items[key] = entry, []
        else:
            dropped[reason] += 1
        named = items[key]
        items[key] = [*named, _item_change(entry, event)] if named is not None and len(named) < MAX_ITEMS_PER_SUBSCRIPTION else None
    try:
        notifications = [model.model_validate(entry) for entry in kept.values()]
    except ValidationError as error:
        raise NotificationRejected(f"not a {model.__name__}: {error.error_count()} problem(s)") from error
    if model is ChangeNotification:  # the items named, from the screening only (never from the wire)
        notifications = [n.naming(None if named is None else tuple(named))  # type: ignore[attr-defined]
                         for n, named in zip(notifications, items.values(), strict=True)]
    return Screened(notifications, len(entries), dropped)


def _item_change(entry: Mapping[str, Any], change_type: str) -> ItemChange:
    """What an entry says of its item, where it is in Graph's shape (else left out)."""
    data = entry.get("resourceData")
    data = data if isinstance(data, Mapping) else {}
    item_id, etag = data.get("id"), data.get("@odata.etag")
    version = ETAG.match(etag) if isinstance(etag, str) else None
    return ItemChange(change_type=change_type,
                      item_id=item_id if isinstance(item_id, str) and 0 < len(item_id) <= MAX_ITEM_ID else None,
                      change_key=version.group(1) if version else None)


def screen_change_notifications(body: bytes | str | Mapping[str, Any]) -> Screened[ChangeNotification]:
    return _screen(body, ChangeNotification, "changeType", CHANGE_TYPES)


def screen_lifecycle_notifications(body: bytes | str | Mapping[str, Any]) -> Screened[LifecycleNotification]:
    return _screen(body, LifecycleNotification, "lifecycleEvent", LIFECYCLE_EVENTS)


def _worth_a_lookup(screened: Screened[N], kind: str) -> list[N]:
    # One line for the whole POST, never one per entry: a hostile POST carries 10,000.
    if screened.dropped:
        log.warning("graph %s notifications screened: %s", kind, screened.summary())
    return screened.notifications


def parse_change_notifications(body: bytes | str | Mapping[str, Any]) -> list[ChangeNotification]:
    """The screened change notifications of a POST (``screen_change_notifications``)."""
    return _worth_a_lookup(screen_change_notifications(body), "change")


def parse_lifecycle_notifications(body: bytes | str | Mapping[str, Any]) -> list[LifecycleNotification]:
    """The screened lifecycle notifications of a POST (``screen_lifecycle_notifications``)."""
    return _worth_a_lookup(screen_lifecycle_notifications(body), "lifecycle")


def client_state_matches(received: str | None, expected: str | None) -> bool:
    if not received or not expected or len(received) > MAX_CLIENT_STATE:
        return False
    return hmac.compare_digest(received.encode(), expected.encode())


def authentic(notifications: list[N], expected_client_state: Callable[[str], str | None]) -> list[N]:
    """The notifications whose ``clientState`` is the one we stored for their subscription.

    ``expected_client_state(subscription_id)`` returns what we stored, or None for a
    subscription we do not know (its notifications are dropped too).
    """
    return [n for n in notifications
            if client_state_matches(getattr(n, "client_state", None), expected_client_state(n.subscription_id))]  # type: ignore[attr-defined]
