"""Single-use, expiring, org-bound links (invitations, approval requests) (SPEC R2.6).

The link carries 256 random bits; only their SHA-256 is stored, so a leaked table
cannot be turned back into links. Redeeming is a conditional write: of two clicks at
the same moment, one wins and the other learns the link was used."""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from enum import StrEnum

from shared.storage import ConcurrencyConflict, TableEntity, TableRepository

TOKEN_BYTES = 32  # 256 bits


class LinkProblem(StrEnum):
    UNKNOWN = "unknown"  # forged, mistyped, or of another kind
    EXPIRED = "expired"
    USED = "used"
    REVOKED = "revoked"


class LinkRow(TableEntity):
    """PartitionKey = SHA-256 of the token (hex), RowKey = "link"."""

    kind: str  # "invitation" or "join"
    org_id: str
    subject: str  # the row the link acts on (invitation's e-mail, join request key)
    created_at: datetime
    expires_at: datetime
    used_at: datetime | None = None
    used_by: str | None = None
    revoked: bool = False


class LinkRefused(Exception):
    def __init__(self, problem: LinkProblem, row: LinkRow | None = None) -> None:
        super().__init__(problem.value)
        self.problem = problem
        self.row = row


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


class SignedLinks:
    def __init__(
        self, repository: TableRepository[LinkRow], clock: Callable[[], datetime] = lambda: datetime.now(UTC)
    ) -> None:
        self._repo = repository
        self._now = clock

    def issue(self, kind: str, org_id: str, subject: str, lifetime: timedelta) -> tuple[str, LinkRow]:
        """A new link; returns the token (to put in the e-mail, never stored) and its row."""
        token = secrets.token_urlsafe(TOKEN_BYTES)
        now = self._now()
        row = LinkRow(
            partition_key=token_hash(token), row_key="link", kind=kind, org_id=org_id, subject=subject,
            created_at=now, expires_at=now + lifetime,
        )
        self._repo.insert(row)
        return token, row

    def check(self, token: str, kind: str) -> tuple[LinkRow, str]:
        """The live link for ``token`` with its ETag, or LinkRefused saying why not."""
        if not token or len(token) > 200:
            raise LinkRefused(LinkProblem.UNKNOWN)
        stored = self._repo.get(token_hash(token), "link")
        if stored is None or stored.entity.kind != kind:
            raise LinkRefused(LinkProblem.UNKNOWN)
        row = stored.entity
        if row.revoked:
            raise LinkRefused(LinkProblem.REVOKED, row)
        if row.used_at is not None:
            raise LinkRefused(LinkProblem.USED, row)
        if row.expires_at <= self._now():
            raise LinkRefused(LinkProblem.EXPIRED, row)
        return row, stored.etag

    def redeem(self, token: str, kind: str, by: str) -> LinkRow:
        """Use the link once: a second redemption (even concurrent) is refused as USED."""
        row, etag = self.check(token, kind)
        used = row.model_copy(update={"used_at": self._now(), "used_by": by})
        try:
            self._repo.replace(used, etag)
        except ConcurrencyConflict:
            raise LinkRefused(LinkProblem.USED, row) from None
        return used

    def revoke(self, hashed: str) -> None:
        stored = self._repo.get(hashed, "link")
        if stored is not None and not stored.entity.revoked and stored.entity.used_at is None:
            self._repo.replace(stored.entity.model_copy(update={"revoked": True}), stored.etag)
