"""The org's edition as read from ``GET /org``, and the per-process memory of it."""

from __future__ import annotations

import pytest

from shared.crm.editions import KNOWN_FOR_SECONDS, UNKNOWN_FOR_SECONDS, OrgEditions, edition_of


def org(**license_details: object) -> dict[str, object]:
    return {"org": [{"id": "1", "license_details": license_details}]}


@pytest.mark.parametrize(("body", "edition"), [
    (org(paid=True, paid_type="enterprise"), "enterprise"),
    (org(paid=True, paid_type="Professional"), "professional"),
    (org(paid=True, paid_type="ultimate"), "ultimate"),
    (org(paid=True, paid_type="crmplus"), "ultimate"),
    (org(paid=True, paid_type="zohoone"), "enterprise"),
    (org(paid=True, paid_type="standard"), "standard"),
    # A trial is limited as the free edition (its limits are not documented).
    (org(paid=False, paid_type="free", trial_type="enterprise"), "free"),
    (org(paid=False, paid_type="free"), "free"),
    # Paid, under a name we do not know, or none: the smallest paid edition's limit.
    (org(paid=True, paid_type="galactic"), "standard"),
    (org(paid=True), "standard"),
    (org(paid=True, paid_type="free"), "standard"),
    # Not what the contract describes: the free edition's limit, which every org allows.
    ({"org": []}, "free"),
    ({}, "free"),
    ({"org": ["not an object"]}, "free"),
    ({"org": [{"license_details": "paid"}]}, "free"),
    (org(paid="true", paid_type="enterprise"), "free"),
])
def test_the_edition_whose_limits_apply(body: dict[str, object], edition: str) -> None:
    assert edition_of(body) == edition


def test_an_edition_is_kept_an_hour_and_an_unanswered_question_a_minute() -> None:
    now = [1000.0]
    editions = OrgEditions(clock=lambda: now[0])
    assert editions.known("a") == (False, None)
    editions.learn("a", "enterprise")
    editions.learn("b", None)
    assert editions.known("a") == (True, "enterprise") and editions.known("b") == (True, None)
    now[0] += UNKNOWN_FOR_SECONDS
    assert editions.known("a") == (True, "enterprise") and editions.known("b") == (False, None)
    now[0] += KNOWN_FOR_SECONDS - UNKNOWN_FOR_SECONDS
    assert editions.known("a") == (False, None)


def test_the_memory_is_bounded_and_forgets_the_least_recently_used() -> None:
    editions = OrgEditions(clock=lambda: 0.0, max_orgs=2)
    editions.learn("a", "free")
    editions.learn("b", "standard")
    assert editions.known("a")[0]  # a used: b is now the oldest
    editions.learn("c", "ultimate")
    assert editions.known("a") == (True, "free") and editions.known("b") == (False, None)
    assert editions.known("c") == (True, "ultimate")
