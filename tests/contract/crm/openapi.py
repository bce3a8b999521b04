"""Validate emulator responses against the v8 OpenAPI extract (contracts/zoho-crm-subset.json).

The extract was mechanically taken from Zoho's OAS 3.0 files, whose schemas were generated from
sample payloads. Four relaxations make it usable as a validator; each is a property of the
extract, not a loosening of the emulator:
- ``pattern`` is dropped: the patterns were derived from sample values (an e-mail must be
  nine characters, a notify_url must contain "zoho.com" ...);
- every property may be null (OAS 3.0 ``nullable`` is missing where samples had values);
- ``{"type": "object"}`` with no properties is a placeholder and accepts anything;
- ``oneOf`` becomes ``anyOf``: the wrappers have no required keys, so success and error
  shapes both match any object and ``oneOf`` could never pass.
"""

from __future__ import annotations

import copy
import json
from functools import cache
from pathlib import Path
from typing import Any

import jsonschema

EXTRACT = Path("/work/shared/contracts/zoho-crm-subset.json")


def _relax(node: Any) -> Any:
    if isinstance(node, list):
        return [_relax(n) for n in node]
    if not isinstance(node, dict):
        return node
    out = {}
    for key, value in node.items():
        if key in ("pattern", "nullable", "format"):
            continue
        out["anyOf" if key == "oneOf" else key] = _relax(value)
    kind = out.get("type")
    if kind == "object" and "properties" not in out and "$ref" not in out:
        out.pop("type")
    elif isinstance(kind, str):
        out["type"] = [kind, "null"]
        if "enum" in out:
            out["enum"] = [*out["enum"], None]
    return out


@cache
def _document() -> dict[str, Any]:
    return _relax(json.loads(EXTRACT.read_text()))


def response_schema(method: str, path: str, status: int) -> dict[str, Any] | None:
    doc = _document()
    responses = doc["paths"][path][method.lower()]["responses"]
    # Record paths document every status under "200" (a oneOf of success and error).
    response = responses.get(str(status)) or responses.get("200")
    if response is None:
        raise AssertionError(f"{method} {path} documents no response for {status}")
    if "$ref" in response:
        response = doc["components"]["responses"][response["$ref"].rsplit("/", 1)[1]]
    content = response.get("content", {}).get("application/json")
    return content["schema"] if content else None


def validate(method: str, path: str, status: int, body: Any) -> None:
    """Raise if ``body`` does not fit the extract's schema for this operation and status."""
    schema = response_schema(method, path, status)
    if schema is None:
        assert body in (None, b"", ""), f"{method} {path} {status} documents no body"
        return
    root = copy.deepcopy(schema)
    root["components"] = _document()["components"]
    jsonschema.Draft7Validator(root).validate(body)
