"""Entra ID endpoints: discovery, JWKS, token grants, admin consent, and MSAL against them."""

from __future__ import annotations

import hashlib
import re
import time
from urllib.parse import parse_qs, urlsplit

import jwt
import msal
import pytest
import requests

from .conftest import APP_ID, APP_SECRET, CONTOSO, FABRIKAM, GRAPH_DEFAULT, token_for

CALLBACK = "http://localhost:7071/api/auth/callback"
ADMIN_CALLBACK = "http://127.0.0.1:7071/api/auth/admin-consent/callback"


def test_discovery_per_tenant_common_and_organizations(http, m365):
    for segment, issuer in ((CONTOSO, f"{m365.base_url}/{CONTOSO}/v2.0"), ("common", f"{m365.base_url}/{{tenantid}}/v2.0"),
                            ("organizations", f"{m365.base_url}/{{tenantid}}/v2.0")):
        config = http.get(f"{m365.base_url}/{segment}/v2.0/.well-known/openid-configuration").json()
        assert config["issuer"] == issuer
        assert config["authorization_endpoint"] == f"{m365.base_url}/{segment}/oauth2/v2.0/authorize"
        assert "S256" in config["code_challenge_methods_supported"]
    assert http.get(f"{m365.base_url}/nonexistent-tenant/v2.0/.well-known/openid-configuration").status_code == 400


def test_client_credentials_refused_before_admin_consent_then_granted(http, m365):
    data = {"grant_type": "client_credentials", "client_id": APP_ID, "client_secret": APP_SECRET, "scope": GRAPH_DEFAULT}
    refused = http.post(f"{m365.base_url}/{CONTOSO}/oauth2/v2.0/token", data=data)
    assert refused.status_code == 400
    assert refused.json()["error"] == "unauthorized_client"
    assert refused.json()["error_codes"] == [700016]
    wrong_secret = http.post(f"{m365.base_url}/{CONTOSO}/oauth2/v2.0/token", data={**data, "client_secret": "nope"})
    assert wrong_secret.status_code == 401 and wrong_secret.json()["error"] == "invalid_client"
    token = token_for(http, m365)
    keys = http.get(f"{m365.base_url}/discovery/v2.0/keys").json()
    key = jwt.PyJWK(keys["keys"][0]).key
    claims = jwt.decode(token, key, algorithms=["RS256"], audience="https://graph.microsoft.com")
    assert claims["tid"] == CONTOSO and claims["iss"] == f"https://sts.windows.net/{CONTOSO}/"
    assert set(claims["roles"]) == {"Calendars.ReadWrite", "Contacts.ReadWrite", "User.Read.All", "Mail.Send"}
    assert "scp" not in claims and claims["appid"] == APP_ID


def test_client_credentials_needs_default_scope(http, m365):
    token_for(http, m365)
    response = http.post(f"{m365.base_url}/{CONTOSO}/oauth2/v2.0/token", data={
        "grant_type": "client_credentials", "client_id": APP_ID, "client_secret": APP_SECRET,
        "scope": "https://graph.microsoft.com/User.Read.All"})
    assert response.status_code == 400 and "AADSTS1002012" in response.json()["error_description"]


def _msal_app(m365, http, tenant=CONTOSO):
    return msal.ConfidentialClientApplication(APP_ID, client_credential=APP_SECRET, authority=f"{m365.base_url}/{tenant}",
                                              instance_discovery=False, http_client=http)


def test_msal_client_credentials_and_ropc(http, m365):
    http.post(f"{m365.base_url}/__emulator/consents", json={"tenantId": CONTOSO, "clientId": APP_ID}).raise_for_status()
    app = _msal_app(m365, http)
    result = app.acquire_token_for_client(scopes=[GRAPH_DEFAULT])
    assert "access_token" in result, result
    # ROPC over plain HTTP, as scripts do: MSAL's user-realm discovery drops the authority's port.
    ropc = {"grant_type": "password", "client_id": APP_ID, "client_secret": APP_SECRET, "scope": "openid profile offline_access User.Read"}
    wrong = http.post(f"{m365.base_url}/{CONTOSO}/oauth2/v2.0/token", data={**ropc, "username": "megan@contoso.test", "password": "x"})
    assert wrong.json().get("error") == "invalid_grant" and "AADSTS50126" in wrong.json()["error_description"]
    good = http.post(f"{m365.base_url}/{CONTOSO}/oauth2/v2.0/token",
                     data={**ropc, "username": "adele@contoso.test", "password": "Contoso-Demo-1"}).json()
    assert "access_token" in good, good
    claims = jwt.decode(good["id_token"], options={"verify_signature": False})
    assert claims["preferred_username"] == "adele@contoso.test" and claims["tid"] == CONTOSO
    assert "62e90394-69f5-4237-9190-012177145e10" in claims["wids"]  # Global Administrator
    refreshed = app.acquire_token_by_refresh_token(good["refresh_token"], scopes=["User.Read"])
    assert "access_token" in refreshed, refreshed
    me = http.get(f"{m365.graph_url}/me", headers={"Authorization": f"Bearer {refreshed['access_token']}"})
    assert me.status_code == 200 and me.json()["userPrincipalName"] == "adele@contoso.test"


