"""Re-sync after the member changed the contacts field mapping (issue 8: "saving a changed
mapping re-syncs only the fields it changed"). Pure: no I/O.

The engine merges each side's current content against the pair's last synced content (the
row's ``fields``). After a mapping change the row knows nothing of the pairs that were added
or whose direction changed, so :func:`rebase` rewrites the row as if the *target* side's
current value of each such pair had been synced: the source side then shows that pair as
changed, the target as unchanged, and ``plan`` writes exactly those fields to the target.
Pairs removed from the mapping are dropped from the row; nothing is written for them.

Which side is the source of a re-synced pair:

- ``crm_to_outlook``: the CRM; ``outlook_to_crm``: Outlook;
- ``both``: the CRM when it holds a value (the CRM is the system of record), else Outlook,
  so that a newly mapped field fills whichever side is empty and never blanks a value.
"""

from __future__ import annotations

from collections.abc import Mapping

from pydantic import JsonValue

from shared.sync.fingerprint import Normalisation
from shared.sync.links import LinkRow, LinkState, Side

# Versions no observation carries: the engine then compares content, not versions.
_UNKNOWN_VERSION = ""


def _empty(value: JsonValue | None) -> bool:
    return value is None or value == "" or value == [] or value == {}


def source_of(direction: str | None, crm_value: JsonValue | None) -> Side | None:
    """The side a re-synced pair's value comes from; None for a pair no longer mapped."""
    if direction is None:
        return None
    if direction == "crm_to_outlook":
        return Side.CRM
    if direction == "outlook_to_crm":
        return Side.OUTLOOK
    return Side.CRM if not _empty(crm_value) else Side.OUTLOOK


def rebase(
    row: LinkRow,
    crm_fields: Mapping[str, JsonValue],
    outlook_fields: Mapping[str, JsonValue],
    directions: Mapping[str, str | None],
    normalisation: Normalisation,
) -> LinkRow:
    """The row to plan against so that only the ``directions`` pairs are re-synced.

    ``directions`` maps each changed pair key to its new direction (None: removed).
    ``crm_fields`` and ``outlook_fields`` are both sides' current fields under the new
    mapping. Rows that are not synced pairs are returned unchanged.
    """
    if row.state is not LinkState.SYNCED:
        return row
    fields = {key: value for key, value in row.fields.items() if key not in directions}
    for key, direction in directions.items():
        source = source_of(direction, crm_fields.get(key))
        if source is None:
            continue
        target_value = (outlook_fields if source is Side.CRM else crm_fields).get(key)
        if not _empty(target_value):
            fields[key] = target_value
    return row.replace(
        fields=fields,
        content_hash=normalisation.fingerprint(fields),
        crm_version=_UNKNOWN_VERSION,
        outlook_version=_UNKNOWN_VERSION,
    )
