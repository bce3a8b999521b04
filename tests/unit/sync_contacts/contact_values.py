"""Hypothesis strategies for valid contact values on each side (default mapping)."""

from __future__ import annotations

from typing import Any

from hypothesis import strategies as st

from shared.sync.contacts import ADDRESS_PARTS

_LETTERS = st.sampled_from("abcXYZ019 .,-'&éßØ李")

words = st.text(_LETTERS, min_size=1, max_size=30).map(str.strip).filter(bool)
notes = st.lists(words, min_size=1, max_size=4).map("\n".join)
_ALNUM = st.text(st.sampled_from("abcxyz0189"), min_size=1, max_size=10)
emails = st.builds("{}@{}.{}".format, _ALNUM, _ALNUM, st.sampled_from(["com", "org", "de"]))
phones = st.builds(
    "{}{} ({}) {}-{}".format,
    st.sampled_from(["", "+"]),
    st.integers(1, 999),
    st.integers(10, 9999),
    st.integers(100, 999),
    st.integers(0, 99999),
)
dates = st.dates().map(lambda day: day.isoformat())
tags = st.lists(words, max_size=3, unique=True)


def maybe(values: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    return st.one_of(st.none(), values)


@st.composite
def crm_records(draw: st.DrawFn, *, slot_gaps: bool = True) -> dict[str, Any]:
    """A CRM Contacts record as the records API returns it. With ``slot_gaps`` False,
    the fields that share an Outlook list are filled from the first slot on."""
    record: dict[str, Any] = {"id": str(draw(st.integers(10**18, 10**19 - 1)))}
    for name in ("First_Name", "Title", "Department", "Assistant", "Skype_ID"):
        record[name] = draw(maybe(words))
    record["Last_Name"] = draw(words)
    record["Salutation"] = draw(maybe(st.sampled_from(["Mr.", "Mrs.", "Ms.", "Dr.", "Prof."])))
    emails_drawn = [draw(maybe(emails)), draw(maybe(emails))]
    phones_drawn = [draw(maybe(phones)), draw(maybe(phones))]
    if not slot_gaps:
        emails_drawn = sorted(emails_drawn, key=lambda value: value is None)
        phones_drawn = sorted(phones_drawn, key=lambda value: value is None)
    record["Email"], record["Secondary_Email"] = emails_drawn
    record["Phone"], record["Other_Phone"] = phones_drawn
    record["Mobile"] = draw(maybe(phones))
    record["Home_Phone"] = draw(maybe(phones))
    record["Account_Name"] = draw(maybe(words.map(lambda name: {"name": name, "id": "5725767000000001"})))
    record["Reporting_To"] = draw(maybe(words.map(lambda name: {"name": name, "id": "5725767000000002"})))
    for prefix in ("Mailing", "Other"):
        record[f"{prefix}_Street"] = draw(maybe(notes))
        for part in ("City", "State", "Zip", "Country"):
            record[f"{prefix}_{part}"] = draw(maybe(words))
    record["Date_of_Birth"] = draw(maybe(dates))
    record["Description"] = draw(maybe(notes))
    return record


@st.composite
def graph_contacts(draw: st.DrawFn) -> dict[str, Any]:
    """A Graph contact as GET returns it (lists compacted, as Outlook keeps them)."""
    contact: dict[str, Any] = {"id": f"AAMk{draw(st.integers(0, 10**12))}"}
    for name in ("givenName", "title", "jobTitle", "department", "companyName", "assistantName", "manager"):
        contact[name] = draw(maybe(words))
    contact["surname"] = draw(words)
    contact["mobilePhone"] = draw(maybe(phones))
    contact["emailAddresses"] = [
        {"name": draw(words), "address": address} for address in draw(st.lists(emails, max_size=3))
    ]
    contact["businessPhones"] = draw(st.lists(phones, max_size=2))
    contact["homePhones"] = draw(st.lists(phones, max_size=1))
    contact["imAddresses"] = draw(st.lists(words, max_size=1))
    for name in ("businessAddress", "otherAddress"):
        parts = {part: draw(maybe(notes if part == "street" else words)) for part in ADDRESS_PARTS}
        contact[name] = {part: value for part, value in parts.items() if value is not None}
    contact["birthday"] = draw(maybe(dates.map(lambda day: f"{day}T11:59:00Z")))
    contact["personalNotes"] = draw(maybe(notes))
    contact["categories"] = draw(tags)
    return contact
