"""Install from the Office 365 app launcher (SPEC R1): sign-in, admin consent, the Accounts
page, Associate My Account, sign-out."""

import azure.functions as func

from functions.http_edge import serve
from shared.web.install_pages import InstallPages
from shared.wiring import get_services

bp = func.Blueprint()
ANON = func.AuthLevel.ANONYMOUS


def pages() -> InstallPages:
    return InstallPages(get_services())


@bp.route(route="marketplace/launch", methods=["GET"], auth_level=ANON)
def marketplace_launch(req: func.HttpRequest) -> func.HttpResponse:
    return serve(req, lambda r: pages().launch(r))


@bp.route(route="auth/callback", methods=["GET"], auth_level=ANON)
def auth_callback(req: func.HttpRequest) -> func.HttpResponse:
    return serve(req, lambda r: pages().sign_in_callback(r))


@bp.route(route="auth/admin-consent/callback", methods=["GET"], auth_level=ANON)
def admin_consent_callback(req: func.HttpRequest) -> func.HttpResponse:
    return serve(req, lambda r: pages().admin_consent_callback(r))


@bp.route(route="auth/signout", methods=["POST"], auth_level=ANON)
def sign_out(req: func.HttpRequest) -> func.HttpResponse:
    return serve(req, lambda r: pages().sign_out(r))


@bp.route(route="accounts", methods=["GET"], auth_level=ANON)
def accounts(req: func.HttpRequest) -> func.HttpResponse:
    return serve(req, lambda r: pages().accounts_page(r))


@bp.route(route="accounts/continue", methods=["POST"], auth_level=ANON)
def accounts_continue(req: func.HttpRequest) -> func.HttpResponse:
    return serve(req, lambda r: pages().accounts_continue(r))


@bp.route(route="accounts/associate", methods=["GET"], auth_level=ANON)
def associate(req: func.HttpRequest) -> func.HttpResponse:
    return serve(req, lambda r: pages().associate_start(r))


@bp.route(route="accounts/associate/callback", methods=["GET"], auth_level=ANON)
def associate_callback(req: func.HttpRequest) -> func.HttpResponse:
    return serve(req, lambda r: pages().associate_callback(r))
