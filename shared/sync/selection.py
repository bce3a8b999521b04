"""Which CRM items the initial sync sends (R3.5, R4.6), decided without holding them all:
a first pass reads only each item's ordering key, keeps the ``cap`` best, and remembers
the worst key kept (the threshold); the second pass sends the items whose key is at or
below it. Keys are JSON lists, so the threshold is stored on the profile."""

from __future__ import annotations

import heapq
from collections.abc import Iterable

Key = list[object]


def threshold(keys: Iterable[Key], cap: int) -> tuple[Key | None, int]:
    """The largest of the ``cap`` smallest keys, and how many keys that selects."""
    smallest = heapq.nsmallest(cap, (tuple(k) for k in keys))
    return (list(smallest[-1]) if smallest else None), len(smallest)


def selected(key: Key, limit: Key | None) -> bool:
    return limit is not None and tuple(key) <= tuple(limit)
