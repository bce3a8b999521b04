"""Structured logs: secrets redacted from every record, a correlation id on every record,
and, in Azure, export to Application Insights through OpenTelemetry.

``configure_logging()`` is called once from ``function_app.py``. It

- wraps the log record factory, so every record any logger makes gets ``correlation_id``
  (the id of the request or queue message being handled, ``-`` outside one) and has its
  message, arguments and exception text redacted before any handler sees it;
- puts ``RedactingFilter`` and ``CorrelatedFormatter`` on the root logger's handlers (the
  Functions worker's, or the local host's), for records made some other way
  (``logging.makeLogRecord``) and so the id shows in plain-text logs too;
- when ``APPLICATIONINSIGHTS_CONNECTION_STRING`` is set, calls
  ``azure.monitor.opentelemetry.configure_azure_monitor()`` (imported only then), with the
  user-assigned identity when ``APPLICATIONINSIGHTS_AUTHENTICATION_STRING`` asks for Entra
  ID auth. Records reach it already redacted; ``correlation_id`` becomes a custom dimension.

``with correlated(id):`` scopes the id (a ``ContextVar``, so concurrent invocations in the
worker's threads or event loop each keep their own).

``with invocation(context):`` (each trigger in ``functions/``, from the ``azure.functions.Context``
the host passes) scopes the host's invocation: every record gets ``invocation_id``, ``trace_id``
and ``span_id`` (from ``context.trace_context.trace_parent``, W3C ``traceparent``), and the same
trace context is made OpenTelemetry's current one, so what Azure Monitor exports inside (the
records, the outbound Graph and CRM ``requests`` spans) belongs to the host's operation for
that invocation: one ``operation_Id`` from the trigger to the last CRM call.
"""

from __future__ import annotations

import logging
import os
import re
import sys
import threading
import uuid
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

REDACTED = "[REDACTED]"
NO_CORRELATION = "-"

_correlation_id: ContextVar[str | None] = ContextVar("correlation_id", default=None)

# A correlation id we accept from a caller: short, and nothing that could forge log lines
# or carry markup.
_SANE_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:|\-]{0,127}$")


def current_correlation_id() -> str | None:
    return _correlation_id.get()


def new_correlation_id(prefix: str = "") -> str:
    """A fresh id; with a prefix, ``prefix:`` and a short random part (enough to tell
    apart the deliveries of one message, short enough to read in a log line)."""
    return f"{prefix}:{uuid.uuid4().hex[:8]}" if prefix else uuid.uuid4().hex


def sane_correlation_id(candidate: str | None) -> str | None:
    """``candidate`` when it is safe to echo and log as is, else None."""
    if candidate and _SANE_ID.fullmatch(candidate):
        return candidate
    return None


# ---------------------------------------------------------------------------------------
# The host's invocation (trace context)

# W3C Trace Context ``traceparent``: version-traceid-parentid-flags, lower-case hex; an all-zero
# trace or span id is invalid.
_TRACEPARENT = re.compile(r"^([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})$")
_SANE_TRACESTATE = re.compile(r"^[\x20-\x7e]{0,512}$")


@dataclass(frozen=True)
class InvocationTrace:
    """The host's invocation as the product's log records carry it."""

    invocation_id: str
    trace_parent: str | None  # None when the host gave none or an invalid one
    trace_state: str = ""

    @property
    def trace_id(self) -> str | None:
        return self.trace_parent.split("-")[1] if self.trace_parent else None

    @property
    def span_id(self) -> str | None:
        return self.trace_parent.split("-")[2] if self.trace_parent else None


_invocation: ContextVar[InvocationTrace | None] = ContextVar("invocation", default=None)


def current_invocation() -> InvocationTrace | None:
    return _invocation.get()


def valid_trace_parent(candidate: object) -> str | None:
    """``candidate`` if it is a W3C ``traceparent`` (trace and span ids not all zero), else None."""
    if not isinstance(candidate, str):
        return None
    match = _TRACEPARENT.fullmatch(candidate.strip().lower())
    if match is None or match.group(1) == "ff" or set(match.group(2)) == {"0"} or set(match.group(3)) == {"0"}:
        return None
    return match.group(0)


def invocation_trace(context: Any) -> InvocationTrace | None:
    """The trace of an ``azure.functions.Context`` (or anything with ``invocation_id`` and
    ``trace_context.trace_parent`` / ``trace_state``); None for None."""
    if context is None:
        return None
    trace_context = getattr(context, "trace_context", None)
    state = getattr(trace_context, "trace_state", "") or ""
    return InvocationTrace(
        invocation_id=str(getattr(context, "invocation_id", "") or ""),
        trace_parent=valid_trace_parent(getattr(trace_context, "trace_parent", None)),
        trace_state=state if isinstance(state, str) and _SANE_TRACESTATE.fullmatch(state) else "",
    )


