"""Windows ⇄ IANA time-zone names for calendar sync (SPEC R3.9; graph-notes §2 dateTimeTimeZone).

Graph names a zone either by its Windows name ("W. Europe Standard Time") or by one of
the IANA names it lists; the CRM only ever shows an offset. Our canonical zone is the
IANA name, because ``zoneinfo`` can resolve it (offsets, DST) without any I/O beyond the
installed tzdata. The table holds the common zones (CLDR ``windowsZones``, territory
001, with current IANA spellings); a Windows name outside it is refused loudly
(``UnknownTimeZone``) rather than guessed, because a wrong zone moves the event.
"""

from __future__ import annotations

from datetime import datetime, tzinfo
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

UTC_NAME = "UTC"

WINDOWS_TO_IANA: dict[str, str] = {
    "Dateline Standard Time": "Etc/GMT+12",
    "UTC-11": "Etc/GMT+11",
    "Aleutian Standard Time": "America/Adak",
    "Hawaiian Standard Time": "Pacific/Honolulu",
    "Alaskan Standard Time": "America/Anchorage",
    "Pacific Standard Time (Mexico)": "America/Tijuana",
    "Pacific Standard Time": "America/Los_Angeles",
    "US Mountain Standard Time": "America/Phoenix",
    "Mountain Standard Time (Mexico)": "America/Mazatlan",
    "Mountain Standard Time": "America/Denver",
    "Central America Standard Time": "America/Guatemala",
    "Central Standard Time": "America/Chicago",
    "Central Standard Time (Mexico)": "America/Mexico_City",
    "Canada Central Standard Time": "America/Regina",
    "SA Pacific Standard Time": "America/Bogota",
    "Eastern Standard Time (Mexico)": "America/Cancun",
    "Eastern Standard Time": "America/New_York",
    "US Eastern Standard Time": "America/Indiana/Indianapolis",
    "Venezuela Standard Time": "America/Caracas",
    "Atlantic Standard Time": "America/Halifax",
    "SA Western Standard Time": "America/La_Paz",
    "Pacific SA Standard Time": "America/Santiago",
    "Newfoundland Standard Time": "America/St_Johns",
    "E. South America Standard Time": "America/Sao_Paulo",
    "SA Eastern Standard Time": "America/Cayenne",
    "Argentina Standard Time": "America/Argentina/Buenos_Aires",
    "Greenland Standard Time": "America/Nuuk",
    "Montevideo Standard Time": "America/Montevideo",
    "UTC-02": "Etc/GMT+2",
    "Azores Standard Time": "Atlantic/Azores",
    "Cape Verde Standard Time": "Atlantic/Cape_Verde",
    "UTC": UTC_NAME,
    "GMT Standard Time": "Europe/London",
    "Greenwich Standard Time": "Atlantic/Reykjavik",
    "Morocco Standard Time": "Africa/Casablanca",
    "W. Europe Standard Time": "Europe/Berlin",
    "Central Europe Standard Time": "Europe/Budapest",
    "Romance Standard Time": "Europe/Paris",
    "Central European Standard Time": "Europe/Warsaw",
    "W. Central Africa Standard Time": "Africa/Lagos",
    "GTB Standard Time": "Europe/Bucharest",
    "Middle East Standard Time": "Asia/Beirut",
    "Egypt Standard Time": "Africa/Cairo",
    "E. Europe Standard Time": "Europe/Chisinau",
    "South Africa Standard Time": "Africa/Johannesburg",
    "FLE Standard Time": "Europe/Kyiv",
    "Israel Standard Time": "Asia/Jerusalem",
    "Turkey Standard Time": "Europe/Istanbul",
    "Jordan Standard Time": "Asia/Amman",
    "Kaliningrad Standard Time": "Europe/Kaliningrad",
    "Arabic Standard Time": "Asia/Baghdad",
    "Arab Standard Time": "Asia/Riyadh",
    "Belarus Standard Time": "Europe/Minsk",
    "Russian Standard Time": "Europe/Moscow",
    "E. Africa Standard Time": "Africa/Nairobi",
    "Iran Standard Time": "Asia/Tehran",
    "Arabian Standard Time": "Asia/Dubai",
    "Azerbaijan Standard Time": "Asia/Baku",
    "Georgian Standard Time": "Asia/Tbilisi",
    "Mauritius Standard Time": "Indian/Mauritius",
    "Afghanistan Standard Time": "Asia/Kabul",
    "West Asia Standard Time": "Asia/Tashkent",
    "Ekaterinburg Standard Time": "Asia/Yekaterinburg",
    "Pakistan Standard Time": "Asia/Karachi",
    "India Standard Time": "Asia/Kolkata",
    "Sri Lanka Standard Time": "Asia/Colombo",
    "Nepal Standard Time": "Asia/Kathmandu",
    "Central Asia Standard Time": "Asia/Almaty",
    "Bangladesh Standard Time": "Asia/Dhaka",
    "Myanmar Standard Time": "Asia/Yangon",
    "SE Asia Standard Time": "Asia/Bangkok",
    "N. Central Asia Standard Time": "Asia/Novosibirsk",
    "North Asia Standard Time": "Asia/Krasnoyarsk",
    "China Standard Time": "Asia/Shanghai",
    "Singapore Standard Time": "Asia/Singapore",
    "W. Australia Standard Time": "Australia/Perth",
    "Taipei Standard Time": "Asia/Taipei",
    "Tokyo Standard Time": "Asia/Tokyo",
    "Korea Standard Time": "Asia/Seoul",
    "Cen. Australia Standard Time": "Australia/Adelaide",
    "AUS Central Standard Time": "Australia/Darwin",
    "E. Australia Standard Time": "Australia/Brisbane",
    "AUS Eastern Standard Time": "Australia/Sydney",
    "West Pacific Standard Time": "Pacific/Port_Moresby",
    "Tasmania Standard Time": "Australia/Hobart",
    "Vladivostok Standard Time": "Asia/Vladivostok",
    "Central Pacific Standard Time": "Pacific/Guadalcanal",
    "New Zealand Standard Time": "Pacific/Auckland",
    "UTC+12": "Etc/GMT-12",
    "Fiji Standard Time": "Pacific/Fiji",
    "Tonga Standard Time": "Pacific/Tongatapu",
    "Samoa Standard Time": "Pacific/Apia",
    "Line Islands Standard Time": "Pacific/Kiritimati",
}

