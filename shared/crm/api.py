"""Who just signed in to the CRM, and their org: the two calls a sign-in makes before the
person is a member, sent as every member's call is (``CrmSessions.signed_in``: one send path,
one error tree, the same retries and back-off)."""

from __future__ import annotations

from typing import Any

from shared.crm.errors import CrmError
from shared.crm.session import CrmSession


class CrmApi:
    def __init__(self, session: CrmSession) -> None:
        self._session = session

    def current_user(self) -> dict[str, Any]:
        users = self._session.call("GET", "/users", repeatable=True, params={"type": "CurrentUser"}).body.get("users") or []
        if not users:
            raise CrmError(404, "NO_CURRENT_USER", "the CRM did not say who is signed in")
        return dict(users[0])

    def org(self) -> dict[str, Any]:
        orgs = self._session.call("GET", "/org", repeatable=True).body.get("org") or []
        if not orgs:
            raise CrmError(404, "NO_ORG", "the CRM did not describe the org")
        return dict(orgs[0])
