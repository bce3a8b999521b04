"""Reminders: CRM ``Remind_At`` ⇄ Graph ``reminderMinutesBeforeStart`` + ``isReminderOn`` (SPEC R3.9).

Canonical ``reminder_minutes``: minutes before the start, or None for no reminder.

The CRM (v7/v8, zoho-notes §4) holds a list ``[{"unit": 15, "period": "minutes"},
{"unit": 1, "period": "days", "time": "10.30"}]``; Graph holds one reminder. We read the
CRM reminder that fires **last** (fewest minutes before the start; the one closest to the
meeting is the one a person acts on), so a second CRM reminder is kept in the CRM as
long as the reminder is not changed in Outlook; a change in Outlook replaces the list
with one entry (stated loss: Outlook cannot hold two).

Writing, we use only the two periods the documented samples show: ``minutes`` (unit
0-60) and ``days`` with a ``time`` of day ("HH.MM", wall clock of the event's start),
which expresses any lead time exactly: a reminder 90 minutes before a 10:00 start is
``{"unit": 0, "period": "days", "time": "08.30"}``. Wall-clock arithmetic is used both
ways, so a round trip is exact even across a DST change between reminder and start.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

from pydantic import JsonValue

_MINUTES_PER = {"minutes": 1, "mins": 1, "hours": 60, "hrs": 60, "days": 1440, "weeks": 10080}
_MAX_MINUTES_UNIT = 60


def _minutes_of(entry: Mapping[str, Any], start_wall: datetime) -> int | None:
    period = str(entry.get("period") or "").lower()
    unit = entry.get("unit")
    if period not in _MINUTES_PER or not isinstance(unit, int) or isinstance(unit, bool):
        return None
    moment = entry.get("time")
    if period in ("days", "weeks") and isinstance(moment, str) and moment.strip():
        hours, _, minutes = moment.strip().replace(":", ".").partition(".")
        days_before = unit * (7 if period == "weeks" else 1)
        fires = datetime.combine(start_wall.date() - timedelta(days=days_before), datetime.min.time())
        fires = fires.replace(hour=int(hours), minute=int(minutes or 0))
        return max(0, int((start_wall - fires).total_seconds() // 60))
    return unit * _MINUTES_PER[period]


def reminder_from_crm(remind_at: Any, start_wall: datetime) -> int | None:
    """The canonical minutes of a CRM ``Remind_At`` (None: no reminder).

    A v2-style single date-time string (zoho-notes §14) is read as an instant against
    the start too, in case an org still returns it.
    """
    if isinstance(remind_at, str) and remind_at.strip():
        try:
            fires = datetime.fromisoformat(remind_at.strip().replace("Z", "+00:00")).replace(tzinfo=None)
        except ValueError:
            return None
        return max(0, int((start_wall - fires).total_seconds() // 60))
    if not isinstance(remind_at, Sequence) or isinstance(remind_at, str):
        return None
    found = [m for e in remind_at if isinstance(e, Mapping) and (m := _minutes_of(e, start_wall)) is not None]
    return min(found) if found else None


def reminder_to_crm(minutes: int | None, start_wall: datetime) -> list[JsonValue] | None:
    """The ``Remind_At`` value for ``minutes`` before a start at ``start_wall`` (None clears)."""
    if minutes is None:
        return None
    if minutes <= _MAX_MINUTES_UNIT:
        return [{"unit": minutes, "period": "minutes"}]
    fires = start_wall - timedelta(minutes=minutes)
    days_before = (start_wall.date() - fires.date()).days
    return [{"unit": days_before, "period": "days", "time": fires.strftime("%H.%M")}]


def reminder_from_graph(event: Mapping[str, Any]) -> int | None:
    if not event.get("isReminderOn"):
        return None
    minutes = event.get("reminderMinutesBeforeStart")
    return int(minutes) if isinstance(minutes, int | float) and not isinstance(minutes, bool) else None


def reminder_to_graph(minutes: int | None) -> dict[str, JsonValue]:
    if minutes is None:
        return {"isReminderOn": False}
    return {"isReminderOn": True, "reminderMinutesBeforeStart": minutes}
