"""GET /api/health through the local host running the product's own function_app.py."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from local.host import LocalHost

ROOT = Path(__file__).resolve().parents[2]
UNREACHABLE_STORAGE = (
    "DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;"
    "AccountKey=Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==;"
    "TableEndpoint=http://127.0.0.1:9/devstoreaccount1;QueueEndpoint=http://127.0.0.1:9/devstoreaccount1;"
)


@pytest.fixture
def product_host(monkeypatch: pytest.MonkeyPatch, azurite) -> Iterator[LocalHost]:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("AzureWebJobsStorage", azurite.connection_string)
    for name in ("ENTRA_CLIENT_ID", "CRM_CLIENT_ID", "GRAPH_BASE_URL", "CRM_ACCOUNTS_URL"):
        monkeypatch.delenv(name, raising=False)
    with LocalHost(ROOT / "function_app.py", port=0, read_local_settings=False) as host:
        yield host


def test_healthy_when_storage_is_reachable(product_host: LocalHost) -> None:
    response = requests.get(f"{product_host.url}/api/health")
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "healthy"
    assert body["dependencies"]["tables"]["ok"] and body["dependencies"]["queues"]["ok"]


def test_unreachable_storage_is_named(product_host: LocalHost, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AzureWebJobsStorage", UNREACHABLE_STORAGE)
    response = requests.get(f"{product_host.url}/api/health")
    assert response.status_code == 503
    assert response.json()["failing"] == ["queues", "tables"]


def test_unreachable_graph_is_named(product_host: LocalHost, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ENTRA_CLIENT_ID", "app")
    monkeypatch.setenv("GRAPH_BASE_URL", "http://127.0.0.1:9/v1.0")
    response = requests.get(f"{product_host.url}/api/health")
    assert response.status_code == 503
    body = response.json()
    assert body["failing"] == ["graph"]
    assert "unreachable" in body["dependencies"]["graph"]["detail"]


def test_health_accepts_only_get(product_host: LocalHost) -> None:
    assert requests.post(f"{product_host.url}/api/health").status_code == 405
