"""Our single-value extended properties: how we recognise our calendar, folder and items.

Graph filters on an extended property's value (graph-notes §2), which open extensions cannot
do, so the CRM id travels in one and our containers carry another (DESIGN §8: "an extended
property carrying the CRM id"). The property set GUID is the product's own and never changes:
changing it would make every tagged item in every mailbox look foreign.
"""

from __future__ import annotations

from shared.graph.models import OutlookItem

PROPERTY_SET = "{8d3b2f4e-6c1a-4e7b-9f25-0a4c7e91b3d6}"
CRM_ID = f"String {PROPERTY_SET} Name CrmId"
SYNC_CONTAINER = f"String {PROPERTY_SET} Name CrmSyncContainer"


def tag(property_id: str, value: str) -> dict[str, list[dict[str, str]]]:
    """The JSON fragment that sets one property in a POST or PATCH body."""
    return {"singleValueExtendedProperties": [{"id": property_id, "value": value}]}


def odata_literal(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def value_filter(property_id: str, value: str) -> str:
    """``$filter`` for items whose property equals ``value`` (the value match is case-insensitive)."""
    return (f"singleValueExtendedProperties/Any(ep: ep/id eq {odata_literal(property_id)} "
            f"and ep/value eq {odata_literal(value)})")


def expand(property_id: str) -> str:
    """``$expand`` that returns the property with the item (Graph never returns it unasked)."""
    return f"singleValueExtendedProperties($filter=id eq {odata_literal(property_id)})"


def crm_id_of(item: OutlookItem) -> str | None:
    """The CRM id we tagged the item with, when it was read with ``expand(CRM_ID)``."""
    return item.extended_property(CRM_ID)
