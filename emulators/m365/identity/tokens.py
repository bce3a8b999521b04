"""Id and access tokens with Entra's claims.

Graph access tokens are v1.0 tokens (Graph's accessTokenAcceptedVersion), so their issuer
is ``https://sts.windows.net/{tid}/`` and aud is ``https://graph.microsoft.com`` (or Graph's
app id when the scope names it). Id tokens are v2.0 with the emulator's issuer per tenant.
"""

from __future__ import annotations

import base64
import json
import time
import uuid

import jwt

from ..store import GRAPH_APP_ID, Store
from .keys import SigningKey

GRAPH_RESOURCE = "https://graph.microsoft.com"
ACCESS_TOKEN_LIFETIME = 3599
OIDC_SCOPES = {"openid", "profile", "email", "offline_access"}


class TokenError(Exception):
    def __init__(self, message: str):
        super().__init__(message)
        self.message = message


def split_scopes(scope: str) -> tuple[str | None, list[str], list[str]]:
    """(resource audience, resource permissions, OIDC scopes) of a v2 scope string."""
    oidc, perms, resource = [], [], None
    for item in scope.split():
        if item in OIDC_SCOPES:
            oidc.append(item)
            continue
        if item.startswith((GRAPH_RESOURCE + "/", GRAPH_APP_ID + "/")):
            resource = GRAPH_RESOURCE if item.startswith(GRAPH_RESOURCE) else GRAPH_APP_ID
            perms.append(item.rsplit("/", 1)[1])
        elif "/" not in item:
            resource = resource or GRAPH_RESOURCE  # bare names mean Graph
            perms.append(item)
        else:
            raise TokenError(f"AADSTS500011: The resource principal named {item.rsplit('/', 1)[0]} was not found in the tenant.")
    return resource, perms, oidc


def _now() -> int:
    return int(time.time())


def issue_access_token(key: SigningKey, store: Store, tenant_id: str, app: dict, audience: str, *,
                       user: dict | None = None, scopes: list[str] | None = None, roles: list[str] | None = None,
                       lifetime: int = ACCESS_TOKEN_LIFETIME) -> str:
    now = _now()
    claims = {
        "aud": audience, "iss": f"https://sts.windows.net/{tenant_id}/", "iat": now, "nbf": now, "exp": now + lifetime,
        "aio": uuid.uuid4().hex, "app_displayname": app["displayName"], "appid": app["clientId"],
        "appidacr": "1", "idp": f"https://sts.windows.net/{tenant_id}/", "tid": tenant_id,
        "uti": uuid.uuid4().hex[:22], "ver": "1.0", "xms_tcdt": 1600000000,
    }
    if user is not None:
        claims.update({
            "oid": user["id"], "sub": uuid.uuid5(uuid.NAMESPACE_URL, user["id"] + app["clientId"]).hex,
            "upn": user["userPrincipalName"], "unique_name": user["userPrincipalName"], "name": user["displayName"],
            "given_name": user.get("givenName"), "family_name": user.get("surname"),
            "scp": " ".join(scopes or []), "amr": ["pwd"],
        })
        wids = user_wids(user)
        if wids:
            claims["wids"] = wids
    else:
        sp_oid = str(uuid.uuid5(uuid.NAMESPACE_URL, f"sp:{tenant_id}:{app['clientId']}"))
        claims.update({"oid": sp_oid, "sub": sp_oid, "idtyp": "app"})
        if roles:
            claims["roles"] = sorted(roles)
    return jwt.encode(claims, key.private_key, algorithm="RS256", headers={"kid": key.kid, "x5t": key.kid})


def user_wids(user: dict) -> list[str]:
    from ..store import DIRECTORY_ROLE_TEMPLATES

    wids = [DIRECTORY_ROLE_TEMPLATES[r] for r in user.get("directoryRoles", []) if r in DIRECTORY_ROLE_TEMPLATES]
    # Every member carries the "directory readers"-like default user role template id.
    return [*wids, "b79fbf4d-3ef9-4689-8143-76b194e85509"]


def optional_id_token_claims(app: dict) -> set[str]:
    entries = (app.get("optionalClaims") or {}).get("idToken") or []
    return {str(e.get("name") if isinstance(e, dict) else e) for e in entries}


def issue_id_token(key: SigningKey, issuer: str, tenant_id: str, app: dict, user: dict, nonce: str | None,
                   *, mail_domain_verified: bool = False) -> str:
    now = _now()
    claims = {
        "aud": app["clientId"], "iss": issuer, "iat": now, "nbf": now, "exp": now + 3600,
        "name": user["displayName"], "oid": user["id"], "preferred_username": user["userPrincipalName"],
        "email": user.get("mail"), "sub": uuid.uuid5(uuid.NAMESPACE_URL, user["id"] + app["clientId"]).hex,
        "tid": tenant_id, "ver": "2.0", "uti": uuid.uuid4().hex[:22], "rh": "0.emulator",
    }
    # Entra: with removeUnverifiedEmailClaim the email claim is left out when its domain is not
    # verified; the optional claim xms_edov says whether it is (the "nOAuth" guidance).
    if not mail_domain_verified and (app.get("authenticationBehaviors") or {}).get("removeUnverifiedEmailClaim"):
        claims.pop("email")
    if "xms_edov" in optional_id_token_claims(app) and claims.get("email"):
        claims["xms_edov"] = mail_domain_verified
    if nonce:
        claims["nonce"] = nonce
    wids = user_wids(user)
    if wids:
        claims["wids"] = wids
    return jwt.encode(claims, key.private_key, algorithm="RS256", headers={"kid": key.kid})


def client_info(user: dict) -> str:
    raw = json.dumps({"uid": user["id"], "utid": user["tenantId"]}).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def verify_access_token(key: SigningKey, token: str) -> dict:
    """Claims of a Graph access token; raises jwt exceptions with reasons Graph would give."""
    return jwt.decode(token, key.public_key, algorithms=["RS256"], audience=[GRAPH_RESOURCE, GRAPH_APP_ID],
                      options={"require": ["exp", "iss", "aud", "tid"]}, leeway=0)
