"""The sync's ports (issue 17 §2): what the executor and the runner need of the Outlook side,
the CRM side, the link store and the conflict log, as typed protocols.

The production adapters are ``shared.graph`` (``CalendarClient``, ``ContactsClient``),
``shared.crm.records.CrmRecords``, ``shared.sync.link_store.LinkStore`` and
``shared.sync.conflicts.ConflictStore``. The in-memory ones of the fast tests
(``tests/sync_world.py``) are held to the same contract by
``tests/integration/test_sync_ports.py``, which runs one set of assertions against both
(the emulators and Azurite on one side, memory on the other): a fake that drifted from the
real thing fails there, not silently in the tests that trust it.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Iterator, Sequence
from datetime import datetime
from typing import Any, Protocol

from shared.crm.models import DeletedRecord, Module, WriteResult
from shared.crm.records import ListCursor, ListQuery, RecordPage
from shared.crm.watch import WatchChannel
from shared.graph.container import ItemDraft
from shared.graph.errors import GraphError
from shared.graph.models import Subscription
from shared.sync.actions import Conflict
from shared.sync.links import InitialProgress, InitialState, LinkRow


class OutlookItem(Protocol):
    """An item as Graph returns it: its id and its version (``changeKey``)."""

    @property
    def id(self) -> str: ...
    @property
    def change_key(self) -> str | None: ...


class OutlookItems(Protocol):
    """Our container in the member's mailbox (calendar or contact folder), written in
    batches: every result is in input order, an item or that item's ``GraphError``; an update
    whose ``if_match`` change key is no longer the item's is a ``GraphError`` with status 412."""

    def ensure_container(self, name: str) -> Any: ...
    def delete_container(self, container_id: str) -> bool: ...
    def create_items(self, container_id: str, drafts: Sequence[ItemDraft]) -> Sequence[Any]: ...
    def update_items(self, container_id: str, changes: Sequence[tuple[str, dict[str, Any]]], *,
                     if_match: Sequence[str | None] | None = None) -> Sequence[Any]: ...
    def delete_items(self, container_id: str, item_ids: Sequence[str]) -> Sequence[bool | GraphError]: ...
    def find_items_by_crm_id(self, container_id: str, crm_id: str) -> Sequence[Any]: ...
    def get_items(self, container_id: str, item_ids: Sequence[str]) -> Sequence[Any]: ...


class CrmRecordWrites(Protocol):
    """The CRM's records as the executor writes them: one ``WriteResult`` per record, in input
    order; a delete of an id the CRM does not know is an error with code ``INVALID_DATA``; an
    update of a record changed after ``unmodified_since`` is an error with code ``ALREADY_MODIFIED``.
    ``with_field_values`` finds records changed since a time by a field's value (our marker:
    a create that may have happened before a crash)."""

    def insert(self, module: Module, records: Sequence[dict[str, Any]]) -> list[WriteResult]: ...
    def update(self, module: Module, records: Sequence[dict[str, Any]], *,
               unmodified_since: datetime | None = None) -> list[WriteResult]: ...
    def delete(self, module: Module, ids: Sequence[str]) -> list[WriteResult]: ...
    def with_field_values(self, module: Module, field: str, values: Collection[str], *,
                          modified_since: datetime) -> dict[str, dict[str, Any]]: ...


class CrmRecordReads(Protocol):
    """The CRM's records as the steps read them: pages of a listing (from its start or a
    saved cursor; none at all when nothing matches), the records changed after a time, the
    deleted list (newest first; an entry may come twice, never skipped), and records by id
    (keyed by id; those the CRM no longer has are absent)."""

    def pages(self, start: ListQuery | ListCursor) -> Iterator[RecordPage]: ...
    def changed_since(self, query: ListQuery) -> Iterator[dict[str, Any]]: ...
    def deleted(self, module: Module, *, since: datetime | None = None) -> Iterator[DeletedRecord]: ...
    def by_ids(self, module: Module, ids: Sequence[str], fields: Sequence[str]) -> dict[str, dict[str, Any]]: ...


class CrmRecordPort(CrmRecordWrites, CrmRecordReads, Protocol):
    """The CRM side of a member's sync: ``shared.crm.records.CrmRecords``."""


class CrmChannels(Protocol):
    """The CRM's watch channels, reached as a member (``shared.crm.watch.CrmWatch``): a
    module's changes called back to our webhook, renewed before they expire, disabled with
    the last sync. Enabling a given channel id again replaces that channel."""

    def enable(self, module: Module, notify_url: str, *, channel_id: str | None = None,
               token: str | None = None) -> WatchChannel: ...
    def renew(self, channel_id: str) -> datetime: ...
    def disable(self, channel_ids: list[str]) -> None: ...


class OutlookSubscriptions(Protocol):
    """Graph subscriptions on a member's container (``shared.graph.subscriptions.SubscriptionClient``);
    ``renew`` raises ``SubscriptionGone`` for one Graph no longer has, ``delete`` answers False."""

    def subscribe_calendar(self, calendar_id: str, *, notification_url: str, lifecycle_url: str,
                           client_state: str) -> Subscription: ...
    def subscribe_contacts(self, folder_id: str, *, notification_url: str, lifecycle_url: str,
                           client_state: str) -> Subscription: ...
    def renew(self, subscription_id: str) -> Subscription: ...
    def delete(self, subscription_id: str) -> bool: ...


class LinkRows(Protocol):
    """The member's link rows of one kind and generation (a partition)."""

    def load(self, partition: str, *, crm_ids: Iterable[str] = (), outlook_ids: Iterable[str] = (),
             every: list[LinkRow] | None = None) -> list[LinkRow]: ...
    def names_any(self, partition: str, crm_ids: Iterable[str], *, pairs: int | None = None) -> bool: ...
    def pending(self, partition: str) -> list[LinkRow]: ...
    def all(self, partition: str) -> list[LinkRow]: ...
    def series_outlook_ids(self, partition: str) -> list[str]: ...
    def write(self, partition: str, rows: Sequence[tuple[LinkRow | None, LinkRow]]) -> None: ...
    def forget(self, partition: str, rows: Sequence[LinkRow]) -> None: ...
    def purge(self, partition: str) -> int: ...
    # The initial sync's selection and progress, read together; the progress committed with
    # the link rows it counts (``shared.sync.link_store``).
    def initial_state(self, partition: str) -> InitialState: ...
    def select(self, partition: str, ids: Sequence[str], progress: InitialProgress, *, replacing: InitialState) -> None: ...
    def commit(self, partition: str, rows: Sequence[LinkRow], progress: InitialProgress) -> None: ...


class ConflictLog(Protocol):
    """Conflicts the member sees, one per conflict id (recording one twice is one)."""

    def record(self, partition: str, conflicts: list[Conflict]) -> None: ...
    def recent(self, partition: str, limit: int = 20) -> Sequence[Any]: ...
    def purge(self, partition: str) -> None: ...
