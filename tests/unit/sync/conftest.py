"""Hypothesis profiles for the sync core's property tests.

``dev`` (the default) keeps the suite well under 20 s on a shared 2-core machine; ``ci``
runs more examples with no deadline (CI machines stall). Choose with
``HYPOTHESIS_PROFILE=ci``.
"""

from __future__ import annotations

import os

from hypothesis import HealthCheck, settings

settings.register_profile("dev", max_examples=60, deadline=None)
settings.register_profile(
    "ci", max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow], print_blob=True
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "dev"))
