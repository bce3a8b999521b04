"""Who is calling Graph and what they may touch: bearer token checks and permission rules."""

from __future__ import annotations

import jwt
from flask import g, request

from ..errors import GraphError
from ..identity.tokens import verify_access_token
from ..runtime import emulator
from ..store import Mailbox

READ = {
    "calendar": {"Calendars.Read", "Calendars.ReadWrite", "Calendars.ReadBasic"},
    "contact": {"Contacts.Read", "Contacts.ReadWrite"},
    "mail": {"Mail.Read", "Mail.ReadWrite", "Mail.ReadBasic", "Mail.ReadBasic.All"},
    "user": {"User.Read.All", "User.ReadWrite.All", "Directory.Read.All", "Directory.ReadWrite.All", "User.ReadBasic.All"},
    "organization": {"Organization.Read.All", "Organization.ReadWrite.All", "Directory.Read.All", "Directory.ReadWrite.All"},
}
WRITE = {
    "calendar": {"Calendars.ReadWrite"},
    "contact": {"Contacts.ReadWrite"},
    "mail": {"Mail.ReadWrite"},
    "send": {"Mail.Send"},
}


def authenticate() -> dict:
    header = request.headers.get("Authorization", "")
    if not header.lower().startswith("bearer ") or not header[7:].strip():
        raise GraphError(401, "InvalidAuthenticationToken", "Access token is empty.")
    try:
        claims = verify_access_token(emulator().signing_key, header[7:].strip())
    except jwt.ExpiredSignatureError:
        raise GraphError(401, "InvalidAuthenticationToken", "Lifetime validation failed, the token is expired.") from None
    except jwt.InvalidAudienceError:
        raise GraphError(401, "InvalidAuthenticationToken", "Access token validation failure. Invalid audience.") from None
    except jwt.InvalidSignatureError:
        raise GraphError(401, "InvalidAuthenticationToken", "Access token validation failure. Invalid signature.") from None
    except jwt.PyJWTError:
        raise GraphError(401, "InvalidAuthenticationToken", "IDX14100: JWT is not well formed.") from None
    store = emulator().store
    if claims["tid"] not in store.tenants or claims.get("appid") not in store.apps:
        raise GraphError(401, "InvalidAuthenticationToken", "Access token validation failure. Invalid issuer or signature.")
    g.claims = claims
    return claims


def is_app_only() -> bool:
    return "scp" not in g.claims


def permissions() -> set[str]:
    claims = g.claims
    if is_app_only():
        return set(claims.get("roles", []))
    return set(claims.get("scp", "").split())


def require(area: str, write: bool = False) -> None:
    wanted = (WRITE if write else READ)[area]
    if write and area not in WRITE:
        wanted = READ[area]
    granted = permissions()
    if not is_app_only() and area == "user" and not write and "User.Read" in granted and g.get("self_only"):
        return
    if not is_app_only() and area == "organization" and granted & {"User.Read", "User.ReadBasic.All", "User.Read.All"}:
        return
    if granted & wanted:
        return
    if area in ("user", "organization"):
        raise GraphError(403, "Authorization_RequestDenied", "Insufficient privileges to complete the operation.")
    raise GraphError(403, "ErrorAccessDenied", "Access is denied. Check credentials and try again.")


def resolve_user(user_ref: str, directory: bool = False) -> dict:
    store = emulator().store
    claims = g.claims
    if user_ref == "me":
        if is_app_only():
            raise GraphError(400, "BadRequest", "/me request is only valid with delegated authentication flow.")
        user_ref = claims["oid"]
    user = store.find_user(user_ref, tenant_id=claims["tid"])
    if user is None:
        if directory:
            raise GraphError(404, "Request_ResourceNotFound", f"Resource '{user_ref}' does not exist or one of its queried "
                             "reference-property objects are not present.")
        raise GraphError(404, "ErrorInvalidUser", f"The requested user '{user_ref}' is invalid.")
    return user


def mailbox_allowed(tenant_id: str, client_id: str, user: dict) -> bool:
    """What the tenant's application access policies let this app reach (none: every mailbox)."""
    names = {user["id"], str(user.get("userPrincipalName", "")).lower(), str(user.get("mail") or "").lower()}
    for policy in emulator().store.access_policies:
        if policy["tenantId"] != tenant_id or policy["appId"] != client_id:
            continue
        listed = bool(names & {str(m).lower() for m in policy["mailboxes"]})
        if listed is (policy["accessRight"] == "DenyAccess"):
            return False
    return True


def resolve_mailbox(user_ref: str, area: str, write: bool = False) -> Mailbox:
    user = resolve_user(user_ref)
    if not is_app_only() and user["id"] != g.claims.get("oid"):
        # Delegated calls reach only the signed-in user's mailbox (no shared-mailbox permissions here).
        raise GraphError(403, "ErrorAccessDenied", "Access is denied. Check credentials and try again.")
    require(area, write)
    if is_app_only() and not mailbox_allowed(g.claims["tid"], g.claims.get("appid", ""), user):
        # auth-limit-mailbox-access: the tenant scoped the app's application permissions away from this mailbox.
        raise GraphError(403, "ErrorAccessDenied", "Access to OData is disabled.")
    box = emulator().store.mailboxes.get(user["id"])
    if box is None:
        raise GraphError(404, "MailboxNotEnabledForRESTAPI", "The mailbox is either inactive, soft-deleted, or is hosted on-premise.")
    return box
