"""Webhooks that amplified and crashed (issue 18 §4), attacked over HTTP as anyone can:
one anonymous 1 MB POST of thousands of notifications must cost a bounded number of Table
reads and answer fast; ids with characters Table keys forbid must be refused before storage
(202 for Graph, as Graph expects; 400 for the CRM), never a 500; every route, the webhooks,
static files and health included, answers through the one edge (a correlation id)."""

from __future__ import annotations

import json
import logging
import time
import uuid
from typing import Any

import pytest
import requests

from shared.storage.metrics import TABLE_REQUESTS
from shared.sync.held_notifications import LOOKED_UP_WHILE_GRAPH_WAITS
from tests.product_stack import ProductStack
from tests.security.routes import concrete, http_routes
from tests.security.test_abuse import syncing_adele  # noqa: F401 (a fixture: Adele with calendar sync on)
from tests.security.world import StateProbe, refused

MAX_BODY = 1_000_000
HOSTILE_IDS = ["a/b", "a\\b", "a#b", "a?b", "../../webhooks", "%2F", "\x00", "\u2028", "x" * 2000, "", " ",
               "1f0c1c0e-0000-4000-8000-000000000000/x", "1f0c1c0e-0000-4000-8000-000000000000\n"]


def _entry(subscription_id: str, client_state: str) -> dict[str, Any]:
    return {"subscriptionId": subscription_id, "clientState": client_state, "changeType": "created", "resource": "r"}


def one_megabyte(make: Any) -> tuple[bytes, int]:
    """As many notifications as fit in the 1 MB the webhook accepts (``make(i)`` is the i-th)."""
    entries: list[str] = []
    size = len('{"value":[]}')
    while True:
        text = json.dumps(make(len(entries)), separators=(",", ":"))
        if size + len(text) + 1 > MAX_BODY:
            return ('{"value":[' + ",".join(entries) + "]}").encode(), len(entries)
        entries.append(text)
        size += len(text) + 1


def _post(product: ProductStack, path: str, body: bytes) -> tuple[requests.Response, float, int]:
    """The answer, its time, and the Table reads it cost (the host runs in this process; the
    reads are those made under this request's correlation id, not the timers' meanwhile)."""
    correlation_id = f"abuse-{uuid.uuid4().hex}"
    began = time.monotonic()
    with TABLE_REQUESTS.traced(correlation_id) as counts:
        answer = requests.post(f"{product.url}{path}", data=body, timeout=60,
                               headers={"Content-Type": "application/json", "x-correlation-id": correlation_id})
    return answer, time.monotonic() - began, counts["reads"]


def test_a_megabyte_of_notifications_costs_bounded_reads_and_answers_fast(
    product: ProductStack, probe: StateProbe, syncing_adele: Any, caplog: pytest.LogCaptureFixture  # noqa: F811
) -> None:
    genuine = syncing_adele.subscription_id
    assert genuine and syncing_adele.client_state
    distinct, count = one_megabyte(lambda i: _entry(str(uuid.uuid4()), uuid.uuid4().hex[:4]))
    assert count > 8000
    with probe.unchanged(), caplog.at_level(logging.INFO):
        answer, seconds, reads = _post(product, "/api/webhooks/graph", distinct)
        assert answer.status_code == 202, answer.text[:300]
        print(f"{count} distinct unknown subscriptions, {len(distinct):,} bytes: {seconds:.2f} s, {reads} Table reads")
        # Each lookup counted under the POST's correlation id (made in the webhook's pool threads, in its context).
        assert LOOKED_UP_WHILE_GRAPH_WAITS <= reads <= LOOKED_UP_WHILE_GRAPH_WAITS + 5 and seconds < 10
        lines = [r for r in caplog.records if r.name.startswith(("shared.", "functions."))]
        assert len(lines) <= LOOKED_UP_WHILE_GRAPH_WAITS + 5, f"{len(lines)} log lines for one POST"
        assert any("dropped: " in r.getMessage() and "over the per-POST cap" in r.getMessage() for r in lines)

        forged, count = one_megabyte(lambda i: _entry(genuine, "forged"))
        answer, seconds, reads = _post(product, "/api/webhooks/graph", forged)
        print(f"{count} forged notifications of one real subscription: {seconds:.2f} s, {reads} Table reads")
        assert answer.status_code == 202 and reads <= 3 and seconds < 10

    # The genuine notification repeated a megabyte's worth of times is one lookup and at most one step.
    sent_before = len(probe.sent)
    repeated, count = one_megabyte(lambda i: _entry(genuine, syncing_adele.client_state))
    answer, seconds, reads = _post(product, "/api/webhooks/graph", repeated)
    print(f"{count} copies of a genuine notification: {seconds:.2f} s, {reads} Table reads")
    assert answer.status_code == 202 and seconds < 10
    assert len([q for q, _ in probe.sent[sent_before:] if q == "sync-jobs"]) <= 1
    probe.settle()


