"""Invitations (SPEC R2.1 to R2.3, R2.6): a member with Manage Users invites Office 365
users (or anyone by e-mail, R2.2); each gets a single-use link by e-mail; accepting adds
them to the org's CRM account and links their Microsoft identity. One invitation row per
(org, e-mail), so nobody is invited or added twice."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from shared import concurrently
from shared.accounts.models import MemberIdentity
from shared.accounts.policy import invitation_is_for
from shared.accounts.repository import AccountsRepository, member_key
from shared.accounts.token_adoption import AdoptToken, adopt_issued_token
from shared.crm.directory import CrmDirectory, CrmMember
from shared.crm.errors import CrmError
from shared.identity.sessions import SignedInUser
from shared.identity.signed_links import LinkProblem, LinkRefused, SignedLinks, token_hash
from shared.identity.token_cipher import TokenCipher
from shared.mail.outbox import Outbox, OutboxMessage
from shared.mail.templates import render_mail
from shared.storage import ConcurrencyConflict, EntityAlreadyExists, TableEntity, TableRepository
from shared.storage.keys import escape_key_part


class Invitation(TableEntity):
    """PartitionKey = org id, RowKey = the invitee's e-mail (lower-case, escaped)."""

    email: str
    name: str = ""
    source: str  # "office365" (R2.1) or "email" (R2.2)
    org_name: str
    invited_by_email: str
    invited_by_name: str
    invited_by_object_id: str
    tenant_id: str  # the inviter's tenant (the mailbox that sends)
    created_at: datetime
    expires_at: datetime
    state: str = "pending"  # pending, accepted, revoked
    token_hash: str
    accepted_at: datetime | None = None
    accepted_by: str | None = None  # Microsoft object id
    how: str | None = None  # "joined" or "associated"


@dataclass(frozen=True)
class Invitee:
    email: str
    name: str = ""
    language: str = "en"


@dataclass
class InviteReport:
    invited: list[str] = field(default_factory=list)
    already_members: list[str] = field(default_factory=list)
    already_invited: list[str] = field(default_factory=list)


def mail_id(invitation: Invitation) -> str:
    """The outbox message id of the invitation's e-mail (a resend has a new token: a new id)."""
    return f"inv-{invitation.token_hash[:40]}"


class AccountElsewhere(Exception):
    """The invited address already has a CRM account in another organisation: it cannot be
    a second one's user (the CRM's rule), and its owner signs in to the CRM with it."""

    def __init__(self, email: str) -> None:
        super().__init__(f"{email} has a CRM account in another organisation")
        self.email = email


class InvitationNeedsMicrosoft(Exception):
    """An Office 365 user's invitation is accepted with their Microsoft sign-in only."""

    def __init__(self, email: str) -> None:
        super().__init__(f"the invitation of {email} is accepted with a Microsoft sign-in")
        self.email = email


class InvitationNotForYou(Exception):
    """Signed in as someone other than the invitee (the page explains, nothing changes)."""

    def __init__(self, invited: str, signed_in: str) -> None:
        super().__init__(invited)
        self.invited = invited
        self.signed_in = signed_in


def invitation_key(email: str) -> str:
    return escape_key_part(email.strip().lower())


