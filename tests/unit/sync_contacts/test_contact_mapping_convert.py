"""Every mapped field round-trips both ways, directions are respected, lists stay whole."""

from __future__ import annotations

from typing import Any

from hypothesis import given

from shared.sync.contacts import (
    CONTACTS_NORMALISATION,
    DEFAULT_CONTACT_MAPPING,
    ContactMapping,
    Direction,
    FieldPair,
    crm_contact_to_fields,
    fields_to_crm_contact,
    fields_to_graph_contact,
    graph_contact_to_fields,
)
from shared.sync.links import Side
from tests.unit.sync_contacts.contact_values import crm_records, graph_contacts

MAPPING = DEFAULT_CONTACT_MAPPING
BOTH_WAYS = {pair.key for pair in MAPPING.pairs if pair.direction is Direction.BOTH}


def as_crm_record(body: dict[str, Any], record_id: str = "1") -> dict[str, Any]:
    """What the CRM returns after storing ``body`` (lookups gain an id)."""
    stored = {name: value for name, value in body.items() if value is not None}
    if "Account_Name" in stored:
        stored["Account_Name"] = {**stored["Account_Name"], "id": "5725767000000009"}
    return {"id": record_id, **stored}


def as_graph_contact(body: dict[str, Any]) -> dict[str, Any]:
    """What Graph returns after storing ``body`` (nulls and empty addresses gone)."""
    return {"id": "AAMk1", **{name: value for name, value in body.items() if value not in (None, {})}}


@given(crm_records())
def test_crm_fields_survive_graph_and_back(record: dict[str, Any]) -> None:
    fields = crm_contact_to_fields(record, MAPPING)
    contact = as_graph_contact(fields_to_graph_contact(fields, MAPPING))
    assert graph_contact_to_fields(contact, MAPPING) == fields
    back = as_crm_record(fields_to_crm_contact(graph_contact_to_fields(contact, MAPPING), MAPPING))
    again = crm_contact_to_fields(back, MAPPING)
    assert again == {key: value for key, value in fields.items() if key in BOTH_WAYS}


@given(crm_records(slot_gaps=False))
def test_a_crm_record_round_trips_to_itself(record: dict[str, Any]) -> None:
    fields = crm_contact_to_fields(record, MAPPING)
    contact = as_graph_contact(fields_to_graph_contact(fields, MAPPING))
    body = fields_to_crm_contact(graph_contact_to_fields(contact, MAPPING), MAPPING)
    for name, value in body.items():
        original = record.get(name)
        if isinstance(original, dict):
            original = {"name": original["name"]}
        assert value == original, name
    written = set(body)
    assert {"Reporting_To", "Salutation"}.isdisjoint(written)  # crm_to_outlook: never written back


@given(graph_contacts())
def test_graph_fields_survive_the_crm_and_back(contact: dict[str, Any]) -> None:
    fields = graph_contact_to_fields(contact, MAPPING)
    record = as_crm_record(fields_to_crm_contact(fields, MAPPING))
    from_crm = crm_contact_to_fields(record, MAPPING)
    assert from_crm == {key: value for key, value in fields.items() if key in BOTH_WAYS}
    rewritten = as_graph_contact(fields_to_graph_contact(from_crm, MAPPING))
    assert graph_contact_to_fields(rewritten, MAPPING) == from_crm


@given(crm_records())
def test_both_sides_of_equal_data_fingerprint_alike(record: dict[str, Any]) -> None:
    fields = crm_contact_to_fields(record, MAPPING)
    contact = as_graph_contact(fields_to_graph_contact(fields, MAPPING))
    assert CONTACTS_NORMALISATION.fingerprint(graph_contact_to_fields(contact, MAPPING)) == (
        CONTACTS_NORMALISATION.fingerprint(fields)
    )


def one_way(direction: Direction) -> ContactMapping:
    return ContactMapping(
        pairs=tuple(pair.model_copy(update={"direction": direction}) for pair in MAPPING.pairs)
    )


@given(crm_records())
def test_a_crm_to_outlook_pair_is_never_written_to_the_crm(record: dict[str, Any]) -> None:
    mapping = one_way(Direction.CRM_TO_OUTLOOK)
    fields = crm_contact_to_fields(record, mapping)
    assert fields_to_crm_contact(fields, mapping) == {}
    assert fields_to_graph_contact(fields, mapping)  # and is written to Outlook


@given(graph_contacts())
def test_an_outlook_to_crm_pair_is_never_written_to_outlook(contact: dict[str, Any]) -> None:
    mapping = one_way(Direction.OUTLOOK_TO_CRM)
    fields = graph_contact_to_fields(contact, mapping)
    assert fields_to_graph_contact(fields, mapping) == {}
    assert fields_to_crm_contact(fields, mapping)["Last_Name"] == contact["surname"]


