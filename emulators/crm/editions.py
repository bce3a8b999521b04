"""CRM editions and the API limits that follow from them (zoho-notes section 9)."""

from __future__ import annotations

EDITIONS = ("free", "standard", "professional", "enterprise", "ultimate")

# Simultaneous active calls per org per app (Kaizen #203).
CONCURRENCY = {"free": 5, "standard": 10, "professional": 15, "enterprise": 20, "ultimate": 25}
# Heavy calls (writes of more than 10 records) share a smaller pool.
SUB_CONCURRENCY = 10

# Credits per rolling 24 hours: (base, per user, maximum or None for unlimited).
CREDITS = {
    "free": (5_000, 0, 5_000),
    "standard": (50_000, 250, 100_000),
    "professional": (50_000, 500, 3_000_000),
    "enterprise": (50_000, 1_000, 5_000_000),
    "ultimate": (50_000, 2_000, None),
}

# User licences bought, when the seed does not say.
DEFAULT_LICENSES = {"free": 3, "standard": 10, "professional": 10, "enterprise": 25, "ultimate": 25}


def daily_credits(edition: str, users: int) -> int | None:
    base, per_user, maximum = CREDITS[edition]
    allowed = base + users * per_user
    return allowed if maximum is None else min(allowed, maximum)


def is_paid(edition: str) -> bool:
    return edition != "free"
