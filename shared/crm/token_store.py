"""One access token per CRM member for every instance of the app (issue 20).

Zoho allows about ten refreshes per refresh token in ten minutes and a bounded number of live
access tokens per refresh token; an eleventh kills the oldest (``contracts/zoho-notes.md``).
On Flex Consumption, many instances serve the same member: each refreshing on its own would
spend the allowance and revoke the others' tokens, and the member's sync would pause. So the
token lives in Table Storage, encrypted, one row per refresh token:

- a usable token in the row is taken as it is (one read);
- otherwise one instance claims the refresh with a short lease (ETag: one claim wins), the
  others wait for the row to carry the new token, and take over the lease if it lapses;
- the row remembers when this refresh token was refreshed: the eleventh refresh within ten
  minutes is not asked of Zoho at all (a still-live token is used, else "try later");
- a dead refresh token (revoked) is written down, so no instance spends a refresh on it again.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from dataclasses import dataclass

from shared.crm.errors import CrmUnavailable
from shared.identity.token_cipher import TokenCipher
from shared.storage import ConcurrencyConflict, EntityAlreadyExists, TableEntity, TableRepository

REFRESH_WINDOW_SECONDS = 600.0  # Zoho's window for its refreshes-per-refresh-token limit
REFRESHES_PER_WINDOW = 10
LEASE_SECONDS = 20.0  # a refresh is one HTTP call: a holder that died is replaced after this
POLL_SECONDS = 0.2


class StoredAccessToken(TableEntity):
    """PartitionKey = a hash of the accounts server and the refresh token, RowKey = "access"."""

    token_encrypted: str | None = None
    api_domain: str = ""
    expires_at: float = 0.0  # epoch seconds
    refreshing_until: float = 0.0  # the claim of the instance refreshing now (epoch seconds)
    refreshing_by: str = ""
    refreshed_at: list[float] = []  # this refresh token's refreshes in the last ten minutes
    lost_code: str | None = None  # the CRM refused the refresh token itself: never again


@dataclass(frozen=True)
class AccessToken:
    value: str
    api_domain: str
    expires_at: float  # on the clock of whoever made it (epoch seconds when shared)


class RefreshTokenDead(Exception):
    """The row says this refresh token was refused for good (``code``)."""

    def __init__(self, code: str) -> None:
        super().__init__(code)
        self.code = code


class SharedTokenStore:
    """The table of access tokens, shared by every instance. ``holder`` names this instance."""

    def __init__(
        self, rows: TableRepository[StoredAccessToken], cipher: TokenCipher, *, holder: str,
        clock: Callable[[], float] = time.time, sleep: Callable[[float], None] = time.sleep,
        wait_seconds: float = 30.0,
    ) -> None:
        self._rows = rows
        self._cipher = cipher
        self._holder = holder
        self._clock = clock
        self._sleep = sleep
        self._wait = wait_seconds

    def acquire(self, key: str, usable: Callable[[AccessToken], bool],
                refresh: Callable[[], AccessToken]) -> AccessToken:
        """A usable token for ``key``: the shared one, or one this instance refreshes (at most
        one instance at a time). Raises ``RefreshTokenDead`` (written down once seen),
        ``CrmUnavailable`` (the limit of refreshes reached and no live token; or the refresh
        in another instance took too long), and whatever ``refresh`` raises."""
        deadline = self._clock() + self._wait
        while True:
            now = self._clock()
            stored = self._rows.get(key, "access")
            row = stored.entity if stored else StoredAccessToken(partition_key=key, row_key="access")
            if row.lost_code:
                raise RefreshTokenDead(row.lost_code)
            token = self._token_of(row)
            if token is not None and usable(token):
                return token
            if row.refreshing_until > now and row.refreshing_by != self._holder:
                if now > deadline:
                    raise CrmUnavailable(503, "TOKEN_REFRESH_BUSY", "another instance is refreshing this member's token")
                self._sleep(POLL_SECONDS)  # another instance is refreshing: its token is coming
                continue
            recent = [t for t in row.refreshed_at if t > now - REFRESH_WINDOW_SECONDS]
            if len(recent) >= REFRESHES_PER_WINDOW:
                if token is not None and token.expires_at > now + 30:
                    return token  # inside the margin but alive: better than spending the 11th refresh
                raise CrmUnavailable(429, "TOKEN_REFRESH_LIMITED", "this member's token was refreshed ten times in ten minutes")
            # The attempt counts from the claim: Zoho counts the request even when its answer is lost.
            claim = row.model_copy(update={"refreshing_until": now + LEASE_SECONDS, "refreshing_by": self._holder,
                                           "refreshed_at": [*recent, now]})
            try:
                claimed = self._rows.replace(claim, stored.etag) if stored else self._rows.insert(claim)
            except (ConcurrencyConflict, EntityAlreadyExists):
                continue  # another instance claimed it first: read again
            return self._refresh(claimed.entity, claimed.etag, refresh)

    def _refresh(self, claim: StoredAccessToken, etag: str, refresh: Callable[[], AccessToken]) -> AccessToken:
        try:
            fresh = refresh()
        except RefreshTokenDead as dead:
            self._write(claim.model_copy(update={"lost_code": dead.code, "token_encrypted": None, "refreshing_until": 0.0}), etag)
            raise
        except BaseException:
            self._write(claim.model_copy(update={"refreshing_until": 0.0}), etag)  # let another try at once
            raise
        self._write(claim.model_copy(update={
            "token_encrypted": self._cipher.encrypt(fresh.value), "api_domain": fresh.api_domain, "expires_at": fresh.expires_at,
            "refreshing_until": 0.0,
        }), etag)
        return fresh

    def adopt(self, key: str, issued: AccessToken) -> None:
        """``issued`` (the token that came with the authorisation) for ``key``, unless the row
        already holds a token that lives as long, or an instance is refreshing it."""
        now = self._clock()
        stored = self._rows.get(key, "access")
        row = stored.entity if stored else StoredAccessToken(partition_key=key, row_key="access")
        current = self._token_of(row)
        if row.lost_code or row.refreshing_until > now or (current is not None and current.expires_at >= issued.expires_at):
            return
        adopted = row.model_copy(update={"token_encrypted": self._cipher.encrypt(issued.value), "api_domain": issued.api_domain,
                                         "expires_at": issued.expires_at})
        with contextlib.suppress(ConcurrencyConflict, EntityAlreadyExists):  # another writer's token wins
            if stored is None:
                self._rows.insert(adopted)
            else:
                self._rows.replace(adopted, stored.etag)

    def forget(self, key: str, refused: str) -> None:
        """The CRM refused ``refused``: if the row still holds it, mark it expired so that the
        next ``acquire`` anywhere refreshes once (not once per instance that saw it refused)."""
        stored = self._rows.get(key, "access")
        if stored is None or (token := self._token_of(stored.entity)) is None or token.value != refused:
            return
        self._write(stored.entity.model_copy(update={"expires_at": 0.0}), stored.etag)

    def _write(self, row: StoredAccessToken, etag: str) -> None:
        with contextlib.suppress(ConcurrencyConflict):  # our lease lapsed, another instance took over: its row wins
            self._rows.replace(row, etag)

    def _token_of(self, row: StoredAccessToken) -> AccessToken | None:
        if not row.token_encrypted:
            return None
        return AccessToken(self._cipher.decrypt(row.token_encrypted), row.api_domain, row.expires_at)
