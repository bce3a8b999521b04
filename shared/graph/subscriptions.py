"""Change-notification subscriptions on our calendar's events and our folder's contacts.

Graph checks the endpoint before it answers the create (the validation handshake, see
``notifications.validation_token``), so the webhook function must be up first. Outlook
subscriptions live at most 10,080 minutes (graph-notes §7); we ask for a little less, so a
clock ahead of Graph's does not get the create refused, and a timer renews them before then.
Subscription calls are not Outlook mailbox calls, so they do not take the mailbox's gate.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

from shared.graph.batch import GraphRequest
from shared.graph.container import segment
from shared.graph.errors import GraphError, ItemNotFound, OutcomeUnknown
from shared.graph.mailbox import GraphMailbox
from shared.graph.models import Subscription

MAX_LIFETIME = timedelta(minutes=10_080)  # Outlook event, contact (change-notifications-subscription-lifetime)
DEFAULT_LIFETIME = MAX_LIFETIME - timedelta(minutes=60)  # room for clock skew
ALL_CHANGES = ("created", "updated", "deleted")


class SubscriptionGone(ItemNotFound):
    """The subscription no longer exists (expired, removed, or deleted): create a new one."""


class EndpointNotValidated(GraphError):
    """Graph refused the create because our notification URL did not answer its validation
    request (graph-notes §7: 400 InvalidRequest, "Subscription validation request failed"):
    our endpoint was down or slow (a deployment, a cold start, an instance restarting), a
    passing failure of ours, not the member's. Graph gives it no code of its own, so this is
    the one place that reads a message."""


def calendar_events_resource(user: str, calendar_id: str) -> str:
    """Events of one calendar (``users/{id}/events`` would only cover the default calendar)."""
    return f"users/{user}/calendars/{calendar_id}/events"


def folder_contacts_resource(user: str, folder_id: str) -> str:
    return f"users/{user}/contactFolders/{folder_id}/contacts"


def _expiry(lifetime: timedelta) -> str:
    lifetime = min(lifetime, DEFAULT_LIFETIME)
    return (datetime.now(UTC) + lifetime).strftime("%Y-%m-%dT%H:%M:%S.0000000Z")


class SubscriptionClient:
    """Subscriptions for one mailbox's sync containers."""

    def __init__(self, mailbox: GraphMailbox) -> None:
        self.mailbox = mailbox

    def create(self, resource: str, *, notification_url: str, lifecycle_url: str, client_state: str,
               change_types: Sequence[str] = ALL_CHANGES, lifetime: timedelta = DEFAULT_LIFETIME) -> Subscription:
        """Subscribe to ``resource``. A create whose answer was lost is found again by resource,
        URL and clientState rather than made twice."""
        body = {
            "changeType": ",".join(change_types), "resource": resource, "notificationUrl": notification_url,
            "lifecycleNotificationUrl": lifecycle_url, "clientState": client_state,
            "expirationDateTime": _expiry(lifetime), "latestSupportedTlsVersion": "v1_2",
        }
        try:
            response = self.mailbox.send(GraphRequest(method="POST", url="/subscriptions", body=body, repeatable=False),
                                         gated=False)
        except OutcomeUnknown:
            existing = self._find(resource, notification_url, client_state)
            if existing is None:
                raise
            return existing
        if not response.ok:
            error = response.error()
            if response.status == 400 and "validation" in error.message.lower():
                raise EndpointNotValidated(error.status, error.code, error.message, error.request_id)
            raise error
        return Subscription.model_validate(response.body)

    def subscribe_calendar(self, calendar_id: str, *, notification_url: str, lifecycle_url: str, client_state: str,
                           lifetime: timedelta = DEFAULT_LIFETIME) -> Subscription:
        """Created, updated and deleted events of our calendar (SPEC R3.3)."""
        return self.create(calendar_events_resource(self.mailbox.user, calendar_id), notification_url=notification_url,
                           lifecycle_url=lifecycle_url, client_state=client_state, lifetime=lifetime)

    def subscribe_contacts(self, folder_id: str, *, notification_url: str, lifecycle_url: str, client_state: str,
                           lifetime: timedelta = DEFAULT_LIFETIME) -> Subscription:
        """Created, updated and deleted contacts of our folder (SPEC R4.4)."""
        return self.create(folder_contacts_resource(self.mailbox.user, folder_id), notification_url=notification_url,
                           lifecycle_url=lifecycle_url, client_state=client_state, lifetime=lifetime)

    def renew(self, subscription_id: str, lifetime: timedelta = DEFAULT_LIFETIME) -> Subscription:
        """Push the expiry out (also what a ``reauthorizationRequired`` lifecycle event asks for)."""
        response = self.mailbox.send(GraphRequest(method="PATCH", url=f"/subscriptions/{segment(subscription_id)}",
                                                  body={"expirationDateTime": _expiry(lifetime)}), gated=False)
        if response.status == 404:
            raise SubscriptionGone(404, response.error().code, f"subscription {subscription_id} is gone",
                                   response.request_id)
        if not response.ok:
            raise response.error()
        return Subscription.model_validate(response.body)

    def delete(self, subscription_id: str) -> bool:
        """Delete; False if it was already gone."""
        response = self.mailbox.send(GraphRequest(method="DELETE", url=f"/subscriptions/{segment(subscription_id)}"),
                                     gated=False)
        if response.status == 404:
            return False
        if not response.ok:
            raise response.error()
        return True

    def _find(self, resource: str, notification_url: str, client_state: str) -> Subscription | None:
        response = self.mailbox.send(GraphRequest(method="GET", url="/subscriptions"), gated=False)
        if not response.ok:
            return None
        for value in response.json_object().get("value") or []:
            sub = Subscription.model_validate(value)
            if (sub.resource.strip("/").lower() == resource.strip("/").lower()
                    and sub.notification_url == notification_url and sub.client_state == client_state):
                return sub
        return None
