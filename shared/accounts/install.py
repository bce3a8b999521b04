"""Installing the app for a tenant and taking people into their CRM account (SPEC R1).

- R1.1 only a tenant administrator installs (admin consent), recorded once per tenant;
- R1.4 Continue with no CRM account for the e-mail: a new org, the installer its super admin;
- R1.5 a CRM account with that e-mail exists: link it and go straight in, never a second one;
- R1.6 Associate My Account: link a CRM account signed in with other credentials;
- R1.7 other people of an installed tenant get in only once approved (the join path, R2).

People are who Microsoft says by ``(tid, oid)``; their e-mail finds, creates or accepts
something only once proven (``shared/accounts/entry.py``, issue 18 §1).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from shared.accounts.entry import CrmAccountFacts, Entry, EntryFacts, decide_entry, may_bind_tenant
from shared.accounts.invitations import InvitationService
from shared.accounts.models import MemberIdentity, TenantInstall
from shared.accounts.repository import AccountsRepository
from shared.accounts.token_adoption import AdoptToken, adopt_issued_token
from shared.crm.directory import CrmDirectory, CrmMember
from shared.crm.oauth import CrmTokens
from shared.identity.sessions import SignedInUser
from shared.identity.token_cipher import TokenCipher


@dataclass(frozen=True)
class Entered:
    """The person is linked to this CRM account and may go in."""

    member: MemberIdentity


@dataclass(frozen=True)
class JoinRequired:
    """The tenant's org exists but this person is not a member of it yet (R1.7, R2.4)."""

    org_name: str


@dataclass(frozen=True)
class ProofRequired:
    """The e-mail is not proven to be the person's: only Associate My Account (or an
    invitation link, which reached that mailbox) can take them in."""

    email: str


@dataclass(frozen=True)
class AwaitingInstaller:
    """Installed, but the installer has not pressed Continue yet: nobody else creates the org."""

    installer: str


