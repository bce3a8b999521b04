"""Graph v1.0 routes: users, organization, calendars, events, calendarView, contacts, mail."""

from __future__ import annotations

import datetime as dt
import operator
import re

from flask import Blueprint, Response, g, json, request

from ..errors import GraphError
from ..runtime import emulator
from ..timezones import parse_offset_time, resolve_zone
from . import access, contacts, delta, events, mail
from .directory_search import compile_search
from .odata import (
    EQUALS,
    STARTSWITH,
    apply_select,
    expanded_extended_property_ids,
    extended_property_matcher,
    parse_select,
    parse_top,
)

blueprint = Blueprint("graph", __name__, url_prefix="/v1.0")
OUTLOOK_SEGMENTS = {"calendar", "calendars", "events", "calendarview", "contactfolders", "contacts", "messages",
                    "mailfolders", "sendmail"}
MAILBOX_PATH = re.compile(r"^/v1\.0/(?:users/(?P<ref>[^/]+)|(?P<me>me))/(?P<segment>[^/?]+)", re.IGNORECASE)
USER_DEFAULT_FIELDS = ["businessPhones", "displayName", "givenName", "jobTitle", "mail", "mobilePhone", "officeLocation",
                       "preferredLanguage", "surname", "userPrincipalName", "id"]


# ---- plumbing ---------------------------------------------------------------------
def reply(body: dict | None = None, status: int = 200, headers: dict | None = None) -> Response:
    response = Response(json.dumps(body) if body is not None else b"", status=status,
                        mimetype="application/json" if body is not None else None)
    if body is not None:
        response.headers["Content-Type"] = "application/json; odata.metadata=minimal; odata.streaming=true; IEEE754Compatible=false; charset=utf-8"
    for name, value in (headers or {}).items():
        response.headers[name] = value
    return response


def context_url(fragment: str) -> str:
    return f"{request.host_url}v1.0/$metadata#{fragment}"


def json_body() -> dict:
    if not request.data:
        raise GraphError(400, "BadRequest", "Empty Payload. JSON content expected.")
    try:
        body = json.loads(request.data)
    except ValueError:
        raise GraphError(400, "BadRequest", "Unable to read JSON request payload. Please ensure Content-Type header is set and payload is of valid JSON format.") from None
    if not isinstance(body, dict):
        raise GraphError(400, "BadRequest", "Unable to read JSON request payload.")
    return body


def prefer(name: str) -> str | None:
    for part in request.headers.get("Prefer", "").split(","):
        key, _, value = part.strip().partition("=")
        if key.strip().lower() == name.lower():
            return value.strip().strip('"')
    return None


def zone_preference() -> tuple[str | None, dict]:
    zone = prefer("outlook.timezone")
    if not zone:
        return None, {}
    resolve_zone(zone)
    return zone, {"Preference-Applied": f'outlook.timezone="{zone}"'}


def _text_body(item: dict) -> dict:
    if prefer("outlook.body-content-type") == "text" and item.get("body", {}).get("contentType") == "html":
        item["body"] = {"contentType": "text", "content": re.sub(r"<[^>]+>", "", item["body"]["content"]).strip()}
    return item


@blueprint.before_request
def before() -> None:
    g.client_request_id = request.headers.get("client-request-id")
    claims = access.authenticate()
    match = MAILBOX_PATH.match(request.path)
    if not match or match.group("segment").lower() not in OUTLOOK_SEGMENTS:
        return
    ref = claims.get("oid") if match.group("me") else match.group("ref")
    user = emulator().store.find_user(ref or "", tenant_id=claims["tid"])
    if user is None:
        return
    keys = (user["id"], user["userPrincipalName"].lower())
    throttle = emulator().throttle
    throttle.admit(claims["appid"], user["id"], keys)
    g.throttle_slot = (claims["appid"], user["id"], keys)
    throttle.inject(keys, keys[-1])


@blueprint.teardown_request
def release(_exc) -> None:
    slot = g.pop("throttle_slot", None)
    if slot is not None:
        emulator().throttle.release(*slot)


