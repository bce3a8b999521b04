"""The two remote sides as the sync's steps read them, in memory, for the fast tests of the
runner and the service (issue 17 §2): the CRM's listing (pages, changes since a time, the
deleted list) over the World's CRM store, and our Outlook container with its delta rounds
over the World's Outlook store. Held to the same contract as ``CrmRecords`` on the CRM
emulator and ``ContactsOutlook`` on the Microsoft 365 emulator by
``tests/integration/sync_port_contracts.py`` (``crm_listing``, ``outlook_side``).

``PlainRules`` is the kind they carry: a record's and an item's fields are the canonical
fields themselves (``subject``, ``email``); the real kinds' mappings have their own tests."""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from pydantic import JsonValue

from shared.crm.errors import CrmError
from shared.crm.models import DeletedRecord
from shared.crm.records import ListCursor, ListCursorExpired, ListQuery, RecordPage
from shared.crm.watch import WatchChannel
from shared.graph.delta import DeltaPage
from shared.graph.errors import GraphError
from shared.graph.models import Removed, Subscription
from shared.graph.subscriptions import EndpointNotValidated, SubscriptionGone
from shared.graph.sync_errors import ContactFolderGone, ItemNotFound
from shared.sync import ItemSeen
from shared.sync.kind import CRM_MARKER_FIELD, KindRules
from tests.sync_world import NORMALISATION, CrmInMemory, Item, OutlookInMemory, WrittenItem

FIELDS = ("subject", "email")


def _number(item_id: str) -> int:
    return int(item_id.rsplit("-", 1)[1])


class PlainRules(KindRules):
    name = "contacts"
    crm_module = "Contacts"
    container_name = "Zoho CRM Contacts"
    normalisation = NORMALISATION
    initial_cap = 10_000
    scan_fields = ("Modified_Time",)

    @property
    def crm_fields(self) -> tuple[str, ...]:
        return (*FIELDS, "Modified_Time", "Owner", CRM_MARKER_FIELD)

    def crm_label(self, record: Mapping[str, Any]) -> str:
        return str(record.get("subject") or "")

    def crm_to_seen(self, record: dict[str, Any]) -> ItemSeen:
        return ItemSeen(
            item_id=str(record["id"]), version=str(record["$version"]),
            fields={k: record[k] for k in FIELDS if record.get(k) is not None},
            modified_at=datetime.fromisoformat(str(record["Modified_Time"])),
            partner_id=self.partner_named_by(record.get(CRM_MARKER_FIELD)), excluded=self.excluded(record),
            label=str(record.get("subject") or ""),
        )

    def outlook_to_seen(self, item: dict[str, Any], marker: str | None,
                        instances: Sequence[dict[str, Any]] = ()) -> ItemSeen:
        return ItemSeen(
            item_id=str(item["id"]), version=str(item["changeKey"]),
            fields={k: item[k] for k in FIELDS if item.get(k) is not None},
            modified_at=datetime.fromisoformat(str(item["lastModifiedDateTime"])),
            partner_id=self.partner_named_by(marker), label=str(item.get("subject") or ""),
        )

    def to_crm(self, fields: Mapping[str, JsonValue], merged: Mapping[str, JsonValue] | None) -> dict[str, Any]:
        return dict(fields)

    def to_outlook(self, fields: Mapping[str, JsonValue], merged: Mapping[str, JsonValue] | None) -> dict[str, Any]:
        return dict(fields)

    def initial_key(self, record: dict[str, Any]) -> list[Any]:
        return [_number(str(record["id"]))]

    def excluded(self, record: dict[str, Any]) -> str | None:
        owner = record.get("Owner")
        return None if isinstance(owner, dict) and owner.get("id") == self.owner_id else "not_owner"

    @staticmethod
    def label_of(fields: Mapping[str, JsonValue]) -> str:
        return str(fields.get("subject") or "")