def _attach_opentelemetry(trace: InvocationTrace) -> Callable[[], None]:
    """Make the host's trace context OpenTelemetry's current one; returns how to undo it."""
    # Only where telemetry is on (configure_azure_monitor, or the worker's own, loaded it):
    # locally nothing exports spans, and OpenTelemetry is not even imported (a test says so).
    if not trace.trace_parent or "opentelemetry.context" not in sys.modules:
        return lambda: None
    from opentelemetry import context as otel_context
    from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

    carrier = {"traceparent": trace.trace_parent}
    if trace.trace_state:
        carrier["tracestate"] = trace.trace_state
    token = otel_context.attach(TraceContextTextMapPropagator().extract(carrier))
    return lambda: otel_context.detach(token)


def current_trace_parent() -> str | None:
    """The running invocation's ``traceparent``, for work it queues to carry (a sync step
    queued by a webhook continues the webhook's operation)."""
    trace = _invocation.get()
    return trace.trace_parent if trace else None


@contextmanager
def invocation(context: Any, *, continues: str | None = None) -> Iterator[InvocationTrace | None]:
    """Every record logged inside carries the host's invocation id and trace context, and
    OpenTelemetry's current context is the host's (see the module's docstring). With no
    context (a test calling a function directly), nothing changes.

    ``continues``: the ``traceparent`` a queue message carries from the invocation that
    queued it. Storage queues carry no trace context of their own, so the host starts a new
    trace for each message; the invocation then continues the queuing one's instead (its
    records and outbound calls are children of it), and the webhook, its step and the step's
    CRM and Graph calls are one operation in Application Insights."""
    trace = invocation_trace(context)
    if trace is None:
        yield None
        return
    if parent := valid_trace_parent(continues):
        trace = InvocationTrace(invocation_id=trace.invocation_id, trace_parent=parent)
    token = _invocation.set(trace)
    undo = _attach_opentelemetry(trace)
    try:
        yield trace
    finally:
        undo()
        _invocation.reset(token)


@contextmanager
def correlated(correlation_id: str) -> Iterator[str]:
    """Every record logged inside carries ``correlation_id``; the previous id comes back after."""
    token = _correlation_id.set(correlation_id)
    try:
        yield correlation_id
    finally:
        _correlation_id.reset(token)


# ---------------------------------------------------------------------------------------
# Redaction

# Names whose values are secrets wherever they appear as name=value or "name": "value".
_SECRET_NAMES = (
    "access_token", "refresh_token", "id_token", "client_secret", "client_assertion",
    "code_verifier", "password", "passwd", "session_secret", "token_encryption_key",
    "clientState", "client_state", "AccountKey", "SharedAccessSignature", "sig",
)
_NAMES = "|".join(re.escape(n) for n in _SECRET_NAMES) + "|token"
_HEADERS = "authorization|proxy-authorization|cookie|set-cookie|x-functions-key"

# Every pattern here runs on untrusted text (a webhook's ids, an OAuth error_description, a
# Graph error body), on every log record, holding the GIL: each must take linear time. So
# no two alternatives of a repeated group may match the same character (a quoted value is
# ``(?:\\.|[^\\"\n])*``: an escape, or one character that is neither a backslash nor the
# quote), and a pattern that scans a run of token characters only starts where such a run
# starts (a lookbehind), so no run is scanned once per position. tests/unit/test_regex_safety.py
# times every regex of the product on 10,000-character hostile texts.
# google-re2 would make linear time the engine's promise rather than ours, but it is one
# more native wheel to build and trust on the Functions worker for a dozen patterns that
# are linear by construction, which that test checks on every run.
_QUOTED_BODY = {quote: rf"(?:\\.|[^\\{quote}\n])*" for quote in "\"'"}
_PATTERNS: tuple[tuple[re.Pattern[str], str], ...] = (
    # Authorization, cookie and function-key headers: "Name: value" lines, or header dicts.
    *(
        (re.compile(rf"""(?i)(["']?\b(?:{_HEADERS})\b["']?\s*[:=]\s*)({quote}){_QUOTED_BODY[quote]}{quote}"""),
         rf"\1\2{REDACTED}\2")
        for quote in "\"'"
    ),
    (re.compile(rf"""(?i)(\b(?:{_HEADERS})\b\s*[:=]\s*+)(?!["'\[])[^\r\n,}}]+"""), rf"\1{REDACTED}"),
    # Bearer and Zoho tokens anywhere (an Authorization value that slipped into a message);
    # at least 8 characters, so prose such as "bearer token" stays readable.
    (re.compile(r"(?i)\b(bearer|zoho-oauthtoken)\s+[A-Za-z0-9\-._~+/]{8,}=*"), rf"\1 {REDACTED}"),
    # JSON or Python-repr bodies: "access_token": "..." / 'password': '...'.
    *(
        (re.compile(rf"""(["'])({_NAMES})\1(\s*:\s*)({quote}){_QUOTED_BODY[quote]}{quote}""", re.IGNORECASE),
         rf"\1\2\1\3\4{REDACTED}\4")
        for quote in "\"'"
    ),
    # Query strings and form bodies: access_token=...&, password=... (not JSON).
    (re.compile(rf"(?i)(?<![A-Za-z0-9_])({_NAMES})=([^&\s\"'<>,;]+)"), rf"\1={REDACTED}"),
    # ``code`` only as a query/form parameter (an OAuth code or a Functions key): in prose or
    # JSON it is usually an error code worth keeping (Graph's "code": "ErrorItemNotFound").
    (re.compile(r"(?i)(^|[?&])(code)=([^&\s\"'<>,;]+)"), rf"\1\2={REDACTED}"),
    # Our single-use invitation and approval links (shared/identity/signed_links.py): the
    # token in the path is the whole secret.
    (re.compile(r"(/(?:invitations|join-requests)/)([A-Za-z0-9_\-]{16,})"), rf"\1{REDACTED}"),
    # JWTs (id tokens, Graph access tokens) and Fernet tokens (our encrypted secrets) anywhere
    # a run of token characters starts (not after a letter, digit, "_" or "-").
    (re.compile(r"(?<![A-Za-z0-9_\-])eyJ[A-Za-z0-9_\-]{5,}\.[A-Za-z0-9_\-]{5,}\.[A-Za-z0-9_\-]*"), REDACTED),
    (re.compile(r"(?<![A-Za-z0-9_\-])gAAAAA[A-Za-z0-9_\-]{40,}=*"), REDACTED),
)

