"""The control surface under /__emulator/: what tests, benchmarks and the demo do that the product never does.

It stands in for people acting in the CRM's own UI (create one record, import, data migration,
mass update, delete), for inspecting and resetting state, and for latency and fault settings.
Control calls are neither throttled nor counted.
"""

from __future__ import annotations

from html import escape
from typing import Any

from flask import Blueprint, Response, jsonify, make_response, request

from . import datacentres, directory, records, seeding
from .errors import CrmError
from .runtime import current

bp = Blueprint("control", __name__)

ACTIONS = {"create": "Manual", "import": "Import", "migration": "Migration"}


def _body() -> dict[str, Any]:
    body = request.get_json(silent=True)
    if not isinstance(body, dict):
        raise CrmError(400, "INVALID_DATA", "the body must be a JSON object")
    return body


def _actor(store: Any, ref: Any) -> dict[str, Any]:
    """A person, by CRM user id or e-mail (their first active membership)."""
    user = store.users.get(str(ref))
    if user is None:
        user = next((u for u in store.users.values() if u["email"].lower() == str(ref).lower()
                     and u["status"] == "active"), None)
    if user is None:
        raise CrmError(404, "NOT_FOUND", f"no active CRM user {ref!r}")
    return user


def _module(body: dict[str, Any]) -> str:
    module = body.get("module")
    if module not in records.MODULES:
        raise CrmError(400, "INVALID_MODULE", "module must be Contacts or Events", {"supported_values": list(records.MODULES)})
    return module


@bp.get("/")
def index() -> Response:
    crm = current()
    with crm.store.lock:
        homes = "".join(
            f"<li>{escape(o['company_name'])} ({o['edition']}, {o['dc']}): "
            f"<a href='/{o['dc']}/crm/home'>/{o['dc']}/crm/home</a></li>" for o in crm.store.orgs.values())
    doc = "".join(f"<tr><td><code>{escape(m)}</code></td><td><code>{escape(p)}</code></td><td>{escape(d)}</td></tr>"
                  for m, p, d in ENDPOINTS)
    html = (f"<!doctype html><html lang=en><head><meta charset=utf-8><title>CRM emulator</title></head><body>"
            f"<h1>CRM emulator (Zoho Accounts + CRM API v8)</h1><p>Base URL {escape(crm.base_url)}. "
            f"Accounts servers: {', '.join(f'/{dc}/accounts' for dc in datacentres.DATA_CENTRES)}; API domains: "
            f"{', '.join(f'/{dc}/api' for dc in datacentres.DATA_CENTRES)}.</p>"
            f"<h2>CRM home pages</h2><ul>{homes}</ul><h2>Control endpoints</h2>"
            f"<table border=1 cellpadding=4><tr><th>Method</th><th>Path</th><th>What</th></tr>{doc}</table>"
            f"<p>See emulators/crm/README.md for request and response shapes.</p></body></html>")
    return make_response(html, 200, {"Content-Type": "text/html; charset=utf-8"})


ENDPOINTS = [
    ("GET", "/__emulator/", "this page"),
    ("GET", "/__emulator/snapshot", "the whole state as JSON"),
    ("GET", "/__emulator/records/<module>?actor=<user id or e-mail>", "the records of that person's org (one org of the snapshot)"),
    ("POST", "/__emulator/reset", "back to the seed the emulator started with (?empty=1 for nothing)"),
    ("POST", "/__emulator/seed", "replace the state with the posted seed JSON"),
    ("POST", "/__emulator/clients", "register or extend an OAuth client {client_id, client_secret, name, redirect_uris, first_party}"),
    ("GET|PUT", "/__emulator/faults", "latency_ms, rate_429/500/503, callback_drop_rate, fail_next, orgs{id:{..., concurrency, daily_credits, hold_next}}; held"),
    ("POST", "/__emulator/faults/release", "let every call stopped by hold_next go on"),
    ("GET|PUT", "/__emulator/setup-menu", "the CRM home's Setup menu entries {items: [{section, label, url}]} (kept across resets)"),
    ("GET", "/__emulator/counters", "per org: total, concurrent_peak, throttled_429, credits_used, faults_injected; totals"),
    ("POST", "/__emulator/counters/reset", "zero the counters"),
    ("GET|POST", "/__emulator/clock", "offset of the emulator clock; POST {advance_seconds}"),
    ("POST", "/__emulator/actions/create", "a person creates one record {actor, module, record, data_source?=Manual}"),
    ("POST", "/__emulator/actions/import", "a person imports a batch {actor, module, records} (Data_Source Import)"),
    ("POST", "/__emulator/actions/migration", "data migration {actor, module, records} (Data_Source Migration)"),
    ("POST", "/__emulator/actions/mass-update", "mass update {actor, module, ids, values} (Data_Source Mass Update)"),
    ("POST", "/__emulator/actions/delete", "a person deletes records {actor, module, ids}"),
    ("POST", "/__emulator/actions/empty-recycle-bin", "{actor, module}: recycle-bin entries become permanent"),
    ("POST", "/__emulator/actions/generate", "bulk-create {actor, module, count, data_source?=API, values?={}, notify?=false}"),
    ("POST", "/__emulator/users/<id>/accept", "the person accepts the CRM invitation {password?}"),
    ("GET", "/__emulator/deliveries", "log of watch callbacks sent (status, attempts)"),
]


