"""The CRM API v8 on a member's data centre (``api_domain``), with their access token."""

from __future__ import annotations

from typing import Any

import requests

from shared.crm.errors import CrmError, CrmUnavailable
from shared.transport import retry


class CrmApi:
    def __init__(self, api_domain: str, access_token: str, session: requests.Session) -> None:
        self._base = f"{api_domain.rstrip('/')}/crm/v8"
        self._headers = {"Authorization": f"Zoho-oauthtoken {access_token}"}
        self._session = session

    def _get(self, path: str, **params: str) -> dict[str, Any]:
        try:
            response = retry.send(self._session, "GET", f"{self._base}{path}", headers=self._headers, params=params)
        except requests.RequestException as error:
            raise CrmUnavailable(0, "UNAVAILABLE", "the CRM could not be reached") from error
        body = response.json() if response.content else {}
        if response.status_code >= 400:
            raise CrmError(response.status_code, str(body.get("code", "ERROR")), str(body.get("message", "")))
        return dict(body)

    def current_user(self) -> dict[str, Any]:
        users = self._get("/users", type="CurrentUser").get("users") or []
        if not users:
            raise CrmError(404, "NO_CURRENT_USER", "the CRM did not say who is signed in")
        return dict(users[0])

    def org(self) -> dict[str, Any]:
        orgs = self._get("/org").get("org") or []
        if not orgs:
            raise CrmError(404, "NO_ORG", "the CRM did not describe the org")
        return dict(orgs[0])
