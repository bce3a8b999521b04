"""Zoho Accounts OAuth 2.0 for Associate My Account (R1.6, R2.3): the authorization URL on
the default data centre, then the code redeemed on the data centre the person's account
lives in (``accounts-server`` on the redirect), which must be one of the CRM's own."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

import requests
from pydantic import BaseModel

from shared.crm.errors import CrmError, CrmUnavailable, UntrustedCrmHost
from shared.transport import retry

CRM_SCOPES = (
    "ZohoCRM.modules.contacts.ALL",
    "ZohoCRM.modules.events.ALL",
    "ZohoCRM.users.ALL",
    "ZohoCRM.settings.profiles.READ",
    "ZohoCRM.settings.fields.READ",
    "ZohoCRM.org.READ",
    "ZohoCRM.notifications.ALL",
)


class CrmTokens(BaseModel):
    access_token: str
    refresh_token: str | None = None
    expires_in: int = 3600
    api_domain: str
    accounts_server: str


class ZohoOAuth:
    def __init__(
        self,
        default_accounts_server: str,
        client_id: str,
        client_secret: str,
        session: requests.Session,
        *,
        allowed_accounts_servers: frozenset[str],
        allowed_api_domains: frozenset[str],
    ) -> None:
        self._default = default_accounts_server.rstrip("/")
        self._client_id = client_id
        self._secret = client_secret
        self._session = session
        self._accounts_servers = allowed_accounts_servers | {self._default}
        self._api_domains = allowed_api_domains

    def authorize_url(self, redirect_uri: str, state: str) -> str:
        query = urlencode(
            {
                "scope": ",".join(CRM_SCOPES),
                "client_id": self._client_id,
                "response_type": "code",
                "access_type": "offline",
                "prompt": "consent",
                "redirect_uri": redirect_uri,
                "state": state,
            }
        )
        return f"{self._default}/oauth/v2/auth?{query}"

    def trusted_accounts_server(self, server: str | None) -> str:
        server = (server or self._default).rstrip("/")
        if server not in self._accounts_servers:
            raise UntrustedCrmHost(400, "UNTRUSTED_ACCOUNTS_SERVER", f"{server} is not a CRM data centre")
        return server

    def trusted_api_domain(self, domain: str) -> str:
        domain = domain.rstrip("/")
        if domain not in self._api_domains:
            raise UntrustedCrmHost(400, "UNTRUSTED_API_DOMAIN", f"{domain} is not a CRM API domain")
        return domain

    def redeem_code(self, code: str, redirect_uri: str, accounts_server: str | None) -> CrmTokens:
        server = self.trusted_accounts_server(accounts_server)
        body = self._token_call(
            server,
            {
                "grant_type": "authorization_code",
                "client_id": self._client_id,
                "client_secret": self._secret,
                "redirect_uri": redirect_uri,
                "code": code,
            },
        )
        return CrmTokens(**{**body, "api_domain": self.trusted_api_domain(body["api_domain"]), "accounts_server": server})

    def refresh(self, refresh_token: str, accounts_server: str) -> CrmTokens:
        server = self.trusted_accounts_server(accounts_server)
        body = self._token_call(
            server,
            {
                "grant_type": "refresh_token",
                "client_id": self._client_id,
                "client_secret": self._secret,
                "refresh_token": refresh_token,
            },
        )
        return CrmTokens(
            **{**body, "refresh_token": refresh_token, "api_domain": self.trusted_api_domain(body["api_domain"]),
               "accounts_server": server}
        )

    def _token_call(self, server: str, form: dict[str, str]) -> dict[str, Any]:
        try:
            # A code is single-use, so the redemption is never repeated blindly.
            response = retry.send(self._session, "POST", f"{server}/oauth/v2/token", data=form, idempotent=False)
        except requests.RequestException as error:
            raise CrmUnavailable(0, "UNAVAILABLE", "the CRM's sign-in service could not be reached") from error
        try:
            body = response.json()
        except ValueError:
            body = {}
        if response.status_code >= 400 or "error" in body or "access_token" not in body:
            code = str(body.get("error", f"HTTP_{response.status_code}"))
            raise CrmError(response.status_code, code, f"the CRM refused the sign-in ({code})")
        return dict(body)
