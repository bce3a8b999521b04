"""CRM API v8 records for Contacts and Events: list, get, insert, update, upsert, delete, deleted."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, jsonify, request

from .. import records
from ..errors import CrmError, required_param
from ..runtime import current
from ..store import new_secret, parse_time
from .access import Caller, api_call, scope_allows
from .common import batch_response, bind_dc, if_modified_since, int_arg, json_body, no_content, require_items

bp = Blueprint("crm_records", __name__)
bp.url_value_preprocessor(bind_dc)

MAX_FIELDS = 50
MAX_PER_PAGE = 200
DISCRETE_LIMIT = 2000
TOKEN_LIMIT = 100_000
TOKEN_LIFETIME = 24 * 3600
MAX_WRITE = 100
SORT_FIELDS = ("id", "Created_Time", "Modified_Time")


def module_spec(module: str) -> dict[str, Any]:
    spec = records.MODULES.get(module)
    if spec is None:
        raise CrmError(400, "INVALID_MODULE", "the module name given seems to be invalid", {"resource_path_index": 0})
    return spec


def _sort_key(sort_by: str):
    if sort_by == "id":
        return lambda r: (int(r["id"]), 0)
    return lambda r: (r[sort_by], int(r["id"]))


@bp.get("/<module>")
def list_records(module: str) -> Any:
    spec = module_spec(module)
    with api_call(("modules", spec["scope"]), "READ") as caller:
        return _list(caller, module)


def _list(caller: Caller, module: str) -> Any:
    args = request.args
    ids = [i for i in (args.get("ids") or "").split(",") if i]
    raw_fields = args.get("fields")
    if not raw_fields:
        raise required_param("fields")
    fields = list(dict.fromkeys(f.strip() for f in raw_fields.split(",") if f.strip()))
    if len(fields) > MAX_FIELDS:
        raise CrmError(400, "LIMIT_EXCEEDED", "the fields limit exceeded", {"limit": MAX_FIELDS, "param_name": "fields"})
    per_page = int_arg("per_page", MAX_PER_PAGE, MAX_PER_PAGE)
    sort_by = args.get("sort_by") or "id"
    sort_order = args.get("sort_order") or "desc"
    if sort_by not in SORT_FIELDS:
        raise CrmError(400, "INVALID_DATA", "invalid data",
                       {"param_name": "sort_by", "supported_values": list(SORT_FIELDS)})
    if sort_order not in ("asc", "desc"):
        raise CrmError(400, "INVALID_DATA", "invalid data",
                       {"param_name": "sort_order", "supported_values": ["asc", "desc"]})
    since = if_modified_since()
    page_token = args.get("page_token")
    if page_token and args.get("page"):
        raise CrmError(400, "AMBIGUITY_DURING_PROCESSING", "page and page_token cannot be given together",
                       {"ambiguity_due_to": ["page", "page_token"]})
    # The token is bound to everything that shapes the listing except where the page starts.
    binding = {"module": module, "fields": fields, "sort_by": sort_by, "sort_order": sort_order, "ids": ids,
               "since": since, "cvid": args.get("cvid")}
    crm = current()
    store = crm.store
    key = _sort_key(sort_by)
    with store.lock:
        rows = list(store.module_records(caller.org["id"], module).values())
        if ids:
            rows = [r for r in rows if r["id"] in set(ids)]
        if since is not None:
            rows = [r for r in rows if int(r["Modified_Time"]) > since]  # the header has whole seconds
        rows.sort(key=key, reverse=sort_order == "desc")
        if page_token:
            token = store.page_tokens.get(page_token)
            if token is None or token["user_id"] != caller.user["id"]:
                raise CrmError(400, "INVALID_DATA", "invalid data",
                               {"api_name": "page_token", "json_path": "$.query.page_token"})
            if token["expires"] <= store.now():
                raise CrmError(400, "EXPIRED_VALUE", "the given page_token has expired",
                               {"api_name": "page_token", "json_path": "$.query.page_token"})
            if token["binding"] != binding:
                raise CrmError(400, "TOKEN_BOUND_DATA_MISMATCH", "the parameters do not match the page_token",
                               {"api_name": "page_token", "json_path": "$.query.page_token"})
            if token["returned"] >= TOKEN_LIMIT:
                raise CrmError(400, "PAGINATION_LIMIT_EXCEEDED", "pagination limit exceeded",
                               {"limit": TOKEN_LIMIT})
            last = tuple(token["last"])
            rows = [r for r in rows if (key(r) < last if sort_order == "desc" else key(r) > last)]
            returned_before = token["returned"]
            page = returned_before // per_page + 1
        else:
            page = int_arg("page", 1)
            returned_before = (page - 1) * per_page
            if returned_before >= DISCRETE_LIMIT:
                raise CrmError(400, "DISCRETE_PAGINATION_LIMIT_EXCEEDED",
                               "You can only get the first 2000 records without using page_token param",
                               {"limit": DISCRETE_LIMIT})
            rows = rows[returned_before:]
        chunk = rows[:per_page]
        if not chunk:
            return no_content(304 if since is not None else 204)
        more = len(rows) > per_page
        data = [records.record_json(store, caller.org["id"], module, r, fields) for r in chunk]
        info: dict[str, Any] = {"call": False, "per_page": per_page, "count": len(chunk), "sort_by": sort_by,
                                "page": page, "sort_order": sort_order, "email": False, "more_records": more,
                                "previous_page_token": None, "next_page_token": None, "page_token_expiry": None}
        if more:
            if len(store.page_tokens) > 10_000:
                now = store.now()
                for stale in [k for k, t in store.page_tokens.items() if t["expires"] <= now]:
                    del store.page_tokens[stale]
            token_value = new_secret(24)
            expires = store.now() + TOKEN_LIFETIME
            store.page_tokens[token_value] = {"user_id": caller.user["id"], "binding": binding,
                                              "last": list(key(chunk[-1])), "returned": returned_before + len(chunk),
                                              "expires": expires}
            info["next_page_token"] = token_value
            info["page_token_expiry"] = store.org_time(caller.org["id"], expires)
        return jsonify({"data": data, "info": info})


@bp.get("/<module>/<record_id>")
def get_record(module: str, record_id: str) -> Any:
    spec = module_spec(module)
    with api_call(("modules", spec["scope"]), "READ") as caller:
        since = if_modified_since()
        store = current().store
        with store.lock:
            rec = store.module_records(caller.org["id"], module).get(record_id)
            if rec is None:
                raise CrmError(400, "INVALID_DATA", "the id given seems to be invalid", {"id": record_id})
            if since is not None and int(rec["Modified_Time"]) <= since:
                return no_content(304)
            fields = [f for f in (request.args.get("fields") or "").split(",") if f] or None
            return jsonify({"data": [records.record_json(store, caller.org["id"], module, rec, fields)]})


def _write(module: str, op: str, run) -> Any:
    spec = module_spec(module)
    body, items = json_body("data")
    count = len(items) if items else 1
    with api_call(("modules", spec["scope"]), op, records.write_credits(count), heavy=count > 10) as caller:
        items = require_items(body, items, "data", MAX_WRITE)
        crm = current()
        return run(crm, caller, body, items)


@bp.post("/<module>")
def insert_records(module: str) -> Any:
    def run(crm, caller: Caller, body: dict, items: list) -> Any:
        check = body.get("duplicate_check_fields") if isinstance(body.get("duplicate_check_fields"), list) else None
        results = records.insert(crm.store, crm.notifier, caller.org["id"], module, caller.user["id"], items,
                                 "API", check)
        return batch_response("data", results, 201)
    return _write(module, "CREATE", run)


def _update_response(results: list[dict[str, Any]]) -> Any:
    if results and all(r["code"] == "ALREADY_MODIFIED" for r in results):
        return jsonify({"data": results}), 412
    return batch_response("data", results, 200)


def _unmodified_since() -> float | None:
    raw = request.headers.get("If-Unmodified-Since")
    if not raw:
        return None
    value = parse_time(raw.strip())
    if value is None:
        raise CrmError(400, "INVALID_DATA", "the given header value is invalid", {"header_name": "If-Unmodified-Since"})
    return value


@bp.put("/<module>")
def update_records(module: str) -> Any:
    def run(crm, caller: Caller, body: dict, items: list) -> Any:
        results = records.update(crm.store, crm.notifier, caller.org["id"], module, caller.user["id"], items,
                                 unmodified_since=_unmodified_since())
        return _update_response(results)
    return _write(module, "UPDATE", run)


@bp.put("/<module>/<record_id>")
def update_record(module: str, record_id: str) -> Any:
    def run(crm, caller: Caller, body: dict, items: list) -> Any:
        first = dict(items[0]) if isinstance(items[0], dict) else {}
        first["id"] = record_id
        results = records.update(crm.store, crm.notifier, caller.org["id"], module, caller.user["id"], [first],
                                 unmodified_since=_unmodified_since())
        return _update_response(results)
    return _write(module, "UPDATE", run)


@bp.post("/<module>/upsert")
def upsert_records(module: str) -> Any:
    def run(crm, caller: Caller, body: dict, items: list) -> Any:
        check = body.get("duplicate_check_fields")
        if check is not None and not (isinstance(check, list) and all(isinstance(c, str) for c in check)):
            raise CrmError(400, "INVALID_DATA", "invalid data",
                           {"api_name": "duplicate_check_fields", "json_path": "$.duplicate_check_fields"})
        results = records.upsert(crm.store, crm.notifier, caller.org["id"], module, caller.user["id"], items, check)
        return batch_response("data", results, 200)
    spec = module_spec(module)
    body, items = json_body("data")
    count = len(items) if items else 1
    # Upsert may create or update, so it needs both rights.
    with api_call(("modules", spec["scope"]), "CREATE", records.write_credits(count), heavy=count > 10) as caller:
        if not scope_allows(caller.scopes, ("modules", spec["scope"]), "UPDATE"):
            raise CrmError(401, "OAUTH_SCOPE_MISMATCH", "Unauthorized")
        items = require_items(body, items, "data", MAX_WRITE)
        return run(current(), caller, body, items)


@bp.delete("/<module>")
def delete_records(module: str) -> Any:
    spec = module_spec(module)
    with api_call(("modules", spec["scope"]), "DELETE") as caller:
        raw = request.args.get("ids")
        if not raw:
            raise required_param("ids")
        ids = list(dict.fromkeys(i.strip() for i in raw.split(",") if i.strip()))
        if len(ids) > MAX_WRITE:
            raise CrmError(400, "LIMIT_EXCEEDED", "the ids limit exceeded", {"limit": MAX_WRITE, "param_name": "ids"})
        crm = current()
        results = records.delete(crm.store, crm.notifier, caller.org["id"], module, caller.user["id"], ids)
        return batch_response("data", results, 200)


@bp.delete("/<module>/<record_id>")
def delete_record(module: str, record_id: str) -> Any:
    spec = module_spec(module)
    with api_call(("modules", spec["scope"]), "DELETE") as caller:
        crm = current()
        results = records.delete(crm.store, crm.notifier, caller.org["id"], module, caller.user["id"], [record_id])
        return batch_response("data", results, 200)


@bp.get("/<module>/deleted")
def deleted_records(module: str) -> Any:
    spec = module_spec(module)
    with api_call(("modules", spec["scope"]), "READ") as caller:
        kind = request.args.get("type") or "all"
        if kind not in ("all", "recycle", "permanent"):
            raise CrmError(400, "INVALID_DATA", "invalid data",
                           {"param_name": "type", "supported_values": ["all", "recycle", "permanent"]})
        per_page = int_arg("per_page", MAX_PER_PAGE, MAX_PER_PAGE)
        page = int_arg("page", 1)
        since = if_modified_since()
        store = current().store
        with store.lock:
            entries = records.visible_deleted(store, caller.org["id"], module, kind)
            if since is not None:
                entries = [e for e in entries if int(e["deleted_time"]) > since]
            chunk = entries[(page - 1) * per_page: page * per_page]
            if not chunk:
                return no_content(304 if since is not None else 204)
            data = [records.deleted_json(store, caller.org["id"], e) for e in chunk]
        return jsonify({"data": data, "info": {"per_page": per_page, "count": len(chunk), "page": page,
                                               "more_records": len(entries) > page * per_page}})


