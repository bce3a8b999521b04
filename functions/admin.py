"""The operators' view of the poison queues (issue 10): list them, replay after a fix.

Admin auth level: in Azure only the host's master key opens these. The routes start with
``ops/``, not ``admin/``: the Functions host reserves every function route whose first
segment is ``admin`` (whatever the routePrefix) and puts such a function in error at
startup ("The specified route conflicts with one or more built in routes")."""

import json

import azure.functions as func

from functions.http_edge import serve
from shared.http_messages import WebRequest, WebResponse
from shared.mail.outbox import OUTBOX_QUEUE
from shared.operations.poison import PoisonNotFound, PoisonQueues, PoisonRefused
from shared.sync.crm_routing import CRM_CHANGES_QUEUE
from shared.sync.held_notifications import GRAPH_NOTIFICATIONS_QUEUE
from shared.sync.jobs import SYNC_QUEUES
from shared.wiring import get_services

bp = func.Blueprint()
ADMIN = func.AuthLevel.ADMIN
MAX_BODY = 4096


def _queues() -> PoisonQueues:
    known = (OUTBOX_QUEUE, *SYNC_QUEUES, CRM_CHANGES_QUEUE, GRAPH_NOTIFICATIONS_QUEUE)
    return PoisonQueues(get_services().storage.queue_service(), known_queues=known)


def _list(request: WebRequest) -> WebResponse:
    return WebResponse.json({"queues": [q.model_dump(mode="json") for q in _queues().list()]})


def _replay(request: WebRequest) -> WebResponse:
    message_id = request.query.get("id")
    if request.body:
        if len(request.body) > MAX_BODY:
            return WebResponse.json({"error": "the body is at most {\"message_id\": \"...\"}"}, status=413)
        try:
            body = json.loads(request.body)
        except (ValueError, RecursionError):
            return WebResponse.json({"error": "the body must be JSON: {\"message_id\": \"...\"} or empty"}, status=400)
        if not isinstance(body, dict) or not isinstance(body.get("message_id", ""), str):
            return WebResponse.json({"error": "message_id must be a string"}, status=400)
        message_id = body.get("message_id") or message_id
    try:
        report = _queues().replay(request.route.get("queue", ""), message_id or None)
    except PoisonRefused as refused:
        return WebResponse.json({"error": str(refused)}, status=404 if isinstance(refused, PoisonNotFound) else 400)
    return WebResponse.json(report.model_dump(mode="json"))


@bp.route(route="ops/poison", methods=["GET"], auth_level=ADMIN)
def poison_view(req: func.HttpRequest, context: func.Context) -> func.HttpResponse:
    return serve(req, _list, context)


@bp.route(route="ops/poison/{queue}/replay", methods=["POST"], auth_level=ADMIN)
def poison_replay(req: func.HttpRequest, context: func.Context) -> func.HttpResponse:
    return serve(req, _replay, context)
