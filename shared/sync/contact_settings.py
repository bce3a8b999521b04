"""What the contacts Configuration window reads (SPEC R4.2): the CRM's Contacts catalogue, one of
the member's real contacts, the preview of a mapping on it and the mapping's problems.

The decisions are the pure ``shared.sync.contacts`` package's; this module is the I/O around
them. The window must open whatever the CRM's mood: when the CRM does not answer, the
documented catalogue (``CRM_CONTACT_FIELDS``) stands in, and a missing sample only means no
preview.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from itertools import islice
from typing import TYPE_CHECKING, Any

from shared.accounts.models import MemberIdentity
from shared.config import SettingsError
from shared.crm.errors import CrmError
from shared.crm.fields import CrmFields
from shared.crm.records import MAX_FIELDS, CrmRecords, ListQuery
from shared.expiring_cache import ExpiringCache
from shared.graph.batch import GraphRequest
from shared.graph.errors import GraphError
from shared.sync.contacts import (
    CRM_CONTACT_FIELDS,
    ContactMapping,
    CrmCatalogue,
    CrmShape,
    Direction,
    MappingProblem,
    PreviewRow,
    crm_catalogue_from_metadata,
    crm_contact_excluded,
    preview,
    validate_mapping,
)
from shared.sync.profiles import SyncKind

if TYPE_CHECKING:
    from shared.sync.dependencies import SyncDependencies

log = logging.getLogger(__name__)

CATALOGUE_SECONDS = 300.0  # an org's fields change rarely; the window asks on every call
CATALOGUE_ORGS = 200
SAMPLE_PAGES = 2  # the owner filter is ours, page by page: look a little, not through the org


class _CatalogueCache:
    """Per org, for a few minutes: one window visit reads the catalogue on GET, preview and PUT.
    Bounded (``CATALOGUE_ORGS``): a catalogue is the org's whole field list, and a long-lived
    instance meets every org in time."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._entries: ExpiringCache[str, CrmCatalogue] = ExpiringCache(CATALOGUE_ORGS, clock)

    def get(self, org_id: str) -> CrmCatalogue | None:
        hit = self._entries.get(org_id)
        return hit.value if hit is not None else None

    def put(self, org_id: str, catalogue: CrmCatalogue) -> None:
        self._entries.put(org_id, catalogue, CATALOGUE_SECONDS)


_CACHE = _CatalogueCache()


class ContactSettings:
    def __init__(self, dependencies: SyncDependencies, *, cache: _CatalogueCache | None = None) -> None:
        self.d = dependencies
        self._cache = cache or _CACHE

    def _session(self, member: MemberIdentity):  # type: ignore[no-untyped-def]
        return self.d.crm_session(member)

    # -- the CRM side's fields -----------------------------------------------------------

    def catalogue(self, member: MemberIdentity) -> CrmCatalogue:
        """The org's Contacts fields from the CRM's metadata, else the documented list."""
        cached = self._cache.get(member.org_id)
        if cached is not None:
            return cached
        try:
            metadata = CrmFields(self._session(member)).fields("Contacts")
        except (CrmError, SettingsError) as error:
            log.warning("contacts field metadata unavailable for org %s (%s); using the documented list",
                        member.org_id, error)
            return CRM_CONTACT_FIELDS
        catalogue = crm_catalogue_from_metadata(metadata)
        # A description without the one required field is not one we can check a mapping against.
        if not any(field.required for field in catalogue.values()):
            log.warning("contacts field metadata of org %s names no required field; using the documented list",
                        member.org_id)
            return CRM_CONTACT_FIELDS
        self._cache.put(member.org_id, catalogue)
        return catalogue

    # -- one real contact ----------------------------------------------------------------

    def sample(self, member: MemberIdentity, catalogue: CrmCatalogue | None = None) -> dict[str, Any] | None:
        """The member's most recently modified own CRM contact (R4.5), preferring one the sync
        would send (not imported or migrated, R4.7); None when there is none or the CRM is away."""
        catalogue = catalogue if catalogue is not None else self.catalogue(member)
        names: list[str] = []
        for field in catalogue.values():
            names += list(field.parts) if field.shape is CrmShape.ADDRESS_GROUP else [field.api_name]
        wanted = list(dict.fromkeys([*names, "Modified_Time", "Data_Source"]))
        fields = tuple(wanted[: MAX_FIELDS - 1])  # Owner is added by the owner filter
        query = ListQuery(module="Contacts", fields=fields, sort_by="Modified_Time", sort_order="desc",
                          owner_id=member.user_id)
        fallback: dict[str, Any] | None = None
        try:
            for page in islice(CrmRecords(self._session(member)).pages(query), SAMPLE_PAGES):
                for record in page.records:
                    if crm_contact_excluded(record, member_user_id=member.user_id) is None:
                        return record
                    fallback = fallback or record
        except (CrmError, SettingsError) as error:
            log.warning("no sample contact for %s: %s", member.email, error)
        return fallback

    def outlook_sample(self, member: MemberIdentity) -> dict[str, Any] | None:
        """One contact of our Zoho CRM Contacts folder, when contacts sync has one; else None."""
        stored = self.d.profiles.get(member.partition_key, SyncKind.CONTACTS)
        folder = stored.entity.container_id if stored else None
        if not folder:
            return None
        mailbox = self.d.mailbox(member)
        url = f"{mailbox.user_path}/contactFolders/{folder}/contacts?$top=1"
        try:
            response = mailbox.send(GraphRequest(method="GET", url=url))
        except (GraphError, SettingsError, OSError) as error:
            log.warning("no Outlook sample contact for %s: %s", member.email, error)
            return None
        items = response.body.get("value") if response.ok and isinstance(response.body, dict) else None
        return dict(items[0]) if items else None

    # -- what the window shows -----------------------------------------------------------

    def preview(
        self,
        member: MemberIdentity,
        mapping: ContactMapping,
        *,
        direction: Direction = Direction.CRM_TO_OUTLOOK,
        sample: dict[str, Any] | None = None,
        catalogue: CrmCatalogue | None = None,
    ) -> list[PreviewRow]:
        """How one real contact would look on the other side: a CRM contact in Outlook
        (``crm_to_outlook``) or an Outlook contact in the CRM (``outlook_to_crm``). Empty when
        there is no contact to show."""
        catalogue = catalogue if catalogue is not None else self.catalogue(member)
        if sample is None:
            sample = (self.sample(member, catalogue) if direction is Direction.CRM_TO_OUTLOOK
                      else self.outlook_sample(member))
        if sample is None:
            return []
        return preview(sample, mapping, direction, crm_catalogue=catalogue)

    def problems(
        self, member: MemberIdentity, mapping: ContactMapping, *, catalogue: CrmCatalogue | None = None
    ) -> list[MappingProblem]:
        """Why ``mapping`` cannot work with this org's fields; empty when it can be saved."""
        catalogue = catalogue if catalogue is not None else self.catalogue(member)
        return validate_mapping(mapping, crm_catalogue=catalogue)
