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
