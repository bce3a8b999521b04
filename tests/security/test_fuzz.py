"""Fuzzing every HTTP endpoint of the running local host with hypothesis (issue 10): no 5xx,
and a refused request (4xx) changes no table and queues no work.

Bodies of the JSON endpoints follow (and stray from) the schemas of docs/openapi.yaml;
the pages get random forms, query strings, route values, content types and Origins, with
and without a signed-in member's session. ``FUZZ_EXAMPLES`` sets the examples per route
(default 6, what ``make test`` runs; ``make soak`` raises it).
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any
from urllib.parse import quote

import requests
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.product_stack import ProductStack
from tests.security.routes import HttpRoute, http_routes
from tests.security.world import StateProbe, adele, tables_state

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "6"))
OPENAPI = yaml.safe_load((ROOT / "docs/openapi.yaml").read_text(encoding="utf-8"))
ROUTES = [(route, method) for route in http_routes() for method in route.methods]
LIVE_QUEUES = re.compile(r"^(mail-outbox|sync-jobs|sync-bulk)(-poison)?$")
FUZZED: list[int] = []  # examples sent, reported at the end (make soak counts them)


def _resolve(schema: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in schema:
        node: Any = OPENAPI
        for part in schema["$ref"].lstrip("#/").split("/"):
            node = node[part]
        schema = node
    return schema


def from_schema(schema: dict[str, Any], depth: int = 0) -> st.SearchStrategy[Any]:
    """Values of the small JSON-schema subset our OpenAPI uses (objects, arrays, enums, scalars)."""
    schema = _resolve(schema)
    kind = schema.get("type", "object")
    if isinstance(kind, list):
        return st.one_of(*(from_schema({**schema, "type": k}, depth) for k in kind))
    if "enum" in schema:
        return st.sampled_from(schema["enum"])
    if kind == "string":
        return st.text(max_size=min(schema.get("maxLength", 60), 60))
    if kind == "integer":
        return st.integers(-(2**63), 2**63)
    if kind == "boolean":
        return st.booleans()
    if kind == "null":
        return st.none()
    if kind == "array":
        return st.lists(from_schema(schema.get("items", {"type": "string"}), depth + 1),
                        min_size=schema.get("minItems", 0), max_size=min(schema.get("maxItems", 3), 3))
    properties = schema.get("properties", {})
    if not properties or depth > 3:
        return st.dictionaries(st.text(max_size=10), st.text(max_size=10), max_size=3)
    required = set(schema.get("required", []))
    return st.fixed_dictionaries(
        {name: from_schema(sub, depth + 1) for name, sub in properties.items() if name in required},
        optional={name: from_schema(sub, depth + 1) for name, sub in properties.items() if name not in required},
    )


def json_body(route: HttpRoute, method: str) -> st.SearchStrategy[bytes] | None:
    operation = OPENAPI["paths"].get(f"/{route.route}", {}).get(method.lower(), {})
    schema = operation.get("requestBody", {}).get("content", {}).get("application/json", {}).get("schema")
    if schema is None:
        return None
    return from_schema(schema).map(lambda value: json.dumps(value).encode())


def route_value(name: str, route: HttpRoute) -> st.SearchStrategy[str]:
    values = st.text(alphabet=st.characters(blacklist_categories=("Cs",)), min_size=1, max_size=80)
    if name == "queue":  # never the live queues: replaying them would move other tests' messages
        values = values.filter(lambda v: not LIVE_QUEUES.match(v))
    return values


@st.composite
def requests_for(draw: st.DrawFn, route: HttpRoute, method: str) -> dict[str, Any]:
    path = route.route
    for name in re.findall(r"\{(\w+)\}", route.route):
        path = path.replace(f"{{{name}}}", quote(draw(route_value(name, route)), safe=""))
    query = draw(st.dictionaries(
        st.sampled_from(["q", "next", "state", "code", "lang", "validationToken", "redirect", "id", "invitation",
                         "admin_consent", "tenant", "error", "accounts-server"]),
        st.text(max_size=40), max_size=3))
    bodies = [st.binary(max_size=300), st.text(max_size=200).map(str.encode),
              st.dictionaries(st.sampled_from(["csrf_token", "email", "user", "accept_terms", "first_name"]),
                              st.text(max_size=40), max_size=4).map(lambda form: "&".join(
                                  f"{quote(k)}={quote(v)}" for k, v in form.items()).encode())]
    shaped = json_body(route, method)
    if shaped is not None:
        bodies += [shaped, shaped]  # mostly well-shaped, so the checks behind the parser are reached
    body = draw(st.one_of(*bodies)) if method in ("POST", "PUT") else b""
    content_type = draw(st.sampled_from(["application/json", "application/x-www-form-urlencoded", "text/plain",
                                         "multipart/form-data; boundary=x", ""]))
    return {
        "path": f"/api/{path}", "query": query, "body": body,
        "headers": {k: v for k, v in {"Content-Type": content_type,
                                      "Origin": draw(st.sampled_from(["", "https://evil.example", "SELF"]))}.items() if v},
        "signed_in": draw(st.booleans()),
    }


def fuzz(product: ProductStack, probe: StateProbe, member: Any, route: HttpRoute, method: str) -> None:
    anonymous = requests.Session()
    anonymous.trust_env = False

    @settings(max_examples=EXAMPLES, deadline=None, derandomize=EXAMPLES <= 6, database=None,
              suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
    @given(requests_for(route, method))
    def one(request: dict[str, Any]) -> None:
        headers = dict(request["headers"])
        if headers.get("Origin") == "SELF":
            headers["Origin"] = product.url
        client = member.http if request["signed_in"] else anonymous
        before_tables, sent_before = tables_state(probe.prefix), len(probe.sent)
        answer = client.request(method, f"{product.url}{request['path']}", params=request["query"],
                                data=request["body"], headers=headers, allow_redirects=False, timeout=30)
        FUZZED.append(1)
        assert answer.status_code < 500, (method, request, answer.status_code, answer.text[:300])
        if 400 <= answer.status_code < 500:
            assert probe.sent[sent_before:] == [], ("a refused request queued work", request)
            assert tables_state(probe.prefix) == before_tables, ("a refused request changed a table", request)

    one()


def test_fuzz_every_endpoint(product: ProductStack, probe: StateProbe) -> None:
    """One installed tenant, then every route and method in turn (one setup keeps make test short)."""
    member = adele(product)
    probe.settle()
    failures = []
    for route, method in ROUTES:
        try:
            fuzz(product, probe, member, route, method)
        except Exception as error:  # go on: one run names every endpoint that fails
            failures.append(f"{method} /api/{route.route}: {str(error)[:800]}")
    print(f"fuzzed={len(FUZZED)}")
    assert not failures, "\n".join(failures)


def test_the_openapi_document_names_only_real_routes() -> None:
    real = {f"/{r.route}" for r in http_routes()}
    assert set(OPENAPI["paths"]) <= real
    for path, operations in OPENAPI["paths"].items():
        methods = {m for r in http_routes() if f"/{r.route}" == path for m in r.methods}
        assert {m.upper() for m in operations} <= methods, path
