"""Zoho accounts, CRM orgs, their users, roles and profiles: creating them and showing them.

A Zoho *account* (zuid) is a person's login, living in one data centre. A CRM *user* is that
account's membership of one org; its id is what the Users API calls the user id.
"""

from __future__ import annotations

import re
from typing import Any

from . import datacentres, editions
from .store import Store

MANAGE_USERS = "Crm_Implied_Manage_Users"
EMAIL_RE = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")

# (name, display_label, module or None) of the permissions a profile lists.
PERMISSIONS = [
    ("Crm_Implied_View_Contacts", "View", "Contacts"),
    ("Crm_Implied_Create_Contacts", "Create", "Contacts"),
    ("Crm_Implied_Edit_Contacts", "Edit", "Contacts"),
    ("Crm_Implied_Delete_Contacts", "Delete", "Contacts"),
    ("Crm_Implied_View_Events", "View", "Events"),
    ("Crm_Implied_Create_Events", "Create", "Events"),
    ("Crm_Implied_Edit_Events", "Edit", "Events"),
    ("Crm_Implied_Delete_Events", "Delete", "Events"),
    ("Crm_Implied_Import", "Import", None),
    ("Crm_Implied_Export", "Export", None),
    ("Crm_Implied_Mass_Update", "Mass Update", None),
    ("Crm_Implied_Manage_Data_Migration", "Data Migration", None),
    (MANAGE_USERS, "Manage Users", None),
    ("Crm_Implied_Manage_Profiles", "Manage Profiles", None),
]
ADMIN_ONLY = {"Crm_Implied_Manage_Data_Migration", MANAGE_USERS, "Crm_Implied_Manage_Profiles"}

# name -> (custom, permissions the profile has beyond the ordinary record rights)
PROFILE_TEMPLATES = {
    "Administrator": (False, ADMIN_ONLY),
    "Standard": (False, set()),
    "Sales Manager": (True, {MANAGE_USERS}),
}
ROLE_NAMES = ("CEO", "Manager")


