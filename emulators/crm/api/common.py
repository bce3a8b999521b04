"""Request plumbing shared by the CRM API blueprints: the data-centre prefix, JSON bodies, paging args."""

from __future__ import annotations

from typing import Any

from flask import Response, g, jsonify, request

from .. import datacentres
from ..errors import CrmError, invalid_param
from ..store import parse_time


def bind_dc(endpoint: str | None, values: dict[str, Any] | None) -> None:
    """url_value_preprocessor: take ``dc`` out of the URL and check it names a data centre."""
    dc = (values or {}).pop("dc", None)
    if dc is None or not datacentres.is_known(dc):
        raise CrmError(404, "INVALID_URL_PATTERN", "Please check if the URL trying to access is a correct one")
    g.dc = dc


def json_body(wrapper: str) -> tuple[dict[str, Any] | None, list[Any] | None]:
    body = request.get_json(silent=True, force=True)
    if not isinstance(body, dict):
        return None, None
    items = body.get(wrapper)
    return body, items if isinstance(items, list) else None


def require_items(body: dict[str, Any] | None, items: list[Any] | None, wrapper: str, limit: int) -> list[Any]:
    if body is None:
        raise CrmError(400, "INVALID_DATA", "body is not a valid JSON", {})
    if not items:
        raise CrmError(400, "MANDATORY_NOT_FOUND", "required field not found",
                       {"api_name": wrapper, "json_path": f"$.{wrapper}"})
    if len(items) > limit:
        raise CrmError(400, "LIMIT_EXCEEDED", f"the number of {wrapper} items exceeds the limit",
                       {"api_name": wrapper, "json_path": f"$.{wrapper}", "limit": limit})
    return items


def int_arg(name: str, default: int, maximum: int | None = None) -> int:
    raw = request.args.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise invalid_param(name) from None
    if value < 1:
        raise invalid_param(name)
    if maximum is not None and value > maximum:
        raise CrmError(400, "LIMIT_EXCEEDED", f"the {name} limit is {maximum}",
                       {"limit": maximum, "param_name": name})
    return value


def if_modified_since() -> float | None:
    raw = request.headers.get("If-Modified-Since")
    if not raw:
        return None
    value = parse_time(raw.strip())
    if value is None:
        raise CrmError(400, "INVALID_DATA", "the given header value is invalid", {"header_name": "If-Modified-Since"})
    return value


def batch_response(wrapper: str, results: list[dict[str, Any]], success_status: int) -> tuple[Response, int]:
    ok = sum(1 for r in results if r["status"] == "success")
    status = success_status if ok == len(results) else 400 if ok == 0 else 207
    return jsonify({wrapper: results}), status


def no_content(status: int = 204) -> Response:
    return Response(status=status)
