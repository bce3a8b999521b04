"""Where a webhook's notifications go: one row per Graph subscription and per CRM channel."""

from __future__ import annotations

from shared.storage import TableEntity


class WebhookRoute(TableEntity):
    """PartitionKey = "graph|{subscription id}" or "crm|{channel id}", RowKey = "hook".

    A Graph subscription's route names its member. A CRM channel's names its org
    (``org_id``): the org's channel, whose changes go to their owners' syncs
    (``crm_routing``); a route naming a member instead is a channel of one member made
    before issue 20, until the renewal timer moves that member onto the org's channel."""

    member: str = ""
    kind: str
    secret: str  # Graph clientState or CRM channel token
    org_id: str | None = None
    # A Graph subscription's: where the links of the Enable that made it live, so that a
    # notification of our own write's echo is dropped without reading the member's profile.
    # (A subscription lives and dies with its Enable; None on routes made before.)
    links_partition: str | None = None
