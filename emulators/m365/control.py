"""Control surface (/__emulator/...): what people do in Outlook and the admin portals, plus test knobs.

Never used by the product's code. Not throttled or counted. Outlook-side edits go through the
same domain functions as Graph, so deltas and notifications fire for them too.
"""

from __future__ import annotations

import re

from flask import Blueprint, Response, json, jsonify, request
from markupsafe import escape

from .errors import GraphError
from .graph import contacts, delta, events, mailbox_seed
from .graph.mail import render_message
from .runtime import emulator

blueprint = Blueprint("control", __name__, url_prefix="/__emulator")

ENDPOINTS = [
    ("GET", "/__emulator/", "this page"),
    ("GET", "/__emulator/snapshot", "whole state as JSON (tenants, users, apps, consents, mailboxes, subscriptions)"),
    ("POST", "/__emulator/reset", "back to the seed"),
    ("POST", "/__emulator/seed", "body {\"mode\": \"replace\"|\"merge\", \"seed\": {...}} (same format as seed/demo.json)"),
    ("GET|PUT", "/__emulator/faults", "latency_ms, latency_jitter_ms, rate_429, rate_503, rate_504, retry_after_seconds, "
     "mailbox_concurrency, mailbox_requests_per_10_minutes, notification_duplicate_rate, notification_drop_rate, "
     "consent_replication_seconds (a new consent's app-only token refused as AADSTS700016 that long), seed, "
     "per_mailbox {upn: {...}}"),
    ("GET", "/__emulator/counters", "per mailbox: total, concurrentPeak, throttled429; plus totals (requests, httpRequests)"),
    ("POST", "/__emulator/counters/reset", "zero the counters"),
    ("POST", "/__emulator/apps", "register or extend an app: clientId, clientSecrets, redirectUris, requiredApplicationPermissions, ..."),
    ("POST|DELETE", "/__emulator/consents", "grant (tenantId, clientId, kind admin|user, userId, scopes, appRoles) or revoke (?tenantId&clientId)"),
    ("GET", "/__emulator/mailbox/{upn}", "the mailbox as Outlook would show it"),
    ("GET", "/__emulator/mailbox/{upn}/snapshot", "that mailbox's part of the snapshot, as JSON"),
    ("POST", "/__emulator/mailbox/{upn}/calendars", "create a calendar as the user"),
    ("DELETE", "/__emulator/mailbox/{upn}/calendars/{id}", "delete a calendar (and its events) as the user"),
    ("POST", "/__emulator/mailbox/{upn}/calendars/{id}/events", "create an event as the user (Graph event JSON)"),
    ("PATCH|DELETE", "/__emulator/mailbox/{upn}/events/{id}", "change or delete an event as the user"),
    ("POST", "/__emulator/mailbox/{upn}/contactFolders", "create a contact folder as the user"),
    ("DELETE", "/__emulator/mailbox/{upn}/contactFolders/{id}", "delete a contact folder (and its contacts)"),
    ("POST", "/__emulator/mailbox/{upn}/contactFolders/{id}/contacts", "create a contact as the user"),
    ("PATCH|DELETE", "/__emulator/mailbox/{upn}/contacts/{id}", "change or delete a contact as the user"),
    ("POST", "/__emulator/mailbox/{upn}/{events|contacts}/delete", "select many and delete at once: body {\"ids\": [...]}"),
    ("POST", "/__emulator/delta/expire", "evict delta tokens (body {\"upn\": ...} or all) -> next use answers 410 syncStateNotFound"),
    ("GET", "/__emulator/notifications", "delivery log of change and lifecycle notifications"),
    ("POST", "/__emulator/subscriptions/{id}/lifecycle", "send {\"lifecycleEvent\": reauthorizationRequired|subscriptionRemoved|missed}"),
]


def _body() -> dict:
    data = request.get_json(silent=True)
    if not isinstance(data, dict):
        raise GraphError(400, "BadRequest", "A JSON object body is required.")
    return data


