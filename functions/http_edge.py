"""The edge between the Functions HTTP types and the product's neutral ones, and the one
place where an unexpected error becomes a page (logged, nothing half-shown). Every record
logged while handling a request carries the host's invocation (``context``: its id and trace
context, so Application Insights shows one operation) and a correlation id."""

from __future__ import annotations

import logging
from collections.abc import Callable

import azure.functions as func

from shared.config import SettingsError
from shared.http_messages import WebRequest, WebResponse
from shared.observability import correlated, invocation, new_correlation_id, sane_correlation_id
from shared.web.pages import message
from shared.web.visit import Refusal

log = logging.getLogger("functions.http")
CORRELATION_HEADER = "x-correlation-id"


def to_web_request(req: func.HttpRequest) -> WebRequest:
    return WebRequest(
        method=req.method,
        url=req.url,
        headers={k.lower(): v for k, v in req.headers.items()},
        query=dict(req.params),
        route=dict(req.route_params),
        body=req.get_body() or b"",
    )


def to_http_response(response: WebResponse) -> func.HttpResponse:
    answer = func.HttpResponse(
        response.body, status_code=response.status, mimetype=response.content_type.split(";")[0], charset="utf-8"
    )
    for name, value in response.all_headers():
        if name.lower() != "content-type":
            answer.headers.add(name, value)  # add, not set: several Set-Cookie headers may go out
    return answer


def serve(
    req: func.HttpRequest, handler: Callable[[WebRequest], WebResponse], context: func.Context | None = None
) -> func.HttpResponse:
    request = to_web_request(req)
    # The caller's id when it is a sane token (a proxy or a test tying its logs to ours), else ours.
    correlation_id = sane_correlation_id(request.headers.get(CORRELATION_HEADER)) or new_correlation_id()
    with invocation(context), correlated(correlation_id):
        try:
            response = handler(request)
        except Refusal as refusal:
            response = refusal.response
        except SettingsError as error:
            log.error("configuration error: %s", error)
            response = message(request, "error.title", "error.body", status=500)
        except Exception:
            log.exception("unexpected error on %s %s", req.method, request.path)
            response = message(request, "error.title", "error.body", status=500)
        answer = to_http_response(response)
    answer.headers[CORRELATION_HEADER] = correlation_id
    return answer
