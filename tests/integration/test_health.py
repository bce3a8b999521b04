"""GET /api/health through the local host running the product's own function_app.py."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from local.host import LocalHost
from shared.config import get_settings

ROOT = Path(__file__).resolve().parents[2]
UNREACHABLE_STORAGE = (
    "DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;"
    "AccountKey=Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==;"
    "TableEndpoint=http://127.0.0.1:9/devstoreaccount1;QueueEndpoint=http://127.0.0.1:9/devstoreaccount1;"
)


@pytest.fixture
def product_host(monkeypatch: pytest.MonkeyPatch, azurite) -> Iterator[LocalHost]:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("AzureWebJobsStorage", azurite.connection_string)
    for name in ("ENTRA_CLIENT_ID", "ENTRA_CLIENT_SECRET", "CRM_CLIENT_ID", "CRM_CLIENT_SECRET", "GRAPH_BASE_URL",
                 "CRM_ACCOUNTS_URL"):
        monkeypatch.delenv(name, raising=False)
    with LocalHost(ROOT / "function_app.py", port=0, read_local_settings=False) as host:
        yield host


def configure(monkeypatch: pytest.MonkeyPatch, reachable: str) -> None:
    """Registered with Entra and the CRM, both "reachable" at ``reachable`` (any HTTP answer
    under 500 proves it)."""
    # Secrets as long as shared/config.py asks (MIN_SECRET_LENGTH); their values do not matter here.
    for name, value in {"ENTRA_CLIENT_ID": "app", "ENTRA_CLIENT_SECRET": "health-check-app-secret", "CRM_CLIENT_ID": "1000.x",
                        "CRM_CLIENT_SECRET": "health-check-crm-secret", "GRAPH_BASE_URL": f"{reachable}/v1.0",
                        "CRM_ACCOUNTS_URL": f"{reachable}/accounts"}.items():
        monkeypatch.setenv(name, value)


def test_healthy_when_everything_is_configured_and_reachable(product_host: LocalHost, monkeypatch: pytest.MonkeyPatch) -> None:
    configure(monkeypatch, product_host.url)
    response = requests.get(f"{product_host.url}/api/health")
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["status"] == "healthy" and body["failing"] == [] and body["not_configured"] == []
    assert body["dependencies"]["tables"]["ok"] and body["dependencies"]["queues"]["ok"]


def test_missing_credentials_answer_not_configured_not_ok(product_host: LocalHost, monkeypatch: pytest.MonkeyPatch) -> None:
    """Issue 23: a product that cannot reach Graph or the CRM is not healthy, and says what to set."""
    response = requests.get(f"{product_host.url}/api/health")
    assert response.status_code == 503
    body = response.json()
    assert body["status"] == "not_configured" and body["not_configured"] == ["crm", "graph"]
    assert "ENTRA_CLIENT_SECRET" in body["dependencies"]["graph"]["detail"] and not body["dependencies"]["graph"]["ok"]
    configure(monkeypatch, product_host.url)
    monkeypatch.delenv("CRM_CLIENT_SECRET")  # a client id alone is not a configuration
    get_settings.cache_clear()  # the host reads its settings once per process
    assert requests.get(f"{product_host.url}/api/health").json()["not_configured"] == ["crm"]


def test_unreachable_storage_is_named(product_host: LocalHost, monkeypatch: pytest.MonkeyPatch) -> None:
    configure(monkeypatch, product_host.url)
    monkeypatch.setenv("AzureWebJobsStorage", UNREACHABLE_STORAGE)
    response = requests.get(f"{product_host.url}/api/health")
    assert response.status_code == 503
    assert response.json()["failing"] == ["queues", "tables"]


def test_unreachable_graph_is_named(product_host: LocalHost, monkeypatch: pytest.MonkeyPatch) -> None:
    configure(monkeypatch, product_host.url)
    monkeypatch.setenv("GRAPH_BASE_URL", "http://127.0.0.1:9/v1.0")
    response = requests.get(f"{product_host.url}/api/health")
    assert response.status_code == 503
    body = response.json()
    assert body["failing"] == ["graph"]
    assert "unreachable" in body["dependencies"]["graph"]["detail"]


def test_health_accepts_only_get(product_host: LocalHost) -> None:
    assert requests.post(f"{product_host.url}/api/health").status_code == 405
