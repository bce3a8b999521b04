"""Settings: read from the environment, with errors that name the setting."""

from __future__ import annotations

import pytest

from shared.config import SettingsError, load_settings

NAMES = [
    "AzureWebJobsStorage",
    "AzureWebJobsStorage__tableServiceUri",
    "AzureWebJobsStorage__queueServiceUri",
    "PUBLIC_BASE_URL",
    "TABLE_PREFIX",
    "OUTBOUND_CA_BUNDLE",
    "GRAPH_BASE_URL",
]


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in NAMES:
        monkeypatch.delenv(name, raising=False)


def test_connection_string_is_enough(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AzureWebJobsStorage", "UseDevelopmentStorage=true")
    settings = load_settings()
    assert settings.storage_connection_string == "UseDevelopmentStorage=true"
    assert settings.public_base_url == "http://127.0.0.1:7071"


def test_identity_based_storage(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AzureWebJobsStorage__tableServiceUri", "https://acct.table.core.windows.net")
    monkeypatch.setenv("AzureWebJobsStorage__queueServiceUri", "https://acct.queue.core.windows.net")
    settings = load_settings()
    assert settings.storage_connection_string is None
    assert settings.storage_table_service_uri == "https://acct.table.core.windows.net"


def test_missing_storage_names_the_setting() -> None:
    with pytest.raises(SettingsError, match="AzureWebJobsStorage"):
        load_settings()


def test_half_identity_configuration_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AzureWebJobsStorage__tableServiceUri", "https://acct.table.core.windows.net")
    with pytest.raises(SettingsError, match="__queueServiceUri"):
        load_settings()


@pytest.mark.parametrize(
    ("name", "value", "expected"),
    [
        ("PUBLIC_BASE_URL", "127.0.0.1:7071", "PUBLIC_BASE_URL: must be an absolute http"),
        ("GRAPH_BASE_URL", "graph", "GRAPH_BASE_URL: must be an absolute http"),
        ("TABLE_PREFIX", "bad-prefix", "TABLE_PREFIX: must be letters and digits"),
        ("OUTBOUND_CA_BUNDLE", "/nonexistent/ca.pem", "OUTBOUND_CA_BUNDLE: no file at /nonexistent/ca.pem"),
    ],
)
def test_invalid_values_name_the_setting(
    monkeypatch: pytest.MonkeyPatch, name: str, value: str, expected: str
) -> None:
    monkeypatch.setenv("AzureWebJobsStorage", "UseDevelopmentStorage=true")
    monkeypatch.setenv(name, value)
    with pytest.raises(SettingsError) as caught:
        load_settings()
    assert expected in str(caught.value)
