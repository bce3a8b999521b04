"""Retries for outbound HTTP: throttling (429 with Retry-After) and transient failures
(503, 504, connection errors), bounded in attempts and in total waiting.

Only requests that are safe to repeat are retried: GET, PUT, DELETE, PATCH with If-Match,
or a POST the caller marks idempotent (one carrying an idempotency key such as Graph's
``transactionId``)."""

from __future__ import annotations

import time
from typing import Any

import requests
from tenacity import RetryCallState, Retrying, retry_if_exception_type, retry_if_result, stop_after_attempt

from shared.transport.backoff import wait_seconds

RETRIED_STATUSES = {429, 502, 503, 504}
MAX_WAIT_SECONDS = 30.0
SAFE_METHODS = {"GET", "HEAD", "PUT", "DELETE", "OPTIONS"}


def _wait(state: RetryCallState) -> float:
    """The server's Retry-After (seconds or HTTP date), else the common back-off; capped."""
    outcome = state.outcome
    headers = outcome.result().headers if outcome is not None and not outcome.failed else None
    return wait_seconds(headers, state.attempt_number, base=0.5, cap=MAX_WAIT_SECONDS, longest=MAX_WAIT_SECONDS)


def send(
    session: requests.Session,
    method: str,
    url: str,
    *,
    idempotent: bool | None = None,
    attempts: int = 5,
    timeout: float = 30,
    **kwargs: Any,
) -> requests.Response:
    """Send, retrying throttled or transient failures when the request is safe to repeat.

    Returns the last response (possibly still a 429/5xx once attempts are spent); raises
    requests' ConnectionError/Timeout only when every attempt failed that way.
    """
    method = method.upper()
    repeatable = idempotent if idempotent is not None else method in SAFE_METHODS
    if not repeatable:
        return session.request(method, url, timeout=timeout, **kwargs)
    retrying = Retrying(
        stop=stop_after_attempt(attempts),
        wait=_wait,
        retry=retry_if_exception_type((requests.ConnectionError, requests.Timeout))
        | retry_if_result(lambda r: r.status_code in RETRIED_STATUSES),
        retry_error_callback=lambda state: state.outcome.result() if state.outcome else None,  # type: ignore[union-attr]
        sleep=time.sleep,
        reraise=True,
    )
    return retrying(session.request, method, url, timeout=timeout, **kwargs)  # type: ignore[no-any-return]
