"""The journey test (issue 17): seeded random walks of a member's whole life with sync on
the running stack (Azurite, both emulators, the Functions host as its own process with every
queue message delivered twice), checked after each settle against a reference model: no CRM
record gone unless the member deleted it, nothing duplicated, nothing resurrected, our
container holding exactly the in-scope CRM items.

``make test`` runs a short fixed-seed walk per kind; ``make soak`` many seeds and longer
walks (``JOURNEY_SEEDS``, ``JOURNEY_ROUNDS``) and prints
``journeys=N steps=N lost=0 duplicated=0 unexplained=0``. A failure prints its seed and
steps; ``JOURNEY_SEEDS=<seed> make test PYTEST_ARGS=tests/journey`` replays it."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator

import pytest

from shared.sync.profiles import SyncKind
from tests.integration.host_process import HostProcess
from tests.integration.sync_setup import linked_member
from tests.integration.test_sync_reliability import emulators, host_stack
from tests.journey.world import Journey, Tally
from tests.product_stack import ProductStack

__all__ = ["emulators"]

SEEDS = [s for s in os.environ.get("JOURNEY_SEEDS", "walk-1").split(",") if s]
ROUNDS = int(os.environ.get("JOURNEY_ROUNDS", "12"))


@pytest.fixture
def journey_stack(emulators, tmp_path, monkeypatch) -> Iterator[ProductStack]:  # type: ignore[no-untyped-def]
    yield from host_stack(emulators, tmp_path, monkeypatch, LOCAL_QUEUE_DELIVERIES="2")


@pytest.mark.timeout(3600)
@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("kind", [SyncKind.CALENDAR, SyncKind.CONTACTS], ids=lambda k: k.value)
def test_a_members_journey_loses_and_duplicates_nothing(journey_stack: ProductStack, kind: SyncKind, seed: str) -> None:
    product = journey_stack
    host: HostProcess = product.host  # type: ignore[assignment]
    tally = Tally(journeys=1)
    journey = Journey(product, host, linked_member(product), kind, f"{seed}-{kind.value}", tally)
    try:
        for _ in range(ROUNDS):
            journey.round()
    finally:
        _report(tally, kills=host.kills)
        print(f"journey {journey.seed}: {tally.line()}\n  " + "\n  ".join(journey.steps))
    assert tally.clean, tally.line()


def _report(tally: Tally, *, kills: int) -> None:
    """One JSON line per journey into ``$SOAK_REPORT`` (make soak adds them up)."""
    path = os.environ.get("SOAK_REPORT")
    if not path:
        return
    line = {"test": "journey", "journeys": tally.journeys, "steps": tally.steps, "kills": kills,
            "lost": tally.lost, "duplicated": tally.duplicated + tally.resurrected, "unexplained": tally.unexplained,
            "diverged": tally.diverged, "checks": tally.settles}
    with open(path, "a", encoding="utf-8") as out:
        out.write(json.dumps(line) + "\n")
