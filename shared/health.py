"""The state of each dependency, for ``GET /api/health``."""

from __future__ import annotations

import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import requests
from azure.core.exceptions import AzureError
from pydantic import BaseModel

from shared.config import Settings
from shared.storage import StorageAccount
from shared.transport.session import outbound_session

CHECK_TIMEOUT_SECONDS = 3


class DependencyState(BaseModel):
    ok: bool
    detail: str
    latency_ms: int | None = None


class HealthReport(BaseModel):
    status: str  # "healthy", "unhealthy" (something unreachable) or "not_configured"
    failing: list[str]
    dependencies: dict[str, DependencyState]
    not_configured: list[str] = []  # registered with no client id or secret: the product cannot work

    @property
    def healthy(self) -> bool:
        return not self.failing and not self.not_configured


def _timed(check: Callable[[], str]) -> DependencyState:
    started = time.monotonic()
    try:
        detail = check()
    except (AzureError, requests.RequestException, OSError) as error:
        return DependencyState(ok=False, detail=f"unreachable: {type(error).__name__}: {error}"[:300])
    return DependencyState(ok=True, detail=detail, latency_ms=round((time.monotonic() - started) * 1000))


def _http_reachable(session: requests.Session, url: str) -> Callable[[], str]:
    def check() -> str:
        # Any HTTP answer (even 401/404) proves the service is reachable; only 5xx or no answer fail.
        response = session.get(url, timeout=CHECK_TIMEOUT_SECONDS, allow_redirects=False)
        if response.status_code >= 500:
            raise requests.HTTPError(f"{url} answered {response.status_code}")
        return f"reachable ({url} answered {response.status_code})"

    return check


def _storage_reachable(list_first: Callable[[], object]) -> Callable[[], str]:
    def check() -> str:
        next(iter(list_first()), None)  # type: ignore[call-overload]
        return "reachable"

    return check


def check_health(settings: Settings) -> HealthReport:
    """Check every dependency in parallel, each with a short timeout."""
    # The storage's answer waits as long as the other checks': a host at work answers its probes
    # (the test harness's, Azure's) in seconds, never after the client's 30-s read timeout.
    account = StorageAccount.from_settings(settings, retry_total=0, read_timeout=CHECK_TIMEOUT_SECONDS)
    checks: dict[str, Callable[[], str] | None] = {
        "tables": _storage_reachable(lambda: account.table_service().list_tables(results_per_page=1)),
        "queues": _storage_reachable(lambda: account.queue_service().list_queues(results_per_page=1)),
    }
    session = outbound_session(settings)
    # Graph and the CRM are checked once the app is registered with them (client id and secret set).
    graph_ready = bool(settings.entra_client_id and settings.entra_client_secret)
    crm_ready = bool(settings.crm_client_id and settings.crm_client_secret)
    checks["graph"] = _http_reachable(session, f"{settings.graph_base_url}/") if graph_ready else None
    checks["crm"] = _http_reachable(session, settings.crm_accounts_url) if crm_ready else None
    with ThreadPoolExecutor(max_workers=len(checks)) as pool:
        futures = {name: pool.submit(_timed, check) for name, check in checks.items() if check is not None}
        states = {name: future.result() for name, future in futures.items()}
    missing = {"graph": "ENTRA_CLIENT_ID and ENTRA_CLIENT_SECRET", "crm": "CRM_CLIENT_ID and CRM_CLIENT_SECRET"}
    for name, check in checks.items():
        if check is None:
            states[name] = DependencyState(ok=False, detail=f"not configured: set {missing[name]}")
    unconfigured = sorted(name for name, check in checks.items() if check is None)
    failing = sorted(name for name, state in states.items() if not state.ok and name not in unconfigured)
    status = "unhealthy" if failing else "not_configured" if unconfigured else "healthy"
    return HealthReport(status=status, failing=failing, dependencies=states, not_configured=unconfigured)
