"""Our own writes' echoes (issue 20: a steady change's cost). Every item a step writes comes
back as a webhook; a step run for it finds nothing to do, at the price of a lease, a release
and the member's rows. An echo is told from a change by the item's version: Graph's
``changeKey`` moves on every write, so a notification naming an item at the version our link
row holds is the echo of our own write.

The CRM's ``Modified_Time`` is in whole seconds, so there the version cannot tell an edit made
within the second of our write; the callback's *affected values* can: an echo changed only
fields our last write sent (``LinkRow.crm_sent``), to the values it sent. Someone else's edit
shows another field or another value (and an edit back to our value changes nothing). A
callback of created records is an echo when each already has its link (a create happens once).

The check is made twice, because the echo often arrives while the writing step still runs
(before its rows are saved):
- at the webhook (``SyncWebhooks._our_own_writes``): the rows saved, nothing is queued;
- at the writing step's release: the webhook queued a step and left what it named on the
  profile's mark (``delta_items``); found to be this step's echoes, the mark is cleared, and the
  queued step, finding no mark, has nothing to do (``SyncService.run``).

Items are kept as strings (a profile property), ``"outlook|{id}|{changeKey}"``,
``"crm|{id}|{field}={digest},..."`` or ``"crm|{id}|created"``, at most ``MAX_ITEMS``; ``None``
means a request that must run (anything else was named, or too much).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from typing import Any, Protocol

from shared.sync.links import LinkState
from shared.sync.ports import LinkRows

MAX_ITEMS = 12
OUTLOOK = "outlook"
CRM = "crm"
CREATED = "created"


class ItemChange(Protocol):
    """One item a notification named (``shared.graph.models.ItemChange``)."""

    @property
    def change_type(self) -> str: ...
    @property
    def item_id(self) -> str | None: ...
    @property
    def change_key(self) -> str | None: ...


def outlook_items(changes: Sequence[ItemChange] | None) -> list[str] | None:
    """The items of a Graph notification as mark entries; None when any cannot be an echo
    (a deletion, no id or version) or there are too many to look at."""
    if not changes or len(changes) > MAX_ITEMS:
        return None
    if any(c.change_type == "deleted" or not c.item_id or not c.change_key for c in changes):
        return None
    return sorted({f"{OUTLOOK}|{c.item_id}|{c.change_key}" for c in changes})


def value_digest(value: Any) -> str:
    """A short digest of one field's value as JSON (the CRM's callback carries its values so)."""
    text = json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def sent_digests(body: Mapping[str, Any]) -> dict[str, str]:
    """What one record's CRM write sent, field by field (``LinkRow.crm_sent``)."""
    return {field: value_digest(value) for field, value in body.items() if field != "id"}


def crm_items(operation: str, ids: Sequence[str], affected_values: Sequence[Any]) -> list[str] | None:
    """The records of a CRM callback as mark entries; None when they cannot be an echo (a
    deletion, an edit without its values) or there are too many to look at."""
    if not ids or len(ids) > MAX_ITEMS or operation not in ("insert", "update"):
        return None
    if operation == "insert":
        return sorted({f"{CRM}|{record_id}|{CREATED}" for record_id in ids})
    values: dict[str, Mapping[str, Any]] = {}
    for entry in affected_values:
        if isinstance(entry, Mapping) and isinstance(entry.get("values"), Mapping):
            values[str(entry.get("record_id"))] = entry["values"]
    if any(record_id not in values for record_id in ids):
        return None
    return sorted({f"{CRM}|{record_id}|" + ",".join(f"{field}={value_digest(v)}" for field, v in sorted(values[record_id].items()))
                   for record_id in ids})


def merged(marked: list[str] | None, named: list[str] | None, *, fresh: bool) -> list[str] | None:
    """The mark's items after one more request: a fresh mark takes the request's; a request
    coalesced into a mark keeps both, and a must-run on either side makes it must-run."""
    if fresh:
        return named
    if marked is None or named is None:
        return None
    together = sorted(set(marked) | set(named))
    return together if len(together) <= MAX_ITEMS else None


def own_echoes(links: LinkRows, links_partition: str, items: Sequence[str]) -> bool:
    """Whether every item is as our own last write left it (one query of the member's links
    in ``links_partition``, their generation's: ``SyncProfile.links_partition``)."""
    outlook: dict[str, str] = {}
    crm: dict[str, str] = {}
    for entry in items:
        side, item_id, detail = (entry.split("|", 2) + ["", ""])[:3]  # ids and versions hold no "|"
        if not item_id or side not in (OUTLOOK, CRM) or side == OUTLOOK and not detail:
            return False
        (outlook if side == OUTLOOK else crm)[item_id] = detail
    if not (outlook or crm) or len(outlook) + len(crm) > MAX_ITEMS:
        return False
    rows = [row for row in links.load(links_partition, crm_ids=sorted(crm), outlook_ids=sorted(outlook))
            if row.state is LinkState.SYNCED]
    by_outlook = {row.outlook_id: row for row in rows}
    by_crm = {row.crm_id: row for row in rows}
    if any(item_id not in by_outlook or by_outlook[item_id].outlook_version != version for item_id, version in outlook.items()):
        return False
    return all(record_id in by_crm and _sent_by_us(by_crm[record_id].crm_sent, detail) for record_id, detail in crm.items())


def _sent_by_us(sent: dict[str, str] | None, detail: str) -> bool:
    """A created record already linked, or an edit of fields our last write sent, to its values."""
    if detail == CREATED:
        return True
    if sent is None:
        return False
    pairs = [pair.partition("=") for pair in detail.split(",") if pair]
    return all(sent.get(field) == digest for field, _, digest in pairs)