def route(rule: str, methods: list[str]):
    """Register a mailbox/user route under both /users/{id}/... and /me/..."""
    def wrap(view):
        blueprint.add_url_rule(f"/users/<user_ref>{rule}", view_func=view, methods=methods, endpoint=f"{view.__name__}_users")
        blueprint.add_url_rule(f"/me{rule}", view_func=view, methods=methods, defaults={"user_ref": "me"}, endpoint=f"{view.__name__}_me")
        return view
    return wrap


# ---- users and organization ---------------------------------------------------------
def render_user(user: dict, select: list[str] | None) -> dict:
    full = {
        "id": user["id"], "businessPhones": user.get("businessPhones", []), "displayName": user["displayName"],
        "givenName": user.get("givenName"), "jobTitle": user.get("jobTitle"), "mail": user.get("mail"),
        "mobilePhone": user.get("mobilePhone"), "officeLocation": user.get("officeLocation"),
        "preferredLanguage": user.get("preferredLanguage"), "surname": user.get("surname"),
        "userPrincipalName": user["userPrincipalName"], "accountEnabled": user.get("accountEnabled", True),
        "assignedLicenses": user.get("assignedLicenses", []), "userType": user.get("userType", "Member"),
        "mailNickname": user["userPrincipalName"].split("@")[0], "otherMails": [], "proxyAddresses": [f"SMTP:{user.get('mail')}"] if user.get("mail") else [],
        "usageLocation": user.get("usageLocation", "US"), "createdDateTime": user.get("createdDateTime", "2020-01-01T00:00:00Z"),
    }
    fields = select or USER_DEFAULT_FIELDS
    lower = {f.lower() for f in fields}
    return {k: v for k, v in full.items() if k.lower() in lower}


def _user_filter(raw: str):
    match = STARTSWITH.match(raw.strip())
    if match:
        prop, value = match.group(1), match.group("value").replace("''", "'").lower()
        return lambda u: str(render_user(u, [prop]).get(prop) or "").lower().startswith(value)
    match = EQUALS.match(raw.strip())
    if match:
        prop, value = match.group(1), match.group("value").replace("''", "'").lower()
        return lambda u: str(render_user(u, [prop]).get(prop) or "").lower() == value
    if raw.strip().lower() in ("accountenabled eq true", "accountenabled eq false"):
        wanted = raw.strip().lower().endswith("true")
        return lambda u: bool(u.get("accountEnabled", True)) == wanted
    raise GraphError(400, "Request_UnsupportedQuery", f"Unsupported or invalid query filter clause specified for property of resource 'User': '{raw}'.")


# String properties of a user that $search accepts ("any property that can be used in $filter"); displayName is
# searched by tokens, the others as startsWith (directory_search).
USER_SEARCHABLE = ("displayName", "givenName", "surname", "mail", "userPrincipalName", "mailNickname", "jobTitle",
                   "mobilePhone", "officeLocation", "preferredLanguage", "usageLocation", "userType", "otherMails",
                   "proxyAddresses")


def _matching_users(args) -> list[dict]:
    """The tenant's users that pass $filter AND the whole $search, by id (the caller checked ConsistencyLevel)."""
    store = emulator().store
    with store.lock:
        users = sorted((u for u in store.users.values() if u["tenantId"] == g.claims["tid"]), key=lambda u: u["id"])
    if "$filter" in args:
        users = [u for u in users if _user_filter(args["$filter"])(u)]
    if "$search" in args:
        matches = compile_search(args["$search"], USER_SEARCHABLE)
        users = [u for u in users if matches(render_user(u, list(USER_SEARCHABLE)).get)]
    return users


