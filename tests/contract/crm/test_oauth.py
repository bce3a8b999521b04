"""Zoho Accounts OAuth: the real sign-in page in a browser, code and refresh grants, DCs, scopes, revoke."""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import pytest
import requests

from .conftest import CLIENT_ID, CLIENT_SECRET, FABRICE, PASSWORD, RITA, SAM, control

SCOPES = "ZohoCRM.modules.contacts.ALL,ZohoCRM.users.READ,ZohoCRM.org.READ"


def register(crm, redirect_uri: str) -> None:
    control(crm, "/clients", {"client_id": CLIENT_ID, "redirect_uris": [redirect_uri]})


def auth_url(crm, redirect_uri: str, dc: str = "us", **extra: str) -> str:
    params = {"scope": SCOPES, "client_id": CLIENT_ID, "response_type": "code", "access_type": "offline",
              "redirect_uri": redirect_uri, "state": "xyz-123", **extra}
    return f"{crm.accounts_url(dc)}/oauth/v2/auth?{urlencode(params)}"


def signed_in_session(crm, email: str, dc: str = "us") -> requests.Session:
    """A browser-like session that signed in through the sign-in form."""
    session = requests.Session()
    r = session.post(f"{crm.accounts_url(dc)}/signin", data={"email": email, "password": PASSWORD, "next": "/us/crm/home"},
                     allow_redirects=False)
    assert r.status_code == 302
    return session


def code_for(crm, email: str, redirect_uri: str, dc: str = "us", **extra: str) -> dict[str, list[str]]:
    session = signed_in_session(crm, email, dc)
    r = session.get(auth_url(crm, redirect_uri, dc, **extra), allow_redirects=False)
    if r.status_code == 200:  # consent page
        form = {k: v for k, v in parse_qs(urlsplit(auth_url(crm, redirect_uri, dc, **extra)).query).items()}
        r = session.post(f"{crm.accounts_url(dc)}/oauth/v2/auth/consent",
                         data={**{k: v[0] for k, v in form.items()}, "decision": "accept"}, allow_redirects=False)
    assert r.status_code == 302, r.text
    location = r.headers["Location"]
    assert location.startswith(redirect_uri)
    return parse_qs(urlsplit(location).query)


def exchange(server: str, code: str, uri: str, **override: str) -> dict[str, Any]:
    data = {"grant_type": "authorization_code", "client_id": CLIENT_ID, "client_secret": CLIENT_SECRET,
            "redirect_uri": uri, "code": code, **override}
    return requests.post(f"{server}/oauth/v2/token", data=data, timeout=10).json()


def refresh(server: str, token: str) -> requests.Response:
    return requests.post(f"{server}/oauth/v2/token", data={"grant_type": "refresh_token", "client_id": CLIENT_ID,
                                                            "client_secret": CLIENT_SECRET, "refresh_token": token},
                         timeout=10)


@pytest.mark.browser
def test_round_trip_through_the_sign_in_page_in_a_browser(crm, receiver, page) -> None:
    redirect_uri = f"{receiver.url}/api/accounts/associate/callback"
    register(crm, redirect_uri)
    page.goto(auth_url(crm, redirect_uri))
    page.get_by_label("Email").fill(SAM)
    page.get_by_label("Password").fill("wrong")
    page.get_by_role("button", name="Sign in").click()
    from playwright.sync_api import expect  # waits: the click's page may not be parsed yet

    expect(page.get_by_role("alert")).to_be_visible()
    page.get_by_label("Email").fill(SAM)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.get_by_role("button", name="Accept").click()
    page.wait_for_url(f"{redirect_uri}*")
    query = parse_qs(urlsplit(page.url).query)
    # Sam's org is in the EU: the redirect names the EU accounts server, which must redeem the code.
    assert query["state"] == ["xyz-123"] and query["location"] == ["eu"]
    assert query["accounts-server"] == [crm.accounts_url("eu")]
    assert exchange(crm.accounts_url("us"), query["code"][0], redirect_uri) == {"error": "invalid_code"}
    tokens = exchange(query["accounts-server"][0], query["code"][0], redirect_uri)
    assert tokens["api_domain"] == crm.api_url("eu") and tokens["expires_in"] == 3600
    assert tokens["token_type"] == "Bearer" and tokens["refresh_token"].startswith("1000.")
    headers = {"Authorization": f"Zoho-oauthtoken {tokens['access_token']}"}
    me = requests.get(f"{tokens['api_domain']}/crm/v8/users", params={"type": "CurrentUser"}, headers=headers, timeout=10)
    assert me.json()["users"][0]["email"] == SAM
    # The same token at another DC's API domain is refused, as Zoho does.
    wrong = requests.get(f"{crm.api_url('us')}/crm/v8/users", params={"type": "CurrentUser"}, headers=headers, timeout=10)
    assert wrong.status_code == 401 and wrong.json()["code"] == "INVALID_TOKEN"


