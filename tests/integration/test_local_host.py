"""The local Functions host against Azurite: routing, methods, keys, queue semantics
(success, retries, poison, bad encoding, visibility renewal) and timers."""

from __future__ import annotations

import base64
import contextlib
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
import requests
from azure.storage.queue import QueueServiceClient

from local.host import LocalHost
from local.http_trigger import HostKeys

APP = Path(__file__).parent / "host_app" / "host_test_app.py"


def wait_for(condition, timeout: float = 20, interval: float = 0.05):  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError("condition not met in time")


@pytest.fixture(scope="module")
def queues(azurite, request) -> dict[str, str]:  # type: ignore[no-untyped-def]
    import uuid

    suffix = uuid.uuid4().hex[:8]
    names = {key: f"{key.lower().replace('_', '')}-{suffix}" for key in ("Q_OK", "Q_FAIL", "Q_OUT", "Q_SLOW")}
    return names


@pytest.fixture(scope="module")
def host(azurite, queues) -> Iterator[LocalHost]:  # type: ignore[no-untyped-def]
    mp = pytest.MonkeyPatch()
    mp.setenv("AzureWebJobsStorage", azurite.connection_string)
    for key, value in queues.items():
        mp.setenv(key, value)
    mp.setenv("TICK_SCHEDULE", "*/1 * * * * *")
    instance = LocalHost(APP, port=0, receive_visibility=timedelta(seconds=2)).start()
    try:
        yield instance
    finally:
        instance.stop()
        mp.undo()


@pytest.fixture(scope="module")
def app_module(host):  # type: ignore[no-untyped-def]
    return host.app_module


@pytest.fixture(scope="module")
def queue_service(azurite) -> QueueServiceClient:  # type: ignore[no-untyped-def]
    return QueueServiceClient.from_connection_string(azurite.connection_string)


def send(service: QueueServiceClient, queue: str, text: str, *, encode: bool = True) -> None:
    client = service.get_queue_client(queue)
    with contextlib.suppress(Exception):
        client.create_queue()
    client.send_message(base64.b64encode(text.encode()).decode() if encode else text)


def drain(service: QueueServiceClient, queue: str) -> list[str]:
    client = service.get_queue_client(queue)
    try:
        messages = list(client.receive_messages(messages_per_page=32, max_messages=32))
    except Exception:
        return []
    for m in messages:
        client.delete_message(m)
    return [m.content for m in messages]


def queue_length(service: QueueServiceClient, queue: str) -> int:
    try:
        return service.get_queue_client(queue).get_queue_properties().approximate_message_count
    except Exception:
        return 0


# --- HTTP -------------------------------------------------------------------------------


def test_route_with_int_constraint(host: LocalHost) -> None:
    assert requests.get(f"{host.url}/api/items/42").text == "item 42"
    assert requests.get(f"{host.url}/api/items/-3").text == "item -3"
    assert requests.get(f"{host.url}/api/items/abc").status_code == 404


def test_optional_parameter_query_body_and_headers(host: LocalHost) -> None:
    with_name = requests.post(f"{host.url}/api/echo/ada?q=1", data=b"hi")
    assert with_name.text == "POST ada q=1 body=hi"
    assert with_name.headers["X-Echo"] == "1"
    assert with_name.headers["Set-Cookie"] == "a=1"
    assert requests.get(f"{host.url}/api/echo").text == "GET nobody q= body="


def test_catch_all_and_str_return(host: LocalHost) -> None:
    assert requests.get(f"{host.url}/api/files/a/b/c.txt").text == "rest=a/b/c.txt"
    assert requests.get(f"{host.url}/api/files").text == "rest="


def test_method_not_allowed_and_unknown_route(host: LocalHost) -> None:
    response = requests.delete(f"{host.url}/api/items/1")
    assert response.status_code == 405
    assert "GET" in response.headers["Allow"]
    assert requests.get(f"{host.url}/api/nothing-here").status_code == 404
    assert requests.get(f"{host.url}/items/1").status_code == 404  # the route prefix is required


def test_function_error_is_500(host: LocalHost) -> None:
    assert requests.get(f"{host.url}/api/boom").status_code == 500


def test_auth_is_off_without_keys_like_core_tools(host: LocalHost) -> None:
    assert requests.get(f"{host.url}/api/secret").status_code == 200


def test_function_keys_enforced_when_configured(azurite, queues) -> None:  # type: ignore[no-untyped-def]
    mp = pytest.MonkeyPatch()
    mp.setenv("AzureWebJobsStorage", azurite.connection_string)
    for key, value in queues.items():
        mp.setenv(key, value)
    mp.setenv("TICK_SCHEDULE", "0 0 0 1 1 *")
    keys = HostKeys(master="m-key", host={"default": "h-key"}, functions={"secret": {"default": "f-key"}})
    with LocalHost(APP, port=0, keys=keys) as keyed:
        url = keyed.url
        assert requests.get(f"{url}/api/secret").status_code == 401
        assert requests.get(f"{url}/api/secret", params={"code": "wrong"}).status_code == 401
        assert requests.get(f"{url}/api/secret", params={"code": "f-key"}).status_code == 200
        assert requests.get(f"{url}/api/secret", headers={"x-functions-key": "h-key"}).status_code == 200
        assert requests.get(f"{url}/api/secret", headers={"x-functions-key": "m-key"}).status_code == 200
        assert requests.get(f"{url}/api/admin-only", params={"code": "h-key"}).status_code == 401
        assert requests.get(f"{url}/api/admin-only", params={"code": "m-key"}).status_code == 200
        assert requests.get(f"{url}/api/items/1").status_code == 200  # anonymous stays open
        assert requests.post(f"{url}/admin/functions/tick_fast", json={}).status_code == 401
        assert requests.post(f"{url}/admin/functions/tick_fast", json={}, params={"code": "m-key"}).status_code == 202
    mp.undo()