def test_expired_token_is_refused_by_graph(http, m365):
    from emulators.m365.identity.tokens import issue_access_token

    emulator = m365.app.extensions["m365"]
    token = issue_access_token(emulator.signing_key, m365.store, CONTOSO, m365.store.apps[APP_ID],
                               "https://graph.microsoft.com", roles=["User.Read.All"], lifetime=-10)
    response = http.get(f"{m365.graph_url}/users", headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "InvalidAuthenticationToken"
    assert response.headers["request-id"] == response.json()["error"]["innerError"]["request-id"]
    assert http.get(f"{m365.graph_url}/users").status_code == 401
    other_tenant = token_for(http, m365, FABRIKAM)
    denied = http.get(f"{m365.graph_url}/users/megan@contoso.test/calendars", headers={"Authorization": f"Bearer {other_tenant}"})
    assert denied.status_code == 404


def _follow_form(session: requests.Session, html: str, base: str, **fields) -> requests.Response:
    action = re.search(r'<form method="post" action="([^"]+)"', html).group(1)
    flow = re.search(r'name="flow" value="([^"]+)"', html).group(1)
    return session.post(base + action, data={"flow": flow, **fields}, allow_redirects=False)


def test_admin_consent_by_non_admin_is_refused_and_admin_grants(http, m365):
    url = (f"{m365.base_url}/organizations/v2.0/adminconsent?client_id={APP_ID}&scope={GRAPH_DEFAULT}"
           f"&redirect_uri={ADMIN_CALLBACK}&state=s1")
    person = requests.Session()
    person.trust_env, person.verify = False, str(m365.ca_cert_path)
    page = person.get(url)
    assert "Sign in" in page.text and 'name="password"' in page.text
    wrong = _follow_form(person, page.text, m365.base_url, email="megan@contoso.test", password="bad")
    assert wrong.status_code == 200 and "incorrect" in wrong.text
    refused = _follow_form(person, page.text, m365.base_url, email="megan@contoso.test", password="Contoso-Demo-1")
    query = parse_qs(urlsplit(refused.headers["Location"]).query)
    assert refused.headers["Location"].startswith(ADMIN_CALLBACK)
    assert query["error"] == ["access_denied"] and query["state"] == ["s1"] and "admin_consent" not in query

    admin = requests.Session()
    admin.trust_env, admin.verify = False, str(m365.ca_cert_path)
    page = admin.get(url.replace("state=s1", "state=s2"))
    consent = _follow_form(admin, page.text, m365.base_url, email="adele@contoso.test", password="Contoso-Demo-1")
    assert "Accept" in consent.text
    done = _follow_form(admin, consent.text, m365.base_url, decision="accept")
    query = parse_qs(urlsplit(done.headers["Location"]).query)
    assert query["admin_consent"] == ["True"] and query["tenant"] == [CONTOSO] and query["state"] == ["s2"]
    assert "access_token" in _msal_app(m365, http).acquire_token_for_client(scopes=[GRAPH_DEFAULT])


@pytest.mark.browser
def test_msal_auth_code_flow_with_pkce_through_the_sign_in_page(http, m365, m365_browser):
    app = _msal_app(m365, http, tenant="organizations")
    flow = app.initiate_auth_code_flow(["User.Read"], redirect_uri=CALLBACK, response_mode="form_post")
    assert "code_challenge_method=S256" in flow["auth_uri"]
    context = m365_browser.new_context()
    captured: dict = {}

    def callback(route):
        captured["url"] = route.request.url
        captured["form"] = route.request.post_data
        route.fulfill(status=200, body="signed in")

    context.route("http://localhost:7071/**", callback)
    page = context.new_page()
    page.goto(flow["auth_uri"])
    page.get_by_label("Email").fill("megan@contoso.test")
    page.get_by_label("Password").fill("wrong-password")
    page.get_by_role("button", name="Sign in").click()
    assert "incorrect" in page.get_by_role("alert").inner_text()
    page.get_by_label("Password").fill("Contoso-Demo-1")
    page.get_by_role("button", name="Sign in").click()
    page.get_by_role("button", name="Accept").click()
    deadline = time.monotonic() + 10
    while "form" not in captured and time.monotonic() < deadline:
        page.wait_for_timeout(50)
    context.close()
    response = {k: v[0] for k, v in parse_qs(captured["form"]).items()}
    assert response["state"] == flow["state"]
    result = app.acquire_token_by_auth_code_flow(flow, response)
    assert "access_token" in result, result
    claims = result["id_token_claims"]
    assert claims["nonce"] == hashlib.sha256(flow["nonce"].encode()).hexdigest()  # MSAL sends the hash
    assert claims["preferred_username"] == "megan@contoso.test"
    assert claims["iss"] == f"{m365.base_url}/{CONTOSO}/v2.0" and claims["aud"] == APP_ID
    access = jwt.decode(result["access_token"], options={"verify_signature": False})
    assert "User.Read" in access["scp"].split() and access["upn"] == "megan@contoso.test"


def test_pkce_is_enforced_and_verifier_checked(http, m365):
    person = requests.Session()
    person.trust_env, person.verify = False, str(m365.ca_cert_path)
    no_pkce = person.get(f"{m365.base_url}/common/oauth2/v2.0/authorize?client_id={APP_ID}&response_type=code"
                         f"&redirect_uri={CALLBACK}&scope=openid&state=x", allow_redirects=False)
    assert no_pkce.status_code == 302 and "error=invalid_request" in no_pkce.headers["Location"]
    bad_redirect = person.get(f"{m365.base_url}/common/oauth2/v2.0/authorize?client_id={APP_ID}&response_type=code"
                              "&redirect_uri=https://evil.example/cb&scope=openid")
    assert bad_redirect.status_code == 400 and "AADSTS50011" in bad_redirect.text
    app = _msal_app(m365, http, tenant=CONTOSO)
    flow = app.initiate_auth_code_flow(["User.Read"], redirect_uri="http://127.0.0.1:54999/api/auth/callback")  # any loopback port
    page = person.get(flow["auth_uri"])
    consent = _follow_form(person, page.text, m365.base_url, email="alex@contoso.test", password="Contoso-Demo-1")
    done = _follow_form(person, consent.text, m365.base_url, decision="accept")
    query = {k: v[0] for k, v in parse_qs(urlsplit(done.headers["Location"]).query).items()}
    tampered = http.post(f"{m365.base_url}/{CONTOSO}/oauth2/v2.0/token", data={
        "grant_type": "authorization_code", "client_id": APP_ID, "client_secret": APP_SECRET, "code": query["code"],
        "redirect_uri": "http://127.0.0.1:54999/api/auth/callback", "code_verifier": "x" * 50, "scope": "User.Read"})
    assert tampered.status_code == 400 and "AADSTS501481" in tampered.json()["error_description"]


def test_unverified_mail_xms_edov_and_remove_unverified_email_claim(http, m365):
    """Entra's answers to the "nOAuth" pattern (issue 18 §1): any admin may set a user's mail to
    any address; the optional claim xms_edov says whether its domain is verified, and with
    removeUnverifiedEmailClaim the email claim is left out when it is not. GET /organization
    lists the tenant's verified domains."""
    try:
        http.post(f"{m365.base_url}/__emulator/consents", json={"tenantId": CONTOSO, "clientId": APP_ID}).raise_for_status()
        snapshot = http.get(f"{m365.base_url}/__emulator/snapshot").json()
        tenant = next(t for t in snapshot["tenants"] if t["id"] == CONTOSO)
        megan = next(u for u in tenant["users"] if u["userPrincipalName"] == "megan@contoso.test")
        http.post(f"{m365.base_url}/__emulator/seed", json={"mode": "merge", "seed": {"tenants": [{
            **{k: tenant[k] for k in ("id", "displayName", "domain")}, "password": "Contoso-Demo-1",
            "users": [{**{k: v for k, v in megan.items() if k not in ("tenantId", "password", "mailbox")}, "mail": "ceo@elsewhere.test"}],
        }]}}).raise_for_status()
        ropc = {"grant_type": "password", "client_id": APP_ID, "client_secret": APP_SECRET,
                "scope": "openid profile email User.Read", "password": "Contoso-Demo-1"}

        def claims_of(username: str) -> dict:
            answer = http.post(f"{m365.base_url}/{CONTOSO}/oauth2/v2.0/token", data={**ropc, "username": username}).json()
            assert "id_token" in answer, answer
            return jwt.decode(answer["id_token"], options={"verify_signature": False})

        def configure(optional: list, remove: bool) -> None:
            http.post(f"{m365.base_url}/__emulator/apps", json={
                "clientId": APP_ID, "optionalClaims": {"idToken": optional},
                "authenticationBehaviors": {"removeUnverifiedEmailClaim": remove}}).raise_for_status()

        configure([], False)  # an older registration: the claim as the admin set it, and no verdict
        assert claims_of("megan@contoso.test")["email"] == "ceo@elsewhere.test"
        assert "xms_edov" not in claims_of("megan@contoso.test")
        configure([{"name": "xms_edov", "essential": False}], False)
        assert claims_of("megan@contoso.test")["xms_edov"] is False
        assert claims_of("adele@contoso.test")["xms_edov"] is True
        configure([{"name": "xms_edov"}], True)
        assert "email" not in claims_of("megan@contoso.test")
        assert claims_of("megan@contoso.test")["preferred_username"] == "megan@contoso.test"
        assert claims_of("adele@contoso.test")["email"] == "adele@contoso.test"

        token = http.post(f"{m365.base_url}/{CONTOSO}/oauth2/v2.0/token",
                          data={**ropc, "username": "megan@contoso.test"}).json()["access_token"]
        organization = http.get(f"{m365.graph_url}/organization", headers={"Authorization": f"Bearer {token}"}).json()
        assert [d["name"] for d in organization["value"][0]["verifiedDomains"]] == ["contoso.test"]
    finally:
        http.post(f"{m365.base_url}/__emulator/reset").raise_for_status()


def test_a_new_consent_is_refused_until_it_has_replicated(http, m365):
    """Entra replicates a new service principal: right after admin consent the token endpoint can
    answer as if there were no consent (AADSTS700016) for a few seconds. The emulator does that
    for ``consent_replication_seconds`` after the tenant's first consent to the app."""
    faults = http.put(f"{m365.base_url}/__emulator/faults", json={"consent_replication_seconds": 1.5}).json()
    assert faults["consent_replication_seconds"] == 1.5
    data = {"grant_type": "client_credentials", "client_id": APP_ID, "client_secret": APP_SECRET, "scope": GRAPH_DEFAULT}
    http.post(f"{m365.base_url}/__emulator/consents", json={"tenantId": CONTOSO, "clientId": APP_ID}).raise_for_status()
    granted = time.monotonic()
    refused = http.post(f"{m365.base_url}/{CONTOSO}/oauth2/v2.0/token", data=data)
    assert refused.status_code == 400 and time.monotonic() - granted < 1.5
    assert refused.json()["error"] == "unauthorized_client" and refused.json()["error_codes"] == [700016]
    time.sleep(max(0.0, 1.6 - (time.monotonic() - granted)))
    assert http.post(f"{m365.base_url}/{CONTOSO}/oauth2/v2.0/token", data=data).status_code == 200
    # A consent that has long replicated (the seed's, another tenant's) is not delayed again by a second grant.
    http.post(f"{m365.base_url}/__emulator/consents", json={"tenantId": CONTOSO, "clientId": APP_ID}).raise_for_status()
    assert http.post(f"{m365.base_url}/{CONTOSO}/oauth2/v2.0/token", data=data).status_code == 200


def test_consent_replication_is_off_by_default_and_bounded(http, m365):
    assert http.get(f"{m365.base_url}/__emulator/faults").json()["consent_replication_seconds"] == 0
    token_for(http, m365)  # granted and usable at once
    refused = http.put(f"{m365.base_url}/__emulator/faults", json={"consent_replication_seconds": -1})
    assert refused.status_code == 400
