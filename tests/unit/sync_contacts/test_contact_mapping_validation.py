"""Each refusal of R4.2 is named, with its code and field; the default mapping is valid."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from shared.sync.contacts import (
    CRM_CONTACT_FIELDS,
    DEFAULT_CONTACT_MAPPING,
    GRAPH_CONTACT_FIELDS,
    GRAPH_FIELDS_LEFT_OUT,
    ContactMapping,
    Direction,
    FieldPair,
    ProblemCode,
    crm_catalogue_from_metadata,
    validate_mapping,
    value_problems,
)
from shared.sync.links import Side


def with_pairs(*extra: FieldPair, drop: set[str] = frozenset()) -> ContactMapping:
    kept = [pair for pair in DEFAULT_CONTACT_MAPPING.pairs if pair.crm_field not in drop]
    return ContactMapping(pairs=(*kept, *extra))


def codes(mapping: ContactMapping) -> set[tuple[ProblemCode, str]]:
    return {(problem.code, problem.field) for problem in validate_mapping(mapping)}


def test_the_default_mapping_is_valid() -> None:
    assert validate_mapping(DEFAULT_CONTACT_MAPPING) == []


def test_every_mapped_field_is_in_a_catalogue() -> None:
    for pair in DEFAULT_CONTACT_MAPPING.pairs:
        assert pair.crm_field in CRM_CONTACT_FIELDS
        assert pair.outlook_field in GRAPH_CONTACT_FIELDS


def test_a_date_mapped_to_a_phone_is_a_type_mismatch_naming_the_field() -> None:
    mapping = with_pairs(
        FieldPair(crm_field="Date_of_Birth", outlook_field="mobilePhone"), drop={"Date_of_Birth", "Mobile"}
    )
    [problem] = validate_mapping(mapping)
    assert (problem.code, problem.field, problem.side) == (
        ProblemCode.TYPE_MISMATCH,
        "Date_of_Birth",
        Side.CRM,
    )
    assert "Date_of_Birth" in problem.message and "mobilePhone" in problem.message


def test_text_may_go_to_multi_line_text() -> None:
    mapping = with_pairs(FieldPair(crm_field="Twitter", outlook_field="personalNotes"), drop={"Description"})
    assert validate_mapping(mapping) == []


def test_an_outlook_field_mapped_twice_is_named() -> None:
    mapping = with_pairs(FieldPair(crm_field="Fax", outlook_field="businessPhones[0]"))
    assert codes(mapping) == {(ProblemCode.MAPPED_TWICE, "businessPhones[0]")}


def test_a_crm_field_mapped_twice_is_named() -> None:
    mapping = with_pairs(FieldPair(crm_field="Mobile", outlook_field="homePhones[1]"))
    assert codes(mapping) == {(ProblemCode.MAPPED_TWICE, "Mobile")}


def test_an_address_part_mapped_beside_its_group_is_mapped_twice() -> None:
    mapping = with_pairs(FieldPair(crm_field="Mailing_City", outlook_field="officeLocation"))
    assert codes(mapping) == {(ProblemCode.MAPPED_TWICE, "Mailing_City")}


def test_last_name_left_unmapped_is_refused() -> None:
    assert codes(with_pairs(drop={"Last_Name"})) == {(ProblemCode.REQUIRED_UNMAPPED, "Last_Name")}


def test_last_name_mapped_only_towards_outlook_is_refused() -> None:
    one_way = FieldPair(crm_field="Last_Name", outlook_field="surname", direction=Direction.CRM_TO_OUTLOOK)
    assert codes(with_pairs(one_way, drop={"Last_Name"})) == {(ProblemCode.REQUIRED_ONE_WAY, "Last_Name")}


@pytest.mark.parametrize(
    ("pair", "field", "side"),
    [
        (FieldPair(crm_field="Nickname__c", outlook_field="nickName"), "Nickname__c", Side.CRM),
        (FieldPair(crm_field="Twitter", outlook_field="twitterHandle"), "twitterHandle", Side.OUTLOOK),
    ],
)
def test_an_unknown_field_is_refused(pair: FieldPair, field: str, side: Side) -> None:
    [problem] = validate_mapping(with_pairs(pair))
    assert (problem.code, problem.field, problem.side) == (ProblemCode.UNKNOWN_FIELD, field, side)


@pytest.mark.parametrize(
    "outlook_field", ["primaryEmailAddress", "parentFolderId", "emailAddresses[3]", "id"]
)
def test_an_outlook_field_the_api_cannot_write_is_refused(outlook_field: str) -> None:
    [problem] = validate_mapping(with_pairs(FieldPair(crm_field="Fax", outlook_field=outlook_field)))
    assert (problem.code, problem.field) == (ProblemCode.NOT_WRITABLE, outlook_field)
    assert GRAPH_FIELDS_LEFT_OUT[outlook_field] in problem.message


def test_a_read_only_crm_field_may_only_flow_out() -> None:
    both = FieldPair(crm_field="Full_Name", outlook_field="displayName")
    assert codes(with_pairs(both)) == {(ProblemCode.NOT_WRITABLE, "Full_Name")}
    out = FieldPair(crm_field="Full_Name", outlook_field="displayName", direction=Direction.CRM_TO_OUTLOOK)
    assert validate_mapping(with_pairs(out)) == []


def test_a_later_slot_without_the_earlier_one_is_a_gap() -> None:
    mapping = with_pairs(
        FieldPair(crm_field="Asst_Phone", outlook_field="homePhones[1]"), drop={"Home_Phone"}
    )
    assert codes(mapping) == {(ProblemCode.SLOT_GAP, "homePhones[1]")}


def test_all_problems_are_returned_not_just_the_first() -> None:
    mapping = ContactMapping(
        pairs=(
            FieldPair(crm_field="Date_of_Birth", outlook_field="mobilePhone"),
            FieldPair(crm_field="Email", outlook_field="mobilePhone"),
            FieldPair(crm_field="Nope", outlook_field="changeKey"),
        )
    )
    assert codes(mapping) == {
        (ProblemCode.TYPE_MISMATCH, "Date_of_Birth"),
        (ProblemCode.TYPE_MISMATCH, "Email"),
        (ProblemCode.MAPPED_TWICE, "mobilePhone"),
        (ProblemCode.UNKNOWN_FIELD, "Nope"),
        (ProblemCode.NOT_WRITABLE, "changeKey"),
        (ProblemCode.REQUIRED_UNMAPPED, "Last_Name"),
    }


def test_problems_serialise_with_stable_codes() -> None:
    [problem] = validate_mapping(with_pairs(drop={"Last_Name"}))
    assert problem.model_dump(mode="json") == {
        "code": "required_unmapped",
        "field": "Last_Name",
        "side": "crm",
        "message": "Last_Name must be mapped: the CRM requires it",
    }


def test_the_mapping_round_trips_through_json_and_refuses_unknown_keys() -> None:
    text = DEFAULT_CONTACT_MAPPING.model_dump_json()
    assert ContactMapping.model_validate_json(text) == DEFAULT_CONTACT_MAPPING
    with pytest.raises(ValidationError):
        ContactMapping.model_validate(
            {"pairs": [{"crm_field": "Email", "outlook_field": "x", "way": "both"}]}
        )
    with pytest.raises(ValidationError):
        ContactMapping.model_validate(
            {"pairs": [{"crm_field": "Email", "outlook_field": "x", "direction": "up"}]}
        )


def test_a_value_longer_than_the_crm_allows_is_named() -> None:
    pair = FieldPair(crm_field="Last_Name", outlook_field="surname")
    [problem] = value_problems(pair, "x" * 81, Side.CRM)
    assert (problem.code, problem.field) == (ProblemCode.VALUE_TOO_LONG, "Last_Name")
    assert value_problems(pair, "x" * 80, Side.CRM) == []


def test_an_address_part_too_long_names_the_part() -> None:
    pair = FieldPair(crm_field="Mailing_Address", outlook_field="businessAddress")
    [problem] = value_problems(pair, {"city": "c" * 31, "street": "ok"}, Side.CRM)
    assert (problem.code, problem.field) == (ProblemCode.VALUE_TOO_LONG, "Mailing_City")


def test_value_checks_for_required_picklist_and_formats() -> None:
    last = FieldPair(crm_field="Last_Name", outlook_field="surname")
    assert [p.code for p in value_problems(last, None, Side.CRM)] == [ProblemCode.REQUIRED_VALUE_MISSING]
    salutation = FieldPair(crm_field="Salutation", outlook_field="title")
    assert [p.code for p in value_problems(salutation, "Sir", Side.CRM)] == [ProblemCode.VALUE_NOT_ALLOWED]
    email = FieldPair(crm_field="Email", outlook_field="emailAddresses[0]")
    assert [p.code for p in value_problems(email, "not-an-address", Side.OUTLOOK)] == [
        ProblemCode.INVALID_VALUE
    ]


def test_the_crm_catalogue_can_be_rebuilt_from_field_metadata() -> None:
    def meta(name: str, data_type: str, **extra: object) -> dict[str, object]:
        return {"api_name": name, "data_type": data_type, "field_label": name, **extra}

    parts = [
        meta(f"Mailing_{part}", "text", length=77) for part in ("Street", "City", "State", "Zip", "Country")
    ]
    catalogue = crm_catalogue_from_metadata(
        [
            meta("Last_Name", "text", length=120, system_mandatory=True),
            meta("Custom_Nick__c", "text", length=20),
            meta("Email_Opt_Out", "boolean"),
            meta("Reporting_To", "lookup"),
            meta("Account_Name", "lookup", length=100),
            meta(
                "Lead_Source",
                "picklist",
                pick_list_values=[{"actual_value": "-None-"}, {"actual_value": "Web"}],
            ),
            *parts,
        ]
    )
    assert catalogue["Last_Name"].max_length == 120 and catalogue["Last_Name"].required
    assert "Email_Opt_Out" not in catalogue  # no Outlook counterpart
    assert not catalogue["Reporting_To"].writable and catalogue["Account_Name"].writable
    assert catalogue["Lead_Source"].allowed_values == ("Web",)
    assert catalogue["Mailing_Address"].parts[0] == "Mailing_Street"
    mapping = ContactMapping(
        pairs=(
            FieldPair(crm_field="Last_Name", outlook_field="surname"),
            FieldPair(crm_field="Custom_Nick__c", outlook_field="nickName"),
            FieldPair(crm_field="Mailing_Address", outlook_field="businessAddress"),
        )
    )
    assert validate_mapping(mapping, crm_catalogue=catalogue) == []
