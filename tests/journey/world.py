"""The journey test's world (issue 17): a member's whole life with sync, driven on the
running stack the way people do it, checked against a small reference model.

- **Gestures** are what people do: in the CRM (create, edit, mass update, delete, import),
  in Outlook (create, edit, delete, delete our container), on the settings page (Enable,
  Disable, Enable again), and what the world does to us (the host killed mid-step, a 429
  storm, lost webhooks). Every queue message is delivered twice all along.
- The **model** says what must be true: which records the CRM holds (with which value of
  the edited field), and, while sync is on, that our container holds exactly the CRM's
  in-scope records, each once.
- A **round** is a few gestures then a settle; the check after each settle counts what is
  lost, duplicated, resurrected or diverged. A failing journey prints its seed and steps;
  ``JOURNEY_SEEDS=<seed>`` replays it.

Settings gestures call the sync service as the settings page's handlers do
(``tests/browser/test_disable_enable.py`` clicks the same journey through the page).
"""

from __future__ import annotations

import random
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import requests

from shared.accounts.models import MemberIdentity
from shared.sync.ledger import Why
from shared.sync.profiles import SyncKind, SyncProfile, SyncState
from shared.web.settings_pages import SettingsPages
from shared.wiring import get_services
from tests.integration.host_process import HostProcess
from tests.integration.sync_setup import crm_control, crm_records, outlook_items
from tests.product_stack import ProductStack

ADELE = "adele@contoso.test"
SETTLE_SECONDS = 120


@dataclass(frozen=True)
class KindShape:
    """How one kind of item is spelled on each side: its name (the model's key) and one
    edited field (the model's value)."""

    module: str
    container: str
    collection: str  # Graph: calendars / contactFolders
    items: str  # Graph: events / contacts
    crm_fields: Callable[[str, str], dict[str, Any]]
    crm_edit: Callable[[str], dict[str, Any]]
    crm_key: Callable[[dict[str, Any]], tuple[str, str | None]]
    outlook_fields: Callable[[str, str], dict[str, Any]]
    outlook_edit: Callable[[str], dict[str, Any]]
    outlook_key: Callable[[dict[str, Any]], tuple[str, str | None]]


