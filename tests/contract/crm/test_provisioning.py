"""Provisioning (the CrmDirectory port): find account, create org, add user, list members, grant, sign-in link."""

from __future__ import annotations

import base64

import pytest
import requests

from .conftest import CLIENT_ID, FABRICE, RITA, SAM, Api, control


def test_find_account(crm, provisioning) -> None:
    r = provisioning.get(f"{crm.provisioning_url}/accounts", params={"email": "Sam.Carter@samconsulting.example"})
    account = r.json()["account"]
    assert (account["org_name"], account["dc"], account["profile"]["name"]) == ("Sam Carter Consulting", "eu", "Administrator")
    assert account["is_super_admin"] is True and account["manage_users"] is True and account["status"] == "active"
    assert account["api_domain"] == crm.api_url("eu") and account["paid"] is True
    rita = provisioning.get(f"{crm.provisioning_url}/accounts", params={"email": RITA}).json()["account"]
    assert rita["manage_users"] is False and rita["is_super_admin"] is False
    missing = provisioning.get(f"{crm.provisioning_url}/accounts", params={"email": "nobody@example.com"})
    assert missing.status_code == 404 and missing.json()["code"] == "NOT_FOUND"


def test_create_org_is_idempotent_on_the_super_admins_email(crm, provisioning) -> None:
    body = {"org_name": "Contoso Ltd", "super_admin": {"email": "megan@contoso.example", "first_name": "Megan",
                                                       "last_name": "Bowen"}}
    first = provisioning.post(f"{crm.provisioning_url}/orgs", json=body)
    assert first.status_code == 201
    org = first.json()["org"]
    assert (org["edition"], org["paid"], org["dc"]) == ("standard", True, "us")
    assert first.json()["super_admin"]["profile"]["name"] == "Administrator"
    again = provisioning.post(f"{crm.provisioning_url}/orgs", json={**body, "org_name": "Another name"})
    assert again.status_code == 200 and again.json()["created"] is False and again.json()["org"]["org_id"] == org["org_id"]
    eu = provisioning.post(f"{crm.provisioning_url}/orgs", json={"org_name": "Free EU", "edition": "free", "dc": "eu",
                                                                  "super_admin": {"email": "e@eu.example", "last_name": "E"}})
    assert (eu.json()["org"]["dc"], eu.json()["org"]["paid"]) == ("eu", False)
    taken = provisioning.post(f"{crm.provisioning_url}/orgs", json={"org_name": "X", "super_admin": {"email": RITA, "last_name": "G"}})
    assert taken.status_code == 409 and taken.json()["code"] == "ALREADY_MEMBER"
    bad = provisioning.post(f"{crm.provisioning_url}/orgs", json={"org_name": "X", "edition": "gold",
                                                                   "super_admin": {"email": "z@z.example", "last_name": "Z"}})
    assert bad.status_code == 400


def test_add_user_and_list_members_with_permission(crm, provisioning) -> None:
    org_id = provisioning.get(f"{crm.provisioning_url}/accounts", params={"email": SAM}).json()["account"]["org_id"]
    added = provisioning.post(f"{crm.provisioning_url}/orgs/{org_id}/users",
                              json={"email": "lee@samconsulting.example", "first_name": "Lee", "last_name": "Chan",
                                    "profile": "Sales Manager"})
    assert added.status_code == 201 and added.json()["member"]["status"] == "active"
    dup = provisioning.post(f"{crm.provisioning_url}/orgs/{org_id}/users",
                            json={"email": "lee@samconsulting.example", "last_name": "Chan", "profile": "Standard"})
    assert dup.status_code == 409 and dup.json()["code"] == "DUPLICATE_DATA"
    managers = provisioning.get(f"{crm.provisioning_url}/orgs/{org_id}/members",
                                params={"permission": "Crm_Implied_Manage_Users"}).json()["members"]
    assert [m["email"] for m in managers] == [SAM, "lee@samconsulting.example"]
    everyone = provisioning.get(f"{crm.provisioning_url}/orgs/{org_id}/members").json()["members"]
    assert len(everyone) == 3
    assert provisioning.get(f"{crm.provisioning_url}/orgs/1/members").status_code == 404


