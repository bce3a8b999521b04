"""Exceptions of a recurring series: moved and cancelled occurrences (SPEC R3.9; issue 7).

Canonical ``recurrence``: ``{"rule": <canonical RRULE>, "exceptions": [...]}``, the
exceptions sorted by ``original_date`` (the date the occurrence had under the rule, in
the series' zone: both systems allow at most one occurrence a day for every supported
rule, so the date names the occurrence on both sides, whatever zone a side reports in):

- cancelled: ``{"original_date": "2026-12-09", "cancelled": true}``
- moved: ``{"original_date": "2026-12-09", "start": ..., "end": ...}`` (``when`` style:
  instants with offset for a timed series, dates with exclusive end for an all-day one).

Only the time of an occurrence is synced; other per-occurrence edits (an occurrence's own
subject) stay on their side.

**Outlook** holds them natively: ``cancelledOccurrences`` on the master (strings ending
in the occurrence's date; their exact format is [U], we read the trailing date) and
instances of ``type: exception`` (``originalStart``, ``start``, ``end``). The adapter
passes the master and its exception instances; the executor applies changes with
``exception_changes``: a cancel is a DELETE of the occurrence, a move a PATCH of its
``start``/``end`` (``graph_occurrence_times``). A cancelled occurrence cannot be brought
back in Outlook (no API), so a ``restore`` there needs the series re-written.

**The CRM** has no exception in its API (zoho-notes §4: only ``EXDATE`` on
``Recurring_Activity``; ``RECURRENCE-ID`` appears only in Bulk Read ICS exports). We keep:

- a cancelled occurrence as an ``EXDATE`` date;
- a moved occurrence as an ``EXDATE`` date **plus** a separate, non-recurring CRM event
  for the moved time, marked as belonging to the series by the last line of its
  Description (``crm_occurrence_marker``). The adapter routes records carrying the marker
  to their series (``crm_occurrence_of``) instead of syncing them as events of their own.
  ``EXDATE`` is written as comma-separated ``yyyy-MM-dd`` dates (its format is [U]; we
  also read lists and ``yyyyMMdd`` forms).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from typing import Any

from pydantic import JsonValue

from shared.sync.calendar.timezones import zone
from shared.sync.calendar.when import (
    InvalidWhen,
    normalise_when,
    parse_instant,
    render_instant,
    when_from_crm,
    when_from_graph,
    when_to_graph,
)

_TRAILING_DATE = re.compile(r"(\d{4}-\d{2}-\d{2})\s*$")
_MARKER = re.compile(r"^\[occurrence of CRM event (?P<series>\d+) on (?P<date>\d{4}-\d{2}-\d{2})\]$")

Exception_ = dict[str, JsonValue]


def cancelled(original_date: date | str) -> Exception_:
    return {"original_date": str(original_date), "cancelled": True}


def moved(original_date: date | str, start: str, end: str) -> Exception_:
    return {"original_date": str(original_date), "start": start, "end": end}


def sorted_exceptions(exceptions: Iterable[Mapping[str, Any]]) -> list[Exception_]:
    """One exception per original date (a move beats a cancel of the same date), sorted."""
    by_date: dict[str, Exception_] = {}
    for item in exceptions:
        key = str(item["original_date"])
        if key not in by_date or not item.get("cancelled"):
            by_date[key] = dict(item)
    return [by_date[key] for key in sorted(by_date)]


def normalise_recurrence(value: JsonValue) -> JsonValue:
    """Compared: the rule text and each exception, moved times as instants in UTC."""
    if not isinstance(value, dict) or not value.get("rule"):
        return None
    exceptions = []
    for item in sorted_exceptions(e for e in value.get("exceptions") or [] if isinstance(e, Mapping)):
        if item.get("cancelled"):
            exceptions.append(cancelled(str(item["original_date"])))
        else:
            times = normalise_when({"all_day": len(str(item["start"])) == 10, **item})
            exceptions.append({"original_date": item["original_date"], **times})  # type: ignore[dict-item]
    return {"rule": str(value["rule"]).strip(), "exceptions": exceptions} if exceptions else {
        "rule": str(value["rule"]).strip()
    }


# --- Outlook ----------------------------------------------------------------------------------


def _original_date(text: Any, time_zone: str | None) -> date:
    instant = parse_instant(re.sub(r"(\.\d{1,6})\d*", r"\1", str(text)))
    return instant.astimezone(zone(time_zone)).date()


def exceptions_from_graph(
    master: Mapping[str, Any], instances: Sequence[Mapping[str, Any]], series_when: Mapping[str, Any]
) -> list[Exception_]:
    """The exceptions of a Graph series from its master and its exception instances."""
    time_zone = series_when.get("time_zone")
    found: list[Exception_] = []
    for text in master.get("cancelledOccurrences") or []:
        if hit := _TRAILING_DATE.search(str(text)):
            found.append(cancelled(hit.group(1)))
    for instance in instances:
        if instance.get("type") not in ("exception", "occurrence") or not instance.get("originalStart"):
            continue
        original = _original_date(instance["originalStart"], time_zone)
        if instance.get("isCancelled"):
            found.append(cancelled(original))
            continue
        if instance.get("type") != "exception":
            continue
        times = when_from_graph({**instance, "originalStartTimeZone": master.get("originalStartTimeZone")})
        if not times["all_day"]:
            times["start"] = render_instant(parse_instant(str(times["start"])), time_zone)
            times["end"] = render_instant(parse_instant(str(times["end"])), time_zone)
        if not _is_unmoved(instance, times, series_when):
            found.append(moved(original, str(times["start"]), str(times["end"])))
    return sorted_exceptions(found)


def _is_unmoved(instance: Mapping[str, Any], times: Mapping[str, Any], series_when: Mapping[str, Any]) -> bool:
    """An exception whose times are the rule's (only its subject or body was edited)."""
    if times["all_day"] or series_when.get("all_day"):
        return False
    try:
        original = parse_instant(re.sub(r"(\.\d{1,6})\d*", r"\1", str(instance["originalStart"])))
        duration = parse_instant(str(series_when["end"])) - parse_instant(str(series_when["start"]))
        start, end = parse_instant(str(times["start"])), parse_instant(str(times["end"]))
    except (InvalidWhen, KeyError):
        return False
    return start == original and end - start == duration


