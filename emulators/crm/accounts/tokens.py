"""Zoho Accounts tokens: grant codes, refresh tokens, access tokens and their limits.

Only hashes are stored; the plain token is returned once to whoever asked for it.
"""

from __future__ import annotations

from typing import Any

from ..store import Store, new_secret, token_hash

CODE_LIFETIME = 120
ACCESS_LIFETIME = 3600
MAX_ACCESS_PER_REFRESH = 10  # the oldest active access token is invalidated beyond this
REFRESH_WINDOW = 600
MAX_REFRESH_PER_WINDOW = 10  # access-token requests per refresh token per ten minutes
MAX_REFRESH_PER_USER = 20  # per client and user; the 21st deletes the first

# What the first-party integration is granted (provisioning "grant").
CRM_SCOPES = ["ZohoCRM.modules.contacts.ALL", "ZohoCRM.modules.events.ALL", "ZohoCRM.users.ALL",
              "ZohoCRM.settings.profiles.READ", "ZohoCRM.settings.fields.READ", "ZohoCRM.settings.modules.READ",
              "ZohoCRM.org.READ", "ZohoCRM.notifications.ALL"]


def _token() -> str:
    return f"1000.{new_secret(16)}.{new_secret(16)}"


def issue_code(store: Store, client_id: str, zuid: str, dc: str, scopes: list[str], redirect_uri: str,
               offline: bool) -> str:
    code = _token()
    store.codes[token_hash(code)] = {"client_id": client_id, "zuid": zuid, "dc": dc, "scopes": scopes,
                                     "redirect_uri": redirect_uri, "offline": offline,
                                     "expires": store.now() + CODE_LIFETIME, "used": False}
    return code


def issue_refresh_token(store: Store, client_id: str, zuid: str, dc: str, scopes: list[str],
                        org_id: str | None = None) -> str:
    """``org_id`` pins the token to one org (provisioning grants do); None means the person's default org."""
    mine = sorted((t for t in store.refresh_tokens.values() if t["client_id"] == client_id and t["zuid"] == zuid
                   and not t["revoked"]), key=lambda t: t["created"])
    while len(mine) >= MAX_REFRESH_PER_USER:
        revoke_refresh(store, mine.pop(0)["hash"])
    token = _token()
    digest = token_hash(token)
    store.refresh_tokens[digest] = {"hash": digest, "client_id": client_id, "zuid": zuid, "dc": dc,
                                    "scopes": scopes, "created": store.now(), "revoked": False, "org_id": org_id,
                                    "requests": [], "access": []}
    return token


def issue_access_token(store: Store, client_id: str, zuid: str, dc: str, scopes: list[str],
                       refresh_hash: str | None, org_id: str | None = None) -> str:
    token = _token()
    digest = token_hash(token)
    store.access_tokens[digest] = {"hash": digest, "client_id": client_id, "zuid": zuid, "dc": dc,
                                   "scopes": scopes, "expires": store.now() + ACCESS_LIFETIME,
                                   "refresh": refresh_hash,
                                   "org_id": store.refresh_tokens[refresh_hash]["org_id"] if refresh_hash else org_id}
    if refresh_hash:
        active = store.refresh_tokens[refresh_hash]["access"]
        active.append(digest)
        while len(active) > MAX_ACCESS_PER_REFRESH:
            store.access_tokens.pop(active.pop(0), None)
    return token


def note_refresh_request(store: Store, refresh: dict[str, Any]) -> bool:
    """Record one access-token request; False when the ten-minute budget is spent."""
    now = store.now()
    refresh["requests"] = [t for t in refresh["requests"] if t > now - REFRESH_WINDOW]
    if len(refresh["requests"]) >= MAX_REFRESH_PER_WINDOW:
        return False
    refresh["requests"].append(now)
    return True


def revoke_refresh(store: Store, digest: str) -> None:
    refresh = store.refresh_tokens.get(digest)
    if refresh is None:
        return
    refresh["revoked"] = True
    for access in refresh["access"]:
        store.access_tokens.pop(access, None)
    refresh["access"] = []


def token_response(api_domain: str, access: str, scopes: list[str], refresh: str | None) -> dict[str, Any]:
    body: dict[str, Any] = {"access_token": access}
    if refresh:
        body["refresh_token"] = refresh
    body.update({"scope": " ".join(scopes), "api_domain": api_domain, "token_type": "Bearer",
                 "expires_in": ACCESS_LIFETIME})
    return body
