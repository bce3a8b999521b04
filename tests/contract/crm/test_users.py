"""Users, profiles and org: types, invitations, Manage Users permission, licences, editions."""

from __future__ import annotations

import pytest

from .conftest import FABRICE, RITA, SAM, TINA, control
from .openapi import validate

USERS = "/crm/v8/users"
USER = "/crm/v8/users/{user}"


def new_user(email: str, **extra: object) -> dict:
    return {"users": [{"first_name": "New", "last_name": "Person", "email": email, "role": "Manager",
                       "profile": "Standard", **extra}]}


def test_user_types_and_shape(api_for) -> None:
    sam = api_for(SAM)
    r = sam.get("/users", params={"type": "AllUsers"})
    validate("get", USERS, r.status_code, r.json())
    users = r.json()["users"]
    assert {u["email"] for u in users} == {SAM, RITA}
    rita = next(u for u in users if u["email"] == RITA)
    assert rita["profile"]["name"] == "Standard" and rita["status"] == "active" and rita["confirm"] is True
    assert [u["email"] for u in sam.get("/users", params={"type": "AdminUsers"}).json()["users"]] == [SAM]
    assert [u["email"] for u in sam.get("/users", params={"type": "CurrentUser"}).json()["users"]] == [SAM]
    assert sam.get("/users", params={"type": "NotConfirmedUsers"}).status_code == 204
    assert sam.get("/users", params={"type": "Everyone"}).status_code == 400
    one = sam.get(f"/users/{rita['id']}")
    validate("get", USER, one.status_code, one.json())
    assert one.json()["users"][0]["email"] == RITA


def test_add_user_is_unconfirmed_until_the_invitation_is_accepted(crm, api_for) -> None:
    sam = api_for(SAM)
    r = sam.post("/users", json=new_user("newbie@samconsulting.example", profile={"name": "Sales Manager"},
                                         role={"name": "Manager"}))
    assert r.status_code == 201
    validate("post", USERS, 201, r.json())
    uid = r.json()["users"][0]["details"]["id"]
    assert r.json()["users"][0]["message"] == "User added"
    pending = sam.get(f"/users/{uid}").json()["users"][0]
    assert pending["confirm"] is False and pending["zuid"] is None
    assert [u["id"] for u in sam.get("/users", params={"type": "NotConfirmedUsers"}).json()["users"]] == [uid]
    control(crm, f"/users/{uid}/accept", {"password": "Welcome-1"})
    assert sam.get(f"/users/{uid}").json()["users"][0]["confirm"] is True
    dup = sam.post("/users", json=new_user("NEWBIE@samconsulting.example"))
    assert dup.status_code == 400
    validate("post", USERS, 400, dup.json())
    assert dup.json()["users"][0]["code"] == "DUPLICATE_DATA"


def test_add_user_errors(api_for) -> None:
    sam = api_for(SAM)
    r = sam.post("/users", json={"users": [{"email": "a@b.example", "role": "Manager", "profile": "Standard"}]})
    assert r.status_code == 400 and r.json()["users"][0]["code"] == "MANDATORY_NOT_FOUND"
    assert r.json()["users"][0]["details"]["api_name"] == "last_name"
    two = {"users": new_user("a@b.example")["users"] * 2}
    assert sam.post("/users", json=two).json()["code"] == "LIMIT_EXCEEDED"
    # An account that lives in the US data centre cannot join an EU org.
    assert sam.post("/users", json=new_user(FABRICE)).json()["users"][0]["code"] == "INVALID_DATA"


def test_member_without_manage_users_gets_no_permission(api_for) -> None:
    rita = api_for(RITA)
    r = rita.post("/users", json=new_user("x@samconsulting.example"))
    assert r.status_code == 403
    assert r.json() == {"code": "NO_PERMISSION", "details": {"permissions": ["Crm_Implied_Manage_Users"]},
                        "message": "permission denied", "status": "error"}
    me = rita.get("/users", params={"type": "CurrentUser"}).json()["users"][0]
    assert rita.put(f"/users/{me['id']}", json={"users": [{"first_name": "R"}]}).status_code == 403


