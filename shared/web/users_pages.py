"""The pages of bringing people in (SPEC R2; DESIGN.md §5): the Users page, the Add User
window (Office 365 users from Graph), New User by e-mail, invitation links, Request to
Join, and the approval link with Approve & Add. Refusals change nothing and say why."""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from urllib.parse import quote, urlencode

from shared import concurrently, paging
from shared.accounts.entry import may_request_to_join
from shared.accounts.invitations import (
    AccountElsewhere,
    Invitation,
    InvitationNeedsMicrosoft,
    InvitationNotForYou,
    Invitee,
    mail_id,
)
from shared.accounts.join_requests import Decided
from shared.accounts.models import MemberIdentity
from shared.accounts.policy import ManageUsersVerdict, invitation_is_for, may_manage_users
from shared.crm.errors import CrmError
from shared.http_messages import WebRequest, WebResponse
from shared.identity.signed_links import LinkProblem, LinkRefused
from shared.web.i18n import translate
from shared.web.pages import language_of, message, render
from shared.web.visit import Refusal, Visit
from shared.wiring import Services

log = logging.getLogger(__name__)

EMAIL = re.compile(r"^[^@\s]{1,64}@[^@\s]{1,190}\.[^@\s]{2,}$")
GRAPH_ID = re.compile(r"^[A-Za-z0-9\-]{1,64}$")
PAGE_SIZE = 15  # Office 365 users a page of the Add User window shows
MEMBERS_PAGE_SIZE = paging.PAGE_SIZE  # the org's CRM members a page of the Users page shows
LIST_PAGE_SIZE = paging.PAGE_SIZE  # its invitations, and its requests to join
MAX_SELECTED = 50
_LINK_STATUS = {LinkProblem.UNKNOWN: 404, LinkProblem.EXPIRED: 410, LinkProblem.USED: 410, LinkProblem.REVOKED: 410}