@blueprint.get("/users")
def list_users():
    access.require("user")
    args = request.args
    select = parse_select(args.get("$select"))
    top = parse_top(args.get("$top"), 100)
    eventual = request.headers.get("ConsistencyLevel", "").lower() == "eventual"
    if "$search" in args and not eventual:
        raise GraphError(400, "Request_UnsupportedQuery", "Request with $search query parameter only works through MSGraph with a "
                         "special request header: 'ConsistencyLevel: eventual'")
    if "$count" in args and not eventual:
        raise GraphError(400, "Request_BadRequest", "$count is not currently supported.")
    users = _matching_users(args)
    if "$orderby" in args:
        prop = args["$orderby"].split()[0]
        users.sort(key=lambda u: str(render_user(u, [prop]).get(prop) or "").lower(), reverse=args["$orderby"].lower().endswith(" desc"))
    skip = int(args.get("$skiptoken", "0") or 0) if (args.get("$skiptoken") or "0").isdigit() else 0
    page = users[skip: skip + top]
    body: dict = {"@odata.context": context_url("users")}
    if args.get("$count") == "true":
        body["@odata.count"] = len(users)
    if skip + top < len(users):
        query = {k: v for k, v in args.items() if k != "$skiptoken"}
        query["$skiptoken"] = str(skip + top)
        from urllib.parse import urlencode
        body["@odata.nextLink"] = f"{request.base_url}?{urlencode(query)}"
    body["value"] = [render_user(u, select) for u in page]
    return reply(body)


@blueprint.get("/users/$count")
def count_users():
    access.require("user")
    if request.headers.get("ConsistencyLevel", "").lower() != "eventual":
        raise GraphError(400, "Request_BadRequest", "Count is not currently supported.")
    return Response(str(len(_matching_users(request.args))), mimetype="text/plain")


@blueprint.get("/users/<user_ref>")
@blueprint.get("/me", defaults={"user_ref": "me"})
def get_user(user_ref: str):
    user = access.resolve_user(user_ref, directory=True)
    g.self_only = user["id"] == g.claims.get("oid")
    access.require("user")
    return reply({"@odata.context": context_url("users/$entity"), **render_user(user, parse_select(request.args.get("$select")))})


def render_organization(tenant: dict) -> dict:
    return {
        "id": tenant["id"], "deletedDateTime": None, "businessPhones": [], "city": None, "country": None,
        "countryLetterCode": tenant.get("countryLetterCode"), "createdDateTime": tenant.get("createdDateTime"),
        "displayName": tenant["displayName"], "marketingNotificationEmails": [], "onPremisesSyncEnabled": None,
        "postalCode": None, "preferredLanguage": "en", "state": None, "street": None, "technicalNotificationMails": [],
        "tenantType": "AAD", "assignedPlans": [], "provisionedPlans": [], "privacyProfile": None,
        "securityComplianceNotificationMails": [], "securityComplianceNotificationPhones": [],
        "verifiedDomains": [{"capabilities": "Email, OfficeCommunicationsOnline", "isDefault": name == tenant["domain"],
                             "isInitial": name == tenant["domain"], "name": name, "type": "Managed"}
                            for name in tenant["verifiedDomains"]],
    }


@blueprint.get("/organization")
def list_organization():
    access.require("organization")
    tenant = emulator().store.tenants[g.claims["tid"]]
    return reply({"@odata.context": context_url("organization"), "value": [render_organization(tenant)]})


@blueprint.get("/organization/<org_id>")
def get_organization(org_id: str):
    access.require("organization")
    if org_id != g.claims["tid"]:
        raise GraphError(404, "Request_ResourceNotFound", f"Resource '{org_id}' does not exist or one of its queried reference-property objects are not present.")
    return reply({"@odata.context": context_url("organization/$entity"), **render_organization(emulator().store.tenants[org_id])})


