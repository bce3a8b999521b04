"""Requests to join (SPEC R2.4, R2.5): an Office 365 user of an installed tenant asks; every
member with Manage Users gets an approval link by e-mail; the first approval adds the
person, and every later click learns it was already decided.

A request lives as long as its links (``LINK_LIFETIME_DAYS``): pending, then approved,
declined or expired (issue 23). The Users page lists them with their state and decides a
pending one there too; the requester may send a pending one again (at most once an hour),
and ask anew once it expired or was declined."""

from __future__ import annotations

import contextlib
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from shared.accounts.models import MemberIdentity, TenantInstall
from shared.accounts.repository import AccountsRepository
from shared.crm.directory import MANAGE_USERS, CrmDirectory
from shared.crm.errors import CrmError
from shared.identity.sessions import SignedInUser
from shared.identity.signed_links import LinkProblem, LinkRefused, SignedLinks
from shared.mail.outbox import Outbox, OutboxMessage
from shared.mail.templates import render_mail
from shared.storage import ConcurrencyConflict, EntityAlreadyExists, TableEntity, TableRepository


class JoinRequest(TableEntity):
    """PartitionKey = org id, RowKey = "{tenant id}|{object id}" of the requester."""

    email: str
    name: str
    tenant_id: str
    object_id: str
    org_name: str
    created_at: datetime
    state: str = "pending"  # pending, approved, declined (expired: pending past ``expires_at``)
    decided_by: str | None = None
    decided_at: datetime | None = None
    expires_at: datetime | None = None  # None: asked before requests had a lifetime (created_at + lifetime)
    reminded_at: datetime | None = None  # the requester's last "Send again"


@dataclass(frozen=True)
class Decided:
    """The request was decided before this click (by ``by``)."""

    request: JoinRequest


REMIND_AFTER = timedelta(hours=1)  # the approvers are not reminded more often than this
KEY = re.compile(r"[0-9A-Za-z-]{1,64}\|[0-9A-Za-z-]{1,64}")  # "{tenant id}|{object id}": what a row key can be


def request_key(tenant_id: str, object_id: str) -> str:
    return f"{tenant_id}|{object_id}"


