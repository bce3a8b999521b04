"""How long to wait before sending a refused or failed request again: the server's
``Retry-After`` when it gave one, else exponential back-off with jitter. One formula for
every vendor's send path (Graph's ``GraphMailbox``, the CRM's ``CrmSession``, and
``transport.retry`` for Zoho Accounts and the provisioning API), so that retries of many
workers throttled together never come back together, and one reading of ``Retry-After``."""

from __future__ import annotations

import email.utils
import random
from collections.abc import Mapping
from datetime import UTC, datetime

# Its own generator: jitter neither reads nor moves the process's global random state (a test's
# seeded draws, hypothesis's, stay its own).
_JITTER = random.Random()


def backoff_seconds(attempt: int, *, base: float, cap: float) -> float:
    """The wait after failed attempt ``attempt`` (1 for the first): base, 2 x base, 4 x base ...
    up to ``cap``, each drawn between half and all of it (full jitter would allow 0: a
    retry at once; half keeps the spacing while spreading the herd)."""
    ceiling = min(base * 2 ** max(0, attempt - 1), cap)
    return ceiling * _JITTER.uniform(0.5, 1.0)


def wait_seconds(headers: Mapping[str, str] | None, attempt: int, *, base: float, cap: float, longest: float) -> float:
    """The wait before attempt ``attempt + 1``: the answer's ``Retry-After`` (at most
    ``longest``), else ``backoff_seconds``."""
    given = retry_after_seconds(headers)
    return min(given, longest) if given is not None else backoff_seconds(attempt, base=base, cap=cap)


def retry_after_seconds(headers: Mapping[str, str] | None) -> float | None:
    """``Retry-After`` in seconds (delta seconds, fractional allowed, or an HTTP date); None if
    absent or unreadable."""
    if not headers:
        return None
    value = next((v for k, v in headers.items() if k.lower() == "retry-after"), None)
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        moment = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return max(0.0, (moment - datetime.now(UTC)).total_seconds())
