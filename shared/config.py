"""All settings, in one place (pydantic-settings).

Field names are the app-setting names, so the same names work in Azure app settings,
in ``local.settings.json`` (Values) and in the environment. ``local.settings.json.example``
explains each one.

Secrets are checked for what they must look like, never shown: an app setting whose value is
still ``@Microsoft.KeyVault(...)`` is a Key Vault reference App Service could not resolve (the
secret is not in the vault yet, or the identity may not read it), and the app refuses to start
on it (``refuse_unresolved_settings``, called by ``function_app.py``) rather than sign cookies
with the reference's text.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from cryptography.fernet import Fernet
from pydantic import AliasChoices, Field, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class SettingsError(RuntimeError):
    """A setting is missing or invalid; the message names it and says what is expected."""


# App Service replaces a resolved reference by the secret; an unresolved one reaches the app as is.
_UNRESOLVED_PREFIXES = ("@microsoft.keyvault(", "@microsoft.appconfiguration(")
UNRESOLVED_REFERENCE = (
    "is an unresolved Key Vault reference (App Service could not read the secret: is it in the vault, "
    "and may the app's identity read it?); set the secret, then restart the app"
)
# Shortest acceptable value of each secret (a real Entra ID client secret has 40 characters, a
# Zoho client secret 42): a placeholder or a truncated paste is refused at start, not at first use.
MIN_SECRET_LENGTH = {"SESSION_SECRET": 32, "ENTRA_CLIENT_SECRET": 16, "CRM_CLIENT_SECRET": 16}
SECRET_SETTINGS = (*MIN_SECRET_LENGTH, "TOKEN_ENCRYPTION_KEY")


def is_unresolved_reference(value: object) -> bool:
    return isinstance(value, str) and value.strip().lower().startswith(_UNRESOLVED_PREFIXES)


def secret_problem(name: str, value: str) -> str | None:
    """What is wrong with a secret's (non-empty) value, in words that never repeat it."""
    if is_unresolved_reference(value):
        return UNRESOLVED_REFERENCE
    if name == "TOKEN_ENCRYPTION_KEY":
        keys = [k.strip() for k in value.split(",")]
        for position, key in enumerate(keys, 1):
            try:
                Fernet(key.encode("ascii"))
            except (ValueError, UnicodeEncodeError):
                return (f"key {position} of {len(keys)} is not a Fernet key (32 url-safe base64-encoded bytes, "
                        "44 characters); comma-separated keys, newest first")
        return None
    minimum = MIN_SECRET_LENGTH.get(name)
    if minimum is not None and len(value) < minimum:
        return f"must be at least {minimum} characters (has {len(value)})"
    return None


def refuse_unresolved_settings(environ: Mapping[str, str] | None = None) -> None:
    """Raise SettingsError naming every app setting that holds an unresolved Key Vault
    reference, and every secret that is set but cannot be right. The app calls this as it
    starts: better not to start than to run with a secret that is the reference's text."""
    environ = os.environ if environ is None else environ
    problems = [f"{name}: {UNRESOLVED_REFERENCE}" for name, value in sorted(environ.items())
                if is_unresolved_reference(value)]
    for name in SECRET_SETTINGS:
        value = environ.get(name)
        if value and not is_unresolved_reference(value):
            problem = secret_problem(name, value)
            if problem:
                problems.append(f"{name}: {problem}")
    if problems:
        raise SettingsError("invalid configuration: " + "; ".join(problems))


