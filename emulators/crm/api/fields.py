"""CRM API v8 field metadata: ``GET /settings/fields?module={module}`` (Zoho's "Fields Meta Data").

Shape of the documented answer: ``{"fields": [{"api_name", "field_label", "display_label",
"data_type", "json_type", "length", "read_only", "field_read_only", "system_mandatory",
"custom_field", "visible", "id", "pick_list_values": [{"display_value", "actual_value", "id"}],
"lookup": {"module": {"api_name", "id"}}}]}``. Scope ``ZohoCRM.settings.fields.READ`` (or
``.ALL``, or ``ZohoCRM.settings.ALL``). ``module`` is mandatory; an unknown module is 400
``INVALID_MODULE``. The emulator describes the fields its records carry (``records.MODULES``),
with the CRM's documented default lengths.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, jsonify, request

from .. import records
from ..errors import CrmError, required_param
from .access import api_call
from .common import bind_dc

bp = Blueprint("crm_fields", __name__)
bp.url_value_preprocessor(bind_dc)

# api_name -> (label, data_type, length); fields not listed are text of 255.
_CONTACT_FIELDS: dict[str, tuple[str, str, int]] = {
    "First_Name": ("First Name", "text", 40),
    "Last_Name": ("Last Name", "text", 80),
    "Full_Name": ("Full Name", "text", 120),
    "Salutation": ("Salutation", "picklist", 120),
    "Email": ("Email", "email", 100),
    "Secondary_Email": ("Secondary Email", "email", 100),
    "Phone": ("Phone", "phone", 30),
    "Mobile": ("Mobile", "phone", 30),
    "Home_Phone": ("Home Phone", "phone", 30),
    "Other_Phone": ("Other Phone", "phone", 30),
    "Fax": ("Fax", "phone", 30),
    "Asst_Phone": ("Asst Phone", "phone", 30),
    "Assistant": ("Assistant", "text", 30),
    "Title": ("Title", "text", 100),
    "Department": ("Department", "text", 30),
    "Date_of_Birth": ("Date of Birth", "date", 20),
    "Account_Name": ("Account Name", "lookup", 100),
    "Vendor_Name": ("Vendor Name", "lookup", 100),
    "Reporting_To": ("Reports To", "lookup", 100),
    "Mailing_Street": ("Mailing Street", "textarea", 250),
    "Mailing_City": ("Mailing City", "text", 30),
    "Mailing_State": ("Mailing State", "text", 30),
    "Mailing_Zip": ("Mailing Zip", "text", 30),
    "Mailing_Country": ("Mailing Country", "text", 30),
    "Other_Street": ("Other Street", "textarea", 250),
    "Other_City": ("Other City", "text", 30),
    "Other_State": ("Other State", "text", 30),
    "Other_Zip": ("Other Zip", "text", 30),
    "Other_Country": ("Other Country", "text", 30),
    "Description": ("Description", "textarea", 32000),
    "Lead_Source": ("Lead Source", "picklist", 120),
    "Email_Opt_Out": ("Email Opt Out", "boolean", 5),
    "Skype_ID": ("Skype ID", "text", 50),
    "Twitter": ("Twitter", "text", 50),
    "Owner": ("Contact Owner", "ownerlookup", 120),
    "Tag": ("Tag", "text", 2000),
    "Created_By": ("Created By", "ownerlookup", 120),
    "Created_Time": ("Created Time", "datetime", 120),
    "Modified_By": ("Modified By", "ownerlookup", 120),
    "Modified_Time": ("Modified Time", "datetime", 120),
    "Last_Activity_Time": ("Last Activity Time", "datetime", 120),
    "Data_Source": ("Data Source", "picklist", 120),
    "Record_Status__s": ("Record Status", "picklist", 120),
}
_EVENT_FIELDS: dict[str, tuple[str, str, int]] = {
    "Event_Title": ("Title", "text", 255),
    "Start_DateTime": ("From", "datetime", 120),
    "End_DateTime": ("To", "datetime", 120),
    "All_day": ("All day", "boolean", 5),
    "Venue": ("Location", "text", 255),
    "Description": ("Description", "textarea", 32000),
    "Owner": ("Host", "ownerlookup", 120),
    "Participants": ("Participants", "multiselectlookup", 2000),
    "Who_Id": ("Contact Name", "lookup", 120),
    "What_Id": ("Related To", "lookup", 120),
    "Remind_At": ("Remind At", "ALARM", 120),
    "Recurring_Activity": ("Repeat", "RRULE", 120),
    "Created_By": ("Created By", "ownerlookup", 120),
    "Created_Time": ("Created Time", "datetime", 120),
    "Modified_By": ("Modified By", "ownerlookup", 120),
    "Modified_Time": ("Modified Time", "datetime", 120),
    "Tag": ("Tag", "text", 2000),
    "Data_Source": ("Data Source", "picklist", 120),
}
# Computed or system-kept: the CRM reports them as read-only. Tag changes through the Tags API.
_READ_ONLY = records.READ_ONLY | {"Tag", "Record_Status__s"}
_LOOKUP_MODULES = {"Account_Name": "Accounts", "Vendor_Name": "Vendors", "Reporting_To": "Contacts",
                   "Who_Id": "Contacts", "What_Id": "Accounts"}
_PICKLISTS: dict[str, tuple[str, ...]] = {
    "Salutation": ("Mr.", "Mrs.", "Ms.", "Dr.", "Prof."),
    "Lead_Source": ("Advertisement", "Cold Call", "Employee Referral", "External Referral", "Online Store",
                    "Partner", "Public Relations", "Sales Email Alias", "Seminar Partner", "Internal Seminar",
                    "Trade Show", "Web Download", "Web Research", "Chat"),
    "Data_Source": records.PERSON_SOURCES,
    "Record_Status__s": ("Available", "Draft", "Trash"),
}
_JSON_TYPES = {"boolean": "boolean", "lookup": "jsonobject", "ownerlookup": "jsonobject",
               "multiselectlookup": "jsonarray", "ALARM": "jsonarray", "RRULE": "jsonobject"}


def _field(module: str, index: int, api_name: str, label: str, data_type: str, length: int) -> dict[str, Any]:
    spec = records.MODULES[module]
    read_only = api_name in _READ_ONLY
    field: dict[str, Any] = {
        "api_name": api_name,
        "field_label": label,
        "display_label": label,
        "data_type": data_type,
        "json_type": _JSON_TYPES.get(data_type, "string"),
        "length": length,
        "read_only": read_only,
        "field_read_only": read_only,
        "system_mandatory": api_name in spec["mandatory"],
        "custom_field": False,
        "visible": True,
        "id": str(int(spec["module_id"]) + 100 + index),
        "pick_list_values": [
            {"display_value": value, "actual_value": value, "id": str(int(spec["module_id"]) + 1000 + i)}
            for i, value in enumerate(_PICKLISTS.get(api_name, ()))
        ],
    }
    if data_type == "lookup":
        field["lookup"] = {"module": {"api_name": _LOOKUP_MODULES.get(api_name, "Accounts")}}
    return field


def module_fields(module: str) -> list[dict[str, Any]]:
    table = _CONTACT_FIELDS if module == "Contacts" else _EVENT_FIELDS
    names = [name for name in records.MODULES[module]["fields"] if not name.startswith("$")]
    return [_field(module, i, name, *table.get(name, (name.replace("_", " "), "text", 255)))
            for i, name in enumerate(names)]


@bp.get("/settings/fields")
def list_fields() -> Any:
    module = request.args.get("module")
    with api_call(("settings", "fields"), "READ"):
        if not module:
            raise required_param("module")
        if module not in records.MODULES:
            raise CrmError(400, "INVALID_MODULE", "the module name given seems to be invalid", {"param_name": "module"})
        return jsonify({"fields": module_fields(module)})
