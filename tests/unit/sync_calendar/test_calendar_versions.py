"""An event's version and the change key sent back as ``If-Match``. Graph's change keys are
base64: '/' and '+' are in them (found by the propagation bench: about every third CRM change
sent to Outlook was refused with 412, read again twice, then written unconditionally, the
If-Match having been cut at the key's first '/')."""

from __future__ import annotations

from datetime import UTC, datetime

from calendar_examples import OWNER, graph_event
from hypothesis import given
from hypothesis import strategies as st

from shared.sync.calendar_kind import CalendarRules

RULES = CalendarRules(OWNER, "g1", reference=datetime(2026, 6, 15, tzinfo=UTC))
BASE64 = st.text(alphabet="ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/=", min_size=1, max_size=40)


@given(key=BASE64)
def test_a_single_event_s_version_gives_back_its_whole_change_key(key: str) -> None:
    seen = RULES.outlook_to_seen(graph_event(changeKey=key), None)
    assert RULES.change_key_of(seen.version) == key


@given(master=BASE64, exceptions=st.lists(BASE64, max_size=3))
def test_a_series_version_covers_its_exceptions_and_gives_back_the_master_s_key(master: str, exceptions: list[str]) -> None:
    series = graph_event(changeKey=master, type="seriesMaster")
    seen = RULES.outlook_to_seen(series, None, [graph_event(changeKey=k, type="exception") for k in exceptions])
    assert RULES.change_key_of(seen.version) == master
    moved = RULES.outlook_to_seen(series, None, [graph_event(changeKey=k + "x", type="exception") for k in exceptions])
    assert (moved.version != seen.version) == bool(exceptions)


def test_real_looking_keys() -> None:
    key = "CQAAABYAAAB/x+Ur4mA9Q6jKmDsDgIFIAAAWzZNl"
    assert RULES.change_key_of(RULES.outlook_to_seen(graph_event(changeKey=key), None).version) == key
