"""shared/observability.py: secrets never reach a log handler, every record carries the
correlation id of its request or message, configure_logging is idempotent, and
OpenTelemetry is imported only when Application Insights is configured."""

from __future__ import annotations

import logging
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from shared import observability
from shared.observability import (
    MAX_LOGGED_MESSAGE,
    REDACTED,
    RedactingFilter,
    configure_logging,
    correlated,
    current_correlation_id,
    new_correlation_id,
    redact,
    sane_correlation_id,
    untrusted,
)

ROOT = Path(__file__).resolve().parents[2]


class Capture(logging.Handler):
    """Keeps each record and its formatted text, as a real handler (the worker's) would see them."""

    def __init__(self) -> None:
        super().__init__()
        self.records: list[logging.LogRecord] = []
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)
        self.lines.append(self.format(record))


@pytest.fixture
def capture() -> Iterator[Capture]:
    """A root handler in place before configure_logging, like the Functions worker's."""
    observability._reset_for_tests()
    handler = Capture()
    root = logging.getLogger()
    old_level = root.level
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    configure_logging({})
    try:
        yield handler
    finally:
        root.removeHandler(handler)
        root.setLevel(old_level)
        observability._reset_for_tests()


SIGNED_LINK_TOKEN = "q3VhN1m2Zx8bC4dE5fG6hI7jK8lM9nO0pQ1rS2tU3vW"  # secrets.token_urlsafe(32) shape
JWT = "eyJhbGciOiJSUzI1NiIsImtpZCI6IjEifQ.eyJzdWIiOiJhZGVsZSIsInRpZCI6IjcifQ.c2lnbmF0dXJlLWJ5dGVz"

# (what is logged, the secret that must not appear, what must survive)
SECRET_FORMS = [
    ("Authorization: Bearer %s", JWT, "Authorization"),
    ("headers %s", "{'Authorization': 'Zoho-oauthtoken 1000.a1b2c3d4e5f6a7b8c9d0', 'Accept': 'json'}", "Accept"),
    ("sent Bearer %s to Graph", "AbCdEf0123456789xyz", "to Graph"),
    ("token answer %s", '{"access_token": "at-secret-1", "refresh_token": "rt-secret-2", "expires_in": 3600}',
     '"expires_in": 3600'),
    ("posting %s", "grant_type=refresh_token&client_id=1000.X&client_secret=cs-secret-3&refresh_token=rt-4",
     "grant_type=refresh_token"),
    ("callback %s", "GET /api/auth/callback?code=0.AXcode-secret-5&state=s1", "state=s1"),
    ("form %s", "email=adele%40contoso.test&password=Contoso-Demo-1", "email=adele"),
    ("json %s", '{"password": "Contoso-Demo-1", "email": "adele@contoso.test"}', "adele@contoso.test"),
    ("GET %s", f"/api/invitations/{SIGNED_LINK_TOKEN}", "/api/invitations/"),
    ("POST %s", f"/api/join-requests/{SIGNED_LINK_TOKEN}/approve", "/approve"),
    ("Cookie: %s", "crm365_session=abc.def.ghi", "Cookie"),
    ("subscription %s", '{"changeType": "updated", "clientState": "cs-secret-6"}', "changeType"),
    ("storage %s", "DefaultEndpointsProtocol=https;AccountName=st1;AccountKey=a2V5LXNlY3JldA==", "AccountName=st1"),
    ("stored %s", "gAAAAABnZW5lcmF0ZWQtZmVybmV0LXRva2VuLWZvci10ZXN0aW5nLXB1cnBvc2Vz", "stored"),
]


def _secret_part(value: str) -> str:
    """The piece of ``value`` that is the secret itself (checked absent after redaction)."""
    for marker in ("Zoho-oauthtoken ", "client_secret=", "code=", "password=", "AccountKey=", "crm365_session="):
        if marker in value:
            return value.split(marker, 1)[1].split("&")[0].split("'")[0].split(";")[0]
    for key in ('"access_token": "', '"password": "', '"clientState": "'):
        if key in value:
            return value.split(key, 1)[1].split('"')[0]
    if "/invitations/" in value or "/join-requests/" in value:
        return SIGNED_LINK_TOKEN
    return value


