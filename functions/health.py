"""GET /api/health: the state of each dependency (200 when all are reachable, else 503)."""

import azure.functions as func

from shared.config import get_settings
from shared.health import check_health

bp = func.Blueprint()


@bp.function_name("health")
@bp.route(route="health", methods=["GET"], auth_level=func.AuthLevel.ANONYMOUS)
def health(req: func.HttpRequest) -> func.HttpResponse:
    report = check_health(get_settings())
    return func.HttpResponse(
        report.model_dump_json(indent=2),
        status_code=200 if report.healthy else 503,
        mimetype="application/json",
        headers={"Cache-Control": "no-store"},
    )