class JoinRequestService:
    def __init__(
        self,
        requests: TableRepository[JoinRequest],
        links: SignedLinks,
        accounts: AccountsRepository,
        directory: CrmDirectory,
        outbox: Outbox,
        *,
        public_base_url: str,
        lifetime: timedelta,
        default_profile: str,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._rows = requests
        self._links = links
        self._accounts = accounts
        self._directory = directory
        self._outbox = outbox
        self._base = public_base_url
        self._lifetime = lifetime
        self._profile = default_profile
        self._now = clock

    def request(self, user: SignedInUser, install: TenantInstall, language: str) -> tuple[JoinRequest, bool]:
        """Ask to join the tenant's org; returns the request and whether this click created it
        (one live request per person: repeated clicks are told it is pending)."""
        assert install.org_id
        now = self._now()
        row = JoinRequest(
            partition_key=install.org_id, row_key=request_key(user.tenant_id, user.object_id), email=user.email,
            name=user.name, tenant_id=user.tenant_id, object_id=user.object_id, org_name=install.org_name or "",
            created_at=now, expires_at=now + self._lifetime,
        )
        existing = self._rows.get(row.partition_key, row.row_key)
        if existing is not None and self.state_of(existing.entity) == "pending":
            return existing.entity, False
        try:
            if existing is None:
                self._rows.insert(row)
            else:  # declined or expired before: a new request replaces it
                self._rows.replace(row, existing.etag)
        except (EntityAlreadyExists, ConcurrencyConflict):
            current = self._rows.get(row.partition_key, row.row_key)
            assert current is not None
            return current.entity, False
        self._notify_approvers(row, language)
        self._accounts.audit(actor=user.email, action="join.requested", tenant_id=user.tenant_id, org_id=install.org_id)
        return row, True

    def _notify_approvers(self, row: JoinRequest, language: str) -> None:
        for approver in self._directory.list_members(row.partition_key, MANAGE_USERS):
            token, link = self._links.issue("join", row.partition_key, row.row_key, self._lifetime)
            subject, html, text = render_mail(
                "join_request", language, approver_name=f"{approver.first_name} {approver.last_name}".strip(),
                requester=row.name or row.email, requester_email=row.email, org=row.org_name,
                link=f"{self._base}/api/join-requests/{token}", expires=link.expires_at.strftime("%Y-%m-%d %H:%M UTC"),
            )
            self._outbox.enqueue(
                OutboxMessage(
                    message_id=f"join-{link.partition_key[:40]}", tenant_id=row.tenant_id, sender=row.object_id,
                    to_email=approver.email, to_name=approver.first_name, subject=subject, html=html, text=text,
                )
            )

    def state_of(self, row: JoinRequest) -> str:
        """pending, approved, declined, or expired (a pending one past its lifetime)."""
        if row.state == "pending" and self._now() >= (row.expires_at or row.created_at + self._lifetime):
            return "expired"
        return row.state

    def list(self, org_id: str) -> list[tuple[JoinRequest, str]]:
        """The org's requests to join with their state, newest first (the Users page)."""
        rows = [s.entity for s in self._rows.query(org_id)]
        return [(row, self.state_of(row)) for row in sorted(rows, key=lambda r: r.created_at, reverse=True)]

    def open(self, token: str) -> JoinRequest | Decided:
        link, _ = self._links.check(token, "join")
        stored = self._rows.get(link.org_id, link.subject)
        if stored is None:
            raise LinkRefused(LinkProblem.UNKNOWN, link)
        state = self.state_of(stored.entity)
        if state == "expired":  # an e-mail of an earlier request, or one kept too long
            raise LinkRefused(LinkProblem.EXPIRED, link)
        return stored.entity if state == "pending" else Decided(stored.entity)

    def pending_for(self, org_id: str, user: SignedInUser) -> JoinRequest | None:
        stored = self._rows.get(org_id, request_key(user.tenant_id, user.object_id))
        return stored.entity if stored and self.state_of(stored.entity) == "pending" else None

    def remind(self, user: SignedInUser, org_id: str, language: str) -> bool:
        """The requester's "Send again": the approvers get the request once more, with new links;
        False when there is no pending request, or it was sent less than an hour ago."""
        stored = self._rows.get(org_id, request_key(user.tenant_id, user.object_id))
        if stored is None or self.state_of(stored.entity) != "pending":
            return False
        last = stored.entity.reminded_at or stored.entity.created_at
        if self._now() - last < REMIND_AFTER:
            return False
        try:
            self._rows.replace(stored.entity.model_copy(update={"reminded_at": self._now()}), stored.etag)
        except ConcurrencyConflict:
            return False  # a twin click sent it
        self._notify_approvers(stored.entity, language)
        self._accounts.audit(actor=user.email, action="join.reminded", tenant_id=user.tenant_id, org_id=org_id)
        return True

    def decide_here(self, approver: MemberIdentity, key: str, *, approve: bool, language: str) -> JoinRequest | Decided:
        """Approve & Add or Decline from the Users page (no link): the same rules as ``decide``.
        Raises LookupError for an unknown request (or a key no request could have), ValueError
        for an expired one."""
        if not KEY.fullmatch(key):
            raise LookupError(key)
        stored = self._rows.get(approver.org_id, key)
        if stored is None:
            raise LookupError(key)
        state = self.state_of(stored.entity)
        if state == "expired":
            raise ValueError("expired")
        if state != "pending":
            return Decided(stored.entity)
        return self._decide(approver, stored.entity, approve=approve, language=language, token=None)

    def decide(self, approver: MemberIdentity, token: str, *, approve: bool, language: str) -> JoinRequest | Decided:
        """Approve & Add (R2.5) or decline. The first decision wins; later ones get Decided."""
        opened = self.open(token)
        if isinstance(opened, Decided):
            return opened
        return self._decide(approver, opened, approve=approve, language=language, token=token)

    def _decide(self, approver: MemberIdentity, opened: JoinRequest, *, approve: bool, language: str,
                token: str | None) -> JoinRequest | Decided:
        state = "approved" if approve else "declined"
        decided = opened.model_copy(update={"state": state, "decided_by": approver.email, "decided_at": self._now()})
        stored = self._rows.get(opened.partition_key, opened.row_key)
        assert stored is not None
        if approve:
            self._add(opened)  # before recording: a crash here leaves the request pending, safe to retry
        try:
            self._rows.replace(decided, stored.etag)
        except ConcurrencyConflict:
            current = self._rows.get(opened.partition_key, opened.row_key)
            assert current is not None
            return Decided(current.entity)
        if token is not None:
            with contextlib.suppress(LinkRefused):
                self._links.redeem(token, "join", approver.object_id)
        self._accounts.audit(actor=approver.email, action=f"join.{state}", tenant_id=approver.tenant_id,
                             org_id=approver.org_id, detail=opened.email)
        if approve:
            self._tell_requester(decided, approver, language)
        return decided

    def _add(self, request: JoinRequest) -> None:
        """The requester becomes a CRM user (once: an existing membership is kept as is)."""
        first, _, last = request.name.partition(" ")
        try:
            self._directory.add_user(
                request.partition_key, email=request.email, first_name=first, last_name=last or first or request.email,
                profile=self._profile,
            )
        except CrmError as error:
            if error.code != "DUPLICATE_DATA":
                raise

    def _tell_requester(self, request: JoinRequest, approver: MemberIdentity, language: str) -> None:
        subject, html, text = render_mail(
            "join_approved", language, requester=request.name or request.email, approver=approver.name or approver.email,
            org=request.org_name, link=f"{self._base}/api/marketplace/launch",
        )
        self._outbox.enqueue(
            OutboxMessage(
                message_id=f"joined-{request.tenant_id[:8]}-{request.object_id}"[:100], tenant_id=approver.tenant_id,
                sender=approver.object_id, to_email=request.email, to_name=request.name, subject=subject, html=html,
                text=text,
            )
        )