@bp.get("/records/<module>")
def org_records(module: str) -> Any:
    store = current().store
    _module({"module": module})
    with store.lock:
        oid = _actor(store, request.args.get("actor", ""))["org_id"]
        return jsonify([records.record_json(store, oid, module, r) for r in store.module_records(oid, module).values()])


@bp.get("/snapshot")
def snapshot() -> Any:
    store = current().store
    with store.lock:
        orgs = []
        for org in store.orgs.values():
            oid = org["id"]
            orgs.append({
                **{k: v for k, v in org.items()},
                "users": [{**directory.user_json(store, u), "internal_status": u["status"]}
                          for u in store.org_users(oid)],
                "profiles": [directory.profile_json(store, p, True) for p in store.profiles.values() if p["org_id"] == oid],
                "records": {m: [records.record_json(store, oid, m, r) for r in store.module_records(oid, m).values()]
                            for m in records.MODULES},
                "deleted": {m: [records.deleted_json(store, oid, e) for e in store.deleted[oid][m]]
                            for m in records.MODULES},
                "watch_channels": [{**c, "expiry": store.org_time(oid, c["expiry"]), "expired": c["expiry"] <= store.now()}
                                   for c in store.channels.get(oid, {}).values()],
            })
        return jsonify({
            "clock_offset_seconds": store.clock.offset,
            "clients": [{**{k: v for k, v in c.items() if k != "client_secret"}} for c in store.clients.values()],
            "accounts": [{k: v for k, v in a.items() if k != "password"} | {"password_set": bool(a.get("password"))}
                         for a in store.accounts.values()],
            "orgs": orgs,
            "tokens": {
                # recent_refreshes: access tokens asked in Zoho's 10-minute window (at most 10)
                "refresh": [{**{k: v for k, v in t.items() if k not in ("requests",)}, "recent_refreshes": len(t["requests"])}
                            for t in store.refresh_tokens.values()],
                "access": list(store.access_tokens.values()),
            },
            "deliveries": list(store.deliveries),
        })


@bp.post("/reset")
def reset() -> Any:
    crm = current()
    crm.clock.reset()
    if request.args.get("empty") or crm.seed_data is None:
        crm.store.clear()
    else:
        seeding.load(crm.store, crm.seed_data)
    crm.limits.reset_counters()
    crm.limits.reset_faults()
    crm.limits.release()
    return jsonify({"status": "reset"})


@bp.post("/seed")
def seed() -> Any:
    crm = current()
    body = _body()
    try:
        seeding.load(crm.store, body)
    except (KeyError, ValueError, directory.DirectoryError) as exc:
        raise CrmError(400, "INVALID_DATA", f"bad seed: {exc}") from None
    crm.seed_data = body
    crm.limits.reset_counters()
    return jsonify({"status": "seeded", "orgs": [{"id": o["id"], "company_name": o["company_name"]}
                                                 for o in crm.store.orgs.values()]})


@bp.post("/clients")
def register_client() -> Any:
    body = _body()
    if not body.get("client_id"):
        raise CrmError(400, "MANDATORY_NOT_FOUND", "client_id is required")
    store = current().store
    with store.lock:
        client = seeding.register_client(store, body)
    return jsonify({k: v for k, v in client.items() if k != "client_secret"})


@bp.route("/faults", methods=["GET", "PUT"])
def faults() -> Any:
    limits = current().limits
    if request.method == "PUT":
        return jsonify(limits.set_faults(_body()))
    return jsonify(limits.snapshot_faults())


@bp.route("/setup-menu", methods=["GET", "PUT"])
def setup_menu() -> Any:
    crm = current()
    if request.method == "PUT":
        items = _body().get("items")
        fields = ("section", "label", "url")
        if not isinstance(items, list) or not all(
                isinstance(i, dict) and all(isinstance(i.get(f), str) and i.get(f) for f in fields) for i in items):
            raise CrmError(400, "INVALID_DATA", "items must be a list of {section, label, url}")
        if not all(i["url"].startswith(("http://", "https://")) for i in items):
            raise CrmError(400, "INVALID_DATA", "each url must be http or https")
        crm.setup_menu = [{f: i[f] for f in fields} for i in items]
    return jsonify({"items": crm.setup_menu})


@bp.post("/faults/release")
def faults_release() -> Any:
    return jsonify({"released": current().limits.release()})


