"""The mapped-content fingerprint and its normalisers (DESIGN §8; issue 8: "equal data never ping-pongs")."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from shared.sync import DEFAULT_NORMALISATION, IGNORED_FIELDS, Normalisation, fingerprint
from shared.sync.fingerprint import (
    FINGERPRINT_SCHEME,
    email,
    html_text,
    phone,
    plain,
    single_line,
    utc_datetime,
)

JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4), inner, max_size=3),
    max_leaves=8,
)


@given(st.dictionaries(st.text(max_size=6), JSON, max_size=6))
def test_fingerprint_does_not_depend_on_key_order(fields: dict) -> None:
    assert fingerprint(dict(reversed(list(fields.items())))) == fingerprint(fields)


@given(st.dictionaries(st.text(max_size=6), JSON, max_size=6))
def test_normalising_twice_changes_nothing(fields: dict) -> None:
    once = DEFAULT_NORMALISATION.apply(fields)
    assert DEFAULT_NORMALISATION.apply(once) == once


def test_fingerprint_names_its_scheme_and_differs_for_different_content() -> None:
    assert fingerprint({"subject": "a"}).startswith(f"{FINGERPRINT_SCHEME}:")
    assert fingerprint({"subject": "a"}) != fingerprint({"subject": "b"})


@pytest.mark.parametrize("name", sorted(IGNORED_FIELDS))
def test_volatile_and_identity_fields_are_ignored(name: str) -> None:
    assert fingerprint({"subject": "a", name: "anything"}) == fingerprint({"subject": "a"})


@pytest.mark.parametrize("empty", [None, "", [], {}, "  \r\n "])
def test_empty_values_equal_an_absent_field(empty: object) -> None:
    assert fingerprint({"subject": "a", "notes": empty}) == fingerprint({"subject": "a"})  # type: ignore[dict-item]


def test_plain_text_ignores_line_break_style_and_trailing_spaces() -> None:
    assert plain("one  \r\ntwo\rthree \n") == "one\ntwo\nthree"
    assert plain(2.0) == 2 and plain(True) is True
    assert plain({"a": " x ", "b": ""}) == {"a": "x"}


def test_single_line_collapses_whitespace_runs() -> None:
    assert single_line("  Team \t call\n") == "Team call"


def test_email_ignores_case_and_surrounding_spaces_in_lists_too() -> None:
    assert email(" Ann@Example.COM ") == "ann@example.com"
    assert email(["A@B.C", ""]) == ["a@b.c", None]


@pytest.mark.parametrize("raw", ["+1 (555) 010-2000", "+1.555.010.2000", "+15550102000"])
def test_phone_keeps_only_the_plus_and_digits(raw: str) -> None:
    assert phone(raw) == "+15550102000"


def test_html_body_compares_by_its_text() -> None:
    markup = "<html><head><style>p{}</style></head><body><p>Agenda&nbsp;:</p><div>1.  Budget<br>2. Plan</div></body></html>"
    assert html_text(markup) == html_text("Agenda :\n1. Budget\n2. Plan")
    assert html_text("<p></p>") is None


def test_instants_compare_in_utc_and_dates_stay_dates() -> None:
    assert (
        utc_datetime("2026-08-25T10:00:00-05:00")
        == utc_datetime("2026-08-25T15:00:00Z")
        == "2026-08-25T15:00:00Z"
    )
    assert utc_datetime("2026-08-25") == "2026-08-25"
    assert utc_datetime("2026-08-25T10:00:00") == "2026-08-25T10:00:00"  # floating: nothing to resolve
    assert utc_datetime("not a date") == "not a date"


def test_rules_apply_per_field_and_the_default_elsewhere() -> None:
    rules = Normalisation({"email": email, "start": utc_datetime})
    crm = {"email": "Ann@X.com", "start": "2026-01-01T10:00:00+01:00", "subject": "Call "}
    outlook = {"email": "ann@x.com", "start": "2026-01-01T09:00:00Z", "subject": "Call"}
    assert rules.fingerprint(crm) == rules.fingerprint(outlook)
    assert DEFAULT_NORMALISATION.fingerprint(crm) != DEFAULT_NORMALISATION.fingerprint(outlook)
