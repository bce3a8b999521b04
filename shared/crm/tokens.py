"""Access tokens for acting as a CRM member, made from their refresh token.

Zoho Accounts allows 10 access-token requests per refresh token per 10 minutes, and keeps at
most 10 live access tokens per refresh token (an 11th kills the oldest). Refreshing per call
would therefore break sync within minutes, and two workers refreshing side by side would kill
each other's tokens. So this process keeps one access token per refresh token, reuses it until
shortly before it expires, and lets concurrent first users wait for the one refresh in flight;
with a ``SharedTokenStore`` (deployed), every instance shares that one token through Table
Storage and one instance at a time refreshes it (``shared.crm.token_store``).
"""

from __future__ import annotations

import hashlib
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from shared.crm.errors import CrmError, CrmUnavailable
from shared.crm.models import CrmMemberAccess
from shared.crm.oauth import ZohoOAuth
from shared.crm.token_store import AccessToken, RefreshTokenDead, SharedTokenStore

# Refresh this long before the CRM's expiry, so a token never dies in the middle of a walk.
REFRESH_MARGIN_SECONDS = 300.0
# Answers of the token endpoint meaning the refresh token itself is dead (revoked, the person
# removed the app, the account was closed): retrying cannot help.
DEAD_REFRESH_TOKEN_CODES = frozenset({"invalid_code", "invalid_token", "invalid_grant"})
# A member's slot unused this long is dropped once the map has grown (``_slot``): a long-lived
# instance meets every member in time. Its next call reads the shared token again (one Table
# read; alone, one refresh).
SLOT_IDLE_SECONDS = 600.0
SWEEP_FROM = 1_000  # slots before the first sweep; then twice what the last one left


class CrmAuthorizationLost(CrmError):
    """The CRM no longer accepts this member's authorisation (refresh token revoked, access
    refused after a fresh token). Pause the member with this reason and ask them to reconnect;
    retrying will not help."""


