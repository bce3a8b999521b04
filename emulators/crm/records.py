"""Contacts and Events: field rules, writes and reads, shared by the API and the person actions.

Records are stored with epoch times and user ids; ``record_json`` renders them the way the API
shows them (lookups as objects, date-times with the org's offset).
"""

from __future__ import annotations

import math
import re
from typing import Any

from . import directory
from .callbacks import Notifier
from .errors import error_item
from .store import Store, parse_time

MODULES: dict[str, dict[str, Any]] = {
    "Contacts": {
        "mandatory": ["Last_Name"],
        "fields": ["First_Name", "Last_Name", "Full_Name", "Salutation", "Email", "Secondary_Email", "Phone",
                   "Mobile", "Home_Phone", "Other_Phone", "Fax", "Asst_Phone", "Assistant", "Title", "Department",
                   "Date_of_Birth", "Account_Name", "Vendor_Name", "Reporting_To", "Mailing_Street",
                   "Mailing_City", "Mailing_State", "Mailing_Zip", "Mailing_Country", "Other_Street",
                   "Other_City", "Other_State", "Other_Zip", "Other_Country", "Description", "Lead_Source",
                   "Email_Opt_Out", "Skype_ID", "Twitter", "Owner", "Tag", "Created_By", "Created_Time",
                   "Modified_By", "Modified_Time", "Last_Activity_Time", "Data_Source", "Record_Status__s"],
        "emails": ["Email", "Secondary_Email"],
        "dates": ["Date_of_Birth"],
        "datetimes": [],
        "booleans": ["Email_Opt_Out"],
        "lookups": ["Account_Name", "Vendor_Name", "Reporting_To"],
        "display": "Full_Name",
        "duplicate_check": ["Email"],
        "scope": "contacts",
        "module_id": "5725767000000002179",
    },
    "Events": {
        "mandatory": ["Event_Title", "Start_DateTime", "End_DateTime"],
        "fields": ["Event_Title", "Start_DateTime", "End_DateTime", "All_day", "Venue", "Description", "Owner",
                   "Participants", "Who_Id", "What_Id", "$se_module", "Remind_At", "Remind_Participants",
                   "Recurring_Activity", "Check_In_Time", "Check_In_By", "Check_In_Comment", "Check_In_Status",
                   "Created_By", "Created_Time", "Modified_By", "Modified_Time", "Record_Status__s", "Tag",
                   "Data_Source", "$event_cancelled"],
        "emails": [],
        "dates": [],
        "datetimes": ["Start_DateTime", "End_DateTime"],
        "booleans": ["All_day", "Remind_Participants"],
        "lookups": ["Who_Id", "What_Id"],
        "display": "Event_Title",
        "duplicate_check": [],
        "scope": "events",
        "module_id": "5725767000000002185",
    },
}
# System fields a write cannot set; the CRM ignores them in the payload.
READ_ONLY = {"id", "Created_Time", "Modified_Time", "Created_By", "Modified_By", "Data_Source", "Full_Name",
             "Last_Activity_Time", "$approval_state", "$event_cancelled"}
SE_MODULES = {"Accounts", "Deals", "Products", "Quotes", "Sales_Orders", "Purchase_Orders", "Invoices",
              "Campaigns", "Vendors", "Cases", "Leads"}
EMAIL_RE = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
DATE_RE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
REMIND_PERIODS = {"minutes", "hours", "days", "weeks", "mins", "hrs"}
PARTICIPANT_TYPES = {"lead", "contact", "user", "email"}
MAX_PARTICIPANTS = 50
MAX_TEXT = 32_000
RECYCLE_RETENTION = 60 * 86400
PERMANENT_RETENTION = 120 * 86400

# Data_Source values people's actions give (display values of the picklist).
PERSON_SOURCES = ("Manual", "Manual (Mobile)", "Import", "Migration", "Mass Update", "Webform", "Workflow",
                  "Microsoft Outlook", "Bulk API", "Zoho Forms", "Sample Data")


