"""Which CRM records a member's links may name, as a Bloom filter (issue 20: a CRM deletion's
routing in a big org), and the filter's life (the rules are in ``holder_filters``). Pure: no I/O.

A deletion has no owner to read, so its routing asks the members whose links may name the
record. Asking every member costs a profile read and a filtered query of their links each
(2,000 Table reads per deletion in an org of 1,000 members); the org's filters, one row per
member read in one query, name the few to ask. A Bloom filter answers "surely not" or "maybe":
it is never wrong about an id it was given, and says "maybe" of about 1 % of the others at its
capacity (a "maybe" costs that member's two reads, as before).

Hand-written (60 lines over ``hashlib``) rather than a library's: its bytes are stored, so
their layout must not change with a dependency's release, and the PyPI ones keep their own
serialisation or hash with a process-seeded ``hash``.
"""

from __future__ import annotations

import enum
import functools
import hashlib
import math
from collections.abc import Collection, Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

FALSE_POSITIVES = 0.01  # at capacity
HASHES = 7  # the best count for 1 %: -log2(0.01) = 6.6
BITS_PER_ID = -math.log(FALSE_POSITIVES) / math.log(2) ** 2  # 9.6
MIN_CAPACITY = 256
# Table Storage allows 64 KiB a binary property: 480,000 bits, 1 % up to 50,000 ids (the
# contacts' cap is 10,000). Past that the filter says "maybe" more often, never "no" wrongly.
MAX_BYTES = 60_000


@dataclass(frozen=True)
class CrmIdFilter:
    bits: bytes

    @classmethod
    def sized_for(cls, capacity: int) -> CrmIdFilter:
        """An empty filter for about ``capacity`` ids at 1 % false positives."""
        wanted = math.ceil(max(capacity, MIN_CAPACITY) * BITS_PER_ID / 8)
        return cls(bytes(min(wanted, MAX_BYTES)))

    @classmethod
    def of(cls, ids: Iterable[str], *, capacity: int | None = None) -> CrmIdFilter:
        """A filter of ``ids``, sized for twice as many (room for the sync's next ones)."""
        chosen = list(ids)
        return cls.sized_for(capacity if capacity is not None else 2 * len(chosen)).with_ids(chosen)

    @property
    def size(self) -> int:
        return len(self.bits) * 8

    def _positions(self, crm_id: str) -> list[int]:
        first, second = _halves(crm_id)
        return [(first + n * second) % self.size for n in range(HASHES)]

    def may_hold(self, crm_id: str) -> bool:
        return all(self.bits[p >> 3] & (1 << (p & 7)) for p in self._positions(crm_id))

    def holds_all(self, ids: Iterable[str]) -> bool:
        return all(self.may_hold(i) for i in ids)

    def with_ids(self, ids: Iterable[str]) -> CrmIdFilter:
        bits = bytearray(self.bits)
        for crm_id in ids:
            for p in self._positions(crm_id):
                bits[p >> 3] |= 1 << (p & 7)
        return CrmIdFilter(bytes(bits))

    def union(self, other: CrmIdFilter) -> CrmIdFilter:
        if len(other.bits) != len(self.bits):
            raise ValueError("filters of different sizes cannot be joined")
        return CrmIdFilter((int.from_bytes(self.bits, "little") | int.from_bytes(other.bits, "little"))
                           .to_bytes(len(self.bits), "little"))

    @property
    def fill(self) -> float:
        """The share of bits set: 0.5 at capacity; past ``WORN_FILL`` it says "maybe" too often."""
        return int.from_bytes(self.bits, "little").bit_count() / self.size


@functools.lru_cache(maxsize=4096)
def _halves(crm_id: str) -> tuple[int, int]:
    """Double hashing (Kirsch and Mitzenmacher): two 64-bit halves of one digest make the k
    positions. Kept for the last ids asked: a deletion's routing asks a thousand filters of each."""
    digest = hashlib.blake2b(crm_id.encode(), digest_size=16).digest()
    return int.from_bytes(digest[:8], "little"), int.from_bytes(digest[8:], "little") | 1


# At 0.5 of the bits set the filter is at its capacity (1 %); at 0.7, 8 % (0.7 ** 7).
WORN_FILL = 0.7
# Longer than any execution that adds ids and then writes their links (host.json's 10 minutes).
SETTLE = timedelta(minutes=30)


@dataclass(frozen=True)
class HolderFilter:
    """A member's filter as stored: ``previous`` for a while after a rotation; ``trusted``: it
    holds every CRM id their current links name (``holder_filters``)."""

    current: CrmIdFilter
    previous: CrmIdFilter | None
    trusted: bool
    rotated_at: datetime

    def may_name_any(self, ids: Collection[str]) -> bool:
        """Whether the member's links may name one of ``ids`` (True: ask them)."""
        if not self.trusted:
            return True
        filters = [self.current] + ([self.previous] if self.previous is not None else [])
        return any(f.may_hold(i) for f in filters for i in ids)


class Tending(enum.Enum):
    NOTHING = "nothing"
    START = "start"  # no row: an untrusted one starts collecting what writers add
    ROTATE = "rotate"  # the links scanned into ``current``; ``previous`` keeps the old one
    SETTLE = "settle"  # a new scan folded into ``current``; ``previous`` dropped


def tending(held: HolderFilter | None, now: datetime) -> Tending:
    """What a full round does to the member's filter (``holder_filters``' rules): rotations and
    settles at least ``SETTLE`` apart; trusted only through a rotation, unless made by a new
    generation's first selection; a worn filter rotated small again."""
    if held is None:
        return Tending.START
    if now - held.rotated_at < SETTLE:
        return Tending.NOTHING
    if not held.trusted:
        return Tending.ROTATE
    if held.previous is not None:
        return Tending.SETTLE
    return Tending.ROTATE if held.current.fill > WORN_FILL else Tending.NOTHING
