"""Wire shapes of the Graph resources sync reads and writes (pydantic v2).

Attributes are snake_case; the JSON names are Graph's camelCase (``alias_generator``).
Every model keeps the fields it does not name (``extra="allow"``): the sync engine maps
fields itself (issue 7, fidelity), so the adapter must not drop what it was given.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import AliasChoices, BaseModel, ConfigDict, Field, PrivateAttr
from pydantic.alias_generators import to_camel


class GraphModel(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="allow")

    def to_graph(self) -> dict[str, Any]:
        """The JSON Graph expects: camelCase names, unset fields left out."""
        return self.model_dump(by_alias=True, exclude_unset=True, mode="json")


class ExtendedProperty(GraphModel):
    """A ``singleValueExtendedProperty``: ``{"id": "String {guid} Name X", "value": "..."}``."""

    id: str
    value: str


class DateTimeTimeZone(GraphModel):
    """``dateTime`` has no offset; ``timeZone`` names the zone (UTC when we ask for it)."""

    date_time: str
    time_zone: str


class Calendar(GraphModel):
    id: str
    name: str
    change_key: str | None = None
    is_default_calendar: bool | None = None
    single_value_extended_properties: list[ExtendedProperty] = Field(default_factory=list)


class ContactFolder(GraphModel):
    id: str
    display_name: str
    parent_folder_id: str | None = None
    single_value_extended_properties: list[ExtendedProperty] = Field(default_factory=list)


class OutlookItem(GraphModel):
    """What events and contacts share (Graph's ``outlookItem``): the version is ``change_key``."""

    id: str
    change_key: str | None = None
    etag: str | None = Field(default=None, validation_alias=AliasChoices("@odata.etag", "etag"),
                             serialization_alias="@odata.etag")
    last_modified_date_time: datetime | None = None
    created_date_time: datetime | None = None
    single_value_extended_properties: list[ExtendedProperty] = Field(default_factory=list)

    def extended_property(self, property_id: str) -> str | None:
        """The value of one expanded extended property (only present when asked for with $expand)."""
        return next((p.value for p in self.single_value_extended_properties if p.id == property_id), None)


class Event(OutlookItem):
    subject: str | None = None
    start: DateTimeTimeZone | None = None
    end: DateTimeTimeZone | None = None
    is_all_day: bool | None = None
    type: str | None = None
    series_master_id: str | None = None
    transaction_id: str | None = None
    i_cal_u_id: str | None = Field(default=None, alias="iCalUId")


class Contact(OutlookItem):
    display_name: str | None = None
    given_name: str | None = None
    surname: str | None = None
    parent_folder_id: str | None = None


class Removed(GraphModel):
    """An ``@removed`` delta entry: the explicit delete signal of DESIGN §8 (``reason``: deleted|changed)."""

    id: str
    reason: str = "deleted"


class Subscription(GraphModel):
    id: str
    resource: str
    change_type: str
    notification_url: str
    expiration_date_time: datetime
    client_state: str | None = None
    lifecycle_notification_url: str | None = None


class ResourceData(GraphModel):
    id: str
    odata_type: str | None = Field(default=None, alias="@odata.type")
    odata_etag: str | None = Field(default=None, alias="@odata.etag")


class ItemChange(BaseModel):
    """One item a change notification POST named for a subscription: its change type, id and
    version (the ``changeKey`` inside ``@odata.etag``), when the entry carried them."""

    model_config = ConfigDict(frozen=True)

    change_type: str
    item_id: str | None = None
    change_key: str | None = None


class ChangeNotification(GraphModel):
    """One entry of a change notification POST (``changeType`` created|updated|deleted).

    ``item_changes``: every item the POST named for this subscription (its entries are
    collapsed into one), or None when there were too many to look at; set by the screening,
    never read from the wire."""

    subscription_id: str
    change_type: str
    resource: str
    client_state: str | None = None
    tenant_id: str | None = None
    subscription_expiration_date_time: datetime | None = None
    resource_data: ResourceData | None = None
    _item_changes: tuple[ItemChange, ...] | None = PrivateAttr(default=None)  # no input can set it

    @property
    def item_changes(self) -> tuple[ItemChange, ...] | None:
        return self._item_changes

    def naming(self, items: tuple[ItemChange, ...] | None) -> ChangeNotification:
        """This notification with the items the screening found for its subscription."""
        named = self.model_copy()
        named._item_changes = items
        return named


class LifecycleNotification(GraphModel):
    """One entry of a lifecycle POST: reauthorizationRequired | subscriptionRemoved | missed."""

    subscription_id: str
    lifecycle_event: str
    client_state: str | None = None
    tenant_id: str | None = None
    subscription_expiration_date_time: datetime | None = None
