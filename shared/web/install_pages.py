"""The pages of the install path (SPEC R1; DESIGN.md §5): the app-launcher entry, the
Microsoft sign-in and admin-consent callbacks, the Accounts page with Continue and
Associate My Account, and sign-out. Each handler takes a WebRequest and answers a page or
a redirect; refusals change nothing."""

from __future__ import annotations

import contextlib
import logging
import secrets
from datetime import UTC, datetime

from shared.accounts.email_proof import email_proven
from shared.accounts.entry import may_request_to_join
from shared.accounts.install import AwaitingInstaller, Entered, ProofRequired
from shared.accounts.models import MemberIdentity, TenantInstall
from shared.accounts.policy import invitation_is_for, may_install
from shared.accounts.repository import AlreadyLinkedElsewhere
from shared.crm.api import CrmApi
from shared.crm.errors import CrmError
from shared.graph.client import GraphClient
from shared.graph.errors import GraphError
from shared.http_messages import WebRequest, WebResponse
from shared.identity.entra import GRAPH_DEFAULT_SCOPE, SignInFailed
from shared.identity.id_token import InvalidIdToken
from shared.identity.sessions import PendingFlow, SignedInUser
from shared.identity.signed_links import LinkRefused
from shared.web.i18n import translate
from shared.web.pages import language_of, message, render
from shared.web.visit import Refusal, Visit
from shared.wiring import Services

log = logging.getLogger(__name__)


