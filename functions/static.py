"""GET /api/static/{name}: the stylesheet, static pages and scripts (CSP allows only our own)."""

import azure.functions as func

from shared.web.http import SECURITY_HEADERS
from shared.web.pages import STATIC_DIR

bp = func.Blueprint()
TYPES = {".css": "text/css", ".html": "text/html", ".js": "text/javascript"}


@bp.route(route="static/{name}", methods=["GET"], auth_level=func.AuthLevel.ANONYMOUS)
def static_file(req: func.HttpRequest) -> func.HttpResponse:
    name = req.route_params.get("name", "")
    path = STATIC_DIR / name
    # Only plain file names in the static folder: no traversal, no hidden files.
    if "/" in name or name.startswith(".") or path.suffix not in TYPES or not path.is_file():
        return func.HttpResponse("Not found", status_code=404)
    return func.HttpResponse(
        path.read_bytes(),
        mimetype=TYPES[path.suffix],
        # The pages' own policy (a static page too must not be framed), but cacheable: no tokens here.
        headers={**SECURITY_HEADERS, "Cache-Control": "public, max-age=3600"},
    )
