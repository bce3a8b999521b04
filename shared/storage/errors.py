"""Storage errors the rest of the product may catch (never the SDK's own exceptions)."""


class StorageError(Exception):
    """Base of every storage error."""


class EntityAlreadyExists(StorageError):
    """An insert found an entity with the same PartitionKey and RowKey."""


class ConcurrencyConflict(StorageError):
    """Someone else changed the entity since we read it (ETag mismatch, HTTP 412).

    Retryable: read again, re-apply the change, write with the new ETag.
    """

    retryable = True


class EntityShapeError(StorageError, ValueError):
    """The entity breaks a Table Storage limit that Azurite does not enforce
    (252 custom properties, 64 KiB per property, 1 MiB per entity, key rules)."""


class MessageTooLarge(StorageError, ValueError):
    """A queue message over 48 KiB of JSON (64 KiB once base64-encoded)."""