def _mailbox(upn: str):
    store = emulator().store
    user = store.find_user(upn)
    if user is None or user["id"] not in store.mailboxes:
        raise GraphError(404, "ErrorInvalidUser", f"The requested user '{upn}' is invalid.")
    return store.mailboxes[user["id"]]


@blueprint.get("/")
def index():
    rows = "".join(f"<tr><td>{escape(m)}</td><td><code>{escape(p)}</code></td><td>{escape(d)}</td></tr>" for m, p, d in ENDPOINTS)
    store = emulator().store
    with store.lock:
        boxes = "".join(f"<li><a href='/__emulator/mailbox/{escape(u['userPrincipalName'])}'>{escape(u['displayName'])}</a> "
                        f"({escape(u['userPrincipalName'])})</li>" for u in store.users.values() if u["id"] in store.mailboxes)
    return Response(f"<!doctype html><html><head><meta charset='utf-8'><title>M365 emulator</title></head><body>"
                    f"<h1>Microsoft 365 emulator: control surface</h1><table border=1 cellpadding=4>{rows}</table>"
                    f"<h2>Mailboxes</h2><ul>{boxes}</ul></body></html>", mimetype="text/html")


@blueprint.get("/snapshot")
def snapshot():
    return jsonify(emulator().store.snapshot())


@blueprint.post("/reset")
def reset():
    emulator().store.reset()
    return jsonify({"reset": True})


@blueprint.post("/seed")
def seed():
    body = _body()
    payload = body.get("seed", body)
    if body.get("mode", "replace") == "merge":
        emulator().store.merge_seed(payload)
    else:
        emulator().store.replace_seed(payload)
    return jsonify({"seeded": True, "mode": body.get("mode", "replace")})


@blueprint.route("/faults", methods=["GET", "PUT"])
def faults():
    throttle = emulator().throttle
    if request.method == "PUT":
        try:
            throttle.update_settings(_body())
        except (ValueError, TypeError) as exc:
            raise GraphError(400, "BadRequest", str(exc)) from None
    return jsonify(throttle.settings.as_dict())


@blueprint.get("/counters")
def counters():
    return jsonify(emulator().throttle.snapshot())


@blueprint.post("/counters/reset")
def counters_reset():
    emulator().throttle.reset_counters()
    return jsonify(emulator().throttle.snapshot())


@blueprint.post("/apps")
def register_app():
    return jsonify(emulator().store.register_app(_body())), 201


@blueprint.route("/application-access-policies", methods=["GET", "PUT"])
def application_access_policies():
    """New-ApplicationAccessPolicy, as a list: ``{"policies": [{"tenantId", "appId", "accessRight":
    "RestrictAccess"|"DenyAccess", "mailboxes": [user id or address, ...]}]}`` (PUT replaces them all)."""
    store = emulator().store
    if request.method == "PUT":
        policies = _body().get("policies")
        if not isinstance(policies, list) or not all(
            isinstance(p, dict) and p.get("accessRight") in ("RestrictAccess", "DenyAccess") and isinstance(p.get("mailboxes"), list)
            and p.get("tenantId") and p.get("appId") for p in policies
        ):
            raise GraphError(400, "BadRequest", "policies: [{tenantId, appId, accessRight, mailboxes}]")
        with store.lock:
            store.access_policies[:] = [dict(p) for p in policies]
    return jsonify({"policies": store.access_policies})


