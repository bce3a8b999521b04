"""Change notifications (SPEC R3.3, R4.4): Microsoft Graph subscriptions (with their
validation handshake and lifecycle events) and CRM watch callbacks. Each is checked
(shape of the ids first, then clientState / channel token), answered fast, and its work
queued. Through the same edge as the pages: a correlation id, one answer to the unexpected."""

import logging
from collections.abc import Callable

import azure.functions as func

from functions.http_edge import serve
from shared.crm.watch import CallbackRejected
from shared.graph.notifications import NotificationRejected, validation_request
from shared.http_messages import WebRequest, WebResponse
from shared.wiring import get_services

bp = func.Blueprint()
log = logging.getLogger("functions.webhooks")
ANON = func.AuthLevel.ANONYMOUS
MAX_BODY = 1_000_000
# Machine answers, never pages: nothing in them may be sniffed, framed, run or cached.
HEADERS = {"X-Content-Type-Options": "nosniff", "Content-Security-Policy": "default-src 'none'; frame-ancestors 'none'",
           "Cache-Control": "no-store"}


def _plain(text: str, status: int) -> WebResponse:
    return WebResponse(status=status, body=text, content_type="text/plain; charset=utf-8", headers=dict(HEADERS))


def _graph_post(request: WebRequest, handle: Callable[[bytes], int], kind: str) -> WebResponse:
    try:
        token = validation_request(request.query, request.body)  # Graph's handshake: echo the token
    except NotificationRejected as error:
        return _plain(f"not a Graph validation request: {error}", 400)
    if token is not None:
        return _plain(token, 200)
    if len(request.body) > MAX_BODY:
        return _plain("notification too large", 413)
    try:
        handled = handle(request.body)
    except NotificationRejected as error:
        return _plain(f"not a Graph {kind} notification: {error}", 400)
    log.info("graph %s notifications: %d handled", kind, handled)
    # 202 whatever was dropped or refused, as Graph expects: the sender learns nothing.
    return _plain("", 202)


def _crm_post(request: WebRequest) -> WebResponse:
    if len(request.body) > MAX_BODY:
        return _plain("callback too large", 413)
    try:
        get_services().sync.crm_callback(request.body)
    except CallbackRejected as error:
        return _plain(f"callback refused: {error.reason}", 400 if error.reason == "malformed" else 403)
    return _plain("", 200)


@bp.route(route="webhooks/graph", methods=["POST"], auth_level=ANON)
def graph_webhook(req: func.HttpRequest, context: func.Context) -> func.HttpResponse:
    # The services are built only for a notification: Graph's handshake (10 s, maybe on a cold
    # instance) is answered from the request alone.
    return serve(req, lambda request: _graph_post(request, lambda body: get_services().sync.graph_notifications(body),
                                                  "change"), context)


@bp.route(route="webhooks/graph/lifecycle", methods=["POST"], auth_level=ANON)
def graph_lifecycle(req: func.HttpRequest, context: func.Context) -> func.HttpResponse:
    return serve(req, lambda request: _graph_post(request, lambda body: get_services().sync.graph_lifecycle(body),
                                                  "lifecycle"), context)


@bp.route(route="webhooks/crm", methods=["POST"], auth_level=ANON)
def crm_webhook(req: func.HttpRequest, context: func.Context) -> func.HttpResponse:
    return serve(req, _crm_post, context)
