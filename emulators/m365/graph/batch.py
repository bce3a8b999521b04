"""JSON batching (POST /v1.0/$batch): at most 20 items, dependsOn, per-item status/headers/body.

Items are dispatched through the same WSGI app, so each one is authenticated, throttled and
counted on its own, and a throttled item gets its own 429 + Retry-After inside a 200 batch.
Graph sends at most four items at a time to Outlook, and one at a time when dependsOn is used.
"""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor

from flask import Blueprint, current_app, request

from ..errors import GraphError, error_body
from .access import authenticate
from .routes import reply

blueprint = Blueprint("graph_batch", __name__)
MAX_ITEMS = 20
PARALLEL_ITEMS = 4
METHODS = {"GET", "POST", "PATCH", "PUT", "DELETE"}


def _validate(payload) -> list[dict]:
    if not isinstance(payload, dict) or not isinstance(payload.get("requests"), list):
        raise GraphError(400, "BadRequest", "Invalid batch payload format.")
    items = payload["requests"]
    if len(items) > MAX_ITEMS:
        raise GraphError(400, "BadRequest", f"Number of requests in the batch request exceeds the limit of {MAX_ITEMS}.")
    if not items:
        raise GraphError(400, "BadRequest", "Invalid batch payload format: no requests.")
    ids = set()
    for item in items:
        if not isinstance(item, dict) or not item.get("id") or not item.get("method") or not item.get("url"):
            raise GraphError(400, "BadRequest", "Each batch request needs id, method and url.")
        if str(item["method"]).upper() not in METHODS:
            raise GraphError(400, "BadRequest", f"Invalid method '{item['method']}' in batch request.")
        if str(item["url"]).lower().startswith(("http://", "https://")):
            raise GraphError(400, "BadRequest", "Batch request URLs must be relative.")
        if item["id"] in ids:
            raise GraphError(400, "BadRequest", f"Batch request id '{item['id']}' is duplicated.")
        if "body" in item and not any(k.lower() == "content-type" for k in (item.get("headers") or {})):
            raise GraphError(400, "BadRequest", "Content-Type header must be specified when a body is present.")
        ids.add(item["id"])
    for item in items:
        for dep in item.get("dependsOn") or []:
            if dep not in ids:
                raise GraphError(400, "BadRequest", f"Request '{item['id']}' depends on an unknown request '{dep}'.")
    return items


INNER_REQUEST_HEADER = "X-Emulator-Batch-Item"  # the emulator's own marker on a $batch item's inner request


def _run_item(app, base_url: str, authorization: str, item: dict) -> dict:
    url = str(item["url"])
    path = "/v1.0" + (url if url.startswith("/") else "/" + url)
    headers = {k: v for k, v in (item.get("headers") or {}).items()}
    headers["Authorization"] = authorization
    headers[INNER_REQUEST_HEADER] = "1"
    body = item.get("body")
    data = None
    if body is not None:
        data = body if isinstance(body, str) else json.dumps(body)
    with app.test_client() as client:
        response = client.open(path, method=str(item["method"]).upper(), headers=headers, data=data, base_url=base_url)
    result = {"id": item["id"], "status": response.status_code,
              "headers": {k: v for k, v in response.headers.items() if k.lower() in ("content-type", "retry-after", "location", "preference-applied", "etag")}}
    if response.data:
        try:
            result["body"] = json.loads(response.data)
        except ValueError:
            result["body"] = response.get_data(as_text=True)
    return result


def _failed_dependency(item: dict) -> dict:
    return {"id": item["id"], "status": 424, "headers": {"Content-Type": "application/json"},
            "body": error_body("FailedDependency", "Failed dependency: a request this request depends on failed.", 424)}


@blueprint.post("/v1.0/$batch")
def batch():
    authenticate()
    try:
        payload = json.loads(request.data or b"null")
    except ValueError:
        raise GraphError(400, "BadRequest", "Unable to read JSON request payload.") from None
    items = _validate(payload)
    app = current_app._get_current_object()
    base_url = request.host_url
    authorization = request.headers.get("Authorization", "")
    sequential = any(item.get("dependsOn") for item in items)
    results: dict[str, dict] = {}
    with ThreadPoolExecutor(max_workers=1 if sequential else PARALLEL_ITEMS) as pool:
        if sequential:
            for item in items:
                deps = item.get("dependsOn") or []
                if any(dep not in results or results[dep]["status"] >= 400 for dep in deps):
                    results[item["id"]] = _failed_dependency(item)
                    continue
                results[item["id"]] = pool.submit(_run_item, app, base_url, authorization, item).result()
        else:
            futures = {item["id"]: pool.submit(_run_item, app, base_url, authorization, item) for item in items}
            results = {key: future.result() for key, future in futures.items()}
    return reply({"responses": [results[item["id"]] for item in items]})
