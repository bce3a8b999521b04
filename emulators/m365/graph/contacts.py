"""Contact folders and contacts of a mailbox: validation, storage and Graph's JSON shape."""

from __future__ import annotations

from ..errors import GraphError, not_found_item
from ..store import Mailbox, Store, new_change_key, new_item_id, now_utc
from ..timezones import format_utc_offset
from .odata import check_if_match, extended_properties_from

# contact-update: every contact property except id, createdDateTime, lastModifiedDateTime, changeKey.
WRITABLE = {
    "assistantName", "birthday", "businessAddress", "businessHomePage", "businessPhones", "categories", "children",
    "companyName", "department", "displayName", "emailAddresses", "fileAs", "generation", "givenName", "homeAddress",
    "homePhones", "imAddresses", "initials", "jobTitle", "manager", "middleName", "mobilePhone", "nickName",
    "officeLocation", "otherAddress", "personalNotes", "profession", "spouseName", "surname", "title",
    "yomiCompanyName", "yomiGivenName", "yomiSurname", "primaryEmailAddress", "secondaryEmailAddress",
    "tertiaryEmailAddress",
}
READ_ONLY_IGNORED = {"id", "@odata.type", "@odata.etag", "createdDateTime", "lastModifiedDateTime", "changeKey",
                     "parentFolderId", "singleValueExtendedProperties", "multiValueExtendedProperties", "photo", "extensions"}
COLLECTIONS = {"businessPhones", "categories", "children", "emailAddresses", "homePhones", "imAddresses"}
ADDRESS_FIELDS = {"street", "city", "state", "countryOrRegion", "postalCode"}
EMPTY_ADDRESS: dict = {}


def _check(payload: dict) -> None:
    if not isinstance(payload, dict):
        raise GraphError(400, "BadRequest", "Empty Payload. JSON content expected.")
    for key, value in payload.items():
        if key in READ_ONLY_IGNORED or key.startswith("@"):
            continue
        if key not in WRITABLE:
            raise GraphError(400, "RequestBodyRead", f"The property '{key}' does not exist on type 'microsoft.graph.contact'. "
                             "Make sure to only use property names that are defined by the type or mark the type as open type.")
        if key in COLLECTIONS and value is not None and not isinstance(value, list):
            raise GraphError(400, "RequestBodyRead", f"A node of type 'PrimitiveValue' was read where a collection was expected for '{key}'.")
        if key.endswith("Address") and key not in {"primaryEmailAddress", "secondaryEmailAddress", "tertiaryEmailAddress"} \
                and value is not None and (not isinstance(value, dict) or set(value) - ADDRESS_FIELDS - {"@odata.type"}):
            raise GraphError(400, "RequestBodyRead", f"Invalid physicalAddress for '{key}'.")


def _auto_display_name(data: dict) -> str:
    parts = [data.get("givenName"), data.get("middleName"), data.get("surname")]
    name = " ".join(p for p in parts if p)
    if not name and data.get("emailAddresses"):
        name = data["emailAddresses"][0].get("name") or data["emailAddresses"][0].get("address") or ""
    return name or data.get("companyName") or ""


def get_folder(box: Mailbox, folder_id: str) -> dict:
    folder = box.contact_folders.get(folder_id)
    if folder is None:
        raise not_found_item()
    return folder


def create_folder(store: Store, box: Mailbox, payload: dict, default: bool = False) -> dict:
    with store.lock:
        name = (payload or {}).get("displayName") if isinstance(payload, dict) else None
        if not name or not str(name).strip():
            raise GraphError(400, "ErrorInvalidParameter", "The parameter 'displayName' is missing or empty.")
        unknown = set(payload) - {"displayName", "parentFolderId", "singleValueExtendedProperties", "@odata.type"}
        if unknown:
            raise GraphError(400, "RequestBodyRead", f"The property '{sorted(unknown)[0]}' does not exist on type 'microsoft.graph.contactFolder'.")
        if any(f["displayName"].lower() == name.strip().lower() for f in box.contact_folders.values()):
            raise GraphError(409, "ErrorFolderExists", "A folder with the specified name already exists.")
        root = box.contact_folders and next((f["parentFolderId"] for f in box.contact_folders.values() if f["isDefault"]), None)
        folder = {
            "id": new_item_id(), "displayName": name.strip(), "parentFolderId": payload.get("parentFolderId") or root or new_item_id(),
            "isDefault": default, "changeKey": new_change_key(), "ext": extended_properties_from(payload),
        }
        box.contact_folders[folder["id"]] = folder
    store.changed(box.user_id, "contactFolder", folder["parentFolderId"], folder["id"], "created")
    return folder


def update_folder(store: Store, box: Mailbox, folder_id: str, payload: dict) -> dict:
    with store.lock:
        folder = get_folder(box, folder_id)
        if "displayName" in payload:
            folder["displayName"] = payload["displayName"]
        folder["ext"].update(extended_properties_from(payload))
        folder["changeKey"] = new_change_key()
    store.changed(box.user_id, "contactFolder", folder["parentFolderId"], folder_id, "updated")
    return folder