# --- Queues -----------------------------------------------------------------------------


def test_good_messages_run_once_and_are_deleted(host, app_module, queue_service, queues) -> None:  # type: ignore[no-untyped-def]
    before = app_module.INVOCATIONS["ok_worker"]
    for i in range(10):
        send(queue_service, queues["Q_OK"], f"m{i}")
    outputs: list[str] = []
    wait_for(lambda: outputs.extend(drain(queue_service, queues["Q_OUT"])) or len(outputs) >= 10)
    decoded = sorted(base64.b64decode(o).decode() for o in outputs)
    assert decoded == sorted(f"done:m{i}:1" for i in range(10))
    assert app_module.INVOCATIONS["ok_worker"] - before == 10
    wait_for(lambda: queue_length(queue_service, queues["Q_OK"]) == 0)


def test_failing_message_goes_to_poison_after_five_attempts(host, app_module, queue_service, queues) -> None:  # type: ignore[no-untyped-def]
    body = '{"job": "never works", "n": 1}'
    send(queue_service, queues["Q_FAIL"], body)
    poison = f"{queues['Q_FAIL']}-poison"
    raw = wait_for(lambda: drain(queue_service, poison))
    assert [base64.b64decode(r).decode() for r in raw] == [body]  # the raw body, intact
    assert app_module.INVOCATIONS["failing_worker"] == 5
    assert app_module.DEQUEUE_COUNTS == [1, 2, 3, 4, 5]
    assert queue_length(queue_service, queues["Q_FAIL"]) == 0
    # Outputs of a failed invocation are never sent.
    assert not any("must never" in base64.b64decode(o).decode() for o in drain(queue_service, queues["Q_OUT"]))


def test_non_base64_message_goes_to_poison_without_running(host, app_module, queue_service, queues) -> None:  # type: ignore[no-untyped-def]
    before = app_module.INVOCATIONS["ok_worker"]
    send(queue_service, queues["Q_OK"], "this is {not} base64!", encode=False)
    raw = wait_for(lambda: drain(queue_service, f"{queues['Q_OK']}-poison"))
    assert raw == ["this is {not} base64!"]
    assert app_module.INVOCATIONS["ok_worker"] == before


def test_visibility_is_renewed_while_a_function_runs(host, app_module, queue_service, queues) -> None:  # type: ignore[no-untyped-def]
    # The host receives with a 2 s visibility here; the function runs 5 s. Without renewal the
    # message would reappear and run a second time.
    send(queue_service, queues["Q_SLOW"], "5")
    wait_for(lambda: app_module.INVOCATIONS["slow_worker"] == 1)
    wait_for(lambda: queue_length(queue_service, queues["Q_SLOW"]) == 0, timeout=15)
    assert app_module.INVOCATIONS["slow_worker"] == 1


# --- Timers -----------------------------------------------------------------------------


def test_timer_fires_on_its_seconds_schedule(host, app_module) -> None:  # type: ignore[no-untyped-def]
    runs = app_module.TIMER_RUNS["fast"]
    start = len(runs)
    wait_for(lambda: len(runs) >= start + 3, timeout=10)
    for started, _, _ in runs[start:]:
        # Each run starts just after a whole second (the schedule is every second).
        assert started % 1 < 0.5


def test_timer_runs_on_startup_and_never_overlaps(host, app_module) -> None:  # type: ignore[no-untyped-def]
    runs = app_module.TIMER_RUNS["slow"]
    wait_for(lambda: len(runs) >= 3, timeout=15)
    for (_, previous_end, _), (next_start, _, _) in zip(runs, runs[1:], strict=False):
        assert next_start >= previous_end
    # A 1.5 s run on a 1 s schedule misses occurrences: the runs after it are marked past due.
    assert any(past_due for _, _, past_due in runs[1:])


def test_every_function_shares_the_workers_threads(azurite, queue_service) -> None:  # type: ignore[no-untyped-def]
    """As in the Python worker: PYTHON_THREADPOOL_THREAD_COUNT threads for all functions. Six
    slow messages fetched at once (batchSize 4 + newBatchThreshold 2) run two at a time, and an
    HTTP request waits for a thread meanwhile."""
    import uuid

    mp = pytest.MonkeyPatch()
    mp.setenv("AzureWebJobsStorage", azurite.connection_string)
    suffix = uuid.uuid4().hex[:8]
    for key in ("Q_OK", "Q_FAIL", "Q_OUT", "Q_SLOW"):
        mp.setenv(key, f"{key.lower().replace('_', '')}-{suffix}")
    mp.setenv("TICK_SCHEDULE", "0 0 0 1 1 *")
    mp.setenv("PYTHON_THREADPOOL_THREAD_COUNT", "2")
    try:
        with LocalHost(APP, port=0) as narrow:
            assert narrow.worker_threads == 2
            app = narrow.app_module
            for _ in range(6):
                send(queue_service, f"qslow-{suffix}", "1.0")
            wait_for(lambda: app.SLOW_RUNNING[0] == 2, timeout=10)
            started = time.monotonic()
            assert requests.get(f"{narrow.url}/api/items/7", timeout=10).status_code == 200
            assert time.monotonic() - started > 0.3  # it waited for one of the two threads
            wait_for(lambda: app.INVOCATIONS["slow_worker"] == 6 and app.SLOW_RUNNING[0] == 0, timeout=20)
            assert app.SLOW_RUNNING[1] == 2
    finally:
        mp.undo()
