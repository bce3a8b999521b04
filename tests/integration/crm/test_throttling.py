"""The CRM's limits: a 429 storm survived with nothing lost or duplicated, the per-org
concurrency kept, and failed writes reported per record as unknown or not sent."""

from __future__ import annotations

import threading

import pytest
import requests

from emulators.crm.server import RunningCrm
from shared.crm.errors import CrmUnavailable
from shared.crm.models import CrmMemberAccess
from shared.crm.records import CrmRecords, ListQuery
from shared.crm.session import CrmCallPolicy, CrmSessions
from shared.crm.tokens import AccessTokens

from .conftest import control, counters, org_records


def faults(crm: RunningCrm, org_id: str, **settings: object) -> None:
    control(crm, "/faults", {"orgs": {org_id: settings}}, method="PUT")


def test_a_429_storm_loses_and_duplicates_nothing(
    crm: RunningCrm, sessions: CrmSessions, fabrice: CrmMemberAccess
) -> None:
    records = CrmRecords(sessions.for_member(fabrice))
    seeded = {r["id"] for r in org_records(crm, fabrice.org_id, "Contacts")}
    # A random storm, and two 429s for certain (about ten calls at 35 % would miss now and then).
    faults(crm, fabrice.org_id, rate_429=0.35, fail_next=[429, 429])

    created = records.insert("Contacts", [{"Last_Name": f"Storm {n:03d}", "Email": f"storm{n}@example.test"}
                                          for n in range(250)])
    assert all(r.ok for r in created)
    listed = [r["id"] for p in records.pages(ListQuery(module="Contacts", fields=("Last_Name",))) for r in p.records]
    updated = records.update("Contacts", [{"id": r.id, "Title": "Weathered"} for r in created])
    deleted = records.delete("Contacts", [str(r.id) for r in created[:120]])

    assert all(r.ok for r in updated) and all(r.ok for r in deleted)
    assert counters(crm, fabrice.org_id)["throttled_429"] > 0  # the storm did happen
    faults(crm, fabrice.org_id, rate_429=0)
    new_ids = {str(r.id) for r in created}
    assert len(listed) == len(set(listed)) and set(listed) == seeded | new_ids  # each once, none lost
    truth = {r["id"]: r for r in org_records(crm, fabrice.org_id, "Contacts")}
    assert len([r for r in truth.values() if r["Last_Name"].startswith("Storm")]) == 130  # no duplicate creates
    assert all(truth[i]["Title"] == "Weathered" for i in new_ids if i in truth)


def test_the_org_slots_keep_us_under_the_orgs_concurrency(
    crm: RunningCrm, tokens: AccessTokens, http: requests.Session, fabrice: CrmMemberAccess
) -> None:
    faults(crm, fabrice.org_id, concurrency=3, latency_ms=30)
    sessions = CrmSessions(tokens, http, CrmCallPolicy(org_concurrency=3))
    errors: list[Exception] = []

    def worker() -> None:
        records = CrmRecords(sessions.for_member(fabrice))  # members of one org share the slots
        try:
            for _ in range(5):
                records.get("Contacts", "1")
        except Exception as error:  # collected and asserted below
            errors.append(error)

    threads = [threading.Thread(target=worker) for _ in range(10)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)

    seen = counters(crm, fabrice.org_id)
    assert errors == [] and seen["total"] == 50
    assert seen["throttled_429"] == 0 and seen["concurrent_peak"] <= 3


def test_edition_caps_the_slot_size(sessions: CrmSessions) -> None:
    policy_sessions = CrmSessions(sessions.tokens, requests.Session(), CrmCallPolicy(org_concurrency=12))
    assert policy_sessions.slots.size_for("free") == 5
    assert policy_sessions.slots.size_for("enterprise") == 12
    assert policy_sessions.slots.size_for(None) == 12


def test_a_create_that_may_have_reached_the_crm_is_unknown_not_repeated(
    crm: RunningCrm, sessions: CrmSessions, fabrice: CrmMemberAccess
) -> None:
    records = CrmRecords(sessions.for_member(fabrice))
    faults(crm, fabrice.org_id, fail_next=[503])
    results = records.insert("Contacts", [{"Last_Name": f"Maybe {n}"} for n in range(150)])
    assert [r.status for r in results] == ["unknown"] * 100 + ["not_sent"] * 50
    assert counters(crm, fabrice.org_id)["total"] == 1  # not repeated, and the rest not sent

    faults(crm, fabrice.org_id, fail_next=[503, 500])  # an update is safe to repeat: it is
    existing = org_records(crm, fabrice.org_id, "Contacts")[0]["id"]
    assert records.update("Contacts", [{"id": existing, "Title": "Retried"}])[0].ok


def test_throttled_past_our_patience(crm: RunningCrm, tokens: AccessTokens, http: requests.Session,
                                     fabrice: CrmMemberAccess) -> None:
    sessions = CrmSessions(tokens, http, CrmCallPolicy(max_attempts=3, backoff_seconds=0.01))
    records = CrmRecords(sessions.for_member(fabrice))
    faults(crm, fabrice.org_id, fail_next=[429, 429, 429])
    results = records.insert("Contacts", [{"Last_Name": "Later"}])
    assert results[0].status == "not_sent" and results[0].code == "TOO_MANY_REQUESTS"  # refused: safe to resend
    faults(crm, fabrice.org_id, fail_next=[429, 429, 429])
    with pytest.raises(CrmUnavailable):
        list(records.pages(ListQuery(module="Contacts", fields=("Last_Name",))))


def test_three_hosts_together_stay_under_the_editions_concurrency(  # type: ignore[no-untyped-def]
    crm: RunningCrm, oauth, http: requests.Session, azurite, fabrice: CrmMemberAccess
) -> None:
    """Issue 20: three hosts' sessions (each its own process-wide slots, as Flex's instances
    have) share the org's slots through Table Storage: 60 calls, each held 40 ms by the CRM,
    never more than the edition allows at once, and no 429 earned."""
    import uuid

    from azure.data.tables import TableServiceClient

    from shared.storage import TableRepository
    from shared.storage.shared_slots import SharedSlots, SlotRow

    rows = TableRepository(TableServiceClient.from_connection_string(azurite.connection_string),
                           f"t{uuid.uuid4().hex[:12]}crmslots", SlotRow)
    rows.ensure_table()
    faults(crm, fabrice.org_id, latency_ms=40)
    member = fabrice.model_copy(update={"edition": "free"})  # five at a time for the org: the tightest edition
    faults(crm, fabrice.org_id, concurrency=5)
    hosts = [CrmSessions(AccessTokens(oauth), http, CrmCallPolicy(), shared_slots=SharedSlots(rows, holder=f"host-{n}"))
             for n in range(3)]
    errors: list[Exception] = []

    def worker(host: CrmSessions) -> None:
        records = CrmRecords(host.for_member(member))
        try:
            for _ in range(5):
                records.get("Contacts", "1")
        except Exception as error:  # collected and asserted below
            errors.append(error)

    threads = [threading.Thread(target=worker, args=(hosts[n % 3],)) for n in range(12)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    seen = counters(crm, fabrice.org_id)
    assert errors == [] and seen["total"] == 60  # (the token refreshes go to Zoho Accounts, not counted here)
    assert seen["throttled_429"] == 0 and seen["concurrent_peak"] <= 4, seen  # the edition's 5, less our one of margin
