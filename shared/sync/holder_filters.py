"""Each member's filter of the CRM records their links name, beside their row of the org's index
(``crmchannels``), so a CRM deletion's routing asks the few members whose links may name the
record instead of every member with that sync on (issue 20; ``crm_routing``).

Table ``crmchannels``, partition ``"{org id}|{kind}"``, RowKey ``ids|{member key}``: a
``CrmIdFilter`` (``current``, and ``previous`` for a while after a rotation), whether it is
``trusted``, and when it was last rotated. The routing reads the org's rows in one query
(1,000 a page).

What a trusted row promises: **every CRM id a link row of the member's current generation
names (pending creates included) is in ``current`` or ``previous``.** A row that is not trusted
(or no row) promises nothing: the member is asked, as before. It is kept so:

- **Before link rows naming new CRM ids are written, the ids are added** to the row
  (``announce``: read, OR, write if unchanged since; no write when they are all in already;
  nothing when the member has no row).
- **A new generation's first selection makes the row trusted at once**: its links are empty,
  and every later writer of them adds first. It is a union, never a replacement: a racing
  Enable's ids stay.
- **A row made any other way** (a member enabled before filters existed; a daily full round
  finding none) **becomes trusted only through a scan of the links made at least ``SETTLE``
  after it**: a writer that found no row, and so added nothing, committed within one
  execution (10 minutes at most, host.json), before that scan read the links.
- **A rotation** (making a row trusted; a worn filter made small again) reads the row, scans
  the links, and writes ``previous`` = the old ``current``, ``current`` = the scan, if the row
  is unchanged since it was read. An id added before that read whose link is committed after
  the scan is in ``previous``; the **settle**, at least ``SETTLE`` later, folds a new scan into
  ``current`` and drops ``previous``. Rotations and settles are at least ``SETTLE`` apart.
- **Disable deletes the row** with the generation's links; an Enable after it makes a new one.

A member's filter may say "maybe" of a record their links do not name (about 1 % of ids, or a
deleted link's): that member is asked, as before; never the other way round.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Collection, Iterator
from datetime import datetime
from typing import Any

from shared.expiring_cache import ExpiringCache
from shared.storage import ConcurrencyConflict, EntityAlreadyExists, Stored, TableEntity, TableRepository
from shared.sync.crm_id_filter import CrmIdFilter, HolderFilter, Tending, tending
from shared.sync.org_channels import partition
from shared.sync.profiles import SyncKind

log = logging.getLogger(__name__)

ROW_PREFIX, ROW_END = "ids|", "ids}"
ATTEMPTS = 5  # ETag races of one member's writers (an initial page and a webhook's step)
# Members whose row a full round found needing nothing: not read again for this long (skipping a
# tend is always safe: it only makes rows trusted sooner and small again).
TENDED_MEMO_SECONDS = 3600.0
# What this process last saw of a member's filter, for one Enable: an id in it is in the row (in
# ``current``, or in ``previous`` after one rotation, and rotations are ``SETTLE`` apart), until
# a scan names its link, as long as the link is written within ``SETTLE`` of the sight: 5
# minutes of memory and an execution's 10 are within 30. Disable deletes the row: the next
# Enable's ids are memorised under its own generation.
KNOWN_SECONDS = 300.0


class HolderFilterRow(TableEntity):
    """PartitionKey = "{org id}|{kind}", RowKey = "ids|{member key}"."""

    member: str
    current: bytes
    previous: bytes | None = None
    trusted: bool = False
    rotated_at: datetime

    def held(self) -> HolderFilter:
        return HolderFilter(CrmIdFilter(self.current), CrmIdFilter(self.previous) if self.previous else None,
                            self.trusted, self.rotated_at)


def row_key(member: str) -> str:
    return f"{ROW_PREFIX}{member}"


class HolderFilters:
    def __init__(self, rows: TableRepository[Any], clock: Callable[[], datetime]) -> None:
        self._rows = rows
        self._now = clock
        seconds = lambda: clock().timestamp()  # noqa: E731 - the memos age with the sync's clock
        self._tended: ExpiringCache[tuple[str, str], bool] = ExpiringCache(100_000, seconds)
        self._known: ExpiringCache[tuple[str, str, str], bytes] = ExpiringCache(1_000, seconds)

    def rows(self, org_id: str, kind: SyncKind) -> dict[str, HolderFilterRow]:
        """The org's rows, by member key (one query a thousand members)."""
        return {s.entity.member: s.entity for s in self._query(org_id, kind)}

    def ruled_out(self, org_id: str, kind: SyncKind, ids: Collection[str]) -> set[str]:
        """The members whose trusted filter surely names none of ``ids``: the org's rows read a
        page at a time (1,000 members) and let go, never all held at once."""
        return {s.entity.member for s in self._query(org_id, kind) if not s.entity.held().may_name_any(ids)}

    def _query(self, org_id: str, kind: SyncKind) -> Iterator[Stored[HolderFilterRow]]:
        return self._rows.query(partition(org_id, kind), where="RowKey ge @lo and RowKey lt @hi",
                                parameters={"lo": ROW_PREFIX, "hi": ROW_END})

    def announce(self, org_id: str, kind: SyncKind, member: str, ids: Collection[str], *, fresh: bool = False,
                 generation: str | None = None) -> None:
        """``ids`` are about to be named by the member's link rows: into their row first (no row:
        nothing, they are asked). ``fresh``: the first selection of a new generation, whose links
        are empty: the row is made (or kept) and trusted. ``generation``: the Enable whose links
        these are; ids this process saw in the row for it within ``KNOWN_SECONDS`` are not read
        again (an initial sync's pages name the selection's ids, announced with it)."""
        wanted = sorted(set(ids))
        if not wanted and not fresh:
            return
        key = (partition(org_id, kind), row_key(member))
        known_key = (*key, generation or "")
        known = self._known.get(known_key)
        if not fresh and known is not None and CrmIdFilter(known.value).holds_all(wanted):
            return
        for attempt in range(ATTEMPTS):
            # A fresh selection tries the insert first: a new member's first Enable is one write.
            stored = None if fresh and attempt == 0 else self._rows.get(*key)
            if stored is None:
                if not fresh:
                    return
                if self._made_trusted(key, member, wanted, known_key):
                    return
                continue
            row = stored.entity
            current = CrmIdFilter(row.current)
            if current.holds_all(wanted) and (row.trusted or not fresh):
                self._known.put(known_key, row.current, KNOWN_SECONDS)
                return
            added = current.with_ids(wanted).bits
            try:
                self._rows.replace(row.model_copy(update={"current": added, "trusted": row.trusted or fresh}), stored.etag)
            except ConcurrencyConflict:
                continue
            self._known.put(known_key, added, KNOWN_SECONDS)
            return
        raise ConcurrencyConflict(f"the CRM-id filter of {member} ({kind.value}) kept changing")

    def _made_trusted(self, key: tuple[str, str], member: str, ids: list[str], known_key: tuple[str, str, str]) -> bool:
        made = CrmIdFilter.of(ids).bits
        try:
            self._rows.insert(HolderFilterRow(partition_key=key[0], row_key=key[1], member=member, current=made,
                                              trusted=True, rotated_at=self._now()))
        except EntityAlreadyExists:
            return False
        self._tended.put(key, True, TENDED_MEMO_SECONDS)
        self._known.put(known_key, made, KNOWN_SECONDS)
        return True

    def tend(self, org_id: str, kind: SyncKind, member: str, scan: Callable[[], list[str]]) -> Tending:
        """After a full round: the member's row made, rotated or settled as ``tending`` says,
        ``scan`` listing the CRM ids their links name now. A race with a writer leaves it for the
        next round (the writer's ids are in, which is all that matters)."""
        key = (partition(org_id, kind), row_key(member))
        if self._tended.get(key) is not None:
            return Tending.NOTHING
        stored = self._rows.get(*key)
        decision = tending(stored.entity.held() if stored else None, self._now())
        try:
            if decision is Tending.START:
                self._rows.insert(HolderFilterRow(partition_key=key[0], row_key=key[1], member=member,
                                                  current=CrmIdFilter.sized_for(0).bits, rotated_at=self._now()))
            elif stored is not None and decision is Tending.ROTATE:
                ids = scan()
                self._rows.replace(stored.entity.model_copy(update={
                    "current": CrmIdFilter.of(ids).bits, "previous": stored.entity.current, "trusted": True,
                    "rotated_at": self._now()}), stored.etag)
            elif stored is not None and decision is Tending.SETTLE:
                ids = scan()
                self._rows.replace(stored.entity.model_copy(update={
                    "current": CrmIdFilter(stored.entity.current).with_ids(ids).bits, "previous": None,
                    "rotated_at": self._now()}), stored.etag)
            elif stored is not None and stored.entity.trusted and stored.entity.previous is None:
                self._tended.put(key, True, TENDED_MEMO_SECONDS)
        except (ConcurrencyConflict, EntityAlreadyExists):
            log.info("the CRM-id filter of %s (%s) changed while it was tended: left for the next round", member, kind.value)
        return decision

    def forget(self, org_id: str, kind: SyncKind, member: str) -> None:
        """Disable: the member's links go, and their row with them."""
        key = (partition(org_id, kind), row_key(member))
        self._rows.delete(*key)
        self._tended.forget(key)  # what it knew of an Enable's ids is under that Enable's generation
