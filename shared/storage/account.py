"""The storage account: SDK clients from a connection string or an Azure identity."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from typing import Any

import requests
import requests.adapters
from azure.data.tables import TableServiceClient
from azure.storage.queue import QueueServiceClient
from urllib3.util.retry import Retry

from shared.config import Settings
from shared.storage.metrics import CountingTransport

# Short connection timeouts: a worker should fail fast, not hang for minutes (a health check
# shorter still: ``read_timeout``).
CONNECTION_TIMEOUT = 5
READ_TIMEOUT = 30
# Table connections kept open per process. The SDK's own session keeps 10: with 100 sync steps
# at once, every other request opened a new connection (a TLS handshake in Azure) and dropped
# it after ("Connection pool is full, discarding connection", bench propagation-under-load).
TABLE_CONNECTIONS = 64


def _table_session() -> requests.Session:
    """The Table transport's session: given to the SDK (which then mounts no adapter of its
    own), with a pool for the process's threads and no retries of its own (the SDK retries).
    Nothing from the environment, as the outbound session (``shared.transport.session``): with
    it, every Table request looked for a ``~/.netrc`` and the proxy variables (profiled in
    bench many-members: 4 % of the host's time)."""
    session = requests.Session()
    session.trust_env = False
    adapter = requests.adapters.HTTPAdapter(pool_connections=4, pool_maxsize=TABLE_CONNECTIONS,
                                            max_retries=Retry(total=False, redirect=False, raise_on_status=False))
    session.mount("https://", adapter)
    session.mount("http://", adapter)
    return session


@dataclass(frozen=True)
class StorageAccount:
    """Where tables and queues live. Build with ``from_settings``."""

    connection_string: str | None = None
    table_service_uri: str | None = None
    queue_service_uri: str | None = None
    managed_identity_client_id: str | None = None
    retry_total: int = 3
    read_timeout: float = READ_TIMEOUT  # seconds an answer may take

    @classmethod
    def from_settings(cls, settings: Settings, *, retry_total: int = 3, read_timeout: float = READ_TIMEOUT) -> StorageAccount:
        return cls(
            connection_string=settings.storage_connection_string,
            table_service_uri=settings.storage_table_service_uri,
            queue_service_uri=settings.storage_queue_service_uri,
            managed_identity_client_id=settings.storage_client_id,
            retry_total=retry_total,
            read_timeout=read_timeout,
        )

    @property
    def _timeouts(self) -> dict[str, Any]:
        return {"connection_timeout": min(CONNECTION_TIMEOUT, self.read_timeout), "read_timeout": self.read_timeout}

    @cached_property
    def _credential(self) -> Any:
        # Imported lazily: only the identity-based form (in Azure) needs azure-identity.
        from azure.identity import DefaultAzureCredential

        return DefaultAzureCredential(managed_identity_client_id=self.managed_identity_client_id)

    def table_service(self) -> TableServiceClient:
        transport = CountingTransport(session=_table_session(), session_owner=False, **self._timeouts)
        options = {**self._timeouts, "retry_total": self.retry_total, "transport": transport}
        if self.table_service_uri:
            return TableServiceClient(endpoint=self.table_service_uri, credential=self._credential, **options)
        assert self.connection_string
        return TableServiceClient.from_connection_string(self.connection_string, **options)

    def queue_service(self) -> QueueServiceClient:
        """A queue client that sends base64 text, as the Functions host expects by default."""
        options = {**self._timeouts, "retry_total": self.retry_total}
        if self.queue_service_uri:
            return QueueServiceClient(account_url=self.queue_service_uri, credential=self._credential, **options)
        assert self.connection_string
        return QueueServiceClient.from_connection_string(self.connection_string, **options)