@pytest.mark.parametrize(("template", "value", "kept"), SECRET_FORMS, ids=[f[0].split()[0] for f in SECRET_FORMS])
def test_each_secret_form_is_redacted_before_any_handler(capture: Capture, template: str, value: str,
                                                         kept: str) -> None:
    logging.getLogger("shared.anything").info(template, value)
    [line] = capture.lines
    assert _secret_part(value) not in line
    assert REDACTED in line
    assert kept in line


def test_without_the_filter_the_secret_would_be_logged() -> None:
    """The same record through a handler without configure_logging keeps the secret: the
    redaction above is the filter's doing, not the test's."""
    observability._reset_for_tests()
    handler = Capture()
    logger = logging.getLogger("test.unfiltered")
    logger.addHandler(handler)
    logger.propagate = False
    try:
        logger.warning("token answer %s", '{"refresh_token": "rt-visible"}')
        assert "rt-visible" in handler.lines[0]
        handler.addFilter(RedactingFilter())
        logger.warning("token answer %s", '{"refresh_token": "rt-visible"}')
        assert "rt-visible" not in handler.lines[1]
    finally:
        logger.removeHandler(handler)
        logger.propagate = True


def test_exception_text_is_redacted(capture: Capture) -> None:
    try:
        raise RuntimeError("refresh failed: refresh_token=rt-in-traceback")
    except RuntimeError:
        logging.getLogger("shared.crm").exception("refresh failed")
    assert "rt-in-traceback" not in capture.lines[0]
    assert "RuntimeError" in capture.lines[0]


def test_records_made_outside_the_factory_are_redacted_by_the_filter(capture: Capture) -> None:
    record = logging.makeLogRecord({"name": "x", "levelno": logging.INFO, "levelname": "INFO",
                                    "msg": "password=hunter2-secret"})
    logging.getLogger().handle(record)
    assert "hunter2-secret" not in capture.lines[-1]


def test_ordinary_text_is_left_alone() -> None:
    for text in ("Graph answered 404 with code ErrorItemNotFound", '{"code": "ErrorItemNotFound"}',
                 "status code=503, retrying", "a bearer token is missing", "page_token=abc is the cursor"):
        assert redact(text) == text


def test_redaction_is_idempotent() -> None:
    for _, value, _ in SECRET_FORMS:
        once = redact(value)
        assert redact(once) == once


def test_correlation_id_on_every_record_and_distinct_per_context(capture: Capture) -> None:
    log = logging.getLogger("shared.sync")
    log.info("outside")
    with correlated("req-1"):
        log.info("in one")
        with correlated("req-2"):
            log.info("nested")
        log.info("back in one")
    ids = [r.correlation_id for r in capture.records]  # type: ignore[attr-defined]
    assert ids == ["-", "req-1", "req-2", "req-1"]
    assert capture.lines[1].endswith("[correlation_id=req-1]")
    assert "correlation_id" not in capture.lines[0]
    assert current_correlation_id() is None