class InvitationService:
    def __init__(
        self,
        invitations: TableRepository[Invitation],
        links: SignedLinks,
        accounts: AccountsRepository,
        directory: CrmDirectory,
        outbox: Outbox,
        cipher: TokenCipher,
        *,
        public_base_url: str,
        lifetime: timedelta,
        default_profile: str,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        adopt_token: AdoptToken | None = None,
    ) -> None:
        self._adopt_token = adopt_token  # the access token of a new link, kept (``token_adoption``)
        self._rows = invitations
        self._links = links
        self._accounts = accounts
        self._directory = directory
        self._outbox = outbox
        self._cipher = cipher
        self._base = public_base_url
        self._lifetime = lifetime
        self._profile = default_profile
        self._now = clock

    # -- inviting ----------------------------------------------------------------------

    def invite(self, inviter: MemberIdentity, people: list[Invitee], *, source: str) -> InviteReport:
        """One invitation per person not yet a member and without a live invitation."""
        report = InviteReport()
        members = {m.email.lower() for m in self._directory.list_members(inviter.org_id)}
        for person in people:
            email = person.email.strip().lower()
            if email in members:
                report.already_members.append(email)
            elif self._live(inviter.org_id, email) is not None:
                report.already_invited.append(email)
            elif self._create(inviter, person, source):
                report.invited.append(email)
            else:
                report.already_invited.append(email)  # a concurrent Save got there first
        return report

    def _live(self, org_id: str, email: str) -> Invitation | None:
        stored = self._rows.get(org_id, invitation_key(email))
        if stored and stored.entity.state == "pending" and stored.entity.expires_at > self._now():
            return stored.entity
        return None

    def _create(self, inviter: MemberIdentity, person: Invitee, source: str) -> bool:
        email = person.email.strip().lower()
        token, link = self._links.issue("invitation", inviter.org_id, email, self._lifetime)
        now = self._now()
        invitation = Invitation(
            partition_key=inviter.org_id, row_key=invitation_key(email), email=email, name=person.name,
            source=source, org_name=inviter.org_name, invited_by_email=inviter.email, invited_by_name=inviter.name,
            invited_by_object_id=inviter.object_id, tenant_id=inviter.tenant_id, created_at=now,
            expires_at=link.expires_at, token_hash=link.partition_key,
        )
        stored = self._rows.get(inviter.org_id, invitation.row_key)
        try:
            if stored is None:
                self._rows.insert(invitation)
            else:  # revoked, expired or accepted-then-removed: a fresh invitation replaces it
                self._links.revoke(stored.entity.token_hash)
                self._rows.replace(invitation, stored.etag)
        except (EntityAlreadyExists, ConcurrencyConflict):
            return False
        self._send(invitation, token, person.language)
        self._accounts.audit(
            actor=inviter.email, action="invitation.sent", tenant_id=inviter.tenant_id, org_id=inviter.org_id,
            detail=email,
        )
        return True

    def _send(self, invitation: Invitation, token: str, language: str) -> None:
        subject, html, text = render_mail(
            "invitation", language, inviter=invitation.invited_by_name or invitation.invited_by_email,
            org=invitation.org_name, invitee_name=invitation.name, invitee_email=invitation.email,
            link=f"{self._base}/api/invitations/{token}", expires=invitation.expires_at.strftime("%Y-%m-%d %H:%M UTC"),
        )
        self._outbox.enqueue(
            OutboxMessage(
                message_id=mail_id(invitation), tenant_id=invitation.tenant_id,
                sender=invitation.invited_by_object_id, to_email=invitation.email, to_name=invitation.name,
                subject=subject, html=html, text=text,
            )
        )

    def list(self, org_id: str) -> list[Invitation]:
        return sorted((s.entity for s in self._rows.query(org_id)), key=lambda i: i.created_at, reverse=True)

    def pending_among(self, org_id: str, emails: Sequence[str]) -> set[str]:
        """Which of these addresses have a pending invitation to the org: a point read each, a
        few at a time (the Add User window's page of 15 people, in an org that may have
        invited thousands)."""
        wanted = sorted({email.strip().lower() for email in emails if email.strip()})
        found = concurrently.each(lambda email: self._rows.get(org_id, invitation_key(email)), wanted, at_once=8,
                                  name="invited")
        return {email for email, stored in zip(wanted, found, strict=True) if stored is not None and stored.entity.state == "pending"}

    def revoke(self, actor: MemberIdentity, email: str) -> bool:
        stored = self._rows.get(actor.org_id, invitation_key(email))
        if stored is None or stored.entity.state != "pending":
            return False
        self._links.revoke(stored.entity.token_hash)
        try:
            self._rows.replace(stored.entity.model_copy(update={"state": "revoked"}), stored.etag)
        except ConcurrencyConflict:
            return False
        self._accounts.audit(actor=actor.email, action="invitation.revoked", tenant_id=actor.tenant_id,
                             org_id=actor.org_id, detail=email)
        return True

    def resend(self, actor: MemberIdentity, email: str, language: str) -> bool:
        """A new link (the old one stops working) and a new e-mail, for a pending invitation."""
        stored = self._rows.get(actor.org_id, invitation_key(email))
        if stored is None or stored.entity.state != "pending":
            return False
        token, link = self._links.issue("invitation", actor.org_id, stored.entity.email, self._lifetime)
        renewed = stored.entity.model_copy(update={"token_hash": link.partition_key, "expires_at": link.expires_at})
        try:
            self._rows.replace(renewed, stored.etag)
        except ConcurrencyConflict:
            return False
        self._links.revoke(stored.entity.token_hash)
        self._send(renewed, token, language)
        self._accounts.audit(actor=actor.email, action="invitation.resent", tenant_id=actor.tenant_id,
                             org_id=actor.org_id, detail=email)
        return True

    # -- accepting ---------------------------------------------------------------------

    def open(self, token: str) -> Invitation:
        """The invitation behind a link, or LinkRefused saying why it cannot be used."""
        link, _ = self._links.check(token, "invitation")
        stored = self._rows.get(link.org_id, invitation_key(link.subject))
        if stored is None or stored.entity.token_hash != token_hash(token):
            raise LinkRefused(LinkProblem.REVOKED, link)
        if stored.entity.state == "revoked":
            raise LinkRefused(LinkProblem.REVOKED, link)
        if stored.entity.state == "accepted":
            raise LinkRefused(LinkProblem.USED, link)
        return stored.entity

    def pending_for(self, org_id: str, email: str) -> Invitation | None:
        return self._live(org_id, email)

    def accept(self, user: SignedInUser, token: str) -> MemberIdentity:
        """R2.3: add the invitee to the org's CRM account and link their Microsoft identity."""
        invitation = self.open(token)
        member = self._join(user, invitation)
        self.complete(invitation, user, token, how="joined")
        return member

    def accept_in_crm(self, token: str) -> CrmMember:
        """R2.2 for a person without a Microsoft account: the link, e-mailed to the address it
        invites, proves that address; they become a user of the org's CRM and go in through
        the CRM's own sign-in (no Microsoft identity is linked: none signed in). Only a New
        User invitation (by e-mail) may be taken this way; an Office 365 user's needs their
        Microsoft sign-in. Raises LinkRefused, InvitationNeedsMicrosoft, AccountElsewhere."""
        invitation = self.open(token)
        if invitation.source != "email":
            raise InvitationNeedsMicrosoft(invitation.email)
        try:
            account = self._add_to_org(invitation, invitation.name)
        except CrmError as error:
            if error.code == "DUPLICATE_DATA":
                raise AccountElsewhere(invitation.email) from error
            raise
        with contextlib.suppress(LinkRefused):  # a twin click redeemed it: the same person, the same account
            self._links.redeem(token, "invitation", f"crm:{account.user_id}")
        stored = self._rows.get(invitation.partition_key, invitation.row_key)
        if stored and stored.entity.state == "pending":
            accepted = stored.entity.model_copy(
                update={"state": "accepted", "accepted_at": self._now(), "accepted_by": f"crm:{account.user_id}", "how": "crm"}
            )
            with contextlib.suppress(ConcurrencyConflict):
                self._rows.replace(accepted, stored.etag)
            self._accounts.audit(actor=invitation.email, action="invitation.accepted.crm", tenant_id=invitation.tenant_id,
                                 org_id=invitation.partition_key, detail=invitation.email)
        return account

    def accept_pending(self, user: SignedInUser, invitation: Invitation) -> MemberIdentity:
        """R2.3 through the app launcher: the signed-in invitee accepts without the link
        (which then stops working)."""
        member = self._join(user, invitation)
        self._links.revoke(invitation.token_hash)
        self._mark_accepted(invitation, user, how="joined")
        return member

    def _join(self, user: SignedInUser, invitation: Invitation) -> MemberIdentity:
        if not invitation_is_for(invited=invitation.email, signed_in=user.email):
            raise InvitationNotForYou(invitation.email, user.email)
        account = self._add_to_org(invitation, user.name)
        grant = self._directory.grant(account.user_id)
        member = self._accounts.link_member(
            MemberIdentity(
                partition_key=member_key(user.tenant_id, user.object_id), row_key="member",
                tenant_id=user.tenant_id, object_id=user.object_id, email=user.email, name=user.name,
                org_id=account.org_id, org_name=account.org_name, user_id=account.user_id,
                crm_email=account.email.lower(), dc=account.dc, accounts_server=grant.accounts_server,
                api_domain=grant.api_domain, how="invited", linked_at=self._now(),
                refresh_token_encrypted=self._cipher.encrypt(grant.refresh_token),
            )
        )
        adopt_issued_token(self._adopt_token, self._cipher, member, refresh_token=grant.refresh_token,
                           access_token=grant.access_token, api_domain=grant.api_domain, expires_in=grant.expires_in)
        return member

    def complete(self, invitation: Invitation, user: SignedInUser, token: str, *, how: str) -> None:
        """Mark the invitation used (idempotent: the link is redeemed once, the row once)."""
        with contextlib.suppress(LinkRefused):  # already redeemed by this acceptance's twin click
            self._links.redeem(token, "invitation", user.object_id)
        self._mark_accepted(invitation, user, how=how)

    def _mark_accepted(self, invitation: Invitation, user: SignedInUser, *, how: str) -> None:
        stored = self._rows.get(invitation.partition_key, invitation.row_key)
        if stored and stored.entity.state == "pending":
            accepted = stored.entity.model_copy(
                update={"state": "accepted", "accepted_at": self._now(), "accepted_by": user.object_id, "how": how}
            )
            with contextlib.suppress(ConcurrencyConflict):  # the other click recorded it
                self._rows.replace(accepted, stored.etag)
            self._accounts.audit(actor=user.email, action=f"invitation.accepted.{how}", tenant_id=user.tenant_id,
                                 org_id=invitation.partition_key, detail=invitation.email)

    def _add_to_org(self, invitation: Invitation, name: str) -> CrmMember:
        """Add the person (confirmed: Microsoft, or the e-mailed link, vouched for the e-mail); if
        they already are a member (a retry, a double click), use that membership: never two users."""
        first, _, last = (name or invitation.name).partition(" ")
        try:
            return self._directory.add_user(
                invitation.partition_key, email=invitation.email, first_name=first, last_name=last or first or invitation.email,
                profile=self._profile,
            )
        except CrmError as error:
            if error.code != "DUPLICATE_DATA":
                raise
        account = self._directory.find_account(invitation.email)
        if account is None or account.org_id != invitation.partition_key:
            raise CrmError(409, "DUPLICATE_DATA", "the CRM says this person exists but cannot find them")
        return account