class Settings(BaseSettings):
    model_config = SettingsConfigDict(extra="ignore", case_sensitive=True, populate_by_name=True)

    # Storage: a connection string (UseDevelopmentStorage=true locally) or, in Azure, the
    # identity-based form AzureWebJobsStorage__tableServiceUri / __queueServiceUri.
    storage_connection_string: str | None = Field(
        default=None, validation_alias=AliasChoices("AzureWebJobsStorage")
    )
    storage_table_service_uri: str | None = Field(
        default=None, validation_alias=AliasChoices("AzureWebJobsStorage__tableServiceUri")
    )
    storage_queue_service_uri: str | None = Field(
        default=None, validation_alias=AliasChoices("AzureWebJobsStorage__queueServiceUri")
    )
    storage_client_id: str | None = Field(
        default=None, validation_alias=AliasChoices("AzureWebJobsStorage__clientId")
    )
    # Prefix for every table name: lets several deployments (or test runs) share one account.
    table_prefix: str = Field(default="crm365", validation_alias=AliasChoices("TABLE_PREFIX"))

    # Where people reach the app (links in e-mails, OAuth redirect URIs).
    public_base_url: str = Field(
        default="http://127.0.0.1:7071", validation_alias=AliasChoices("PUBLIC_BASE_URL")
    )

    # Microsoft identity platform and Graph.
    entra_authority_host: str = Field(
        default="https://login.microsoftonline.com", validation_alias=AliasChoices("ENTRA_AUTHORITY_HOST")
    )
    entra_client_id: str | None = Field(default=None, validation_alias=AliasChoices("ENTRA_CLIENT_ID"))
    entra_client_secret: str | None = Field(
        default=None, validation_alias=AliasChoices("ENTRA_CLIENT_SECRET")
    )
    graph_base_url: str = Field(
        default="https://graph.microsoft.com/v1.0", validation_alias=AliasChoices("GRAPH_BASE_URL")
    )

    # The CRM (Zoho Accounts + CRM API).
    crm_accounts_url: str = Field(
        default="https://accounts.zoho.com", validation_alias=AliasChoices("CRM_ACCOUNTS_URL")
    )
    # The CRM's first-party provisioning API (find account by e-mail, create org, add user, grant).
    crm_provisioning_url: str = Field(
        default="https://provisioning.zoho.com/v1", validation_alias=AliasChoices("CRM_PROVISIONING_URL")
    )
    # Data-centre hosts we accept in OAuth redirects and token answers (never an arbitrary URL):
    # Zoho's Multi-DC list (US, EU, IN, AU, JP, CA, SA, UK, CN).
    crm_accounts_servers: str = Field(
        default="https://accounts.zoho.com,https://accounts.zoho.eu,https://accounts.zoho.in,"
        "https://accounts.zoho.com.au,https://accounts.zoho.jp,https://accounts.zohocloud.ca,"
        "https://accounts.zoho.sa,https://accounts.zoho.uk,https://accounts.zoho.com.cn",
        validation_alias=AliasChoices("CRM_ACCOUNTS_SERVERS"),
    )
    crm_api_domains: str = Field(
        default="https://www.zohoapis.com,https://www.zohoapis.eu,https://www.zohoapis.in,"
        "https://www.zohoapis.com.au,https://www.zohoapis.jp,https://www.zohoapis.ca,"
        "https://www.zohoapis.sa,https://www.zohoapis.uk,https://www.zohoapis.com.cn",
        validation_alias=AliasChoices("CRM_API_DOMAINS"),
    )
    crm_client_id: str | None = Field(default=None, validation_alias=AliasChoices("CRM_CLIENT_ID"))
    crm_client_secret: str | None = Field(default=None, validation_alias=AliasChoices("CRM_CLIENT_SECRET"))

    # Invitations and join requests (SPEC R2.6).
    link_lifetime_days: int = Field(default=7, ge=1, le=60, validation_alias=AliasChoices("LINK_LIFETIME_DAYS"))
    crm_default_profile: str = Field(default="Standard", validation_alias=AliasChoices("CRM_DEFAULT_PROFILE"))

    # The initial sync (R3.5, R4.6): at most this many items, read from the CRM this many at a time
    # (the CRM reads 100 records by id per call). Smaller values serve tests of the same code path.
    calendar_initial_cap: int = Field(default=5000, ge=1, validation_alias=AliasChoices("CALENDAR_INITIAL_CAP"))
    contacts_initial_cap: int = Field(default=10000, ge=1, validation_alias=AliasChoices("CONTACTS_INITIAL_CAP"))
    initial_page_size: int = Field(default=99, ge=1, le=99, validation_alias=AliasChoices("INITIAL_PAGE_SIZE"))

    # A CA bundle to trust for outbound HTTPS (the local emulators' CA). Empty: system store.
    outbound_ca_bundle: Path | None = Field(default=None, validation_alias=AliasChoices("OUTBOUND_CA_BUNDLE"))
    # How long one outbound HTTP exchange (Graph, CRM) may take before it counts as timed out.
    outbound_timeout_seconds: float = Field(
        default=30.0, gt=0, le=300, validation_alias=AliasChoices("OUTBOUND_TIMEOUT_SECONDS")
    )

    # Secrets at rest and sessions.
    token_encryption_key: str | None = Field(
        default=None, validation_alias=AliasChoices("TOKEN_ENCRYPTION_KEY")
    )
    session_secret: str | None = Field(default=None, validation_alias=AliasChoices("SESSION_SECRET"))

    @property
    def allowed_crm_accounts_servers(self) -> frozenset[str]:
        return frozenset(u.strip().rstrip("/") for u in self.crm_accounts_servers.split(",") if u.strip())

    @property
    def allowed_crm_api_domains(self) -> frozenset[str]:
        return frozenset(u.strip().rstrip("/") for u in self.crm_api_domains.split(",") if u.strip())

    @property
    def secure_cookies(self) -> bool:
        return self.public_base_url.startswith("https://")

    @field_validator("*", mode="before")
    @classmethod
    def _resolved(cls, value: Any) -> Any:
        if is_unresolved_reference(value):
            raise ValueError(UNRESOLVED_REFERENCE)
        return value

    @field_validator("session_secret", "entra_client_secret", "crm_client_secret", "token_encryption_key")
    @classmethod
    def _secret_shape(cls, value: str | None, info: Any) -> str | None:
        if value:
            alias = cls.model_fields[info.field_name].validation_alias
            name = alias.choices[0] if isinstance(alias, AliasChoices) else info.field_name
            problem = secret_problem(str(name), value)
            if problem:
                raise ValueError(problem)
        return value

    @field_validator(
        "public_base_url", "entra_authority_host", "graph_base_url", "crm_accounts_url", "crm_provisioning_url"
    )
    @classmethod
    def _absolute_url(cls, value: str) -> str:
        if not value.startswith(("http://", "https://")):
            raise ValueError("must be an absolute http(s) URL")
        return value.rstrip("/")

    @field_validator("table_prefix")
    @classmethod
    def _table_prefix(cls, value: str) -> str:
        # Table names are alphanumeric and start with a letter; keep room for our suffixes.
        if not (value.isalnum() and value[:1].isalpha() and len(value) <= 30):
            raise ValueError("must be letters and digits, start with a letter, at most 30 characters")
        return value

    @field_validator("outbound_ca_bundle")
    @classmethod
    def _ca_bundle_exists(cls, value: Path | None) -> Path | None:
        if value is not None and not value.is_file():
            raise ValueError(f"no file at {value}")
        return value

    @model_validator(mode="after")
    def _storage_configured(self) -> Settings:
        identity = self.storage_table_service_uri or self.storage_queue_service_uri
        if not self.storage_connection_string and not identity:
            raise ValueError(
                "storage is not configured: set AzureWebJobsStorage to a connection string "
                "(UseDevelopmentStorage=true locally), or AzureWebJobsStorage__tableServiceUri "
                "and AzureWebJobsStorage__queueServiceUri for an identity-based connection"
            )
        if identity and not (self.storage_table_service_uri and self.storage_queue_service_uri):
            raise ValueError(
                "identity-based storage needs both AzureWebJobsStorage__tableServiceUri "
                "and AzureWebJobsStorage__queueServiceUri"
            )
        return self


