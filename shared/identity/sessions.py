"""Server-side sessions: a random id in a signed, HttpOnly, SameSite=Lax cookie; the data
(who signed in, pending sign-in flows, the CSRF token) in Table Storage, so a session can
hold secrets such as the PKCE verifier and can be ended on the server.

No fixation: a session id known before sign-in (planted by someone else, or seen on a shared
machine) is never the signed-in session. Each change of identity ``renew``s the session: a
new id and CSRF token, the old row deleted. Over https the cookie is ``__Host-`` prefixed
and Secure, so neither a sibling subdomain nor plain http can plant or overwrite it.
A session nobody signed into (it holds a PKCE verifier and nonce) lives an hour, not eight;
``purge_expired`` (a timer) deletes the rows that have ended.
"""

from __future__ import annotations

import contextlib
import secrets
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from itsdangerous import BadSignature, URLSafeTimedSerializer
from pydantic import BaseModel

from shared.http_messages import Cookie, WebRequest
from shared.storage import ConcurrencyConflict, TableEntity, TableRepository

COOKIE_NAME = "crm365_session"  # over http (the loopback stack): browsers refuse __Host- without Secure
SECURE_COOKIE_NAME = f"__Host-{COOKIE_NAME}"  # over https: host-only, Path=/, Secure
SESSION_LIFETIME = timedelta(hours=8)
ANONYMOUS_LIFETIME = timedelta(hours=1)  # a sign-in flow lives 15 minutes; an invitation link waits for one
FLOW_LIFETIME = timedelta(minutes=15)
MAX_PENDING_FLOWS = 4


class SignedInUser(BaseModel):
    """A person signed in with Microsoft, as vouched for by a checked id token."""

    tenant_id: str
    object_id: str
    email: str
    name: str
    tenant_name: str = ""
    is_tenant_admin: bool = False
    # Whether ``email`` is proven to be this person's (issue 18 §1): its domain is a verified
    # domain of their tenant. Anyone's admin can set ``mail`` to anything; unproven, the
    # address finds no CRM account, accepts no invitation and creates no org.
    email_verified: bool = False


class PendingFlow(BaseModel):
    """A sign-in started here and not yet finished (keyed by its OAuth ``state``)."""

    kind: str  # "microsoft", "admin_consent", "crm"
    started_at: datetime
    data: dict[str, Any]


class SessionRow(TableEntity):
    created_at: datetime
    expires_at: datetime
    csrf_token: str
    user: SignedInUser | None = None
    flows: dict[str, PendingFlow] = {}
    after_sign_in: str | None = None  # where to go once signed in (a path of ours)


class SessionExpired(Exception):
    """The cookie names a session that has ended (too old, signed out, or unknown)."""


class SessionStore:
    def __init__(
        self,
        repository: TableRepository[SessionRow],
        secret: str,
        *,
        secure_cookies: bool,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._repo = repository
        self._serializer = URLSafeTimedSerializer(secret, salt="crm365-session")
        self._secure = secure_cookies
        self._now = clock
        self.cookie_name = SECURE_COOKIE_NAME if secure_cookies else COOKIE_NAME

    def load(self, request: WebRequest) -> tuple[SessionRow, str] | None:
        """The live session of this request with its ETag; None when there is no cookie.

        Raises SessionExpired when the cookie is valid but its session has ended, and for a
        forged cookie (a signature that does not verify is treated the same way).
        """
        raw = request.cookies.get(self.cookie_name)
        if not raw:
            return None
        try:
            session_id = self._serializer.loads(raw, max_age=int(SESSION_LIFETIME.total_seconds()))
        except BadSignature:
            raise SessionExpired("the session cookie is not one of ours or is too old") from None
        stored = self._repo.get(str(session_id), "s")
        if stored is None or stored.entity.expires_at <= self._now():
            raise SessionExpired("the session has ended")
        return stored.entity, stored.etag

    def start(self) -> tuple[SessionRow, str]:
        """A new anonymous session (it lives ``ANONYMOUS_LIFETIME``)."""
        return self._new(None)

    def renew(self, row: SessionRow, user: SignedInUser | None) -> tuple[SessionRow, str]:
        """The session to go on with after a change of identity: a new id and CSRF token for
        ``user``, nothing else carried over (pending flows and the way back belong to the
        session that started them); the old row is deleted, so its cookie names nothing."""
        fresh = self._new(user)
        self._repo.delete(row.partition_key, row.row_key)
        return fresh

    def _new(self, user: SignedInUser | None) -> tuple[SessionRow, str]:
        now = self._now()
        row = SessionRow(
            partition_key=secrets.token_urlsafe(24),
            row_key="s",
            created_at=now,
            expires_at=now + (SESSION_LIFETIME if user is not None else ANONYMOUS_LIFETIME),
            csrf_token=secrets.token_urlsafe(32),
            user=user,
        )
        return row, self._repo.insert(row).etag

    def purge_expired(self) -> int:
        """Delete every session that has ended (signed-in or not); returns how many."""
        purged = 0
        for stored in self._repo.query(where="expires_at lt @now", parameters={"now": self._now()}):
            with contextlib.suppress(ConcurrencyConflict):  # renewed or ended meanwhile: not ours to delete
                self._repo.delete(stored.entity.partition_key, stored.entity.row_key, stored.etag)
                purged += 1
        return purged

    def save(self, row: SessionRow, etag: str) -> str:
        """Write back; ConcurrencyConflict when another request changed the session meanwhile."""
        live = {k: f for k, f in row.flows.items() if f.started_at + FLOW_LIFETIME > self._now()}
        newest = dict(sorted(live.items(), key=lambda item: item[1].started_at)[-MAX_PENDING_FLOWS:])
        return self._repo.replace(row.model_copy(update={"flows": newest}), etag).etag

    def take_flow(self, row: SessionRow, etag: str, state: str, kind: str) -> tuple[PendingFlow, str] | None:
        """Remove and return the pending flow for ``state`` with the session's new ETag
        (single use: a replay finds nothing)."""
        flow = row.flows.get(state)
        if flow is None or flow.kind != kind or flow.started_at + FLOW_LIFETIME <= self._now():
            return None
        remaining = {k: v for k, v in row.flows.items() if k != state}
        try:
            new_etag = self._repo.replace(row.model_copy(update={"flows": remaining}), etag).etag
        except ConcurrencyConflict:
            return None  # a concurrent request took it first: this one is the replay
        row.flows = remaining
        return flow, new_etag

    def end(self, row: SessionRow) -> None:
        self._repo.delete(row.partition_key, row.row_key)

    def cookie(self, row: SessionRow) -> Cookie:
        value = self._serializer.dumps(row.partition_key)
        return Cookie(self.cookie_name, value, max_age=int(SESSION_LIFETIME.total_seconds()), secure=self._secure)

    def clear_cookie(self) -> Cookie:
        return Cookie(self.cookie_name, "", max_age=0, secure=self._secure)
