"""GET /api/health: the state of each dependency (200 when all are reachable, else 503)."""

import azure.functions as func

from functions.http_edge import serve
from shared.config import get_settings
from shared.health import check_health
from shared.http_messages import WebRequest, WebResponse

bp = func.Blueprint()


def _health(request: WebRequest) -> WebResponse:
    report = check_health(get_settings())
    return WebResponse(status=200 if report.healthy else 503, body=report.model_dump_json(indent=2),
                       content_type="application/json")


@bp.function_name("health")
@bp.route(route="health", methods=["GET"], auth_level=func.AuthLevel.ANONYMOUS)
def health(req: func.HttpRequest, context: func.Context) -> func.HttpResponse:
    return serve(req, _health, context)
