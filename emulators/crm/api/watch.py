"""CRM API v8 notifications: enable, list, update, replace and disable watch channels."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, jsonify, request

from .. import datacentres, records
from ..errors import CrmError, error_item, required_param
from ..runtime import current
from ..store import parse_time
from .access import Caller, api_call
from .common import batch_response, bind_dc, int_arg, json_body, no_content, require_items

bp = Blueprint("crm_watch", __name__)
bp.url_value_preprocessor(bind_dc)

MAX_CHANNELS_PER_CALL = 50
MAX_EVENTS = 50
MAX_TOKEN = 50
MAX_URL = 255
WEEK = 7 * 86400
DEFAULT_EXPIRY = 3600
OPERATIONS = ("create", "edit", "delete", "all")


def _path(index: int, name: str) -> dict[str, str]:
    return {"api_name": name, "json_path": f"$.watch[{index}].{name}"}


def _check_events(events: Any, index: int) -> dict | None:
    if not isinstance(events, list) or not events:
        return error_item("MANDATORY_NOT_FOUND", "required field not found", _path(index, "events"))
    if len(events) > MAX_EVENTS:
        return error_item("LIMIT_EXCEEDED", "the events limit exceeded", {**_path(index, "events"), "limit": MAX_EVENTS})
    for event in events:
        module, _, operation = str(event).partition(".")
        if module not in records.MODULES or operation not in OPERATIONS:
            return error_item("INVALID_DATA", "invalid data", {**_path(index, "events"),
                              "supported_values": [f"{m}.{o}" for m in records.MODULES for o in OPERATIONS]})
    return None


def _expiry(value: Any, index: int, now: float) -> tuple[float | None, dict | None]:
    """Omitted or more than a week ahead gives the default hour (v7/v8 rule)."""
    if value in (None, ""):
        return now + DEFAULT_EXPIRY, None
    when = parse_time(value)
    if when is None or when <= now:
        return None, error_item("INVALID_DATA", "invalid data",
                                {**_path(index, "channel_expiry"), "expected_data_type": "datetime"})
    return (now + DEFAULT_EXPIRY if when - now > WEEK else when), None


def _check_scalars(item: dict[str, Any], index: int) -> dict | None:
    url = item.get("notify_url")
    if "notify_url" in item and not (isinstance(url, str) and url.startswith(("http://", "https://"))
                                     and len(url) <= MAX_URL):
        return error_item("INVALID_DATA", "invalid data", {**_path(index, "notify_url"), "maximum_length": str(MAX_URL)})
    token = item.get("token")
    if token is not None and (not isinstance(token, str) or len(token) > MAX_TOKEN):
        return error_item("INVALID_DATA", "invalid data", {**_path(index, "token"), "maximum_length": str(MAX_TOKEN)})
    return None


def _channel_key(value: Any) -> str | None:
    text = str(value) if isinstance(value, int | str) and not isinstance(value, bool) else ""
    return text if text.isdigit() else None


def _events_details(caller: Caller, channel: dict[str, Any]) -> list[dict[str, Any]]:
    store = current().store
    modules = list(dict.fromkeys(e.split(".")[0] for e in channel["events"]))
    return [{"channel_expiry": store.org_time(caller.org["id"], channel["expiry"]),
             "resource_uri": f"{datacentres.api_url(current().base_url, caller.org['dc'])}/crm/v8/{m}",
             "resource_id": records.MODULES[m]["module_id"], "resource_name": m, "channel_id": str(channel["channel_id"]),
             "notification_condition": channel.get("notification_condition") or []} for m in modules]


def channel_json(caller: Caller, channel: dict[str, Any]) -> dict[str, Any]:
    first = _events_details(caller, channel)[0]
    return {"channel_id": channel["channel_id"], "events": channel["events"], "notify_url": channel["notify_url"],
            "token": channel.get("token"), "channel_expiry": first["channel_expiry"],
            "resource_uri": first["resource_uri"], "resource_id": first["resource_id"],
            "resource_name": first["resource_name"], "fields": None,
            "notify_on_related_action": channel.get("notify_on_related_action", True),
            "return_affected_field_values": channel.get("return_affected_field_values", False),
            "notification_condition": channel.get("notification_condition") or []}


def _success(caller: Caller, channel: dict[str, Any], message: str) -> dict[str, Any]:
    return {"code": "SUCCESS", "details": {"events": _events_details(caller, channel)}, "message": message,
            "status": "success"}


def _live(store: Any, org_id: str) -> dict[str, dict[str, Any]]:
    now = store.now()
    channels = store.channels.setdefault(org_id, {})
    for key in [k for k, c in channels.items() if c["expiry"] <= now]:
        del channels[key]  # expired channels stop and disappear
    return channels


@bp.post("/actions/watch")
def enable() -> Any:
    body, items = json_body("watch")
    with api_call(("notifications",), "CREATE") as caller:
        items = require_items(body, items, "watch", MAX_CHANNELS_PER_CALL)
        store = current().store
        results = []
        with store.lock:
            channels = _live(store, caller.org["id"])
            for index, item in enumerate(items):
                item = item if isinstance(item, dict) else {}
                problem = None
                for name in ("channel_id", "events", "notify_url"):
                    if item.get(name) in (None, "", []):
                        problem = error_item("MANDATORY_NOT_FOUND", "required field not found", _path(index, name))
                        break
                key = _channel_key(item.get("channel_id"))
                if problem is None and key is None:
                    problem = error_item("INVALID_DATA", "invalid data",
                                         {**_path(index, "channel_id"), "expected_data_type": "long"})
                problem = problem or _check_events(item["events"], index) or _check_scalars(item, index)
                expiry, expiry_problem = _expiry(item.get("channel_expiry"), index, store.now())
                problem = problem or expiry_problem
                if problem:
                    results.append(problem)
                    continue
                channel = {"channel_id": item["channel_id"], "events": list(dict.fromkeys(item["events"])),
                           "notify_url": item["notify_url"], "token": item.get("token"), "expiry": expiry,
                           "return_affected_field_values": bool(item.get("return_affected_field_values", False)),
                           "notify_on_related_action": bool(item.get("notify_on_related_action", True)),
                           "notification_condition": item.get("notification_condition") or [],
                           "created_by": caller.user["id"]}
                channels[key] = channel
                results.append(_success(caller, channel, "Successfully subscribed for actions-watch of the given module"))
        return batch_response("watch", results, 201)


@bp.get("/actions/watch")
def list_channels() -> Any:
    with api_call(("notifications",), "READ") as caller:
        per_page = int_arg("per_page", 200, 200)
        page = int_arg("page", 1)
        wanted_id = request.args.get("channel_id")
        module = request.args.get("module")
        store = current().store
        with store.lock:
            rows = [c for c in _live(store, caller.org["id"]).values()
                    if (not wanted_id or str(c["channel_id"]) == wanted_id)
                    and (not module or any(e.startswith(module + ".") for e in c["events"]))]
            chunk = rows[(page - 1) * per_page: page * per_page]
            if not chunk:
                return no_content()
            data = [channel_json(caller, c) for c in chunk]
        return jsonify({"watch": data, "info": {"per_page": per_page, "page": page, "count": len(chunk),
                                                "more_records": len(rows) > page * per_page}})


def _change(replace: bool) -> Any:
    body, items = json_body("watch")
    with api_call(("notifications",), "UPDATE") as caller:
        items = require_items(body, items, "watch", MAX_CHANNELS_PER_CALL)
        store = current().store
        results = []
        with store.lock:
            channels = _live(store, caller.org["id"])
            for index, item in enumerate(items):
                item = item if isinstance(item, dict) else {}
                key = _channel_key(item.get("channel_id"))
                if key is None:
                    results.append(error_item("MANDATORY_NOT_FOUND", "required field not found",
                                              _path(index, "channel_id")))
                    continue
                channel = channels.get(key)
                if channel is None:
                    results.append(error_item("INVALID_DATA", "the given channel_id is invalid",
                                              _path(index, "channel_id")))
                    continue
                results.append(_apply_change(store, caller, channel, item, index, replace))
            for key in [k for k, c in channels.items() if not c["events"]]:
                del channels[key]
        return batch_response("watch", results, 200)


def _apply_change(store: Any, caller: Caller, channel: dict, item: dict, index: int, replace: bool) -> dict:
    if item.get("_delete_events") is True:
        problem = _check_events(item.get("events"), index)
        if problem:
            return problem
        channel["events"] = [e for e in channel["events"] if e not in item["events"]]
        return {"code": "SUCCESS", "details": {"events": _events_details(caller, channel) if channel["events"] else []},
                "message": "Successfully removed the subscribe details", "status": "success"}
    if replace:
        for name in ("events", "notify_url"):
            if item.get(name) in (None, "", []):
                return error_item("MANDATORY_NOT_FOUND", "required field not found", _path(index, name))
    problem = (_check_events(item["events"], index) if "events" in item else None) or _check_scalars(item, index)
    if problem:
        return problem
    if replace or "channel_expiry" in item:
        expiry, problem = _expiry(item.get("channel_expiry"), index, store.now())
        if problem:
            return problem
        channel["expiry"] = expiry
    if replace:
        # PUT replaces the channel: anything left out is removed.
        channel.update({"token": None, "return_affected_field_values": False, "notify_on_related_action": True,
                        "notification_condition": []})
    for name in ("events", "notify_url", "token", "return_affected_field_values", "notify_on_related_action",
                 "notification_condition"):
        if name in item:
            channel[name] = list(dict.fromkeys(item[name])) if name == "events" else item[name]
    return _success(caller, channel, "Successfully updated the subscribe details")


@bp.patch("/actions/watch")
def update_channels() -> Any:
    return _change(replace=False)


@bp.put("/actions/watch")
def replace_channels() -> Any:
    return _change(replace=True)


@bp.delete("/actions/watch")
def disable() -> Any:
    with api_call(("notifications",), "DELETE") as caller:
        raw = request.args.get("channel_ids")
        if not raw:
            raise required_param("channel_ids")
        ids = [i.strip() for i in raw.split(",") if i.strip()]
        if len(ids) > 100:
            raise CrmError(400, "LIMIT_EXCEEDED", "the channel_ids limit exceeded", {"limit": 100, "param_name": "channel_ids"})
        store = current().store
        results = []
        with store.lock:
            channels = _live(store, caller.org["id"])
            for cid in ids:
                if channels.pop(cid, None) is None:
                    results.append(error_item("INVALID_DATA", "the given channel_id is invalid", {"channel_id": cid}))
                else:
                    results.append({"code": "SUCCESS", "details": {"channel_id": cid},
                                    "message": "Successfully un-subscribed from actions-watch", "status": "success"})
        return batch_response("watch", results, 200)
