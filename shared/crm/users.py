"""The signed-in CRM user's own settings (Users API ``type=CurrentUser``)."""

from __future__ import annotations

from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from shared.crm.session import CrmSession


def current_user_time_zone(session: CrmSession) -> str | None:
    """The member's time zone in the CRM (IANA), or None when the CRM gives none we know:
    their CRM events then land in Outlook in the zone of their own offsets (UTC if unknown)."""
    users = session.call("GET", "/users", repeatable=True, params={"type": "CurrentUser"}).body.get("users") or []
    zone = users[0].get("time_zone") if users else None
    if not isinstance(zone, str) or not zone:
        return None
    try:
        ZoneInfo(zone)
    except (ZoneInfoNotFoundError, ValueError):
        return None
    return zone
