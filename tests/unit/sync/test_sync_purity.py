"""The sync core is pure: no I/O library, no adapter, no clock (DESIGN §8; aesthetics §8 arrow 2)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import shared.sync

# The pure core. The modules beside it that touch storage or the network (profiles, the steps,
# link_store, conflicts, executor, runner, service, jobs) are its adapters (DESIGN §8).
ADAPTERS = {
    "profiles.py", "ledger_store.py", "authorization.py", "webhooks.py", "sweep.py", "member_mapping.py", "step_failures.py",
    "cycle.py", "initial_sync.py", "delta_round.py", "remap_pages.py", "step_context.py", "link_store.py",
    "conflicts.py", "executor.py", "runner.py", "service.py", "jobs.py", "adapters.py", "outlook_side.py", "dependencies.py",
    "contact_settings.py", "org_activity.py", "org_channels.py", "holder_filters.py", "crm_routing.py", "webhook_routes.py",
    "held_notifications.py",  # a queue message of Graph's notifications (it names their models)
    "ports.py",  # the adapters' protocols: it names their types (WriteResult, ItemDraft, GraphError)
}
_SYNC = Path(shared.sync.__file__).parent
# The core and the calendar and contacts mappings (pure too, SPEC R3.9, R4.2).
CORE = sorted(
    [p for p in _SYNC.glob("*.py") if p.name not in ADAPTERS]
    + list((_SYNC / "calendar").glob("*.py"))
    + list((_SYNC / "contacts").glob("*.py"))
)
FORBIDDEN = (
    "azure",
    "requests",
    "msal",
    "httpx",
    "urllib",
    "socket",
    "shared.storage",
    "shared.transport",
    "shared.graph",
    "shared.crm",
    "os",
    "time",
    "random",
    "uuid",
)


def imported_modules(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
    return names


@pytest.mark.parametrize("path", CORE, ids=lambda path: str(path.relative_to(_SYNC)))
def test_core_module_imports_nothing_with_io(path: Path) -> None:
    bad = {
        name
        for name in imported_modules(path)
        for prefix in FORBIDDEN
        if name == prefix or name.startswith(prefix + ".")
    }
    assert not bad, f"{path.name} imports {bad}"


@pytest.mark.parametrize("path", CORE, ids=lambda path: str(path.relative_to(_SYNC)))
def test_core_module_reads_no_clock(path: Path) -> None:
    source = path.read_text()
    assert ".now(" not in source and ".utcnow(" not in source and ".today(" not in source


def test_public_names_are_exported_once_and_exist() -> None:
    assert len(set(shared.sync.__all__)) == len(shared.sync.__all__)
    assert all(hasattr(shared.sync, name) for name in shared.sync.__all__)
