"""What differs between calendar and contacts sync, behind one interface the executor and
the runner use (issue 8: "no second engine"): the CRM module and fields, the Outlook
container client, the field mapping both ways, the normalisation and the scope filter."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from pydantic import JsonValue

from shared.sync import markers
from shared.sync.changes import ItemSeen
from shared.sync.fingerprint import Normalisation
from shared.sync.ports import OutlookItems

# The CRM field that carries the Outlook id of a synced record (our marker on the CRM side).
# In a real org this is a custom field the integration creates (single line, unique).
CRM_MARKER_FIELD = "Outlook_Id"


@dataclass(frozen=True)
class SyncKindAdapter:
    """One kind of item, for one member."""

    name: str  # "calendar" or "contacts"
    crm_module: str  # "Events" or "Contacts"
    crm_fields: tuple[str, ...]  # listed fields (<= 50)
    container_name: str  # "Zoho CRM" or "Zoho CRM Contacts"
    normalisation: Normalisation
    outlook: OutlookItems
    crm_to_seen: Callable[[dict[str, Any]], ItemSeen]
    outlook_to_seen: Callable[[dict[str, Any]], ItemSeen]
    # Body of a create (fields only) or an update (changed fields with the merged whole).
    to_crm: Callable[[Mapping[str, JsonValue], Mapping[str, JsonValue] | None], dict[str, Any]]
    # Body of a create (fields only) or a PATCH (the changed fields, with the merged whole:
    # Graph replaces lists such as emailAddresses whole, so a patch needs the other slots).
    to_outlook: Callable[[Mapping[str, JsonValue], Mapping[str, JsonValue] | None], dict[str, Any]]
    initial_cap: int  # R3.5: 5,000 events; R4.6: 10,000 contacts
    scan_fields: tuple[str, ...]  # what the selection pass reads
    initial_key: Callable[[dict[str, Any]], list[Any]]  # smaller keys are sent first (R3.5)
    excluded: Callable[[dict[str, Any]], str | None]  # out of scope: not the member's, imported ...
    # The Outlook container's delta pages: continue from a stored link, or start a new round.
    delta: Callable[[str, str | None], Iterator[Any]]
    # Calendar only: Graph's calendarView delta reports a series' occurrences, never its
    # master. ``series_master_of`` names the master of an occurrence or exception (None for
    # other items); ``read_series`` reads masters by id: (items seen, ids confirmed gone).
    series_master_of: Callable[[dict[str, Any]], str | None] | None = None
    read_series: Callable[[str, list[str]], tuple[list[ItemSeen], list[str]]] | None = None
    # Calendar only: what a create or PATCH body cannot say (a series' cancelled occurrences
    # are DELETEs of those occurrences): (container, item id, fields before or None, after).
    after_outlook_write: Callable[[str, str, Mapping[str, JsonValue] | None, Mapping[str, JsonValue]], None] | None = None
    # The generation of the member's sync this adapter works in (``shared.sync.markers``):
    # markers are written in it, and markers of another generation are not read as partners.
    generation: str | None = None
    # Calendar only: the container's items a delta round never lists (outside its window).
    outside_window: Callable[[str], list[ItemSeen]] | None = None
    # What a person calls an item, from its mapped fields (a link row's): the ledger's names.
    label_of: Callable[[Mapping[str, JsonValue]], str] = lambda fields: ""

    def marker_for(self, partner_id: str) -> str:
        """The marker that names ``partner_id`` in this generation (written into an item)."""
        return markers.encode(self.generation, partner_id)

    def partner_named_by(self, marker: object) -> str | None:
        """The partner id an item's marker names, if the marker is of this generation."""
        return markers.decode(self.generation, marker)
