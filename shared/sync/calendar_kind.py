"""Calendar sync's rules (SPEC R3), pure: the member's own events (R3.4), not imported
(R3.6), at most 5,000, upcoming first (R3.5), mapped both ways by ``calendar_mapping``."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from pydantic import JsonValue

from shared.sync import calendar_mapping
from shared.sync.calendar.scope import initial_order_key
from shared.sync.changes import ItemSeen
from shared.sync.kind import CRM_MARKER_FIELD, KindRules, crm_time, graph_time

CALENDAR_NAME = "Zoho CRM"
# Between a series' change keys in its version: Graph's change keys are base64, so '/' (the
# separator until session 19) and '+' are theirs; ';' never is.
VERSION_SEPARATOR = ";"
# Graph's calendarView delta needs a window, frozen into its links; events outside it are never
# reported (and so never deleted: absence is not a deletion). A round older than a day gives
# way to a new one, so the window moves with time (issue 23): an event made in Outlook two
# years ahead is synced whatever the date the sync was enabled.
DELTA_WINDOW_PAST = timedelta(days=365)
DELTA_WINDOW_FUTURE = timedelta(days=730)
WINDOW_MOVES_AFTER = timedelta(days=1)
# Linked events this close to a window's edge are read when a round does not list them (the
# window Graph applied was computed a moment apart from ours).
WINDOW_EDGE = timedelta(days=1)
EVENT_FIELDS = (
    "Event_Title", "Start_DateTime", "End_DateTime", "All_day", "Venue", "Description", "Participants", "Remind_At",
    "Recurring_Activity", calendar_mapping.CRM_MOVED_FIELD, "Modified_Time", "Data_Source", "Owner", CRM_MARKER_FIELD,
)


class CalendarRules(KindRules):
    name = "calendar"
    crm_module = "Events"
    container_name = CALENDAR_NAME
    normalisation = calendar_mapping.CALENDAR_NORMALISATION
    initial_cap = calendar_mapping.INITIAL_SYNC_CAP
    scan_fields = ("Event_Title", "Start_DateTime", "End_DateTime", "Data_Source", "Recurring_Activity", "Description")

    def __init__(self, owner_id: str, generation: str | None, *, reference: datetime, crm_time_zone: str | None = None,
                 initial_cap: int | None = None) -> None:
        """``reference``: the moment the sync was enabled, so that the initial sync's order
        (R3.5) is the same in every step of it. ``crm_time_zone``: the member's zone in the
        CRM, so their CRM events land in Outlook in it."""
        super().__init__(owner_id, generation, initial_cap=initial_cap)
        self.reference = reference
        self.crm_time_zone = crm_time_zone

    @property
    def crm_fields(self) -> tuple[str, ...]:
        return EVENT_FIELDS

    def excluded(self, record: dict[str, Any]) -> str | None:
        return calendar_mapping.crm_event_excluded(record, member_user_id=self.owner_id)

    def crm_to_seen(self, record: dict[str, Any]) -> ItemSeen:
        reason = self.excluded(record)
        return ItemSeen(
            item_id=str(record["id"]), version=str(record.get("Modified_Time", "")),
            fields={} if reason else calendar_mapping.crm_event_to_fields(record, time_zone=self.crm_time_zone),
            modified_at=crm_time(record.get("Modified_Time")), partner_id=self.partner_named_by(record.get(CRM_MARKER_FIELD)),
            excluded=reason, label=self.crm_label(record),
        )

    def crm_label(self, record: Mapping[str, Any]) -> str:
        return str(record.get("Event_Title") or "")

    def outlook_to_seen(self, item: dict[str, Any], marker: str | None,
                        instances: Sequence[dict[str, Any]] = ()) -> ItemSeen:
        reason = calendar_mapping.graph_event_excluded(item)
        # A series' version covers its exceptions too (moving one may not move the master's).
        version = VERSION_SEPARATOR.join([str(item.get("changeKey", "")), *sorted(str(i.get("changeKey", "")) for i in instances)])
        return ItemSeen(
            item_id=str(item["id"]), version=version,
            fields={} if reason else calendar_mapping.graph_event_to_fields(item, instances=instances),
            modified_at=graph_time(item), partner_id=self.partner_named_by(marker),
            excluded=reason, label=str(item.get("subject") or ""),
        )

    def to_crm(self, fields: Mapping[str, JsonValue], merged: Mapping[str, JsonValue] | None) -> dict[str, Any]:
        if merged is None:
            return dict(calendar_mapping.fields_to_crm_event(fields, owner_id=self.owner_id))
        return dict(calendar_mapping.patch_to_crm(fields, merged=merged))

    def to_outlook(self, fields: Mapping[str, JsonValue], merged: Mapping[str, JsonValue] | None) -> dict[str, Any]:
        if merged is None:
            return dict(calendar_mapping.fields_to_graph_event(fields))
        return dict(calendar_mapping.patch_to_graph(fields, merged=merged))

    def initial_key(self, record: dict[str, Any]) -> list[Any]:
        return initial_order_key(record, self.reference)

    def change_key_of(self, version: str | None) -> str | None:
        """A series' version is its master's change key, then its exceptions' (``outlook_to_seen``).
        A series' version stored before the separator was ';' gives back more than its key: its
        first write is refused (412), read again and planned anew, once."""
        return (version or "").split(VERSION_SEPARATOR, 1)[0] or None

    def round_is_stale(self, window_from: datetime | None, now: datetime) -> bool:
        return window_from is None or now - window_from >= WINDOW_MOVES_AFTER

    def may_be_listed(self, fields: Mapping[str, JsonValue], window_from: datetime) -> bool:
        """A series may have occurrences anywhere; a single event only within its times."""
        when = fields.get(calendar_mapping.WHEN)
        if fields.get(calendar_mapping.RECURRENCE) or not isinstance(when, Mapping):
            return True
        try:
            start = _instant(str(when["start"]))
            end = _instant(str(when["end"]))
        except (KeyError, ValueError):
            return True
        return end >= window_from - DELTA_WINDOW_PAST - WINDOW_EDGE and start <= window_from + DELTA_WINDOW_FUTURE + WINDOW_EDGE

    def is_series(self, fields: Mapping[str, JsonValue]) -> bool:
        return bool(fields.get(calendar_mapping.RECURRENCE))

    def series_master_of(self, item: dict[str, Any]) -> str | None:
        if item.get("type") in ("occurrence", "exception") and isinstance(item.get("seriesMasterId"), str):
            return str(item["seriesMasterId"])
        return None

    @staticmethod
    def label_of(fields: Mapping[str, JsonValue]) -> str:
        return str(fields.get(calendar_mapping.TITLE) or "")


def _instant(text: str) -> datetime:
    """A ``when`` bound as an aware instant (an all-day date counts from UTC midnight)."""
    moment = datetime.fromisoformat(text)
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)
