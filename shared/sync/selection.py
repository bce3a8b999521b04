"""Which CRM items the initial sync sends, and in which order (R3.5, R4.6): the ``cap``
smallest ordering keys (``KindRules.initial_key``), smallest first. Pure: the selection pass
(``initial_sync``) reads the keys, stores the ids this returns, and sends them in that order."""

from __future__ import annotations

import heapq
from collections.abc import Iterable
from typing import Any


def best(candidates: Iterable[tuple[list[Any], str]], cap: int) -> list[str]:
    """The ids of the ``cap`` smallest keys, smallest first (equal keys: by id)."""
    return [item_id for _, item_id in heapq.nsmallest(max(cap, 0), ((tuple(key), item_id) for key, item_id in candidates))]