@dataclass
class CrmListing(CrmInMemory):
    """The CRM store as ``CrmRecords`` lists it: by id, ``per_page`` a page, the owner filter
    applied after the page is read (``listed`` counts before it), changes strictly after
    ``modified_since``, and the deleted list newest first."""

    owner: str = "owner"
    per_page: int = 3
    owners: dict[str, str] = field(default_factory=dict)  # records someone else owns
    expired_tokens: int = 0  # test knob: the next page tokens the CRM answers as expired (a long pause)
    broken: Exception | None = None  # test knob: what every listing raises (the CRM failing for good)

    def record(self, item_id: str, item: Item) -> dict[str, Any]:
        return {"id": item_id, **item.fields, "Modified_Time": item.modified_at.isoformat(), "$version": item.version,
                CRM_MARKER_FIELD: item.marker, "Owner": {"id": self.owners.get(item_id, self.owner)}}

    def pages(self, start: ListQuery | ListCursor) -> Iterator[RecordPage]:
        cursor: ListCursor | None = start if isinstance(start, ListCursor) else ListCursor(query=start)
        while cursor is not None:
            page = self._page(cursor)
            if page is None:
                return
            yield page
            cursor = page.next

    def _page(self, cursor: ListCursor) -> RecordPage | None:
        if self.broken is not None:
            raise self.broken
        query = cursor.query
        if cursor.page_token is not None and self.expired_tokens:
            self.expired_tokens -= 1
            raise ListCursorExpired(400, "INVALID_DATA", "the saved listing cursor expired; start again")
        number = cursor.page or int(str(cursor.page_token).split(":")[1])
        matching = [(i, item) for i, item in sorted(self.store.items.items(), key=lambda pair: _number(pair[0]))
                    if query.modified_since is None or item.modified_at > query.modified_since]
        chunk = matching[(number - 1) * self.per_page:number * self.per_page]
        if not chunk and number == 1:
            return None  # the CRM's 204 (or 304 with If-Modified-Since)
        more = number * self.per_page < len(matching)
        records = [self.record(i, item) for i, item in chunk]
        if query.owner_id is not None:
            records = [r for r in records if r["Owner"]["id"] == query.owner_id]
        following = ListCursor(query=query, page=None, page_token=f"page:{number + 1}") if more else None
        return RecordPage(records=records, listed=len(chunk), next=following)

    def changed_since(self, query: ListQuery) -> Iterator[dict[str, Any]]:
        for page in self.pages(query):
            yield from page.records

    def by_ids(self, module: str, ids: Sequence[str], fields: Sequence[str]) -> dict[str, dict[str, Any]]:
        if self.broken is not None:
            raise self.broken
        return {i: self.record(i, self.store.items[i]) for i in ids if i in self.store.items}

    def deleted(self, module: str, *, since: datetime | None = None, kind: str = "all") -> Iterator[DeletedRecord]:
        gone = sorted(((at, i) for i, at in self.store.deleted_at.items() if i not in self.store.items
                       and (since is None or at > since)), reverse=True)
        for at, item_id in gone:
            yield DeletedRecord(id=item_id, type="recycle", deleted_time=at.isoformat())


@dataclass(frozen=True)
class GraphItem:
    """An item as Graph returns it; ``marker`` only when read with our property expanded
    (a delta round never returns it)."""

    id: str
    change_key: str
    fields: dict[str, JsonValue]
    modified_at: datetime
    marker: str | None = None

    def to_graph(self) -> dict[str, Any]:
        return {"id": self.id, "changeKey": self.change_key, "lastModifiedDateTime": self.modified_at.isoformat(),
                **self.fields}


