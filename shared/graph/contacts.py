"""The member's "Zoho CRM Contacts" folder and its contacts, for contacts sync (SPEC R4).

Contacts have no ``transactionId``: a create is not repeatable, so one whose answer was
lost is looked up by our ``CRM_ID`` extended property before it is sent again
(``ContainerClient.create_item``). Graph may regenerate ``displayName`` when name parts
change; the engine sends ``displayName`` with every update that should keep it
(graph-notes §4).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

from shared.graph.batch import GraphRequest
from shared.graph.container import ContainerClient, ContainerKind, ItemDraft
from shared.graph.delta import DEFAULT_PAGE_SIZE, DeltaPage
from shared.graph.errors import ContactFolderGone, GraphError
from shared.graph.models import Contact, ContactFolder

FOLDER_NAME = "Zoho CRM Contacts"  # SPEC R4.3

CONTACTS: ContainerKind[ContactFolder, Contact] = ContainerKind(
    label="contact folder", collection="contactFolders", name_field="displayName", items="contacts",
    container_model=ContactFolder, item_model=Contact, gone=ContactFolderGone, tag_value="contacts",
)


class ContactsClient(ContainerClient[ContactFolder, Contact]):
    """Contacts sync's view of one mailbox: ``ContactsClient(GraphMailbox(...))``."""

    kind = CONTACTS

    # ---- the folder (R4.3, R4.8, R4.9) -------------------------------------------------------
    def ensure_folder(self, name: str = FOLDER_NAME) -> ContactFolder:
        """Our folder, created if needed; never a second one (see ``ContainerClient``)."""
        return self.ensure_container(name)

    def find_folder(self) -> ContactFolder | None:
        return self.find_container()

    def get_folder(self, folder_id: str) -> ContactFolder:
        """The folder; ``ContactFolderGone`` once the user deleted it (R4.9)."""
        return self.get_container(folder_id)

    def delete_folder(self, folder_id: str) -> bool:
        """Disable (R4.8): the folder goes, its contacts with it. False if already gone."""
        return self.delete_container(folder_id)

    # ---- contacts ------------------------------------------------------------------------
    def create_contact(self, folder_id: str, fields: dict[str, Any], crm_id: str) -> Contact:
        return self.create_item(folder_id, ItemDraft(crm_id=crm_id, fields=fields))

    def create_contacts(self, folder_id: str, drafts: Sequence[ItemDraft]) -> list[Contact | GraphError]:
        return self.create_items(folder_id, drafts)

    def update_contact(self, folder_id: str, contact_id: str, fields: dict[str, Any]) -> Contact:
        return self.update_item(folder_id, contact_id, fields)

    def update_contacts(self, folder_id: str, changes: Sequence[tuple[str, dict[str, Any]]]) -> list[Contact | GraphError]:
        return self.update_items(folder_id, changes)

    def delete_contact(self, folder_id: str, contact_id: str) -> bool:
        return self.delete_item(folder_id, contact_id)

    def delete_contacts(self, folder_id: str, contact_ids: Sequence[str]) -> list[bool | GraphError]:
        return self.delete_items(folder_id, contact_ids)

    def get_contact(self, folder_id: str, contact_id: str) -> Contact:
        return self.get_item(folder_id, contact_id)

    def find_contacts_by_crm_id(self, folder_id: str, crm_id: str) -> list[Contact]:
        return self.find_items_by_crm_id(folder_id, crm_id)

    # ---- contacts delta --------------------------------------------------------------------
    def delta(self, folder_id: str, *, resume_from: str | None = None,
              page_size: int = DEFAULT_PAGE_SIZE) -> Iterator[DeltaPage[Contact]]:
        """Pages of the folder's contacts delta, streamed; same rules as ``CalendarClient.delta``
        (no window). Raises ``DeltaExpired`` and ``ContactFolderGone``."""
        url = resume_from or f"{self._container_url(folder_id)}/contacts/delta"
        return self._delta_pages(folder_id, GraphRequest(method="GET", url=url), page_size)
