"""A small Function App used to test the local host itself (not the product)."""

import collections
import threading
import time

import azure.functions as func

app = func.FunctionApp(http_auth_level=func.AuthLevel.FUNCTION)

INVOCATIONS: collections.Counter[str] = collections.Counter()
DEQUEUE_COUNTS: list[int] = []
TIMER_RUNS: dict[str, list[tuple[float, float, bool]]] = collections.defaultdict(list)
SLOW_RUNNING = [0, 0]  # slow_worker invocations running now, and the most at once
_lock = threading.Lock()


@app.route(route="items/{id:int}", methods=["GET"], auth_level=func.AuthLevel.ANONYMOUS)
def get_item(req: func.HttpRequest) -> func.HttpResponse:
    return func.HttpResponse(f"item {req.route_params['id']}")


@app.route(route="echo/{name?}", methods=["GET", "POST"], auth_level=func.AuthLevel.ANONYMOUS)
def echo(req: func.HttpRequest) -> func.HttpResponse:
    name = req.route_params.get("name", "nobody")
    return func.HttpResponse(
        f"{req.method} {name} q={req.params.get('q', '')} body={req.get_body().decode()}",
        headers={"X-Echo": "1", "Set-Cookie": "a=1"},
    )


@app.route(route="files/{*rest}", auth_level=func.AuthLevel.ANONYMOUS)
def files(req: func.HttpRequest) -> str:
    return "rest=" + req.route_params.get("rest", "")


@app.route(route="secret", methods=["GET"])
def secret(req: func.HttpRequest) -> func.HttpResponse:
    return func.HttpResponse("secret")


@app.route(route="admin-only", methods=["GET"], auth_level=func.AuthLevel.ADMIN)
def admin_only(req: func.HttpRequest) -> func.HttpResponse:
    return func.HttpResponse("admin")


@app.route(route="boom", methods=["GET"], auth_level=func.AuthLevel.ANONYMOUS)
def boom(req: func.HttpRequest) -> func.HttpResponse:
    raise RuntimeError("boom")


@app.queue_trigger(arg_name="msg", queue_name="%Q_OK%", connection="AzureWebJobsStorage")
@app.queue_output(arg_name="out", queue_name="%Q_OUT%", connection="AzureWebJobsStorage")
def ok_worker(msg: func.QueueMessage, out: func.Out[str]) -> None:
    with _lock:
        INVOCATIONS["ok_worker"] += 1
    out.set(f"done:{msg.get_body().decode()}:{msg.dequeue_count}")


@app.queue_trigger(arg_name="msg", queue_name="%Q_FAIL%", connection="AzureWebJobsStorage")
@app.queue_output(arg_name="out", queue_name="%Q_OUT%", connection="AzureWebJobsStorage")
def failing_worker(msg: func.QueueMessage, out: func.Out[str]) -> None:
    with _lock:
        INVOCATIONS["failing_worker"] += 1
        DEQUEUE_COUNTS.append(msg.dequeue_count)
    out.set("must never be sent: the function fails")
    raise RuntimeError("this message can never succeed")


@app.queue_trigger(arg_name="msg", queue_name="%Q_SLOW%", connection="AzureWebJobsStorage")
def slow_worker(msg: func.QueueMessage) -> None:
    with _lock:
        INVOCATIONS["slow_worker"] += 1
        SLOW_RUNNING[0] += 1
        SLOW_RUNNING[1] = max(SLOW_RUNNING)
    try:
        time.sleep(float(msg.get_body().decode()))
    finally:
        with _lock:
            SLOW_RUNNING[0] -= 1


@app.timer_trigger(arg_name="timer", schedule="%TICK_SCHEDULE%", run_on_startup=False, use_monitor=False)
def tick_fast(timer: func.TimerRequest) -> None:
    now = time.time()
    TIMER_RUNS["fast"].append((now, now, timer.past_due))


@app.timer_trigger(arg_name="timer", schedule="%TICK_SCHEDULE%", run_on_startup=True, use_monitor=False)
def tick_slow(timer: func.TimerRequest) -> None:
    started = time.time()
    time.sleep(1.5)
    TIMER_RUNS["slow"].append((started, time.time(), timer.past_due))
