"""Every Graph operation the issue names was exercised (and validated) by the contract tests of this session."""

from __future__ import annotations

import pytest

EXPECTED = {
    ("GET", "/users"), ("GET", "/users/{user-id}"),
    ("GET", "/users/{user-id}/calendars"), ("POST", "/users/{user-id}/calendars"),
    ("GET", "/users/{user-id}/calendars/{calendar-id}"), ("DELETE", "/users/{user-id}/calendars/{calendar-id}"),
    ("GET", "/users/{user-id}/calendars/{calendar-id}/events"), ("POST", "/users/{user-id}/calendars/{calendar-id}/events"),
    ("GET", "/users/{user-id}/calendars/{calendar-id}/events/{event-id}"),
    ("PATCH", "/users/{user-id}/calendars/{calendar-id}/events/{event-id}"),
    ("DELETE", "/users/{user-id}/calendars/{calendar-id}/events/{event-id}"),
    ("GET", "/users/{user-id}/calendarView/delta()"), ("GET", "/users/{user-id}/calendars/{calendar-id}/calendarView/delta()"),
    ("GET", "/users/{user-id}/contactFolders/delta()"), ("POST", "/users/{user-id}/contactFolders"),
    ("DELETE", "/users/{user-id}/contactFolders/{contactFolder-id}"),
    ("POST", "/users/{user-id}/contactFolders/{contactFolder-id}/contacts"),
    ("GET", "/users/{user-id}/contactFolders/{contactFolder-id}/contacts/delta()"),
    ("PATCH", "/users/{user-id}/contactFolders/{contactFolder-id}/contacts/{contact-id}"),
    ("GET", "/users/{user-id}/contactFolders/{contactFolder-id}/contacts/{contact-id}"),
    ("POST", "/users/{user-id}/sendMail"), ("POST", "/subscriptions"), ("PATCH", "/subscriptions/{subscription-id}"),
    ("DELETE", "/subscriptions/{subscription-id}"), ("POST", "/subscriptions/{subscription-id}/reauthorize"),
    ("POST", "/$batch"),
}


def test_every_named_operation_was_validated_against_the_contract(contract):
    if not contract.covered:
        pytest.skip("run with the rest of tests/contract/m365 to measure coverage")
    missing = {op for op in EXPECTED if op not in contract.covered}
    assert not missing, f"not exercised through the validating session: {sorted(missing)}"