def _slot(name: str) -> tuple[str, str]:
    """A time slot for an event, from its name (distinct events, 1 to 20 days ahead)."""
    n = sum(map(ord, name)) % 400
    start = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) + timedelta(days=1 + n // 20, hours=n % 20)
    return start.isoformat(), (start + timedelta(minutes=30)).isoformat()


def _graph_time(text: str) -> dict[str, str]:
    return {"dateTime": datetime.fromisoformat(text).astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S"), "timeZone": "UTC"}


SHAPES: dict[SyncKind, KindShape] = {
    SyncKind.CALENDAR: KindShape(
        module="Events", container="Zoho CRM", collection="calendars", items="events",
        crm_fields=lambda name, value: {"Event_Title": name, "Start_DateTime": _slot(name)[0],
                                        "End_DateTime": _slot(name)[1], "All_day": False, "Venue": value},
        crm_edit=lambda value: {"Venue": value},
        crm_key=lambda r: (str(r.get("Event_Title")), r.get("Venue") or None),
        outlook_fields=lambda name, value: {"subject": name, "start": _graph_time(_slot(name)[0]),
                                            "end": _graph_time(_slot(name)[1]), "location": {"displayName": value}},
        outlook_edit=lambda value: {"location": {"displayName": value}},
        outlook_key=lambda i: (str(i.get("subject")), (i.get("location") or {}).get("displayName") or None),
    ),
    SyncKind.CONTACTS: KindShape(
        module="Contacts", container="Zoho CRM Contacts", collection="contactFolders", items="contacts",
        crm_fields=lambda name, value: {"First_Name": name.split()[0], "Last_Name": name.split()[1], "Department": value},
        crm_edit=lambda value: {"Department": value},
        crm_key=lambda r: (f"{r.get('First_Name')} {r.get('Last_Name')}", r.get("Department") or None),
        outlook_fields=lambda name, value: {"givenName": name.split()[0], "surname": name.split()[1], "department": value},
        outlook_edit=lambda value: {"department": value},
        outlook_key=lambda i: (f"{i.get('givenName')} {i.get('surname')}", i.get("department") or None),
    ),
}


@dataclass
class Tally:
    """What the checks found, over every settle of every journey."""

    journeys: int = 0
    steps: int = 0
    settles: int = 0
    lost: int = 0
    duplicated: int = 0
    resurrected: int = 0
    diverged: int = 0
    unexplained: int = 0

    def line(self) -> str:
        return (f"journeys={self.journeys} steps={self.steps} lost={self.lost} duplicated={self.duplicated} "
                f"unexplained={self.unexplained}")

    @property
    def clean(self) -> bool:
        return not (self.lost or self.duplicated or self.resurrected or self.diverged or self.unexplained)


@dataclass
class Journey:
    """One seeded walk for one member and kind."""

    product: ProductStack
    host: HostProcess
    member: MemberIdentity
    kind: SyncKind
    seed: str
    tally: Tally
    rng: random.Random = field(init=False)
    # The model: the records the CRM must hold, name -> (edited field's value, in scope).
    crm: dict[str, tuple[str, bool]] = field(default_factory=dict)
    enabled: bool = False
    steps: list[str] = field(default_factory=list)
    touched: set[str] = field(default_factory=set)  # names changed in this round (no both-side edits)
    deleted_in_outlook: set[str] = field(default_factory=set)  # in this Enable: the ledger must say so
    outlook_only: dict[str, str] = field(default_factory=dict)  # events beyond the calendar's window
    counter: int = 0

    def __post_init__(self) -> None:
        self.rng = random.Random(self.seed)
        self.shape = SHAPES[self.kind]

    # -- reading both sides -----------------------------------------------------------------

    def crm_side(self) -> list[dict[str, Any]]:
        return [r for r in crm_records(self.product, self.member, self.shape.module)
                if (r.get("Owner") or {}).get("id") == self.member.user_id]

    def outlook_side(self) -> list[dict[str, Any]]:
        return outlook_items(self.product, ADELE, self.shape.container)

    def profile(self) -> SyncProfile | None:
        stored = get_services().sync_profiles.get(self.member.partition_key, self.kind)
        return stored.entity if stored else None

    # -- gestures ---------------------------------------------------------------------------

    def _name(self) -> str:
        self.counter += 1
        return f"J{self.counter:03d} {self.seed.replace('-', '')[:6].title()}{self.counter}"

    def _value(self) -> str:
        return f"v{self.rng.randrange(10_000)}"

    def _pick(self, *, in_scope: bool | None = True) -> str | None:
        names = sorted(n for n, (_, scope) in self.crm.items()
                       if n not in self.touched and (in_scope is None or scope is in_scope))
        return self.rng.choice(names) if names else None

    def _crm_id(self, name: str) -> str | None:
        return next((str(r["id"]) for r in self.crm_side() if self.shape.crm_key(r)[0] == name), None)

    def _outlook_id(self, name: str) -> str | None:
        return next((str(i["id"]) for i in self.outlook_side() if self.shape.outlook_key(i)[0] == name), None)

    def crm_create(self) -> str:
        name, value = self._name(), self._value()
        crm_control(self.product, "actions/create", {"actor": ADELE, "module": self.shape.module,
                                                    "record": self.shape.crm_fields(name, value)})
        self.crm[name] = (value, True)
        self.touched.add(name)
        return f"crm create {name!r} = {value}"

    def crm_import(self) -> str:
        name, value = self._name(), self._value()
        crm_control(self.product, "actions/import", {"actor": ADELE, "module": self.shape.module,
                                                    "records": [self.shape.crm_fields(name, value)]})
        self.crm[name] = (value, False)
        self.touched.add(name)
        return f"crm import {name!r} (never synced: imported)"

    def crm_edit(self) -> str | None:
        names = [n for n in (self._pick(in_scope=None), self._pick(in_scope=None)) if n]
        names = sorted(set(names)) if self.rng.random() < 0.3 else names[:1]  # sometimes a mass update of two
        ids = [i for i in (self._crm_id(n) for n in names) if i]
        if not ids:
            return None
        value = self._value()
        crm_control(self.product, "actions/mass-update", {"actor": ADELE, "module": self.shape.module, "ids": ids,
                                                         "values": self.shape.crm_edit(value)})
        for name in names:
            # A person's mass update makes the record's Data_Source "Mass Update" (the CRM
            # emulator's reading of the field, zoho-notes §6): an imported record is no longer
            # "imported" for the sync, and is synced from then on.
            self.crm[name] = (value, True)
            self.touched.add(name)
        return f"crm edit {names} = {value}"

    def crm_delete(self) -> str | None:
        name = self._pick(in_scope=None)
        crm_id = self._crm_id(name) if name else None
        if name is None or crm_id is None:
            return None
        crm_control(self.product, "actions/delete", {"actor": ADELE, "module": self.shape.module, "ids": [crm_id]})
        del self.crm[name]
        self.touched.add(name)
        return f"crm delete {name!r}"

    def outlook_create(self) -> str | None:
        profile = self.profile()
        if not self.enabled or profile is None or not profile.container_id:
            return None
        name, value = self._name(), self._value()
        self.product.m365_control("POST", f"mailbox/{ADELE}/{self.shape.collection}/{profile.container_id}/{self.shape.items}",
                                  json=self.shape.outlook_fields(name, value))
        self.crm[name] = (value, True)
        self.touched.add(name)
        return f"outlook create {name!r} = {value}"

    def outlook_create_far(self) -> str | None:
        """An event made in Outlook five years ahead: beyond the calendar's window, it never
        reaches the CRM, and the ledger must say why."""
        profile = self.profile()
        if self.kind is not SyncKind.CALENDAR or not self.enabled or profile is None or not profile.container_id:
            return None
        name, value = self._name(), self._value()
        start = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) + timedelta(days=5 * 365)
        fields = {**self.shape.outlook_fields(name, value), "start": _graph_time(start.isoformat()),
                  "end": _graph_time((start + timedelta(hours=1)).isoformat())}
        self.product.m365_control("POST", f"mailbox/{ADELE}/calendars/{profile.container_id}/events", json=fields)
        self.outlook_only[name] = value
        return f"outlook create {name!r} five years ahead (never synced: outside the window)"

    def outlook_edit(self) -> str | None:
        name = self._pick() if self.enabled else None
        item_id = self._outlook_id(name) if name else None
        if name is None or item_id is None:
            return None
        value = self._value()
        self.product.m365_control("PATCH", f"mailbox/{ADELE}/{self.shape.items}/{item_id}", json=self.shape.outlook_edit(value))
        self.crm[name] = (value, True)
        self.touched.add(name)
        return f"outlook edit {name!r} = {value}"

    def outlook_delete(self) -> str | None:
        name = self._pick() if self.enabled else None
        item_id = self._outlook_id(name) if name else None
        if name is None or item_id is None:
            return None
        self.product.m365_control("DELETE", f"mailbox/{ADELE}/{self.shape.items}/{item_id}")
        del self.crm[name]  # deleted in Outlook while sync is on: the CRM record goes too (R3.3, R4.4)
        self.deleted_in_outlook.add(name)
        self.touched.add(name)
        return f"outlook delete {name!r}"

    def outlook_move_out(self) -> str | None:
        """The member drags an item out of our calendar or folder into their default one: for
        the sync it left, as a deletion does (the CRM record goes, and the ledger says so)."""
        name = self._pick() if self.enabled else None
        item_id = self._outlook_id(name) if name else None
        if name is None or item_id is None:
            return None
        self.product.m365_control("POST", f"mailbox/{ADELE}/{self.shape.items}/{item_id}/move", json={})
        del self.crm[name]
        self.deleted_in_outlook.add(name)
        self.touched.add(name)
        return f"outlook move {name!r} out of our {self.shape.container!r}"

    def enable(self) -> str | None:
        if self.enabled:
            return None
        get_services().sync.enable(self.member, self.kind)
        self.enabled = True
        self.deleted_in_outlook.clear()
        return "settings: Enable"

    def disable(self) -> str | None:
        if not self.enabled:
            return None
        get_services().sync.disable(self.member, self.kind)
        self.enabled = False
        self.outlook_only.clear()  # they went with our calendar
        return "settings: Disable"

    def delete_container(self) -> str | None:
        profile = self.profile()
        if not self.enabled or profile is None or profile.state is not SyncState.ACTIVE or not profile.container_id:
            return None
        self.product.m365_control("DELETE", f"mailbox/{ADELE}/{self.shape.collection}/{profile.container_id}")
        self.enabled = False  # R3.8, R4.9: sync turns itself off, the CRM keeps everything
        self.outlook_only.clear()
        return "outlook: delete our container"

    def kill_host(self) -> str:
        time.sleep(self.rng.uniform(0.0, 1.5))
        self.host.kill()
        self.host.start()
        return "fault: host killed and started again"

    def storm(self) -> str:
        self.product.m365_control("PUT", "faults", json={"rate_429": 0.25, "retry_after_seconds": 1,
                                                         "seed": self.rng.randrange(1000)})
        requests.put(f"{self.product.crm.base_url}/__emulator/faults", json={"rate_429": 0.2}, timeout=10).raise_for_status()
        return "fault: 429 storm on both sides until the settle"

    def lose_webhooks(self) -> str:
        self.product.m365_control("PUT", "faults", json={"notification_drop_rate": 1.0})
        requests.put(f"{self.product.crm.base_url}/__emulator/faults", json={"callback_drop_rate": 1.0},
                     timeout=10).raise_for_status()
        return "fault: every webhook lost until the settle"

    def calm(self) -> None:
        self.product.m365_control("PUT", "faults", json={})
        requests.put(f"{self.product.crm.base_url}/__emulator/faults",
                     json={"rate_429": 0, "callback_drop_rate": 0}, timeout=10).raise_for_status()

    # -- one round --------------------------------------------------------------------------

    PEOPLE: tuple[tuple[str, float], ...] = (
        ("crm_create", 4), ("crm_edit", 3), ("crm_delete", 1.2), ("crm_import", 0.6),
        ("outlook_create", 3.5), ("outlook_edit", 2.5), ("outlook_delete", 1.2), ("outlook_create_far", 0.4),
        ("outlook_move_out", 0.6),
    )
    CRM_ONLY: tuple[tuple[str, float], ...] = tuple((g, w) for g, w in PEOPLE if g.startswith("crm_"))
    SETTINGS: tuple[tuple[str, float], ...] = (("disable", 4), ("delete_container", 1))
    FAULTS: tuple[tuple[str, float], ...] = (("kill_host", 1), ("storm", 1), ("lose_webhooks", 1))

    def round(self) -> None:
        """A few gestures, then a settle and the check. Settings gestures come alone, after a
        settle, as a person clicks Disable once they have seen their items synced."""
        self.touched.clear()
        if not self.enabled:
            for _ in range(self.rng.choice((0, 0, 1, 2))):  # the CRM changes while sync is off
                self._do(self._weighted(self.CRM_ONLY))
            self._do("enable")
        elif self.rng.random() < 0.2:
            self._do(self._weighted(self.SETTINGS))
        else:
            for _ in range(self.rng.randint(1, 3)):
                self._do(self._weighted(self.PEOPLE))
            if self.rng.random() < 0.2:
                self._do(self._weighted(self.FAULTS))
        self.settle_and_check()

    def _weighted(self, choices: tuple[tuple[str, float], ...]) -> str:
        names, weights = zip(*choices, strict=True)
        return self.rng.choices(names, weights=weights)[0]

    def _do(self, gesture: str) -> None:
        done = getattr(self, gesture)()
        if done:
            self.steps.append(done)
            self.tally.steps += 1

    # -- settle and check -------------------------------------------------------------------

    def expected(self) -> tuple[Counter[tuple[str, str | None]], Counter[tuple[str, str | None]]]:
        crm = Counter((name, value) for name, (value, _) in self.crm.items())
        outlook = Counter((name, value) for name, (value, scope) in self.crm.items() if scope) if self.enabled else Counter()
        outlook.update((name, value) for name, value in self.outlook_only.items())
        return crm, outlook

    def actual(self) -> tuple[Counter[tuple[str, str | None]], Counter[tuple[str, str | None]]]:
        return (Counter(self.shape.crm_key(r) for r in self.crm_side()),
                Counter(self.shape.outlook_key(i) for i in self.outlook_side()))

    def settle_and_check(self) -> None:
        """Wait until both sides hold what the model says (the sweep runs now and then, as its
        timer would), then count what differs."""
        self.calm()
        deadline = time.monotonic() + SETTLE_SECONDS
        next_sweep = time.monotonic() + 8
        while time.monotonic() < deadline:
            if self.actual() == self.expected() and self._quiet():
                time.sleep(1.0)  # and it stays so (a late step must not undo it)
                if self.actual() == self.expected():
                    if self._hidden_unnoted():
                        get_services().sync.sweep()  # what the window hides is noted by the sweep's rounds
                        time.sleep(1.0)
                        continue
                    # Both sides agree, and nothing runs, but work may still be queued (a CRM
                    # callback goes through the org's queue before the member's step is asked
                    # for): the ledger's answers are part of the settle.
                    if not self._unexplained():
                        break
            if time.monotonic() > next_sweep:
                get_services().sync.sweep()
                next_sweep = time.monotonic() + 8
            time.sleep(0.4)
        self.tally.settles += 1
        self._count()

    def _quiet(self) -> bool:
        """No step running."""
        profile = self.profile()
        if not self.enabled:
            return profile is None or profile.state is SyncState.DISABLED
        return profile is not None and profile.state is SyncState.ACTIVE and profile.lease_owner is None

    def _hidden_unnoted(self) -> bool:
        """Events beyond the window the ledger does not yet explain (the sweep's rounds note them)."""
        if not self.outlook_only or not self.enabled:
            return False
        pages = SettingsPages(get_services())
        return any(not any(a.name == name and a.why is Why.OUTSIDE_WINDOW for a in pages.why(self.member, self.kind, name))
                   for name in self.outlook_only)

    def _unexplained(self) -> list[str]:
        """Items the sync ledger cannot say why they are (or are not) on the other side, asked
        as the settings page's "Why isn't it synced?" asks it."""
        if not self.enabled:
            return []
        pages = SettingsPages(get_services())
        wrong = []
        expected = {name: (Why.SYNCED, Why.CONFLICT) if scope else (Why.IMPORTED,) for name, (_, scope) in self.crm.items()}
        expected |= {name: (Why.DELETED_IN_OUTLOOK,) for name in self.deleted_in_outlook}
        expected |= {name: (Why.OUTSIDE_WINDOW,) for name in self.outlook_only}
        for name, allowed in sorted(expected.items()):
            answers = [a for a in pages.why(self.member, self.kind, name) if a.name == name]
            if not answers or answers[0].why not in allowed:
                wrong.append(f"{name}: {[a.why.value for a in answers] or 'no answer'}, expected {[w.value for w in allowed]}")
        return wrong

    def _count(self) -> None:
        crm, outlook = self.actual()
        want_crm, want_outlook = self.expected()
        crm_names = Counter(n for n, _ in crm.elements())
        outlook_names = Counter(n for n, _ in outlook.elements())
        lost = [n for n in self.crm if n not in crm_names]
        lost += [f"{n} (Outlook)" for (n, _) in want_outlook if n not in outlook_names]
        duplicated = [n for n, c in crm_names.items() if c > 1] + [f"{n} (Outlook)" for n, c in outlook_names.items() if c > 1]
        model = {**self.outlook_only, **{n: v for n, (v, _) in self.crm.items()}}
        resurrected = sorted({n for n in crm_names if n not in self.crm} | {n for n in outlook_names if n not in model})
        # In Outlook but out of scope (imported, ...): counted with the duplicates, as an extra copy.
        duplicated += [f"{n} (out of scope, in Outlook)" for n in outlook_names
                       if n in self.crm and not self.crm[n][1] and n not in self.outlook_only]
        diverged = sorted({n for (n, v) in crm if n in self.crm and self.crm[n][0] != v}
                          | {n for (n, v) in outlook if n in model and model[n] != v})
        unexplained = self._unexplained() if not (lost or duplicated or resurrected or diverged) else []
        self.tally.unexplained += len(unexplained)
        self.tally.lost += len(lost)
        self.tally.duplicated += len(duplicated)
        self.tally.resurrected += len(resurrected)
        self.tally.diverged += len(diverged)
        if lost or duplicated or resurrected or diverged or unexplained:
            raise AssertionError(
                f"journey {self.kind.value} seed={self.seed!r} (replay: JOURNEY_SEEDS={self.seed.rsplit('-', 1)[0]} "
                f"pytest tests/journey -k {self.kind.value}) after "
                f"{len(self.steps)} steps:\n  " + "\n  ".join(self.steps)
                + f"\nlost={lost}\nduplicated={duplicated}\nresurrected={resurrected}\ndiverged={diverged}"
                + f"\nunexplained={unexplained}"
                + (f"\nthe ledger: {[(a.name, a.why.value) for a in SettingsPages(get_services()).why(self.member, self.kind, '')]}"
                   if unexplained else "")
                + f"\nexpected CRM={sorted(want_crm.elements())}\nactual CRM={sorted(crm.elements())}"
                + f"\nexpected Outlook={sorted(want_outlook.elements())}\nactual Outlook={sorted(outlook.elements())}"
            )
