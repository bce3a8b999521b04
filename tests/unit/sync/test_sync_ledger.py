"""The sync ledger's answers (``shared.sync.ledger.explain``): the latest fact per item,
found by any part of its name, for each reason."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from shared.sync.calendar_kind import CalendarRules
from shared.sync.contacts_kind import ContactsRules
from shared.sync.ledger import ConflictFact, Why, explain, why_excluded
from shared.sync.ledger_store import LedgerNote
from shared.sync.links import LinkRow, LinkState, Side

event_label = CalendarRules.label_of
contact_label = ContactsRules.label_of

T0 = datetime(2026, 12, 5, 9, 0, tzinfo=UTC)


def link(crm_id: str, title: str, at: datetime = T0, **extra: object) -> LinkRow:
    return LinkRow(link_id=f"l{crm_id}", state=LinkState.SYNCED, crm_id=crm_id, outlook_id=f"o{crm_id}",
                   fields={"title": title}, synced_at=at, **extra)  # type: ignore[arg-type]


def note(side: Side, item_id: str, name: str, why: Why, at: datetime = T0, partner: str | None = None) -> LedgerNote:
    return LedgerNote(partition_key="p", row_key=f"{side}|{item_id}", side=side, item_id=item_id, partner_id=partner,
                      name=name, why=why, at=at)


def test_every_reason_is_answered_by_name_in_any_case() -> None:
    links = [link("1", "Board meeting"), link("2", "Lunch", last_error="Outlook create: ErrorQuotaExceeded"),
             LinkRow(link_id="l3", state=LinkState.PENDING_CREATE_OUTLOOK, crm_id="3", transaction_key="k",
                     fields={"title": "Pending review"})]
    notes = [note(Side.CRM, "4", "Imported call", Why.IMPORTED), note(Side.CRM, "5", "Old plan", Why.OVER_CAP),
             note(Side.OUTLOOK, "o6", "Retro", Why.DELETED_IN_OUTLOOK, partner="6"),
             note(Side.CRM, "7", "Far trip", Why.OUTSIDE_WINDOW)]
    conflicts = [ConflictFact("1", "o1", T0 + timedelta(minutes=5),
                              [{"field": "location", "crm": "Room 1", "outlook": "Room 2", "winner": "outlook"}])]
    found = {e.name: e for e in explain(links, notes, conflicts, event_label)}
    assert {name: e.why for name, e in found.items()} == {
        "Board meeting": Why.CONFLICT, "Lunch": Why.FAILED, "Pending review": Why.SYNCING, "Imported call": Why.IMPORTED,
        "Old plan": Why.OVER_CAP, "Retro": Why.DELETED_IN_OUTLOOK, "Far trip": Why.OUTSIDE_WINDOW}
    assert found["Board meeting"].values[0]["winner"] == "outlook"
    assert found["Lunch"].detail == "Outlook create: ErrorQuotaExceeded"
    assert found["Retro"].crm_id == "6" and found["Retro"].outlook_id == "o6"
    assert [e.name for e in explain(links, notes, conflicts, event_label, "  bOaRd ")] == ["Board meeting"]
    assert explain(links, notes, conflicts, event_label, "nothing like it") == []


def test_the_latest_fact_wins() -> None:
    # Imported once, then (its source changed) synced later: synced. And the reverse.
    later = T0 + timedelta(hours=1)
    assert [e.why for e in explain([link("1", "A", at=later)], [note(Side.CRM, "1", "A", Why.IMPORTED)], [], event_label)] \
        == [Why.SYNCED]
    assert [e.why for e in explain([link("1", "A")], [note(Side.CRM, "1", "A", Why.NOT_OWNER, at=later)], [], event_label)] \
        == [Why.NOT_OWNER]


def test_a_tombstone_says_nothing_its_deletion_note_does() -> None:
    gone = LinkRow(link_id="l1", state=LinkState.TOMBSTONE, crm_id="1", outlook_id="o1", tombstoned_at=T0,
                   fields={"title": "Gone"})
    assert explain([gone], [], [], event_label) == []
    assert [e.why for e in explain([gone], [note(Side.CRM, "1", "Gone", Why.DELETED_IN_CRM, partner="o1")], [], event_label)] \
        == [Why.DELETED_IN_CRM]


def test_adapters_exclusions_become_codes() -> None:
    assert why_excluded("imported") == (Why.IMPORTED, None)
    assert why_excluded("migrated") == (Why.MIGRATED, None)
    assert why_excluded("not_owner") == (Why.NOT_OWNER, None)
    assert why_excluded("a rule the CRM cannot hold") == (Why.CANNOT_MAP, "a rule the CRM cannot hold")


def test_names_from_the_mapped_fields() -> None:
    assert event_label({"title": "Plan"}) == "Plan"
    assert contact_label({"First_Name:givenName": "Ann", "Last_Name:surname": "Own"}) == "Ann Own"
    assert contact_label({"Last_Name:surname": "Own"}) == "Own"
    assert contact_label({"Email:emailAddresses[0]": "a@b.example"}) == "a@b.example"
