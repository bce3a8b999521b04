"""The operators' poison view (issue 10): a message that can never succeed reaches
``<queue>-poison`` after the host's maxDequeueCount, shows on ``GET /api/ops/poison`` (admin
key only, its secrets left out), and once the cause is fixed a replay delivers it, once."""

from __future__ import annotations

import base64
import contextlib
import dataclasses
import json
import time
import uuid
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
import requests
from azure.storage.queue import QueueServiceClient

from emulators.crm.server import start as start_crm
from emulators.m365.server import start as start_m365
from local.demo_world import APP_REGISTRATION
from local.host import LocalHost
from local.http_trigger import HostKeys
from shared.mail.outbox import OUTBOX_QUEUE, OutboxMessage
from shared.operations.poison import PoisonNotFound, PoisonQueues, PoisonRefused
from shared.wiring import get_services
from tests.conftest import storage_connection
from tests.product_stack import CONTOSO, ROOT, ProductStack, product_environment

MASTER_KEY = "test-master-key-" + uuid.uuid4().hex
HOST_KEY = "test-host-key-" + uuid.uuid4().hex
MAX_DEQUEUE = 2  # host.json says 5; shortened here so the test waits seconds, not half a minute


@pytest.fixture(scope="module")
def keyed_stack(azurite, tmp_path_factory) -> Iterator[ProductStack]:  # type: ignore[no-untyped-def]
    """The product stack with function keys enforced and a shorter queue retry budget."""
    m365 = start_m365(port=0, seed=ROOT / "emulators/m365/seed/demo.json", state_dir=tmp_path_factory.mktemp("m365"))
    crm = start_crm(port=0, seed=ROOT / "emulators/crm/seed/demo.json")
    patch = pytest.MonkeyPatch()
    for name, value in product_environment(m365, crm).items():
        patch.setenv(name, value)
    host = LocalHost(ROOT / "function_app.py", port=0, read_local_settings=False,
                     keys=HostKeys(master=MASTER_KEY, host={"default": HOST_KEY}))
    queues = dataclasses.replace(host.config.queues, max_dequeue_count=MAX_DEQUEUE, visibility_timeout=timedelta(seconds=1))
    host.config = dataclasses.replace(host.config, queues=queues)
    host.start()
    patch.setenv("PUBLIC_BASE_URL", host.url)
    try:
        yield ProductStack(m365, crm, host)
    finally:
        host.stop()
        crm.stop()
        m365.stop()
        patch.undo()


@pytest.fixture
def stack(keyed_stack: ProductStack, monkeypatch: pytest.MonkeyPatch) -> ProductStack:
    monkeypatch.setenv("TABLE_PREFIX", f"t{uuid.uuid4().hex[:12]}")
    keyed_stack.reset()
    return keyed_stack


def poison_view(stack: ProductStack, key: str | None = MASTER_KEY) -> requests.Response:
    headers = {"x-functions-key": key} if key else {}
    return requests.get(f"{stack.url}/api/ops/poison", headers=headers, timeout=30)


def listed(stack: ProductStack, message_id: str) -> dict[str, Any] | None:
    for queue in poison_view(stack).json()["queues"]:
        for message in queue["messages"]:
            if message["summary"].get("message_id") == message_id:
                return {**message, "queue": queue["queue"]}
    return None


def inbox_subjects(stack: ProductStack, upn: str) -> list[str]:
    for tenant in stack.m365_snapshot()["tenants"]:
        for user in tenant["users"]:
            if user["userPrincipalName"] == upn:
                return [m["subject"] for m in user["mailbox"]["messages"] if m.get("parentFolderId", m.get("folder")) == "inbox"]
    return []


def wait_for(condition: Any, timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while not (value := condition()):
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.3)
    return value