# ---- calendars -------------------------------------------------------------------------
@route("/calendars", ["GET", "POST"])
def calendars_collection(user_ref: str):
    store = emulator().store
    box = access.resolve_mailbox(user_ref, "calendar", write=request.method == "POST")
    ext_ids = expanded_extended_property_ids(request.args.get("$expand"))
    if request.method == "POST":
        calendar = events.create_calendar(store, box, json_body())
        return reply({"@odata.context": context_url(f"users('{box.user_id}')/calendars/$entity"),
                      **events.render_calendar(store, box, calendar)}, 201)
    with store.lock:
        items = [events.render_calendar(store, box, c, ext_ids) for c in box.calendars.values()]
    select = parse_select(request.args.get("$select"))
    if "$filter" in request.args:
        matcher = extended_property_matcher(request.args["$filter"])
        if matcher is None:
            raise GraphError(400, "ErrorInvalidUrlQueryFilter", "The query filter contains one or more invalid nodes.")
        items = [i for i in items if matcher(box.calendars[i["id"]]["ext"])]
    return reply({"@odata.context": context_url(f"users('{box.user_id}')/calendars"), "value": [apply_select(i, select) for i in items]})


@route("/calendar", ["GET"])
def default_calendar_get(user_ref: str):
    box = access.resolve_mailbox(user_ref, "calendar")
    store = emulator().store
    return reply({"@odata.context": context_url(f"users('{box.user_id}')/calendar/$entity"),
                  **events.render_calendar(store, box, events.default_calendar(box))})


@route("/calendars/<calendar_id>", ["GET", "PATCH", "DELETE"])
def calendar_item(user_ref: str, calendar_id: str):
    store = emulator().store
    box = access.resolve_mailbox(user_ref, "calendar", write=request.method != "GET")
    if request.method == "DELETE":
        events.delete_calendar(store, box, calendar_id)
        return reply(status=204)
    if request.method == "PATCH":
        calendar = events.update_calendar(store, box, calendar_id, json_body())
    else:
        calendar = events.get_calendar(box, calendar_id)
    ext_ids = expanded_extended_property_ids(request.args.get("$expand"))
    return reply({"@odata.context": context_url(f"users('{box.user_id}')/calendars/$entity"),
                  **apply_select(events.render_calendar(store, box, calendar, ext_ids), parse_select(request.args.get("$select")))})


@route("/calendars/<calendar_id>/permanentDelete", ["POST"])
def calendar_permanent_delete(user_ref: str, calendar_id: str):
    box = access.resolve_mailbox(user_ref, "calendar", write=True)
    events.delete_calendar(emulator().store, box, calendar_id)
    return reply(status=204)


# ---- events ------------------------------------------------------------------------------
def _event_list(box, calendar_id: str):
    store = emulator().store
    zone, headers = zone_preference()
    args = request.args
    ext_ids = expanded_extended_property_ids(args.get("$expand"))
    select = parse_select(args.get("$select"))
    top = parse_top(args.get("$top"), 10, 1000)
    skip = int(args.get("$skip", "0") or 0)
    with store.lock:
        events.get_calendar(box, calendar_id)
        records = [r for r in box.events.values() if r["calendarId"] == calendar_id]
        if "$filter" in args:
            matcher = extended_property_matcher(args["$filter"])
            if matcher is not None:
                records = [r for r in records if matcher(r["ext"])]
            elif (timed := re.match(r"^(start|end)/dateTime\s+(ge|gt|le|lt)\s+'([^']{1,40})'$", args["$filter"].strip())):
                # [D] an events listing filters on start/dateTime and end/dateTime (a series master by
                # its first occurrence); the value is read in UTC unless it carries an offset.
                side, op, text = timed.groups()
                try:
                    bound = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
                except ValueError:
                    raise GraphError(400, "ErrorInvalidUrlQueryFilter", "The query filter contains one or more invalid nodes.") from None
                bound = bound if bound.tzinfo else bound.replace(tzinfo=dt.UTC)
                compare = {"ge": operator.ge, "gt": operator.gt, "le": operator.le, "lt": operator.lt}[op]
                records = [r for r in records if compare(events.instant(r, side), bound)]
            else:
                match = re.match(r"^(subject|transactionId|iCalUId)\s+eq\s+'((?:[^']|'')*)'$", args["$filter"].strip())
                if not match:
                    raise GraphError(400, "ErrorInvalidUrlQueryFilter", "The query filter contains one or more invalid nodes.")
                field, value = match.group(1), match.group(2).replace("''", "'")
                records = [r for r in records if str(events.render_event(store, box, r).get(field)) == value]
        records.sort(key=lambda r: (r["createdDateTime"], r["id"]))
        page = records[skip: skip + top]
        items = [_text_body(apply_select(events.render_event(store, box, r, zone_pref=zone, ext_ids=ext_ids), select)) for r in page]
    body: dict = {"@odata.context": context_url(f"users('{box.user_id}')/events")}
    if skip + top < len(records):
        from urllib.parse import urlencode
        body["@odata.nextLink"] = f"{request.base_url}?{urlencode({**args, '$skip': str(skip + top), '$top': str(top)})}"
    body["value"] = items
    return reply(body, headers=headers)


