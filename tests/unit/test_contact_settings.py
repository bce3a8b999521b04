"""The contacts Configuration window without a network: the CRM's field metadata and its
fallback, the sample contact, and how the window's API reads and refuses a mapping (R4.2)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest

from shared.accounts.models import MemberIdentity
from shared.crm.errors import CrmError, CrmUnavailable
from shared.crm.fields import CrmFields
from shared.crm.session import CrmResponse
from shared.http_messages import WebRequest
from shared.sync.contact_settings import ContactSettings, _CatalogueCache
from shared.sync.contacts import CRM_CONTACT_FIELDS, DEFAULT_CONTACT_MAPPING, ContactMapping, FieldPair
from shared.web.contacts_mapping_pages import BadMapping, json_is_genuine, mapping_json, parse_mapping

ME = "5001"
METADATA = [
    {"api_name": "First_Name", "field_label": "First Name", "data_type": "text", "length": 40},
    {"api_name": "Last_Name", "field_label": "Last Name", "data_type": "text", "length": 80, "system_mandatory": True},
    {"api_name": "Nick__c", "field_label": "Nickname", "data_type": "text", "length": 20, "custom_field": True},
    {"api_name": "Date_of_Birth", "field_label": "Date of Birth", "data_type": "date"},
    {"api_name": "Phone", "field_label": "Phone", "data_type": "phone", "length": 30},
    {"api_name": "Email_Opt_Out", "field_label": "Email Opt Out", "data_type": "boolean"},
]


class FakeSession:
    """Answers the CRM paths the window reads; records what was asked."""

    def __init__(self, *, fields: Any = METADATA, records: list[dict[str, Any]] | None = None,
                 fail: CrmError | None = None) -> None:
        self.fields, self.records, self.fail = fields, records or [], fail
        self.calls: list[tuple[str, dict[str, str]]] = []

    def call(self, method: str, path: str, *, repeatable: bool, params: Any = None, **_: Any) -> CrmResponse:
        self.calls.append((path, dict(params or {})))
        if self.fail:
            raise self.fail
        if path == "/settings/fields":
            return CrmResponse(200, {"fields": self.fields} if self.fields is not None else {})
        if path == "/Contacts":
            return CrmResponse(200, {"data": self.records, "info": {"more_records": False, "page": 1}})
        raise AssertionError(path)


def member() -> MemberIdentity:
    return MemberIdentity(
        partition_key="ms|t|o", row_key="member", tenant_id="t", object_id="o", email="adele@contoso.test",
        name="Adele", org_id="org1", org_name="Contoso", user_id=ME, crm_email="adele@contoso.test", dc="us",
        accounts_server="https://accounts", api_domain="https://api", how="created_org",
        linked_at=datetime.now(UTC),
    )


def settings_with(session: FakeSession) -> ContactSettings:
    settings = ContactSettings(None, cache=_CatalogueCache())  # type: ignore[arg-type]
    settings._session = lambda _member: session  # type: ignore[method-assign]
    return settings


# -- the CRM client's field metadata ------------------------------------------------------------


def test_crm_fields_reads_the_metadata_of_one_module() -> None:
    session = FakeSession()
    assert [f["api_name"] for f in CrmFields(session).fields("Contacts")][:2] == ["First_Name", "Last_Name"]  # type: ignore[arg-type]
    assert session.calls == [("/settings/fields", {"module": "Contacts"})]


def test_crm_fields_without_a_fields_array_is_an_error() -> None:
    with pytest.raises(CrmError) as error:
        CrmFields(FakeSession(fields=None)).fields("Contacts")  # type: ignore[arg-type]
    assert error.value.code == "NO_FIELDS"


# -- the catalogue ------------------------------------------------------------------------------


def test_catalogue_comes_from_the_metadata_with_custom_fields_and_is_cached() -> None:
    session = FakeSession()
    settings = settings_with(session)
    catalogue = settings.catalogue(member())
    assert "Nick__c" in catalogue and catalogue["Last_Name"].required
    assert "Email_Opt_Out" not in catalogue
    assert settings.catalogue(member()) is catalogue and len(session.calls) == 1


@pytest.mark.parametrize("session", [
    FakeSession(fail=CrmUnavailable(503, "UNAVAILABLE", "down")),
    FakeSession(fields=None),
    FakeSession(fields=[{"api_name": "First_Name", "data_type": "text"}]),  # names no required field
], ids=["crm down", "no fields", "no required field"])
def test_catalogue_falls_back_to_the_documented_list(session: FakeSession) -> None:
    assert settings_with(session).catalogue(member()) is CRM_CONTACT_FIELDS


def test_problems_name_the_field_against_the_orgs_catalogue() -> None:
    settings = settings_with(FakeSession())
    dated = ContactMapping(pairs=(FieldPair(crm_field="Last_Name", outlook_field="surname"),
                                  FieldPair(crm_field="Date_of_Birth", outlook_field="businessPhones[0]")))
    assert [(p.code.value, p.field) for p in settings.problems(member(), dated)] == [("type_mismatch", "Date_of_Birth")]
    no_last = ContactMapping(pairs=(FieldPair(crm_field="First_Name", outlook_field="givenName"),))
    assert [(p.code.value, p.field) for p in settings.problems(member(), no_last)] == [("required_unmapped", "Last_Name")]
    custom = ContactMapping(pairs=(FieldPair(crm_field="Last_Name", outlook_field="surname"),
                                   FieldPair(crm_field="Nick__c", outlook_field="nickName")))
    assert settings.problems(member(), custom) == []


# -- the sample and preview ---------------------------------------------------------------------


def contact(record_id: str, owner: str, source: str = "Manual", **fields: Any) -> dict[str, Any]:
    return {"id": record_id, "Owner": {"id": owner}, "Data_Source": source, **fields}


def test_sample_is_the_members_own_contact_that_sync_would_send() -> None:
    session = FakeSession(records=[
        contact("1", "someone else", First_Name="Not", Last_Name="Mine"),
        contact("2", ME, "Import", First_Name="Imp", Last_Name="Orted"),
        contact("3", ME, First_Name="Ann", Last_Name="Own", Phone="+33 1 23"),
    ])
    settings = settings_with(session)
    assert settings.sample(member())["id"] == "3"  # type: ignore[index]
    path, params = session.calls[-1]
    assert path == "/Contacts" and params["sort_by"] == "Modified_Time" and params["sort_order"] == "desc"
    assert len(params["fields"].split(",")) <= 50


def test_sample_falls_back_to_an_imported_one_and_to_none() -> None:
    assert settings_with(FakeSession(records=[contact("2", ME, "Import", Last_Name="I")])).sample(member())["id"] == "2"  # type: ignore[index]
    assert settings_with(FakeSession(records=[])).sample(member()) is None
    assert settings_with(FakeSession(fail=CrmUnavailable(503, "UNAVAILABLE", "down"))).sample(member()) is None


def test_preview_shows_the_sample_in_outlook_with_problems() -> None:
    session = FakeSession(records=[contact("3", ME, First_Name="Ann", Last_Name="Own", Date_of_Birth="1990-02-03")])
    mapping = ContactMapping(pairs=(FieldPair(crm_field="First_Name", outlook_field="givenName"),
                                    FieldPair(crm_field="Last_Name", outlook_field="surname"),
                                    FieldPair(crm_field="Date_of_Birth", outlook_field="birthday")))
    rows = settings_with(session).preview(member(), mapping)
    assert [(r.target_field, r.value, r.problem) for r in rows] == [
        ("givenName", "Ann", None), ("surname", "Own", None), ("birthday", "1990-02-03", None)]


# -- the window's wire --------------------------------------------------------------------------


def body(pairs: Any) -> bytes:
    return json.dumps({"pairs": pairs}).encode()


def test_parse_mapping_reads_pairs_with_graph_field_and_direction() -> None:
    wire = mapping_json(DEFAULT_CONTACT_MAPPING)["pairs"]
    sent = [{k: p[k] for k in ("crm_field", "graph_field", "direction")} for p in wire]
    assert parse_mapping(body(sent), "en") == DEFAULT_CONTACT_MAPPING
    one = parse_mapping(body([{"crm_field": "Last_Name", "graph_field": "surname"}]), "en")
    assert one.pairs[0].direction.value == "both"


@pytest.mark.parametrize(("raw", "status", "says"), [
    (b"{not json", 400, "not valid JSON"),
    (b"[]", 400, '"pairs"'),
    (json.dumps({"pairs": [], "extra": 1}).encode(), 400, '"pairs"'),
    (body([{"crm_field": "Last_Name"}]), 400, "Pair 1"),
    (body([{"crm_field": "Last_Name", "graph_field": "surname", "colour": "red"}]), 400, "Pair 1"),
    (body([{"crm_field": "Last_Name", "graph_field": "x" * 101}]), 400, "Pair 1"),
    (body([{"crm_field": "Last_Name", "graph_field": "surname"}] * 201), 400, "at most 200"),
    (b" " * (64 * 1024 + 1), 413, "larger than 64 KB"),
], ids=["json", "list", "extra key", "missing", "unknown key", "too long", "too many", "too big"])
def test_parse_mapping_refuses_bad_input_saying_why(raw: bytes, status: int, says: str) -> None:
    with pytest.raises(BadMapping) as bad:
        parse_mapping(raw, "en")
    assert bad.value.status == status and says in bad.value.message


def test_unknown_direction_is_a_problem_naming_the_field_in_both_languages() -> None:
    raw = body([{"crm_field": "Last_Name", "graph_field": "surname", "direction": "sideways"}])
    with pytest.raises(BadMapping) as bad:
        parse_mapping(raw, "en")
    assert bad.value.status == 422
    assert bad.value.problems[0]["code"] == "unknown_direction" and bad.value.problems[0]["field"] == "Last_Name"
    with pytest.raises(BadMapping) as mauvais:
        parse_mapping(raw, "fr")
    assert "n'est pas un sens" in mauvais.value.problems[0]["message"]


def request(headers: dict[str, str]) -> WebRequest:
    return WebRequest(method="PUT", url="http://127.0.0.1:7071/api/settings/microsoft/contacts/mapping", headers=headers)


def test_json_csrf_needs_the_sessions_token_in_the_header_and_our_origin() -> None:
    base = "http://127.0.0.1:7071"
    assert json_is_genuine(request({"x-csrf-token": "tok"}), "tok", base)
    assert json_is_genuine(request({"x-csrf-token": "tok", "origin": base}), "tok", base)
    assert not json_is_genuine(request({}), "tok", base)
    assert not json_is_genuine(request({"x-csrf-token": "other"}), "tok", base)
    assert not json_is_genuine(request({"x-csrf-token": "tok", "origin": "https://evil.example"}), "tok", base)
