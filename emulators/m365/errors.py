"""Graph's error shape: ``{"error": {"code", "message", "innerError": {"date", "request-id", ...}}}``."""

from __future__ import annotations

import datetime as dt
import uuid

from flask import Response, g, has_request_context, json


class GraphError(Exception):
    """Raised anywhere in a Graph handler; rendered by the app's error handler."""

    def __init__(self, status: int, code: str, message: str, headers: dict[str, str] | None = None):
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.headers = headers or {}


def not_found_item() -> GraphError:
    return GraphError(404, "ErrorItemNotFound", "The specified object was not found in the store.")


def invalid_request(message: str, code: str = "ErrorInvalidRequest") -> GraphError:
    return GraphError(400, code, message)


def current_request_id() -> str:
    if has_request_context():
        if "request_id" not in g:
            g.request_id = str(uuid.uuid4())
        return g.request_id
    return str(uuid.uuid4())


def error_body(code: str, message: str, status: int | None = None) -> dict:
    inner = {
        "date": dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S"),
        "request-id": current_request_id(),
        "client-request-id": getattr(g, "client_request_id", None) if has_request_context() else None,
    }
    if inner["client-request-id"] is None:
        inner["client-request-id"] = inner["request-id"]
    if status == 429:
        # Graph's documented 429 sample nests the status again inside innerError.
        inner.update({"code": "429", "message": "Please retry after", "status": "429"})
    return {"error": {"code": code, "message": message, "innerError": inner}}


def error_response(error: GraphError) -> Response:
    response = Response(
        json.dumps(error_body(error.code, error.message, error.status)),
        status=error.status,
        mimetype="application/json",
    )
    for name, value in error.headers.items():
        response.headers[name] = value
    return response