@dataclass
class OutlookSideInMemory(OutlookInMemory):
    """Our container over the Outlook store: ``OutlookSide``. Delta links are log positions
    (an item's id carries the position it was made at); a round lists ``per_page`` items a
    page; a deleted container answers ContainerGone."""

    rules: KindRules = field(default_factory=lambda: PlainRules("owner", None))
    per_page: int = 4
    gone: bool = False
    delta_reads: int = 0
    refused: bool = False  # test knob: Graph refuses the app this mailbox (403 ErrorAccessDenied)
    failing_writes: int = 0  # test knob: the next N batches of creates or updates answer 503 for each item

    def _failing(self, count: int) -> list[Any] | None:
        if self.failing_writes <= 0:
            return None
        self.failing_writes -= 1
        return [GraphError(503, "ServiceUnavailable", "The service is temporarily unavailable.") for _ in range(count)]

    def _alive(self, container_id: str) -> None:
        if self.refused:
            raise GraphError(403, "ErrorAccessDenied", "Access is denied. Check credentials and try again.")
        if self.gone:
            raise ContactFolderGone(container_id)

    def _each(self, container_id: str, count: int) -> list[Any] | None:
        """Batch answers for a gone container: each item's own ContainerGone (as Graph's 404s are read)."""
        if self.refused:
            raise GraphError(403, "ErrorAccessDenied", "Access is denied. Check credentials and try again.")
        return [ContactFolderGone(container_id) for _ in range(count)] if self.gone else None

    def ensure_container(self, name: str) -> Any:
        self.gone = False
        return super().ensure_container(name)

    def delete_container(self, container_id: str) -> bool:
        """Its items go with it (no delta will report them: the container is gone)."""
        self.gone = True
        self.store.items.clear()
        return True

    def _item(self, item_id: str, *, marked: bool) -> GraphItem:
        item = self.store.items[item_id]
        return GraphItem(item_id, item.version, dict(item.fields), item.modified_at, item.marker if marked else None)

    def get_items(self, container_id: str, item_ids: Sequence[str]) -> list[Any]:
        if (gone := self._each(container_id, len(item_ids))) is not None:
            return gone
        return [self._item(i, marked=True) if i in self.store.items else ItemNotFound(404, "ErrorItemNotFound", "gone")
                for i in item_ids]

    def create_items(self, container_id: str, drafts: Sequence[Any]) -> list[WrittenItem | GraphError]:
        if (gone := self._each(container_id, len(drafts)) or self._failing(len(drafts))) is not None:
            return gone
        return super().create_items(container_id, drafts)

    def update_items(self, container_id: str, changes: Sequence[tuple[str, dict[str, Any]]], *,
                     if_match: Sequence[str | None] | None = None) -> list[WrittenItem | GraphError]:
        if (gone := self._each(container_id, len(changes)) or self._failing(len(changes))) is not None:
            return gone
        return super().update_items(container_id, changes, if_match=if_match)

    def delete_items(self, container_id: str, item_ids: Sequence[str]) -> list[bool | GraphError]:
        if (gone := self._each(container_id, len(item_ids))) is not None:
            return gone
        return super().delete_items(container_id, item_ids)

    def seen(self, item: GraphItem, instances: Sequence[Any] = ()) -> ItemSeen:
        return self.rules.outlook_to_seen(item.to_graph(), item.marker)

    def delta_pages(self, container_id: str, resume: str | None) -> Iterator[DeltaPage[Any]]:
        self._alive(container_id)
        self.delta_reads += 1
        since, skip = 0, 0
        if resume is not None:
            kind, *numbers = resume.split(":")
            since, skip = int(numbers[0]), int(numbers[1]) if kind == "next" else 0
        top = max(self.store.log.values(), default=0)
        if resume is None:  # a new round lists what exists, and reports nothing removed
            entries = [i for i in sorted(self.store.items, key=_number)]
        else:
            entries = [i for i, number in self.store.log.items() if number > since]
        entries = entries[skip:]
        for start in range(0, max(len(entries), 1), self.per_page):
            chunk = entries[start:start + self.per_page]
            last = start + self.per_page >= len(entries)
            yield DeltaPage(
                changed=[self._item(i, marked=False) for i in chunk if i in self.store.items],
                # Graph reports the removal of what its round state knew: an item made after the
                # round's read and gone before the next one may never be reported (the emulator's
                # reading, and the worst case the sync must hold against).
                removed=[Removed(id=i) for i in chunk if i not in self.store.items and _number(i) < since],
                next_link=None if last else f"next:{since}:{skip + start + self.per_page}",
                delta_link=f"delta:{top}" if last else None,
            )

    def read_series(self, container_id: str, master_ids: list[str]) -> tuple[list[ItemSeen], list[str]]:
        return [], []

    def outside_window(self, container_id: str) -> list[ItemSeen]:
        return []