def _event_create(box, calendar_id: str):
    store = emulator().store
    record, created = events.create_event(store, box, calendar_id, json_body())
    zone, headers = zone_preference()
    body = {"@odata.context": context_url(f"users('{box.user_id}')/events/$entity"),
            **events.render_event(store, box, record, zone_pref=zone)}
    # [U] a repeated transactionId answers with the first event; 201 like a create.
    return reply(body, 201, headers)


@route("/calendars/<calendar_id>/events", ["GET", "POST"])
def calendar_events(user_ref: str, calendar_id: str):
    box = access.resolve_mailbox(user_ref, "calendar", write=request.method == "POST")
    return _event_create(box, calendar_id) if request.method == "POST" else _event_list(box, calendar_id)


@route("/events", ["GET", "POST"])
@route("/calendar/events", ["GET", "POST"])
def default_events(user_ref: str):
    box = access.resolve_mailbox(user_ref, "calendar", write=request.method == "POST")
    calendar_id = events.default_calendar(box)["id"]
    return _event_create(box, calendar_id) if request.method == "POST" else _event_list(box, calendar_id)


def _event_item(box, event_id: str, calendar_id: str | None):
    store = emulator().store
    zone, headers = zone_preference()
    if calendar_id is not None:
        events.get_calendar(box, calendar_id)
    if request.method == "DELETE":
        events.delete_event(store, box, event_id, calendar_id)
        return reply(status=204)
    if request.method == "PATCH":
        events.update_event(store, box, event_id, json_body(), calendar_id, if_match=request.headers.get("If-Match"))
    with store.lock:
        record, day = events.find_event(box, event_id, calendar_id)
        ext_ids = expanded_extended_property_ids(request.args.get("$expand"))
        body = events.render_event(store, box, record, day, zone_pref=zone, ext_ids=ext_ids)
    body = _text_body(apply_select(body, parse_select(request.args.get("$select"))))
    return reply({"@odata.context": context_url(f"users('{box.user_id}')/events/$entity"), **body}, headers=headers)


@route("/calendars/<calendar_id>/events/<event_id>", ["GET", "PATCH", "DELETE"])
def calendar_event_item(user_ref: str, calendar_id: str, event_id: str):
    box = access.resolve_mailbox(user_ref, "calendar", write=request.method != "GET")
    return _event_item(box, event_id, calendar_id)


@route("/events/<event_id>", ["GET", "PATCH", "DELETE"])
def event_item(user_ref: str, event_id: str):
    box = access.resolve_mailbox(user_ref, "calendar", write=request.method != "GET")
    return _event_item(box, event_id, None)


@route("/events/<event_id>/permanentDelete", ["POST"])
def event_permanent_delete(user_ref: str, event_id: str):
    box = access.resolve_mailbox(user_ref, "calendar", write=True)
    events.delete_event(emulator().store, box, event_id)
    return reply(status=204)


def _window():
    args = request.args
    if not args.get("startDateTime") or not args.get("endDateTime"):
        raise GraphError(400, "ErrorInvalidParameter", "This request requires a time window specified by the query string "
                         "parameters StartDateTime and EndDateTime.")
    return parse_offset_time(args["startDateTime"]), parse_offset_time(args["endDateTime"])


