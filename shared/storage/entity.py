"""Typed table entities: pydantic models to Table Storage entities and back.

Scalars (str, int, float, bool, datetime, bytes) are stored as typed properties so they
can be queried; nested models, lists and dicts are stored as JSON strings. The limits
of the real service are checked here because Azurite accepts entities the service refuses.
"""

from __future__ import annotations

import enum
import json
import types
import typing
from datetime import date, datetime
from typing import Any, ClassVar, Self
from uuid import UUID

from azure.data.tables import EdmType, EntityProperty
from pydantic import BaseModel, ConfigDict, Field, TypeAdapter

from shared.storage.errors import EntityShapeError
from shared.storage.keys import validate_key

MAX_CUSTOM_PROPERTIES = 252  # 255 including PartitionKey, RowKey and Timestamp
MAX_PROPERTY_BYTES = 64 * 1024
MAX_ENTITY_BYTES = 1024 * 1024
_INT32 = range(-(2**31), 2**31)
_SYSTEM = {"PartitionKey", "RowKey", "Timestamp", "etag"}
_ANY: TypeAdapter[Any] = TypeAdapter(Any)


class TableEntity(BaseModel):
    """Base of every stored entity. Subclasses add their fields."""

    # Bytes as base64 in JSON: a transaction's size is estimated from it (``tables._chunks``),
    # and raw bytes are not UTF-8 (a member's CRM-id filter).
    model_config = ConfigDict(populate_by_name=True, extra="ignore", ser_json_bytes="base64")

    partition_key: str = Field(alias="PartitionKey")
    row_key: str = Field(alias="RowKey")

    # Fields stored as JSON text, computed once per class.
    _json_fields: ClassVar[frozenset[str]] = frozenset()

    @classmethod
    def __pydantic_init_subclass__(cls, **kwargs: Any) -> None:
        super().__pydantic_init_subclass__(**kwargs)
        cls._json_fields = frozenset(
            name for name, field in cls.model_fields.items() if _is_structured(field.annotation)
        )

    def to_entity(self) -> dict[str, Any]:
        """The entity dict for azure-data-tables, after checking the service's limits."""
        entity: dict[str, Any] = {
            "PartitionKey": validate_key("PartitionKey", self.partition_key),
            "RowKey": validate_key("RowKey", self.row_key),
        }
        for name in type(self).model_fields:
            if name in ("partition_key", "row_key"):
                continue
            value = getattr(self, name)
            if value is None:
                continue  # Table Storage has no null: an absent property reads back as None
            entity[name] = _to_property(name, value, name in self._json_fields)
        _check_limits(entity)
        return entity

    @classmethod
    def from_entity(cls, entity: typing.Mapping[str, Any]) -> Self:
        data: dict[str, Any] = {}
        for key, value in entity.items():
            if key in ("Timestamp", "etag"):
                continue
            if isinstance(value, EntityProperty):
                value = value.value
            if key in cls._json_fields and isinstance(value, str):
                value = json.loads(value)
            data[key] = value
        return cls.model_validate(data)


def _is_structured(annotation: Any) -> bool:
    """True for models, lists, dicts, tuples and sets (possibly Optional)."""
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        return any(_is_structured(arg) for arg in typing.get_args(annotation) if arg is not type(None))
    if origin is typing.Annotated:
        return _is_structured(typing.get_args(annotation)[0])
    if origin in (list, dict, tuple, set, frozenset):
        return True
    return isinstance(annotation, type) and issubclass(annotation, (BaseModel, list, dict, tuple, set))


def _to_property(name: str, value: Any, structured: bool) -> Any:
    if structured:
        if isinstance(value, BaseModel):
            return value.model_dump_json()
        return json.dumps(_jsonable(value), separators=(",", ":"))
    if isinstance(value, enum.Enum):
        value = value.value
    if isinstance(value, bool | float | str | bytes | datetime):
        return value
    if isinstance(value, int):
        return value if value in _INT32 else EntityProperty(value, EdmType.INT64)
    if isinstance(value, UUID | date):
        return str(value) if isinstance(value, UUID) else value.isoformat()
    raise EntityShapeError(f"property {name!r}: type {type(value).__name__} cannot be stored in a table")


def _jsonable(value: Any) -> Any:
    return _ANY.dump_python(value, mode="json")


def _property_bytes(value: Any) -> int:
    if isinstance(value, EntityProperty):
        value = value.value
    if isinstance(value, str):
        return len(value.encode("utf-16-le"))
    if isinstance(value, bytes):
        return len(value)
    return 8


def _check_limits(entity: dict[str, Any]) -> None:
    custom = [key for key in entity if key not in _SYSTEM]
    if len(custom) > MAX_CUSTOM_PROPERTIES:
        raise EntityShapeError(
            f"entity has {len(custom)} properties; Table Storage allows {MAX_CUSTOM_PROPERTIES}"
        )
    total = 0
    for key, value in entity.items():
        size = _property_bytes(value)
        if size > MAX_PROPERTY_BYTES:
            raise EntityShapeError(f"property {key!r} is {size} bytes; Table Storage allows 64 KiB")
        total += size + len(key) * 2
    if total > MAX_ENTITY_BYTES:
        raise EntityShapeError(f"entity is about {total} bytes; Table Storage allows 1 MiB")
