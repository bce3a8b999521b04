"""GET /api/static/{name}: the stylesheet, static pages and scripts (CSP allows only our own)."""

import azure.functions as func

from functions.http_edge import serve
from shared.http_messages import WebRequest, WebResponse
from shared.web.pages import STATIC_DIR

bp = func.Blueprint()
TYPES = {".css": "text/css", ".html": "text/html", ".js": "text/javascript"}


def _static(request: WebRequest) -> WebResponse:
    name = request.route.get("name", "")
    path = STATIC_DIR / name
    # Only plain file names in the static folder: no traversal, no hidden files.
    if "/" in name or "\\" in name or name.startswith(".") or path.suffix not in TYPES or not path.is_file():
        return WebResponse(status=404, body="Not found", content_type="text/plain; charset=utf-8")
    # The pages' own policy (a static page too must not be framed), but cacheable: no tokens here.
    return WebResponse(body=path.read_bytes(), content_type=f"{TYPES[path.suffix]}; charset=utf-8",
                       headers={"Cache-Control": "public, max-age=3600"})


@bp.route(route="static/{name}", methods=["GET"], auth_level=func.AuthLevel.ANONYMOUS)
def static_file(req: func.HttpRequest, context: func.Context) -> func.HttpResponse:
    return serve(req, _static, context)
