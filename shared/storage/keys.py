"""PartitionKey / RowKey rules of Table Storage, and a reversible escape for key parts.

Keys may not contain ``/ \\ # ?`` or control characters and are at most 1 KiB. Azurite is
looser than the service (it answers 500 for ``/``), so we check here.
"""

from __future__ import annotations

import re

from shared.storage.errors import EntityShapeError

_FORBIDDEN = re.compile(r"[/\\#?\x00-\x1f\x7f-\x9f]")
# Escape the forbidden characters and the escape character itself, percent-style.
_ESCAPED = re.compile(r"[/\\#?%\x00-\x1f\x7f-\x9f]")
MAX_KEY_BYTES = 1024


def validate_key(name: str, value: str) -> str:
    """Return ``value`` if it is a valid PartitionKey/RowKey, else raise EntityShapeError."""
    if not isinstance(value, str):
        raise EntityShapeError(f"{name} must be a string, not {type(value).__name__}")
    if _FORBIDDEN.search(value):
        raise EntityShapeError(f"{name} {value!r} contains a character Table Storage forbids (/ \\ # ? or control)")
    if len(value.encode("utf-16-le")) > MAX_KEY_BYTES:
        raise EntityShapeError(f"{name} is longer than Table Storage's 1 KiB key limit")
    return value


def escape_key_part(part: str) -> str:
    """Make any string safe inside a key (reversible with ``unescape_key_part``)."""
    return _ESCAPED.sub(lambda m: f"%{ord(m.group()):02X}", part)


def unescape_key_part(part: str) -> str:
    return re.sub(r"%([0-9A-F]{2})", lambda m: chr(int(m.group(1), 16)), part)
