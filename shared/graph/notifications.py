"""Reading what Graph POSTs to our webhooks (pure: no I/O), for the webhook functions.

- The validation handshake: Graph POSTs ``?validationToken=...``; we answer 200 text/plain
  with the token, URL-decoded, within 10 seconds (graph-notes §7).
- Change and lifecycle notifications: ``{"value": [...]}``; every entry whose ``clientState``
  is not the one we gave that subscription is dropped (Graph's guidance: ignore them), so a
  forged POST cannot make us sync. Compared in constant time.
"""

from __future__ import annotations

import hmac
import json
import re
import secrets
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from shared.graph.models import ChangeNotification, LifecycleNotification

MAX_BODY_BYTES = 1_000_000  # a notification POST is small; refuse to parse anything huge
MAX_CLIENT_STATE = 128
# Graph's tokens read "Validation: Testing client application reachability for subscription
# Request-Id: <guid>": printable ASCII, far below this. Markup is never part of one, and
# refusing it keeps our echo from ever carrying a page into someone's browser.
MAX_VALIDATION_TOKEN = 1024
VALIDATION_TOKEN = re.compile(r"^[\x20-\x7e]+$")
LIFECYCLE_EVENTS = {"reauthorizationRequired", "subscriptionRemoved", "missed"}
N = TypeVar("N", bound=BaseModel)


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
    if not token or len(token) > MAX_VALIDATION_TOKEN or not VALIDATION_TOKEN.match(token) or set("<>") & set(token):
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


def _parse(body: bytes | str | Mapping[str, Any], model: type[N]) -> list[N]:
    try:
        return [model.model_validate(entry) for entry in _entries(body)]
    except ValidationError as error:
        raise NotificationRejected(f"not a {model.__name__}: {error.error_count()} problem(s)") from error


def parse_change_notifications(body: bytes | str | Mapping[str, Any]) -> list[ChangeNotification]:
    notifications = _parse(body, ChangeNotification)
    for item in notifications:
        if item.change_type not in ("created", "updated", "deleted"):
            raise NotificationRejected(f"unknown changeType {item.change_type!r}")
    return notifications


def parse_lifecycle_notifications(body: bytes | str | Mapping[str, Any]) -> list[LifecycleNotification]:
    notifications = _parse(body, LifecycleNotification)
    for item in notifications:
        if item.lifecycle_event not in LIFECYCLE_EVENTS:
            raise NotificationRejected(f"unknown lifecycleEvent {item.lifecycle_event!r}")
    return notifications


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