def delete_folder(store: Store, box: Mailbox, folder_id: str) -> None:
    with store.lock:
        folder = get_folder(box, folder_id)
        if folder["isDefault"]:
            raise GraphError(400, "ErrorDeleteDistinguishedFolder", "Distinguished folders cannot be deleted.")
        removed = [c for c in box.contacts.values() if c["parentFolderId"] == folder_id]
        for contact in removed:
            del box.contacts[contact["id"]]
        del box.contact_folders[folder_id]
    for contact in removed:
        store.changed(box.user_id, "contact", folder_id, contact["id"], "deleted")
    store.changed(box.user_id, "contactFolder", folder["parentFolderId"], folder_id, "deleted")


def render_folder(folder: dict, ext_ids: list[str] | None = None) -> dict:
    result = {"id": folder["id"], "displayName": folder["displayName"], "parentFolderId": folder["parentFolderId"]}
    if ext_ids:
        result["singleValueExtendedProperties"] = [{"id": p, "value": folder["ext"][p]} for p in ext_ids if p in folder["ext"]]
    return result


def find_contact(box: Mailbox, contact_id: str, folder_id: str | None = None) -> dict:
    contact = box.contacts.get(contact_id)
    if contact is None or (folder_id is not None and contact["parentFolderId"] != folder_id):
        raise not_found_item()
    return contact


def create_contact(store: Store, box: Mailbox, folder_id: str, payload: dict) -> dict:
    with store.lock:
        get_folder(box, folder_id)
        _check(payload)
        data = {k: v for k, v in payload.items() if k in WRITABLE}
        explicit_name = "displayName" in data and data["displayName"]
        contact = {
            "id": new_item_id(), "parentFolderId": folder_id, "createdDateTime": now_utc(), "lastModifiedDateTime": now_utc(),
            "changeKey": new_change_key(), "data": data, "ext": extended_properties_from(payload),
            "explicitDisplayName": bool(explicit_name),
        }
        if not explicit_name:
            data["displayName"] = _auto_display_name(data)
        box.contacts[contact["id"]] = contact
    store.changed(box.user_id, "contact", folder_id, contact["id"], "created")
    return contact


def update_contact(store: Store, box: Mailbox, contact_id: str, payload: dict, folder_id: str | None = None,
                   if_match: str | None = None) -> dict:
    with store.lock:
        contact = find_contact(box, contact_id, folder_id)
        check_if_match(contact, if_match)
        _check(payload)
        data = contact["data"]
        data.update({k: v for k, v in payload.items() if k in WRITABLE})
        if "displayName" not in payload and ({"givenName", "surname", "middleName"} & set(payload)):
            # contact-update: later updates to name parts may regenerate displayName.
            data["displayName"] = _auto_display_name(data)
        contact["ext"].update(extended_properties_from(payload))
        contact["changeKey"] = new_change_key()
        contact["lastModifiedDateTime"] = now_utc()
    store.changed(box.user_id, "contact", contact["parentFolderId"], contact_id, "updated")
    return contact


def delete_contact(store: Store, box: Mailbox, contact_id: str, folder_id: str | None = None) -> None:
    with store.lock:
        contact = find_contact(box, contact_id, folder_id)
        del box.contacts[contact_id]
    store.changed(box.user_id, "contact", contact["parentFolderId"], contact_id, "deleted")


def move_contact(store: Store, box: Mailbox, contact_id: str, destination_id: str | None) -> dict:
    """A person drags a contact to another folder in Outlook (Graph v1.0 has no move for
    contacts): Exchange gives it a new id there and keeps its extended properties; the folder
    it left reports it deleted, the other one created. ``destination_id`` None: the default folder."""
    with store.lock:
        contact = find_contact(box, contact_id)
        destination = destination_id or next(f["id"] for f in box.contact_folders.values() if f["isDefault"])
        get_folder(box, destination)
        moved = {**contact, "id": new_item_id(), "parentFolderId": destination, "changeKey": new_change_key(),
                 "lastModifiedDateTime": now_utc()}
        del box.contacts[contact_id]
        box.contacts[moved["id"]] = moved
    store.changed(box.user_id, "contact", contact["parentFolderId"], contact_id, "deleted")
    store.changed(box.user_id, "contact", destination, moved["id"], "created")
    return moved


def render_contact(contact: dict, ext_ids: list[str] | None = None) -> dict:
    data = contact["data"]
    result = {
        "@odata.etag": f'W/"{contact["changeKey"]}"',
        "id": contact["id"],
        "createdDateTime": format_utc_offset(contact["createdDateTime"]),
        "lastModifiedDateTime": format_utc_offset(contact["lastModifiedDateTime"]),
        "changeKey": contact["changeKey"],
        "parentFolderId": contact["parentFolderId"],
    }
    for key in sorted(WRITABLE):
        if key in COLLECTIONS:
            result[key] = data.get(key) or []
        elif key in {"businessAddress", "homeAddress", "otherAddress"}:
            result[key] = data.get(key) or dict(EMPTY_ADDRESS)
        elif key in {"primaryEmailAddress", "secondaryEmailAddress", "tertiaryEmailAddress"}:
            if data.get(key) is not None:
                result[key] = data[key]
        else:
            result[key] = data.get(key)
    if ext_ids:
        result["singleValueExtendedProperties"] = [{"id": p, "value": contact["ext"][p]} for p in ext_ids if p in contact["ext"]]
    return result
