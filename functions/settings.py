"""Settings > Marketplace > Microsoft: the Calendar and Contacts sections (SPEC R3, R4)."""

import azure.functions as func

from functions.http_edge import serve
from shared.web.settings_pages import SettingsPages
from shared.wiring import get_services

bp = func.Blueprint()
ANON = func.AuthLevel.ANONYMOUS


def pages() -> SettingsPages:
    return SettingsPages(get_services())


@bp.route(route="settings/microsoft", methods=["GET"], auth_level=ANON)
def microsoft_settings(req: func.HttpRequest) -> func.HttpResponse:
    return serve(req, lambda r: pages().page(r))


@bp.route(route="settings/microsoft/{kind}/{action}", methods=["POST"], auth_level=ANON)
def microsoft_settings_change(req: func.HttpRequest) -> func.HttpResponse:
    return serve(req, lambda r: pages().change(r))


@bp.route(route="sync/status", methods=["GET"], auth_level=ANON)
def sync_status(req: func.HttpRequest) -> func.HttpResponse:
    return serve(req, lambda r: pages().status_json(r))