def graph_occurrence_times(exception: Mapping[str, Any], time_zone: str | None) -> dict[str, JsonValue]:
    """The PATCH body moving one Graph occurrence to a moved exception's times."""
    times = when_to_graph({"all_day": len(str(exception["start"])) == 10, "time_zone": time_zone, **exception})
    return {"start": times["start"], "end": times["end"]}


def graph_occurrence_date(instance: Mapping[str, Any], time_zone: str | None) -> date:
    """The original date of a Graph occurrence (to find the one an exception names)."""
    return _original_date(instance["originalStart"], time_zone)


# --- CRM ----------------------------------------------------------------------------------------


def exdates_from_crm(value: Any) -> list[date]:
    items = value if isinstance(value, list) else str(value or "").split(",")
    dates = []
    for item in items:
        digits = str(item).strip().replace("-", "")[:8]
        if len(digits) == 8 and digits.isdigit():
            dates.append(date(int(digits[:4]), int(digits[4:6]), int(digits[6:8])))
    return sorted(set(dates))


def exdates_to_crm(exceptions: Sequence[Mapping[str, Any]]) -> str | None:
    """``EXDATE`` for every exception: cancelled ones, and moved ones (held elsewhere)."""
    dates = sorted({str(item["original_date"]) for item in exceptions})
    return ",".join(dates) or None


def crm_occurrence_marker(series_id: str, original_date: str) -> str:
    """The Description line that ties a moved occurrence's CRM event to its series."""
    return f"[occurrence of CRM event {series_id} on {original_date}]"