# IANA names Graph or the CRM commonly report that are not the table's canonical entry.
_IANA_ALIASES_TO_WINDOWS: dict[str, str] = {
    "Etc/UTC": "UTC",
    "Etc/GMT": "UTC",
    "GMT": "UTC",
    "Europe/Dublin": "GMT Standard Time",
    "Europe/Lisbon": "GMT Standard Time",
    "Europe/Amsterdam": "W. Europe Standard Time",
    "Europe/Rome": "W. Europe Standard Time",
    "Europe/Vienna": "W. Europe Standard Time",
    "Europe/Zurich": "W. Europe Standard Time",
    "Europe/Stockholm": "W. Europe Standard Time",
    "Europe/Oslo": "W. Europe Standard Time",
    "Europe/Luxembourg": "W. Europe Standard Time",
    "Europe/Madrid": "Romance Standard Time",
    "Europe/Brussels": "Romance Standard Time",
    "Europe/Copenhagen": "Romance Standard Time",
    "Europe/Prague": "Central Europe Standard Time",
    "Europe/Belgrade": "Central Europe Standard Time",
    "Europe/Helsinki": "FLE Standard Time",
    "Europe/Kiev": "FLE Standard Time",
    "Europe/Riga": "FLE Standard Time",
    "Europe/Vilnius": "FLE Standard Time",
    "Europe/Tallinn": "FLE Standard Time",
    "Europe/Sofia": "FLE Standard Time",
    "Europe/Athens": "GTB Standard Time",
    "America/Toronto": "Eastern Standard Time",
    "America/Detroit": "Eastern Standard Time",
    "America/Vancouver": "Pacific Standard Time",
    "America/Edmonton": "Mountain Standard Time",
    "America/Winnipeg": "Central Standard Time",
    "America/Indianapolis": "US Eastern Standard Time",
    "America/Buenos_Aires": "Argentina Standard Time",
    "America/Godthab": "Greenland Standard Time",
    "Asia/Calcutta": "India Standard Time",
    "Asia/Hong_Kong": "China Standard Time",
    "Asia/Jakarta": "SE Asia Standard Time",
    "Asia/Kuala_Lumpur": "Singapore Standard Time",
    "Asia/Manila": "Singapore Standard Time",
    "Australia/Melbourne": "AUS Eastern Standard Time",
    "Australia/Canberra": "AUS Eastern Standard Time",
}

IANA_TO_WINDOWS: dict[str, str] = {
    **{iana: windows for windows, iana in WINDOWS_TO_IANA.items()},
    **_IANA_ALIASES_TO_WINDOWS,
}


class UnknownTimeZone(ValueError):
    """A zone name neither the table nor tzdata knows: refused, never guessed."""


def iana_name(name: str) -> str:
    """The IANA name of a Windows or IANA zone name as Graph reports it.

    Raises:
        UnknownTimeZone: neither a known Windows name nor an IANA name tzdata has.
    """
    name = name.strip()
    if name in WINDOWS_TO_IANA:
        return WINDOWS_TO_IANA[name]
    if name in ("Etc/UTC", "Etc/GMT", "GMT", "tzone://Microsoft/Utc"):
        return UTC_NAME
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as error:
        raise UnknownTimeZone(f"unknown time zone {name!r}") from error
    return name


def zone(iana: str | None) -> tzinfo:
    """The ``tzinfo`` of a canonical (IANA) zone name; None is UTC."""
    return ZoneInfo(iana or UTC_NAME)


def graph_zone_name(iana: str | None) -> str:
    """The name to write in a Graph ``dateTimeTimeZone``: the Windows name where the
    table has one (every Exchange build knows those), else the IANA name."""
    if not iana:
        return UTC_NAME
    return IANA_TO_WINDOWS.get(iana, iana)


def matches_offsets(iana: str, *instants: datetime) -> bool:
    """Whether every aware ``instant`` carries the offset ``iana`` has at that instant:
    used to recognise the CRM user's zone behind the CRM's bare offsets."""
    tz = zone(iana)
    return all(instant.utcoffset() == instant.astimezone(tz).utcoffset() for instant in instants)
