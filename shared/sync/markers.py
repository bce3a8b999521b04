"""Markers scoped to one generation of a member's sync (issue 17).

A marker is the partner's id we write into an item (the CRM id in an Outlook item's
extended property, the Outlook id in the CRM record's ``Outlook_Id`` field) so that a lost
link row or a create whose answer was lost can be found again (``pairing``).

Each Enable starts a new **generation** (``SyncProfile.generation``): a new container, new
link rows. The CRM outlives generations: after Disable and Enable, a record made in
Outlook still names the Outlook id of the first Enable, an item of a container that was
deleted. Taken at its word, that marker paired the record with a dead id, the first full
delta round read it, got 404, and deleted the record from the CRM as an "Outlook deletion".
So a marker carries its generation, and a marker of another generation means nothing: the
item counts as one no link knows, as if it had no marker.

Format: ``"{generation}:{partner id}"``. Neither CRM ids (digits) nor Graph ids (URL-safe
base64) contain ``:``. A marker without a generation was written before generations
existed; it belongs to the profile without one (``None``) and to no other.
"""

from __future__ import annotations

import secrets

SEPARATOR = ":"


def new_generation() -> str:
    """A fresh generation: random, so that a profile deleted and made again never reuses one."""
    return secrets.token_hex(4)


def encode(generation: str | None, partner_id: str) -> str:
    """The marker written into an item: its partner's id, in this generation."""
    return f"{generation}{SEPARATOR}{partner_id}" if generation else partner_id


def decode(generation: str | None, marker: object) -> str | None:
    """The partner id a marker names, if it was written in ``generation``; otherwise None."""
    if not isinstance(marker, str) or not marker:
        return None
    if SEPARATOR not in marker:
        return marker if generation is None else None
    written_in, _, partner = marker.partition(SEPARATOR)
    return partner if partner and written_in == generation else None