def field_error(code: str, message: str, api_name: str, index: int, **extra: Any) -> dict[str, Any]:
    details = {"api_name": api_name, "json_path": f"$.data[{index}].{api_name}", **extra}
    return error_item(code, message, details)


def _check_value(store: Store, org_id: str, module: str, name: str, value: Any, index: int) -> dict | None:
    spec = MODULES[module]
    if value is None:
        return None
    if name in spec["emails"] and not (isinstance(value, str) and EMAIL_RE.match(value)):
        return field_error("INVALID_DATA", "invalid data", name, index, expected_data_type="email")
    if name in spec["dates"] and not (isinstance(value, str) and DATE_RE.match(value)):
        return field_error("INVALID_DATA", "invalid data", name, index, expected_data_type="date")
    if name in spec["datetimes"] and parse_time(value) is None:
        return field_error("INVALID_DATA", "invalid data", name, index, expected_data_type="datetime")
    if name in spec["booleans"] and not isinstance(value, bool):
        return field_error("INVALID_DATA", "invalid data", name, index, expected_data_type="boolean")
    if name in spec["lookups"] and not (isinstance(value, dict) and (value.get("id") or value.get("name"))):
        return field_error("INVALID_DATA", "invalid data", name, index, expected_data_type="lookup")
    if name == "Owner":
        owner_id = value.get("id") if isinstance(value, dict) else None
        owner = store.users.get(str(owner_id or ""))
        if owner is None or owner["org_id"] != org_id or owner["status"] == "deleted":
            return field_error("INVALID_DATA", "invalid data", name, index, expected_data_type="ownerlookup")
    if isinstance(value, str) and len(value) > MAX_TEXT:
        return field_error("INVALID_DATA", "invalid data", name, index, maximum_length=str(MAX_TEXT))
    if module == "Events":
        return _check_event_value(name, value, index)
    return None


def _check_event_value(name: str, value: Any, index: int) -> dict | None:
    if name == "Event_Title" and isinstance(value, str) and len(value) > 255:
        return field_error("INVALID_DATA", "invalid data", name, index, maximum_length="255")
    if name == "Participants":
        if not isinstance(value, list):
            return field_error("INVALID_DATA", "invalid data", name, index, expected_data_type="jsonarray")
        if len(value) > MAX_PARTICIPANTS:
            return error_item("LIMIT_EXCEEDED", "the participants limit exceeded",
                              {"api_name": name, "json_path": f"$.data[{index}].{name}", "limit": MAX_PARTICIPANTS})
        for part in value:
            if not isinstance(part, dict) or part.get("type") not in PARTICIPANT_TYPES:
                return field_error("INVALID_DATA", "invalid data", name, index,
                                   supported_values=sorted(PARTICIPANT_TYPES))
            if part["type"] == "email" and not EMAIL_RE.match(str(part.get("Email") or part.get("participant") or "")):
                return field_error("INVALID_DATA", "invalid data", name, index, expected_data_type="email")
    if name == "Recurring_Activity" and not (isinstance(value, dict) and isinstance(value.get("RRULE"), str)
                                             and "FREQ=" in value["RRULE"]):
        return field_error("INVALID_DATA", "invalid data", name, index, expected_data_type="jsonobject")
    if name == "Remind_At":
        items = value if isinstance(value, list) else None
        if items is None or not all(isinstance(r, dict) and isinstance(r.get("unit"), int)
                                    and str(r.get("period")) in REMIND_PERIODS for r in items):
            return field_error("INVALID_DATA", "invalid data", name, index, expected_data_type="jsonarray")
    return None