def test_one_way_pairs_are_still_read_from_both_sides() -> None:
    """One fingerprint serves both sides, so both readers report every pair."""
    mapping = one_way(Direction.CRM_TO_OUTLOOK)
    contact = {"surname": "Lee", "manager": "Boss"}
    assert graph_contact_to_fields(contact, mapping)["Reporting_To:manager"] == "Boss"
    assert Direction.CRM_TO_OUTLOOK.writes_to(Side.OUTLOOK) and not Direction.CRM_TO_OUTLOOK.writes_to(
        Side.CRM
    )


def test_a_patch_of_one_slot_keeps_the_other_slots_of_the_list() -> None:
    current = {
        "emailAddresses": [
            {"name": "Ann Lee", "address": "ann@work.com"},
            {"name": "Ann", "address": "ann@home.org"},
            {"name": "Old", "address": "old@aol.com"},  # slot 2 is not mapped: kept
        ],
        "businessPhones": ["+1 555 0100"],
    }
    body = fields_to_graph_contact(
        {"Secondary_Email:emailAddresses[1]": "ann@new.org"}, MAPPING, current=current
    )
    assert body == {
        "emailAddresses": [
            {"name": "Ann Lee", "address": "ann@work.com"},
            {"name": "ann@new.org", "address": "ann@new.org"},
            {"name": "Old", "address": "old@aol.com"},
        ]
    }


def test_without_the_contact_a_slot_patch_takes_the_other_slots_from_the_merged_fields() -> None:
    merged = {"Email:emailAddresses[0]": "ann@new.com", "Secondary_Email:emailAddresses[1]": "ann@home.org"}
    body = fields_to_graph_contact({"Email:emailAddresses[0]": "ann@new.com"}, MAPPING, merged=merged)
    assert [element["address"] for element in body["emailAddresses"]] == ["ann@new.com", "ann@home.org"]


def test_clearing_the_first_slot_moves_the_second_up_on_both_sides_alike() -> None:
    current = {"businessPhones": ["+1 555 0100", "+1 555 0199"]}
    body = fields_to_graph_contact({"Phone:businessPhones[0]": None}, MAPPING, current=current)
    assert body == {"businessPhones": ["+1 555 0199"]}
    record = {"Last_Name": "Lee", "Phone": None, "Other_Phone": "+1 555 0199"}
    assert crm_contact_to_fields(record, MAPPING) == graph_contact_to_fields(
        {"surname": "Lee", **body}, MAPPING
    )


def test_clearing_fields_writes_empty_values_of_the_right_shape() -> None:
    keys = {
        "Mailing_Address:businessAddress": None,
        "Date_of_Birth:birthday": None,
        "Account_Name:companyName": None,
        "Email:emailAddresses[0]": None,
    }
    assert fields_to_graph_contact(keys, MAPPING) == {
        "businessAddress": {},
        "birthday": None,
        "companyName": None,
        "emailAddresses": [],
    }
    crm = fields_to_crm_contact(keys, MAPPING)
    assert crm["Account_Name"] is None and crm["Date_of_Birth"] is None and crm["Email"] is None
    assert all(crm[f"Mailing_{part}"] is None for part in ("Street", "City", "State", "Zip", "Country"))


def test_birthday_is_written_as_an_instant_and_read_as_its_date() -> None:
    body = fields_to_graph_contact({"Date_of_Birth:birthday": "1974-07-22"}, MAPPING)
    assert body == {"birthday": "1974-07-22T11:59:00Z"}
    for written in ("1974-07-22", "1974-07-22T00:00:00Z", "1974-07-22T11:59:00+02:00"):
        assert graph_contact_to_fields({"birthday": written}, MAPPING) == {
            "Date_of_Birth:birthday": "1974-07-22"
        }


def test_tags_and_custom_pairs_convert() -> None:
    mapping = ContactMapping(
        pairs=(
            *MAPPING.pairs,
            FieldPair(crm_field="Tag", outlook_field="categories", direction=Direction.CRM_TO_OUTLOOK),
        )
    )
    record = {"Last_Name": "Lee", "Tag": [{"name": "vip", "id": "1"}, {"name": "golf"}]}
    fields = crm_contact_to_fields(record, mapping)
    assert fields["Tag:categories"] == ["vip", "golf"]
    assert fields_to_graph_contact(fields, mapping)["categories"] == ["vip", "golf"]
    assert "Tag" not in fields_to_crm_contact(fields, mapping)
