"""Field metadata through the CRM client against the emulator: the Contacts fields with their
types, lengths, picklists and the one mandatory field, turned into the mapping's catalogue."""

from __future__ import annotations

import pytest
import requests

from emulators.crm.server import RunningCrm
from shared.crm.errors import CrmError
from shared.crm.fields import CrmFields
from shared.crm.models import CrmMemberAccess
from shared.crm.session import CrmSessions
from shared.sync.contacts import (
    DEFAULT_CONTACT_MAPPING,
    FieldType,
    crm_catalogue_from_metadata,
    validate_mapping,
)


def test_contacts_metadata_describes_every_field_the_records_carry(
    sessions: CrmSessions, fabrice: CrmMemberAccess
) -> None:
    fields = {f["api_name"]: f for f in CrmFields(sessions.for_member(fabrice)).fields("Contacts")}
    assert fields["Last_Name"]["system_mandatory"] is True and fields["Last_Name"]["length"] == 80
    assert fields["First_Name"]["system_mandatory"] is False
    assert fields["Date_of_Birth"]["data_type"] == "date"
    assert fields["Email"]["data_type"] == "email" and fields["Phone"]["data_type"] == "phone"
    assert fields["Full_Name"]["read_only"] is True and fields["Data_Source"]["read_only"] is True
    assert fields["Account_Name"]["data_type"] == "lookup"
    assert {v["actual_value"] for v in fields["Salutation"]["pick_list_values"]} >= {"Mr.", "Dr."}
    assert {"Import", "Migration", "Mass Update"} <= {v["actual_value"] for v in fields["Data_Source"]["pick_list_values"]}


def test_catalogue_from_the_metadata_accepts_the_default_mapping(sessions: CrmSessions, fabrice: CrmMemberAccess) -> None:
    catalogue = crm_catalogue_from_metadata(CrmFields(sessions.for_member(fabrice)).fields("Contacts"))
    assert validate_mapping(DEFAULT_CONTACT_MAPPING, crm_catalogue=catalogue) == []
    assert catalogue["Mailing_Address"].type is FieldType.ADDRESS
    assert catalogue["Date_of_Birth"].type is FieldType.DATE
    assert not catalogue["Reporting_To"].writable and catalogue["Account_Name"].writable
    assert "Email_Opt_Out" not in catalogue  # a boolean has no Outlook counterpart


def test_events_metadata_and_refusals(crm: RunningCrm, sessions: CrmSessions, fabrice: CrmMemberAccess) -> None:
    client = CrmFields(sessions.for_member(fabrice))
    events = {f["api_name"]: f for f in client.fields("Events")}
    assert events["Event_Title"]["system_mandatory"] and events["Start_DateTime"]["data_type"] == "datetime"
    with pytest.raises(CrmError) as unknown:
        client.fields("Leads")  # type: ignore[arg-type]
    assert unknown.value.status == 400 and unknown.value.code == "INVALID_MODULE"
    token = sessions.tokens.get(fabrice).value
    missing = requests.get(f"{crm.api_url('us')}/crm/v8/settings/fields",
                           headers={"Authorization": f"Zoho-oauthtoken {token}"}, timeout=10)
    assert missing.status_code == 400 and missing.json()["code"] == "REQUIRED_PARAM_MISSING"
    anonymous = requests.get(f"{crm.api_url('us')}/crm/v8/settings/fields", params={"module": "Contacts"}, timeout=10)
    assert anonymous.status_code == 401