@blueprint.route("/consents", methods=["POST", "DELETE"])
def consents():
    store = emulator().store
    if request.method == "DELETE":
        with store.lock:
            before = len(store.consents)
            store.consents[:] = [c for c in store.consents if not (c["tenantId"] == request.args.get("tenantId")
                                                                 and c["clientId"] == request.args.get("clientId"))]
            return jsonify({"removed": before - len(store.consents)})
    body = _body()
    app = store.apps.get(body.get("clientId", ""))
    if app is None or body.get("tenantId") not in store.tenants:
        raise GraphError(400, "BadRequest", "Unknown clientId or tenantId.")
    kind = body.get("kind", "admin")
    record = store.grant_consent(
        body["tenantId"], app["clientId"], kind, body.get("scopes", app["requiredDelegatedScopes"]),
        user_id=body.get("userId"), app_roles=body.get("appRoles", app["requiredApplicationPermissions"] if kind == "admin" else []),
    )
    return jsonify(record), 201


# ---- Outlook-side actions ----------------------------------------------------------------
@blueprint.post("/mailbox/<upn>/calendars")
def outlook_create_calendar(upn: str):
    box = _mailbox(upn)
    store = emulator().store
    return jsonify(events.render_calendar(store, box, events.create_calendar(store, box, _body()))), 201


@blueprint.delete("/mailbox/<upn>/calendars/<calendar_id>")
def outlook_delete_calendar(upn: str, calendar_id: str):
    events.delete_calendar(emulator().store, _mailbox(upn), calendar_id)
    return Response(status=204)


@blueprint.post("/mailbox/<upn>/calendars/<calendar_id>/events")
def outlook_create_event(upn: str, calendar_id: str):
    box = _mailbox(upn)
    store = emulator().store
    record, _ = events.create_event(store, box, calendar_id, _body())
    return jsonify(events.render_event(store, box, record)), 201


@blueprint.route("/mailbox/<upn>/events/<event_id>", methods=["PATCH", "DELETE"])
def outlook_change_event(upn: str, event_id: str):
    box = _mailbox(upn)
    store = emulator().store
    if request.method == "DELETE":
        events.delete_event(store, box, event_id)
        return Response(status=204)
    events.update_event(store, box, event_id, _body())
    record, day = events.find_event(box, event_id)
    return jsonify(events.render_event(store, box, record, day))


@blueprint.post("/mailbox/<upn>/contactFolders")
def outlook_create_folder(upn: str):
    return jsonify(contacts.render_folder(contacts.create_folder(emulator().store, _mailbox(upn), _body()))), 201


@blueprint.delete("/mailbox/<upn>/contactFolders/<folder_id>")
def outlook_delete_folder(upn: str, folder_id: str):
    contacts.delete_folder(emulator().store, _mailbox(upn), folder_id)
    return Response(status=204)


@blueprint.post("/mailbox/<upn>/contactFolders/<folder_id>/contacts")
def outlook_create_contact(upn: str, folder_id: str):
    return jsonify(contacts.render_contact(contacts.create_contact(emulator().store, _mailbox(upn), folder_id, _body()))), 201


@blueprint.post("/mailbox/<upn>/<collection>/delete")
def outlook_delete_many(upn: str, collection: str):
    """A person selects many items and presses Delete: every deletion lands at once (one
    hold of the store's lock), as Outlook's multi-select does, before any reader sees some."""
    box = _mailbox(upn)
    store = emulator().store
    ids = _body().get("ids")
    if collection not in ("events", "contacts") or not isinstance(ids, list):
        raise GraphError(400, "BadRequest", "POST /mailbox/{upn}/events|contacts/delete with {\"ids\": [...]}")
    with store.lock:
        for item_id in ids:
            if collection == "events":
                events.delete_event(store, box, str(item_id))
            else:
                contacts.delete_contact(store, box, str(item_id))
    return Response(status=204)


@blueprint.route("/mailbox/<upn>/contacts/<contact_id>", methods=["PATCH", "DELETE"])
def outlook_change_contact(upn: str, contact_id: str):
    box = _mailbox(upn)
    if request.method == "DELETE":
        contacts.delete_contact(emulator().store, box, contact_id)
        return Response(status=204)
    return jsonify(contacts.render_contact(contacts.update_contact(emulator().store, box, contact_id, _body())))