class InstallService:
    def __init__(
        self,
        accounts: AccountsRepository,
        directory: CrmDirectory,
        cipher: TokenCipher,
        invitations: InvitationService,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        *,
        adopt_token: AdoptToken | None = None,
    ) -> None:
        self._accounts = accounts
        self._directory = directory
        self._cipher = cipher
        self._invitations = invitations
        self._now = clock
        self._adopt_token = adopt_token  # the access token of a new link, kept (``token_adoption``)

    def record_install(self, user: SignedInUser, granted_scope: str) -> TenantInstall:
        install, created = self._accounts.record_install(
            TenantInstall(
                partition_key=user.tenant_id,
                row_key="install",
                installed_at=self._now(),
                installed_by_object_id=user.object_id,
                installed_by_email=user.email,
                granted_scope=granted_scope,
            )
        )
        if created:
            self._accounts.audit(
                actor=actor(user), action="tenant.installed", tenant_id=user.tenant_id, detail=granted_scope
            )
        return install

    def enter(self, user: SignedInUser, install: TenantInstall) -> Entered | JoinRequired | ProofRequired | AwaitingInstaller:
        """Continue on the Accounts page (R1.4, R1.5, R1.7): see ``decide_entry``."""
        proven = user.email_verified
        account = self._directory.find_account(user.email) if proven else None
        invitation = None
        if proven and account is None and install.org_id:
            invitation = self._invitations.pending_for(install.org_id, user.email)
        verdict = decide_entry(EntryFacts(
            email_proven=proven,
            account=None if account is None else CrmAccountFacts(
                confirmed=account.confirmed, same_address=account.email.strip().lower() == user.email.strip().lower()
            ),
            tenant_bound=bool(install.org_id),
            is_installer=self._is_installer(user, install),
            invited=invitation is not None,
        ))
        if verdict is Entry.PROVE_EMAIL:
            return ProofRequired(user.email)
        if verdict is Entry.AWAIT_INSTALLER:
            return AwaitingInstaller(install.installed_by_email)
        if verdict is Entry.REQUEST_TO_JOIN:
            return JoinRequired(install.org_name or "")
        if verdict is Entry.LINK_ACCOUNT:
            assert account is not None
            return Entered(self._link(user, account, install, how="existing_account"))
        if verdict is Entry.ACCEPT_INVITATION:  # R2.3: the launcher leads to the same acceptance
            assert invitation is not None
            return Entered(self._invitations.accept_pending(user, invitation))
        first, _, last = user.name.partition(" ")
        created, org, admin = self._directory.create_org(
            self._org_name(user), email=user.email, first_name=first, last_name=last or first or user.email
        )
        if created:
            self._accounts.audit(
                actor=actor(user), action="org.created", tenant_id=user.tenant_id, org_id=org.org_id, detail=org.org_name
            )
        return Entered(self._link(user, admin, install, how="created_org"))

    def associate(
        self,
        user: SignedInUser,
        install: TenantInstall | None,
        tokens: CrmTokens,
        crm_user: dict[str, Any],
        crm_org: dict[str, Any],
        dc: str,
    ) -> MemberIdentity:
        """Associate My Account (R1.6): link the CRM account the person signed in to."""
        member = MemberIdentity(
            partition_key=f"ms|{user.tenant_id}|{user.object_id}",
            row_key="member",
            tenant_id=user.tenant_id,
            object_id=user.object_id,
            email=user.email,
            name=user.name,
            org_id=str(crm_org["id"]),
            org_name=str(crm_org.get("company_name", "")),
            user_id=str(crm_user["id"]),
            crm_email=str(crm_user.get("email", "")).lower(),
            dc=dc,
            accounts_server=tokens.accounts_server,
            api_domain=tokens.api_domain,
            how="associated",
            linked_at=self._now(),
            refresh_token_encrypted=self._cipher.encrypt(tokens.refresh_token) if tokens.refresh_token else None,
        )
        linked = self._accounts.link_member(member)
        adopt_issued_token(self._adopt_token, self._cipher, linked, refresh_token=tokens.refresh_token,
                           access_token=tokens.access_token, api_domain=tokens.api_domain, expires_in=tokens.expires_in)
        super_admin = bool(crm_user.get("zuid")) and str(crm_user.get("zuid")) == str(crm_org.get("primary_zuid") or "")
        self._bind_tenant(user, install, member.org_id, member.org_name, member.dc, super_admin=super_admin)
        self._accounts.audit(
            actor=actor(user), action="member.associated", tenant_id=user.tenant_id, org_id=member.org_id,
            detail=f"CRM account {member.crm_email}",
        )
        return linked

    def _link(self, user: SignedInUser, account: CrmMember, install: TenantInstall, *, how: str) -> MemberIdentity:
        existing = self._accounts.member_of(user.tenant_id, user.object_id)
        if existing is not None:
            return existing
        grant = self._directory.grant(account.user_id)
        member = MemberIdentity(
            partition_key=f"ms|{user.tenant_id}|{user.object_id}",
            row_key="member",
            tenant_id=user.tenant_id,
            object_id=user.object_id,
            email=user.email,
            name=user.name,
            org_id=account.org_id,
            org_name=account.org_name,
            user_id=account.user_id,
            crm_email=account.email.lower(),
            dc=account.dc,
            accounts_server=grant.accounts_server,
            api_domain=grant.api_domain,
            how=how,
            linked_at=self._now(),
            refresh_token_encrypted=self._cipher.encrypt(grant.refresh_token),
        )
        linked = self._accounts.link_member(member)
        adopt_issued_token(self._adopt_token, self._cipher, linked, refresh_token=grant.refresh_token,
                           access_token=grant.access_token, api_domain=grant.api_domain, expires_in=grant.expires_in)
        self._bind_tenant(user, install, account.org_id, account.org_name, account.dc, super_admin=account.is_super_admin)
        self._accounts.audit(
            actor=actor(user), action=f"member.linked.{how}", tenant_id=user.tenant_id, org_id=account.org_id,
            detail=f"CRM user {account.user_id}",
        )
        return linked

    def _bind_tenant(self, user: SignedInUser, install: TenantInstall | None, org_id: str, org_name: str, dc: str,
                     *, super_admin: bool) -> None:
        if install is None:
            return
        if may_bind_tenant(is_installer=self._is_installer(user, install), tenant_bound=bool(install.org_id),
                           is_super_admin=super_admin):
            self._accounts.link_tenant_org(user.tenant_id, org_id, org_name, dc)
        elif self._is_installer(user, install) and not install.org_id:
            self._accounts.audit(actor=actor(user), action="tenant.not_bound", tenant_id=user.tenant_id, org_id=org_id,
                                 detail="the installer is not the org's super administrator")

    @staticmethod
    def _is_installer(user: SignedInUser, install: TenantInstall | None) -> bool:
        return install is not None and user.object_id == install.installed_by_object_id

    @staticmethod
    def _org_name(user: SignedInUser) -> str:
        """The new org is named after the Office 365 organisation (R1.4)."""
        return user.tenant_name or user.email.partition("@")[2] or "My organisation"


def actor(user: SignedInUser) -> str:
    """Who did it, for the audit log: the identity that cannot be spoofed, then the address
    it claimed (which can)."""
    return f"{user.tenant_id}/{user.object_id} ({user.email})"
