"""The CRM emulator on an ephemeral port for the whole session, reset before each test."""

from __future__ import annotations

import base64
import json
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import requests
from werkzeug.serving import make_server
from werkzeug.wrappers import Request, Response

from emulators.crm.server import DEMO_SEED, RunningCrm, start

CLIENT_ID = "1000.DEMOLOCALCLIENT0001"
CLIENT_SECRET = "demo-crm-client-secret"
PASSWORD = "Crm-Demo-1"
FABRICE = "fabrice@fabrikam.test"
SAM = "sam.carter@samconsulting.example"
RITA = "rita@samconsulting.example"
TINA = "tina@tinybakery.example"


@pytest.fixture(scope="session")
def crm() -> Iterator[RunningCrm]:
    running = start(port=0, seed=DEMO_SEED)
    try:
        yield running
    finally:
        running.stop()


@pytest.fixture(autouse=True)
def fresh(crm: RunningCrm) -> None:
    requests.post(f"{crm.control_url}/reset", timeout=10).raise_for_status()


@pytest.fixture
def provisioning(crm: RunningCrm) -> requests.Session:
    session = requests.Session()
    session.headers["Authorization"] = "Basic " + base64.b64encode(f"{CLIENT_ID}:{CLIENT_SECRET}".encode()).decode()
    session.base_url = crm.provisioning_url  # type: ignore[attr-defined]
    return session


class Api:
    """A signed-in integration: the API domain and headers for one CRM user."""

    def __init__(self, grant: dict[str, Any]) -> None:
        self.grant = grant
        self.base = grant["api_domain"] + "/crm/v8"
        self.session = requests.Session()
        self.session.headers["Authorization"] = f"Zoho-oauthtoken {grant['access_token']}"

    def get(self, path: str, **kw: Any) -> requests.Response:
        return self.session.get(self.base + path, timeout=30, **kw)

    def post(self, path: str, **kw: Any) -> requests.Response:
        return self.session.post(self.base + path, timeout=30, **kw)

    def put(self, path: str, **kw: Any) -> requests.Response:
        return self.session.put(self.base + path, timeout=30, **kw)

    def patch(self, path: str, **kw: Any) -> requests.Response:
        return self.session.patch(self.base + path, timeout=30, **kw)

    def delete(self, path: str, **kw: Any) -> requests.Response:
        return self.session.delete(self.base + path, timeout=30, **kw)


@pytest.fixture
def api_for(crm: RunningCrm, provisioning: requests.Session) -> Callable[..., Api]:
    def make(email: str, scopes: list[str] | None = None) -> Api:
        found = provisioning.get(f"{crm.provisioning_url}/accounts", params={"email": email}, timeout=10)
        found.raise_for_status()
        user_id = found.json()["account"]["user_id"]
        body = {"scopes": scopes} if scopes else {}
        grant = provisioning.post(f"{crm.provisioning_url}/users/{user_id}/grant", json=body, timeout=10)
        grant.raise_for_status()
        return Api(grant.json())
    return make


@pytest.fixture
def fabrice(api_for: Callable[..., Api]) -> Api:
    return api_for(FABRICE)


def control(crm: RunningCrm, path: str, body: Any = None, method: str = "POST") -> Any:
    response = requests.request(method, f"{crm.control_url}{path}", json=body, timeout=60)
    assert response.status_code < 300, response.text
    return response.json()


def wait_until(predicate: Callable[[], Any], timeout: float = 10) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError("condition not met in time")


class Receiver:
    """A notify_url / redirect_uri endpoint on an ephemeral port that records what arrives."""

    def __init__(self, fail_first: int = 0, delay: float = 0) -> None:
        self.fail_first = fail_first  # answer 500 to this many requests first
        self.delay = delay
        self.received: list[dict[str, Any]] = []
        self.lock = threading.Lock()
        self.server = make_server("127.0.0.1", 0, self._app, threaded=True)
        self.url = f"http://127.0.0.1:{self.server.port}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @Request.application
    def _app(self, request: Request) -> Response:
        body = request.get_data(as_text=True)
        time.sleep(self.delay)
        with self.lock:
            if self.fail_first > 0:
                self.fail_first -= 1
                return Response("try again", 500)
            self.received.append({"path": request.path, "args": dict(request.args), "method": request.method,
                                  "json": json.loads(body) if body and request.is_json else None})
        return Response("ok", 200)

    def callbacks(self) -> list[dict[str, Any]]:
        with self.lock:
            return [r["json"] for r in self.received if r["method"] == "POST" and r["json"]]

    def wait_for(self, predicate: Callable[[list[dict[str, Any]]], bool], timeout: float = 10) -> list[dict]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            got = self.callbacks()
            if predicate(got):
                return got
            time.sleep(0.05)
        raise AssertionError(f"timed out; received {self.callbacks()}")

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def make_receiver() -> Iterator[Callable[..., Receiver]]:
    made: list[Receiver] = []

    def make(**kw: Any) -> Receiver:
        made.append(Receiver(**kw))
        return made[-1]
    try:
        yield make
    finally:
        for r in made:
            r.stop()


@pytest.fixture
def receiver(make_receiver: Callable[..., Receiver]) -> Receiver:
    return make_receiver()
