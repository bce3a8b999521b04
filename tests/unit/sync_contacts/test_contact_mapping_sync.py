"""Normalisation, changed_pairs with the engine, preview, scope filter and the initial cap."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from shared.sync import ItemSeen, LinkRow, LinkState, SideChanges, Update, plan
from shared.sync.contacts import (
    CONTACTS_NORMALISATION,
    DEFAULT_CONTACT_MAPPING,
    IMPORTED,
    MIGRATED,
    NOT_OWNER,
    ContactMapping,
    Direction,
    FieldPair,
    ProblemCode,
    changed_pairs,
    crm_contact_excluded,
    crm_contact_to_fields,
    fields_to_graph_contact,
    graph_contact_to_fields,
    initial_sync_room,
    preview,
    within_initial_cap,
    write_problems,
)
from shared.sync.links import Side

MAPPING = DEFAULT_CONTACT_MAPPING
NOW = datetime(2026, 5, 4, 9, 0, tzinfo=UTC)


def fingerprint_of_crm(record: dict) -> str:
    return CONTACTS_NORMALISATION.fingerprint(crm_contact_to_fields(record, MAPPING))


def fingerprint_of_graph(contact: dict) -> str:
    return CONTACTS_NORMALISATION.fingerprint(graph_contact_to_fields(contact, MAPPING))


def test_differently_formatted_equal_data_fingerprints_alike() -> None:
    record = {
        "First_Name": "Ann ",
        "Last_Name": "Lee",
        "Email": "Ann.Lee@Example.COM",
        "Phone": "+1 (555) 010-9999",
        "Mobile": "+44 20 7946 0000",
        "Mailing_Street": "1 Main St\nFloor 2",
        "Mailing_City": "Springfield",
        "Date_of_Birth": "1974-07-22",
        "Description": "Met at the fair.\nLikes golf.",
        "Account_Name": {"name": "Acme  Corp", "id": "1"},
    }
    contact = {
        "givenName": "Ann",
        "surname": "Lee",
        "emailAddresses": [{"name": "Ann Lee", "address": "ann.lee@example.com"}],
        "businessPhones": ["+15550109999"],
        "mobilePhone": "+44-20-7946-0000",
        "businessAddress": {"street": "1 Main St\r\nFloor 2  ", "city": "Springfield", "state": ""},
        "birthday": "1974-07-22T11:59:00Z",
        "personalNotes": "Met at the fair.  \r\nLikes golf.",
        "companyName": "Acme Corp",
        "homePhones": [],
    }
    assert fingerprint_of_crm(record) == fingerprint_of_graph(contact)


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("Phone", "+1 (555) 010-9998"),
        ("Email", "ann.lee@example.org"),
        ("Mailing_Street", "1 Main St\nFloor 3"),
        ("Date_of_Birth", "1974-07-23"),
    ],
)
def test_different_data_fingerprints_differently(field: str, value: str) -> None:
    record = {
        "Last_Name": "Lee",
        "Phone": "+1 555 010 9999",
        "Email": "ann.lee@example.com",
        "Mailing_Street": "1 Main St\nFloor 2",
        "Date_of_Birth": "1974-07-22",
    }
    assert fingerprint_of_crm(record) != fingerprint_of_crm({**record, field: value})


def test_changed_pairs_names_added_removed_and_redirected_pairs_only() -> None:
    pairs = list(MAPPING.pairs)
    pairs[0] = pairs[0].model_copy(update={"direction": Direction.CRM_TO_OUTLOOK})  # First_Name redirected
    pairs = [pair for pair in pairs if pair.crm_field != "Skype_ID"]  # removed
    pairs.append(FieldPair(crm_field="Twitter", outlook_field="nickName"))  # added
    new = ContactMapping(pairs=tuple(pairs))
    assert changed_pairs(MAPPING, new) == {
        "First_Name:givenName",
        "Skype_ID:imAddresses[0]",
        "Twitter:nickName",
    }
    reordered = ContactMapping(pairs=tuple(reversed(MAPPING.pairs)))
    assert changed_pairs(MAPPING, reordered) == set()


def test_a_changed_mapping_resyncs_only_the_changed_field_through_the_engine() -> None:
    """The runner's recipe (mapping module docstring): drop the changed keys from the
    baseline, forget the versions, read both sides; only the changed pair is written."""
    new = ContactMapping(pairs=(*MAPPING.pairs, FieldPair(crm_field="Twitter", outlook_field="nickName")))
    record = {"id": "c1", "Last_Name": "Lee", "First_Name": "Ann", "Twitter": "@ann"}
    contact = {"id": "o1", "surname": "Lee", "givenName": "Ann"}
    old_fields = crm_contact_to_fields(record, MAPPING)
    changed = changed_pairs(MAPPING, new)
    baseline = {key: value for key, value in old_fields.items() if key not in changed}
    row = LinkRow(
        link_id="l1",
        state=LinkState.SYNCED,
        crm_id="c1",
        outlook_id="o1",
        fields=baseline,
        content_hash=CONTACTS_NORMALISATION.fingerprint(baseline),
    )
    crm = SideChanges(seen=(ItemSeen("c1", "v2", crm_contact_to_fields(record, new), NOW),))
    outlook = SideChanges(seen=(ItemSeen("o1", "k2", graph_contact_to_fields(contact, new), NOW),))
    [action] = plan([row], crm, outlook, now=NOW, normalisation=CONTACTS_NORMALISATION).actions
    assert isinstance(action, Update) and action.crm is None and action.outlook is not None
    assert dict(action.outlook.fields) == {"Twitter:nickName": "@ann"}
    assert fields_to_graph_contact(action.outlook.fields, new, current=contact) == {"nickName": "@ann"}


def test_an_echo_of_our_own_write_in_other_formatting_is_no_change() -> None:
    record = {"id": "c1", "Last_Name": "Lee", "Phone": "+1 (555) 010-9999", "Email": "Ann@X.com"}
    fields = crm_contact_to_fields(record, MAPPING)
    row = LinkRow(
        link_id="l1",
        state=LinkState.SYNCED,
        crm_id="c1",
        outlook_id="o1",
        crm_version="v1",
        outlook_version="k1",
        fields=fields,
        content_hash=CONTACTS_NORMALISATION.fingerprint(fields),
    )
    echoed = {
        "id": "o1",
        "surname": "Lee",
        "businessPhones": ["+15550109999"],
        "emailAddresses": [{"name": "Ann", "address": "ann@x.com"}],
    }
    outlook = SideChanges(seen=(ItemSeen("o1", "k2", graph_contact_to_fields(echoed, MAPPING), NOW),))
    [action] = plan([row], SideChanges(), outlook, now=NOW, normalisation=CONTACTS_NORMALISATION).actions
    assert action.reason == "echo"  # type: ignore[attr-defined]


def test_preview_flags_a_value_longer_than_the_target_allows() -> None:
    contact = {
        "givenName": "Ann",
        "surname": "L" * 90,
        "title": "Sir",
        "manager": "Boss",
        "emailAddresses": [{"name": "a", "address": "ann@x.com"}],
    }
    rows = {row.target_field: row for row in preview(contact, MAPPING, Direction.OUTLOOK_TO_CRM)}
    assert rows["First_Name"] == ("First_Name", "Ann", None)
    problem = rows["Last_Name"].problem
    assert problem is not None and (problem.code, problem.field) == (ProblemCode.VALUE_TOO_LONG, "Last_Name")
    assert "80" in problem.message
    assert "Salutation" not in rows and "Reporting_To" not in rows  # crm_to_outlook pairs never go this way


def test_write_problems_checks_only_what_is_written_towards_the_target() -> None:
    fields = {
        "Last_Name:surname": "L" * 81,
        "Reporting_To:manager": "B" * 500,
        "Email:emailAddresses[0]": "nope",
    }
    crm = [(p.code, p.field) for p in write_problems(fields, MAPPING, Side.CRM)]
    assert crm == [(ProblemCode.VALUE_TOO_LONG, "Last_Name"), (ProblemCode.INVALID_VALUE, "Email")]
    outlook = [(p.code, p.field) for p in write_problems(fields, MAPPING, Side.OUTLOOK)]
    assert outlook == [(ProblemCode.INVALID_VALUE, "emailAddresses[0]")]


def test_preview_towards_outlook_shows_the_outlook_fields() -> None:
    record = {"Last_Name": "Lee", "Reporting_To": {"name": "Boss", "id": "7"}, "Date_of_Birth": "1974-07-22"}
    rows = {row.target_field: row.value for row in preview(record, MAPPING, Direction.CRM_TO_OUTLOOK)}
    assert rows["surname"] == "Lee" and rows["manager"] == "Boss" and rows["birthday"] == "1974-07-22"
    with pytest.raises(ValueError):
        preview(record, MAPPING, Direction.BOTH)


@pytest.mark.parametrize(
    ("source", "reason"),
    [
        ("Import", IMPORTED),
        ("Migration", MIGRATED),
        ("migration ", MIGRATED),
        ("Mass Update", None),
        ("Manual", None),
        ("Bulk API", None),
        ("Microsoft", None),
        (None, None),
    ],
)
def test_scope_by_data_source(source: str | None, reason: str | None) -> None:
    record = {"Owner": {"id": "u1", "name": "Ann"}, "Data_Source": source}
    assert crm_contact_excluded(record, member_user_id="u1") == reason


def test_scope_by_owner_comes_first() -> None:
    record = {"Owner": {"id": "u2"}, "Data_Source": "Import"}
    assert crm_contact_excluded(record, member_user_id="u1") == NOT_OWNER
    assert crm_contact_excluded({"Data_Source": "Manual"}, member_user_id="u1") == NOT_OWNER


def test_the_initial_sync_sends_at_most_ten_thousand() -> None:
    assert (
        initial_sync_room(0) == 10_000 and initial_sync_room(9_950) == 50 and initial_sync_room(12_000) == 0
    )
    page = list(range(200))
    assert within_initial_cap(page, 9_900) == (page[:100], True)
    assert within_initial_cap(page, 0) == (page, False)
    assert within_initial_cap(page, 10_000) == ([], True)