@blueprint.post("/mailbox/<upn>/<collection>/<item_id>/move")
def outlook_move(upn: str, collection: str, item_id: str):
    """Outlook's drag to another calendar or folder (``destinationId``; absent: the default one)."""
    box = _mailbox(upn)
    store = emulator().store
    destination = _body().get("destinationId")
    if collection == "events":
        return jsonify(events.render_event(store, box, events.move_event(store, box, item_id, destination)))
    if collection == "contacts":
        return jsonify(contacts.render_contact(contacts.move_contact(store, box, item_id, destination)))
    raise GraphError(400, "BadRequest", "POST /mailbox/{upn}/events|contacts/{id}/move")


@blueprint.post("/delta/expire")
def delta_expire():
    body = request.get_json(silent=True) or {}
    user_id = None
    if body.get("upn"):
        user_id = _mailbox(body["upn"]).user_id
    return jsonify({"expired": delta.expire_all(emulator().store, user_id)})


@blueprint.get("/notifications")
def notifications():
    notifier = emulator().notifier
    with emulator().store.lock:
        return jsonify({"value": list(notifier.log)})


@blueprint.post("/subscriptions/<sub_id>/lifecycle")
def lifecycle(sub_id: str):
    store = emulator().store
    event = _body().get("lifecycleEvent")
    if event not in ("reauthorizationRequired", "subscriptionRemoved", "missed"):
        raise GraphError(400, "BadRequest", "lifecycleEvent must be reauthorizationRequired, subscriptionRemoved or missed.")
    with store.lock:
        sub = store.subscriptions.get(sub_id)
        if sub is None:
            raise GraphError(404, "ResourceNotFound", f"Subscription '{sub_id}' does not exist.")
        if event == "subscriptionRemoved":
            del store.subscriptions[sub_id]
    emulator().notifier.lifecycle(sub, event)
    return jsonify({"sent": event, "subscriptionId": sub_id})


# ---- the Outlook-like page ---------------------------------------------------------------
def _linkify(html: str) -> str:
    """Received mail as safe HTML: anchors and bare URLs stay clickable, every other tag is dropped."""
    out, last = [], 0
    anchor = re.compile(r"""<a\s[^>]*href\s*=\s*["']([^"']+)["'][^>]*>(.*?)</a>""", re.I | re.S)
    for match in anchor.finditer(html):
        out.append(_text_with_links(html[last:match.start()]))
        href, label = match.group(1), re.sub(r"<[^>]+>", "", match.group(2)).strip() or match.group(1)
        if href.startswith(("http://", "https://")):
            out.append(f"<a href='{escape(href)}'>{escape(label)}</a>")
        else:
            out.append(str(escape(label)))
        last = match.end()
    out.append(_text_with_links(html[last:]))
    return "".join(out)


def _text_with_links(html: str) -> str:
    parts = re.split(r'(https?://[^\s"<>]+)', re.sub(r"<[^>]+>", " ", html))
    return "".join(f"<a href='{escape(p)}'>{escape(p)}</a>" if p.startswith(("http://", "https://")) else str(escape(p)) for p in parts)


def _outside_mailbox_page(address: str):
    """What an address outside the seeded tenants received (another provider's mailbox)."""
    store = emulator().store
    with store.lock:
        received = [render_message({**m, "changeKey": "outside", "isRead": False})
                    for m in store.outside_mail.get(address.lower(), [])]
    mail_html = "".join(
        f"<article class='message'><h3>{escape(m['subject'])}</h3><p class='from'>From: {escape(m['from']['emailAddress']['name'])} "
        f"&lt;{escape(m['from']['emailAddress']['address'])}&gt;</p><div class='body'>{_linkify(m['body']['content'])}</div></article>"
        for m in reversed(received))
    page = (f"<!doctype html><html><head><meta charset='utf-8'><title>Mailbox — {escape(address)}</title></head><body>"
            f"<header><h1>Mail received elsewhere — {escape(address)}</h1></header>"
            f"<div><h2>Inbox</h2>{mail_html or '<p>No messages</p>'}</div></body></html>")
    return Response(page, mimetype="text/html")