def validate(store: Store, org_id: str, module: str, item: Any, index: int,
             existing: dict[str, Any] | None) -> tuple[dict[str, Any], dict | None]:
    """The writable fields of one input item, or the per-record error the CRM would give."""
    if not isinstance(item, dict):
        return {}, error_item("INVALID_DATA", "invalid data", {"json_path": f"$.data[{index}]"})
    fields = {k: v for k, v in item.items() if k not in READ_ONLY}
    spec = MODULES[module]
    for name in spec["mandatory"]:
        value = fields.get(name, existing.get(name) if existing else None)
        if value is None or (isinstance(value, str) and not value.strip()):
            return {}, field_error("MANDATORY_NOT_FOUND", "required field not found", name, index)
    for name, value in fields.items():
        problem = _check_value(store, org_id, module, name, value, index)
        if problem:
            return {}, problem
    if module == "Events":
        merged = {**(existing or {}), **fields}
        start, end = parse_time(merged.get("Start_DateTime")), parse_time(merged.get("End_DateTime"))
        if start is not None and end is not None and end < start:
            return {}, field_error("INVALID_DATA", "End_DateTime should be greater than Start_DateTime",
                                   "End_DateTime", index)
        if merged.get("What_Id") and not merged.get("$se_module"):
            return {}, error_item("DEPENDENT_FIELD_MISSING", "dependent field missing",
                                  {"api_name": "$se_module", "json_path": f"$.data[{index}].$se_module",
                                   "dependee": {"api_name": "What_Id"}})
        if merged.get("$se_module") and merged["$se_module"] not in SE_MODULES:
            return {}, field_error("INVALID_DATA", "invalid data", "$se_module", index,
                                   supported_values=sorted(SE_MODULES))
    if "Owner" in fields and fields["Owner"] is not None:
        fields["Owner"] = str(fields["Owner"]["id"])
    elif "Owner" in fields:
        del fields["Owner"]
    return fields, None


def _display_name(module: str, rec: dict[str, Any]) -> str | None:
    if module == "Contacts":
        return f"{rec.get('First_Name') or ''} {rec.get('Last_Name') or ''}".strip() or None
    return rec.get("Event_Title")


