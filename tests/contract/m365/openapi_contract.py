"""Validate Graph requests and responses against the OpenAPI extract (shared/contracts/graph-v1.0-subset.yaml).

The YAML here is a verbatim copy of the team's contract file, so the suite runs from the repo alone.
OpenAPI 3.0's ``nullable`` is turned into JSON Schema's ``null`` type before validation, and the
open-type marker ``additionalProperties: {type: object}`` into "extra properties allowed".
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from urllib.parse import urlsplit

import jsonschema
import yaml

SPEC_PATH = Path(__file__).with_name("graph-v1.0-subset.yaml")


def _convert(node):
    if isinstance(node, list):
        return [_convert(n) for n in node]
    if not isinstance(node, dict):
        return node
    converted = {k: _convert(v) for k, v in node.items() if k != "nullable"}
    if node.get("additionalProperties") == {"type": "object"}:
        # Graph's OpenAPI marks open types this way; inside allOf it would reject the parent's own
        # properties, so it is read as "anything more is allowed".
        del converted["additionalProperties"]
    if node.get("nullable"):
        return {"anyOf": [converted, {"type": "null"}]}
    return converted


class Contract:
    def __init__(self, spec_path: Path = SPEC_PATH):
        self.spec = yaml.safe_load(spec_path.read_text())
        self.components = _convert(self.spec["components"])
        self.operations: list[tuple[str, re.Pattern, str, dict]] = []
        for template, item in self.spec["paths"].items():
            pattern = re.escape(template).replace(r"delta\(\)", r"delta(?:\(\))?").replace(r"\$", r"\$")
            pattern = re.sub(r"\\\{[^}]+\\\}", r"[^/]+", pattern)
            for method, op in item.items():
                if method in ("get", "post", "patch", "put", "delete"):
                    self.operations.append((method.upper(), re.compile(f"^{pattern}$"), template, op))
        self.covered: set[tuple[str, str]] = set()

    def find(self, method: str, path: str):
        for op_method, pattern, template, op in self.operations:
            if op_method == method and pattern.match(path):
                return template, op
        return None, None

    def _schema_validator(self, schema: dict):
        root = {"components": self.components, **_convert(schema)}
        return jsonschema.Draft7Validator(root)

    def _resolve(self, node: dict) -> dict:
        while "$ref" in node:
            parts = node["$ref"].lstrip("#/").split("/")
            target = self.spec
            for part in parts:
                target = target[part]
            node = target
        return node

    def check(self, method: str, url: str, request_body: bytes | str | None, status: int, content_type: str, body: bytes) -> None:
        path = urlsplit(url).path
        if not path.startswith("/v1.0/"):
            return
        path = path[len("/v1.0"):]
        path = re.sub(r"^/me(?=/|$)", "/users/me", path)
        template, op = self.find(method, path)
        if op is None:
            return
        self.covered.add((method, template))
        if request_body and "requestBody" in op:
            schema = self._resolve(op["requestBody"])["content"].get("application/json", {}).get("schema")
            if schema is not None:
                payload = json.loads(request_body)
                errors = sorted(self._schema_validator(schema).iter_errors(payload), key=str)
                assert not errors, f"request {method} {template} breaks the contract: {errors[0].message} at {list(errors[0].path)}"
        responses = op.get("responses", {})
        spec = responses.get(str(status)) or responses.get(f"{str(status)[0]}XX") or responses.get("default")
        assert spec is not None, f"{method} {template} answered {status}, which the contract does not list"
        spec = self._resolve(spec)
        media = (spec.get("content") or {}).get("application/json")
        if media is None or "json" not in content_type or not body:
            return
        errors = sorted(self._schema_validator(media["schema"]).iter_errors(json.loads(body)), key=str)
        assert not errors, f"response {status} of {method} {template} breaks the contract: {errors[0].message} at {list(errors[0].path)}"
