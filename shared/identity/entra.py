"""Microsoft identity platform through MSAL: the sign-in (auth code + PKCE, multi-tenant),
the admin consent URL, and app-only tokens for Graph per tenant."""

from __future__ import annotations

import logging
import threading
import time
import warnings
from collections import OrderedDict
from collections.abc import Callable
from typing import Any
from urllib.parse import urlencode

import msal
import requests

GRAPH_DEFAULT_SCOPE = "https://graph.microsoft.com/.default"
SIGN_IN_SCOPES = ["User.Read"]  # MSAL adds openid, profile and offline_access itself
# Microsoft's error_description ("AADSTS65004: ... Trace ID ... Timestamp ...") is a few
# hundred characters; the query string is anyone's to write, and we log and show it.
MAX_ERROR_DESCRIPTION = 500
# Right after admin consent, Entra's token endpoint may not see the app's new service principal
# in the tenant for a few seconds (directory replication): it answers as if no one had consented.
# These are the answers worth waiting out; any other refusal is final at once.
NOT_YET_REPLICATED_ERRORS = frozenset({"unauthorized_client", "invalid_client"})
NOT_YET_REPLICATED_CODES = ("AADSTS700016", "AADSTS650051")
CONSENT_REPLICATION_WAIT_SECONDS = 10.0
# MSAL apps kept, the least recently used dropped past it: one per tenant whose Graph we call, and a
# long-lived instance meets every tenant in time. A dropped tenant's next call makes its app again
# (its OpenID configuration and an app token: two requests).
MAX_TENANT_APPS = 1_000

log = logging.getLogger(__name__)


class SignInFailed(Exception):
    """Microsoft refused or we could not complete a sign-in or token request."""

    def __init__(self, message: str, *, code: str = "") -> None:
        super().__init__(message)
        self.code = code


def not_yet_replicated(error: SignInFailed) -> bool:
    """Whether a refused app-only token may be a consent that has not replicated yet."""
    return error.code in NOT_YET_REPLICATED_ERRORS or any(code in str(error) for code in NOT_YET_REPLICATED_CODES)


