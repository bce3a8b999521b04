"""Who is calling the CRM API, whether their token's scopes allow the call, and admitting the call.

Every CRM API call goes through ``api_call``: token (``Authorization: Zoho-oauthtoken``) -> scope ->
limits -> injected latency and faults -> the handler.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from flask import g, request

from .. import directory
from ..errors import CrmError, invalid_token, scope_mismatch
from ..runtime import current
from ..store import token_hash

WRITE_OPS = {"CREATE", "UPDATE"}


@dataclass
class Caller:
    user: dict[str, Any]
    org: dict[str, Any]
    client_id: str
    scopes: list[str]


def scope_allows(granted: list[str], resource: tuple[str, ...], op: str) -> bool:
    """``ZohoCRM.modules.ALL`` covers ``modules.contacts``; ALL covers every operation, WRITE create+update."""
    for scope in granted:
        parts = scope.split(".")
        if len(parts) < 3 or parts[0].lower() != "zohocrm":
            continue
        have_resource = tuple(p.lower() for p in parts[1:-1])
        have_op = parts[-1].upper()
        if resource[:len(have_resource)] != have_resource:
            continue
        if have_op in ("ALL", op) or (have_op == "WRITE" and op in WRITE_OPS):
            return True
    return False


def authenticate() -> Caller:
    header = request.headers.get("Authorization", "")
    if not header.startswith("Zoho-oauthtoken "):
        raise CrmError(401, "AUTHENTICATION_FAILURE", "Authentication failed")
    crm = current()
    store = crm.store
    with store.lock:
        token = store.access_tokens.get(token_hash(header[len("Zoho-oauthtoken "):].strip()))
        # A token is only good at the API domain of the data centre that issued it.
        if token is None or token["expires"] <= store.now() or token["dc"] != g.dc:
            raise invalid_token()
        memberships = [u for u in store.memberships(token["zuid"])
                       if store.orgs[u["org_id"]]["dc"] == g.dc and u["status"] == "active"]
        # A person in several orgs picks one with X-CRM-ORG (the org id); else the org the token was
        # granted for (provisioning grants), else the oldest membership.
        wanted_org = request.headers.get("X-CRM-ORG") or token.get("org_id")
        if wanted_org:
            memberships = [u for u in memberships if u["org_id"] == wanted_org]
        if not memberships:
            raise CrmError(401, "AUTHENTICATION_FAILURE", "Authentication failed")
        user = min(memberships, key=lambda u: int(u["id"]))
        return Caller(user=user, org=store.orgs[user["org_id"]], client_id=token["client_id"],
                      scopes=token["scopes"])


@contextmanager
def api_call(resource: tuple[str, ...], op: str, cost: int = 1, heavy: bool = False) -> Iterator[Caller]:
    caller = authenticate()
    if not scope_allows(caller.scopes, resource, op):
        raise scope_mismatch()
    crm = current()
    with crm.store.lock:
        users = directory.active_user_count(crm.store, caller.org["id"])
    crm.limits.enter(caller.org, caller.client_id, users, heavy, cost)
    try:
        crm.limits.inject(caller.org["id"])
        crm.limits.hold(caller.org["id"], op)
        yield caller
    finally:
        crm.limits.leave(caller.org["id"], caller.client_id, heavy)