def test_license_limit(api_for) -> None:
    tina = api_for(TINA)  # free edition: three licences
    assert tina.post("/users", json=new_user("one@tinybakery.example")).status_code == 201
    assert tina.post("/users", json=new_user("two@tinybakery.example")).status_code == 201
    r = tina.post("/users", json=new_user("three@tinybakery.example"))
    assert r.status_code == 400 and r.json()["users"][0]["code"] == "LICENSE_LIMIT_EXCEEDED"


def test_update_and_delete_users(api_for) -> None:
    sam = api_for(SAM)
    users = {u["email"]: u for u in sam.get("/users").json()["users"]}
    rita_id, sam_id = users[RITA]["id"], users[SAM]["id"]
    r = sam.put(f"/users/{rita_id}", json={"users": [{"profile": "Sales Manager", "first_name": "Rita M."}]})
    assert r.status_code == 200
    validate("put", USER, 200, r.json())
    rita = sam.get(f"/users/{rita_id}").json()["users"][0]
    assert rita["profile"]["name"] == "Sales Manager" and rita["first_name"] == "Rita M."
    r = sam.put("/users", json={"users": [{"id": rita_id, "status": "inactive"}, {"id": "1"}]})
    assert r.status_code == 207
    assert sam.get("/users", params={"type": "DeactiveUsers"}).json()["users"][0]["id"] == rita_id
    refused = sam.delete(f"/users/{sam_id}")
    assert refused.status_code == 400 and refused.json()["code"] == "CANNOT_DELETE"
    r = sam.delete(f"/users/{rita_id}")
    assert r.status_code == 200
    validate("delete", USER, 200, r.json())
    assert [u["id"] for u in sam.get("/users", params={"type": "DeletedUsers"}).json()["users"]] == [rita_id]


def test_profiles_list_and_manage_users_permission(api_for) -> None:
    sam = api_for(SAM)
    r = sam.get("/settings/profiles")
    assert r.status_code == 200
    profiles = {p["name"]: p for p in r.json()["profiles"]}
    assert set(profiles) == {"Administrator", "Standard", "Sales Manager"}
    assert profiles["Sales Manager"]["custom"] is True
    assert "permissions_details" not in profiles["Standard"]  # only on a single profile
    expected = {"Administrator": True, "Standard": False, "Sales Manager": True}
    for name, enabled in expected.items():
        one = sam.get(f"/settings/profiles/{profiles[name]['id']}")
        validate("get", "/crm/v8/settings/profiles/{id}", 200, one.json())
        details = one.json()["profiles"][0]["permissions_details"]
        manage = next(p for p in details if p["name"] == "Crm_Implied_Manage_Users")
        assert manage["enabled"] is enabled and manage["display_label"] == "Manage Users"
    assert sam.get("/settings/profiles/123").status_code == 400


@pytest.mark.parametrize(("email", "paid", "paid_type"), [(FABRICE, True, "enterprise"), (SAM, True, "professional"),
                                                          (TINA, False, "free")])
def test_org_license_details(api_for, email: str, paid: bool, paid_type: str) -> None:
    r = api_for(email).get("/org")
    validate("get", "/crm/v8/org", 200, r.json())
    org = r.json()["org"][0]
    assert org["license_details"]["paid"] is paid and org["license_details"]["paid_type"] == paid_type
    assert org["primary_email"] == email


def test_users_if_modified_since(crm, api_for) -> None:
    sam = api_for(SAM)
    stamp = max(u["Modified_Time"] for u in sam.get("/users").json()["users"])
    assert sam.get("/users", headers={"If-Modified-Since": stamp}).status_code == 304
    control(crm, "/clock", {"advance_seconds": 5})
    sam.post("/users", json=new_user("later@samconsulting.example"))
    r = sam.get("/users", headers={"If-Modified-Since": stamp})
    assert [u["email"] for u in r.json()["users"]] == ["later@samconsulting.example"]
