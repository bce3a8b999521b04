"""Recurrence rules: CRM ``Recurring_Activity`` RRULE ⇄ Graph ``patternedRecurrence`` (SPEC R3.9).

The canonical rule is an RRULE string in one fixed spelling, so the same rule read from
either side is the same text: ``FREQ``, ``INTERVAL`` (always), ``BYMONTH``,
``BYMONTHDAY``, ``BYDAY`` (week order), ``BYSETPOS``, ``WKST`` (only where it changes
the dates: weekly, interval > 1, several days), then ``UNTIL=YYYY-MM-DD`` or ``COUNT``.
Parts the CRM may leave implicit (the weekday, day of month or month of the start) are
made explicit, because Graph always states them. ``DTSTART`` is not part of the rule: it
is the start in ``when``, and is written from there.

Supported, both ways (Graph pattern type ⇄ RRULE):

=================  ====================================================
daily              ``FREQ=DAILY;INTERVAL=n``
weekly             ``FREQ=WEEKLY;INTERVAL=n;BYDAY=MO,WE[;WKST=SU]``
absoluteMonthly    ``FREQ=MONTHLY;INTERVAL=n;BYMONTHDAY=15``
relativeMonthly    ``FREQ=MONTHLY;INTERVAL=n;BYDAY=TU;BYSETPOS=2`` (also read: ``BYDAY=2TU``)
absoluteYearly     ``FREQ=YEARLY;INTERVAL=n;BYMONTH=3;BYMONTHDAY=15``
relativeYearly     ``FREQ=YEARLY;INTERVAL=n;BYMONTH=3;BYDAY=TU;BYSETPOS=-1``
range              endDate ⇄ ``UNTIL`` (a date), numbered ⇄ ``COUNT``, noEnd ⇄ neither
=================  ====================================================

``FREQ=DAILY;INTERVAL=1;BYDAY=…`` (every weekday) is read as the weekly rule it equals.

Refused with ``UnsupportedRecurrence`` (never approximated): HOURLY and finer; BYHOUR,
BYMINUTE, BYSECOND, BYWEEKNO, BYYEARDAY, RDATE, EXRULE; several BYMONTHDAY or BYMONTH
values; negative BYMONTHDAY; BYDAY without a position in a monthly or yearly rule
("every Tuesday of the month"); positions other than 1-4 and -1; both UNTIL and COUNT;
an unknown Graph pattern or range type.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date, datetime
from typing import Any

from pydantic import JsonValue

WEEKDAYS = ("MO", "TU", "WE", "TH", "FR", "SA", "SU")
GRAPH_DAYS = dict(zip(WEEKDAYS, ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday"),
                      strict=True))
_RRULE_DAYS = {name: code for code, name in GRAPH_DAYS.items()}
GRAPH_INDEX = {1: "first", 2: "second", 3: "third", 4: "fourth", -1: "last"}
_INDEX_OF = {name: number for number, name in GRAPH_INDEX.items()}
_ORDER = ("FREQ", "INTERVAL", "BYMONTH", "BYMONTHDAY", "BYDAY", "BYSETPOS", "WKST", "UNTIL", "COUNT")
_KNOWN = {*_ORDER, "DTSTART", "EXDATE"}
_FREQS = ("DAILY", "WEEKLY", "MONTHLY", "YEARLY")


class UnsupportedRecurrence(ValueError):
    """A rule one side can hold and the other cannot: the event is excluded with this reason."""


def _date_of(text: str) -> date:
    """A date from ``2026-12-31``, ``20261231`` or a date-time form of either."""
    digits = text.strip().replace("-", "")[:8]
    try:
        return date(int(digits[:4]), int(digits[4:6]), int(digits[6:8]))
    except ValueError as error:
        raise UnsupportedRecurrence(f"unreadable date {text!r}") from error


def _parts(rrule: str) -> dict[str, str]:
    text = rrule.strip()
    text = text.removeprefix("RRULE:")
    parts: dict[str, str] = {}
    for piece in filter(None, (p.strip() for p in text.split(";"))):
        key, sep, value = piece.partition("=")
        key = key.strip().upper()
        if not sep or key not in _KNOWN:
            raise UnsupportedRecurrence(f"unsupported rule part {piece!r}")
        parts[key] = value.strip().upper() if key not in ("UNTIL", "DTSTART", "EXDATE") else value.strip()
    return parts


def _int(parts: Mapping[str, str], key: str) -> int:
    try:
        return int(parts[key])
    except ValueError as error:
        raise UnsupportedRecurrence(f"{key}={parts[key]} is not a number") from error


def _days_and_position(parts: dict[str, str], freq: str) -> tuple[list[str], int | None]:
    days: list[str] = []
    positions: set[int] = set()
    for item in filter(None, parts.get("BYDAY", "").split(",")):
        code, number = item[-2:], item[:-2]
        if code not in WEEKDAYS:
            raise UnsupportedRecurrence(f"BYDAY={parts['BYDAY']}")
        if number:
            positions.add(int(number))
        days.append(code)
    if "BYSETPOS" in parts:
        positions.add(_int(parts, "BYSETPOS"))
    if len(positions) > 1 or (positions and freq in ("DAILY", "WEEKLY")):
        raise UnsupportedRecurrence(f"positions {sorted(positions)} in a {freq.lower()} rule")
    position = positions.pop() if positions else None
    if position is not None and (position not in GRAPH_INDEX or not days):
        raise UnsupportedRecurrence(f"position {position} (Outlook knows 1-4 and last, of given weekdays)")
    return sorted(set(days), key=WEEKDAYS.index), position


def canonical_rule(rrule: str, start: date | None = None) -> str:
    """The canonical spelling of an RRULE; ``start`` fills the parts left implicit.

    Raises:
        UnsupportedRecurrence: a rule Outlook cannot hold (see the module docstring).
    """
    parts = _parts(rrule)
    freq = parts.get("FREQ", "")
    if freq not in _FREQS:
        raise UnsupportedRecurrence(f"FREQ={freq or '?'}")
    interval = _int(parts, "INTERVAL") if "INTERVAL" in parts else 1
    if interval < 1:
        raise UnsupportedRecurrence(f"INTERVAL={interval}")
    days, position = _days_and_position(parts, freq)
    if freq == "DAILY" and days:
        if interval != 1:
            raise UnsupportedRecurrence("a daily rule limited to weekdays with an interval")
        freq = "WEEKLY"
    out: dict[str, str] = {"FREQ": freq, "INTERVAL": str(interval)}
    for key in ("BYMONTH", "BYMONTHDAY"):
        if "," in parts.get(key, ""):
            raise UnsupportedRecurrence(f"several values in {key}={parts[key]}")
    if "BYMONTH" in parts and freq != "YEARLY":
        raise UnsupportedRecurrence(f"BYMONTH in a {freq.lower()} rule")
    if "BYMONTHDAY" in parts and (freq in ("DAILY", "WEEKLY") or days):
        raise UnsupportedRecurrence("BYMONTHDAY with weekdays or in a daily or weekly rule")
    if freq == "WEEKLY":
        days = days or ([WEEKDAYS[start.weekday()]] if start else [])
        if interval > 1 and len(days) > 1:
            out["WKST"] = parts.get("WKST", "MO")
    elif freq in ("MONTHLY", "YEARLY"):
        if freq == "YEARLY":
            month = _int(parts, "BYMONTH") if "BYMONTH" in parts else (start.month if start else None)
            if month is not None:
                if not 1 <= month <= 12:
                    raise UnsupportedRecurrence(f"BYMONTH={month}")
                out["BYMONTH"] = str(month)
        if days and position is None:
            raise UnsupportedRecurrence(f"every {','.join(days)} of the period (no position)")
        if not days:
            day = _int(parts, "BYMONTHDAY") if "BYMONTHDAY" in parts else (start.day if start else None)
            if day is not None:
                if not 1 <= day <= 31:
                    raise UnsupportedRecurrence(f"BYMONTHDAY={day}")
                out["BYMONTHDAY"] = str(day)
    if days:
        out["BYDAY"] = ",".join(days)
    if position is not None:
        out["BYSETPOS"] = str(position)
    if "UNTIL" in parts and "COUNT" in parts:
        raise UnsupportedRecurrence("both UNTIL and COUNT")
    if "UNTIL" in parts:
        out["UNTIL"] = _date_of(parts["UNTIL"]).isoformat()
    if "COUNT" in parts:
        count = _int(parts, "COUNT")
        if count < 1:
            raise UnsupportedRecurrence(f"COUNT={count}")
        out["COUNT"] = str(count)
    return ";".join(f"{key}={out[key]}" for key in _ORDER if key in out)


def rule_parts(rule: str) -> dict[str, str]:
    """The parts of a canonical rule (for the other side's writer)."""
    return _parts(rule)


def rule_to_crm(rule: str, start: date) -> str:
    """The CRM's RRULE: the canonical rule with ``DTSTART`` (a date, as in zoho-notes §4)."""
    parts = _parts(rule)
    head = [f"FREQ={parts['FREQ']}", f"DTSTART={start.isoformat()}"]
    return ";".join(head + [f"{k}={v}" for k, v in parts.items() if k not in ("FREQ", "DTSTART")])


def rule_from_graph(recurrence: Mapping[str, Any], start: date) -> str:
    """The canonical rule of a Graph ``patternedRecurrence``.

    Raises:
        UnsupportedRecurrence: an unknown pattern or range type.
    """
    pattern = recurrence.get("pattern") or {}
    kind = str(pattern.get("type") or "")
    parts = [f"INTERVAL={int(pattern.get('interval') or 1)}"]
    days = ",".join(_RRULE_DAYS[d] for d in pattern.get("daysOfWeek") or [] if d in _RRULE_DAYS)
    position = _INDEX_OF.get(str(pattern.get("index") or "first"), 1)
    if kind == "daily":
        parts.insert(0, "FREQ=DAILY")
    elif kind == "weekly":
        parts += ["FREQ=WEEKLY", f"BYDAY={days}" if days else ""]
        if pattern.get("firstDayOfWeek"):
            parts.append(f"WKST={_RRULE_DAYS.get(str(pattern['firstDayOfWeek']), 'SU')}")
    elif kind in ("absoluteMonthly", "absoluteYearly"):
        parts += [f"FREQ={'MONTHLY' if kind == 'absoluteMonthly' else 'YEARLY'}",
                  f"BYMONTHDAY={int(pattern.get('dayOfMonth') or start.day)}"]
    elif kind in ("relativeMonthly", "relativeYearly"):
        parts += [f"FREQ={'MONTHLY' if kind == 'relativeMonthly' else 'YEARLY'}", f"BYDAY={days}",
                  f"BYSETPOS={position}"]
    else:
        raise UnsupportedRecurrence(f"Graph pattern type {kind or '?'}")
    if kind.endswith("Yearly"):
        parts.append(f"BYMONTH={int(pattern.get('month') or start.month)}")
    limit = recurrence.get("range") or {}
    range_type = str(limit.get("type") or "noEnd")
    if range_type == "endDate":
        parts.append(f"UNTIL={limit.get('endDate')}")
    elif range_type == "numbered":
        parts.append(f"COUNT={int(limit.get('numberOfOccurrences') or 0)}")
    elif range_type != "noEnd":
        raise UnsupportedRecurrence(f"Graph range type {range_type}")
    return canonical_rule(";".join(p for p in parts if p), start)


def rule_to_graph(rule: str, start: date, recurrence_zone: str) -> dict[str, JsonValue]:
    """The Graph ``patternedRecurrence`` for a canonical rule starting on ``start``."""
    parts = _parts(rule)
    freq = parts["FREQ"]
    pattern: dict[str, JsonValue] = {"interval": int(parts.get("INTERVAL", "1"))}
    days = [GRAPH_DAYS[d] for d in filter(None, parts.get("BYDAY", "").split(","))]
    relative = "BYSETPOS" in parts
    if freq == "DAILY":
        pattern["type"] = "daily"
    elif freq == "WEEKLY":
        wkst = parts.get("WKST")
        pattern.update(type="weekly", daysOfWeek=days, firstDayOfWeek=GRAPH_DAYS[wkst] if wkst else "sunday")
    else:
        base = "Monthly" if freq == "MONTHLY" else "Yearly"
        pattern["type"] = ("relative" if relative else "absolute") + base
        if relative:
            pattern.update(daysOfWeek=days, index=GRAPH_INDEX[int(parts["BYSETPOS"])])
        else:
            pattern["dayOfMonth"] = int(parts["BYMONTHDAY"])
        if freq == "YEARLY":
            pattern["month"] = int(parts["BYMONTH"])
    limit: dict[str, JsonValue] = {"startDate": start.isoformat(), "recurrenceTimeZone": recurrence_zone}
    if "UNTIL" in parts:
        limit.update(type="endDate", endDate=_date_of(parts["UNTIL"]).isoformat())
    elif "COUNT" in parts:
        limit.update(type="numbered", numberOfOccurrences=int(parts["COUNT"]))
    else:
        limit["type"] = "noEnd"
    return {"pattern": pattern, "range": limit}


def series_end_estimate(rule: str, start: datetime) -> date | None:
    """The last date a series may reach (None: no end): UNTIL, or COUNT periods after the
    start, generously (a month as 31 days), for ordering only (R3.5)."""
    parts = _parts(rule)
    if "UNTIL" in parts:
        return _date_of(parts["UNTIL"])
    if "COUNT" not in parts:
        return None
    span = {"DAILY": 1, "WEEKLY": 7, "MONTHLY": 31, "YEARLY": 366}[parts["FREQ"]]
    days = span * int(parts.get("INTERVAL", "1")) * int(parts["COUNT"])
    return date.fromordinal(min(start.date().toordinal() + days, date.max.toordinal()))
