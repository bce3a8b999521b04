"""Checking a Microsoft id token ourselves: MSAL 1.38+ no longer validates it.

Signature against the tenant's published keys (RS256), issuer for the token's own tenant,
audience = our client id, expiry, and the nonce of the flow we started.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import jwt
import requests

from shared.expiring_cache import ExpiringCache

# Directory roles that may grant tenant-wide consent to Microsoft Graph application permissions.
CONSENT_ADMIN_ROLES = {
    "62e90394-69f5-4237-9190-012177145e10",  # Global Administrator
    "e8611ab8-c189-46e8-94e1-60213ab1f814",  # Privileged Role Administrator
}
KEYS_TTL_SECONDS = 3600
KEYS_OF_TENANTS = 1_000  # the tenants whose keys are kept: a bound, as every tenant signs in in time
LEEWAY_SECONDS = 60  # clock skew between us and the identity platform


class InvalidIdToken(Exception):
    """The id token cannot be trusted; the message says why, for the person and the logs."""


@dataclass(frozen=True)
class IdTokenClaims:
    tenant_id: str
    object_id: str
    email: str
    name: str
    role_ids: frozenset[str]
    # Entra's optional claim xms_edov: whether the domain of ``email`` is verified by its
    # owner. None when the app registration does not ask for it (see docs/deploy.md).
    email_domain_verified: bool | None = None

    @property
    def is_consent_admin(self) -> bool:
        return bool(self.role_ids & CONSENT_ADMIN_ROLES)


class IdTokenVerifier:
    def __init__(
        self,
        authority_host: str,
        client_id: str,
        session: requests.Session,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._clock = clock
        self._authority_host = authority_host.rstrip("/")
        self._client_id = client_id
        self._session = session
        self._keys: ExpiringCache[str, tuple[jwt.PyJWKSet, str]] = ExpiringCache(KEYS_OF_TENANTS)

    def _tenant_keys(self, tenant_id: str) -> tuple[jwt.PyJWKSet, str]:
        """The tenant's signing keys and issuer, from its OpenID configuration (cached)."""
        cached = self._keys.get(tenant_id)
        if cached is not None:
            return cached.value
        config_url = f"{self._authority_host}/{tenant_id}/v2.0/.well-known/openid-configuration"
        config = self._session.get(config_url, timeout=10)
        config.raise_for_status()
        document = config.json()
        keys = self._session.get(document["jwks_uri"], timeout=10)
        keys.raise_for_status()
        key_set = jwt.PyJWKSet.from_dict(keys.json())
        issuer = str(document["issuer"]).replace("{tenantid}", tenant_id)
        self._keys.put(tenant_id, (key_set, issuer), KEYS_TTL_SECONDS)
        return key_set, issuer

    def verify(self, id_token: str, *, nonce: str | None) -> IdTokenClaims:
        try:
            unverified = jwt.decode(id_token, options={"verify_signature": False})
            header = jwt.get_unverified_header(id_token)
        except jwt.PyJWTError as error:
            raise InvalidIdToken("the sign-in answer is not a valid token") from error
        tenant_id = str(unverified.get("tid", ""))
        if not tenant_id or "/" in tenant_id or ".." in tenant_id:
            raise InvalidIdToken("the token names no organisation")
        try:
            key_set, issuer = self._tenant_keys(tenant_id)
        except (requests.RequestException, KeyError, ValueError, jwt.PyJWTError) as error:
            raise InvalidIdToken("the organisation's signing keys could not be read") from error
        key = next((k for k in key_set.keys if k.key_id == header.get("kid")), None)
        if key is None:
            raise InvalidIdToken("the token was not signed by the organisation's keys")
        claims = self._decode(id_token, key, issuer)
        now = self._clock()
        if float(claims["exp"]) + LEEWAY_SECONDS < now:
            raise InvalidIdToken("the sign-in has expired")
        if float(claims.get("nbf", 0)) - LEEWAY_SECONDS > now:
            raise InvalidIdToken("the token is not valid yet")
        if nonce is not None and claims.get("nonce") != hashlib.sha256(nonce.encode("ascii")).hexdigest():
            raise InvalidIdToken("the token does not answer the sign-in we started (nonce)")
        return IdTokenClaims(
            tenant_id=tenant_id,
            object_id=str(claims["oid"]),
            email=str(claims.get("email") or claims.get("preferred_username") or claims.get("upn") or "").lower(),
            name=str(claims.get("name") or ""),
            role_ids=frozenset(claims.get("wids") or ()),
            email_domain_verified=_flag(claims.get("xms_edov")),
        )

    def _decode(self, id_token: str, key: Any, issuer: str) -> dict[str, Any]:
        try:
            return jwt.decode(
                id_token,
                key=key.key,
                algorithms=["RS256"],
                audience=self._client_id,
                issuer=issuer,
                # Time is checked by the caller against our clock (testable); the rest here.
                options={"require": ["exp", "iat", "aud", "iss", "oid", "tid"], "verify_exp": False, "verify_nbf": False},
            )
        except jwt.InvalidAudienceError as error:
            raise InvalidIdToken("the token was issued to another application") from error
        except jwt.InvalidIssuerError as error:
            raise InvalidIdToken("the token was issued by another organisation") from error
        except jwt.PyJWTError as error:
            raise InvalidIdToken(f"the token could not be verified ({type(error).__name__})") from error


def _flag(value: Any) -> bool | None:
    """A boolean claim, as Entra sends it (true/false, or "1"/"0" in some token versions)."""
    if isinstance(value, bool):
        return value
    if isinstance(value, int | str) and str(value).lower() in {"1", "true", "0", "false"}:
        return str(value).lower() in {"1", "true"}
    return None
