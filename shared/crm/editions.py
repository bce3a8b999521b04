"""The edition of each org, learnt from the CRM (``GET /org``), because it sets how many calls
the product may have in flight in that org (Zoho: free 5, standard 10, professional 15,
enterprise 20, ultimate 25 per org and app; zoho-notes section 9).

Until an org's edition is known, its calls keep the free edition's limit, which every org
allows. The answer is kept per process for an hour (an upgrade shows within the hour; a
downgrade meanwhile earns a few 429s, which the session backs off from) and bounded: it is
only an optimisation, never needed for a correct answer.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

# Zoho's concurrent calls per org and app, by edition; ``crmplus`` and ``zohoone`` bundle the
# ultimate and enterprise editions (zoho-notes section 9, the credits table).
EDITION_CONCURRENCY = {"free": 5, "standard": 10, "professional": 15, "enterprise": 20, "ultimate": 25}
BUNDLED = {"crmplus": "ultimate", "zohoone": "enterprise", "starter": "standard"}
# Heavy calls (writes of more than ten records, COQL, mass operations) have their own, smaller pool.
SUB_CONCURRENCY = 10
HEAVY_RECORDS = 10  # a write of more records than this is a heavy call

KNOWN_FOR_SECONDS = 3600.0
UNKNOWN_FOR_SECONDS = 60.0  # the CRM did not answer: ask again a minute later, not at every call
MAX_ORGS = 10_000


def edition_of(org_body: dict[str, Any]) -> str:
    """The edition whose limits apply, from a ``GET /org`` answer. A trial (``paid`` false,
    ``trial_type`` set) gets the free edition's: the CRM's limits during a trial are not
    documented, and the free edition's hold in every org."""
    orgs = org_body.get("org")
    org = orgs[0] if isinstance(orgs, list) and orgs and isinstance(orgs[0], dict) else {}
    license_details = org.get("license_details")
    details = license_details if isinstance(license_details, dict) else {}
    if details.get("paid") is not True:
        return "free"
    paid_type = str(details.get("paid_type") or "").lower()
    paid_type = BUNDLED.get(paid_type, paid_type)
    # A paid edition we do not know the name of gets the smallest paid edition's limit.
    return paid_type if paid_type in EDITION_CONCURRENCY and paid_type != "free" else "standard"


class OrgEditions:
    """Each org's edition as the CRM last said, per process (bounded, expiring)."""

    def __init__(self, clock: Callable[[], float] = time.monotonic, *, max_orgs: int = MAX_ORGS) -> None:
        self._clock = clock
        self._max = max_orgs
        self._known: OrderedDict[str, tuple[float, str | None]] = OrderedDict()
        self._lock = threading.Lock()

    def known(self, org_id: str) -> tuple[bool, str | None]:
        """(asked recently, the edition or None when the CRM did not say)."""
        with self._lock:
            entry = self._known.get(org_id)
            if entry is None or entry[0] <= self._clock():
                return False, None
            self._known.move_to_end(org_id)
            return True, entry[1]

    def learn(self, org_id: str, edition: str | None) -> None:
        ttl = KNOWN_FOR_SECONDS if edition else UNKNOWN_FOR_SECONDS
        with self._lock:
            self._known[org_id] = (self._clock() + ttl, edition)
            self._known.move_to_end(org_id)
            while len(self._known) > self._max:
                self._known.popitem(last=False)
