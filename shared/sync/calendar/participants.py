"""Participants: CRM ``Participants`` ⇄ Outlook, without ever inviting anyone (SPEC R3.9; issue 7).

Graph mails an invitation whenever an event with attendees is created, an update when
attendees change and a cancellation when it is deleted, and that cannot be turned off
(graph-notes §2). So **we never write Graph ``attendees``**. CRM participants are shown
in the Outlook body as a marked block, in the HTML we write::

    — CRM participants —
    Ada Lovelace <ada@example.com>
    Grace Hopper <grace@example.com>
    — end of CRM participants —

Canonical ``attendees``: a list of ``{"email": str | None, "name": str | None}``
sorted by (e-mail, name); compared with e-mails case-folded.

How the two directions coexist:

- **CRM → Outlook**: every participant goes into the block (HTML body). Graph
  ``attendees`` are never sent, so a PATCH leaves whatever the member invited in Outlook
  untouched. People who already are Outlook attendees may be left out of the block
  (``in_outlook``) so they do not show twice.
- **Outlook → canonical**: the block's lines **plus** the real attendees (not
  resources: rooms are places, not people), one entry per e-mail, the block's name
  first. The block is cut out of the description, so it never echoes into the CRM's
  ``Description``.
- **canonical → CRM**: entries matching a current CRM participant (by e-mail, else by
  name) keep that participant as it is (its type ``contact``/``lead``/``user`` and id);
  others become ``type: "email"`` participants, ``invited: false`` (we do not ask the
  CRM to mail them either). A name-only line typed into the block has neither an
  e-mail nor a record, so the CRM cannot hold it: it is dropped, and the next sync
  rewrites the block without it.

Stated limit: removing a person who is a real Outlook attendee must be done in Outlook;
a CRM-side removal is undone on the next read (the attendee is still there), because
removing it in Outlook would mail a cancellation.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from html import escape
from typing import Any

from pydantic import JsonValue

from shared.sync.fingerprint import html_text

BLOCK_START = "— CRM participants —"
BLOCK_END = "— end of CRM participants —"

_DASHES = "—–-"
_START_LINE = re.compile(rf"^[{_DASHES}]+\s*CRM participants\s*[{_DASHES}]+$", re.IGNORECASE)
_END_LINE = re.compile(rf"^[{_DASHES}]+\s*end of CRM participants\s*[{_DASHES}]+$", re.IGNORECASE)
_BARE_ADDRESS = re.compile(r"^[^<>\s]+@[^<>\s]+$")
_SPACES = re.compile(r"\s+")

Person = dict[str, JsonValue]


def person(email: str | None, name: str | None) -> Person:
    email = (email or "").strip() or None
    name = _SPACES.sub(" ", name or "").strip() or None
    if name and email and name.casefold() == email.casefold():
        name = None  # the CRM names an e-mail participant by its address: no name of its own
    return {"email": email, "name": name}


def _key(entry: Mapping[str, Any]) -> tuple[str, str]:
    return (str(entry.get("email") or "").casefold(), str(entry.get("name") or "").casefold())


def sorted_people(people: Iterable[Mapping[str, Any]]) -> list[Person]:
    """One entry per e-mail (the first seen wins), name-only entries once each, sorted."""
    unique: dict[tuple[str, str], Person] = {}
    for entry in people:
        one = person(entry.get("email"), entry.get("name"))
        if one["email"] is None and one["name"] is None:
            continue
        email, name = _key(one)
        unique.setdefault((email, "") if email else ("", name), one)
    return sorted(unique.values(), key=_key)


def normalise_people(value: JsonValue) -> JsonValue:
    """Compared: e-mails case-folded, names with single spaces, order ignored."""
    if not isinstance(value, list):
        return value or None
    people = [
        {"email": str(e.get("email") or "").casefold() or None, "name": person(None, e.get("name"))["name"]}
        for e in sorted_people(e for e in value if isinstance(e, Mapping))
    ]
    return [{k: v for k, v in entry.items() if v is not None} for entry in people] or None


# --- CRM ------------------------------------------------------------------------------------


def people_from_crm(participants: Any) -> list[Person]:
    """Canonical people of a CRM ``Participants`` list (zoho-notes §4: name, Email, type, participant)."""
    if not isinstance(participants, list):
        return []
    people = []
    for item in participants:
        if not isinstance(item, Mapping):
            continue
        email = item.get("Email") or (item.get("participant") if item.get("type") == "email" else None)
        people.append({"email": email if isinstance(email, str) else None, "name": item.get("name")})
    return sorted_people(people)


def people_to_crm(people: Sequence[Mapping[str, Any]], current: Sequence[Mapping[str, Any]] = ()) -> list[JsonValue]:
    """The CRM ``Participants`` for canonical ``people``, keeping matching ``current`` ones."""
    by_email = {str(p.get("Email") or "").casefold(): p for p in current if p.get("Email")}
    by_name = {str(p.get("name") or "").casefold(): p for p in current if p.get("name")}
    result: list[JsonValue] = []
    for entry in sorted_people(people):
        email, name = _key(entry)
        kept = (by_email.get(email) if email else None) or (by_name.get(name) if name else None)
        if kept is not None:
            result.append(dict(kept))
        elif entry["email"]:
            address = str(entry["email"])
            result.append(
                {"type": "email", "participant": address, "Email": address, "name": entry["name"] or address,
                 "invited": False}
            )
    return result


# --- Outlook ----------------------------------------------------------------------------------


def people_from_graph_attendees(attendees: Any) -> list[Person]:
    if not isinstance(attendees, list):
        return []
    people = []
    for attendee in attendees:
        if not isinstance(attendee, Mapping) or attendee.get("type") == "resource":
            continue
        address = attendee.get("emailAddress") or {}
        people.append({"email": address.get("address"), "name": address.get("name")})
    return sorted_people(people)


def _line_of(entry: Mapping[str, Any]) -> str:
    if entry.get("email") and entry.get("name"):
        return f"{entry['name']} <{entry['email']}>"
    return str(entry.get("email") or entry.get("name"))


def _named_address(line: str) -> tuple[str, str] | None:
    r"""``Name <address>``: the name and the address, or None. (Not a regex: ``.*?\s*<`` rescans a
    long run of blanks once per position, quadratic on hostile text.)"""
    if not line.endswith(">") or "<" not in line:
        return None
    at = line.rindex("<")
    address = line[at + 1:-1]
    return (line[:at].rstrip(), address) if _BARE_ADDRESS.match(address) else None


def _entry_of(line: str) -> Person:
    if found := _named_address(line):
        return person(found[1], found[0])
    if _BARE_ADDRESS.match(line):
        return person(line, None)
    return person(None, line)


def body_text(content: str, content_type: str) -> str:
    """The text of a Graph body (HTML bodies reduced to their lines, as compared)."""
    if str(content_type).lower() == "html":
        return str(html_text(content) or "")
    return content


def split_body(text: str) -> tuple[str, list[Person]]:
    """(the description without the block, the people listed in the block).

    Lines are matched with spaces collapsed, so Outlook's re-wrapping of our HTML does not
    hide the block; a block whose end line was deleted runs to the end of the body.
    """
    description: list[str] = []
    people: list[Person] = []
    inside = False
    for raw in text.replace("\r\n", "\n").replace("\r", "\n").split("\n"):
        line = _SPACES.sub(" ", raw).strip()
        if not inside and _START_LINE.match(line):
            inside = True
        elif inside and _END_LINE.match(line):
            inside = False
        elif inside:
            if line:
                people.append(_entry_of(line))
        else:
            description.append(raw.rstrip())
    return "\n".join(description).strip("\n"), sorted_people(people)


def _block_people(people: Sequence[Mapping[str, Any]], in_outlook: Iterable[str]) -> list[Person]:
    skip = {address.casefold() for address in in_outlook}
    return [p for p in sorted_people(people) if str(p.get("email") or "").casefold() not in skip]


def body_html(description: str | None, people: Sequence[Mapping[str, Any]], in_outlook: Iterable[str] = ()) -> str:
    """The HTML body we write: the description's lines, then the participants block."""
    paragraphs = []
    lines = [escape(line) for line in (description or "").split("\n")]
    if description:
        paragraphs.append("<p>" + "<br>".join(lines) + "</p>")
    block = _block_people(people, in_outlook)
    if block:
        rows = [escape(BLOCK_START), *(escape(_line_of(p)) for p in block), escape(BLOCK_END)]
        paragraphs.append("<p>" + "<br>".join(rows) + "</p>")
    return "<html><body>" + "".join(paragraphs) + "</body></html>" if paragraphs else ""


def body_plain(description: str | None, people: Sequence[Mapping[str, Any]], in_outlook: Iterable[str] = ()) -> str:
    """The same body as text (for a caller that writes ``contentType: text``)."""
    parts = [description] if description else []
    block = _block_people(people, in_outlook)
    if block:
        parts.append("\n".join([BLOCK_START, *(_line_of(p) for p in block), BLOCK_END]))
    return "\n\n".join(parts)
