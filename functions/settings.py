"""Settings > Marketplace > Microsoft: the Calendar and Contacts sections (SPEC R3, R4) and the
contacts Configuration window (R4.2)."""

import azure.functions as func

from functions.http_edge import serve
from shared.web.contacts_mapping_pages import ContactMappingPages
from shared.web.settings_pages import SettingsPages
from shared.wiring import get_services

bp = func.Blueprint()
ANON = func.AuthLevel.ANONYMOUS


def pages() -> SettingsPages:
    return SettingsPages(get_services())


def mapping_pages() -> ContactMappingPages:
    return ContactMappingPages(get_services())


@bp.route(route="settings/microsoft", methods=["GET"], auth_level=ANON)
def microsoft_settings(req: func.HttpRequest, context: func.Context) -> func.HttpResponse:
    return serve(req, lambda r: pages().page(r), context)


@bp.route(route="settings/microsoft/contacts/mapping", methods=["GET"], auth_level=ANON)
def contacts_mapping(req: func.HttpRequest, context: func.Context) -> func.HttpResponse:
    return serve(req, lambda r: mapping_pages().show(r), context)


@bp.route(route="settings/microsoft/contacts/mapping", methods=["PUT"], auth_level=ANON)
def contacts_mapping_save(req: func.HttpRequest, context: func.Context) -> func.HttpResponse:
    return serve(req, lambda r: mapping_pages().save(r), context)


@bp.route(route="settings/microsoft/contacts/mapping/preview", methods=["POST"], auth_level=ANON)
def contacts_mapping_preview(req: func.HttpRequest, context: func.Context) -> func.HttpResponse:
    return serve(req, lambda r: mapping_pages().preview(r), context)


@bp.route(route="settings/microsoft/{kind}/{action}", methods=["POST"], auth_level=ANON)
def microsoft_settings_change(req: func.HttpRequest, context: func.Context) -> func.HttpResponse:
    return serve(req, lambda r: pages().change(r), context)


@bp.route(route="sync/status", methods=["GET"], auth_level=ANON)
def sync_status(req: func.HttpRequest, context: func.Context) -> func.HttpResponse:
    return serve(req, lambda r: pages().status_json(r), context)
