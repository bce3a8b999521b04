"""Small builders for the case tests: link rows and observations with readable defaults."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime, timedelta

from pydantic import JsonValue

from shared.sync import (
    DEFAULT_NORMALISATION,
    DeleteSignal,
    ItemDeleted,
    ItemSeen,
    LinkRow,
    LinkState,
    Observation,
    Plan,
    SideChanges,
    plan,
)

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
EARLIER = NOW - timedelta(hours=1)
BASE: dict[str, JsonValue] = {"subject": "Call", "location": "Room 1", "notes": "agenda"}


def synced(fields: dict[str, JsonValue] | None = None, **changes: object) -> LinkRow:
    """A synced link L1 between CRM C1 (version c1) and Outlook O1 (version o1)."""
    fields = BASE if fields is None else fields
    row = LinkRow(
        link_id="L1",
        state=LinkState.SYNCED,
        crm_id="C1",
        outlook_id="O1",
        crm_version="c1",
        outlook_version="o1",
        fields=fields,
        content_hash=DEFAULT_NORMALISATION.fingerprint(fields),
        synced_at=EARLIER,
    )
    return row.replace(**changes) if changes else row


def seen(
    item_id: str,
    version: str,
    fields: dict[str, JsonValue] | None = None,
    *,
    partner: str | None = None,
    at: datetime = NOW,
    excluded: str | None = None,
) -> ItemSeen:
    return ItemSeen(item_id, version, BASE if fields is None else fields, at, partner, excluded)


def gone(item_id: str, signal: DeleteSignal = DeleteSignal.GRAPH_REMOVED) -> ItemDeleted:
    return ItemDeleted(item_id, signal)


def side(*observations: Observation) -> SideChanges:
    return SideChanges(
        tuple(obs for obs in observations if isinstance(obs, ItemSeen)),
        tuple(obs for obs in observations if isinstance(obs, ItemDeleted)),
    )


def run(
    links: Iterable[LinkRow],
    crm: Iterable[Observation] = (),
    outlook: Iterable[Observation] = (),
    **options: object,
) -> Plan:
    return plan(list(links), side(*crm), side(*outlook), now=NOW, **options)  # type: ignore[arg-type]


def kinds(result: Plan) -> list[str]:
    """The plan as action type names (with the skip reason), for compact assertions."""
    return [
        type(action).__name__ + (f":{action.reason}" if hasattr(action, "reason") else "")
        for action in result.actions
    ]


def edited(**changes: JsonValue) -> dict[str, JsonValue]:
    return {**BASE, **changes}
