"""The org's edition, learnt from the CRM, sets how many calls every host together keeps in
flight in that org, and the smaller pool of heavy writes is kept beside it (issue 20)."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable

import requests
from azure.data.tables import TableServiceClient

from emulators.crm.server import RunningCrm
from shared.crm.models import CrmMemberAccess
from shared.crm.oauth import ZohoOAuth
from shared.crm.records import CrmRecords
from shared.crm.session import CrmCallPolicy, CrmSessions
from shared.crm.tokens import AccessTokens
from shared.storage import TableRepository
from shared.storage.shared_slots import SharedSlots, SlotRow

from .conftest import control, counters


def three_hosts(oauth: ZohoOAuth, http: requests.Session, azurite) -> list[CrmSessions]:  # type: ignore[no-untyped-def]
    rows = TableRepository(TableServiceClient.from_connection_string(azurite.connection_string),
                           f"t{uuid.uuid4().hex[:12]}crmslots", SlotRow)
    rows.ensure_table()
    return [CrmSessions(AccessTokens(oauth), http, CrmCallPolicy(), shared_slots=SharedSlots(rows, holder=f"host-{n}"))
            for n in range(3)]


def run_together(hosts: list[CrmSessions], member: CrmMemberAccess, threads: int,
                 work: Callable[[CrmRecords], None]) -> list[Exception]:
    errors: list[Exception] = []

    def worker(host: CrmSessions) -> None:
        try:
            work(CrmRecords(host.for_member(member)))
        except Exception as error:  # collected and asserted by the caller
            errors.append(error)

    running = [threading.Thread(target=worker, args=(hosts[n % len(hosts)],)) for n in range(threads)]
    for thread in running:
        thread.start()
    for thread in running:
        thread.join(timeout=120)
    return errors


def test_an_enterprise_org_gets_its_editions_concurrency_once_the_crm_said_which_it_is(  # type: ignore[no-untyped-def]
    crm: RunningCrm, oauth: ZohoOAuth, http: requests.Session, azurite, fabrice: CrmMemberAccess
) -> None:
    """The member's edition is not stored: each host asks ``GET /org`` once, then uses the
    enterprise edition's 20 (less one of margin) across the three of them, with no 429."""
    control(crm, "/faults", {"orgs": {fabrice.org_id: {"latency_ms": 60}}}, method="PUT")
    member = fabrice.model_copy(update={"edition": None})
    hosts = three_hosts(oauth, http, azurite)
    for host in hosts:  # what a host's first step does before its calls
        host.for_member(member)

    errors = run_together(hosts, member, 24, lambda records: [records.get("Contacts", "1") for _ in range(5)])

    seen = counters(crm, fabrice.org_id)
    assert errors == [] and seen["total"] == 24 * 5 + 3, seen  # 3: one GET /org per host
    assert seen["throttled_429"] == 0
    assert 5 < seen["concurrent_peak"] <= 19, seen  # beyond the free edition's, within the enterprise's
    assert all(host.editions.known(fabrice.org_id) == (True, "enterprise") for host in hosts)


def test_heavy_writes_stay_inside_the_crms_pool_of_ten_across_hosts(  # type: ignore[no-untyped-def]
    crm: RunningCrm, oauth: ZohoOAuth, http: requests.Session, azurite, fabrice: CrmMemberAccess
) -> None:
    """Writes of more than ten records count in a pool of ten per org, whatever the edition:
    twelve such writes at once from three hosts, where the org allows nineteen calls, are
    kept to nine at a time by us, and none is refused."""
    control(crm, "/faults", {"orgs": {fabrice.org_id: {"latency_ms": 150}}}, method="PUT")
    hosts = three_hosts(oauth, http, azurite)

    def write(records: CrmRecords) -> None:
        name = uuid.uuid4().hex[:8]
        results = records.insert("Contacts", [{"Last_Name": f"Heavy {name} {n}"} for n in range(11)])
        assert all(result.ok for result in results), results

    errors = run_together(hosts, fabrice, 12, write)

    seen = counters(crm, fabrice.org_id)
    assert errors == [] and seen["throttled_429"] == 0, (errors, seen)
    assert seen["total"] == 12 and 1 < seen["concurrent_peak"] <= 9, seen


def test_an_org_the_crm_will_not_describe_keeps_the_free_editions_limit(  # type: ignore[no-untyped-def]
    crm: RunningCrm, sessions: CrmSessions, fabrice: CrmMemberAccess
) -> None:
    """A failed ``GET /org`` is no failure of the member's work: the call goes on under the
    limit every org allows, and the question is asked again a minute later, not at every call."""
    control(crm, "/faults", {"orgs": {fabrice.org_id: {"fail_next": [403]}}}, method="PUT")
    member = fabrice.model_copy(update={"edition": None})
    session = sessions.for_member(member)
    assert session.member.edition is None and sessions.editions.known(fabrice.org_id) == (True, None)
    CrmRecords(session).get("Contacts", "1")
    sessions.for_member(member)
    assert counters(crm, fabrice.org_id)["total"] == 2  # the refused GET /org and the get; not asked again