# What one record may log: enough for any message of ours, a traceback's worth of context,
# never a whole hostile body (a 1 MB webhook, a 2 KB error_description) per line.
MAX_LOGGED_MESSAGE = 8_000
MAX_UNTRUSTED_VALUE = 120


def redact(text: str) -> str:
    """``text`` with every secret we can recognise replaced by ``[REDACTED]``."""
    for pattern, replacement in _PATTERNS:
        text = pattern.sub(replacement, text)
    return text


def _capped(text: str, limit: int) -> str:
    if len(text) <= limit:
        return text
    return f"{text[:limit]}… [{len(text) - limit:,} more characters]"


def untrusted(value: object, limit: int = MAX_UNTRUSTED_VALUE) -> str:
    """A value from outside (an id, a query parameter) as it may be logged: control
    characters escaped (no forged log lines), at most ``limit`` characters of it."""
    text = value if isinstance(value, str) else str(value)
    shown = repr(text[:limit])[1:-1]
    return shown if len(text) <= limit else f"{shown}… [{len(text) - limit:,} more characters]"


def _redact_record(record: logging.LogRecord) -> None:
    """Replace the record's message by its redacted, already-formatted text. Idempotent, so
    the factory and the handlers' filter may both run it (no marker attribute: exporters
    would ship it as a custom dimension)."""
    try:
        message = record.getMessage()
    except Exception:  # bad %-args: leave it for logging's own error report
        return
    record.msg = _capped(redact(message), MAX_LOGGED_MESSAGE)
    record.args = None
    if record.exc_info and not record.exc_text:
        # Formatters reuse exc_text, so the traceback is rendered once, redacted.
        record.exc_text = logging.Formatter().formatException(record.exc_info)
    if record.exc_text:
        record.exc_text = redact(record.exc_text)
    if record.stack_info:
        record.stack_info = redact(record.stack_info)


def _stamp(record: logging.LogRecord) -> None:
    """The correlation id and the host's invocation on a record (unless it has them)."""
    if not hasattr(record, "correlation_id"):
        record.correlation_id = current_correlation_id() or NO_CORRELATION
    if not hasattr(record, "trace_id"):
        trace = _invocation.get()
        record.invocation_id = (trace.invocation_id if trace else None) or NO_CORRELATION
        record.trace_id = (trace.trace_id if trace else None) or NO_CORRELATION
        record.span_id = (trace.span_id if trace else None) or NO_CORRELATION


class RedactingFilter(logging.Filter):
    """Redacts secrets from a record and stamps it with the correlation id and the host's
    invocation (id, trace id, span id); never drops it."""

    def filter(self, record: logging.LogRecord) -> bool:
        _redact_record(record)
        _stamp(record)
        return True


