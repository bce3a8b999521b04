"""A member's sync paused by a lost authorisation (the tenant's consent withdrawn, the CRM
refusing the member's token) and resumed once it is back (lifecycle L7, L9)."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from shared.accounts.models import MemberIdentity
from shared.crm.errors import CrmError
from shared.crm.oauth import CrmTokens
from shared.identity.entra import SignInFailed
from shared.sync.jobs import StepReason, SyncJob
from shared.sync.lifecycle import Decision, Effect, Event, Life, Reason, decide
from shared.sync.profiles import SyncKind, SyncProfile, SyncState

if TYPE_CHECKING:
    from shared.sync.service import SyncService

log = logging.getLogger(__name__)
# Token answers meaning the tenant no longer lets our app in (consent revoked, app removed).
CONSENT_LOST_CODES = frozenset({"unauthorized_client", "invalid_client", "invalid_grant", "access_denied"})


class SyncAuthorization:
    def __init__(self, sync: SyncService) -> None:
        self.sync = sync
        self.d = sync.d

    def pause(self, member_key: str, kind: SyncKind, lost: Event) -> None:
        """Stop syncing with a reason the member sees; remember the phase to resume in (L7)."""
        log.warning("%s sync of %s paused: %s", kind.value, member_key, lost.value)
        self.d.profiles.update(member_key, kind, lambda p: p.living(decide(p.life, lost).life))

    def _authorized_again(self, member: MemberIdentity, reason: Reason | None) -> bool:
        """Whether what a pause lost is back: an app token for the tenant, or a CRM access token."""
        try:
            if reason is Reason.MICROSOFT_CONSENT_LOST:
                self.d.app_token(member.tenant_id)
            else:
                self.d.crm_token(member)
        except (SignInFailed, CrmError):
            return False
        return True

    def resume_authorized(self, member: MemberIdentity, kinds: tuple[SyncKind, ...] = tuple(SyncKind)) -> int:
        """Resume syncs paused by a lost authorisation once it is back, in the phase they
        were paused in, from their stored cursors (initial page, delta link, CRM watermark): L9."""
        resumed = 0
        for kind in kinds:
            stored = self.d.profiles.get(member.partition_key, kind)
            if stored is None or not decide(stored.entity.life, Event.AUTHORIZATION_BACK).effects:
                continue
            if not self._authorized_again(member, stored.entity.reason):
                continue
            decision = Decision(Life())

            def resume(p: SyncProfile) -> SyncProfile:
                nonlocal decision
                decision = decide(p.life, Event.AUTHORIZATION_BACK)
                return p.living(decision.life).model_copy(update={"delta_queued": False}) if decision.effects else p

            resumed_profile = self.d.profiles.update(member.partition_key, kind, resume)
            if Effect.QUEUE_INITIAL in decision.effects:
                self.sync.jobs.send(SyncJob.of(resumed_profile, "initial", StepReason.AUTHORIZATION_BACK))
            elif Effect.QUEUE_DELTA in decision.effects:
                self.sync.jobs.send(SyncJob.of(resumed_profile, "delta", StepReason.AUTHORIZATION_BACK))
            resumed += 1
        return resumed

    def crm_authorization_lost(self, member: MemberIdentity) -> tuple[SyncKind, ...]:
        """The kinds paused because the CRM refused the member's authorisation (revoked)."""
        return tuple(
            kind for kind in SyncKind
            if (stored := self.d.profiles.get(member.partition_key, kind)) is not None
            and stored.entity.state is SyncState.PAUSED and stored.entity.reason is Reason.CRM_AUTHORIZATION_LOST
        )

    def reauthorized(self, member: MemberIdentity, tokens: CrmTokens) -> MemberIdentity:
        """The member authorised the app again through the CRM's own sign-in (issue 18 §5:
        never silently through the first-party grant, which would undo their revocation):
        store the new token (encrypted) and resume what the revocation paused."""
        if not tokens.refresh_token:
            raise CrmError(400, "NO_REFRESH_TOKEN", "the CRM granted no lasting access")
        renewed = member.model_copy(update={
            "refresh_token_encrypted": self.d.encrypt(tokens.refresh_token),
            "accounts_server": tokens.accounts_server, "api_domain": tokens.api_domain,
        })
        self.d.accounts.members.upsert(renewed)
        self.d.accounts.audit(actor=f"{member.tenant_id}/{member.object_id} ({member.email})",
                              action="member.crm_reauthorized", tenant_id=member.tenant_id, org_id=member.org_id)
        self.resume_authorized(renewed, self.crm_authorization_lost(renewed))
        return renewed
