"""Time zone names Graph accepts in ``dateTimeTimeZone`` and ``Prefer: outlook.timezone``.

Graph takes Windows zone names and IANA names (resources/datetimetimezone). Windows names
are mapped to IANA (CLDR windowsZones, territory 001) so Python's zoneinfo can do the maths.
"""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from .errors import GraphError

WINDOWS_TO_IANA = {
    "UTC": "UTC",
    "Coordinated Universal Time": "UTC",
    "Dateline Standard Time": "Etc/GMT+12",
    "Hawaiian Standard Time": "Pacific/Honolulu",
    "Alaskan Standard Time": "America/Anchorage",
    "Pacific Standard Time": "America/Los_Angeles",
    "US Mountain Standard Time": "America/Phoenix",
    "Mountain Standard Time": "America/Denver",
    "Central Standard Time": "America/Chicago",
    "Central America Standard Time": "America/Guatemala",
    "Eastern Standard Time": "America/New_York",
    "Atlantic Standard Time": "America/Halifax",
    "Newfoundland Standard Time": "America/St_Johns",
    "E. South America Standard Time": "America/Sao_Paulo",
    "Argentina Standard Time": "America/Buenos_Aires",
    "SA Pacific Standard Time": "America/Bogota",
    "GMT Standard Time": "Europe/London",
    "Greenwich Standard Time": "Atlantic/Reykjavik",
    "W. Europe Standard Time": "Europe/Berlin",
    "Romance Standard Time": "Europe/Paris",
    "Central Europe Standard Time": "Europe/Budapest",
    "Central European Standard Time": "Europe/Warsaw",
    "GTB Standard Time": "Europe/Bucharest",
    "E. Europe Standard Time": "Europe/Chisinau",
    "FLE Standard Time": "Europe/Kiev",
    "South Africa Standard Time": "Africa/Johannesburg",
    "Egypt Standard Time": "Africa/Cairo",
    "Israel Standard Time": "Asia/Jerusalem",
    "Turkey Standard Time": "Europe/Istanbul",
    "Russian Standard Time": "Europe/Moscow",
    "Arabian Standard Time": "Asia/Dubai",
    "Pakistan Standard Time": "Asia/Karachi",
    "India Standard Time": "Asia/Calcutta",
    "Nepal Standard Time": "Asia/Katmandu",
    "Bangladesh Standard Time": "Asia/Dhaka",
    "SE Asia Standard Time": "Asia/Bangkok",
    "China Standard Time": "Asia/Shanghai",
    "Singapore Standard Time": "Asia/Singapore",
    "Taipei Standard Time": "Asia/Taipei",
    "Tokyo Standard Time": "Asia/Tokyo",
    "Korea Standard Time": "Asia/Seoul",
    "AUS Eastern Standard Time": "Australia/Sydney",
    "E. Australia Standard Time": "Australia/Brisbane",
    "Cen. Australia Standard Time": "Australia/Adelaide",
    "W. Australia Standard Time": "Australia/Perth",
    "New Zealand Standard Time": "Pacific/Auckland",
}


def resolve_zone(name: str | None) -> ZoneInfo:
    """The zone for a Graph time zone name; 400 like Graph for a name it does not know."""
    if not name:
        return ZoneInfo("UTC")
    iana = WINDOWS_TO_IANA.get(name, name)
    try:
        if "/" not in iana and iana not in ("UTC", "GMT"):
            raise ZoneInfoNotFoundError(iana)
        return ZoneInfo(iana)
    except (ZoneInfoNotFoundError, ValueError):
        raise GraphError(
            400,
            "TimeZoneNotSupportedException",
            f"A valid TimeZone value must be specified. The following TimeZone value is not supported: '{name}'.",
        ) from None


def parse_wall_time(value: str) -> dt.datetime:
    """``dateTime`` of a dateTimeTimeZone: no offset, up to 7 fractional digits."""
    text = str(value).strip()
    if text.endswith("Z"):
        text = text[:-1]
    if "." in text:
        head, frac = text.split(".", 1)
        text = f"{head}.{frac[:6]}"
    try:
        parsed = dt.datetime.fromisoformat(text)
    except ValueError:
        raise GraphError(400, "ErrorInvalidRequest", f"Cannot convert the literal '{value}' to the expected type 'Edm.DateTime'.") from None
    return parsed.replace(tzinfo=None)


def to_utc(value: dict) -> tuple[dt.datetime, str]:
    """(aware UTC instant, zone name as given) of a dateTimeTimeZone object."""
    if not isinstance(value, dict) or "dateTime" not in value:
        raise GraphError(400, "ErrorInvalidRequest", "The dateTimeTimeZone value is invalid.")
    zone_name = value.get("timeZone") or "UTC"
    zone = resolve_zone(zone_name)
    wall = parse_wall_time(value["dateTime"])
    return wall.replace(tzinfo=zone).astimezone(dt.UTC), zone_name


def format_wall(instant: dt.datetime, zone_name: str) -> dict:
    local = instant.astimezone(resolve_zone(zone_name)).replace(tzinfo=None)
    return {"dateTime": local.strftime("%Y-%m-%dT%H:%M:%S.") + f"{local.microsecond:06d}0", "timeZone": zone_name}


def format_utc_offset(instant: dt.datetime) -> str:
    """DateTimeOffset as Graph writes it (``2026-01-01T10:00:00Z``)."""
    return instant.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_offset_time(value: str) -> dt.datetime:
    """startDateTime/endDateTime query values: the offset in the value, UTC if none."""
    text = value.strip().replace(" ", "+")
    if text.endswith("Z"):
        text = text[:-1] + "+00:00"
    try:
        parsed = dt.datetime.fromisoformat(text)
    except ValueError:
        raise GraphError(400, "ErrorInvalidParameter", f"The value '{value}' of parameter is invalid.") from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=dt.UTC)
    return parsed.astimezone(dt.UTC)