def crm_occurrence_of(record: Mapping[str, Any]) -> tuple[str, str] | None:
    """(series id, original date) of a CRM event standing for a moved occurrence, else None."""
    lines = str(record.get("Description") or "").strip().splitlines()
    if lines and (hit := _MARKER.match(lines[-1].strip())):
        return hit["series"], hit["date"]
    return None


# A custom field of the series' CRM record (like the ``Outlook_Id`` marker) holding the
# times of its moved occurrences as JSON: the CRM's API has no exceptions (EXDATE only),
# so the series itself says which of its excluded dates moved, and where to.
CRM_MOVED_FIELD = "Outlook_Moved_Occurrences"


def moved_to_crm(exceptions: Sequence[Mapping[str, Any]]) -> str | None:
    """The moved occurrences of a series for ``CRM_MOVED_FIELD`` (None when there is none)."""
    found = [
        {"original_date": str(e["original_date"]), "start": str(e["start"]), "end": str(e["end"])}
        for e in sorted_exceptions(exceptions) if not e.get("cancelled")
    ]
    return json.dumps(found, separators=(",", ":")) if found else None


def moved_from_crm(value: Any) -> list[Exception_]:
    """``CRM_MOVED_FIELD`` read back; anything unreadable counts as no moved occurrence."""
    try:
        items = json.loads(value) if isinstance(value, str) and value else []
    except ValueError:
        return []
    return [
        moved(str(item["original_date"]), str(item["start"]), str(item["end"]))
        for item in items if isinstance(item, Mapping) and {"original_date", "start", "end"} <= item.keys()
    ] if isinstance(items, list) else []


def exceptions_from_crm(
    exdates: Any, occurrences: Sequence[Mapping[str, Any]], time_zone: str | None, moved_field: Any = None
) -> list[Exception_]:
    """Cancelled (an EXDATE alone) and moved (an EXDATE with its new times in the series'
    ``CRM_MOVED_FIELD``, or with an occurrence event) exceptions."""
    moved_by_date: dict[str, Exception_] = {str(e["original_date"]): e for e in moved_from_crm(moved_field)}
    for record in occurrences:
        mark = crm_occurrence_of(record)
        if mark is None:
            continue
        times = when_from_crm(record, time_zone)
        moved_by_date[mark[1]] = moved(mark[1], str(times["start"]), str(times["end"]))
    found = [moved_by_date.get(d.isoformat()) or cancelled(d) for d in exdates_from_crm(exdates)]
    return sorted_exceptions(found)


# --- Changes for the executor ---------------------------------------------------------------------


@dataclass(frozen=True)
class ExceptionChanges:
    """What to do to the occurrences of a series to go from one exception list to another."""

    cancel: tuple[str, ...] = ()  # original dates to cancel (Graph: DELETE the occurrence)
    move: tuple[Exception_, ...] = ()  # moved exceptions to (re)apply
    restore: tuple[str, ...] = ()  # original dates back to the rule (CRM: drop EXDATE and event)


def exception_changes(before: JsonValue, after: JsonValue) -> ExceptionChanges:
    """The occurrence operations from recurrence value ``before`` to ``after``."""
    old = {e["original_date"]: e for e in _exceptions_of(before)}
    new = {e["original_date"]: e for e in _exceptions_of(after)}
    cancel = [d for d, e in new.items() if e.get("cancelled") and not (old.get(d) or {}).get("cancelled")]
    move = [
        e
        for d, e in new.items()
        if not e.get("cancelled") and (d not in old or _compared(old[d]) != _compared(e))
    ]
    restore = [d for d in old if d not in new]
    return ExceptionChanges(tuple(str(d) for d in sorted(cancel)), tuple(move), tuple(str(d) for d in sorted(restore)))


def _compared(exception: Mapping[str, Any]) -> JsonValue:
    return normalise_recurrence({"rule": "-", "exceptions": [dict(exception)]})


def _exceptions_of(value: JsonValue) -> list[Exception_]:
    if not isinstance(value, dict):
        return []
    return sorted_exceptions(e for e in value.get("exceptions") or [] if isinstance(e, Mapping))