def record_json(store: Store, org_id: str, module: str, rec: dict[str, Any],
                fields: list[str] | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in rec.items():
        if key in ("Owner", "Created_By", "Modified_By"):
            out[key] = directory.minified(store, value)
        elif key in ("Created_Time", "Modified_Time"):
            out[key] = store.org_time(org_id, value)
        else:
            out[key] = value
    if module == "Contacts":
        out["Full_Name"] = _display_name(module, rec)
    out["$approval_state"] = "approved"
    if fields is None:
        return out
    selected = {"id": out["id"]}
    for name in fields:
        selected[name] = out.get(name)
    return selected


def success_details(store: Store, org_id: str, rec: dict[str, Any]) -> dict[str, Any]:
    def user(uid: str) -> dict[str, Any]:
        m = directory.minified(store, uid) or {"name": "", "id": uid}
        return {"name": m["name"], "id": m["id"]}
    return {"Modified_Time": store.org_time(org_id, rec["Modified_Time"]), "Modified_By": user(rec["Modified_By"]),
            "Created_Time": store.org_time(org_id, rec["Created_Time"]), "id": rec["id"],
            "Created_By": user(rec["Created_By"]), "$approval_state": "approved"}


def _duplicate(store: Store, org_id: str, module: str, fields: dict[str, Any], check: list[str],
               ignore_id: str | None = None) -> tuple[str, dict[str, Any]] | None:
    for name in check:
        value = fields.get(name)
        if value in (None, ""):
            continue
        wanted = str(value).lower() if name in MODULES[module]["emails"] else value
        for rec in store.module_records(org_id, module).values():
            current = rec.get(name)
            current = str(current).lower() if name in MODULES[module]["emails"] and current else current
            if current == wanted and rec["id"] != ignore_id:
                return name, rec
    return None


def duplicate_error(store: Store, org_id: str, module: str, name: str, rec: dict, index: int) -> dict[str, Any]:
    owner = store.users.get(rec["Owner"]) or {}
    return error_item("DUPLICATE_DATA", "duplicate data", {
        "api_name": name, "json_path": f"$.data[{index}].{name}", "more_records": False,
        "duplicate_record": {"id": rec["id"], "module": {"api_name": module, "id": MODULES[module]["module_id"]},
                             "Owner": {"name": directory.full_name(owner) if owner else "", "id": rec["Owner"],
                                       "zuid": owner.get("zuid")}}})


def insert(store: Store, notifier: Notifier, org_id: str, module: str, actor_id: str, items: list[Any],
           data_source: str, duplicate_check: list[str] | None = None) -> list[dict[str, Any]]:
    """Create records; one result per input item, in input order."""
    results, created = [], []
    with store.lock:
        for index, item in enumerate(items):
            fields, problem = validate(store, org_id, module, item, index, None)
            if problem is None and duplicate_check:
                found = _duplicate(store, org_id, module, fields, duplicate_check)
                if found:
                    problem = duplicate_error(store, org_id, module, found[0], found[1], index)
            if problem:
                results.append(problem)
                continue
            rec = create_record(store, org_id, module, actor_id, fields, data_source)
            created.append(rec["id"])
            results.append({"code": "SUCCESS", "details": success_details(store, org_id, rec),
                            "message": "record added", "status": "success"})
    notifier.changed(org_id, module, "insert", created, {})
    return results


def create_record(store: Store, org_id: str, module: str, actor_id: str, fields: dict[str, Any],
            data_source: str) -> dict[str, Any]:
    now = store.now()
    rec = {"id": store.new_id(), **fields}
    rec["Owner"] = fields.get("Owner") or actor_id
    rec.update({"Created_By": actor_id, "Modified_By": actor_id, "Created_Time": now, "Modified_Time": now,
                "Data_Source": data_source})
    store.module_records(org_id, module)[rec["id"]] = rec
    return rec


def _apply(store: Store, rec: dict[str, Any], actor_id: str, fields: dict[str, Any]) -> list[str]:
    changed = [k for k, v in fields.items() if rec.get(k) != v]
    rec.update(fields)
    rec["Modified_By"] = actor_id
    rec["Modified_Time"] = store.now()
    return changed


def update(store: Store, notifier: Notifier, org_id: str, module: str, actor_id: str,
           items: list[Any], data_source: str | None = None,
           unmodified_since: float | None = None) -> list[dict[str, Any]]:
    """Update records by id. ``data_source`` is set only by a person's mass update, which the CRM records.

    ``unmodified_since`` (the If-Unmodified-Since header) refuses records changed after it: 412 ALREADY_MODIFIED.
    """
    results, affected = [], {}
    with store.lock:
        table = store.module_records(org_id, module)
        for index, item in enumerate(items):
            rid = str(item.get("id")) if isinstance(item, dict) and item.get("id") else None
            if rid is None:
                results.append(field_error("MANDATORY_NOT_FOUND", "required field not found", "id", index))
                continue
            rec = table.get(rid)
            if rec is None:
                results.append(field_error("INVALID_DATA", "the id given seems to be invalid", "id", index))
                continue
            if unmodified_since is not None and int(rec["Modified_Time"]) > unmodified_since:
                details = success_details(store, org_id, rec)
                results.append(error_item("ALREADY_MODIFIED",
                                          "record updated time has already passed if-unmodified-since time",
                                          {k: details[k] for k in ("id", "Modified_Time", "Modified_By")}))
                continue
            fields, problem = validate(store, org_id, module, item, index, rec)
            if problem:
                results.append(problem)
                continue
            affected[rid] = _apply(store, rec, actor_id, fields)
            if data_source:
                rec["Data_Source"] = data_source
            results.append({"code": "SUCCESS", "details": success_details(store, org_id, rec),
                            "message": "record updated", "status": "success"})
    notifier.changed(org_id, module, "update", list(affected), affected)
    return results


def upsert(store: Store, notifier: Notifier, org_id: str, module: str, actor_id: str, items: list[Any],
           check_fields: list[str] | None) -> list[dict[str, Any]]:
    check = check_fields if check_fields else MODULES[module]["duplicate_check"]
    results, created, affected = [], [], {}
    with store.lock:
        table = store.module_records(org_id, module)
        for index, item in enumerate(items):
            match, matched_on = None, None
            if isinstance(item, dict) and item.get("id"):
                match = table.get(str(item["id"]))
                if match is None:
                    results.append(field_error("INVALID_DATA", "the id given seems to be invalid", "id", index))
                    continue
                matched_on = "id"
            fields, problem = validate(store, org_id, module, item, index, match)
            if problem is None and match is None:
                found = _duplicate(store, org_id, module, fields, check)
                if found:
                    matched_on, match = found
                    fields, problem = validate(store, org_id, module, item, index, match)
            if problem:
                results.append(problem)
                continue
            if match is not None:
                affected[match["id"]] = _apply(store, match, actor_id, fields)
                result = {"code": "SUCCESS", "duplicate_field": matched_on, "action": "update",
                          "details": success_details(store, org_id, match), "message": "record updated",
                          "status": "success"}
            else:
                rec = create_record(store, org_id, module, actor_id, fields, "API")
                created.append(rec["id"])
                result = {"code": "SUCCESS", "duplicate_field": None, "action": "insert",
                          "details": success_details(store, org_id, rec), "message": "record added",
                          "status": "success"}
            results.append(result)
    notifier.changed(org_id, module, "insert", created, {})
    notifier.changed(org_id, module, "update", list(affected), affected)
    return results


def delete(store: Store, notifier: Notifier, org_id: str, module: str, actor_id: str,
           ids: list[str]) -> list[dict[str, Any]]:
    results, gone = [], []
    with store.lock:
        table = store.module_records(org_id, module)
        for rid in ids:
            rec = table.pop(rid, None)
            if rec is None:
                results.append(error_item("INVALID_DATA", "the id given seems to be invalid", {"id": rid}))
                continue
            store.deleted[org_id][module].append({
                "id": rid, "display_name": _display_name(module, rec), "type": "recycle",
                "deleted_by": actor_id, "created_by": rec["Created_By"], "deleted_time": store.now(),
                "record": rec})
            gone.append(rid)
            results.append({"code": "SUCCESS", "details": {"id": rid}, "message": "record deleted",
                            "status": "success"})
    notifier.changed(org_id, module, "delete", gone, {})
    return results


def empty_recycle_bin(store: Store, org_id: str, module: str) -> int:
    """What emptying the Recycle Bin does: entries become permanent deletions."""
    with store.lock:
        count = 0
        for entry in store.deleted[org_id][module]:
            if entry["type"] == "recycle":
                entry["type"] = "permanent"
                entry["record"] = None
                count += 1
        return count


def visible_deleted(store: Store, org_id: str, module: str, kind: str) -> list[dict[str, Any]]:
    now = store.now()
    out = []
    for entry in store.deleted[org_id][module]:
        keep = RECYCLE_RETENTION if entry["type"] == "recycle" else PERMANENT_RETENTION
        if now - entry["deleted_time"] > keep:
            continue
        if kind in ("all", entry["type"]):
            out.append(entry)
    return sorted(out, key=lambda e: (e["deleted_time"], e["id"]), reverse=True)


def deleted_json(store: Store, org_id: str, entry: dict[str, Any]) -> dict[str, Any]:
    def user(uid: str | None) -> dict[str, Any] | None:
        m = directory.minified(store, uid)
        return {"name": m["name"], "id": m["id"]} if m else None
    return {"deleted_by": user(entry["deleted_by"]), "id": entry["id"], "display_name": entry["display_name"],
            "type": entry["type"], "created_by": user(entry["created_by"]),
            "deleted_time": store.org_time(org_id, entry["deleted_time"])}


def write_credits(count: int) -> int:
    """Insert/update/upsert cost one credit per ten records (at least one)."""
    return max(1, math.ceil(count / 10))