def test_grant_gives_a_working_refresh_token(crm, provisioning) -> None:
    user_id = provisioning.get(f"{crm.provisioning_url}/accounts", params={"email": SAM}).json()["account"]["user_id"]
    grant = provisioning.post(f"{crm.provisioning_url}/users/{user_id}/grant").json()
    assert grant["api_domain"] == crm.api_url("eu") and grant["accounts_server"] == crm.accounts_url("eu")
    refreshed = requests.post(f"{grant['accounts_server']}/oauth/v2/token", data={
        "grant_type": "refresh_token", "client_id": CLIENT_ID, "client_secret": "demo-crm-client-secret",
        "refresh_token": grant["refresh_token"]}, timeout=10).json()
    api = Api({**grant, "access_token": refreshed["access_token"]})
    assert api.get("/users", params={"type": "CurrentUser"}).json()["users"][0]["email"] == SAM


def test_signin_link_is_single_use_and_lands_on_the_crm_home(crm, provisioning) -> None:
    user_id = provisioning.get(f"{crm.provisioning_url}/accounts", params={"email": FABRICE}).json()["account"]["user_id"]
    link = provisioning.post(f"{crm.provisioning_url}/users/{user_id}/signin-link").json()
    browser = requests.Session()
    home = browser.get(link["url"], timeout=10)
    assert home.url == f"{crm.base_url}/us/crm/home" and "Welcome, Fabrice Martin" in home.text
    assert "Fabrikam Sales" in home.text and "Import" in home.text
    assert requests.get(link["url"], timeout=10).status_code == 410
    anonymous = requests.get(f"{crm.base_url}/us/crm/home", allow_redirects=False, timeout=10)
    assert anonymous.status_code == 302 and "/us/accounts/signin" in anonymous.headers["Location"]


def test_only_first_party_clients_may_call(crm) -> None:
    def auth(cid: str, secret: str) -> dict[str, str]:
        return {"Authorization": "Basic " + base64.b64encode(f"{cid}:{secret}".encode()).decode()}
    url = f"{crm.provisioning_url}/accounts?email={SAM}"
    assert requests.get(url, timeout=10).status_code == 401
    assert requests.get(url, headers=auth(CLIENT_ID, "wrong"), timeout=10).json()["code"] == "INVALID_CLIENT"
    control(crm, "/clients", {"client_id": "1000.THIRDPARTY", "client_secret": "s", "redirect_uris": []})
    r = requests.get(url, headers=auth("1000.THIRDPARTY", "s"), timeout=10)
    assert r.status_code == 403 and r.json()["code"] == "NO_PERMISSION"


def test_a_person_in_two_orgs(crm, provisioning, api_for) -> None:
    tiny = provisioning.get(f"{crm.provisioning_url}/accounts", params={"email": "tina@tinybakery.example"}).json()["account"]
    added = provisioning.post(f"{crm.provisioning_url}/orgs/{tiny['org_id']}/users",
                              json={"email": FABRICE, "first_name": "Fabrice", "last_name": "Martin", "profile": "Standard"})
    member = added.json()["member"]
    found = provisioning.get(f"{crm.provisioning_url}/accounts", params={"email": FABRICE}).json()["account"]
    assert found["org_name"] == "Fabrikam Sales" and len(found["memberships"]) == 2
    grant = provisioning.post(f"{crm.provisioning_url}/users/{member['user_id']}/grant").json()
    api = Api(grant)
    assert api.get("/org").json()["org"][0]["company_name"] == "Tiny Bakery"  # the grant's org
    fabrikam = api.get("/org", headers={"X-CRM-ORG": found["org_id"]}).json()["org"][0]
    assert fabrikam["company_name"] == "Fabrikam Sales"
    assert api_for(FABRICE).get("/org").json()["org"][0]["company_name"] == "Fabrikam Sales"


@pytest.mark.browser
def test_signin_link_in_a_browser_shows_the_crm_home(crm, provisioning, page) -> None:
    user_id = provisioning.get(f"{crm.provisioning_url}/accounts", params={"email": SAM}).json()["account"]["user_id"]
    link = provisioning.post(f"{crm.provisioning_url}/users/{user_id}/signin-link").json()
    page.goto(link["url"])
    assert page.url == f"{crm.base_url}/eu/crm/home"
    assert page.get_by_role("heading", name="Welcome, Sam Carter").is_visible()
    assert page.get_by_test_id("crm-org").get_by_role("heading").inner_text() == "Sam Carter Consulting"
