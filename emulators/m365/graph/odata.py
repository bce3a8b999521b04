"""The few OData query forms the emulated operations accept ($select, $top, $filter, $expand)."""

from __future__ import annotations

import re

from ..errors import GraphError

EXT_ANY_FILTER = re.compile(
    r"^singleValueExtendedProperties/any\(\s*(\w+)\s*:\s*\1/id\s+eq\s+'(?P<id>[^']*)'"
    r"(?:\s+and\s+\1/value\s+(?P<op>eq|ne|startswith|contains)\s+'(?P<value>[^']*)')?\s*\)$",
    re.IGNORECASE,
)
EXT_EXPAND = re.compile(
    r"^singleValueExtendedProperties\(\s*\$filter\s*=\s*id\s+eq\s+'(?P<id>[^']*)'\s*\)$", re.IGNORECASE
)
STARTSWITH = re.compile(r"^startswith\(\s*(\w+)\s*,\s*'(?P<value>(?:[^']|'')*)'\s*\)$", re.IGNORECASE)
EQUALS = re.compile(r"^(\w+)\s+eq\s+'(?P<value>(?:[^']|'')*)'$", re.IGNORECASE)


def parse_select(raw: str | None) -> list[str] | None:
    if not raw:
        return None
    return [part.strip() for part in raw.split(",") if part.strip()]


def apply_select(item: dict, select: list[str] | None, always: tuple[str, ...] = ("id", "@odata.etag")) -> dict:
    if not select:
        return item
    lower = {name.lower() for name in select}
    return {k: v for k, v in item.items() if k in always or k.lower() in lower or k.startswith("@")}


def parse_top(raw: str | None, default: int, maximum: int = 999) -> int:
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise GraphError(400, "BadRequest", f"Invalid page size specified: '{raw}'.") from None
    if not 1 <= value <= maximum:
        raise GraphError(400, "Request_UnsupportedQuery" if maximum == 999 else "ErrorInvalidParameter",
                         f"Invalid page size specified: '{raw}'. Must be between 1 and {maximum} inclusive.")
    return value


def expanded_extended_property_ids(raw: str | None) -> list[str] | None:
    """Ids asked for by ``$expand=singleValueExtendedProperties($filter=id eq '...')``."""
    if not raw:
        return None
    ids = []
    for part in raw.split(","):
        match = EXT_EXPAND.match(part.strip())
        if not match:
            raise GraphError(400, "BadRequest", f"Parsing OData Select and Expand failed: unsupported $expand '{part}'.")
        ids.append(match.group("id"))
    return ids


def extended_property_matcher(raw: str):
    """A predicate over an item's extended properties for the documented Any() filter."""
    match = EXT_ANY_FILTER.match(raw.strip())
    if not match:
        return None
    prop_id, op, wanted = match.group("id"), (match.group("op") or "").lower(), match.group("value")

    def predicate(ext: dict[str, str]) -> bool:
        if prop_id not in ext:  # name matching in the id is case-sensitive
            return False
        if not op:
            return True
        value, target = str(ext[prop_id]).lower(), (wanted or "").lower()  # value matching is not
        return {
            "eq": value == target, "ne": value != target,
            "startswith": value.startswith(target), "contains": target in value,
        }[op]

    return predicate


def extended_properties_from(payload: dict) -> dict[str, str]:
    props = payload.get("singleValueExtendedProperties") or []
    if not isinstance(props, list):
        raise GraphError(400, "BadRequest", "singleValueExtendedProperties must be a collection.")
    result = {}
    for prop in props:
        if not isinstance(prop, dict) or not prop.get("id") or "value" not in prop:
            raise GraphError(400, "ErrorInvalidExtendedPropertyValue", "Each extended property needs an id and a value.")
        if not re.match(r"^(String|Integer|Boolean|SystemTime|Long|Double|Binary|Guid)\s", prop["id"]):
            raise GraphError(400, "ErrorInvalidExtendedProperty", f"The extended property id '{prop['id']}' is invalid.")
        result[prop["id"]] = str(prop["value"])
    return result


def check_if_match(item: dict, if_match: str | None) -> None:
    """``If-Match`` on a write: the item's ``@odata.etag`` (``W/"changeKey"``), or ``*``;
    anything else is a change made since the caller read the item: 412."""
    if if_match is None or if_match.strip() == "*":
        return
    wanted = if_match.strip()
    if wanted not in (f'W/"{item["changeKey"]}"', f'"{item["changeKey"]}"', item["changeKey"]):
        raise GraphError(412, "ErrorIrresolvableConflict", "The send or update operation could not be performed because "
                         "the change key passed in the request does not match the current change key for the item.")