class UsersPages:
    def __init__(self, services: Services) -> None:
        self.s = services
        self.base = services.settings.public_base_url

    # -- who is asking -------------------------------------------------------------------

    def _member(self, visit: Visit) -> MemberIdentity:
        return visit.member(self.s.accounts)

    def require_manager(self, visit: Visit, member: MemberIdentity, org_id: str | None = None) -> None:
        same_org = org_id is None or org_id == member.org_id
        paid = manage = False
        if same_org:  # asked of the CRM with the member's own token (cached briefly)
            facts = self.s.member_permissions.may_manage_users(self.s.crm_access(member))
            paid, manage = facts.paid_edition, facts.manage_users
        verdict = may_manage_users(same_org=same_org, paid=paid, manage_users=manage)
        if verdict is not ManageUsersVerdict.ALLOWED:
            raise Refusal(
                message(visit.request, "manage.refused.title", f"manage.refused.{verdict.value}", status=403,
                        org=member.org_name)
            )

    def _signed_in_or_sign_in(self, visit: Visit, path: str) -> WebResponse | None:
        """None when someone is signed in; else remember where to come back and sign in."""
        if visit.session.user is not None:
            return None
        visit.session.after_sign_in = path
        visit.save()
        return visit.answer(WebResponse.redirect(f"{self.base}/api/marketplace/launch", status=302))

    # -- Users page and the Add User window ----------------------------------------------

    def users_page(self, request: WebRequest, notice: str = "") -> WebResponse:
        visit = Visit.open(self.s.sessions, request, start=False)
        member = self._member(visit)
        self.require_manager(visit, member)
        # Each list a page at a time (an org of 10,000 was three tables of 10,000 rows): the
        # members by name; invitations and requests to join pending first, newest first.
        members = sorted(self.s.crm_directory.list_members(member.org_id),
                         key=lambda m: (paging.name_key(f"{m.first_name} {m.last_name}"), m.email.casefold()))
        invitations = paging.page_of(sorted(self.s.invitations.list(member.org_id), key=lambda i: i.state != "pending"),
                                     request.query.get("invitations_page"), LIST_PAGE_SIZE)
        join_requests = paging.page_of(sorted(self.s.join_requests.list(member.org_id), key=lambda r: r[1] != "pending"),
                                       request.query.get("requests_page"), LIST_PAGE_SIZE)
        return visit.answer(
            render(
                request, "users.html", org_name=member.org_name, notice=notice,
                members=paging.page_of(members, request.query.get("page"), MEMBERS_PAGE_SIZE),
                undelivered=self._undelivered(invitations.rows), invitations=invitations, join_requests=join_requests,
                csrf_token=visit.session.csrf_token, signed_in=True, member_nav=True,
            )
        )

    def _undelivered(self, invitations: list[Invitation]) -> dict[str, str]:
        """Why each pending invitation shown whose e-mail failed its last attempt was not
        delivered: one read per pending invitation of the page, 8 at a time (it was one read
        per pending invitation of the org, one after the other, at every view)."""
        pending = [i for i in invitations if i.state == "pending"]
        failures = concurrently.each(lambda i: self.s.mail_sender.failure_of(i.tenant_id, mail_id(i)), pending,
                                     at_once=8, name="undelivered")
        return {i.email: failure.error for i, failure in zip(pending, failures, strict=True) if failure is not None}

    def add_user_window(self, request: WebRequest) -> WebResponse:
        visit = Visit.open(self.s.sessions, request, start=False)
        member = self._member(visit)
        self.require_manager(visit, member)
        query = re.sub(r'["\\]', "", request.query.get("q", "")).strip()[:60]
        page = self._tenant_users(member, query, request.query.get("next", ""))
        members = {m.email.lower() for m in self.s.crm_directory.list_members(member.org_id)}
        shown = [(u, str(u.get("mail") or u.get("userPrincipalName") or "").lower()) for u in page.get("value", [])]
        # Those shown only: an org may have invited thousands.
        invited = self.s.invitations.pending_among(member.org_id, [email for _, email in shown])
        users = []
        for u, email in shown:
            status = "member" if email in members else "invited" if email in invited else ""
            users.append({"id": u["id"], "name": u.get("displayName") or email, "email": email, "status": status})
        next_link = page.get("@odata.nextLink")
        next_url = f"/api/settings/users/office365?{urlencode({'q': query, 'next': next_link})}" if next_link else ""
        found = page.get("@odata.count")
        return visit.answer(
            render(request, "add_user.html", users=users, query=query, next_url=next_url,
                   found=found if isinstance(found, int) else None, first_page=not request.query.get("next"),
                   csrf_token=visit.session.csrf_token, signed_in=True, member_nav=True)
        )

    def _tenant_users(self, member: MemberIdentity, query: str, next_link: str) -> dict:  # type: ignore[type-arg]
        graph = self.s.graph(member.tenant_id)
        headers = {"ConsistencyLevel": "eventual"}
        # Only follow a next page that Graph itself gave, on Graph's own /users.
        if next_link and next_link.startswith(f"{self.s.settings.graph_base_url}/users?"):
            return graph.request("GET", next_link, headers=headers)
        # Sorted by name, with how many match (an advanced query: ConsistencyLevel eventual).
        params = {"$select": "id,displayName,mail,userPrincipalName,preferredLanguage", "$top": str(PAGE_SIZE),
                  "$orderby": "displayName", "$count": "true"}
        if query:
            params["$search"] = f'"displayName:{query}" OR "mail:{query}"'
        return graph.request("GET", "/users", params=params, headers=headers)

    def add_user_save(self, request: WebRequest) -> WebResponse:
        visit = Visit.open(self.s.sessions, request, start=False)
        member = self._member(visit)
        visit.require_form(self.base)
        self.require_manager(visit, member)
        ids = [i for i in dict.fromkeys(request.form_list("user")) if GRAPH_ID.match(i)][:MAX_SELECTED]
        graph = self.s.graph(member.tenant_id)
        people = []
        for user_id in ids:  # read each from Graph: never trust names or addresses sent by the form
            u = graph.request("GET", f"/users/{quote(user_id)}", params={"$select": "displayName,mail,userPrincipalName,preferredLanguage"})
            email = str(u.get("mail") or u.get("userPrincipalName") or "")
            if EMAIL.match(email):
                people.append(Invitee(email, str(u.get("displayName") or ""), str(u.get("preferredLanguage") or "en")[:2]))
        report = self.s.invitations.invite(member, people, source="office365")
        return visit.answer(render(request, "invite_result.html", report=report, signed_in=True, member_nav=True,
                                   csrf_token=visit.session.csrf_token))

    def new_user(self, request: WebRequest) -> WebResponse:
        """R2.2: invite by e-mail someone who need not be in Office 365."""
        visit = Visit.open(self.s.sessions, request, start=False)
        member = self._member(visit)
        form = visit.require_form(self.base)
        self.require_manager(visit, member)
        email = form.get("email", "").strip().lower()
        if not EMAIL.match(email):
            return visit.answer(message(request, "users.title", "users.bad_email", status=400, email=email[:254]))
        name = f"{form.get('first_name', '').strip()[:40]} {form.get('last_name', '').strip()[:80]}".strip()
        report = self.s.invitations.invite(member, [Invitee(email, name, language_of(request))], source="email")
        return visit.answer(render(request, "invite_result.html", report=report, signed_in=True, member_nav=True,
                                   csrf_token=visit.session.csrf_token))

    def revoke(self, request: WebRequest) -> WebResponse:
        return self._change_invitation(request, lambda member, email: self.s.invitations.revoke(member, email), "users.revoked")

    def resend(self, request: WebRequest) -> WebResponse:
        return self._change_invitation(
            request, lambda member, email: self.s.invitations.resend(member, email, language_of(request)), "users.resent"
        )

    def _change_invitation(
        self, request: WebRequest, change: Callable[[MemberIdentity, str], bool], done_key: str
    ) -> WebResponse:
        """Revoke or re-send a pending invitation from the Users page (R2.6)."""
        visit = Visit.open(self.s.sessions, request, start=False)
        member = self._member(visit)
        form = visit.require_form(self.base)
        self.require_manager(visit, member)
        email = form.get("email", "").strip().lower()
        done = change(member, email)
        key = done_key if done else "users.not_pending"
        return visit.answer(message(request, "users.title", key, status=200 if done else 409, email=email))

    # -- invitation links (R2.3) -----------------------------------------------------------

    def _link_refused(self, request: WebRequest, refused: LinkRefused) -> WebResponse:
        return message(request, "link.title", f"link.{refused.problem.value}", status=_LINK_STATUS[refused.problem])

    def invitation_page(self, request: WebRequest) -> WebResponse:
        token = request.route.get("token", "")
        try:
            invitation = self.s.invitations.open(token)
        except LinkRefused as refused:
            return self._link_refused(request, refused)
        visit = Visit.open(self.s.sessions, request)
        if visit.session.user is None and invitation.source == "email":
            # R2.2: a New User need not have a Microsoft account: they choose how to accept.
            visit.session.after_sign_in = f"/api/invitations/{token}"
            visit.save()
            return visit.answer(render(
                request, "invitation_choice.html", token=token, org_name=invitation.org_name, email=invitation.email,
                inviter=invitation.invited_by_name or invitation.invited_by_email, csrf_token=visit.session.csrf_token,
            ))
        redirect = self._signed_in_or_sign_in(visit, f"/api/invitations/{token}")
        if redirect is not None:
            return redirect
        user = visit.user
        if not invitation_is_for(invited=invitation.email, signed_in=user.email):
            return visit.answer(message(request, "invitation.not_for_you.title", "invitation.not_for_you.body",
                                        status=403, invited=invitation.email, signed_in=user.email))
        return visit.answer(
            render(request, "invitation.html", token=token, inviter=invitation.invited_by_name or invitation.invited_by_email,
                   org_name=invitation.org_name, email=invitation.email, error=False,
                   csrf_token=visit.session.csrf_token, signed_in=True)
        )

    def invitation_accept(self, request: WebRequest) -> WebResponse:
        token = request.route.get("token", "")
        visit = Visit.open(self.s.sessions, request, start=False)
        user = visit.user
        form = visit.require_form(self.base)
        if form.get("accept_terms") != "on":
            return visit.answer(message(request, "invitation.title", "accounts.terms.required", status=400))
        try:
            member = self.s.invitations.accept(user, token)
        except LinkRefused as refused:
            linked = self.s.accounts.member_of(user.tenant_id, user.object_id)
            if refused.problem is LinkProblem.USED and linked is not None:
                return visit.answer(self._go_in(linked))  # a double click: the first one took them in
            return visit.answer(self._link_refused(request, refused))
        except InvitationNotForYou as wrong:
            return visit.answer(message(request, "invitation.not_for_you.title", "invitation.not_for_you.body",
                                        status=403, invited=wrong.invited, signed_in=wrong.signed_in))
        return visit.answer(self._go_in(member))

    def invitation_accept_in_crm(self, request: WebRequest) -> WebResponse:
        """R2.2 without a Microsoft account: into the org's CRM, then the CRM's own sign-in."""
        token = request.route.get("token", "")
        visit = Visit.open(self.s.sessions, request, start=False)
        form = visit.require_form(self.base)
        if form.get("accept_terms") != "on":
            return visit.answer(message(request, "invitation.title", "accounts.terms.required", status=400))
        try:
            account = self.s.invitations.accept_in_crm(token)
        except LinkRefused as refused:
            return visit.answer(self._link_refused(request, refused))
        except InvitationNeedsMicrosoft:
            return visit.answer(message(request, "invitation.microsoft_only.title", "invitation.microsoft_only.body", status=403))
        except AccountElsewhere as elsewhere:
            return visit.answer(message(request, "invitation.elsewhere.title", "invitation.elsewhere.body", status=409,
                                        email=elsewhere.email))
        return visit.answer(WebResponse.redirect(self.s.crm_directory.signin_link(account.user_id)))

    def _go_in(self, member: MemberIdentity) -> WebResponse:
        return WebResponse.redirect(self.s.crm_directory.signin_link(member.user_id))

    # -- requests to join (R2.4, R2.5) -----------------------------------------------------

    def join_request(self, request: WebRequest) -> WebResponse:
        visit = Visit.open(self.s.sessions, request, start=False)
        user = visit.user
        visit.require_form(self.base)
        install = self.s.accounts.install_of(user.tenant_id)
        if install is None or not install.org_id:
            return visit.answer(message(request, "install.admin_required.title", "install.admin_required.body",
                                        status=403, tenant=user.tenant_name or user.tenant_id))
        if self.s.accounts.member_of(user.tenant_id, user.object_id) is not None:
            return visit.answer(WebResponse.redirect(f"{self.base}/api/accounts"))
        if not user.email_verified:
            return visit.answer(message(request, "join.unproven.title", "join.unproven.body", status=403, email=user.email))
        if not may_request_to_join(email_proven=True, tenant_bound=True, is_member=False,
                                   paid=self.s.crm_directory.org(install.org_id).paid):
            return visit.answer(message(request, "join.free_edition.title", "join.free_edition.body", status=403,
                                        org=install.org_name or ""))
        row, created = self.s.join_requests.request(user, install, language_of(request))
        if created:
            return visit.answer(message(request, "join.sent.title", "join.sent.body", status=200, org=row.org_name))
        return visit.answer(render(request, "join_pending.html", org=row.org_name, when=row.created_at.strftime("%Y-%m-%d"),
                                   csrf_token=visit.session.csrf_token, signed_in=True))

    def join_again(self, request: WebRequest) -> WebResponse:
        """The requester's "Send again" on a pending request (at most once an hour)."""
        visit = Visit.open(self.s.sessions, request, start=False)
        user = visit.user
        visit.require_form(self.base)
        install = self.s.accounts.install_of(user.tenant_id)
        if install is None or not install.org_id or not self.s.join_requests.remind(user, install.org_id, language_of(request)):
            return visit.answer(message(request, "join.again.not_now.title", "join.again.not_now.body", status=409))
        return visit.answer(message(request, "join.sent.title", "join.sent.body", status=200, org=install.org_name or ""))

    def join_decide_here(self, request: WebRequest) -> WebResponse:
        """Approve & Add or Decline from the Users page: the same first-decision-wins rule."""
        visit = Visit.open(self.s.sessions, request, start=False)
        member = self._member(visit)
        form = visit.require_form(self.base)
        self.require_manager(visit, member)
        action = request.route.get("action", "")
        if action not in ("approve", "decline"):
            return visit.answer(message(request, "notfound.title", "error.body", status=404))
        try:
            outcome = self.s.join_requests.decide_here(member, form.get("key", "")[:300], approve=action == "approve",
                                                       language=language_of(request))
        except LookupError:
            return visit.answer(message(request, "notfound.title", "error.body", status=404))
        except ValueError:
            return visit.answer(message(request, "join.expired.title", "join.expired.body", status=410))
        except CrmError as error:
            log.warning("approval failed: %s", error)
            return visit.answer(message(request, "error.title", "error.body", status=502))
        if isinstance(outcome, Decided):
            return visit.answer(self._already(request, outcome))
        return self.users_page(request, notice=translate(language_of(request), f"join.{outcome.state}.notice",
                                                         name=outcome.name or outcome.email))

    def join_review(self, request: WebRequest) -> WebResponse:
        token = request.route.get("token", "")
        try:
            opened = self.s.join_requests.open(token)
        except LinkRefused as refused:
            return self._link_refused(request, refused)
        visit = Visit.open(self.s.sessions, request)
        redirect = self._signed_in_or_sign_in(visit, f"/api/join-requests/{token}")
        if redirect is not None:
            return redirect
        member = self._member(visit)
        pending = opened.request if isinstance(opened, Decided) else opened
        self.require_manager(visit, member, pending.partition_key)
        if isinstance(opened, Decided):
            return visit.answer(self._already(request, opened))
        return visit.answer(render(request, "approve.html", join=opened, token=token,
                                   csrf_token=visit.session.csrf_token, signed_in=True, member_nav=True))

    def join_decide(self, request: WebRequest, *, approve: bool) -> WebResponse:
        token = request.route.get("token", "")
        visit = Visit.open(self.s.sessions, request, start=False)
        member = self._member(visit)
        visit.require_form(self.base)
        try:
            opened = self.s.join_requests.open(token)
        except LinkRefused as refused:
            return visit.answer(self._link_refused(request, refused))
        pending = opened.request if isinstance(opened, Decided) else opened
        self.require_manager(visit, member, pending.partition_key)
        try:
            outcome = self.s.join_requests.decide(member, token, approve=approve, language=language_of(request))
        except LinkRefused as refused:
            return visit.answer(self._link_refused(request, refused))
        except CrmError as error:
            log.warning("approval failed: %s", error)
            return visit.answer(message(request, "error.title", "error.body", status=502))
        if isinstance(outcome, Decided):
            return visit.answer(self._already(request, outcome))
        key = "approve.done" if approve else "approve.declined"
        return visit.answer(message(request, f"{key}.title", f"{key}.body", status=200, name=outcome.name, email=outcome.email))

    def _already(self, request: WebRequest, decided: Decided) -> WebResponse:
        r = decided.request
        state = translate(language_of(request), f"decision.{r.state}")
        return message(request, "approve.already.title", "approve.already.body", status=409, name=r.name, email=r.email,
                       state=state, by=r.decided_by or "")
