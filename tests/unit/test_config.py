"""Settings: read from the environment, with errors that name the setting."""

from __future__ import annotations

import pytest
from cryptography.fernet import Fernet

from shared.config import SettingsError, load_settings, refuse_unresolved_settings

NAMES = [
    "AzureWebJobsStorage",
    "AzureWebJobsStorage__tableServiceUri",
    "AzureWebJobsStorage__queueServiceUri",
    "PUBLIC_BASE_URL",
    "TABLE_PREFIX",
    "OUTBOUND_CA_BUNDLE",
    "GRAPH_BASE_URL",
    "SESSION_SECRET",
    "TOKEN_ENCRYPTION_KEY",
    "ENTRA_CLIENT_SECRET",
    "CRM_CLIENT_SECRET",
    "CRM_ACCOUNTS_SERVERS",
    "CRM_API_DOMAINS",
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


# --- issue 22: secrets that cannot be right are refused, naming the setting ----------------

REFERENCE = "@Microsoft.KeyVault(SecretUri=https://kv-abc123.vault.azure.net/secrets/session-secret)"
GOOD_SECRETS = {
    "SESSION_SECRET": "0123456789abcdef" * 4,  # tests/product_stack.py's shape: 64 hex characters
    "TOKEN_ENCRYPTION_KEY": f"{Fernet.generate_key().decode()},{Fernet.generate_key().decode()}",
    "ENTRA_CLIENT_SECRET": "demo-app-secret-change-me",  # local/demo_world.py's
    "CRM_CLIENT_SECRET": "demo-crm-client-secret",
}


@pytest.mark.parametrize("name", ["SESSION_SECRET", "TOKEN_ENCRYPTION_KEY", "ENTRA_CLIENT_SECRET", "CRM_CLIENT_SECRET",
                                  "PUBLIC_BASE_URL"])
def test_an_unresolved_key_vault_reference_is_refused_naming_the_setting(monkeypatch: pytest.MonkeyPatch, name: str) -> None:
    monkeypatch.setenv("AzureWebJobsStorage", "UseDevelopmentStorage=true")
    monkeypatch.setenv(name, REFERENCE)
    with pytest.raises(SettingsError) as caught:
        load_settings()
    assert f"{name}: is an unresolved Key Vault reference" in str(caught.value)
    assert "vault.azure.net" not in str(caught.value)  # the message names the setting, not the reference
    with pytest.raises(SettingsError) as at_start:
        refuse_unresolved_settings()
    assert f"{name}: is an unresolved Key Vault reference" in str(at_start.value)


def test_any_app_setting_left_as_a_reference_stops_the_start() -> None:
    with pytest.raises(SettingsError, match="APPLICATIONINSIGHTS_CONNECTION_STRING: is an unresolved"):
        refuse_unresolved_settings({"APPLICATIONINSIGHTS_CONNECTION_STRING": "@microsoft.keyvault(VaultName=kv;SecretName=ai)"})
    refuse_unresolved_settings({"AzureWebJobsStorage": "UseDevelopmentStorage=true", **GOOD_SECRETS})
    refuse_unresolved_settings({})  # nothing set is not this check's business (health says what is missing)

# A valid key written out: a key made at collection would name the test differently on each
# make test worker (xdist refuses workers that collected different tests).
FIXED_KEY = "a2tra2tra2tra2tra2tra2tra2tra2tra2tra2tra2s="


@pytest.mark.parametrize(
    ("name", "value", "expected"),
    [
        ("SESSION_SECRET", "x" * 31, "SESSION_SECRET: must be at least 32 characters (has 31)"),
        ("ENTRA_CLIENT_SECRET", "s", "ENTRA_CLIENT_SECRET: must be at least 16 characters (has 1)"),
        ("CRM_CLIENT_SECRET", "short", "CRM_CLIENT_SECRET: must be at least 16 characters (has 5)"),
        ("TOKEN_ENCRYPTION_KEY", "not-a-fernet-key", "TOKEN_ENCRYPTION_KEY: key 1 of 1 is not a Fernet key"),
        ("TOKEN_ENCRYPTION_KEY", f"{FIXED_KEY},oops", "TOKEN_ENCRYPTION_KEY: key 2 of 2 is not"),
    ],
)
def test_a_secret_that_cannot_be_right_is_refused_without_showing_it(
    monkeypatch: pytest.MonkeyPatch, name: str, value: str, expected: str
) -> None:
    monkeypatch.setenv("AzureWebJobsStorage", "UseDevelopmentStorage=true")
    monkeypatch.setenv(name, value)
    with pytest.raises(SettingsError) as caught:
        load_settings()
    assert expected in str(caught.value) and (len(value) < 6 or value not in str(caught.value))
    with pytest.raises(SettingsError, match=name):
        refuse_unresolved_settings()


def test_the_secrets_the_tests_and_make_run_use_still_validate(monkeypatch: pytest.MonkeyPatch) -> None:
    import secrets

    from local.demo_world import APP_REGISTRATION, CRM_CLIENT

    monkeypatch.setenv("AzureWebJobsStorage", "UseDevelopmentStorage=true")
    for name, value in GOOD_SECRETS.items():
        monkeypatch.setenv(name, value)
    settings = load_settings()
    assert settings.session_secret == GOOD_SECRETS["SESSION_SECRET"]
    refuse_unresolved_settings()
    # local/stack.py's generated SESSION_SECRET, and the emulators' demo clients
    monkeypatch.setenv("SESSION_SECRET", secrets.token_urlsafe(32))
    monkeypatch.setenv("ENTRA_CLIENT_SECRET", APP_REGISTRATION["client_secret"])
    monkeypatch.setenv("CRM_CLIENT_SECRET", CRM_CLIENT["client_secret"])
    load_settings()
    refuse_unresolved_settings()


def test_an_empty_secret_is_not_configured_rather_than_invalid(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AzureWebJobsStorage", "UseDevelopmentStorage=true")
    monkeypatch.setenv("SESSION_SECRET", "")
    assert not load_settings().session_secret


def test_every_zoho_data_centre_is_allowed_by_default(monkeypatch: pytest.MonkeyPatch) -> None:
    """Zoho's Multi-DC list: Saudi Arabia, the UK and China too (tests/unit/test_infra.py holds
    the table with its sources, and checks Bicep's defaults are the same)."""
    from tests.unit.test_infra import ZOHO_DATA_CENTRES

    monkeypatch.setenv("AzureWebJobsStorage", "UseDevelopmentStorage=true")
    settings = load_settings()
    assert settings.allowed_crm_accounts_servers == {a for a, _ in ZOHO_DATA_CENTRES.values()}
    assert settings.allowed_crm_api_domains == {d for _, d in ZOHO_DATA_CENTRES.values()}
    for dc in ("sa", "uk", "cn"):
        accounts, api = ZOHO_DATA_CENTRES[dc]
        assert accounts in settings.allowed_crm_accounts_servers and api in settings.allowed_crm_api_domains


def test_the_crm_oauth_client_trusts_the_new_data_centres_and_nothing_like_them(monkeypatch: pytest.MonkeyPatch) -> None:
    import requests

    from shared.crm.errors import UntrustedCrmHost
    from shared.crm.oauth import ZohoOAuth

    monkeypatch.setenv("AzureWebJobsStorage", "UseDevelopmentStorage=true")
    settings = load_settings()
    oauth = ZohoOAuth(settings.crm_accounts_url, "1000.x", "client-secret-0123456789", requests.Session(),
                      allowed_accounts_servers=settings.allowed_crm_accounts_servers,
                      allowed_api_domains=settings.allowed_crm_api_domains)
    for accounts, api in (("https://accounts.zoho.sa", "https://www.zohoapis.sa"),
                          ("https://accounts.zoho.uk", "https://www.zohoapis.uk"),
                          ("https://accounts.zoho.com.cn", "https://www.zohoapis.com.cn")):
        assert oauth.trusted_accounts_server(accounts) == accounts
        assert oauth.trusted_api_domain(api + "/") == api
    for lookalike in ("https://accounts.zoho.uk.example", "https://accounts.zoho.co.uk", "http://accounts.zoho.sa"):
        with pytest.raises(UntrustedCrmHost):
            oauth.trusted_accounts_server(lookalike)