def test_a_mail_that_always_fails_is_poisoned_shown_and_replayed_after_the_fix(stack: ProductStack) -> None:
    stack.m365_control("POST", "consents", json={"tenantId": CONTOSO, "clientId": APP_REGISTRATION["client_id"], "kind": "admin"})
    stack.m365_control("PUT", "faults", json={"rate_503": 1.0, "retry_after_seconds": 0})  # Graph is down
    subject = f"poisoned {uuid.uuid4().hex[:8]}"
    mail = OutboxMessage(message_id=f"test-{uuid.uuid4().hex}", tenant_id=CONTOSO, sender="adele@contoso.test",
                         to_email="megan@contoso.test", to_name="Megan", subject=subject,
                         html='<a href="https://app/api/invitations/SECRET-TOKEN">x</a>', text="SECRET-TOKEN")
    get_services().outbox.enqueue(mail)

    shown = wait_for(lambda: listed(stack, mail.message_id), 90, "the message on the poison view")
    assert shown["queue"] == OUTBOX_QUEUE
    assert shown["summary"]["subject"] == subject and shown["inserted_on"]
    assert "SECRET-TOKEN" not in json.dumps(shown) and "sealed_body" in shown["summary"]["other_fields"]
    raw = [m.content for m in QueueServiceClient.from_connection_string(storage_connection()).get_queue_client(
        f"{OUTBOX_QUEUE}-poison").peek_messages(max_messages=32)]
    assert raw and not any("SECRET-TOKEN" in base64.b64decode(c).decode() for c in raw)  # sealed at rest (issue 18 §5)
    assert subject not in inbox_subjects(stack, "megan@contoso.test")

    # Only the admin (master) key opens the view and the replay.
    assert poison_view(stack, None).status_code == 401
    assert poison_view(stack, HOST_KEY).status_code == 401
    replay_url = f"{stack.url}/api/ops/poison/{OUTBOX_QUEUE}/replay"
    assert requests.post(replay_url, params={"id": shown["message_id"]}, timeout=30).status_code == 401

    stack.m365_control("PUT", "faults", json={"rate_503": 0})  # the cause is fixed
    answer = requests.post(replay_url, json={"message_id": shown["message_id"]},
                           headers={"x-functions-key": MASTER_KEY}, timeout=30)
    assert answer.status_code == 200, answer.text
    assert answer.json()["replayed"] == [shown["message_id"]]
    wait_for(lambda: subject in inbox_subjects(stack, "megan@contoso.test"), 60, "the replayed mail to arrive")
    time.sleep(2)  # a duplicate would arrive now
    assert inbox_subjects(stack, "megan@contoso.test").count(subject) == 1
    assert listed(stack, mail.message_id) is None

    again = requests.post(replay_url, params={"id": shown["message_id"]}, headers={"x-functions-key": MASTER_KEY}, timeout=30)
    assert again.status_code == 404 and "no message" in again.json()["error"]
    bad = requests.post(f"{stack.url}/api/ops/poison/Not_A_Queue/replay", headers={"x-functions-key": MASTER_KEY}, timeout=30)
    assert bad.status_code == 400 and "not a queue name" in bad.json()["error"]


# -- the domain on its own, against Azurite --------------------------------------------------------


@pytest.fixture
def poison_queue(azurite) -> Iterator[tuple[QueueServiceClient, str]]:  # type: ignore[no-untyped-def]
    service = QueueServiceClient.from_connection_string(azurite.connection_string)
    name = f"ops-test-{uuid.uuid4().hex[:8]}"
    service.create_queue(f"{name}-poison")
    try:
        yield service, name
    finally:
        for queue in (name, f"{name}-poison"):
            with contextlib.suppress(Exception):
                service.delete_queue(queue)


def _raw(body: dict[str, Any]) -> str:
    return base64.b64encode(json.dumps(body).encode()).decode()


def test_replay_all_moves_every_message_back_untouched(poison_queue: tuple[QueueServiceClient, str]) -> None:
    service, name = poison_queue
    raws = [_raw({"member": f"ms|t|{n}", "kind": "calendar", "step": "delta"}) for n in range(3)] + ["not base64!"]
    for raw in raws:
        service.get_queue_client(f"{name}-poison").send_message(raw)
    queues = PoisonQueues(service)
    listing = next(q for q in queues.list() if q.queue == name)
    assert listing.approximate_count == 4
    assert sorted(str(m.summary.get("member")) for m in listing.messages if "member" in m.summary) == ["ms|t|0", "ms|t|1", "ms|t|2"]
    assert any(m.summary == {"undecodable": True} for m in listing.messages)
    report = queues.replay(f"{name}-poison")
    assert len(report.replayed) == 4 and report.remaining == 0
    moved = [m.content for m in service.get_queue_client(name).peek_messages(max_messages=32)]
    assert sorted(moved) == sorted(raws)


def test_replay_of_one_message_leaves_the_others_visible(poison_queue: tuple[QueueServiceClient, str]) -> None:
    service, name = poison_queue
    poison = service.get_queue_client(f"{name}-poison")
    ids = [poison.send_message(_raw({"n": n})).id for n in range(3)]
    queues = PoisonQueues(service)
    assert queues.replay(name, ids[1]).replayed == [ids[1]]
    assert sorted(m.id for m in poison.peek_messages(max_messages=32)) == sorted([ids[0], ids[2]])
    with pytest.raises(PoisonNotFound):
        queues.replay(name, ids[1])
    with pytest.raises(PoisonRefused):
        queues.replay(name, "../etc")
    with pytest.raises(PoisonNotFound):
        queues.replay(f"no-such-{uuid.uuid4().hex[:6]}")