class CorrelatedFormatter(logging.Formatter):
    """Wraps a handler's formatter and appends ``[correlation_id=...]`` inside a request or
    message, so the id is in the text the Functions host forwards and the local host prints."""

    def __init__(self, inner: logging.Formatter | None = None) -> None:
        super().__init__()
        self.inner = inner or logging.Formatter()

    def format(self, record: logging.LogRecord) -> str:
        text = self.inner.format(record)
        correlation_id = getattr(record, "correlation_id", NO_CORRELATION)
        return text if correlation_id == NO_CORRELATION else f"{text} [correlation_id={correlation_id}]"


# ---------------------------------------------------------------------------------------
# Installation

_lock = threading.Lock()
_configured = False
_FILTER = RedactingFilter()


def _correlated_factory(base: Callable[..., logging.LogRecord]) -> Callable[..., logging.LogRecord]:
    def factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
        record = base(*args, **kwargs)
        record.correlation_id = current_correlation_id() or NO_CORRELATION
        _stamp(record)
        if record.msg is not None:  # makeLogRecord fills msg in afterwards: the filter covers it
            _redact_record(record)
        return record

    factory.wrapped_factory = base  # type: ignore[attr-defined]
    return factory


def _install_on_root_handlers() -> None:
    for handler in logging.getLogger().handlers:
        if _FILTER not in handler.filters:
            handler.addFilter(_FILTER)
        if not isinstance(handler.formatter, CorrelatedFormatter):
            handler.setFormatter(CorrelatedFormatter(handler.formatter))


def _truthy(value: str | None) -> bool:
    return (value or "").strip().lower() in {"1", "true", "yes"}


def _azure_monitor_credential(authentication: str | None) -> Any:
    """The managed identity named by ``ClientId=...;Authorization=AAD`` (the same value the
    Functions host reads), or None for connection-string (instrumentation key) auth."""
    parts = dict(p.split("=", 1) for p in (authentication or "").split(";") if "=" in p)
    if parts.get("Authorization", "").upper() != "AAD":
        return None
    from azure.identity import ManagedIdentityCredential

    client_id = parts.get("ClientId")
    return ManagedIdentityCredential(client_id=client_id) if client_id else ManagedIdentityCredential()


def _configure_azure_monitor(environ: Mapping[str, str]) -> bool:
    # The worker configures the distro itself when this is on; a second call would export twice.
    if _truthy(environ.get("PYTHON_APPLICATIONINSIGHTS_ENABLE_TELEMETRY")):
        return False
    from azure.monitor.opentelemetry import configure_azure_monitor  # heavy: only in Azure

    credential = _azure_monitor_credential(environ.get("APPLICATIONINSIGHTS_AUTHENTICATION_STRING"))
    options: dict[str, Any] = {"connection_string": environ["APPLICATIONINSIGHTS_CONNECTION_STRING"]}
    if credential is not None:
        options["credential"] = credential
    configure_azure_monitor(**options)
    return True


# The Azure SDK logs every request it sends (URL, method, each header) at INFO, and the Functions
# worker forwards INFO to Application Insights: thousands of multi-line records a minute from the
# Table, Queue and Graph-token traffic of the sync, each formatted on the worker's CPU and billed
# by the gigabyte when ingested. Their failures are raised to us and logged where they matter.
QUIET_LOGGERS = ("azure.core.pipeline.policies.http_logging_policy", "azure.monitor.opentelemetry.exporter",
                 "azure.identity")


def configure_logging(environ: Mapping[str, str] | None = None) -> None:
    """Install redaction and correlation ids (and Azure Monitor when configured). Idempotent."""
    global _configured
    environ = os.environ if environ is None else environ
    with _lock:
        if _configured:
            return
        current = logging.getLogRecordFactory()
        if not hasattr(current, "wrapped_factory"):
            logging.setLogRecordFactory(_correlated_factory(current))
        root = logging.getLogger()
        for noisy in QUIET_LOGGERS:
            logging.getLogger(noisy).setLevel(logging.WARNING)
        if not root.handlers:  # a bare process (a script): somewhere for records to go
            handler = logging.StreamHandler()
            handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s %(message)s"))
            root.addHandler(handler)
        if environ.get("APPLICATIONINSIGHTS_CONNECTION_STRING"):
            try:
                _configure_azure_monitor(environ)
            except Exception:  # telemetry must never stop the app from starting
                logging.getLogger(__name__).exception("Azure Monitor (OpenTelemetry) could not be configured")
        _install_on_root_handlers()  # after the exporter, so its handler gets the filter too
        _configured = True


def _reset_for_tests() -> None:
    """Undo ``configure_logging`` (tests only)."""
    global _configured
    with _lock:
        current = logging.getLogRecordFactory()
        while hasattr(current, "wrapped_factory"):
            current = current.wrapped_factory
        logging.setLogRecordFactory(current)
        for handler in logging.getLogger().handlers:
            handler.removeFilter(_FILTER)
            if isinstance(handler.formatter, CorrelatedFormatter):
                handler.setFormatter(handler.formatter.inner)
        _configured = False