class EntraApp:
    """The product's multi-tenant app registration."""

    def __init__(self, authority_host: str, client_id: str, client_secret: str, session: requests.Session) -> None:
        self.authority_host = authority_host.rstrip("/")
        self.client_id = client_id
        self._secret = client_secret
        self._session = session
        self._apps: OrderedDict[str, msal.ConfidentialClientApplication] = OrderedDict()
        self._lock = threading.Lock()  # guards the two maps, never held across a call
        self._building: dict[str, threading.Lock] = {}  # a lock per tenant whose app is being made

    def _new_app(self, tenant: str) -> msal.ConfidentialClientApplication:
        return msal.ConfidentialClientApplication(
            self.client_id,
            client_credential=self._secret,
            authority=f"{self.authority_host}/{tenant}",
            http_client=self._session,
            # The authority host comes from our settings, so there is nothing to discover.
            instance_discovery=False,
        )

    def _app(self, tenant: str) -> msal.ConfidentialClientApplication:
        """One MSAL app per authority, the ``MAX_TENANT_APPS`` most recently used kept (each one's
        cache holds its app tokens).

        Making one asks the authority for its OpenID configuration (MSAL does it in the
        constructor): under one lock for every tenant, 100 tenants enabling at once held every
        other tenant's Graph calls behind their round trips (propagation-under-load: steps of
        20 s for a one-event change). So the map's lock is held for lookups only, and an app is
        made under its own tenant's lock."""
        with self._lock:
            app = self._apps.get(tenant)
            if app is not None:
                self._apps.move_to_end(tenant)
                return app
            building = self._building.setdefault(tenant, threading.Lock())
        with building:
            with self._lock:
                app = self._apps.get(tenant)
            if app is None:
                app = self._new_app(tenant)
                with self._lock:
                    self._apps[tenant] = app
                    self._building.pop(tenant, None)
                    while len(self._apps) > MAX_TENANT_APPS:
                        self._apps.popitem(last=False)
            return app

    def start_sign_in(self, redirect_uri: str, *, login_hint: str | None = None) -> dict[str, Any]:
        """Begin the auth code flow; the returned flow (with its PKCE verifier) is a secret
        to keep server-side until the callback."""
        # response_mode=query, not form_post: the callback must carry our SameSite=Lax session
        # cookie, which browsers do not send on a cross-site POST. MSAL warns about it; the
        # code is still bound to the PKCE verifier and the single-use state.
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="response_mode='form_post' is recommended")
            flow = self._app("organizations").initiate_auth_code_flow(
                SIGN_IN_SCOPES, redirect_uri=redirect_uri, login_hint=login_hint, response_mode="query"
            )
        return dict(flow)

    def finish_sign_in(self, flow: dict[str, Any], params: dict[str, str]) -> dict[str, Any]:
        """Redeem the code; return MSAL's result (``id_token``, ``id_token_claims`` ...)."""
        if "error" in params:
            said = params.get("error_description") or params["error"]
            raise SignInFailed(said[:MAX_ERROR_DESCRIPTION], code=params["error"][:MAX_ERROR_DESCRIPTION])
        try:
            result = self._app("organizations").acquire_token_by_auth_code_flow(flow, params)
        except ValueError as error:  # state mismatch, nonce mismatch, missing code
            raise SignInFailed(f"the sign-in answer does not match the sign-in we started ({error})") from error
        except requests.RequestException as error:
            raise SignInFailed("Microsoft could not be reached") from error
        if "error" in result:
            raise SignInFailed(result.get("error_description") or result["error"], code=result["error"])
        return dict(result)

    def admin_consent_url(self, redirect_uri: str, state: str, tenant: str = "organizations") -> str:
        query = urlencode(
            {"client_id": self.client_id, "scope": GRAPH_DEFAULT_SCOPE, "redirect_uri": redirect_uri, "state": state}
        )
        return f"{self.authority_host}/{tenant}/v2.0/adminconsent?{query}"

    def app_token(self, tenant_id: str) -> str:
        """An app-only Graph token for one tenant (from MSAL's cache while it is valid).

        A refusal drops the tenant's MSAL app: MSAL would replay the token endpoint's 400 for
        60 s without asking again (its throttling cache), so an administrator's consent given
        just after (an install's second try, a withdrawn consent granted back) would be
        refused for a minute although Entra now says yes. Our callers stop on a refusal (the
        install says so, the sync pauses), so asking again is never a storm."""
        try:
            return self._token_from(self._app(tenant_id))
        except SignInFailed:
            with self._lock:
                self._apps.pop(tenant_id, None)
            raise

    @staticmethod
    def _token_from(app: msal.ConfidentialClientApplication) -> str:
        try:
            result = app.acquire_token_for_client([GRAPH_DEFAULT_SCOPE])
        except requests.RequestException as error:
            raise SignInFailed("Microsoft could not be reached") from error
        if "access_token" not in result:
            raise SignInFailed(result.get("error_description") or "no token", code=result.get("error", ""))
        return str(result["access_token"])

    def app_token_after_consent(
        self,
        tenant_id: str,
        *,
        within: float = CONSENT_REPLICATION_WAIT_SECONDS,
        first_wait: float = 0.5,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
    ) -> str:
        """An app-only token for a tenant whose administrator has just consented: Entra may
        refuse it for a few seconds while the new service principal replicates, so a refusal
        that looks like that (``not_yet_replicated``) is asked again, backing off (0.5, 1, 2,
        4 s ...), for up to ``within`` seconds; any other refusal, or the last one, is raised.

        Each new attempt goes through a fresh MSAL app: MSAL remembers an HTTP 400 answer for 60 s
        and would hand the same refusal back without asking Entra again. The app that succeeds
        becomes the tenant's (its cache holds the token)."""
        deadline = clock() + within
        wait, attempt = first_wait, 1
        app = self._app(tenant_id)
        while True:
            try:
                token = self._token_from(app)
            except SignInFailed as error:
                if not not_yet_replicated(error) or clock() + wait > deadline:
                    raise
                log.info("app-only token for tenant %s refused (%s), attempt %d: the consent may not have "
                         "replicated yet; asking again in %.1f s", tenant_id, error.code or "error", attempt, wait)
                sleep(wait)
                wait, attempt = wait * 2, attempt + 1
                app = self._new_app(tenant_id)
                continue
            if attempt > 1:
                with self._lock:
                    self._apps[tenant_id] = app
            return token
