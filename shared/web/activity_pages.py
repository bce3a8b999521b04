"""Sync activity (issue 19): the admin's view of every member's calendar and contacts sync,
and Remind, an e-mail to a member whose sync is paused. For members with Manage Users."""

from __future__ import annotations

from shared.crm.directory import CrmMember
from shared.http_messages import WebRequest, WebResponse
from shared.sync.org_activity import Reminded, page_of
from shared.sync.profiles import SyncKind
from shared.web.i18n import translate
from shared.web.pages import language_of, render
from shared.web.users_pages import UsersPages
from shared.web.visit import Visit
from shared.wiring import Services

_REMINDED_STATUS = {Reminded.SENT: 200, Reminded.TOO_SOON: 429, Reminded.NOT_PAUSED: 409, Reminded.UNKNOWN: 404}


class SyncActivityPages:
    def __init__(self, services: Services) -> None:
        self.s = services
        self.base = services.settings.public_base_url
        self.users = UsersPages(services)

    def page(self, request: WebRequest) -> WebResponse:
        visit = Visit.open(self.s.sessions, request, start=False)
        member = visit.member(self.s.accounts)
        self.users.require_manager(visit, member)
        return visit.answer(self._render(visit, member.org_id, member.org_name, page=visit.request.query.get("page")))

    def _render(self, visit: Visit, org_id: str, org_name: str, notice: str = "", status: int = 200,
                members: list[CrmMember] | None = None, page: str | None = None) -> WebResponse:
        rows = self.s.org_sync_activity.of(members if members is not None else self.s.crm_directory.list_members(org_id))
        shown = page_of(rows, page)
        return render(visit.request, "activity.html", status=status, org_name=org_name, page=shown, rows=shown.rows,
                      kinds=list(SyncKind), notice=notice, csrf_token=visit.session.csrf_token, signed_in=True,
                      member_nav=True)

    def remind(self, request: WebRequest) -> WebResponse:
        visit = Visit.open(self.s.sessions, request, start=False)
        member = visit.member(self.s.accounts)
        form = visit.require_form(self.base)
        self.users.require_manager(visit, member)
        user_id = form.get("user", "")[:40]
        members = self.s.crm_directory.list_members(member.org_id)
        lang = language_of(request)
        outcome = self.s.org_sync_activity.remind(member, members, user_id, lang,
                                                  describe=lambda reason: translate(lang, f"ms.reason.{reason}"))
        email = next((m.email for m in members if m.user_id == user_id), "")
        notice = translate(lang, f"activity.reminded.{outcome.value}", email=email)
        return visit.answer(self._render(visit, member.org_id, member.org_name, notice, _REMINDED_STATUS[outcome], members))
