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
def marketplace_launch(req: func.HttpRequest, context: func.Context) -> func.HttpResponse:
    return serve(req, lambda r: pages().launch(r), context)


@bp.route(route="auth/callback", methods=["GET"], auth_level=ANON)
def auth_callback(req: func.HttpRequest, context: func.Context) -> func.HttpResponse:
    return serve(req, lambda r: pages().sign_in_callback(r), context)


@bp.route(route="auth/admin-consent/callback", methods=["GET"], auth_level=ANON)
def admin_consent_callback(req: func.HttpRequest, context: func.Context) -> func.HttpResponse:
    return serve(req, lambda r: pages().admin_consent_callback(r), context)


@bp.route(route="auth/signout", methods=["POST"], auth_level=ANON)
def sign_out(req: func.HttpRequest, context: func.Context) -> func.HttpResponse:
    return serve(req, lambda r: pages().sign_out(r), context)


@bp.route(route="accounts", methods=["GET"], auth_level=ANON)
def accounts(req: func.HttpRequest, context: func.Context) -> func.HttpResponse:
    return serve(req, lambda r: pages().accounts_page(r), context)


@bp.route(route="accounts/continue", methods=["POST"], auth_level=ANON)
def accounts_continue(req: func.HttpRequest, context: func.Context) -> func.HttpResponse:
    return serve(req, lambda r: pages().accounts_continue(r), context)


@bp.route(route="accounts/associate", methods=["GET"], auth_level=ANON)
def associate(req: func.HttpRequest, context: func.Context) -> func.HttpResponse:
    return serve(req, lambda r: pages().associate_start(r), context)


@bp.route(route="accounts/associate/callback", methods=["GET"], auth_level=ANON)
def associate_callback(req: func.HttpRequest, context: func.Context) -> func.HttpResponse:
    return serve(req, lambda r: pages().associate_callback(r), context)
