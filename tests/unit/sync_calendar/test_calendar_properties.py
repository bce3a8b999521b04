"""Round trips of random valid canonical fields through each side (SPEC R3.9: "a round trip in
both directions leaves every field as it was"), compared by fingerprint."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

from calendar_examples import same, through_crm, through_graph
from hypothesis import given, note
from hypothesis import strategies as st

from shared.sync.calendar.recurrence import canonical_rule

ZONES = ["Europe/Berlin", "America/New_York", "Asia/Kolkata", "Australia/Sydney", "UTC", "Pacific/Auckland", None]
LETTERS = st.sampled_from("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789 ,.;:!?&<>'\"()éß€")
line = st.text(LETTERS, min_size=1, max_size=30).filter(lambda s: s.strip() and "@" not in s)
name = st.text(st.sampled_from("abcdefghijklmnopqrstuvwxyz ABCDEFGH-'é"), min_size=1, max_size=20).filter(
    lambda s: s.strip())
email = st.builds(lambda user, host: f"{user}@{host}.example", st.from_regex(r"[a-z][a-z0-9.]{0,8}", fullmatch=True),
                  st.from_regex(r"[a-z]{1,8}", fullmatch=True))


def _unambiguous(instant: datetime, zone: str | None) -> bool:
    """Wall times that occur twice (DST fall-back) cannot be named in Graph's wall-clock form."""
    if not zone:
        return True
    local = instant.astimezone(ZoneInfo(zone))
    return local.replace(fold=1 - local.fold).utcoffset() == local.utcoffset()


@st.composite
def whens(draw):
    zone = draw(st.sampled_from(ZONES))
    if draw(st.booleans()):
        first = draw(st.dates(date(2024, 1, 1), date(2030, 12, 31)))
        days = draw(st.integers(1, 5))
        return {"all_day": True, "start": first.isoformat(), "end": (first + timedelta(days=days)).isoformat(),
                "time_zone": zone}
    minutes = draw(st.integers(0, 7 * 365 * 24 * 4)) * 15
    start = datetime(2024, 1, 1, tzinfo=UTC) + timedelta(minutes=minutes)
    end = start + timedelta(minutes=draw(st.integers(0, 16)) * 15)
    if not (_unambiguous(start, zone) and _unambiguous(end, zone)):
        zone = "UTC"
    tz = ZoneInfo(zone or "UTC")
    return {"all_day": False, "start": start.astimezone(tz).isoformat(), "end": end.astimezone(tz).isoformat(),
            "time_zone": zone}


def _wall_start(when) -> date:
    if when["all_day"]:
        return date.fromisoformat(when["start"])
    return datetime.fromisoformat(when["start"]).date()


@st.composite
def recurrences(draw, when):
    start = _wall_start(when)
    days = draw(st.lists(st.sampled_from(["MO", "TU", "WE", "TH", "FR", "SA", "SU"]), min_size=1, max_size=3,
                         unique=True))
    interval = draw(st.integers(1, 4))
    kind = draw(st.sampled_from(["DAILY", "WEEKLY", "AMONTHLY", "RMONTHLY", "AYEARLY", "RYEARLY"]))
    body = {
        "DAILY": "FREQ=DAILY",
        "WEEKLY": f"FREQ=WEEKLY;BYDAY={','.join(days)}",
        "AMONTHLY": f"FREQ=MONTHLY;BYMONTHDAY={draw(st.integers(1, 31))}",
        "RMONTHLY": f"FREQ=MONTHLY;BYDAY={days[0]};BYSETPOS={draw(st.sampled_from([1, 2, 3, 4, -1]))}",
        "AYEARLY": f"FREQ=YEARLY;BYMONTH={draw(st.integers(1, 12))};BYMONTHDAY={draw(st.integers(1, 28))}",
        "RYEARLY": f"FREQ=YEARLY;BYMONTH={draw(st.integers(1, 12))};BYDAY={days[0]};BYSETPOS=2",
    }[kind]
    ending = draw(st.sampled_from(["", f";COUNT={draw(st.integers(1, 50))}",
                                   f";UNTIL={(start + timedelta(days=draw(st.integers(0, 900)))).isoformat()}"]))
    rule = canonical_rule(f"{body};INTERVAL={interval}{ending}", start)
    exceptions = []
    for offset in draw(st.lists(st.integers(1, 60), max_size=3, unique=True)):
        original = (start + timedelta(days=7 * offset)).isoformat()
        if draw(st.booleans()):
            exceptions.append({"original_date": original, "cancelled": True})
        else:
            # a real move: an "exception" at the rule's own time is no exception (Graph says so too)
            hours = draw(st.sampled_from([-3, -2, -1, 1, 2, 3]))
            shift = timedelta(days=7 * offset + (1 if when["all_day"] else 0), hours=0 if when["all_day"] else hours)
            exceptions.append({"original_date": original, **_shifted(when, shift)})
    return {"rule": rule, "exceptions": sorted(exceptions, key=lambda e: e["original_date"])}


def _shifted(when, shift: timedelta) -> dict[str, str]:
    """The moved occurrence's times: the rule's wall-clock time on that day, shifted
    (series keep their wall-clock time across DST, so the shift is in wall time)."""
    if when["all_day"]:
        return {"start": (date.fromisoformat(when["start"]) + shift).isoformat(),
                "end": (date.fromisoformat(when["end"]) + shift).isoformat()}
    tz = ZoneInfo(when["time_zone"] or "UTC")
    wall = datetime.fromisoformat(when["start"]).replace(tzinfo=None) + shift
    duration = datetime.fromisoformat(when["end"]) - datetime.fromisoformat(when["start"])
    start = wall.replace(tzinfo=tz)
    while not _unambiguous(start, when["time_zone"]) or start.astimezone(UTC).astimezone(tz).replace(
            tzinfo=None) != start.replace(tzinfo=None):  # a fall-back or spring-forward wall time
        start = (start.replace(tzinfo=None) + timedelta(hours=6)).replace(tzinfo=tz)
    return {"start": start.isoformat(), "end": (start.astimezone(UTC) + duration).astimezone(tz).isoformat()}


@st.composite
def canonical_fields(draw):
    when = draw(whens())
    return {
        "title": draw(st.one_of(st.none(), line)),
        "description": draw(st.one_of(st.none(), st.lists(st.one_of(line, st.just("")), min_size=1, max_size=4).map(
            "\n".join))),
        "location": draw(st.one_of(st.none(), line)),
        "when": when,
        "reminder_minutes": draw(st.one_of(st.none(), st.integers(0, 60), st.integers(61, 4 * 1440))),
        "recurrence": draw(st.one_of(st.none(), recurrences(when))),
        "attendees": sorted(
            draw(st.lists(st.builds(lambda e, n: {"email": e, "name": n}, email, st.one_of(st.none(), name)),
                          max_size=4, unique_by=lambda p: p["email"])),
            key=lambda p: (p["email"], (p["name"] or "").casefold()),
        ),
    }


@given(canonical_fields())
def test_crm_round_trip_keeps_every_field(fields):
    back = through_crm(fields)
    note(repr(back))
    assert same(back, fields)


@given(canonical_fields())
def test_graph_round_trip_keeps_every_field(fields):
    back = through_graph(fields)
    note(repr(back))
    assert same(back, fields)


@given(canonical_fields())
def test_outlook_to_crm_to_outlook_keeps_every_field(fields):
    # The adapter passes the CRM user's zone; here the event's own, as if the member set it.
    zone = fields["when"]["time_zone"]
    assert same(through_graph(through_crm(through_graph(fields), time_zone=zone)), fields)
