"""The Zoho CRM Contacts folder and its contacts through the sync client (SPEC R4.3, R4.8, R4.9)."""

from __future__ import annotations

import pytest
import requests

from shared.graph.contacts import FOLDER_NAME, ContactsClient
from shared.graph.container import ItemDraft
from shared.graph.extended_properties import crm_id_of
from shared.graph.gate import MailboxGate
from shared.graph.mailbox import GraphMailbox
from shared.graph.sync_errors import ContactFolderGone, ContainerNameTaken, ItemNotFound

from .conftest import ADELE, ADELE_UPN, TENANT, Emulator


class AnswerLosingSession(requests.Session):
    """Sends POSTs whose URL ends with ``suffix`` but loses the first ``count`` answers, as a
    dropped connection after Graph applied the request would."""

    def __init__(self, base: requests.Session, suffix: str, count: int) -> None:
        super().__init__()
        self.trust_env, self.verify = False, base.verify
        self.suffix, self.left = suffix, count

    def request(self, method, url, *args, **kwargs):  # type: ignore[override]
        response = super().request(method, url, *args, **kwargs)
        if method == "POST" and url.endswith(self.suffix) and self.left > 0:
            self.left -= 1
            raise requests.ConnectionError("connection reset after the request was sent")
        return response


def our_contacts(emulator: Emulator) -> list[dict]:
    [folder] = emulator.folders_named(FOLDER_NAME)
    return folder["contacts"]


def test_find_or_create_folder_twice_and_after_a_crash(make_mailbox, emulator: Emulator) -> None:
    first = ContactsClient(make_mailbox()).ensure_folder()
    assert ContactsClient(make_mailbox()).ensure_folder().id == first.id
    # A new process that never recorded the id finds the same folder by its tag.
    assert ContactsClient(make_mailbox(shared_gate=False)).ensure_folder().id == first.id
    assert len(emulator.folders_named(FOLDER_NAME)) == 1


def test_folder_create_whose_answer_was_lost_is_found_not_repeated(emulator: Emulator, entra, http) -> None:
    lossy = AnswerLosingSession(http, "/contactFolders", 1)
    mailbox = GraphMailbox(emulator.graph_url, ADELE, lambda: entra.app_token(TENANT), lossy, tenant_id=TENANT,
                           gate=MailboxGate())
    folder = ContactsClient(mailbox).ensure_folder()
    assert [f["id"] for f in emulator.folders_named(FOLDER_NAME)] == [folder.id]


def test_a_users_own_folder_with_our_name_is_refused(mailbox, emulator: Emulator) -> None:
    emulator.control("POST", f"mailbox/{ADELE_UPN}/contactFolders", json={"displayName": FOLDER_NAME})
    with pytest.raises(ContainerNameTaken):
        ContactsClient(mailbox).ensure_folder()


def test_contact_create_get_update_delete(mailbox, emulator: Emulator) -> None:
    contacts = ContactsClient(mailbox)
    folder = contacts.ensure_folder()
    created = contacts.create_contact(folder.id, {"givenName": "Ann", "surname": "Lee",
                                                  "emailAddresses": [{"address": "ann@example.com"}]}, crm_id="zc_1")
    assert created.display_name == "Ann Lee" and created.change_key
    read = contacts.get_contact(folder.id, created.id)
    assert crm_id_of(read) == "zc_1" and read.parent_folder_id == folder.id
    updated = contacts.update_contact(folder.id, created.id, {"companyName": "Contoso", "displayName": "Ann Lee"})
    assert updated.change_key != created.change_key and updated.model_extra["companyName"] == "Contoso"  # type: ignore[index]
    assert [c.id for c in contacts.find_contacts_by_crm_id(folder.id, "zc_1")] == [created.id]
    assert contacts.delete_contact(folder.id, created.id) is True
    assert contacts.delete_contact(folder.id, created.id) is False
    with pytest.raises(ItemNotFound):
        contacts.get_contact(folder.id, created.id)


def test_contact_creates_whose_answers_were_lost_are_not_duplicated(emulator: Emulator, entra, http) -> None:
    # Contacts have no transactionId: a create is not repeatable. Lose the answer of a single
    # create and of a whole $batch; every contact must still exist exactly once.
    lossy = AnswerLosingSession(http, "/contacts", 1)
    mailbox = GraphMailbox(emulator.graph_url, ADELE, lambda: entra.app_token(TENANT), lossy, tenant_id=TENANT,
                           gate=MailboxGate())
    contacts = ContactsClient(mailbox)
    folder = contacts.ensure_folder()
    single = contacts.create_contact(folder.id, {"givenName": "Solo"}, crm_id="zc_solo")
    lossy.suffix, lossy.left = "/$batch", 1
    many = contacts.create_contacts(folder.id, [ItemDraft(crm_id=f"zc_{n}", fields={"givenName": f"N{n}"})
                                                for n in range(25)])
    assert all(not isinstance(c, Exception) for c in many)
    tags = sorted(p["value"] for c in our_contacts(emulator) for p in c["singleValueExtendedProperties"])
    assert tags == sorted(["zc_solo", *(f"zc_{n}" for n in range(25))])
    assert single.id in {c["id"] for c in our_contacts(emulator)}


def test_folder_deleted_in_outlook_is_a_distinct_error(mailbox, emulator: Emulator) -> None:
    contacts = ContactsClient(mailbox)
    folder = contacts.ensure_folder()
    contact = contacts.create_contact(folder.id, {"givenName": "Gone"}, crm_id="zc_1")
    emulator.control("DELETE", f"mailbox/{ADELE_UPN}/contactFolders/{folder.id}")
    with pytest.raises(ContactFolderGone):
        contacts.get_folder(folder.id)
    with pytest.raises(ContactFolderGone):
        contacts.get_contact(folder.id, contact.id)
    with pytest.raises(ContactFolderGone):
        contacts.create_contact(folder.id, {"givenName": "Late"}, crm_id="zc_2")
    assert contacts.delete_folder(folder.id) is False
    assert contacts.ensure_folder().id != folder.id  # enabling again makes a new one