def _calendar_view(box, calendar_id: str):
    store = emulator().store
    zone, headers = zone_preference()
    start, end = _window()
    select = parse_select(request.args.get("$select"))
    top = parse_top(request.args.get("$top"), 10, 1000)
    skip = int(request.args.get("$skip", "0") or 0)
    with store.lock:
        events.get_calendar(box, calendar_id)
        items = events.view_items(box, calendar_id, start, end)
        page = [_text_body(apply_select(events.render_event(store, box, i["record"], i["day"], zone_pref=zone), select))
                for i in items[skip: skip + top]]
    body: dict = {"@odata.context": context_url(f"users('{box.user_id}')/calendarView")}
    if skip + top < len(items):
        from urllib.parse import urlencode
        body["@odata.nextLink"] = f"{request.base_url}?{urlencode({**request.args, '$skip': str(skip + top), '$top': str(top)})}"
    body["value"] = page
    return reply(body, headers=headers)


@route("/calendars/<calendar_id>/calendarView", ["GET"])
def calendar_view(user_ref: str, calendar_id: str):
    return _calendar_view(access.resolve_mailbox(user_ref, "calendar"), calendar_id)


@route("/calendarView", ["GET"])
@route("/calendar/calendarView", ["GET"])
def default_calendar_view(user_ref: str):
    box = access.resolve_mailbox(user_ref, "calendar")
    return _calendar_view(box, events.default_calendar(box)["id"])


@route("/events/<event_id>/instances", ["GET"])
def event_instances(user_ref: str, event_id: str):
    box = access.resolve_mailbox(user_ref, "calendar")
    store = emulator().store
    zone, headers = zone_preference()
    start, end = _window()
    with store.lock:
        record, day = events.find_event(box, event_id)
        days = events.occurrence_days(record, start, end) if record["recurrence"] else []
        value = [events.render_event(store, box, record, d, zone_pref=zone) for d in days]
    return reply({"@odata.context": context_url(f"users('{box.user_id}')/events('{event_id}')/instances"), "value": value}, headers=headers)


@route("/calendars/<calendar_id>/calendarView/delta()", ["GET"])
@route("/calendars/<calendar_id>/calendarView/delta", ["GET"])
def calendar_view_delta(user_ref: str, calendar_id: str):
    box = access.resolve_mailbox(user_ref, "calendar")
    zone, headers = zone_preference()
    body, extra = delta.respond(emulator().store, box, "event", calendar_id, zone)
    return reply(body, headers={**headers, **extra})


@route("/calendarView/delta()", ["GET"])
@route("/calendarView/delta", ["GET"])
def default_calendar_view_delta(user_ref: str):
    box = access.resolve_mailbox(user_ref, "calendar")
    zone, headers = zone_preference()
    body, extra = delta.respond(emulator().store, box, "event", events.default_calendar(box)["id"], zone)
    return reply(body, headers={**headers, **extra})


# ---- contact folders and contacts ---------------------------------------------------------
@route("/contactFolders", ["GET", "POST"])
def contact_folders(user_ref: str):
    store = emulator().store
    box = access.resolve_mailbox(user_ref, "contact", write=request.method == "POST")
    if request.method == "POST":
        folder = contacts.create_folder(store, box, json_body())
        return reply({"@odata.context": context_url(f"users('{box.user_id}')/contactFolders/$entity"), **contacts.render_folder(folder)}, 201)
    ext_ids = expanded_extended_property_ids(request.args.get("$expand"))
    with store.lock:
        folders = list(box.contact_folders.values())
        if "$filter" in request.args:
            matcher = extended_property_matcher(request.args["$filter"])
            eq = EQUALS.match(request.args["$filter"].strip())
            if matcher is not None:
                folders = [f for f in folders if matcher(f["ext"])]
            elif eq and eq.group(1) == "displayName":
                folders = [f for f in folders if f["displayName"] == eq.group("value").replace("''", "'")]
            else:
                raise GraphError(400, "ErrorInvalidUrlQueryFilter", "The query filter contains one or more invalid nodes.")
        value = [contacts.render_folder(f, ext_ids) for f in folders if not f["isDefault"]]
    # The default "Contacts" folder is the root of the list, not an item of it (contactFolders lists its children).
    return reply({"@odata.context": context_url(f"users('{box.user_id}')/contactFolders"), "value": value})