class InstallPages:
    def __init__(self, services: Services) -> None:
        self.s = services
        self.base = services.settings.public_base_url
        self.install = services.install

    # -- app launcher entry and Microsoft sign-in ------------------------------------------

    def launch(self, request: WebRequest) -> WebResponse:
        visit = Visit.open(self.s.sessions, request)
        flow = self.s.entra.start_sign_in(f"{self.base}/api/auth/callback")
        visit.add_flow(flow["state"], PendingFlow(kind="microsoft", started_at=_now(), data=flow))
        return visit.answer(WebResponse.redirect(flow["auth_uri"], status=302))

    def sign_in_callback(self, request: WebRequest) -> WebResponse:
        visit = Visit.open(self.s.sessions, request, start=False)
        flow = visit.take_flow(request.query.get("state"), "microsoft")
        try:
            result = self.s.entra.finish_sign_in(flow.data, request.query)
            claims = self.s.id_tokens.verify(str(result.get("id_token", "")), nonce=flow.data.get("nonce"))
        except (SignInFailed, InvalidIdToken) as error:
            log.warning("sign-in refused: %s", error)
            return visit.answer(message(request, "signin.failed.title", "signin.failed.body", status=400, reason=f"{error}."))
        tenant_name, verified_domains = self._organization(str(result.get("access_token", "")))
        user = SignedInUser(
            tenant_id=claims.tenant_id,
            object_id=claims.object_id,
            email=claims.email,
            name=claims.name,
            tenant_name=tenant_name,
            is_tenant_admin=claims.is_consent_admin,
            email_verified=email_proven(claims.email, edov=claims.email_domain_verified, verified_domains=verified_domains),
        )
        come_back = visit.session.after_sign_in
        visit.renew_session(user)  # a new session id and CSRF token for the new identity: no fixation
        if come_back and come_back.startswith("/api/") and "//" not in come_back:
            return visit.answer(WebResponse.redirect(f"{self.base}{come_back}"))  # an invitation or approval link
        return visit.answer(self._route(visit, user))

    def _organization(self, delegated_token: str) -> tuple[str, list[str] | None]:
        """The organisation's display name and verified domains, readable with the person's
        own User.Read token (domains None when they cannot be read: the e-mail stays unproven
        unless the id token's xms_edov vouches for it)."""
        graph = GraphClient(self.s.settings.graph_base_url, lambda: delegated_token, self.s.http)
        try:
            organization = graph.organization()
        except GraphError as error:
            log.info("organisation not readable: %s", error)
            return "", None
        domains = organization.get("verifiedDomains")
        names = [str(d.get("name")) for d in domains if isinstance(d, dict) and d.get("name")] if isinstance(domains, list) else None
        return str(organization.get("displayName") or ""), names

    def _route(self, visit: Visit, user: SignedInUser) -> WebResponse:
        """Where a signed-in person goes (R1.1, R1.5, R1.7)."""
        install = self.s.accounts.install_of(user.tenant_id)
        if install is None:
            if not may_install(is_tenant_admin=user.is_tenant_admin):
                return message(
                    visit.request, "install.admin_required.title", "install.admin_required.body",
                    status=403, tenant=user.tenant_name or user.email.partition("@")[2] or user.tenant_id,
                )
            state = secrets.token_urlsafe(24)
            visit.add_flow(state, PendingFlow(kind="admin_consent", started_at=_now(), data={"tenant": user.tenant_id}))
            consent = self.s.entra.admin_consent_url(
                f"{self.base}/api/auth/admin-consent/callback", state, tenant=user.tenant_id
            )
            return WebResponse.redirect(consent, status=302)
        member = self.s.accounts.member_of(user.tenant_id, user.object_id)
        if member is not None:
            return self._go_in(visit.request, member)
        return WebResponse.redirect(f"{self.base}/api/accounts")

    def admin_consent_callback(self, request: WebRequest) -> WebResponse:
        visit = Visit.open(self.s.sessions, request, start=False)
        user = visit.user
        flow = visit.take_flow(request.query.get("state"), "admin_consent")
        query = request.query
        if "error" in query or query.get("admin_consent", "").lower() != "true":
            reason = query.get("error_description") or query.get("error") or "no consent"
            return visit.answer(
                message(request, "install.consent_refused.title", "install.consent_refused.body", status=403,
                        reason=reason.split("\n")[0][:200])
            )
        # The returned tenant can be spoofed: it must be the signed-in admin's, and an app-only
        # token for that tenant must now actually be issued.
        if query.get("tenant") != user.tenant_id or flow.data.get("tenant") != user.tenant_id:
            return visit.answer(
                message(request, "install.consent_refused.title", "install.consent_wrong_tenant.body", status=403)
            )
        try:
            # Entra may refuse it for a few seconds while the new consent replicates: waited out.
            self.s.entra.app_token_after_consent(user.tenant_id)
        except SignInFailed as error:
            return visit.answer(
                message(request, "install.consent_refused.title", "install.consent_refused.body", status=403,
                        reason=str(error)[:200])
            )
        self.install.record_install(user, query.get("scope") or GRAPH_DEFAULT_SCOPE)
        return visit.answer(WebResponse.redirect(f"{self.base}/api/accounts"))

    # -- the Accounts page --------------------------------------------------------------

    def accounts_page(self, request: WebRequest) -> WebResponse:
        visit = Visit.open(self.s.sessions, request, start=False)
        user = visit.user
        self._installed(visit, user)
        member = self.s.accounts.member_of(user.tenant_id, user.object_id)
        if member is not None:
            return visit.answer(self._go_in(request, member))
        return visit.answer(self._accounts(visit, user, error=False))

    def _accounts(self, visit: Visit, user: SignedInUser, *, error: bool, status: int | None = None) -> WebResponse:
        return render(
            visit.request, "accounts.html", status=status or (400 if error else 200), email=user.email, error=error,
            unproven=not user.email_verified, csrf_token=visit.session.csrf_token, signed_in=True,
        )

    def accounts_continue(self, request: WebRequest) -> WebResponse:
        visit = Visit.open(self.s.sessions, request, start=False)
        user = visit.user
        form = visit.require_form(self.base)
        install = self._installed(visit, user)
        if form.get("accept_terms") != "on":
            return visit.answer(self._accounts(visit, user, error=True))
        try:
            outcome = self.install.enter(user, install)
        except AlreadyLinkedElsewhere as taken:
            return visit.answer(message(request, "associate.taken.title", "associate.taken.body", status=409, email=taken.crm_email))
        if isinstance(outcome, Entered):
            return visit.answer(self._go_in(request, outcome.member))
        if isinstance(outcome, ProofRequired):  # the page says why, and offers Associate My Account
            return visit.answer(self._accounts(visit, user, error=False, status=403))
        if isinstance(outcome, AwaitingInstaller):
            return visit.answer(message(request, "install.awaiting.title", "install.awaiting.body", status=409,
                                        installer=outcome.installer))
        if install.org_id and not may_request_to_join(  # a free edition: nobody there could approve (R2)
                email_proven=user.email_verified, tenant_bound=True, is_member=False,
                paid=self.s.crm_directory.org(install.org_id).paid):
            return visit.answer(message(request, "join.free_edition.title", "join.free_edition.body", status=403,
                                        org=outcome.org_name))
        pending = install.org_id and self.s.join_requests.pending_for(install.org_id, user)
        if pending:
            return visit.answer(render(request, "join_pending.html", org=pending.org_name,
                                       when=pending.created_at.strftime("%Y-%m-%d"), csrf_token=visit.session.csrf_token,
                                       signed_in=True))
        return visit.answer(
            render(request, "join.html", org_name=outcome.org_name, csrf_token=visit.session.csrf_token, signed_in=True)
        )

    # -- Associate My Account (CRM sign-in) ---------------------------------------------

    def associate_start(self, request: WebRequest) -> WebResponse:
        visit = Visit.open(self.s.sessions, request, start=False)
        user = visit.user
        invitation_token = request.query.get("invitation", "")
        if invitation_token:  # R2.3: associate an existing CRM account instead of the invited one
            try:
                invitation = self.s.invitations.open(invitation_token)
            except LinkRefused as refused:
                return visit.answer(message(request, "link.title", f"link.{refused.problem.value}", status=410))
            if not invitation_is_for(invited=invitation.email, signed_in=user.email):
                return visit.answer(message(request, "invitation.not_for_you.title", "invitation.not_for_you.body",
                                            status=403, invited=invitation.email, signed_in=user.email))
        else:
            self._installed(visit, user)
        linked = self.s.accounts.member_of(user.tenant_id, user.object_id)
        # A linked member comes here only to authorise the CRM again after revoking it.
        reauthorize = bool(linked and self.s.sync.crm_authorization_lost(linked))
        state = secrets.token_urlsafe(24)
        visit.add_flow(state, PendingFlow(kind="crm", started_at=_now(),
                                          data={"invitation": invitation_token, "reauthorize": reauthorize}))
        url = self.s.crm_oauth.authorize_url(f"{self.base}/api/accounts/associate/callback", state)
        return visit.answer(WebResponse.redirect(url, status=302))

    def associate_callback(self, request: WebRequest) -> WebResponse:
        visit = Visit.open(self.s.sessions, request, start=False)
        user = visit.user
        flow = visit.take_flow(request.query.get("state"), "crm")
        invitation_token = str(flow.data.get("invitation") or "")
        install = self.s.accounts.install_of(user.tenant_id) if invitation_token else self._installed(visit, user)
        existing = self.s.accounts.member_of(user.tenant_id, user.object_id)
        if existing is not None and not flow.data.get("reauthorize"):
            return visit.answer(
                message(request, "associate.taken.title", "associate.already.body", status=409, email=existing.crm_email)
            )
        if "error" in request.query or not request.query.get("code"):
            reason = request.query.get("error", "no authorisation code")
            return visit.answer(message(request, "associate.failed.title", "associate.failed.body", status=400, reason=f"{reason}."))
        if existing is not None:
            return visit.answer(self._reauthorized(request, existing))
        try:
            tokens = self.s.crm_oauth.redeem_code(
                request.query["code"], f"{self.base}/api/accounts/associate/callback", request.query.get("accounts-server")
            )
            api = CrmApi(self.s.crm_sessions.signed_in(tokens))
            crm_user, crm_org = api.current_user(), api.org()
            member = self.install.associate(
                user, install, tokens, crm_user, crm_org, request.query.get("location") or "us"
            )
        except AlreadyLinkedElsewhere as taken:
            return visit.answer(message(request, "associate.taken.title", "associate.taken.body", status=409, email=taken.crm_email))
        except CrmError as error:
            log.warning("associate refused: %s", error)
            return visit.answer(message(request, "associate.failed.title", "associate.failed.body", status=400, reason=f"{error.message}."))
        if invitation_token:
            with contextlib.suppress(LinkRefused):  # revoked meanwhile: the association stands
                invitation = self.s.invitations.open(invitation_token)
                self.s.invitations.complete(invitation, user, invitation_token, how="associated")
        return visit.answer(self._go_in(request, member))

    # -- sign-out -----------------------------------------------------------------------

    def sign_out(self, request: WebRequest) -> WebResponse:
        visit = Visit.open(self.s.sessions, request, start=False)
        visit.require_form(self.base)
        self.s.sessions.end(visit.session)
        response = message(request, "signedout.title", "signedout.body", status=200)
        response.cookies.append(self.s.sessions.clear_cookie())
        return response

    # -- shared steps ----------------------------------------------------------------------

    def _installed(self, visit: Visit, user: SignedInUser) -> TenantInstall:
        install = self.s.accounts.install_of(user.tenant_id)
        if install is None:
            raise Refusal(
                message(visit.request, "install.admin_required.title", "install.admin_required.body", status=403,
                        tenant=user.tenant_name or user.email.partition("@")[2] or user.tenant_id)
            )
        return install

    def _reauthorized(self, request: WebRequest, member: MemberIdentity) -> WebResponse:
        """The CRM's answer to Authorise again: the same CRM user, or nothing changes."""
        try:
            tokens = self.s.crm_oauth.redeem_code(
                request.query["code"], f"{self.base}/api/accounts/associate/callback", request.query.get("accounts-server")
            )
            crm_user = CrmApi(self.s.crm_sessions.signed_in(tokens)).current_user()
            if str(crm_user.get("id")) != member.user_id:
                return message(request, "reauthorize.other.title", "reauthorize.other.body", status=409,
                               signed_in=str(crm_user.get("email") or ""), expected=member.crm_email)
            member = self.s.sync.crm_reauthorized(member, tokens)
        except CrmError as error:
            log.warning("re-authorisation refused: %s", error)
            return message(request, "associate.failed.title", "associate.failed.body", status=400, reason=f"{error.message}.")
        return self._go_in(request, member)

    def _go_in(self, request: WebRequest, member: MemberIdentity) -> WebResponse:
        """Into the CRM (R1.5): a single-use sign-in link to the member's CRM home. A member
        who revoked the app's access in the CRM is asked to authorise it again (never
        re-granted behind their back, issue 18 §5); until then their sync stays paused."""
        if self.s.sync.crm_authorization_lost(member):
            return render(request, "message.html", status=200, title_key="reauthorize.title",
                          body_key="reauthorize.body", values={"email": member.crm_email},
                          action_url="/api/accounts/associate",
                          action_label=translate(language_of(request), "reauthorize.action"))
        return WebResponse.redirect(self.s.crm_directory.signin_link(member.user_id))


def _now() -> datetime:
    return datetime.now(UTC)
