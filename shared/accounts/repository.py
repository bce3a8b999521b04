"""Rows of the accounts area over Table Storage, written so that a repeat or a race never
leaves two links for one person or one CRM account."""

from __future__ import annotations

import secrets
from collections.abc import Callable
from datetime import UTC, datetime

from shared.accounts.models import AuditEvent, CrmAccountRef, MemberIdentity, TenantInstall
from shared.storage import ConcurrencyConflict, EntityAlreadyExists, TableRepository, partitions_starting


class AlreadyLinkedElsewhere(Exception):
    """The CRM account is already linked to another Microsoft identity (R1.6)."""

    def __init__(self, crm_email: str) -> None:
        super().__init__(crm_email)
        self.crm_email = crm_email


def member_key(tenant_id: str, object_id: str) -> str:
    return f"ms|{tenant_id}|{object_id}"


def crm_key(org_id: str, user_id: str) -> str:
    return f"crm|{org_id}|{user_id}"


class AccountsRepository:
    def __init__(
        self,
        installs: TableRepository[TenantInstall],
        members: TableRepository[MemberIdentity],
        crm_links: TableRepository[CrmAccountRef],
        audit: TableRepository[AuditEvent],
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.installs = installs
        self.members = members
        self.crm_links = crm_links
        self.audit_log = audit
        self._now = clock

    def install_of(self, tenant_id: str) -> TenantInstall | None:
        stored = self.installs.get(tenant_id, "install")
        return stored.entity if stored else None

    def record_install(self, install: TenantInstall) -> tuple[TenantInstall, bool]:
        """First install wins; a repeat (double click, second admin) keeps the first record.
        Returns the install and whether this call created it."""
        try:
            self.installs.insert(install)
            return install, True
        except EntityAlreadyExists:
            existing = self.install_of(install.partition_key)
            assert existing is not None
            return existing, False

    def link_tenant_org(self, tenant_id: str, org_id: str, org_name: str, dc: str) -> TenantInstall:
        """Give the tenant its CRM org, once: a later or concurrent attempt keeps the first."""
        for _ in range(5):
            stored = self.installs.get(tenant_id, "install")
            if stored is None:
                raise LookupError(f"tenant {tenant_id} is not installed")
            if stored.entity.org_id:
                return stored.entity
            updated = stored.entity.model_copy(update={"org_id": org_id, "org_name": org_name, "org_dc": dc})
            try:
                self.installs.replace(updated, stored.etag)
                return updated
            except ConcurrencyConflict:
                continue
        raise ConcurrencyConflict(f"tenant {tenant_id} kept changing while linking its org")

    def member_of(self, tenant_id: str, object_id: str) -> MemberIdentity | None:
        stored = self.members.get(member_key(tenant_id, object_id), "member")
        return stored.entity if stored else None

    def identity_of(self, org_id: str, user_id: str) -> tuple[str, str] | None:
        """The Microsoft identity (tenant id, object id) linked to a CRM user, if any."""
        stored = self.crm_links.get(crm_key(org_id, user_id), "link")
        return (stored.entity.tenant_id, stored.entity.object_id) if stored else None

    def org_identities(self, org_id: str) -> dict[str, tuple[str, str]]:
        """Every linked CRM user of the org: user id -> (tenant id, object id); one range query
        (paged by 1,000), not one read per member (the admin's view of an org of thousands)."""
        prefix = crm_key(org_id, "")
        where, parameters = partitions_starting(prefix)
        return {stored.entity.partition_key[len(prefix):]: (stored.entity.tenant_id, stored.entity.object_id)
                for stored in self.crm_links.query(where=f"{where} and RowKey eq @link", parameters={**parameters, "link": "link"})}

    def link_member(self, member: MemberIdentity) -> MemberIdentity:
        """Link a Microsoft identity to a CRM user, both ways, idempotently.

        The CRM side is claimed first: if that CRM user is already claimed by someone else,
        nothing is written. A crash between the two writes is repaired by the next attempt.
        """
        claim = CrmAccountRef(
            partition_key=crm_key(member.org_id, member.user_id),
            row_key="link",
            tenant_id=member.tenant_id,
            object_id=member.object_id,
            email=member.email,
            linked_at=member.linked_at,
        )
        try:
            self.crm_links.insert(claim)
        except EntityAlreadyExists:
            holder = self.crm_links.get(claim.partition_key, "link")
            if holder and (holder.entity.tenant_id, holder.entity.object_id) != (member.tenant_id, member.object_id):
                raise AlreadyLinkedElsewhere(member.crm_email) from None
        try:
            self.members.insert(member)
            return member
        except EntityAlreadyExists:
            existing = self.member_of(member.tenant_id, member.object_id)
            assert existing is not None
            return existing

    def audit(self, *, actor: str, action: str, tenant_id: str, org_id: str | None = None, detail: str = "") -> None:
        now = self._now()
        inverted = f"{(2**63 - 1) - int(now.timestamp() * 1_000_000):020d}"
        self.audit_log.insert(
            AuditEvent(
                partition_key=tenant_id,
                row_key=f"{inverted}-{secrets.token_hex(4)}",
                at=now,
                actor=actor,
                action=action,
                tenant_id=tenant_id,
                org_id=org_id,
                detail=detail,
            )
        )
