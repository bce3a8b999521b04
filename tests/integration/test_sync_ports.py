"""The storage ports of the sync (link rows, conflict log): the Table Storage adapters on
Azurite and the in-memory ones of the fast tests pass the same contract (issue 17 §2)."""

from __future__ import annotations

from typing import Any

import pytest
from azure.data.tables import TableServiceClient

from shared.storage import TableRepository
from shared.sync.conflicts import ConflictEntity, ConflictStore
from shared.sync.link_store import LinkEntity, LinkStore
from tests.integration.sync_port_contracts import conflict_log, link_rows
from tests.sync_world import Budget, ConflictLogInMemory, LinkRowsInMemory


def _table(azurite: Any, unique_name: Any, model: type) -> TableRepository:  # type: ignore[type-arg]
    repository = TableRepository(TableServiceClient.from_connection_string(azurite.connection_string), unique_name("t"), model)
    repository.ensure_table()
    return repository


@pytest.mark.parametrize("side", ["table storage", "in memory"])
def test_link_rows(azurite, unique_name, side: str) -> None:  # type: ignore[no-untyped-def]
    port = LinkStore(_table(azurite, unique_name, LinkEntity)) if side == "table storage" else LinkRowsInMemory(Budget())
    link_rows(port, "member|contacts|g1")


@pytest.mark.parametrize("side", ["table storage", "in memory"])
def test_conflict_log(azurite, unique_name, side: str) -> None:  # type: ignore[no-untyped-def]
    port = ConflictStore(_table(azurite, unique_name, ConflictEntity)) if side == "table storage" else ConflictLogInMemory(Budget())
    conflict_log(port, "member|contacts")
