"""Fixtures shared by every test suite: a real Chromium driven by Playwright; and
Hypothesis's profiles."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator

import pytest
from hypothesis import settings

# `make test` must be deterministic (a CI run that fails once in fifty is a lost session), so
# its property tests draw the same examples every run; HYPOTHESIS_PROFILE=explore draws new
# ones (a soak, or after changing the engine) and more of them.
settings.register_profile("deterministic", derandomize=True, deadline=None, print_blob=True)
settings.register_profile("explore", max_examples=1000, deadline=None, print_blob=True)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "deterministic"))

# Every Functions host the tests start (in this process or as a child) polls an idle queue at
# least every 250 ms instead of host.json's 2 s: a message sent to an idle queue waited up to
# 2 s, and a test paid that at each queue hop (measured: test_contacts_sync.py 48 -> 35 s,
# browser/test_users.py with test_calendar_sync.py 160 -> 135 s; 100 ms gained nothing more).
# The benchmarks keep host.json's, as Azure does (local/host.py).
os.environ.setdefault("LOCAL_QUEUE_MAX_POLLING_MS", "250")

CHROMIUM = "/usr/bin/chromium"
# Without these flags Chromium keeps trying to reach Google's hosts, which this
# machine's closed network refuses (see shared/research/azure-functions-local.md).
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@pytest.fixture(scope="session")
def playwright_driver() -> Iterator[object]:
    """The one Playwright driver of the session (its sync API allows one at a time)."""
    if not shutil.which(CHROMIUM):
        pytest.fail(f"{CHROMIUM} is missing: run `make test`, which installs Debian's chromium")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as driver:
        yield driver


def launch_chromium(driver: object, *extra_args: str) -> object:
    """Debian's Chromium, headless, with the flags this closed network needs."""
    return driver.chromium.launch(  # type: ignore[attr-defined]
        executable_path=CHROMIUM, headless=True, args=[*CHROMIUM_ARGS, *extra_args]
    )


@pytest.fixture(scope="session")
def browser(playwright_driver: object) -> Iterator[object]:
    """A headless Chromium (Debian's package) for browser tests."""
    instance = launch_chromium(playwright_driver)
    try:
        yield instance
    finally:
        instance.close()  # type: ignore[attr-defined]


@pytest.fixture
def page(browser: object) -> Iterator[object]:
    """A fresh browser context (no cookies) and page per test."""
    context = browser.new_context(ignore_https_errors=False)  # type: ignore[attr-defined]
    try:
        yield context.new_page()
    finally:
        context.close()


# make test runs the suite on two workers (pytest-xdist): each worker has an
# Azurite of its own, on free ports, because the product's queues have fixed names and two Functions
# hosts on one Azurite would take each other's messages. Each test file is one group (its module's
# product stack is started once, on one worker); the files that start the whole local stack on
# Azurite's default ports (``make run``'s) are one group together, so that they run one at a time.
# The files of a few folders are one group: they share session fixtures (an emulator), and the
# Graph contract's coverage check counts what that folder's other files validated.
XDIST_WORKER = os.environ.get("PYTEST_XDIST_WORKER")
DEFAULT_PORT_FILES = frozenset({"tests/integration/test_stack.py"})
FOLDER_GROUPS = ("tests/contract/m365/", "tests/contract/crm/", "tests/integration/graph/", "tests/integration/crm/")
STORAGE_VARIABLE = "TEST_STORAGE_CONNECTION"


def worker_group_of(path: str) -> str:
    """The group of a test file (its path from the repository's root)."""
    if path in DEFAULT_PORT_FILES:
        return "default-ports"
    return next((folder for folder in FOLDER_GROUPS if path.startswith(folder)), path)


def pytest_xdist_make_scheduler(config: pytest.Config, log: object) -> object:
    """``--dist loadfile`` with the groups above. (xdist's own ``loadgroup`` reads a suffix its
    workers add to node ids, which pytest 9's node ids no longer carry: every test went alone.)"""
    from xdist.scheduler import LoadScopeScheduling

    class FileGroups(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            return worker_group_of(nodeid.split("::", 1)[0])

    return FileGroups(config, log)


def storage_connection() -> str:
    """The connection string of this worker's Azurite (once the ``azurite`` fixture started it)."""
    return os.environ.get(STORAGE_VARIABLE, "UseDevelopmentStorage=true")


@pytest.fixture(scope="session")
def azurite() -> Iterator[object]:
    """A running Azurite, stopped at the end of the session if started here. Alone: reused if
    one already listens on the default ports, else started (in memory). Under xdist: one of
    this worker's own, in memory, on free ports."""
    from local.azurite import ROOT, Azurite
    from tests.integration.host_process import free_port

    if XDIST_WORKER is None:
        instance = Azurite().start()
    else:
        ports = {name: free_port() for name in ("blob", "queue", "table")}
        instance = Azurite(ROOT / ".local" / f"azurite-{XDIST_WORKER}.log", ports=ports, die_with_parent=True).start()
    os.environ[STORAGE_VARIABLE] = instance.connection_string
    try:
        yield instance
    finally:
        instance.stop()


@pytest.fixture
def unique_name() -> object:
    """Table and queue names unique to one test (in-memory Azurite lives for the session)."""
    import uuid

    def make(prefix: str) -> str:
        return f"{prefix}{uuid.uuid4().hex[:10]}"

    return make


@pytest.fixture(autouse=True)
def _fresh_settings() -> Iterator[None]:
    """Settings are cached per process; every test reads its own environment."""
    from shared.config import get_settings

    get_settings.cache_clear()
    yield
    get_settings.cache_clear()
