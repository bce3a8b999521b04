"""The reliability suite reuses the sync reliability fixtures (emulators in this process, the
Functions host as its own process) and adds a per-test report for `make soak`."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.integration.test_sync_reliability import emulators, stack, twice_stack
from tests.reliability.harness import Report

__all__ = ["emulators", "stack", "twice_stack", "report"]


@pytest.fixture
def report(request: pytest.FixtureRequest) -> Iterator[Report]:
    found = Report(request.node.nodeid)
    try:
        yield found
    finally:
        found.write()
