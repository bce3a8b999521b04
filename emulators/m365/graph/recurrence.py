"""patternedRecurrence -> occurrence dates (resources/patternedrecurrence), via dateutil's rrule."""

from __future__ import annotations

import datetime as dt

from dateutil import rrule

from ..errors import GraphError

PATTERN_TYPES = {"daily", "weekly", "absoluteMonthly", "relativeMonthly", "absoluteYearly", "relativeYearly"}
WEEKDAYS = {
    "monday": rrule.MO, "tuesday": rrule.TU, "wednesday": rrule.WE, "thursday": rrule.TH,
    "friday": rrule.FR, "saturday": rrule.SA, "sunday": rrule.SU,
}
INDEX = {"first": 1, "second": 2, "third": 3, "fourth": 4, "last": -1}


def validate(recurrence: dict) -> dict:
    if not isinstance(recurrence, dict):
        raise GraphError(400, "ErrorInvalidRequest", "Invalid recurrence.")
    pattern = recurrence.get("pattern") or {}
    rng = recurrence.get("range") or {}
    if pattern.get("type") not in PATTERN_TYPES:
        raise GraphError(400, "ErrorInvalidRecurrencePattern", "The recurrence pattern type is invalid.")
    if rng.get("type") not in {"endDate", "noEnd", "numbered"} or not rng.get("startDate"):
        raise GraphError(400, "ErrorInvalidRecurrenceRange", "The recurrence range is invalid.")
    if pattern["type"] in {"weekly", "relativeMonthly", "relativeYearly"} and not pattern.get("daysOfWeek"):
        raise GraphError(400, "ErrorInvalidRecurrencePattern", "daysOfWeek is required for this pattern type.")
    if rng["type"] == "endDate" and not rng.get("endDate"):
        raise GraphError(400, "ErrorInvalidRecurrenceRange", "endDate is required for an endDate range.")
    if rng["type"] == "numbered" and int(rng.get("numberOfOccurrences") or 0) < 1:
        raise GraphError(400, "ErrorInvalidRecurrenceRange", "numberOfOccurrences must be positive.")
    full_pattern = {
        "type": pattern["type"], "interval": int(pattern.get("interval") or 1), "month": int(pattern.get("month") or 0),
        "dayOfMonth": int(pattern.get("dayOfMonth") or 0), "daysOfWeek": list(pattern.get("daysOfWeek") or []),
        "firstDayOfWeek": pattern.get("firstDayOfWeek") or "sunday", "index": pattern.get("index") or "first",
    }
    full_range = {
        "type": rng["type"], "startDate": rng["startDate"], "endDate": rng.get("endDate") or "0001-01-01",
        "recurrenceTimeZone": rng.get("recurrenceTimeZone") or "", "numberOfOccurrences": int(rng.get("numberOfOccurrences") or 0),
    }
    return {"pattern": full_pattern, "range": full_range}


def occurrence_starts(recurrence: dict, first_start: dt.datetime, until_wall: dt.datetime) -> list[dt.datetime]:
    """Wall-clock starts of the series (naive, in the event's zone) up to ``until_wall``."""
    pattern, rng = recurrence["pattern"], recurrence["range"]
    start_date = dt.date.fromisoformat(rng["startDate"])
    dtstart = dt.datetime.combine(start_date, first_start.time())
    kwargs: dict = {"dtstart": dtstart, "interval": pattern["interval"], "wkst": WEEKDAYS[pattern["firstDayOfWeek"].lower()]}
    days = [WEEKDAYS[d.lower()] for d in pattern["daysOfWeek"]]
    kind = pattern["type"]
    if kind == "daily":
        freq = rrule.DAILY
    elif kind == "weekly":
        freq, kwargs["byweekday"] = rrule.WEEKLY, days
    elif kind == "absoluteMonthly":
        freq, kwargs["bymonthday"] = rrule.MONTHLY, pattern["dayOfMonth"] or dtstart.day
    elif kind == "relativeMonthly":
        freq, kwargs["byweekday"], kwargs["bysetpos"] = rrule.MONTHLY, days, INDEX[pattern["index"]]
    elif kind == "absoluteYearly":
        freq = rrule.YEARLY
        kwargs["bymonth"], kwargs["bymonthday"] = pattern["month"] or dtstart.month, pattern["dayOfMonth"] or dtstart.day
    else:
        freq = rrule.YEARLY
        kwargs.update(bymonth=pattern["month"] or dtstart.month, byweekday=days, bysetpos=INDEX[pattern["index"]])
    if rng["type"] == "numbered":
        kwargs["count"] = rng["numberOfOccurrences"]
    elif rng["type"] == "endDate":
        kwargs["until"] = dt.datetime.combine(dt.date.fromisoformat(rng["endDate"]), dt.time(23, 59, 59))
    starts = []
    for occurrence in rrule.rrule(freq, **kwargs):
        if occurrence > until_wall or len(starts) > 5000:
            break
        starts.append(occurrence)
    return starts
