"""Azure Table Storage and Queue Storage mechanics: typed entities, repositories with ETag
concurrency and 100-entity transactions, base64 JSON queue messages. No domain knowledge."""

from shared.storage.account import StorageAccount
from shared.storage.entity import TableEntity
from shared.storage.errors import (
    ConcurrencyConflict,
    EntityAlreadyExists,
    EntityShapeError,
    MessageTooLarge,
    StorageError,
)
from shared.storage.queues import JobQueue, decode_message, encode_message
from shared.storage.tables import Stored, TableOperation, TableRepository, partitions_starting

__all__ = [
    "partitions_starting",
    "ConcurrencyConflict",
    "EntityAlreadyExists",
    "EntityShapeError",
    "JobQueue",
    "MessageTooLarge",
    "StorageAccount",
    "StorageError",
    "Stored",
    "TableEntity",
    "TableOperation",
    "TableRepository",
    "decode_message",
    "encode_message",
]
