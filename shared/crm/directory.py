"""``CrmDirectory``: the CRM's first-party provisioning API, which the product uses to find
a CRM account by e-mail, create an org with its super administrator, add users, list the
members holding a permission, grant the product a token for a user, and sign a person into
the CRM's web UI. (Zoho does this internally for its own Office 365 integration.)"""

from __future__ import annotations

from typing import Any

import requests
from pydantic import BaseModel

from shared.crm.errors import CrmError, CrmUnavailable
from shared.transport import retry

MANAGE_USERS = "Crm_Implied_Manage_Users"


class CrmMember(BaseModel):
    org_id: str
    org_name: str
    user_id: str
    email: str
    first_name: str = ""
    last_name: str = ""
    dc: str
    edition: str
    paid: bool
    profile_name: str
    is_super_admin: bool
    manage_users: bool
    status: str
    confirmed: bool = False  # the CRM confirmed this address belongs to the account
    accounts_server: str
    api_domain: str

    @classmethod
    def from_wire(cls, data: dict[str, Any]) -> CrmMember:
        return cls(**{**data, "profile_name": data.get("profile", {}).get("name", "")})


class CrmOrg(BaseModel):
    org_id: str
    org_name: str
    edition: str
    paid: bool
    dc: str


class CrmGrant(BaseModel):
    """Tokens the CRM issued to the product for one user."""

    access_token: str
    refresh_token: str
    expires_in: int
    api_domain: str
    accounts_server: str


class CrmDirectory:
    def __init__(self, base_url: str, client_id: str, client_secret: str, session: requests.Session) -> None:
        self._base = base_url.rstrip("/")
        self._auth = (client_id, client_secret)
        self._session = session

    def _call(self, method: str, path: str, *, idempotent: bool | None = None, **kwargs: Any) -> dict[str, Any]:
        try:
            response = retry.send(
                self._session, method, f"{self._base}{path}", auth=self._auth, idempotent=idempotent, **kwargs
            )
        except requests.RequestException as error:
            raise CrmUnavailable(0, "UNAVAILABLE", f"the CRM could not be reached ({type(error).__name__})") from error
        try:
            body = response.json() if response.content else {}
        except ValueError:
            body = {}
        if response.status_code >= 400:
            error_class = CrmUnavailable if response.status_code in (429, 502, 503, 504) else CrmError
            raise error_class(
                response.status_code, str(body.get("code", "ERROR")), str(body.get("message", response.reason)),
                body.get("details") if isinstance(body.get("details"), dict) else None,
            )
        return body

    def find_account(self, email: str) -> CrmMember | None:
        """The CRM account using this e-mail (its active membership first), or None."""
        try:
            body = self._call("GET", "/accounts", params={"email": email})
        except CrmError as error:
            if error.status == 404:
                return None
            raise
        return CrmMember.from_wire(body["account"])

    def create_org(self, org_name: str, *, email: str, first_name: str, last_name: str) -> tuple[bool, CrmOrg, CrmMember]:
        """Create an org headed by this person (idempotent on the e-mail: a repeat returns the
        org they already head). Returns (created, org, super admin)."""
        body = self._call(
            "POST",
            "/orgs",
            idempotent=True,  # the directory answers a repeat with the first org
            json={"org_name": org_name, "super_admin": {"email": email, "first_name": first_name, "last_name": last_name}},
        )
        return bool(body["created"]), CrmOrg(**body["org"]), CrmMember.from_wire(body["super_admin"])

    def add_user(self, org_id: str, *, email: str, first_name: str, last_name: str, profile: str) -> CrmMember:
        body = self._call(
            "POST",
            f"/orgs/{org_id}/users",
            json={"email": email, "first_name": first_name, "last_name": last_name, "profile": profile},
        )
        return CrmMember.from_wire(body["member"])

    def org(self, org_id: str) -> CrmOrg:
        body = self._call("GET", f"/orgs/{org_id}")
        return CrmOrg(**body["org"])

    def list_members(self, org_id: str, permission: str | None = None) -> list[CrmMember]:
        params = {"permission": permission} if permission else {}
        body = self._call("GET", f"/orgs/{org_id}/members", params=params)
        return [CrmMember.from_wire(m) for m in body["members"]]

    def grant(self, user_id: str) -> CrmGrant:
        body = self._call("POST", f"/users/{user_id}/grant", idempotent=True, json={})
        return CrmGrant(**body)

    def signin_link(self, user_id: str) -> str:
        body = self._call("POST", f"/users/{user_id}/signin-link", idempotent=True, json={})
        return str(body["url"])