@blueprint.get("/mailbox/<upn>/snapshot")
def mailbox_snapshot(upn: str):
    box = _mailbox(upn)
    store = emulator().store
    with store.lock:
        return Response(json.dumps(mailbox_seed.snapshot(store, box), default=str), mimetype="application/json")


@blueprint.get("/mailbox/<upn>")
def mailbox_page(upn: str):
    store = emulator().store
    if store.find_user(upn) is None and "@" in upn:
        return _outside_mailbox_page(upn)
    box = _mailbox(upn)
    store = emulator().store
    with store.lock:
        user = store.users[box.user_id]
        snap = json.loads(json.dumps(mailbox_seed.snapshot(store, box), default=str))
    cal_html = ""
    for calendar in snap["calendars"]:
        rows = "".join(
            f"<li data-event-id='{escape(e['id'])}'><strong>{escape(e['subject'])}</strong> — {escape(e['start']['dateTime'][:16])} "
            f"to {escape(e['end']['dateTime'][:16])} {escape(e['start']['timeZone'])}"
            f"{' (all day)' if e['isAllDay'] else ''}{' [series]' if e['type'] == 'seriesMaster' else ''}"
            f" · {escape((e.get('location') or {}).get('displayName') or '')}</li>"
            for e in sorted(calendar["events"], key=lambda e: e["start"]["dateTime"]))
        cal_html += f"<section class='calendar'><h3>{escape(calendar['name'])}</h3><ul>{rows or '<li>No events</li>'}</ul></section>"
    folder_html = ""
    for folder in snap["contactFolders"]:
        rows = "".join(
            f"<li data-contact-id='{escape(c['id'])}'><strong>{escape(c.get('displayName') or '')}</strong> "
            f"{escape(', '.join(a.get('address', '') for a in c.get('emailAddresses') or []))} {escape(c.get('companyName') or '')}</li>"
            for c in folder["contacts"])
        folder_html += f"<section class='folder'><h3>{escape(folder['displayName'])}</h3><ul>{rows or '<li>No contacts</li>'}</ul></section>"
    inbox = [m for m in snap["messages"] if m["parentFolderId"] == "inbox"]
    mail_html = "".join(
        f"<article class='message'><h3>{escape(m['subject'])}</h3><p class='from'>From: {escape(m['from']['emailAddress']['name'])} "
        f"&lt;{escape(m['from']['emailAddress']['address'])}&gt; · {escape(m['receivedDateTime'])}</p>"
        f"<div class='body'>{_linkify(m['body']['content']) if m['body']['contentType'] == 'html' else _linkify(m['body']['content'])}</div></article>"
        for m in inbox)
    page = (f"<!doctype html><html><head><meta charset='utf-8'><title>Outlook — {escape(user['displayName'])}</title>"
            "<style>body{font-family:'Segoe UI',sans-serif;margin:0;display:grid;grid-template-columns:1fr 1fr 1.4fr;gap:16px;padding:16px}"
            "header{grid-column:1/-1;background:#0f6cbd;color:#fff;padding:8px 16px}section,article{border:1px solid #ddd;padding:8px;margin-bottom:8px}"
            "</style></head><body>"
            f"<header><h1>Outlook (emulated) — {escape(user['displayName'])} &lt;{escape(user['userPrincipalName'])}&gt;</h1></header>"
            f"<div><h2>Calendars</h2>{cal_html}</div><div><h2>Contacts</h2>{folder_html}</div>"
            f"<div><h2>Inbox</h2>{mail_html or '<p>No messages</p>'}</div></body></html>")
    return Response(page, mimetype="text/html")