class DirectoryError(Exception):
    def __init__(self, status: int, code: str, message: str, details: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.status, self.code, self.message, self.details = status, code, message, details or {}


def create_account(store: Store, email: str, first_name: str, last_name: str, dc: str,
                   password: str | None) -> dict[str, Any]:
    zuid = str(60_000_000 + len(store.accounts) + 1) + store.new_id()[-4:]
    account = {"zuid": zuid, "email": email.strip(), "first_name": first_name or "", "last_name": last_name,
               "dc": dc, "password": password, "created_time": store.now()}
    store.accounts[zuid] = account
    return account


def create_org(store: Store, company_name: str, edition: str, dc: str, licenses: int | None = None,
               org_id: str | None = None) -> dict[str, Any]:
    org_id = org_id or store.new_id()
    org = {"id": org_id, "company_name": company_name, "edition": edition, "dc": dc,
           "utc_offset": datacentres.utc_offset(dc), "time_zone": datacentres.time_zone(dc),
           "licenses": licenses or editions.DEFAULT_LICENSES[edition], "primary_user_id": None,
           "domain_name": "org" + org_id[-9:], "zgid": str(int(org_id) // 1000), "created_time": store.now()}
    store.orgs[org_id] = org
    for name, (custom, extra) in PROFILE_TEMPLATES.items():
        pid = store.new_id()
        store.profiles[pid] = {"id": pid, "org_id": org_id, "name": name, "custom": custom,
                               "enabled": {p[0] for p in PERMISSIONS if p[0] not in ADMIN_ONLY} | set(extra),
                               "created_time": store.now()}
    for name in ROLE_NAMES:
        rid = store.new_id()
        store.roles[rid] = {"id": rid, "org_id": org_id, "name": name}
    store.records[org_id] = {"Contacts": {}, "Events": {}}
    store.deleted[org_id] = {"Contacts": [], "Events": []}
    store.channels[org_id] = {}
    return org


def active_user_count(store: Store, org_id: str) -> int:
    return sum(1 for u in store.org_users(org_id) if u["status"] in ("active", "unconfirmed"))


def add_user(store: Store, org_id: str, email: str, first_name: str, last_name: str, profile: str,
             role: str | None = None, confirmed: bool = False, password: str | None = None,
             added_by: str | None = None, user_id: str | None = None) -> dict[str, Any]:
    """Add a person to an org. Unconfirmed users exist (as in the CRM) until the invitation is accepted."""
    org = store.orgs[org_id]
    email = (email or "").strip()
    if any(u["email"].lower() == email.lower() and u["status"] != "deleted" for u in store.org_users(org_id)):
        raise DirectoryError(400, "DUPLICATE_DATA", "Failed to add user since same email id is already present",
                             {"api_name": "email", "json_path": "$.users[0].email"})
    account = store.account_by_email(email)
    if account and account["dc"] != org["dc"]:
        raise DirectoryError(400, "INVALID_DATA", "the email is registered in another data center",
                             {"api_name": "email", "json_path": "$.users[0].email"})
    if active_user_count(store, org_id) >= org["licenses"]:
        raise DirectoryError(400, "LICENSE_LIMIT_EXCEEDED", "license limit exceeded", {})
    prof = store.profile_by_name(org_id, profile)
    if prof is None:
        raise DirectoryError(400, "INVALID_DATA", "invalid profile",
                             {"api_name": "profile", "json_path": "$.users[0].profile"})
    rol = store.role_by_name(org_id, role) if role else None
    if role and rol is None:
        raise DirectoryError(400, "INVALID_DATA", "invalid role", {"api_name": "role", "json_path": "$.users[0].role"})
    if rol is None:
        rol = next(r for r in store.roles.values() if r["org_id"] == org_id
                   and r["name"] == ("CEO" if prof["name"] == "Administrator" else "Manager"))
    if account is None:
        account = create_account(store, email, first_name, last_name, org["dc"], password)
    elif password and not account.get("password"):
        account["password"] = password
    uid = user_id or store.new_id()
    now = store.now()
    user = {"id": uid, "org_id": org_id, "zuid": account["zuid"], "email": account["email"],
            "first_name": first_name or account["first_name"], "last_name": last_name or account["last_name"],
            "profile_id": prof["id"], "role_id": rol["id"], "confirm": confirmed,
            "status": "active" if confirmed else "unconfirmed", "created_time": now, "modified_time": now,
            "created_by": added_by, "modified_by": added_by, "microsoft": False}
    store.users[uid] = user
    return user


def confirm_user(store: Store, user_id: str, password: str | None = None) -> dict[str, Any]:
    """What accepting the CRM's invitation does."""
    user = store.users[user_id]
    user["confirm"] = True
    if user["status"] == "unconfirmed":
        user["status"] = "active"
    account = store.accounts[user["zuid"]]
    if password:
        account["password"] = password
    user["modified_time"] = store.now()
    return user


def has_permission(store: Store, user: dict[str, Any], permission: str) -> bool:
    return permission in store.profiles[user["profile_id"]]["enabled"]


def full_name(user: dict[str, Any]) -> str:
    return f"{user['first_name']} {user['last_name']}".strip()


def minified(store: Store, user_id: str | None) -> dict[str, Any] | None:
    user = store.users.get(user_id or "")
    if user is None:
        return None
    return {"name": full_name(user), "id": user["id"], "email": user["email"]}


def public_status(user: dict[str, Any]) -> str:
    # The API shows invited users as active but not confirmed (confirm=false).
    return "active" if user["status"] == "unconfirmed" else user["status"]


def user_json(store: Store, user: dict[str, Any]) -> dict[str, Any]:
    org = store.orgs[user["org_id"]]
    prof = store.profiles[user["profile_id"]]
    role = store.roles[user["role_id"]]
    creator = minified(store, user["created_by"]) or {"name": full_name(user), "id": user["id"]}
    modifier = store.users.get(user["modified_by"] or "") or user
    return {
        "id": user["id"], "email": user["email"], "first_name": user["first_name"],
        "last_name": user["last_name"], "full_name": full_name(user),
        "role": {"name": role["name"], "id": role["id"]}, "profile": {"name": prof["name"], "id": prof["id"]},
        "status": public_status(user), "confirm": user["confirm"],
        "zuid": user["zuid"] if user["confirm"] else None,
        "type__s": "Regular User", "microsoft": user.get("microsoft", False),
        "time_zone": org["time_zone"], "locale": "en_US", "language": "en_US", "country_locale": "en_US",
        "created_time": store.org_time(org["id"], user["created_time"]),
        "created_by": {"name": creator["name"], "id": creator["id"]},
        "Modified_Time": store.org_time(org["id"], user["modified_time"]),
        "Modified_By": {"name": full_name(modifier), "id": modifier["id"], "first_name": modifier["first_name"],
                        "last_name": modifier["last_name"]},
        "Reporting_To": None, "status_reason__s": None, "sandboxDeveloper": False,
        "personal_account": False, "Isonline": False, "category": "regular_user",
        "sort_order_preference__s": "First Name,Last Name",
    }


def profile_json(store: Store, profile: dict[str, Any], with_permissions: bool) -> dict[str, Any]:
    org = store.orgs[profile["org_id"]]
    primary = minified(store, org["primary_user_id"]) or {"name": "System", "id": None}
    stamp = store.org_time(org["id"], profile["created_time"])
    out: dict[str, Any] = {
        "id": profile["id"], "name": profile["name"], "display_label": profile["name"],
        "description": f"{profile['name']} profile", "custom": profile["custom"],
        "type": "normal_profile", "default": profile["name"] == "Standard", "category": False,
        "created_time": stamp, "modified_time": stamp,
        "created_by": {"name": primary["name"], "id": primary["id"]},
        "modified_by": {"name": primary["name"], "id": primary["id"]}, "sections": [],
    }
    if with_permissions:
        out["permissions_details"] = [
            {"id": str(int(profile["id"]) * 100 + i), "name": name, "display_label": label, "module": module,
             "enabled": name in profile["enabled"]}
            for i, (name, label, module) in enumerate(PERMISSIONS)]
    return out


def org_json(store: Store, org: dict[str, Any]) -> dict[str, Any]:
    primary = store.users.get(org["primary_user_id"] or "") or {}
    paid = editions.is_paid(org["edition"])
    return {
        "id": org["id"], "company_name": org["company_name"], "primary_email": primary.get("email", ""),
        "primary_zuid": primary.get("zuid", ""), "domain_name": org["domain_name"], "alias": None,
        "time_zone": org["time_zone"], "currency": "US Dollar", "currency_symbol": "$", "currency_locale": "en_US",
        "iso_code": "USD", "country": "United States", "country_code": "US", "city": None, "state": None,
        "street": None, "zip": None, "phone": "", "mobile": None, "fax": None, "description": None,
        "photo_id": None, "website": "", "employee_count": "10", "zgid": org["zgid"], "ezgid": org["zgid"],
        "zia_zgid": 0, "zia_portal_id": None, "type": "Production", "mc_status": False, "gapps_enabled": False,
        "translation_enabled": False, "deletable_org_account": False, "privacy_settings": False,
        "hipaa_compliance_enabled": False, "lite_users_enabled": False, "max_per_page": 200,
        "call_icon": "", "oauth_presence": True,
        "hierarchy_preferences": {"type": "Role_Hierarchy", "strictly_reporting": False},
        "checkin_preferences": {"restricted_event_types": []},
        "created_time": store.org_time(org["id"], org["created_time"]),
        "license_details": {
            "paid": paid, "paid_type": org["edition"], "paid_expiry": None if not paid else
            store.org_time(org["id"], store.now() + 365 * 86400),
            "users_license_purchased": org["licenses"], "portal_users_license_purchased": 0,
            "trial_type": None, "trial_expiry": None, "trial_action": "",
        },
    }
