"""The storage account: SDK clients from a connection string or an Azure identity."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from typing import Any

from azure.data.tables import TableServiceClient
from azure.storage.queue import QueueServiceClient

from shared.config import Settings
from shared.storage.metrics import CountingTransport

# Short connection timeouts: a health check or a worker should fail fast, not hang for minutes.
_CLIENT_OPTIONS: dict[str, Any] = {"connection_timeout": 5, "read_timeout": 30}
_TRANSPORT_OPTIONS: dict[str, Any] = {"connection_timeout": 5, "read_timeout": 30}


@dataclass(frozen=True)
class StorageAccount:
    """Where tables and queues live. Build with ``from_settings``."""

    connection_string: str | None = None
    table_service_uri: str | None = None
    queue_service_uri: str | None = None
    managed_identity_client_id: str | None = None
    retry_total: int = 3

    @classmethod
    def from_settings(cls, settings: Settings, *, retry_total: int = 3) -> StorageAccount:
        return cls(
            connection_string=settings.storage_connection_string,
            table_service_uri=settings.storage_table_service_uri,
            queue_service_uri=settings.storage_queue_service_uri,
            managed_identity_client_id=settings.storage_client_id,
            retry_total=retry_total,
        )

    @cached_property
    def _credential(self) -> Any:
        # Imported lazily: only the identity-based form (in Azure) needs azure-identity.
        from azure.identity import DefaultAzureCredential

        return DefaultAzureCredential(managed_identity_client_id=self.managed_identity_client_id)

    def table_service(self) -> TableServiceClient:
        options = {**_CLIENT_OPTIONS, "retry_total": self.retry_total, "transport": CountingTransport(**_TRANSPORT_OPTIONS)}
        if self.table_service_uri:
            return TableServiceClient(endpoint=self.table_service_uri, credential=self._credential, **options)
        assert self.connection_string
        return TableServiceClient.from_connection_string(self.connection_string, **options)

    def queue_service(self) -> QueueServiceClient:
        """A queue client that sends base64 text, as the Functions host expects by default."""
        options = {**_CLIENT_OPTIONS, "retry_total": self.retry_total}
        if self.queue_service_uri:
            return QueueServiceClient(account_url=self.queue_service_uri, credential=self._credential, **options)
        assert self.connection_string
        return QueueServiceClient.from_connection_string(self.connection_string, **options)