@route("/contactFolders/delta()", ["GET"])
@route("/contactFolders/delta", ["GET"])
def contact_folders_delta(user_ref: str):
    box = access.resolve_mailbox(user_ref, "contact")
    body, extra = delta.respond(emulator().store, box, "contactFolder", None, None)
    return reply(body, headers=extra)


@route("/contactFolders/<folder_id>", ["GET", "PATCH", "DELETE"])
def contact_folder_item(user_ref: str, folder_id: str):
    store = emulator().store
    box = access.resolve_mailbox(user_ref, "contact", write=request.method != "GET")
    if request.method == "DELETE":
        contacts.delete_folder(store, box, folder_id)
        return reply(status=204)
    folder = contacts.update_folder(store, box, folder_id, json_body()) if request.method == "PATCH" else contacts.get_folder(box, folder_id)
    ext_ids = expanded_extended_property_ids(request.args.get("$expand"))
    return reply({"@odata.context": context_url(f"users('{box.user_id}')/contactFolders/$entity"), **contacts.render_folder(folder, ext_ids)})


@route("/contactFolders/<folder_id>/permanentDelete", ["POST"])
def contact_folder_permanent_delete(user_ref: str, folder_id: str):
    box = access.resolve_mailbox(user_ref, "contact", write=True)
    contacts.delete_folder(emulator().store, box, folder_id)
    return reply(status=204)


def _contact_list(box, folder_id: str):
    store = emulator().store
    args = request.args
    ext_ids = expanded_extended_property_ids(args.get("$expand"))
    select = parse_select(args.get("$select"))
    top = parse_top(args.get("$top"), 10, 1000)
    skip = int(args.get("$skip", "0") or 0)
    with store.lock:
        contacts.get_folder(box, folder_id)
        items = sorted((c for c in box.contacts.values() if c["parentFolderId"] == folder_id), key=lambda c: (c["createdDateTime"], c["id"]))
        if "$filter" in args:
            matcher = extended_property_matcher(args["$filter"])
            if matcher is None:
                raise GraphError(400, "ErrorInvalidUrlQueryFilter", "The query filter contains one or more invalid nodes.")
            items = [c for c in items if matcher(c["ext"])]
        value = [apply_select(contacts.render_contact(c, ext_ids), select) for c in items[skip: skip + top]]
    body: dict = {"@odata.context": context_url(f"users('{box.user_id}')/contacts")}
    if skip + top < len(items):
        from urllib.parse import urlencode
        body["@odata.nextLink"] = f"{request.base_url}?{urlencode({**args, '$skip': str(skip + top), '$top': str(top)})}"
    body["value"] = value
    return reply(body)


def _default_folder_id(box) -> str:
    return next(f["id"] for f in box.contact_folders.values() if f["isDefault"])


@route("/contactFolders/<folder_id>/contacts", ["GET", "POST"])
def folder_contacts(user_ref: str, folder_id: str):
    store = emulator().store
    box = access.resolve_mailbox(user_ref, "contact", write=request.method == "POST")
    if request.method == "POST":
        contact = contacts.create_contact(store, box, folder_id, json_body())
        return reply({"@odata.context": context_url(f"users('{box.user_id}')/contacts/$entity"), **contacts.render_contact(contact)}, 201)
    return _contact_list(box, folder_id)


@route("/contacts", ["GET", "POST"])
def default_contacts(user_ref: str):
    store = emulator().store
    box = access.resolve_mailbox(user_ref, "contact", write=request.method == "POST")
    if request.method == "POST":
        contact = contacts.create_contact(store, box, _default_folder_id(box), json_body())
        return reply({"@odata.context": context_url(f"users('{box.user_id}')/contacts/$entity"), **contacts.render_contact(contact)}, 201)
    return _contact_list(box, _default_folder_id(box))


