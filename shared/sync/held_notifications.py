"""Graph notifications held for a queue: the change notifications of a POST beyond the
subscriptions the webhook looks up while Graph waits, and every lifecycle notification.

Graph wants an answer within 3 seconds (a slower endpoint has its notifications delayed, then
dropped) and batches several subscriptions' notifications per POST, more as a tenant grows.
Each subscription costs the webhook a route lookup and, for a change, the member's mark: the
first ``LOOKED_UP_WHILE_GRAPH_WAITS`` are looked up at once (several at a time), the rest go to
the ``graph-notifications`` queue, which Graph's guidance allows ("202 if persisted for later").
Dropping them instead left those members' changes to their daily full round: the sweep no
longer gives members whose webhooks are healthy a round every 5 minutes (issue 20).

Lifecycle notifications (a subscription to reauthorize or make again, changes missed) cost Graph
calls each: all of them are acted on from the queue, the webhook only checking that the first
ones are ours; one about a subscription the member no longer has (the queue delivers late, and
may deliver twice) makes no new one. Held only when the POST's first part named a subscription of ours with its
secret: a forged POST cannot make us queue work.

A message holds what a queue message can (64 KB, base64): the subscription, its ``clientState``
as received (checked when the message is handled, as the webhook checks it) and the items the
POST named (our own writes' echoes are told from them).
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from typing import Literal

from pydantic import BaseModel, Field, field_validator

from shared.graph.models import ChangeNotification, ItemChange, LifecycleNotification
from shared.graph.notifications import MAX_CLIENT_STATE, MAX_ITEMS_PER_SUBSCRIPTION, SUBSCRIPTION_ID
from shared.observability import current_trace_parent, valid_trace_parent

GRAPH_NOTIFICATIONS_QUEUE = "graph-notifications"
LOOKED_UP_WHILE_GRAPH_WAITS = 100
# A message's JSON: base64 makes it 4/3 larger, and a queue message is at most 64 KB.
MESSAGE_BYTES = 40_000
NOTIFICATIONS_PER_MESSAGE = 100


class HeldNotification(BaseModel):
    """A change notification (``items``: what it named, None: too many or unknown), or a
    lifecycle one (``lifecycle_event``)."""

    subscription_id: str = Field(pattern=SUBSCRIPTION_ID.pattern)
    client_state: str = Field(min_length=1, max_length=MAX_CLIENT_STATE)
    items: list[ItemChange] | None = Field(default=None, max_length=MAX_ITEMS_PER_SUBSCRIPTION)
    lifecycle_event: Literal["reauthorizationRequired", "subscriptionRemoved", "missed"] | None = None

    @classmethod
    def of(cls, note: ChangeNotification | LifecycleNotification) -> HeldNotification:
        if isinstance(note, LifecycleNotification):
            return cls(subscription_id=note.subscription_id, client_state=note.client_state or "",
                       lifecycle_event=note.lifecycle_event)  # type: ignore[arg-type]  # screened: one of the three
        return cls(subscription_id=note.subscription_id, client_state=note.client_state or "",
                   items=None if note.item_changes is None else list(note.item_changes))


class HeldNotifications(BaseModel):
    version: int = 1
    notifications: list[HeldNotification] = Field(min_length=1, max_length=NOTIFICATIONS_PER_MESSAGE)
    traceparent: str | None = Field(default_factory=current_trace_parent)

    @field_validator("traceparent", mode="before")
    @classmethod
    def _valid_trace(cls, value: object) -> str | None:
        return valid_trace_parent(value)


def held_messages(notes: Sequence[HeldNotification]) -> Iterator[HeldNotifications]:
    """``notes`` as queue messages, each within ``MESSAGE_BYTES`` and 100 notifications."""
    batch: list[HeldNotification] = []
    size = 0
    for held in notes:
        length = len(json.dumps(held.model_dump(mode="json"), separators=(",", ":"))) + 1
        if batch and (size + length > MESSAGE_BYTES or len(batch) == NOTIFICATIONS_PER_MESSAGE):
            yield HeldNotifications(notifications=batch)
            batch, size = [], 0
        batch.append(held)
        size += length
    if batch:
        yield HeldNotifications(notifications=batch)