def test_code_is_single_use_and_valid_two_minutes(crm, receiver) -> None:
    redirect_uri = f"{receiver.url}/cb"
    register(crm, redirect_uri)
    query = code_for(crm, FABRICE, redirect_uri)
    assert query["location"] == ["us"]
    server = query["accounts-server"][0]
    assert exchange(server, query["code"][0], redirect_uri, client_secret="nope") == {"error": "invalid_client"}
    assert exchange(server, query["code"][0], redirect_uri, redirect_uri="http://elsewhere/cb") == {"error": "invalid_redirect_uri"}
    assert "access_token" in exchange(server, query["code"][0], redirect_uri)
    assert exchange(server, query["code"][0], redirect_uri) == {"error": "invalid_code"}
    late = code_for(crm, FABRICE, redirect_uri, prompt="consent")
    control(crm, "/clock", {"advance_seconds": 121})
    assert exchange(server, late["code"][0], redirect_uri) == {"error": "invalid_code"}


def test_refresh_token_only_on_first_consent_or_prompt_consent(crm, receiver) -> None:
    redirect_uri = f"{receiver.url}/cb"
    register(crm, redirect_uri)
    server = crm.accounts_url("us")
    first = exchange(server, code_for(crm, FABRICE, redirect_uri)["code"][0], redirect_uri)
    second = exchange(server, code_for(crm, FABRICE, redirect_uri)["code"][0], redirect_uri)
    forced = exchange(server, code_for(crm, FABRICE, redirect_uri, prompt="consent")["code"][0], redirect_uri)
    online = exchange(server, code_for(crm, FABRICE, redirect_uri, access_type="online", prompt="consent")["code"][0], redirect_uri)
    assert "refresh_token" in first and "refresh_token" not in second
    assert "refresh_token" in forced and "refresh_token" not in online


def test_refresh_grant_expiry_limits_and_revoke(crm, receiver) -> None:
    redirect_uri = f"{receiver.url}/cb"
    register(crm, redirect_uri)
    server = crm.accounts_url("us")
    tokens = exchange(server, code_for(crm, FABRICE, redirect_uri)["code"][0], redirect_uri)
    api = f"{tokens['api_domain']}/crm/v8/org"
    control(crm, "/clock", {"advance_seconds": 3601})
    expired = requests.get(api, headers={"Authorization": f"Zoho-oauthtoken {tokens['access_token']}"}, timeout=10)
    assert expired.status_code == 401
    assert expired.json() == {"code": "INVALID_TOKEN", "details": {}, "message": "invalid oauth token", "status": "error"}
    fresh = refresh(server, tokens["refresh_token"]).json()
    assert set(fresh) == {"access_token", "scope", "api_domain", "token_type", "expires_in"}
    ok = requests.get(api, headers={"Authorization": f"Zoho-oauthtoken {fresh['access_token']}"}, timeout=10)
    assert ok.status_code == 200 and ok.json()["org"][0]["company_name"] == "Fabrikam Sales"
    assert refresh(crm.accounts_url("eu"), tokens["refresh_token"]).json() == {"error": "invalid_code"}
    for _ in range(9):
        assert refresh(server, tokens["refresh_token"]).status_code == 200
    blocked = refresh(server, tokens["refresh_token"])
    assert blocked.status_code == 400 and blocked.json()["error"] == "Access Denied"
    control(crm, "/clock", {"advance_seconds": 601})
    latest = refresh(server, tokens["refresh_token"]).json()["access_token"]
    revoked = requests.post(f"{server}/oauth/v2/token/revoke", params={"token": tokens["refresh_token"]}, timeout=10)
    assert revoked.status_code == 200 and revoked.json() == {"status": "success"}
    assert refresh(server, tokens["refresh_token"]).json() == {"error": "invalid_code"}
    gone = requests.get(api, headers={"Authorization": f"Zoho-oauthtoken {latest}"}, timeout=10)
    assert gone.json()["code"] == "INVALID_TOKEN"
    again = requests.post(f"{server}/oauth/v2/token/revoke", params={"token": tokens["refresh_token"]}, timeout=10)
    assert again.status_code == 400


