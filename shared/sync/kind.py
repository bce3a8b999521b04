"""What differs between calendar and contacts sync, behind two interfaces the steps use
(issue 8: "no second engine"; issue 17 §2):

- ``KindRules``, pure: the CRM module and fields, the container's name, the field mapping both
  ways, the normalisation, the scope filter, the initial sync's order, what a person calls an
  item, and the generation's markers. ``shared.sync.calendar_kind.CalendarRules`` and
  ``shared.sync.contacts_kind.ContactsRules``.
- ``OutlookSide``, the I/O: our container in the member's mailbox (``OutlookItems``), its
  delta pages, and what only a calendar has (series, occurrence writes, the window).
  ``shared.sync.outlook_side.CalendarOutlook`` and ``ContactsOutlook``.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, ClassVar, Protocol

from pydantic import JsonValue

from shared.sync import markers
from shared.sync.changes import ItemSeen
from shared.sync.fingerprint import Normalisation
from shared.sync.ports import OutlookItems

# The CRM field that carries the Outlook id of a synced record (our marker on the CRM side).
# In a real org this is a custom field the integration creates (single line, unique).
CRM_MARKER_FIELD = "Outlook_Id"


class KindRules(ABC):
    """One kind of item, for one member: every decision that needs no I/O."""

    name: ClassVar[str]  # "calendar" or "contacts"
    crm_module: ClassVar[str]  # "Events" or "Contacts"
    container_name: ClassVar[str]  # "Zoho CRM" or "Zoho CRM Contacts"
    normalisation: ClassVar[Normalisation]
    initial_cap: int  # R3.5: 5,000 events; R4.6: 10,000 contacts (smaller through configuration)
    scan_fields: ClassVar[tuple[str, ...]]  # what the initial sync's selection pass reads (keys, scope, names)

    def __init__(self, owner_id: str, generation: str | None, *, initial_cap: int | None = None) -> None:
        """``owner_id``: the member's CRM user id (R3.4, R4.5); ``generation``: the member's
        current Enable (markers of another one name no partner: ``shared.sync.markers``)."""
        self.owner_id = owner_id
        self.generation = generation
        if initial_cap is not None:
            self.initial_cap = initial_cap

    @property
    @abstractmethod
    def crm_fields(self) -> tuple[str, ...]:
        """The CRM fields a step lists (at most 50)."""

    @abstractmethod
    def crm_to_seen(self, record: dict[str, Any]) -> ItemSeen: ...

    @abstractmethod
    def outlook_to_seen(self, item: dict[str, Any], marker: str | None,
                        instances: Sequence[dict[str, Any]] = ()) -> ItemSeen:
        """``marker``: the CRM id our extended property carries (the Outlook side reads it);
        ``instances``: a series' exceptions (calendar)."""

    @abstractmethod
    def to_crm(self, fields: Mapping[str, JsonValue], merged: Mapping[str, JsonValue] | None) -> dict[str, Any]:
        """Body of a create (``merged`` None) or an update (changed fields, with the merged whole)."""

    @abstractmethod
    def to_outlook(self, fields: Mapping[str, JsonValue], merged: Mapping[str, JsonValue] | None) -> dict[str, Any]:
        """Body of a create or a PATCH (the changed fields, with the merged whole: Graph
        replaces lists such as emailAddresses whole, so a patch needs the other slots)."""

    @abstractmethod
    def initial_key(self, record: dict[str, Any]) -> list[Any]:
        """Smaller keys are sent first (R3.5)."""

    @abstractmethod
    def excluded(self, record: dict[str, Any]) -> str | None:
        """Why a CRM record is out of scope (not the member's, imported ...), or None."""

    @abstractmethod
    def crm_label(self, record: Mapping[str, Any]) -> str:
        """What a person calls a CRM record (from the selection pass's fields too)."""

    @staticmethod
    @abstractmethod
    def label_of(fields: Mapping[str, JsonValue]) -> str:
        """What a person calls an item, from its mapped fields (the ledger's names)."""

    def round_is_stale(self, window_from: datetime | None, now: datetime) -> bool:
        """Whether a delta round started at ``window_from`` must give way to a new one: a
        calendar's round sees a window frozen at its start, which must move with time."""
        return False

    def may_be_listed(self, fields: Mapping[str, JsonValue], window_from: datetime) -> bool:
        """Whether a linked item with these fields can be in a round started at
        ``window_from`` (one that cannot is not read when the round does not list it)."""
        return True

    def is_series(self, fields: Mapping[str, JsonValue]) -> bool:
        """Whether a link's item is a recurring series (its Outlook side is read with its exceptions)."""
        return False

    def series_master_of(self, item: dict[str, Any]) -> str | None:
        """Calendar only: Graph's calendarView delta reports a series' occurrences, never its
        master; this names the master of an occurrence or exception."""
        return None

    def change_key_of(self, version: str | None) -> str | None:
        """The Outlook change key a version stands for (``If-Match``); None: unknown."""
        return version or None

    def marker_for(self, partner_id: str) -> str:
        """The marker that names ``partner_id`` in this generation (written into an item)."""
        return markers.encode(self.generation, partner_id)

    def partner_named_by(self, marker: object) -> str | None:
        """The partner id an item's marker names, if the marker is of this generation."""
        return markers.decode(self.generation, marker)


class OutlookSide(OutlookItems, Protocol):
    """Our container in the member's mailbox, for one kind: its items (``OutlookItems``)
    and what the steps read beyond them."""

    def seen(self, item: Any, instances: Sequence[Any] = ()) -> ItemSeen:
        """An item read from Graph, as the engine sees it (with the partner its marker names)."""
        ...

    def delta_pages(self, container_id: str, resume: str | None) -> Iterator[Any]:
        """The container's delta pages: continue from a stored link, or start a new round."""
        ...

    def read_series(self, container_id: str, master_ids: list[str]) -> tuple[list[ItemSeen], list[str]]:
        """Series masters by id: (items seen, ids confirmed gone). Contacts have none."""
        ...

    def after_write(self, container_id: str, item_id: str, before: Mapping[str, JsonValue] | None,
                    after: Mapping[str, JsonValue]) -> None:
        """What a create or PATCH body cannot say (a series' cancelled occurrences are DELETEs
        of those occurrences). Nothing for contacts."""
        ...

    def outside_window(self, container_id: str) -> list[ItemSeen]:
        """The container's items a delta round never lists (calendar: outside its window)."""
        ...


def crm_time(value: Any) -> datetime:
    """The CRM's ``Modified_Time`` (ISO 8601 with offset) as an aware datetime."""
    try:
        parsed = datetime.fromisoformat(str(value))
    except ValueError:
        return datetime.fromtimestamp(0, UTC)
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def graph_time(item: Mapping[str, Any]) -> datetime:
    """An Outlook item's ``lastModifiedDateTime`` as an aware datetime."""
    return crm_time(item.get("lastModifiedDateTime") or "1970-01-01T00:00:00+00:00")


def person_name(*parts: object) -> str:
    return " ".join(str(p) for p in parts if p)