def test_concurrent_invocations_keep_their_own_id(capture: Capture) -> None:
    log = logging.getLogger("shared.sync")
    barrier = threading.Barrier(4)

    def invocation(n: int) -> None:
        with correlated(f"job-{n}"):
            barrier.wait()
            log.info("step of %d", n)

    threads = [threading.Thread(target=invocation, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    by_message = {r.getMessage(): r.correlation_id for r in capture.records}  # type: ignore[attr-defined]
    assert by_message == {f"step of {n}": f"job-{n}" for n in range(4)}


def test_new_and_sane_ids() -> None:
    assert new_correlation_id() != new_correlation_id()
    sync_id = new_correlation_id("sync:ms|t|o:calendar")
    assert sync_id.startswith("sync:ms|t|o:calendar:") and len(sync_id.rsplit(":", 1)[1]) == 8
    assert sane_correlation_id("abc-123_X.y:z") == "abc-123_X.y:z"
    for bad in (None, "", "a b", "<script>", "x" * 200, "line\nbreak", "-leading", "trailing\n"):
        assert sane_correlation_id(bad) is None


def test_configure_logging_is_idempotent() -> None:
    observability._reset_for_tests()
    handler = Capture()
    root = logging.getLogger()
    root.addHandler(handler)
    try:
        factory_before = logging.getLogRecordFactory()
        configure_logging({})
        factory = logging.getLogRecordFactory()
        configure_logging({})
        observability._configured = False  # even a forced second install does not stack
        configure_logging({})
        assert logging.getLogRecordFactory() is factory is not factory_before
        assert sum(isinstance(f, RedactingFilter) for f in handler.filters) == 1
        assert handler.formatter.inner.__class__ is logging.Formatter  # type: ignore[union-attr]
        with correlated("once"):
            logging.getLogger("x").warning("hello")
        assert handler.lines[-1] == "hello [correlation_id=once]"
    finally:
        root.removeHandler(handler)
        observability._reset_for_tests()


def test_azure_monitor_is_configured_only_with_a_connection_string(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[dict[str, object]] = []
    monkeypatch.setattr(observability, "_configure_azure_monitor", lambda env: calls.append(dict(env)) or True)
    observability._reset_for_tests()
    try:
        configure_logging({})
        assert calls == []
        observability._reset_for_tests()
        configure_logging({"APPLICATIONINSIGHTS_CONNECTION_STRING": "InstrumentationKey=00000000-0000"})
        assert len(calls) == 1
    finally:
        observability._reset_for_tests()


def test_a_failing_exporter_does_not_stop_the_app(monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(env: object) -> bool:
        raise RuntimeError("no network")

    monkeypatch.setattr(observability, "_configure_azure_monitor", broken)
    observability._reset_for_tests()
    try:
        configure_logging({"APPLICATIONINSIGHTS_CONNECTION_STRING": "InstrumentationKey=00000000-0000"})
    finally:
        observability._reset_for_tests()


def test_worker_managed_telemetry_is_not_configured_twice() -> None:
    assert observability._configure_azure_monitor(
        {"APPLICATIONINSIGHTS_CONNECTION_STRING": "x", "PYTHON_APPLICATIONINSIGHTS_ENABLE_TELEMETRY": "true"}
    ) is False


def test_entra_auth_uses_the_user_assigned_identity() -> None:
    credential = observability._azure_monitor_credential("ClientId=1111-2222;Authorization=AAD")
    assert type(credential).__name__ == "ManagedIdentityCredential"
    assert observability._azure_monitor_credential(None) is None
    assert observability._azure_monitor_credential("InstrumentationKey=abc") is None


def test_no_opentelemetry_import_without_the_setting() -> None:
    """Importing the app's logging setup and configuring it locally loads no OpenTelemetry."""
    code = (
        "import logging, sys\n"
        "from shared.observability import configure_logging\n"
        "configure_logging({})\n"
        "logging.getLogger('x').warning('hi')\n"
        "loaded = [m for m in sys.modules if m.startswith(('opentelemetry', 'azure.monitor'))]\n"
        "print(','.join(loaded))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60,
                            env={"PATH": "/usr/bin:/bin"})
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == ""


def test_function_app_configures_logging() -> None:
    source = (ROOT / "function_app.py").read_text()
    assert "configure_logging()" in source


def test_stream_output_of_a_bare_process_carries_the_id() -> None:
    """A process with no handlers (a script) gets one that shows levels, names and ids."""
    code = (
        "import logging\n"
        "from shared.observability import configure_logging, correlated\n"
        "configure_logging({})\n"
        "with correlated('abc'):\n"
        "    logging.getLogger('n').warning('client_secret=s3cr3t')\n"
    )
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert "s3cr3t" not in result.stderr
    assert "client_secret=[REDACTED] [correlation_id=abc]" in result.stderr


@pytest.mark.parametrize("quote", ['"', "'"])
def test_quoted_secrets_with_escapes_are_redacted_in_either_quote(quote: str) -> None:
    """The linear forms of the quoted-value patterns (issue 18 §2) still read escapes."""
    q = quote
    text = f"{q}refresh_token{q}: {q}rt\\{q}still-secret{q}, {q}Cookie{q}: {q}a\\{q}b{q}, {q}keep{q}: 1"
    redacted = redact(text)
    assert "still-secret" not in redacted and "a\\" not in redacted
    assert f"{q}refresh_token{q}: {q}{REDACTED}{q}" in redacted and f"{q}keep{q}: 1" in redacted


def test_a_hostile_message_is_logged_capped(capture: Capture) -> None:
    """A run of backslashes, once catastrophic (2 s at 34, days at 60), costs nothing and is cut."""
    hostile = '"token": "' + "\\" * 50_000
    logging.getLogger("shared.anything").warning("sign-in refused: %s", hostile)
    [line] = capture.lines
    assert len(line) < MAX_LOGGED_MESSAGE + 100 and line.endswith("more characters]")


def test_untrusted_values_are_escaped_and_capped() -> None:
    assert untrusted("abc") == "abc"
    assert untrusted("forged\nERROR admin signed in") == "forged\\nERROR admin signed in"
    assert untrusted("x" * 1000, 10) == "xxxxxxxxxx… [990 more characters]"
    assert untrusted(42) == "42"


# --- issue 22: one trace per invocation ----------------------------------------------------


class _Trace:
    def __init__(self, trace_parent: str, trace_state: str = "") -> None:
        self.trace_parent, self.trace_state, self.attributes = trace_parent, trace_state, {}


class _Context:
    """What the Python worker passes as ``context``: an invocation id and the host's trace context."""

    def __init__(self, trace_parent: str, invocation_id: str = "inv-1", trace_state: str = "") -> None:
        self.invocation_id = invocation_id
        self.trace_context = _Trace(trace_parent, trace_state)


TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
PARENT = f"00-{TRACE_ID}-00f067aa0ba902b7-01"


def _one_invocation_app(log_calls: list[str]) -> object:
    """A Function App with one HTTP trigger written as ours are (thin: serve(req, handler, context)),
    whose handler logs from several loggers and from a helper."""
    import azure.functions as func

    from functions.http_edge import serve
    from shared.http_messages import WebResponse

    helper_log = logging.getLogger("shared.crm.session")

    def crm_call() -> None:
        helper_log.info("CRM call: GET /crm/v8/Events")

    def handler(request: object) -> WebResponse:
        logging.getLogger("shared.sync.service").info("webhook: change for a member")
        crm_call()
        logging.getLogger("functions.webhooks").warning("done")
        log_calls.append("handled")
        return WebResponse(status=202, body="", content_type="text/plain")

    app = func.FunctionApp(http_auth_level=func.AuthLevel.ANONYMOUS)

    @app.route(route="hook", methods=["POST"])
    def hook(req: func.HttpRequest, context: func.Context) -> func.HttpResponse:
        return serve(req, handler, context)

    return app


def test_log_records_of_one_invocation_share_its_trace_id(capture: Capture) -> None:
    """Through the local host's invoker, which hands the function a Context with the host's trace
    context as the real worker does: every record the invocation logs carries that invocation's
    trace id and id; the next invocation has its own."""
    import azure.functions as func

    from local.indexer import index_functions
    from local.invocation import Invoker

    calls: list[str] = []
    (spec,) = index_functions(_one_invocation_app(calls))  # type: ignore[arg-type]
    invoker = Invoker(spec, app_directory=str(ROOT))
    seen: list[tuple[str, str]] = []
    for _ in range(2):
        before = len(capture.records)
        request = func.HttpRequest("POST", "http://127.0.0.1/api/hook", body=b"", headers={})
        assert invoker.invoke(request, "test").status_code == 202
        ours = [r for r in capture.records[before:] if not r.name.startswith("Host")]
        assert {r.name for r in ours} == {"shared.sync.service", "shared.crm.session", "functions.webhooks"}
        trace_ids = {r.trace_id for r in ours}  # type: ignore[attr-defined]
        invocation_ids = {r.invocation_id for r in ours}  # type: ignore[attr-defined]
        assert len(trace_ids) == 1 and len(invocation_ids) == 1, (trace_ids, invocation_ids)
        (trace_id,), (invocation_id,) = trace_ids, invocation_ids
        assert len(trace_id) == 32 and int(trace_id, 16) and invocation_id != "-"
        # the host's own "Executed ..." line names the same invocation
        executed = [r.getMessage() for r in capture.records[before:] if r.getMessage().startswith("Executed")]
        assert executed and f"Id={invocation_id}" in executed[0]
        seen.append((trace_id, invocation_id))
    assert seen[0][0] != seen[1][0] and seen[0][1] != seen[1][1]
    # outside an invocation, no trace
    logging.getLogger("after").info("idle")
    assert capture.records[-1].trace_id == "-"  # type: ignore[attr-defined]


def test_the_trace_is_the_context_s_and_concurrent_invocations_keep_their_own(capture: Capture) -> None:
    contexts = [_Context(f"00-{i:032x}-{i:016x}-01", invocation_id=f"inv-{i}") for i in range(1, 9)]
    barrier = threading.Barrier(len(contexts))

    def run(context: _Context) -> None:
        with observability.invocation(context):
            barrier.wait()
            logging.getLogger("t").info("in %s", context.invocation_id)

    threads = [threading.Thread(target=run, args=(c,)) for c in contexts]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    got = {r.getMessage().removeprefix("in "): (r.trace_id, r.span_id) for r in capture.records}  # type: ignore[attr-defined]
    assert got == {f"inv-{i}": (f"{i:032x}", f"{i:016x}") for i in range(1, 9)}


@pytest.mark.parametrize("bad", ["", "garbage", f"00-{'0' * 32}-00f067aa0ba902b7-01", f"00-{TRACE_ID}-{'0' * 16}-01",
                                 f"ff-{TRACE_ID}-00f067aa0ba902b7-01", f"00-{TRACE_ID}-00f067aa0ba902b7-01\nforged", None])
def test_a_missing_or_invalid_trace_parent_is_not_carried(capture: Capture, bad: str | None) -> None:
    with observability.invocation(_Context(bad, invocation_id="inv-x")):  # type: ignore[arg-type]
        logging.getLogger("t").info("hello")
    record = capture.records[-1]
    assert record.trace_id == "-" and record.invocation_id == "inv-x"  # type: ignore[attr-defined]


def test_no_context_changes_nothing(capture: Capture) -> None:
    with observability.invocation(None) as trace:
        logging.getLogger("t").info("direct call")
    assert trace is None and capture.records[-1].trace_id == "-"  # type: ignore[attr-defined]


def test_with_telemetry_on_the_host_s_trace_is_opentelemetry_s_current_one() -> None:
    """In Azure (OpenTelemetry loaded by configure_azure_monitor), spans started inside an
    invocation, such as the requests instrumentation's Graph and CRM calls, are children of the
    host's invocation: one operation_Id in Application Insights."""
    code = (
        "from opentelemetry import trace\n"
        "from opentelemetry.sdk.trace import TracerProvider\n"
        "from shared import observability\n"
        "trace.set_tracer_provider(TracerProvider())\n"
        "class T: trace_parent = '" + PARENT + "'; trace_state = 'az=1'\n"
        "class C: invocation_id = 'i'; trace_context = T()\n"
        "with observability.invocation(C()):\n"
        "    with trace.get_tracer('t').start_as_current_span('GET zohoapis') as span:\n"
        "        ctx = span.get_span_context()\n"
        "        print(format(ctx.trace_id, '032x'), format(span.parent.span_id, '016x'), ctx.trace_state.get('az'))\n"
        "print(trace.get_current_span().get_span_context().is_valid)\n"
    )
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == [TRACE_ID, "00f067aa0ba902b7", "1", "False"]


def test_the_local_host_passes_a_trace_context_like_the_real_host() -> None:
    from local.invocation import InvocationContext

    first, second = InvocationContext("a", "fn", "."), InvocationContext("b", "fn", ".")
    for context in (first, second):
        assert observability.valid_trace_parent(context.trace_context.trace_parent) == context.trace_context.trace_parent
        assert isinstance(context.trace_context.trace_state, str)
    assert first.trace_context.trace_parent.split("-")[1] != second.trace_context.trace_parent.split("-")[1]


def test_every_trigger_of_the_app_joins_the_host_s_invocation() -> None:
    """Each function of function_app.py takes ``context`` and hands it to serve() or invocation()."""
    import ast

    checked = 0
    for path in sorted((ROOT / "functions").glob("*.py")):
        tree = ast.parse(path.read_text())
        for node in tree.body:
            if not isinstance(node, ast.FunctionDef) or not any(
                isinstance(d, ast.Call) and isinstance(d.func, ast.Attribute) and d.func.attr.endswith(("route", "trigger"))
                for d in node.decorator_list
            ):
                continue
            params = [a.arg for a in node.args.args]
            assert "context" in params, f"{path.name}:{node.name} takes no context"
            annotation = next(a.annotation for a in node.args.args if a.arg == "context")
            assert ast.unparse(annotation) == "func.Context", f"{path.name}:{node.name}"  # what the worker requires
            passes = [c for c in ast.walk(node) if isinstance(c, ast.Call) and isinstance(c.func, ast.Name)
                      and c.func.id in ("serve", "invocation") and any(
                          isinstance(a, ast.Name) and a.id == "context" for a in c.args)]
            assert passes, f"{path.name}:{node.name} does not pass its context on"
            checked += 1
    assert checked >= 46  # every trigger of the app (38 HTTP, 5 queue, 3 timer as of issue 21)


def test_a_step_queued_by_a_webhook_continues_its_operation(capture: Capture, monkeypatch: pytest.MonkeyPatch) -> None:
    """Issue 22: storage queues carry no trace context, so the job carries the queuing
    invocation's ``traceparent``: the step's records (and its CRM and Graph calls) are in the
    webhook's operation; a step queued outside any invocation, or with a broken value, keeps
    the host's own trace."""
    import types

    import azure.functions as func

    from functions import sync_workers
    from shared.sync.jobs import SyncJob
    from shared.sync.profiles import SyncKind

    webhook = _Context(PARENT, invocation_id="webhook-1")
    with observability.invocation(webhook):
        queued = SyncJob(member="ms|t|o", kind=SyncKind.CALENDAR, step="delta")
    assert queued.traceparent == PARENT
    assert SyncJob(member="ms|t|o", kind=SyncKind.CALENDAR, step="delta").traceparent is None  # outside any invocation
    assert SyncJob(member="ms|t|o", kind=SyncKind.CALENDAR, step="delta", traceparent="00-zz-broken").traceparent is None

    ran: list[tuple[str, str]] = []

    def run(job: SyncJob, delivery: str) -> None:
        logging.getLogger("shared.sync.runner").info("step of %s", job.member)
        ran.append((capture.records[-1].trace_id, capture.records[-1].invocation_id))  # type: ignore[attr-defined]

    monkeypatch.setattr(sync_workers, "get_services", lambda: types.SimpleNamespace(sync=types.SimpleNamespace(run=run)))
    step_trace = f"00-{'a' * 32}-{'b' * 16}-01"
    for job, expected in ((queued, TRACE_ID), (queued.model_copy(update={"traceparent": None}), "a" * 32)):
        message = func.QueueMessage(id="m-1", body=job.model_dump_json().encode())  # as the host hands it over (decoded)
        sync_workers.sync_step(message, _Context(step_trace, invocation_id="step-1"))  # type: ignore[arg-type]
        assert ran[-1] == (expected, "step-1")


def test_the_azure_sdks_per_request_logging_stays_out_of_the_logs_but_its_warnings_do_not(capture: Capture) -> None:
    """A real Table request through the SDK's pipeline logs its URL and headers at INFO: with
    the worker forwarding INFO to Application Insights, that is a multi-line record per request."""
    from azure.core.pipeline.policies import HttpLoggingPolicy

    http_log = HttpLoggingPolicy().logger  # the logger the policy writes to
    http_log.info("Request URL: 'https://account.table.core.windows.net/members'")
    http_log.warning("the SDK's own warning")
    logging.getLogger("shared.sync").info("ours")
    assert [r.getMessage() for r in capture.records] == ["the SDK's own warning", "ours"]
