"""Markers of one generation (issue 17): a marker names its partner only in the Enable
that wrote it; one of another Enable (or a hostile value) names nothing."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from shared.sync import markers
from shared.sync.actions import Adopt, Create
from shared.sync.changes import ItemSeen, SideChanges
from shared.sync.engine import plan
from shared.sync.links import Side

generations = st.one_of(st.none(), st.text("0123456789abcdef", min_size=8, max_size=8))
ids = st.text(st.characters(blacklist_characters=":", blacklist_categories=("Cs",)), min_size=1, max_size=60)


@given(generations, ids)
def test_a_marker_names_its_partner_in_the_generation_that_wrote_it(generation: str | None, partner: str) -> None:
    assert markers.decode(generation, markers.encode(generation, partner)) == partner


@given(generations, generations, ids)
def test_a_marker_of_another_generation_names_nothing(written: str | None, reading: str | None, partner: str) -> None:
    if written != reading:
        assert markers.decode(reading, markers.encode(written, partner)) is None


@given(generations, st.one_of(st.none(), st.text(max_size=200), st.integers(), st.lists(st.text())))
def test_any_value_decodes_to_a_partner_or_nothing(generation: str | None, value: object) -> None:
    decoded = markers.decode(generation, value)
    assert decoded is None or (isinstance(decoded, str) and decoded)


def test_generations_are_fresh() -> None:
    assert len({markers.new_generation() for _ in range(1000)}) == 1000


def test_a_crm_record_naming_an_outlook_item_of_an_earlier_enable_is_sent_again_not_adopted() -> None:
    """The data loss of issue 17 at the engine's door: read in the new generation, the
    record's old marker names nothing, so the record is new (N1: created in Outlook), never
    adopted as a lost row paired with a dead Outlook id (whose 404 then read as a deletion)."""
    from datetime import UTC, datetime

    now = datetime(2026, 12, 5, tzinfo=UTC)
    old_marker = markers.encode("0badc0de", "AAMkOld")

    def seen(generation: str) -> ItemSeen:
        return ItemSeen("111", "v1", {"title": "Made in Outlook"}, now, partner_id=markers.decode(generation, old_marker))

    stale = plan([], SideChanges(seen=(seen("1234abcd"),)), SideChanges(), now=now).actions
    assert [type(a) for a in stale] == [Create] and stale[0].side is Side.OUTLOOK  # type: ignore[attr-defined]
    same = plan([], SideChanges(seen=(seen("0badc0de"),)), SideChanges(), now=now).actions
    assert any(isinstance(a, Adopt) for a in same)  # within its generation, a marker still recovers a lost row