def test_hostile_subscription_ids_are_dropped_before_storage(product: ProductStack, probe: StateProbe) -> None:
    with probe.unchanged():
        for path in ("/api/webhooks/graph", "/api/webhooks/graph/lifecycle"):
            for hostile in HOSTILE_IDS:
                entry = {**_entry(hostile, "state"), "lifecycleEvent": "subscriptionRemoved"}
                if path.endswith("lifecycle"):
                    entry.pop("changeType")
                answer, _, reads = _post(product, path, json.dumps({"value": [entry]}).encode())
                assert answer.status_code == 202, (path, hostile[:20], answer.status_code, answer.text[:300])
                assert reads == 0, (path, hostile[:20], reads)
            for not_text in (42, None, ["a/b"], {"a": "b"}):
                answer, _, reads = _post(product, path, json.dumps({"value": [{**_entry("x", "s"), "subscriptionId": not_text,
                                                                                "lifecycleEvent": "missed"}]}).encode())
                assert answer.status_code == 400 and reads == 0, (path, not_text, answer.status_code)


def test_hostile_channel_ids_are_refused_before_storage(product: ProductStack, probe: StateProbe) -> None:
    def callback(channel_id: Any, token: Any = "t" * 43) -> bytes:
        return json.dumps({"channel_id": channel_id, "module": "Events", "operation": "update", "ids": ["1"],
                           "token": token}).encode()

    with probe.unchanged():
        for hostile in [*HOSTILE_IDS, "1/2", "1\\2", "1#2", "1?2", "9" * 30, -1, 0, 2**64, "１２３", True, 1.5]:
            answer, _, reads = _post(product, "/api/webhooks/crm", callback(hostile))
            refused(answer, 400, "callback refused: malformed")
            assert reads == 0, (hostile, reads)
        for token in (None, "", "t" * 10_000):
            answer, _, reads = _post(product, "/api/webhooks/crm", callback("123456789012345678", token))
            refused(answer, 403, "callback refused: bad_token")
            assert reads == 0
        answer, _, reads = _post(product, "/api/webhooks/crm", callback("123456789012345678"))
        refused(answer, 403, "unknown_channel")
        assert reads == 1


def test_every_route_answers_through_the_edge_with_a_correlation_id(product: ProductStack) -> None:
    """Pages, webhooks, static files and health alike: the caller's sane id echoed, else ours."""
    for route in http_routes():
        if route.auth_level != "anonymous":
            continue  # the host answers for the key before any function runs
        for method in route.methods:
            answer = requests.request(method, f"{product.url}{concrete(route.route)}", allow_redirects=False, timeout=60,
                                      headers={"x-correlation-id": "attacker-test-1"})
            assert answer.status_code < 500 or route.route == "health", (route.route, answer.status_code)
            assert answer.headers.get("x-correlation-id") == "attacker-test-1", (route.route, dict(answer.headers))
            mine = requests.request(method, f"{product.url}{concrete(route.route)}", allow_redirects=False, timeout=60,
                                    headers={"x-correlation-id": "bad id\t<x>"})
            assert mine.headers.get("x-correlation-id", "").isalnum(), (route.route, mine.headers)
    assert requests.get(f"{product.url}/api/static/..%2F..%2Ffunction_app.py", timeout=10).status_code == 404