@route("/contactFolders/<folder_id>/contacts/delta()", ["GET"])
@route("/contactFolders/<folder_id>/contacts/delta", ["GET"])
def folder_contacts_delta(user_ref: str, folder_id: str):
    box = access.resolve_mailbox(user_ref, "contact")
    body, extra = delta.respond(emulator().store, box, "contact", folder_id, None)
    return reply(body, headers=extra)


def _contact_item(box, contact_id: str, folder_id: str | None):
    store = emulator().store
    if folder_id is not None:
        contacts.get_folder(box, folder_id)
    if request.method == "DELETE":
        contacts.delete_contact(store, box, contact_id, folder_id)
        return reply(status=204)
    if request.method == "PATCH":
        contact = contacts.update_contact(store, box, contact_id, json_body(), folder_id, if_match=request.headers.get("If-Match"))
    else:
        contact = contacts.find_contact(box, contact_id, folder_id)
    ext_ids = expanded_extended_property_ids(request.args.get("$expand"))
    body = apply_select(contacts.render_contact(contact, ext_ids), parse_select(request.args.get("$select")))
    return reply({"@odata.context": context_url(f"users('{box.user_id}')/contacts/$entity"), **body})


@route("/contactFolders/<folder_id>/contacts/<contact_id>", ["GET", "PATCH", "DELETE"])
def folder_contact_item(user_ref: str, folder_id: str, contact_id: str):
    box = access.resolve_mailbox(user_ref, "contact", write=request.method != "GET")
    return _contact_item(box, contact_id, folder_id)


@route("/contacts/<contact_id>", ["GET", "PATCH", "DELETE"])
def contact_item(user_ref: str, contact_id: str):
    box = access.resolve_mailbox(user_ref, "contact", write=request.method != "GET")
    return _contact_item(box, contact_id, None)


@route("/contacts/<contact_id>/permanentDelete", ["POST"])
def contact_permanent_delete(user_ref: str, contact_id: str):
    box = access.resolve_mailbox(user_ref, "contact", write=True)
    contacts.delete_contact(emulator().store, box, contact_id)
    return reply(status=204)


# ---- mail ------------------------------------------------------------------------------------
@route("/sendMail", ["POST"])
def send_mail(user_ref: str):
    box = access.resolve_mailbox(user_ref, "send", write=True)
    mail.send_mail(emulator().store, box, json_body())
    return reply(status=202)


def _messages(box, folder: str | None):
    select = parse_select(request.args.get("$select"))
    top = parse_top(request.args.get("$top"), 10, 1000)
    with emulator().store.lock:
        items = mail.list_messages(box, folder)
        value = [_text_body(apply_select(mail.render_message(m), select)) for m in items[:top]]
    return reply({"@odata.context": context_url(f"users('{box.user_id}')/messages"), "value": value})


@route("/messages", ["GET"])
def messages(user_ref: str):
    return _messages(access.resolve_mailbox(user_ref, "mail"), None)


@route("/mailFolders/<folder>/messages", ["GET"])
def folder_messages(user_ref: str, folder: str):
    box = access.resolve_mailbox(user_ref, "mail")
    name = mail.WELL_KNOWN_FOLDERS.get(folder.lower())
    if name is None:
        raise GraphError(404, "ErrorInvalidIdMalformed", "Id is malformed.")
    return _messages(box, name)


@route("/messages/<message_id>", ["GET"])
def message_item(user_ref: str, message_id: str):
    box = access.resolve_mailbox(user_ref, "mail")
    item = box.messages.get(message_id)
    if item is None:
        raise GraphError(404, "ErrorItemNotFound", "The specified object was not found in the store.")
    return reply({"@odata.context": context_url(f"users('{box.user_id}')/messages/$entity"), **_text_body(mail.render_message(item))})

