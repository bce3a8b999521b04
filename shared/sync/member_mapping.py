"""The member's contacts field mapping (R4.2), kept on their contacts sync profile: read, and
saved with a re-sync of the pairs it changed."""

from __future__ import annotations

from typing import TYPE_CHECKING

from shared.accounts.models import MemberIdentity
from shared.sync.contacts import DEFAULT_CONTACT_MAPPING, ContactMapping, changed_pairs
from shared.sync.jobs import StepReason, SyncJob
from shared.sync.profiles import SyncKind, SyncProfile, SyncState

if TYPE_CHECKING:
    from shared.sync.service import SyncService


def mapping_of(profile: SyncProfile) -> ContactMapping:
    if not profile.contact_mapping:
        return DEFAULT_CONTACT_MAPPING
    return ContactMapping.model_validate_json(profile.contact_mapping)


class MemberContactMapping:
    def __init__(self, sync: SyncService) -> None:
        self.sync = sync
        self.d = sync.d

    def get(self, member: MemberIdentity) -> ContactMapping:
        """The member's contacts field mapping: the one they saved, else the default (R4.2)."""
        stored = self.d.profiles.get(member.partition_key, SyncKind.CONTACTS)
        return mapping_of(stored.entity) if stored else DEFAULT_CONTACT_MAPPING

    def save(self, member: MemberIdentity, mapping: ContactMapping) -> set[str]:
        """Store the member's mapping (already validated by the caller) and, when contacts
        sync is on, queue a re-sync of the changed pairs only. Returns their keys."""
        key = member.partition_key
        stored = self.d.profiles.create_or_get(
            SyncProfile(partition_key=key, row_key=SyncKind.CONTACTS.value, tenant_id=member.tenant_id,
                        object_id=member.object_id)
        )
        before = mapping_of(stored.entity)
        changed = changed_pairs(before, mapping)
        if not changed:
            return changed
        encoded = None if mapping == DEFAULT_CONTACT_MAPPING else mapping.model_dump_json()
        profile = self.d.profiles.update(key, SyncKind.CONTACTS, lambda p: p.model_copy(update={"contact_mapping": encoded}))
        if profile.state is not SyncState.DISABLED:
            directions = {pair.key: pair.direction.value for pair in mapping.pairs if pair.key in changed}
            pairs: dict[str, str | None] = {k: directions.get(k) for k in sorted(changed)}
            self.sync.jobs.send(SyncJob.of(profile, "remap", StepReason.MAPPING_CHANGED).model_copy(update={"pairs": pairs}))
        self.d.accounts.audit(actor=member.email, action="sync.contacts.mapping_changed", tenant_id=member.tenant_id,
                              org_id=member.org_id, detail=", ".join(sorted(changed))[:500])
        return changed
