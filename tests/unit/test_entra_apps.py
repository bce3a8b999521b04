"""One MSAL app per tenant, made once, and one tenant's slow making never holds another's
tokens (found by the propagation-under-load bench: 100 tenants enabling at once held a synced
member's Graph calls for 20 s behind their authorities' OpenID configuration round trips)."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests

from shared.identity.entra import MAX_TENANT_APPS, EntraApp


def entra() -> EntraApp:
    return EntraApp("https://login.example", "client", "client-secret-0123456789", requests.Session())


def test_a_tenant_whose_app_is_being_made_holds_no_other_tenant(monkeypatch: pytest.MonkeyPatch) -> None:
    slow_started, slow_may_end = threading.Event(), threading.Event()
    made: list[str] = []

    def new_app(self: EntraApp, tenant: str) -> object:
        made.append(tenant)
        if tenant == "slow":  # a new tenant's authority answering slowly
            slow_started.set()
            assert slow_may_end.wait(10)
        return object()

    monkeypatch.setattr(EntraApp, "_new_app", new_app)
    app = entra()
    known = app._app("known")
    with ThreadPoolExecutor(max_workers=3) as pool:
        slow = pool.submit(app._app, "slow")
        assert slow_started.wait(5)
        began = time.monotonic()
        assert app._app("known") is known  # made already: no wait at all
        assert app._app("other") is not None  # another new tenant: made beside the slow one
        assert time.monotonic() - began < 1.0
        again = pool.submit(app._app, "slow")  # the same tenant waits for the one being made
        time.sleep(0.1)
        assert not again.done()
        slow_may_end.set()
        assert again.result(5) is slow.result(5)
    assert sorted(made) == ["known", "other", "slow"]


def test_many_threads_asking_for_one_new_tenant_make_one_app(monkeypatch: pytest.MonkeyPatch) -> None:
    made: list[str] = []

    def new_app(self: EntraApp, tenant: str) -> object:
        made.append(tenant)
        time.sleep(0.05)
        return object()

    monkeypatch.setattr(EntraApp, "_new_app", new_app)
    app = entra()
    with ThreadPoolExecutor(max_workers=16) as pool:
        apps = list(pool.map(lambda _: app._app("t1"), range(32)))
    assert made == ["t1"] and len({id(a) for a in apps}) == 1


def test_the_apps_kept_are_those_of_the_tenants_used_lately_not_of_every_tenant_ever(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each tenant's MSAL app (its token cache) was kept for the life of the process: an
    instance serving thousands of tenants kept them all."""
    made: list[str] = []

    def new_app(self: EntraApp, tenant: str) -> object:
        made.append(tenant)
        return object()

    monkeypatch.setattr(EntraApp, "_new_app", new_app)
    app = entra()
    first = app._app("tenant-0")
    for n in range(1, MAX_TENANT_APPS):
        app._app(f"tenant-{n}")
    assert app._app("tenant-0") is first  # used again: now the most recent
    app._app("one-more")  # past the bound: the least recently used goes (tenant-1)
    assert len(app._apps) == MAX_TENANT_APPS and app._app("tenant-0") is first
    made.clear()
    app._app("tenant-1")  # made again on its next use
    assert made == ["tenant-1"] and len(app._apps) == MAX_TENANT_APPS