@bp.get("/counters")
def counters() -> Any:
    return jsonify(current().limits.counters_json())


@bp.post("/counters/reset")
def counters_reset() -> Any:
    current().limits.reset_counters()
    return jsonify({"status": "reset"})


@bp.route("/clock", methods=["GET", "POST"])
def clock() -> Any:
    crm = current()
    if request.method == "POST":
        crm.clock.advance(float(_body().get("advance_seconds", 0)))
    return jsonify({"offset_seconds": crm.clock.offset, "now": crm.clock.now()})


def _person_batch(data_source: str, many: bool) -> Any:
    body = _body()
    module = _module(body)
    crm = current()
    store = crm.store
    with store.lock:
        actor = _actor(store, body.get("actor"))
    items = body.get("records") if many else [body.get("record")]
    if not isinstance(items, list) or not items:
        raise CrmError(400, "MANDATORY_NOT_FOUND", "records are required")
    results = records.insert(store, crm.notifier, actor["org_id"], module, actor["id"], items,
                             body.get("data_source") or data_source)
    return jsonify({"data": results})


@bp.post("/actions/create")
def action_create() -> Any:
    return _person_batch("Manual", many=False)


@bp.post("/actions/import")
def action_import() -> Any:
    return _person_batch("Import", many=True)


@bp.post("/actions/migration")
def action_migration() -> Any:
    return _person_batch("Migration", many=True)


@bp.post("/actions/mass-update")
def action_mass_update() -> Any:
    body = _body()
    module = _module(body)
    values = body.get("values")
    ids = body.get("ids")
    if not isinstance(values, dict) or not values or not isinstance(ids, list) or not ids:
        raise CrmError(400, "MANDATORY_NOT_FOUND", "ids and values are required")
    crm = current()
    with crm.store.lock:
        actor = _actor(crm.store, body.get("actor"))
    items = [{**values, "id": str(i)} for i in ids]
    results = records.update(crm.store, crm.notifier, actor["org_id"], module, actor["id"], items, "Mass Update")
    return jsonify({"data": results})


@bp.post("/actions/delete")
def action_delete() -> Any:
    body = _body()
    module = _module(body)
    crm = current()
    with crm.store.lock:
        actor = _actor(crm.store, body.get("actor"))
    ids = [str(i) for i in body.get("ids") or []]
    return jsonify({"data": records.delete(crm.store, crm.notifier, actor["org_id"], module, actor["id"], ids)})


@bp.post("/actions/empty-recycle-bin")
def action_empty_recycle_bin() -> Any:
    body = _body()
    module = _module(body)
    store = current().store
    with store.lock:
        actor = _actor(store, body.get("actor"))
    return jsonify({"made_permanent": records.empty_recycle_bin(store, actor["org_id"], module)})


@bp.post("/actions/generate")
def action_generate() -> Any:
    """Bulk-create N plausible records for one owner, fast (no per-record validation)."""
    body = _body()
    module = _module(body)
    count = int(body.get("count", 0))
    if not 0 < count <= 200_000:
        raise CrmError(400, "INVALID_DATA", "count must be between 1 and 200000")
    crm = current()
    store = crm.store
    source = body.get("data_source") or "API"
    ids = []
    with store.lock:
        actor = _actor(store, body.get("actor"))
        org = store.orgs[actor["org_id"]]
        start = store.now()
        for n in range(count):
            if module == "Contacts":
                fields = {"First_Name": f"Gen{n}", "Last_Name": f"Contact {n:06d}",
                          "Email": f"gen{n}.{actor['id'][-6:]}@generated.example", "Phone": f"+1 555 {n:07d}"}
            else:
                begin = start + (n - count // 2) * 3600
                fields = {"Event_Title": f"Generated meeting {n:06d}",
                          "Start_DateTime": store.org_time(org["id"], begin),
                          "End_DateTime": store.org_time(org["id"], begin + 1800), "All_day": False}
            fields.update(body.get("values") or {})  # the same extra values on every record
            ids.append(records.create_record(store, org["id"], module, actor["id"], fields, source)["id"])
    if body.get("notify"):
        crm.notifier.changed(org["id"], module, "insert", ids, {})
    return jsonify({"created": len(ids), "first_id": ids[0], "last_id": ids[-1]})


@bp.post("/users/<user_id>/accept")
def accept_invitation(user_id: str) -> Any:
    body = request.get_json(silent=True) or {}
    store = current().store
    with store.lock:
        if user_id not in store.users:
            raise CrmError(404, "NOT_FOUND", "no such user")
        user = directory.confirm_user(store, user_id, body.get("password"))
        return jsonify(directory.user_json(store, user))


@bp.get("/deliveries")
def deliveries() -> Any:
    store = current().store
    with store.lock:
        return jsonify({"deliveries": list(store.deliveries)})