@dataclass
class CrmChannelsInMemory:
    """The org's CRM watch channels (``CrmChannels``): enabled (again: replaced), renewed,
    disabled; ``calls`` counts what was asked of the CRM."""

    clock: Any
    channels: dict[str, WatchChannel] = field(default_factory=dict)
    calls: int = 0

    def enable(self, module: str, notify_url: str, *, channel_id: str | None = None,
               token: str | None = None) -> WatchChannel:
        self.calls += 1
        channel = WatchChannel(channel_id=channel_id or str(len(self.channels) + 1_000_000), events=[f"{module}.all"],
                               notify_url=notify_url, token=token or f"token-{len(self.channels)}",
                               expires_at=self.clock.now() + timedelta(days=6, hours=23))
        self.channels[channel.channel_id] = channel
        return channel

    def renew(self, channel_id: str) -> datetime:
        self.calls += 1
        if channel_id not in self.channels:
            raise CrmError(400, "INVALID_DATA", "the given channel_id is invalid")
        expires = self.clock.now() + timedelta(days=6, hours=23)
        self.channels[channel_id] = self.channels[channel_id].model_copy(update={"expires_at": expires})
        return expires

    def disable(self, channel_ids: list[str]) -> None:
        self.calls += 1
        for channel_id in channel_ids:
            self.channels.pop(channel_id, None)


@dataclass
class SubscriptionsInMemory:
    """Graph subscriptions on the member's containers (``OutlookSubscriptions``)."""

    clock: Any
    container_exists: Callable[[str], bool] = lambda container_id: True
    subscriptions: dict[str, Subscription] = field(default_factory=dict)
    _ids: itertools.count = field(default_factory=lambda: itertools.count(1))
    endpoint_up: bool = True  # False: our webhook does not answer Graph's validation request
    attempts: int = 0

    def _create(self, resource: str, notification_url: str, lifecycle_url: str, client_state: str) -> Subscription:
        self.attempts += 1
        if not self.container_exists(resource.split("/")[1]):
            raise GraphError(404, "ResourceNotFound", f"{resource} does not exist")
        if not self.endpoint_up:
            raise EndpointNotValidated(400, "InvalidRequest", "Subscription validation request failed. Notification endpoint "
                                                              "must respond with 200 OK to validation request.")
        made = Subscription(id=f"sub-{next(self._ids)}", resource=resource, change_type="created,updated,deleted",
                            notification_url=notification_url, lifecycle_notification_url=lifecycle_url,
                            client_state=client_state, expiration_date_time=self.clock.now() + timedelta(days=6, hours=23))
        self.subscriptions[made.id] = made
        return made

    def subscribe_calendar(self, calendar_id: str, *, notification_url: str, lifecycle_url: str, client_state: str) -> Subscription:
        return self._create(f"calendars/{calendar_id}/events", notification_url, lifecycle_url, client_state)

    def subscribe_contacts(self, folder_id: str, *, notification_url: str, lifecycle_url: str, client_state: str) -> Subscription:
        return self._create(f"contactFolders/{folder_id}/contacts", notification_url, lifecycle_url, client_state)

    def renew(self, subscription_id: str) -> Subscription:
        if subscription_id not in self.subscriptions:
            raise SubscriptionGone(404, "ResourceNotFound", f"subscription {subscription_id} is gone")
        renewed = self.subscriptions[subscription_id].model_copy(
            update={"expiration_date_time": self.clock.now() + timedelta(days=6, hours=23)})
        self.subscriptions[subscription_id] = renewed
        return renewed

    def delete(self, subscription_id: str) -> bool:
        return self.subscriptions.pop(subscription_id, None) is not None


class WallClock:
    """The real time, for fakes held to contracts against the emulators."""

    def now(self) -> datetime:
        return datetime.now(UTC)
