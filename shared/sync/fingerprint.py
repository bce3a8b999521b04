"""The mapped-content fingerprint and the normalisers behind it (DESIGN §8; peers d.2).

A change is a moved version **and** a moved fingerprint. The fingerprint is a hash of the
mapped fields after normalisation, so that the same data written by the CRM and read back
from Graph (or the other way round) hashes the same and never ping-pongs (SPEC R3.9,
R4.4; issue 8: "normalisation so equal data never ping-pongs").

What normalisation deliberately ignores, and why:

- **volatile and identity fields** (``IGNORED_FIELDS``): version tokens and timestamps
  move on every write, our own included; ids and markers are identity, held by the link;
- **empty values**: ``None``, ``""``, ``[]`` and ``{}`` are all "no value" (Graph sends
  ``""`` where the CRM sends ``null``), and a field absent from the mapping output is the
  same as an empty one;
- **line-break style and trailing spaces** in text (``\\r\\n`` vs ``\\n``; Outlook pads);
- **runs of whitespace** in single-line fields (``single_line``);
- **e-mail case** (``email``: the domain is case-insensitive and in practice so is the
  local part on both systems);
- **phone punctuation** (``phone``: only ``+`` and digits carry meaning);
- **HTML markup** in bodies (``html_text``: Graph returns bodies as HTML, the CRM stores
  text; only the text is compared);
- **time-zone offsets** of instants (``utc_datetime``: the same instant written with two
  offsets is one value; all-day dates stay dates);
- **float vs integer** of integral numbers (``1.0`` is ``1``).

Normalised values are used for comparison only: writes carry the source's raw values.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from html import unescape
from html.parser import HTMLParser

from pydantic import JsonValue

FINGERPRINT_SCHEME = "fp1"

Normaliser = Callable[[JsonValue], JsonValue]

IGNORED_FIELDS: Mapping[str, str] = {
    "Modified_Time": "the CRM version token; moves on our own writes",
    "Modified_By": "our integration user on every echo",
    "Created_Time": "set once by the CRM, not content",
    "Created_By": "set once by the CRM, not content",
    "changeKey": "the Graph version token; moves on any change, Exchange's own included",
    "@odata.etag": "the changeKey again, as an ETag",
    "lastModifiedDateTime": "moves on every write, ours included",
    "createdDateTime": "set once by Graph, not content",
    "id": "identity, held by the link row",
    "transactionId": "our idempotency key, not content",
    "singleValueExtendedProperties": "our marker, identity not content",
}

_LINE_BREAKS = re.compile(r"\r\n?")
_WHITESPACE_RUN = re.compile(r"\s+")
_PHONE_NOISE = re.compile(r"[^\d+]")
_BLOCK_TAGS = frozenset({"br", "p", "div", "li", "tr", "h1", "h2", "h3", "h4", "h5", "h6"})


def _empty_to_none(value: JsonValue) -> JsonValue:
    return None if value in ("", [], {}) else value


def plain(value: JsonValue) -> JsonValue:
    """The default: text line breaks and trailing spaces, recursively; empties to None."""
    if isinstance(value, str):
        # Each line's trailing blanks (split, not a regex: ``[ \t]+\n`` rescans a long run of
        # blanks once per position, quadratic on hostile text).
        value = "\n".join(line.rstrip(" \t") for line in _LINE_BREAKS.sub("\n", value).split("\n")).strip()
    elif isinstance(value, list):
        value = [plain(element) for element in value]
    elif isinstance(value, dict):
        normalised = {key: plain(element) for key, element in value.items()}
        value = {key: element for key, element in normalised.items() if element is not None}
    elif isinstance(value, float) and value.is_integer():
        value = int(value)
    return _empty_to_none(value)


def _each(text_rule: Callable[[str], str]) -> Normaliser:
    """A normaliser that applies ``text_rule`` to a string or to each string of a list."""

    def normalise(value: JsonValue) -> JsonValue:
        if isinstance(value, str):
            return _empty_to_none(text_rule(value))
        if isinstance(value, list):
            return _empty_to_none([normalise(element) for element in value])
        return plain(value)

    return normalise


single_line = _each(lambda text: _WHITESPACE_RUN.sub(" ", text).strip())
email = _each(lambda text: text.strip().casefold())
phone = _each(lambda text: _PHONE_NOISE.sub("", text))


def _to_utc(text: str) -> str:
    try:
        instant = datetime.fromisoformat(text.strip())
    except ValueError:
        return text.strip()
    if instant.tzinfo is None:  # a date or a floating time: nothing to resolve
        return text.strip()
    return instant.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


utc_datetime = _each(_to_utc)


class _TextOfHtml(HTMLParser):
    """Collects the text of an HTML document; block elements become line breaks."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self._skipping = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in ("style", "script", "head"):
            self._skipping += 1
        elif tag in _BLOCK_TAGS:
            self.parts.append("\n")

    def handle_endtag(self, tag: str) -> None:
        if tag in ("style", "script", "head"):
            self._skipping = max(0, self._skipping - 1)
        elif tag in _BLOCK_TAGS:
            self.parts.append("\n")

    def handle_data(self, data: str) -> None:
        if not self._skipping:
            self.parts.append(data)


def _html_to_text(markup: str) -> str:
    parser = _TextOfHtml()
    parser.feed(markup)
    parser.close()
    lines = (_WHITESPACE_RUN.sub(" ", unescape(line)).strip() for line in "".join(parser.parts).split("\n"))
    return "\n".join(line for line in lines if line)


html_text = _each(_html_to_text)


@dataclass(frozen=True)
class Normalisation:
    """How mapped fields are normalised before comparison: one rule per field name,
    ``plain`` for the rest. The calendar and contacts mappings build their own."""

    by_field: Mapping[str, Normaliser] = field(default_factory=dict)

    def value(self, name: str, value: JsonValue) -> JsonValue:
        return self.by_field.get(name, plain)(value)

    def apply(self, fields: Mapping[str, JsonValue]) -> dict[str, JsonValue]:
        """The normalised fields: ignored names and empty values dropped."""
        normalised = {
            name: self.value(name, value) for name, value in fields.items() if name not in IGNORED_FIELDS
        }
        return {name: value for name, value in normalised.items() if value is not None}

    def fingerprint(self, fields: Mapping[str, JsonValue]) -> str:
        """The content hash: stable across dict order, prefixed with the scheme so a
        change of rules shows as a different scheme, not as a change of content."""
        canonical = json.dumps(self.apply(fields), sort_keys=True, separators=(",", ":"), ensure_ascii=False)
        return f"{FINGERPRINT_SCHEME}:{hashlib.sha256(canonical.encode()).hexdigest()}"


DEFAULT_NORMALISATION = Normalisation()


def fingerprint(fields: Mapping[str, JsonValue], normalisation: Normalisation = DEFAULT_NORMALISATION) -> str:
    """The fingerprint of mapped ``fields`` under ``normalisation`` (DESIGN §8)."""
    return normalisation.fingerprint(fields)
