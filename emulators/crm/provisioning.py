"""Provisioning: what the real CRM does internally, exposed with the shape of the product's ``CrmDirectory``.

Only a first-party client may call it, authenticated with HTTP Basic ``client_id:client_secret``.
"""

from __future__ import annotations

import base64
from typing import Any

from flask import Blueprint, Response, jsonify, request

from . import datacentres, directory, editions
from .accounts import tokens
from .accounts.pages import issue_signin_link
from .directory import DirectoryError
from .runtime import current
from .store import token_hash

bp = Blueprint("provisioning", __name__)


def _error(status: int, code: str, message: str, details: dict[str, Any] | None = None) -> tuple[Response, int]:
    return jsonify({"code": code, "details": details or {}, "message": message, "status": "error"}), status


class Refused(Exception):
    def __init__(self, status: int, code: str, message: str, details: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.response = _error(status, code, message, details)


@bp.errorhandler(Refused)
def refused(exc: Refused) -> Any:
    return exc.response


@bp.errorhandler(DirectoryError)
def directory_error(exc: DirectoryError) -> Any:
    status = 409 if exc.code == "DUPLICATE_DATA" else exc.status
    return _error(status, exc.code, exc.message, exc.details)


@bp.before_request
def authenticate_client() -> None:
    header = request.headers.get("Authorization", "")
    client_id = secret = ""
    if header.startswith("Basic "):
        try:
            client_id, _, secret = base64.b64decode(header[6:]).decode().partition(":")
        except ValueError:
            client_id = ""
    store = current().store
    with store.lock:
        client = store.clients.get(client_id)
    if client is None or client["client_secret"] != secret:
        raise Refused(401, "INVALID_CLIENT", "client authentication failed")
    if not client.get("first_party"):
        raise Refused(403, "NO_PERMISSION", "this client is not a first-party integration")


def _body() -> dict[str, Any]:
    body = request.get_json(silent=True)
    if not isinstance(body, dict):
        raise Refused(400, "INVALID_DATA", "the body must be a JSON object")
    return body


def _required(body: dict[str, Any], *names: str) -> None:
    for name in names:
        if not isinstance(body.get(name), str) or not body[name].strip():
            raise Refused(400, "MANDATORY_NOT_FOUND", f"{name} is required", {"field": name})


def member_json(store: Any, user: dict[str, Any]) -> dict[str, Any]:
    org = store.orgs[user["org_id"]]
    profile = store.profiles[user["profile_id"]]
    return {"org_id": org["id"], "org_name": org["company_name"], "user_id": user["id"], "zuid": user["zuid"],
            "email": user["email"], "first_name": user["first_name"], "last_name": user["last_name"],
            "dc": org["dc"], "edition": org["edition"], "paid": editions.is_paid(org["edition"]),
            "profile": {"id": profile["id"], "name": profile["name"]},
            "role": store.roles[user["role_id"]]["name"],
            "is_super_admin": org["primary_user_id"] == user["id"],
            "manage_users": directory.has_permission(store, user, directory.MANAGE_USERS),
            "status": user["status"], "confirmed": user["confirm"],
            "accounts_server": datacentres.accounts_url(current().base_url, org["dc"]),
            "api_domain": datacentres.api_url(current().base_url, org["dc"])}


@bp.get("/accounts")
def find_account() -> Any:
    email = request.args.get("email", "").strip()
    if not email:
        raise Refused(400, "MANDATORY_NOT_FOUND", "email is required", {"field": "email"})
    store = current().store
    with store.lock:
        account = store.account_by_email(email)
        members = list(store.memberships(account["zuid"])) if account else []
        if not members:
            raise Refused(404, "NOT_FOUND", "no CRM account has this e-mail", {"email": email})
        members.sort(key=lambda u: (u["status"] != "active", int(u["id"])))
        memberships = [member_json(store, m) for m in members]
    return jsonify({"account": {**memberships[0], "memberships": memberships}})


@bp.post("/orgs")
def create_org() -> Any:
    body = _body()
    _required(body, "org_name")
    admin = body.get("super_admin")
    if not isinstance(admin, dict):
        raise Refused(400, "MANDATORY_NOT_FOUND", "super_admin is required", {"field": "super_admin"})
    _required(admin, "email", "last_name")
    if not directory.EMAIL_RE.match(admin["email"]):
        raise Refused(400, "INVALID_DATA", "super_admin.email is not an e-mail address", {"field": "super_admin.email"})
    crm = current()
    store = crm.store
    edition = body.get("edition") or store.default_edition
    dc = body.get("dc") or "us"
    if edition not in editions.EDITIONS:
        raise Refused(400, "INVALID_DATA", "unknown edition", {"field": "edition", "supported_values": list(editions.EDITIONS)})
    if not datacentres.is_known(dc):
        raise Refused(400, "INVALID_DATA", "unknown data centre", {"field": "dc", "supported_values": list(datacentres.DATA_CENTRES)})
    with store.lock:
        account = store.account_by_email(admin["email"])
        if account:
            # Idempotent on the super admin's e-mail: the org they already head is the answer.
            for user in store.memberships(account["zuid"]):
                if store.orgs[user["org_id"]]["primary_user_id"] == user["id"]:
                    return jsonify({"created": False, "org": _org_json(store, store.orgs[user["org_id"]]),
                                    "super_admin": member_json(store, user)}), 200
            raise Refused(409, "ALREADY_MEMBER", "this e-mail already belongs to a CRM account in another org",
                          {"memberships": [member_json(store, u) for u in store.memberships(account["zuid"])]})
        org = directory.create_org(store, body["org_name"].strip(), edition, dc)
        user = directory.add_user(store, org["id"], admin["email"], admin.get("first_name") or "",
                                  admin["last_name"], "Administrator", "CEO", confirmed=True,
                                  password=admin.get("password"))
        org["primary_user_id"] = user["id"]
        return jsonify({"created": True, "org": _org_json(store, org), "super_admin": member_json(store, user)}), 201


def _org_json(store: Any, org: dict[str, Any]) -> dict[str, Any]:
    return {"org_id": org["id"], "org_name": org["company_name"], "edition": org["edition"],
            "paid": editions.is_paid(org["edition"]), "dc": org["dc"], "licenses": org["licenses"],
            "super_admin_user_id": org["primary_user_id"]}


def _org(store: Any, org_id: str) -> dict[str, Any]:
    org = store.orgs.get(org_id)
    if org is None:
        raise Refused(404, "NOT_FOUND", "no such org", {"org_id": org_id})
    return org


@bp.get("/orgs/<org_id>")
def get_org(org_id: str) -> Any:
    store = current().store
    with store.lock:
        return jsonify({"org": _org_json(store, _org(store, org_id))})


@bp.post("/orgs/<org_id>/users")
def add_user(org_id: str) -> Any:
    body = _body()
    _required(body, "email", "last_name", "profile")
    if not directory.EMAIL_RE.match(body["email"]):
        raise Refused(400, "INVALID_DATA", "email is not an e-mail address", {"field": "email"})
    store = current().store
    with store.lock:
        _org(store, org_id)
        user = directory.add_user(store, org_id, body["email"], body.get("first_name") or "", body["last_name"],
                                  body["profile"], body.get("role"), confirmed=bool(body.get("confirmed", True)),
                                  password=body.get("password"))
        user["microsoft"] = bool(body.get("microsoft", False))
        return jsonify({"member": member_json(store, user)}), 201


@bp.get("/orgs/<org_id>/members")
def list_members(org_id: str) -> Any:
    permission = request.args.get("permission")
    store = current().store
    with store.lock:
        _org(store, org_id)
        members = [u for u in store.org_users(org_id) if u["status"] in ("active", "unconfirmed")
                   and (not permission or directory.has_permission(store, u, permission))]
        members.sort(key=lambda u: int(u["id"]))
        return jsonify({"members": [member_json(store, u) for u in members]})


def _user(store: Any, user_id: str) -> dict[str, Any]:
    user = store.users.get(user_id)
    if user is None or user["status"] == "deleted":
        raise Refused(404, "NOT_FOUND", "no such user", {"user_id": user_id})
    return user


@bp.post("/users/<user_id>/grant")
def grant(user_id: str) -> Any:
    body = request.get_json(silent=True) or {}
    client_id = base64.b64decode(request.headers["Authorization"][6:]).decode().partition(":")[0]
    scopes = body.get("scopes") if isinstance(body.get("scopes"), list) and body["scopes"] else tokens.CRM_SCOPES
    crm = current()
    store = crm.store
    with store.lock:
        user = _user(store, user_id)
        if user["status"] != "active":
            raise Refused(400, "INVALID_DATA", "the user is not active", {"user_id": user_id, "status": user["status"]})
        dc = store.orgs[user["org_id"]]["dc"]
        store.consents.add((client_id, user["zuid"]))
        refresh = tokens.issue_refresh_token(store, client_id, user["zuid"], dc, scopes, user["org_id"])
        access = tokens.issue_access_token(store, client_id, user["zuid"], dc, scopes, token_hash(refresh))
    body_out = tokens.token_response(datacentres.api_url(crm.base_url, dc), access, scopes, refresh)
    body_out.update({"location": dc, "accounts_server": datacentres.accounts_url(crm.base_url, dc)})
    return jsonify(body_out), 201


@bp.post("/users/<user_id>/signin-link")
def signin_link(user_id: str) -> Any:
    crm = current()
    with crm.store.lock:
        _user(crm.store, user_id)
    url, lifetime = issue_signin_link(crm.base_url, user_id)
    return jsonify({"url": url, "expires_in": lifetime}), 201
