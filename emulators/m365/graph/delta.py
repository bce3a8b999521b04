"""Delta queries (calendarView/delta, contacts/delta, contactFolders/delta).

State tokens are opaque ids of server-side round states, so they can be evicted (410
syncStateNotFound) like Outlook's bounded delta-token cache. Each round diffs the current
items against what the client was last given: new or changed -> full item, gone (or moved
out of the frozen window) -> ``@removed``.
"""

from __future__ import annotations

import datetime as dt
import secrets
from collections import OrderedDict

from flask import request

from ..errors import GraphError
from ..store import Mailbox, Store
from ..timezones import parse_offset_time
from . import contacts, events

DEFAULT_PAGE_SIZE = 10  # [U] Outlook's default/maximum delta page size is not documented.
MAX_PAGE_SIZE = 1000
MAX_TOKENS_PER_MAILBOX = 200
ODATA_TYPES = {"event": "#microsoft.graph.event", "contact": "#microsoft.graph.contact", "contactFolder": "#microsoft.graph.contactFolder"}
UNSUPPORTED_EVENT_OPTIONS = ("$select", "$expand", "$filter", "$orderby", "$search", "$top")


def _current(store: Store, box: Mailbox, state: dict) -> OrderedDict:
    kind = state["kind"]
    if kind == "event":
        start, end = (dt.datetime.fromisoformat(v) for v in state["window"])
        return OrderedDict(
            (events.item_id(i["record"], i["day"]), events.item_change_key(i["record"], i["day"]))
            for i in events.view_items(box, state["container"], start, end)
        )
    if kind == "contact":
        return OrderedDict((c["id"], c["changeKey"]) for c in box.contacts.values() if c["parentFolderId"] == state["container"])
    return OrderedDict((f["id"], f["changeKey"]) for f in box.contact_folders.values())


def _save(store: Store, box: Mailbox, state: dict) -> str:
    token = secrets.token_urlsafe(32)
    tokens = store.delta_tokens
    tokens[token] = {**state, "userId": box.user_id}
    mine = [t for t, s in tokens.items() if s["userId"] == box.user_id]
    for old in mine[:-MAX_TOKENS_PER_MAILBOX]:  # the oldest tokens fall out of the cache
        del tokens[old]
    return token


def _gone(kind: str) -> GraphError:
    location = request.base_url + "?$deltatoken="
    return GraphError(410, "syncStateNotFound", "The sync state generation is not found. The delta token is expired and data must be synchronized again.",
                      headers={"Location": location})


def _page_size() -> int:
    prefer = request.headers.get("Prefer", "")
    for part in prefer.split(","):
        name, _, value = part.strip().partition("=")
        if name.strip().lower() == "odata.maxpagesize":
            try:
                return max(1, min(int(value.strip().strip('"')), MAX_PAGE_SIZE))
            except ValueError:
                break
    return DEFAULT_PAGE_SIZE


def _render(store: Store, box: Mailbox, kind: str, item_id: str, zone: str | None, select: list[str] | None) -> dict | None:
    try:
        if kind == "event":
            record, day = events.find_event(box, item_id)
            return events.render_event(store, box, record, day, zone_pref=zone)
        if kind == "contact":
            item = contacts.render_contact(contacts.find_contact(box, item_id))
            if select:
                item = {k: v for k, v in item.items() if k in {"id", "@odata.etag"} or k in select}
            return item
        return contacts.render_folder(contacts.get_folder(box, item_id))
    except GraphError:
        return None


def respond(store: Store, box: Mailbox, kind: str, container_id: str | None, zone: str | None) -> tuple[dict, dict]:
    """Answer one delta request: returns (body, extra headers)."""
    args = request.args
    with store.lock:
        if kind == "event":
            events.get_calendar(box, container_id)
        elif kind == "contact":
            contacts.get_folder(box, container_id)
        token = args.get("$deltatoken") or args.get("$skiptoken")
        page_size = _page_size()
        if token is not None:
            state = store.delta_tokens.get(token)
            if state is None or state["userId"] != box.user_id or state["kind"] != kind or state.get("container") != container_id:
                raise _gone(kind)
            state = dict(state)
            if "$deltatoken" in args:
                current = _current(store, box, state)
                known = state["known"]
                pending = [(i, "upsert") for i, ck in current.items() if known.get(i) != ck]
                pending += [(i, "removed") for i in known if i not in current]
                state = {**state, "pending": pending, "known": dict(current)}
        else:
            if kind == "event":
                extra = [o for o in UNSUPPORTED_EVENT_OPTIONS if o in args]
                if extra:
                    raise GraphError(400, "ErrorInvalidUrlQuery",
                                     "The following parameters are not supported with change tracking over the 'CalendarView' "
                                     f"resource: '{', '.join(UNSUPPORTED_EVENT_OPTIONS)}'.")
                if not args.get("startDateTime") or not args.get("endDateTime"):
                    raise GraphError(400, "ErrorInvalidParameter",
                                     "This request requires a time window specified by the query string parameters StartDateTime and EndDateTime.")
                start, end = parse_offset_time(args["startDateTime"]), parse_offset_time(args["endDateTime"])
                if end <= start:
                    raise GraphError(400, "ErrorInvalidParameter", "The parameter 'EndDateTime' must be later than 'StartDateTime'.")
                window = (start.isoformat(), end.isoformat())
            else:
                if "$expand" in args or "$orderby" in args or "$search" in args:
                    raise GraphError(400, "ErrorInvalidUrlQuery", "The following parameters are not supported with change tracking over the "
                                     "'Contacts' resource: '$orderby, $expand, $search'.")
                window = None
            state = {"kind": kind, "container": container_id, "window": window,
                     "select": [s.strip() for s in args.get("$select", "").split(",") if s.strip()] or None}
            current = _current(store, box, state)
            state["pending"] = [(i, "upsert") for i in current]
            state["known"] = dict(current)
        page, rest = state["pending"][:page_size], state["pending"][page_size:]
        values = []
        for item_id, action in page:
            rendered = _render(store, box, kind, item_id, zone, state.get("select")) if action == "upsert" else None
            if rendered is None:
                values.append({"@odata.type": ODATA_TYPES[kind], "id": item_id, "@removed": {"reason": "deleted"}})
            else:
                values.append({"@odata.type": ODATA_TYPES[kind], **rendered})
        body = {"@odata.context": f"{request.host_url}v1.0/$metadata#Collection({kind})"}
        if rest:
            body["@odata.nextLink"] = f"{request.base_url}?$skiptoken={_save(store, box, {**state, 'pending': rest})}"
        else:
            body["@odata.deltaLink"] = f"{request.base_url}?$deltatoken={_save(store, box, {**state, 'pending': []})}"
        body["value"] = values
    return body, {"Preference-Applied": f"odata.maxpagesize={page_size}"} if "maxpagesize" in request.headers.get("Prefer", "") else {}


def expire_all(store: Store, user_id: str | None = None) -> int:
    with store.lock:
        doomed = [t for t, s in store.delta_tokens.items() if user_id is None or s["userId"] == user_id]
        for token in doomed:
            del store.delta_tokens[token]
        return len(doomed)
