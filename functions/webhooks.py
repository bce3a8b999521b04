"""Change notifications (SPEC R3.3, R4.4): Microsoft Graph subscriptions (with their
validation handshake and lifecycle events) and CRM watch callbacks. Each is checked
(clientState / channel token), answered fast, and its work queued."""

import logging
from collections.abc import Callable

import azure.functions as func

from shared.crm.watch import CallbackRejected
from shared.graph.notifications import NotificationRejected, validation_request
from shared.wiring import get_services

bp = func.Blueprint()
log = logging.getLogger("functions.webhooks")
ANON = func.AuthLevel.ANONYMOUS
MAX_BODY = 1_000_000
# Machine answers, never pages: nothing in them may be sniffed, framed, run or cached.
HEADERS = {"X-Content-Type-Options": "nosniff", "Content-Security-Policy": "default-src 'none'; frame-ancestors 'none'",
           "Cache-Control": "no-store"}


def _validation(req: func.HttpRequest) -> func.HttpResponse | None:
    """Graph's handshake: echo the token as plain text within 10 seconds."""
    try:
        token = validation_request(dict(req.params), req.get_body() or b"")
    except NotificationRejected as error:
        return _refused(f"not a Graph validation request: {error}")
    if token is None:
        return None
    return func.HttpResponse(token, status_code=200, mimetype="text/plain", headers=HEADERS)


def _refused(message: str, status: int = 400) -> func.HttpResponse:
    return func.HttpResponse(message, status_code=status, mimetype="text/plain", headers=HEADERS)


def _graph_post(req: func.HttpRequest, handle: Callable[[bytes], int], kind: str) -> func.HttpResponse:
    handshake = _validation(req)
    if handshake is not None:
        return handshake
    body = req.get_body()
    if len(body) > MAX_BODY:
        return _refused("notification too large", 413)
    try:
        handled = handle(body)
    except NotificationRejected as error:
        return _refused(f"not a Graph {kind} notification: {error}")
    log.info("graph %s notifications: %d handled", kind, handled)
    return func.HttpResponse(status_code=202, headers=HEADERS)


@bp.route(route="webhooks/graph", methods=["POST"], auth_level=ANON)
def graph_webhook(req: func.HttpRequest) -> func.HttpResponse:
    return _graph_post(req, lambda body: get_services().sync.graph_notifications(body), "change")


@bp.route(route="webhooks/graph/lifecycle", methods=["POST"], auth_level=ANON)
def graph_lifecycle(req: func.HttpRequest) -> func.HttpResponse:
    return _graph_post(req, lambda body: get_services().sync.graph_lifecycle(body), "lifecycle")


@bp.route(route="webhooks/crm", methods=["POST"], auth_level=ANON)
def crm_webhook(req: func.HttpRequest) -> func.HttpResponse:
    body = req.get_body()
    if len(body) > MAX_BODY:
        return _refused("callback too large", 413)
    try:
        get_services().sync.crm_callback(body)
    except CallbackRejected as error:
        status = 400 if error.reason == "malformed" else 403
        return _refused(f"callback refused: {error.reason}", status)
    return func.HttpResponse(status_code=200, headers=HEADERS)
