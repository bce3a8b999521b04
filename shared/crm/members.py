"""May this member manage the org's users? Asked of the CRM with the member's own token.

Two conditions, both read through the CRM API (never from our own copies, which can lag a
profile change made in the CRM):

- a paid edition: ``GET /org`` → ``license_details.paid`` (false only for the free edition);
- the Manage Users permission: ``GET /users?type=CurrentUser`` → profile id →
  ``GET /settings/profiles/{id}`` → ``permissions_details`` has ``Crm_Implied_Manage_Users``
  enabled.

Answers are cached briefly per member (60 s): an invitation page asks several times in a row,
and each check costs three calls of the org's daily credits.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, Literal

from pydantic import BaseModel

from shared.crm.directory import MANAGE_USERS
from shared.crm.errors import CrmError
from shared.crm.models import CrmMemberAccess
from shared.crm.session import CrmSession
from shared.expiring_cache import ExpiringCache

CACHE_SECONDS = 60.0
CACHED_MEMBERS = 10_000  # a bound, not a working set: a long-lived instance meets every member in time


class ManageUsersVerdict(BaseModel):
    """``allowed`` only when both hold; ``reason`` names the first condition that failed."""

    allowed: bool
    reason: Literal["allowed", "not_paid_edition", "no_manage_users"]
    paid_edition: bool
    manage_users: bool
    profile_name: str = ""


class MemberPermissions:
    """Checks, per member, whether they may manage users; thread-safe, cached ``ttl`` seconds."""

    def __init__(
        self,
        session_for: Callable[[CrmMemberAccess], CrmSession],
        *,
        ttl: float = CACHE_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._session_for = session_for
        self._ttl = ttl
        self._clock = clock
        self._cache: ExpiringCache[tuple[str, str], ManageUsersVerdict] = ExpiringCache(CACHED_MEMBERS, clock)

    def may_manage_users(self, member: CrmMemberAccess) -> ManageUsersVerdict:
        key = (member.org_id, member.user_id)
        cached = self._cache.get(key)
        if cached is not None:
            return cached.value
        verdict = self._ask(self._session_for(member))
        self._cache.put(key, verdict, self._ttl)
        return verdict

    def forget(self, member: CrmMemberAccess) -> None:
        """Drop the cached answer (e.g. right after the member's profile was changed)."""
        self._cache.forget((member.org_id, member.user_id))

    def _ask(self, session: CrmSession) -> ManageUsersVerdict:
        paid = _paid_edition(session)
        profile = _current_profile(session)
        manage_users = _profile_has(session, str(profile.get("id", "")), MANAGE_USERS)
        reason: Literal["allowed", "not_paid_edition", "no_manage_users"] = (
            "not_paid_edition" if not paid else "no_manage_users" if not manage_users else "allowed"
        )
        return ManageUsersVerdict(allowed=reason == "allowed", reason=reason, paid_edition=paid,
                                  manage_users=manage_users, profile_name=str(profile.get("name", "")))


def _paid_edition(session: CrmSession) -> bool:
    orgs = session.call("GET", "/org", repeatable=True).body.get("org") or []
    if not orgs:
        raise CrmError(502, "NO_ORG", "the CRM did not describe the org")
    return (orgs[0].get("license_details") or {}).get("paid") is True


def _current_profile(session: CrmSession) -> dict[str, Any]:
    users = session.call("GET", "/users", repeatable=True, params={"type": "CurrentUser"}).body.get("users") or []
    if not users or not isinstance(users[0].get("profile"), dict):
        raise CrmError(502, "NO_CURRENT_USER", "the CRM did not say who is signed in, or their profile")
    return dict(users[0]["profile"])


def _profile_has(session: CrmSession, profile_id: str, permission: str) -> bool:
    profiles = session.call("GET", f"/settings/profiles/{profile_id}", repeatable=True).body.get("profiles") or []
    details = profiles[0].get("permissions_details") if profiles else None
    return any(p.get("name") == permission and p.get("enabled") is True for p in details or [])