def _describe(error: ValidationError) -> str:
    """One line per problem, naming the app setting as people type it."""
    aliases = {
        name: (field.validation_alias.choices[0] if isinstance(field.validation_alias, AliasChoices) else name)
        for name, field in Settings.model_fields.items()
    }
    lines = []
    for problem in error.errors():
        where = ".".join(str(part) for part in problem["loc"])
        setting = aliases.get(where, where) if where else "settings"
        message = problem["msg"].removeprefix("Value error, ")
        lines.append(f"{setting}: {message}")
    return "; ".join(lines)


def load_settings() -> Settings:
    """Read settings from the environment, or raise SettingsError naming what is wrong."""
    try:
        return Settings()
    except ValidationError as error:
        raise SettingsError(f"invalid configuration: {_describe(error)}") from None


class _SettingsCache:
    """The process-wide settings, read again only when the environment changed.

    Keyed on the environment itself rather than cleared by hand: with a plain memo, a thread
    that began reading before a change and finished after a clear stored settings of the old
    environment (the local host's workers run beside the tests that change it). In Azure the
    environment does not change, so this is one hash of it per call."""

    def __init__(self) -> None:
        self._cached: tuple[int, Settings] | None = None

    def __call__(self) -> Settings:
        key = hash(frozenset(os.environ.items()))
        cached = self._cached
        if cached is not None and cached[0] == key:
            return cached[1]
        settings = load_settings()
        self._cached = (key, settings)
        return settings

    def cache_clear(self) -> None:
        self._cached = None


get_settings = _SettingsCache()