def test_at_most_ten_access_tokens_per_refresh_token(crm, receiver) -> None:
    redirect_uri = f"{receiver.url}/cb"
    register(crm, redirect_uri)
    server = crm.accounts_url("us")
    tokens = exchange(server, code_for(crm, FABRICE, redirect_uri)["code"][0], redirect_uri)
    oldest = tokens["access_token"]
    for _ in range(10):
        refresh(server, tokens["refresh_token"])
    r = requests.get(f"{tokens['api_domain']}/crm/v8/org", headers={"Authorization": f"Zoho-oauthtoken {oldest}"}, timeout=10)
    assert r.json()["code"] == "INVALID_TOKEN"


def test_scopes_are_enforced(crm, receiver) -> None:
    redirect_uri = f"{receiver.url}/cb"
    register(crm, redirect_uri)
    tokens = exchange(crm.accounts_url("us"), code_for(crm, FABRICE, redirect_uri)["code"][0], redirect_uri)
    headers = {"Authorization": f"Zoho-oauthtoken {tokens['access_token']}"}
    base = f"{tokens['api_domain']}/crm/v8"
    assert requests.get(f"{base}/Contacts", params={"fields": "Last_Name"}, headers=headers, timeout=10).status_code == 200
    for path in ("/Events?fields=Event_Title", "/settings/profiles", "/actions/watch"):
        r = requests.get(base + path, headers=headers, timeout=10)
        assert r.status_code == 401
        assert r.json() == {"code": "OAUTH_SCOPE_MISMATCH", "message": "Unauthorized", "status": "error", "details": {}}
    r = requests.post(f"{base}/users", json={"users": [{}]}, headers=headers, timeout=10)  # users.READ only
    assert r.json()["code"] == "OAUTH_SCOPE_MISMATCH"
    bearer = requests.get(f"{base}/org", headers={"Authorization": f"Bearer {tokens['access_token']}"}, timeout=10)
    assert bearer.status_code == 401 and bearer.json()["code"] == "AUTHENTICATION_FAILURE"


def test_authorization_request_errors(crm, receiver) -> None:
    redirect_uri = f"{receiver.url}/cb"
    register(crm, redirect_uri)
    session = signed_in_session(crm, RITA, "eu")
    assert session.get(auth_url(crm, "http://evil.example/cb"), allow_redirects=False).status_code == 400
    assert session.get(auth_url(crm, redirect_uri, client_id="1000.UNKNOWN"), allow_redirects=False).status_code == 400
    r = session.get(auth_url(crm, redirect_uri), allow_redirects=False)
    form = {k: v[0] for k, v in parse_qs(urlsplit(auth_url(crm, redirect_uri)).query).items()}
    r = session.post(f"{crm.accounts_url('us')}/oauth/v2/auth/consent", data={**form, "decision": "reject"},
                     allow_redirects=False)
    assert parse_qs(urlsplit(r.headers["Location"]).query) == {"error": ["access_denied"], "state": ["xyz-123"]}
    anonymous = requests.get(auth_url(crm, redirect_uri), allow_redirects=False, timeout=10)
    assert anonymous.status_code == 302 and "/us/accounts/signin" in anonymous.headers["Location"]
    bad = requests.post(f"{crm.accounts_url('us')}/oauth/v2/token", data={"grant_type": "password", "client_id": CLIENT_ID,
                                                                          "client_secret": CLIENT_SECRET}, timeout=10)
    assert bad.json() == {"error": "unsupported_grant_type"}
