"""sendMail and the messages it leaves: recipient's Inbox (seeded tenants only) and sender's Sent Items."""

from __future__ import annotations

import re

from ..errors import GraphError
from ..store import Mailbox, Store, new_change_key, new_item_id, now_utc
from ..timezones import format_utc_offset

WELL_KNOWN_FOLDERS = {"inbox": "inbox", "sentitems": "sentitems"}


def _case_insensitive(payload: dict, name: str):
    # The v1.0 SDK serialises Message/SaveToSentItems in PascalCase; the docs use camelCase.
    return next((v for k, v in payload.items() if k.lower() == name.lower()), None)


def _recipients(message: dict, name: str) -> list[dict]:
    value = _case_insensitive(message, name) or []
    if not isinstance(value, list):
        raise GraphError(400, "ErrorInvalidRecipients", "At least one recipient isn't valid.")
    result = []
    for r in value:
        email = (r or {}).get("emailAddress") or {}
        address = email.get("address") or ""
        if not re.fullmatch(r"[^@\s]+@[^@\s]+\.[^@\s]+", address):
            raise GraphError(400, "ErrorInvalidRecipients",
                             "At least one recipient isn't valid., A message can't be sent because it contains no recipients.")
        result.append({"emailAddress": {"name": email.get("name") or address, "address": address}})
    return result


def send_mail(store: Store, sender_box: Mailbox, payload: dict) -> None:
    if not isinstance(payload, dict):
        raise GraphError(400, "BadRequest", "Empty Payload. JSON content expected.")
    message = _case_insensitive(payload, "message")
    if not isinstance(message, dict):
        raise GraphError(400, "ErrorInvalidParameter", "The value of the parameter 'Message' is empty.")
    to = _recipients(message, "toRecipients")
    cc = _recipients(message, "ccRecipients")
    bcc = _recipients(message, "bccRecipients")
    if not (to or cc or bcc):
        raise GraphError(400, "ErrorInvalidRecipients", "At least one recipient isn't valid., A message can't be sent because it contains no recipients.")
    body = _case_insensitive(message, "body") or {}
    content_type = str(body.get("contentType") or "text").lower()
    if content_type not in ("text", "html"):
        raise GraphError(400, "BadRequest", f"Requested value '{body.get('contentType')}' was not found.")
    sender = store.users[sender_box.user_id]
    sender_address = {"emailAddress": {"name": sender["displayName"], "address": sender.get("mail") or sender["userPrincipalName"]}}
    save = _case_insensitive(payload, "saveToSentItems")
    now = now_utc()
    base = {
        "subject": _case_insensitive(message, "subject") or "",
        "body": {"contentType": content_type, "content": body.get("content") or ""},
        "from": sender_address, "sender": sender_address, "toRecipients": to, "ccRecipients": cc, "bccRecipients": [],
        "replyTo": _recipients(message, "replyTo"), "sentDateTime": now, "receivedDateTime": now,
        "internetMessageHeaders": _case_insensitive(message, "internetMessageHeaders") or [],
        "importance": (_case_insensitive(message, "importance") or "normal"),
        "hasAttachments": bool(_case_insensitive(message, "attachments")),
        "internetMessageId": f"<{new_item_id()[:24]}@emulator.local>",
    }
    delivered = []
    with store.lock:
        for recipient in to + cc + bcc:
            user = store.find_user_by_mail(recipient["emailAddress"]["address"])
            if user is None or user["id"] not in store.mailboxes:
                # Outside the seeded tenants: delivered elsewhere (kept for /__emulator/mailbox/<address>).
                address = str(recipient["emailAddress"]["address"]).lower()
                store.outside_mail.setdefault(address, []).append({**base, "id": new_item_id(), "folder": "inbox"})
                continue
            box = store.mailboxes[user["id"]]
            item = {**base, "id": new_item_id(), "folder": "inbox", "isRead": False, "changeKey": new_change_key()}
            box.messages[item["id"]] = item
            delivered.append((box.user_id, item["id"]))
        if save is not False:
            item = {**base, "id": new_item_id(), "folder": "sentitems", "isRead": True, "changeKey": new_change_key()}
            sender_box.messages[item["id"]] = item
    for user_id, message_id in delivered:
        store.changed(user_id, "message", "inbox", message_id, "created")


def render_message(item: dict) -> dict:
    content = item["body"]["content"]
    return {
        "@odata.etag": f'W/"{item["changeKey"]}"',
        "id": item["id"],
        "createdDateTime": format_utc_offset(item["receivedDateTime"]),
        "lastModifiedDateTime": format_utc_offset(item["receivedDateTime"]),
        "changeKey": item["changeKey"],
        "categories": [],
        "receivedDateTime": format_utc_offset(item["receivedDateTime"]),
        "sentDateTime": format_utc_offset(item["sentDateTime"]),
        "hasAttachments": item["hasAttachments"],
        "internetMessageId": item["internetMessageId"],
        "subject": item["subject"],
        "bodyPreview": re.sub(r"<[^>]+>", "", content).strip()[:255],
        "importance": item["importance"],
        "parentFolderId": item["folder"],
        "isRead": item["isRead"],
        "isDraft": False,
        "body": item["body"],
        "sender": item["sender"],
        "from": item["from"],
        "toRecipients": item["toRecipients"],
        "ccRecipients": item["ccRecipients"],
        "bccRecipients": item["bccRecipients"],
        "replyTo": item["replyTo"],
    }


def list_messages(box: Mailbox, folder: str | None) -> list[dict]:
    items = [m for m in box.messages.values() if folder is None or m["folder"] == folder]
    return sorted(items, key=lambda m: m["receivedDateTime"], reverse=True)
