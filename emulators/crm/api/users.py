"""CRM API v8 users, profiles and org."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, jsonify, request

from .. import directory
from ..directory import MANAGE_USERS, DirectoryError
from ..errors import CrmError, error_item, no_permission
from ..runtime import current
from .access import Caller, api_call
from .common import bind_dc, if_modified_since, int_arg, json_body, no_content, require_items

bp = Blueprint("crm_users", __name__)
bp.url_value_preprocessor(bind_dc)

USER_TYPES = ("AllUsers", "ActiveUsers", "DeactiveUsers", "ConfirmedUsers", "NotConfirmedUsers", "DeletedUsers",
              "ActiveConfirmedUsers", "AdminUsers", "ActiveConfirmedAdmins", "CurrentUser", "AllActiveUsers",
              "ActiveAndDeactive")


def _matches(store: Any, user: dict[str, Any], kind: str, caller: Caller) -> bool:
    status = user["status"]
    active = status in ("active", "unconfirmed")
    admin = store.profiles[user["profile_id"]]["name"] == "Administrator"
    return {
        "AllUsers": status != "deleted",
        "ActiveUsers": active,
        "AllActiveUsers": active,
        "DeactiveUsers": status == "inactive",
        "ActiveAndDeactive": status in ("active", "unconfirmed", "inactive"),
        "ConfirmedUsers": user["confirm"] and status != "deleted",
        "NotConfirmedUsers": not user["confirm"] and status != "deleted",
        "DeletedUsers": status == "deleted",
        "ActiveConfirmedUsers": active and user["confirm"],
        "AdminUsers": admin and status != "deleted",
        "ActiveConfirmedAdmins": admin and active and user["confirm"],
        "CurrentUser": user["id"] == caller.user["id"],
    }[kind]


@bp.get("/users")
def list_users() -> Any:
    with api_call(("users",), "READ") as caller:
        kind = request.args.get("type") or "AllUsers"
        if kind not in USER_TYPES:
            raise CrmError(400, "INVALID_DATA", "invalid data", {"param_name": "type", "supported_values": list(USER_TYPES)})
        per_page = int_arg("per_page", 200, 200)
        page = int_arg("page", 1)
        ids = [i for i in (request.args.get("ids") or "").split(",") if i]
        if len(ids) > 100:
            raise CrmError(400, "LIMIT_EXCEEDED", "the ids limit exceeded", {"limit": 100, "param_name": "ids"})
        since = if_modified_since()
        store = current().store
        with store.lock:
            users = [u for u in store.org_users(caller.org["id"]) if _matches(store, u, kind, caller)]
            if ids:
                users = [u for u in users if u["id"] in ids]
            if since is not None:
                users = [u for u in users if int(u["modified_time"]) > since]
                if not users:
                    return no_content(304)
            users.sort(key=lambda u: int(u["id"]))
            chunk = users[(page - 1) * per_page: page * per_page]
            if not chunk:
                return no_content()
            data = [directory.user_json(store, u) for u in chunk]
        return jsonify({"users": data, "info": {"per_page": per_page, "count": len(chunk), "page": page,
                                                "more_records": len(users) > page * per_page}})


@bp.get("/users/<user_id>")
def get_user(user_id: str) -> Any:
    with api_call(("users",), "READ") as caller:
        store = current().store
        with store.lock:
            user = store.users.get(user_id)
            if user is None or user["org_id"] != caller.org["id"]:
                return no_content()
            return jsonify({"users": [directory.user_json(store, user)],
                            "info": {"per_page": 200, "count": 1, "page": 1, "more_records": False}})


def _reference(value: Any) -> str | None:
    """Role and profile arrive as an id string (v7 docs) or as {"name","id"} (v8 OAS); accept both."""
    if isinstance(value, dict):
        return str(value.get("id") or value.get("name") or "") or None
    return str(value) if value not in (None, "") else None


@bp.post("/users")
def add_user() -> Any:
    body, items = json_body("users")
    with api_call(("users",), "CREATE") as caller:
        items = require_items(body, items, "users", 1)
        store = current().store
        with store.lock:
            if not directory.has_permission(store, caller.user, MANAGE_USERS):
                raise no_permission(MANAGE_USERS)
            item = items[0] if isinstance(items[0], dict) else {}
            for name in ("last_name", "email", "role", "profile"):
                if not item.get(name):
                    return jsonify({"users": [error_item(
                        "MANDATORY_NOT_FOUND", "Last Name is required" if name == "last_name" else "required field not found",
                        {"api_name": name, "json_path": f"$.users[0].{name}"})]}), 400
            if not directory.EMAIL_RE.match(str(item["email"])):
                return jsonify({"users": [error_item("INVALID_DATA", "invalid data",
                                                     {"api_name": "email", "json_path": "$.users[0].email"})]}), 400
            try:
                user = directory.add_user(store, caller.org["id"], item["email"], item.get("first_name") or "",
                                          item["last_name"], _reference(item["profile"]) or "",
                                          _reference(item["role"]), confirmed=False, added_by=caller.user["id"])
            except DirectoryError as exc:
                return jsonify({"users": [error_item(exc.code, exc.message, exc.details)]}), exc.status
        return jsonify({"users": [{"code": "SUCCESS", "details": {"id": user["id"]}, "message": "User added",
                                   "status": "success"}]}), 201


def _update_one(caller: Caller, user_id: str, item: dict[str, Any], index: int) -> dict[str, Any]:
    store = current().store
    user = store.users.get(user_id)
    path = f"$.users[{index}]"
    if user is None or user["org_id"] != caller.org["id"] or user["status"] == "deleted":
        return error_item("INVALID_DATA", "the id given seems to be invalid", {"api_name": "id", "json_path": f"{path}.id"})
    if "profile" in item:
        prof = store.profile_by_name(caller.org["id"], _reference(item["profile"]) or "")
        if prof is None:
            return error_item("INVALID_DATA", "invalid data", {"api_name": "profile", "json_path": f"{path}.profile"})
        user["profile_id"] = prof["id"]
    if "role" in item:
        role = store.role_by_name(caller.org["id"], _reference(item["role"]) or "")
        if role is None:
            return error_item("INVALID_DATA", "invalid data", {"api_name": "role", "json_path": f"{path}.role"})
        user["role_id"] = role["id"]
    for name in ("first_name", "last_name"):
        if name in item:
            user[name] = str(item[name] or "")
    if item.get("status") in ("active", "inactive"):
        if user["id"] == store.orgs[user["org_id"]]["primary_user_id"] and item["status"] == "inactive":
            return error_item("CANNOT_PERFORM_ACTION", "the primary user cannot be deactivated",
                              {"api_name": "status", "json_path": f"{path}.status"})
        user["status"] = item["status"] if user["confirm"] or item["status"] == "inactive" else "unconfirmed"
    user["modified_time"] = store.now()
    user["modified_by"] = caller.user["id"]
    return {"code": "SUCCESS", "details": {"id": user["id"]}, "message": "User updated", "status": "success"}


@bp.put("/users/<user_id>")
def update_user(user_id: str) -> Any:
    body, items = json_body("users")
    with api_call(("users",), "UPDATE") as caller:
        items = require_items(body, items, "users", 1)
        store = current().store
        with store.lock:
            if not directory.has_permission(store, caller.user, MANAGE_USERS):
                raise no_permission(MANAGE_USERS)
            result = _update_one(caller, user_id, items[0] if isinstance(items[0], dict) else {}, 0)
        return jsonify({"users": [result]}), 200 if result["status"] == "success" else 400


@bp.put("/users")
def update_users() -> Any:
    body, items = json_body("users")
    with api_call(("users",), "UPDATE") as caller:
        items = require_items(body, items, "users", 100)
        store = current().store
        with store.lock:
            if not directory.has_permission(store, caller.user, MANAGE_USERS):
                raise no_permission(MANAGE_USERS)
            results = []
            for index, item in enumerate(items):
                if not isinstance(item, dict) or not item.get("id"):
                    results.append(error_item("MANDATORY_NOT_FOUND", "required field not found",
                                              {"api_name": "id", "json_path": f"$.users[{index}].id"}))
                    continue
                results.append(_update_one(caller, str(item["id"]), item, index))
        ok = sum(r["status"] == "success" for r in results)
        return jsonify({"users": results}), 200 if ok == len(results) else 400 if ok == 0 else 207


@bp.delete("/users/<user_id>")
def delete_user(user_id: str) -> Any:
    with api_call(("users",), "DELETE") as caller:
        store = current().store
        with store.lock:
            if not directory.has_permission(store, caller.user, MANAGE_USERS):
                raise no_permission(MANAGE_USERS)
            user = store.users.get(user_id)
            if user is None or user["org_id"] != caller.org["id"] or user["status"] == "deleted":
                raise CrmError(400, "INVALID_DATA", "the id given seems to be invalid", {"id": user_id})
            if user_id == caller.org["primary_user_id"]:
                raise CrmError(400, "CANNOT_DELETE", "the primary user cannot be deleted", {"id": user_id})
            user["status"] = "deleted"
            user["modified_time"] = store.now()
        return jsonify({"users": [{"code": "SUCCESS", "details": {"id": user_id}, "message": "User deleted",
                                   "status": "success"}]})


@bp.get("/settings/profiles")
def list_profiles() -> Any:
    with api_call(("settings", "profiles"), "READ") as caller:
        store = current().store
        with store.lock:
            profiles = [directory.profile_json(store, p, with_permissions=False)
                        for p in store.profiles.values() if p["org_id"] == caller.org["id"]]
        return jsonify({"profiles": profiles})


@bp.get("/settings/profiles/<profile_id>")
def get_profile(profile_id: str) -> Any:
    with api_call(("settings", "profiles"), "READ") as caller:
        store = current().store
        with store.lock:
            profile = store.profiles.get(profile_id)
            if profile is None or profile["org_id"] != caller.org["id"]:
                raise CrmError(400, "INVALID_DATA", "the id given seems to be invalid", {"id": profile_id})
            return jsonify({"profiles": [directory.profile_json(store, profile, with_permissions=True)]})


@bp.get("/org")
def get_org() -> Any:
    with api_call(("org",), "READ") as caller:
        store = current().store
        with store.lock:
            return jsonify({"org": [directory.org_json(store, caller.org)]})
