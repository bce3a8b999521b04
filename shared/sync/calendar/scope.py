"""Which CRM events and Outlook events are synced, and in what order at first (SPEC R3.4-R3.6).

Reasons are short codes for ``ItemSeen.excluded`` and the run report:

- ``not_owner``: not the member's own event (R3.4, "My Events");
- ``imported``: ``Data_Source`` ``Import`` (R3.6); ``migrated``: ``Migration`` — SPEC R3.6
  names import only; the product as briefed excludes "imported/migrated" records
  (research/peers.md, seed row) and a data migration is an import by another wizard, so
  both are out. ``Mass Update`` and every other source are synced (R3.6);
- ``occurrence``: a record standing for a moved occurrence of a series (``exceptions``),
  or a Graph occurrence/exception instance: synced as part of its series, not alone;
- ``unsupported_recurrence: …``, ``unknown_time_zone: …``, ``invalid_times: …``: the
  mapping cannot represent the event faithfully on the other side, so it is left alone
  and the reason shown, never mangled (R3.9).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any

from shared.sync.calendar.exceptions import crm_occurrence_of
from shared.sync.calendar.recurrence import (
    UnsupportedRecurrence,
    canonical_rule,
    rule_from_graph,
    series_end_estimate,
)
from shared.sync.calendar.timezones import UnknownTimeZone
from shared.sync.calendar.when import InvalidWhen, parse_instant, start_wall, when_from_crm, when_from_graph

INITIAL_SYNC_CAP = 5_000  # R3.5
EXCLUDED_SOURCES = {"Import": "imported", "Migration": "migrated"}


def _owner_id(record: Mapping[str, Any]) -> str | None:
    owner = record.get("Owner")
    return str(owner.get("id")) if isinstance(owner, Mapping) and owner.get("id") else None


def _mapping_problem(check: Any) -> str | None:
    try:
        check()
    except UnsupportedRecurrence as error:
        return f"unsupported_recurrence: {error}"
    except UnknownTimeZone as error:
        return f"unknown_time_zone: {error}"
    except InvalidWhen as error:
        return f"invalid_times: {error}"
    return None


def _check_crm(record: Mapping[str, Any]) -> None:
    when = when_from_crm(record)
    recurring = record.get("Recurring_Activity")
    if isinstance(recurring, Mapping) and recurring.get("RRULE"):
        canonical_rule(str(recurring["RRULE"]), start_wall(when).date())


def crm_event_excluded(record: Mapping[str, Any], *, member_user_id: str) -> str | None:
    """Why a CRM event is out of the member's sync, or None if it is in (R3.4, R3.6)."""
    if _owner_id(record) != str(member_user_id):
        return "not_owner"
    source = record.get("Data_Source")
    if isinstance(source, str) and source in EXCLUDED_SOURCES:
        return EXCLUDED_SOURCES[source]
    if crm_occurrence_of(record) is not None:
        return "occurrence"
    return _mapping_problem(lambda: _check_crm(record))


def _check_graph(event: Mapping[str, Any]) -> None:
    when = when_from_graph(event)
    if event.get("recurrence"):
        rule_from_graph(event["recurrence"], start_wall(when).date())


def graph_event_excluded(event: Mapping[str, Any]) -> str | None:
    """Why an event of the Zoho CRM calendar is not synced as an item of its own, or None."""
    if event.get("type") in ("occurrence", "exception"):
        return "occurrence"
    return _mapping_problem(lambda: _check_graph(event))


def _bounds(record: Mapping[str, Any], now: datetime) -> tuple[datetime, datetime] | None:
    """(start, end) for ordering; a series not yet over ends no earlier than ``now``."""
    try:
        start = parse_instant(str(record.get("Start_DateTime") or ""))
        end = parse_instant(str(record.get("End_DateTime") or ""))
    except InvalidWhen:
        return None
    recurring = record.get("Recurring_Activity")
    if isinstance(recurring, Mapping) and recurring.get("RRULE"):
        try:
            last = series_end_estimate(canonical_rule(str(recurring["RRULE"]), start.date()), start)
        except UnsupportedRecurrence:
            return start, end
        if last is None or last >= now.date():
            return max(start, now), max(end, now + timedelta(seconds=1))
        end = datetime.combine(last, end.timetz())
    return start, end


def initial_order_key(record: Mapping[str, Any], now: datetime) -> list[Any]:
    """R3.5 as a sortable key: events not yet over first (soonest start first), then completed
    ones (latest end first), then those whose times cannot be read (so the mapping reports them
    rather than the cap hiding them). A series counts by its range: one still running is
    upcoming as of ``now``, one whose last occurrence (``UNTIL`` or ``COUNT``) is past is
    completed then. ``now`` must be aware."""
    record_id = str(record.get("id"))
    bounds = _bounds(record, now)
    if bounds is None:
        return [2, 0.0, record_id]
    start, end = bounds
    if end > now:
        return [0, start.timestamp(), record_id]
    return [1, -end.timestamp(), record_id]
