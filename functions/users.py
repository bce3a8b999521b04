"""Bringing Office 365 users in (SPEC R2): Users page, Add User window, New User,
invitation links, Request to Join, approval links."""

import azure.functions as func

from functions.http_edge import serve
from shared.web.activity_pages import SyncActivityPages
from shared.web.users_pages import UsersPages
from shared.wiring import get_services

bp = func.Blueprint()
ANON = func.AuthLevel.ANONYMOUS


def pages() -> UsersPages:
    return UsersPages(get_services())


@bp.route(route="settings/users", methods=["GET"], auth_level=ANON)
def users_page(req: func.HttpRequest, context: func.Context) -> func.HttpResponse:
    return serve(req, lambda r: pages().users_page(r), context)


@bp.route(route="settings/users/office365", methods=["GET"], auth_level=ANON)
def add_user_window(req: func.HttpRequest, context: func.Context) -> func.HttpResponse:
    return serve(req, lambda r: pages().add_user_window(r), context)


@bp.route(route="settings/users/office365", methods=["POST"], auth_level=ANON)
def add_user_save(req: func.HttpRequest, context: func.Context) -> func.HttpResponse:
    return serve(req, lambda r: pages().add_user_save(r), context)


@bp.route(route="settings/users/sync", methods=["GET"], auth_level=ANON)
def sync_activity(req: func.HttpRequest, context: func.Context) -> func.HttpResponse:
    return serve(req, lambda r: SyncActivityPages(get_services()).page(r), context)


@bp.route(route="settings/users/sync/remind", methods=["POST"], auth_level=ANON)
def sync_activity_remind(req: func.HttpRequest, context: func.Context) -> func.HttpResponse:
    return serve(req, lambda r: SyncActivityPages(get_services()).remind(r), context)


@bp.route(route="settings/users/new", methods=["POST"], auth_level=ANON)
def new_user(req: func.HttpRequest, context: func.Context) -> func.HttpResponse:
    return serve(req, lambda r: pages().new_user(r), context)


@bp.route(route="settings/users/invitations/revoke", methods=["POST"], auth_level=ANON)
def revoke_invitation(req: func.HttpRequest, context: func.Context) -> func.HttpResponse:
    return serve(req, lambda r: pages().revoke(r), context)


@bp.route(route="settings/users/invitations/resend", methods=["POST"], auth_level=ANON)
def resend_invitation(req: func.HttpRequest, context: func.Context) -> func.HttpResponse:
    return serve(req, lambda r: pages().resend(r), context)


@bp.route(route="invitations/{token}", methods=["GET"], auth_level=ANON)
def invitation(req: func.HttpRequest, context: func.Context) -> func.HttpResponse:
    return serve(req, lambda r: pages().invitation_page(r), context)


@bp.route(route="settings/users/join-requests/{action}", methods=["POST"], auth_level=ANON)
def join_request_decide_here(req: func.HttpRequest, context: func.Context) -> func.HttpResponse:
    """Approve & Add or Decline a request to join from the Users page."""
    return serve(req, lambda r: pages().join_decide_here(r), context)


@bp.route(route="join-requests/again", methods=["POST"], auth_level=ANON)
def join_request_again(req: func.HttpRequest, context: func.Context) -> func.HttpResponse:
    """The requester sends a pending request to join again (the approvers are reminded)."""
    return serve(req, lambda r: pages().join_again(r), context)


@bp.route(route="invitations/{token}/accept-in-crm", methods=["POST"], auth_level=ANON)
def invitation_accept_in_crm(req: func.HttpRequest, context: func.Context) -> func.HttpResponse:
    """R2.2: a New User without a Microsoft account accepts, and goes in through the CRM's sign-in."""
    return serve(req, lambda r: pages().invitation_accept_in_crm(r), context)


@bp.route(route="invitations/{token}/accept", methods=["POST"], auth_level=ANON)
def invitation_accept(req: func.HttpRequest, context: func.Context) -> func.HttpResponse:
    return serve(req, lambda r: pages().invitation_accept(r), context)


@bp.route(route="join-requests", methods=["POST"], auth_level=ANON)
def join_request(req: func.HttpRequest, context: func.Context) -> func.HttpResponse:
    return serve(req, lambda r: pages().join_request(r), context)


@bp.route(route="join-requests/{token}", methods=["GET"], auth_level=ANON)
def join_review(req: func.HttpRequest, context: func.Context) -> func.HttpResponse:
    return serve(req, lambda r: pages().join_review(r), context)


@bp.route(route="join-requests/{token}/approve", methods=["POST"], auth_level=ANON)
def join_approve(req: func.HttpRequest, context: func.Context) -> func.HttpResponse:
    return serve(req, lambda r: pages().join_decide(r, approve=True), context)


@bp.route(route="join-requests/{token}/decline", methods=["POST"], auth_level=ANON)
def join_decline(req: func.HttpRequest, context: func.Context) -> func.HttpResponse:
    return serve(req, lambda r: pages().join_decide(r, approve=False), context)
