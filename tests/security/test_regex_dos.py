"""One anonymous request froze the whole host (issue 18 §2): the log-redaction patterns
backtracked exponentially on a run of backslashes (34 cost 2 s, 60 days), holding the GIL.
Both anonymous doors, as an attacker uses them, must answer fast."""

from __future__ import annotations

import json
import time
from urllib.parse import parse_qs, urlsplit

import requests

from tests.product_stack import ProductStack
from tests.security.world import StateProbe

# The shape that reached both quoted-value alternatives; 1,000 fit in a URL the host accepts.
BACKSLASHES = '"token": "' + "\\" * 1000


def test_a_graph_notification_full_of_backslashes_answers_fast(product: ProductStack, probe: StateProbe) -> None:
    body = {"value": [{"subscriptionId": BACKSLASHES, "clientState": BACKSLASHES, "changeType": "updated",
                       "resource": BACKSLASHES}]}
    with probe.unchanged():
        began = time.monotonic()
        answer = requests.post(f"{product.url}/api/webhooks/graph", data=json.dumps(body), timeout=30,
                               headers={"Content-Type": "application/json"})
        assert answer.status_code == 202 and time.monotonic() - began < 2


def test_a_sign_in_error_description_full_of_backslashes_answers_fast(product: ProductStack) -> None:
    browser = requests.Session()
    browser.trust_env = False
    launch = browser.get(f"{product.url}/api/marketplace/launch", allow_redirects=False, timeout=30)
    state = parse_qs(urlsplit(launch.headers["Location"]).query)["state"][0]
    began = time.monotonic()
    answer = browser.get(f"{product.url}/api/auth/callback", allow_redirects=False, timeout=30,
                         params={"state": state, "error": "access_denied", "error_description": BACKSLASHES})
    assert time.monotonic() - began < 2
    assert answer.status_code == 400, answer.text[:300]
    assert answer.text.count("\\") <= 500  # what Microsoft's error said is shown, capped