@dataclass
class _Slot:
    """One refresh token's state. Its lock is held during a refresh, so that concurrent
    callers wait for that refresh rather than each spending one of the ten allowed."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    token: AccessToken | None = None
    lost: CrmAuthorizationLost | None = None
    used_at: float = 0.0  # the clock's time ``_slot`` last handed it out


class AccessTokens:
    """Per-member access tokens over ``ZohoOAuth.refresh``, cached and shared; thread-safe.

    One instance per process (the composition root builds it once). ``get`` returns a token
    valid for at least ``refresh_margin`` seconds more when it can; ``invalidate`` drops a
    token the CRM refused (``INVALID_TOKEN``) so the next ``get`` refreshes once.
    """

    def __init__(
        self,
        oauth: ZohoOAuth,
        *,
        refresh_margin: float = REFRESH_MARGIN_SECONDS,
        clock: Callable[[], float] = time.time,
        store: SharedTokenStore | None = None,
    ) -> None:
        self._oauth = oauth
        self._store = store
        self._margin = refresh_margin
        self._clock = clock
        self._slots: dict[str, _Slot] = {}
        self._slots_lock = threading.Lock()
        self._sweep_at = SWEEP_FROM
        self._swept_at = clock()
        self.refreshes = 0  # how many token requests this source made (for tests and metrics)

    def get(self, member: CrmMemberAccess) -> AccessToken:
        slot = self._slot(member)
        with slot.lock:
            if slot.lost is not None:
                raise slot.lost  # a dead refresh token stays dead: don't spend refreshes on it
            now = self._clock()
            if slot.token is not None and slot.token.expires_at - self._margin > now:
                return slot.token
            try:
                slot.token = self._shared(member, now) if self._store else self._refresh(member, now)
            except CrmAuthorizationLost as lost:
                slot.token, slot.lost = None, lost
                raise
            except CrmUnavailable:
                # Throttled or unreachable: a token still inside its margin is better than none.
                if slot.token is not None and slot.token.expires_at > now + 30:
                    return slot.token
                raise
            return slot.token

    def adopt(self, member: CrmMemberAccess, issued: AccessToken) -> None:
        """The access token the CRM issued with this member's authorisation (their sign-in,
        their grant) is their first token, here and for every instance: the first call does
        not spend one of Zoho's ten refreshes, nor mint a second live token, for nothing."""
        slot = self._slot(member)
        with slot.lock:
            if slot.token is None or slot.token.expires_at < issued.expires_at:
                slot.token = issued
            if self._store is not None:
                self._store.adopt(_key(member), issued)

    def invalidate(self, member: CrmMemberAccess, refused: AccessToken) -> None:
        """Forget ``refused`` unless another caller already replaced it (so N callers that
        saw the same refused token cause one refresh, not N; across instances too)."""
        slot = self._slot(member)
        with slot.lock:
            if slot.token == refused:
                slot.token = None
                if self._store is not None:
                    self._store.forget(_key(member), refused.value)

    def __len__(self) -> int:
        """How many members' tokens this process keeps."""
        with self._slots_lock:
            return len(self._slots)

    def _slot(self, member: CrmMemberAccess) -> _Slot:
        now = self._clock()
        with self._slots_lock:
            if len(self._slots) >= self._sweep_at or (len(self._slots) >= SWEEP_FROM and now - self._swept_at >= SLOT_IDLE_SECONDS):
                self._sweep(now)
            slot = self._slots.setdefault(_key(member), _Slot())
            slot.used_at = now
            return slot

    def _sweep(self, now: float) -> None:
        """Drop the slots nobody used for ``SLOT_IDLE_SECONDS`` and nobody holds (under
        ``_slots_lock``). A caller that took a slot took it moments ago, so no slot in use is
        dropped: two slots of one refresh token never live side by side. Amortised: the next
        sweep comes when the map has doubled, or ``SLOT_IDLE_SECONDS`` later."""
        for key in [k for k, slot in self._slots.items() if now - slot.used_at >= SLOT_IDLE_SECONDS and not slot.lock.locked()]:
            del self._slots[key]
        self._sweep_at = max(SWEEP_FROM, 2 * len(self._slots))
        self._swept_at = now

    def _shared(self, member: CrmMemberAccess, now: float) -> AccessToken:
        assert self._store is not None
        try:
            return self._store.acquire(_key(member), lambda token: token.expires_at - self._margin > self._clock(),
                                       lambda: self._refresh(member, self._clock()))
        except RefreshTokenDead as dead:
            raise CrmAuthorizationLost(
                401, "REFRESH_TOKEN_REVOKED",
                f"the CRM no longer accepts this member's authorisation ({dead.code}); they must reconnect",
            ) from None

    def _refresh(self, member: CrmMemberAccess, now: float) -> AccessToken:
        with self._slots_lock:
            self.refreshes += 1
        try:
            tokens = self._oauth.refresh(member.refresh_token.get_secret_value(), member.accounts_server)
        except CrmUnavailable:
            raise
        except CrmError as error:
            if error.code in DEAD_REFRESH_TOKEN_CODES and self._store is not None:
                raise RefreshTokenDead(error.code) from error  # the shared row keeps it, then _shared says it
            if error.code in DEAD_REFRESH_TOKEN_CODES:
                raise CrmAuthorizationLost(
                    401, "REFRESH_TOKEN_REVOKED",
                    f"the CRM no longer accepts this member's authorisation ({error.code}); they must reconnect",
                ) from error
            if error.status in (400, 429) and "access denied" in error.code.lower():
                # Zoho's answer to more than 10 refreshes in 10 minutes: temporary.
                raise CrmUnavailable(429, "TOKEN_REFRESH_LIMITED", "too many token refreshes; try later") from error
            raise
        return AccessToken(tokens.access_token, tokens.api_domain, now + tokens.expires_in)


def _key(member: CrmMemberAccess) -> str:
    """The refresh token's name in caches and in the shared table: never the token itself."""
    return hashlib.sha256(f"{member.accounts_server}\n{member.refresh_token.get_secret_value()}".encode()).hexdigest()
