"""A member's sync profile per kind (calendar, contacts): state, Outlook container,
cursors, webhooks, progress, counters, and the lease that keeps one member's sync
running one at a time (DESIGN §7, §8). One row per member and kind, written with ETags."""

from __future__ import annotations

import logging
import random
import secrets
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from enum import StrEnum

from shared.accounts.repository import member_key
from shared.storage import (
    ConcurrencyConflict,
    EntityAlreadyExists,
    Stored,
    TableEntity,
    TableRepository,
    partitions_starting,
)
from shared.sync.lifecycle import Answer, Life, Reason, SyncState

__all__ = ["LeaseHeld", "LeaseLost", "ProfileStore", "SyncKind", "SyncProfile", "SyncState"]

log = logging.getLogger(__name__)
_JITTER = random.Random()  # its own: the global random state stays the tests' and hypothesis's

# A step holds its member's lease for LEASE and renews it every LEASE_RENEWAL while it runs
# (``LeaseHeartbeat``): a crashed step's lease lapses within LEASE, and a live step's lease
# never does, even when its queue message became visible again and was delivered a second
# time (a late visibility renewal): two steps of one member never run at once.
# Renewed at half the lease, and again every LEASE_RETRY while a renewal fails (five tries before
# it lapses): a step of up to 15 s (an initial sync of 1,000 events) writes no renewal at all.
LEASE = timedelta(seconds=30)
LEASE_RENEWAL = timedelta(seconds=15)
LEASE_RETRY = timedelta(seconds=3)
# A step whose lease's last write was sent longer ago than this part of LEASE (20 s of 30: the
# renewal at 15 s and its retry at 18 s failed) stops before its next remote write
# (``LeaseHeartbeat.check``): the lease may lapse while that write runs, and a step taken over
# by another (a frozen instance, storage out of reach) must not write beside it.
LEASE_SAFE_PART = 2 / 3


class SyncKind(StrEnum):
    CALENDAR = "calendar"
    CONTACTS = "contacts"


class SyncProfile(TableEntity):
    """PartitionKey = member key ("ms|tenant|object"), RowKey = kind."""

    tenant_id: str
    object_id: str  # the member's mailbox (Graph user id)
    state: SyncState = SyncState.DISABLED
    reason: Reason | None = None  # why it is paused or was disabled (shown to the member)
    paused_from: SyncState | None = None  # the phase a lost authorisation paused (resumed there)
    container_id: str | None = None  # our Outlook calendar / contact folder
    conflict_policy: str = "most_recent"
    # Each Enable starts a new generation (``shared.sync.markers``): its link rows, markers
    # and queued steps; anything of another generation is ignored. None: enabled before
    # generations existed (its rows and markers carry none).
    generation: str | None = None
    # Initial sync: the CRM listing cursor (JSON) and progress.
    initial_cursor: str | None = None
    initial_done: int = 0
    initial_total: int = 0
    # An initial step that stopped for the mailbox's spent 10-minute window queued the next one
    # for then: the sweep does not take that wait for a stall.
    initial_resume_at: datetime | None = None
    # Ongoing sync: Graph delta link, CRM watermark.
    delta_link: str | None = None
    crm_watermark: datetime | None = None
    # The CRM's deleted list is read up to here; between sweeps only when the CRM called back
    # with a deletion (``crm_deletions_noticed``): one CRM call less per webhook-driven step.
    crm_deleted_watermark: datetime | None = None
    delta_window_from: datetime | None = None  # when the Graph delta round in ``delta_link`` started (its window)
    crm_deletions_noticed: bool = False
    # Outlook items our steps created after the delta read ``delta_link`` resumes from. Graph's
    # delta reports the removal of what the round's state knew: one of ours created and then
    # deleted (or dragged out) before the next round may never be reported, so that round
    # reads those it does not list (``shared.sync.delta_round``).
    unconfirmed_outlook: list[str] = []  # pydantic copies the default
    # Webhooks.
    subscription_id: str | None = None
    subscription_expires: datetime | None = None
    client_state: str | None = None
    channel_id: str | None = None
    channel_token: str | None = None
    channel_expires: datetime | None = None
    # What the member sees.
    enabled_at: datetime | None = None
    last_sync_at: datetime | None = None
    synced_items: int = 0
    conflicts: int = 0
    errors: int = 0
    last_error: str | None = None
    pending_deletions: int = 0  # a paused mass change waiting for confirmation
    mass_change_answer: Answer | None = None  # the member's answer to a mass change, until the round ends
    contact_mapping: str | None = None  # the member's ContactMapping (JSON); None: the default
    crm_time_zone: str | None = None  # the member's CRM user time zone (IANA), read at enable
    delta_queued: bool = False  # a delta step is on the queue: webhooks add no second one
    delta_queued_at: datetime | None = None  # when it was queued: a mark left too long is stale
    delta_rerun: bool = False  # a delta step found the lease held: the holder runs one more round
    # A webhook found the lease held and queued nothing: the holder's release queues the step
    # for the mark, unless the mark named only the holder's own writes' echoes (issue 20: an
    # echo arriving while its writing step runs costs no step).
    delta_for_holder: bool = False
    # What the webhooks behind ``delta_queued`` named ("outlook|{id}|{changeKey}"), when each
    # named only such items: a step ending finds them its own writes' echoes and clears the
    # mark (the queued step then has nothing to do). None: a request that must run.
    delta_items: list[str] | None = None
    swept_at: datetime | None = None  # when the sweep timer last gave this sync its daily full round
    # Rounds in a row whose writes failed for a passing reason (a 5xx, a timeout): each kept
    # its cursors and queued a ``retry`` step (``shared.sync.retries``); 0 after a clean round.
    retries: int = 0
    # One runner at a time.
    lease_owner: str | None = None
    lease_until: datetime | None = None


    @property
    def life(self) -> Life:
        """What ``shared.sync.lifecycle`` decides on."""
        return Life(self.state, self.reason, self.paused_from, self.mass_change_answer)

    def living(self, life: Life) -> SyncProfile:
        """This profile with ``life`` as decided."""
        return self.model_copy(update={"state": life.state, "reason": life.reason, "paused_from": life.paused_from,
                                       "mass_change_answer": life.answer})

    @property
    def links_partition(self) -> str:
        """Where this generation's link rows live: a step of an earlier Enable that writes
        late writes where no later generation reads."""
        base = f"{self.partition_key}|{self.row_key}"
        return f"{base}|{self.generation}" if self.generation else base

    @property
    def history_partition(self) -> str:
        """The member's history of this kind across generations: conflicts, ledger notes."""
        return f"{self.partition_key}|{self.row_key}"


class LeaseHeld(Exception):
    """Another runner holds this member's sync; the job is deferred, not lost."""

    def __init__(self, message: str, retry_after: float = LEASE.total_seconds(), owner: str | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after  # seconds until the lease lapses if nobody renews it
        self.owner = owner  # "{holder}|{random}": the holder is the queue message that took it


class LeaseLost(LeaseHeld):
    """The running step's lease was taken by another, or not renewed in time: the step stops
    before its next remote write, and its message comes back once the lease lapsed."""


class ProfileStore:
    def __init__(
        self, repository: TableRepository[SyncProfile], clock: Callable[[], datetime] = lambda: datetime.now(UTC)
    ) -> None:
        self._repo = repository
        self._now = clock

    def get(self, member_key: str, kind: SyncKind) -> Stored[SyncProfile] | None:
        return self._repo.get(member_key, kind.value)

    def create_or_get(self, profile: SyncProfile) -> Stored[SyncProfile]:
        try:
            return self._repo.insert(profile)
        except EntityAlreadyExists:
            stored = self._repo.get(profile.partition_key, profile.row_key)
            assert stored is not None
            return stored

    def save(self, profile: SyncProfile, etag: str) -> Stored[SyncProfile]:
        return self._repo.replace(profile, etag)

    def update(self, member_key: str, kind: SyncKind, change: Callable[[SyncProfile], SyncProfile], *,
               known: Stored[SyncProfile] | None = None) -> SyncProfile:
        """Read-modify-write with ETag, retried on a lost race. ``known``: the row just read,
        tried first instead of a read."""
        tries = 8
        for attempt in range(1, tries + 1):
            stored, known = known or self.get(member_key, kind), None
            if stored is None:
                raise LookupError(f"no {kind} profile for {member_key}")
            updated = change(stored.entity)
            if updated == stored.entity:
                return updated  # nothing to write (and no ETag moved under a running step)
            try:
                return self._repo.replace(updated, stored.etag).entity
            except ConcurrencyConflict:
                # A flood of webhooks writes one row: a random pause spreads the retries out
                # (propagation-under-load: eight immediate retries lost eight races in a row).
                if attempt < tries:
                    time.sleep(_JITTER.uniform(0, 0.02 * attempt))
        raise ConcurrencyConflict(f"{kind} profile of {member_key} kept changing")

    def acquire(
        self, member_key: str, kind: SyncKind, *, holder: str | None = None, stored: Stored[SyncProfile] | None = None,
        taking: Callable[[SyncProfile], dict[str, object]] | None = None,
    ) -> tuple[SyncProfile, str, str]:
        """Take the member's lease (or raise LeaseHeld); returns profile, etag, owner token.
        ``holder`` names the taker (the queue message being processed, for the logs);
        ``stored``: the row just read (saves a read); ``taking``: more fields to change in the
        same write (given the row as read)."""
        stored = stored or self.get(member_key, kind)
        if stored is None:
            raise LookupError(f"no {kind} profile for {member_key}")
        now = self._now()
        until = stored.entity.lease_until
        if until is not None and until > now:
            raise LeaseHeld(f"{kind} sync of {member_key} is running elsewhere", (until - now).total_seconds() + 1,
                            stored.entity.lease_owner)
        owner = f"{holder or 'step'}|{secrets.token_hex(8)}"
        extra = taking(stored.entity) if taking else {}
        leased = stored.entity.model_copy(update={**extra, "lease_owner": owner, "lease_until": now + LEASE})
        try:
            written = self._repo.replace(leased, stored.etag)
        except ConcurrencyConflict:
            raise LeaseHeld(f"{kind} sync of {member_key} was just taken", 1) from None
        return written.entity, written.etag, owner

    def extend(self, member_key: str, kind: SyncKind, owner: str, known: Stored[SyncProfile] | None = None,
               change: Callable[[SyncProfile], SyncProfile] | None = None) -> Stored[SyncProfile] | None:
        """Extend the lease ``owner`` holds: the row as written, or None when the lease is no
        longer theirs. ``known``: the row as this owner last wrote it; unchanged since, it is
        written without a read (a conflict falls back to reading it). ``change``: what else
        the holder writes with it (given the row as it is; a step's result shown before the
        step ends), keeping the row's lease fields."""

        def extended(row: SyncProfile) -> SyncProfile:
            changed = change(row) if change is not None else row
            return changed.model_copy(update={"lease_owner": owner, "lease_until": self._now() + LEASE})

        if known is not None and known.entity.lease_owner == owner:
            try:
                return self._repo.replace(extended(known.entity), known.etag)
            except ConcurrencyConflict:
                pass  # changed meanwhile (a webhook's mark): read it
        for _ in range(8):
            stored = self.get(member_key, kind)
            if stored is None or stored.entity.lease_owner != owner:
                return None
            try:
                return self._repo.replace(extended(stored.entity), stored.etag)
            except ConcurrencyConflict:
                continue
        raise ConcurrencyConflict(f"{kind} profile of {member_key} kept changing")

    def release(self, profile: SyncProfile, etag: str) -> Stored[SyncProfile]:
        return self._repo.replace(profile.model_copy(update={"lease_owner": None, "lease_until": None}), etag)

    def heartbeat(self, member_key: str, kind: SyncKind, owner: str, known: Stored[SyncProfile] | None = None) -> LeaseHeartbeat:
        return LeaseHeartbeat(self, member_key, kind, owner, known)

    def of_tenant(self, tenant_id: str) -> list[SyncProfile]:
        """Every profile of the tenant's members: one range query (paged by 1,000)."""
        where, parameters = partitions_starting(member_key(tenant_id, ""))
        return [s.entity for s in self._repo.query(where=where, parameters=parameters)]

    def paused(self) -> list[SyncProfile]:
        """Every paused profile (the sweep retries those paused by a lost authorisation)."""
        return [s.entity for s in self._repo.query(where="state eq @p", parameters={"p": "paused"})]

    def all_active(self) -> list[SyncProfile]:
        """Every profile that syncs (for the delta sweep and the renewal timer)."""
        return [
            s.entity
            for s in self._repo.query(where="state eq @a or state eq @i", parameters={"a": "active", "i": "initial"})
        ]


class LeaseHeartbeat:
    """Renews a lease every LEASE_RENEWAL from a background thread while a step runs
    (a context manager). ``lost`` tells whether the lease was found taken."""

    def __init__(self, store: ProfileStore, member_key: str, kind: SyncKind, owner: str,
                 known: Stored[SyncProfile] | None = None) -> None:
        self._store, self._member, self._kind, self.owner = store, member_key, kind, owner
        # The row as the lease's last write left it: renewals and the release write it without
        # a read while nobody else changed it.
        self.latest = known
        self._writing = threading.Lock()  # a renewal and a publish: one after the other, each with the last ETag
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._beat, name=f"lease-{kind}", daemon=True)
        self.lost = False
        # When the lease's last write was sent (the take: just before, which the margin covers).
        self._written = time.monotonic()

    def __enter__(self) -> LeaseHeartbeat:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def stop(self) -> None:
        """No more renewals (idempotent): called before the lease is released."""
        self._stop.set()
        if self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join()

    def publish(self, change: Callable[[SyncProfile], SyncProfile]) -> bool:
        """Write part of the step's result while it holds the lease (and renew it), for others to
        see before the step ends: ``change`` gets the row as it is. False when the lease was
        found taken (the release then finds so too); a storage failure is the step's, as any
        of its writes'."""
        return self._renew(change)

    def check(self) -> None:
        """Raise ``LeaseLost`` unless the lease is surely still this step's for a while: not
        found taken, and written less than ``LEASE_SAFE_PART`` of ``LEASE`` ago (this process's
        clock; a renewal that keeps failing lets it lapse at ``LEASE``)."""
        if self.lost:
            raise LeaseLost(f"the {self._kind.value} lease of {self._member} was taken while its step ran")
        if time.monotonic() - self._written > LEASE.total_seconds() * LEASE_SAFE_PART:
            raise LeaseLost(f"the {self._kind.value} lease of {self._member} could not be renewed in time")

    def _renew(self, change: Callable[[SyncProfile], SyncProfile] | None = None) -> bool:
        with self._writing:
            if self.lost:
                return False
            sent = time.monotonic()
            written = self._store.extend(self._member, self._kind, self.owner, self.latest, change)
            self.latest = written
            if written is None:
                self.lost = True
                log.error("%s lease of %s was taken while its step ran", self._kind.value, self._member)
            else:
                self._written = sent
            return written is not None

    def _beat(self) -> None:
        wait = LEASE_RENEWAL.total_seconds()
        while not self._stop.wait(wait):
            try:
                if not self._renew():
                    return
                # Counted from when the renewal was sent: a slow answer must not push the next
                # one past the point where ``check`` stops the step.
                wait = max(0.0, LEASE_RENEWAL.total_seconds() - (time.monotonic() - self._written))
            except Exception:  # a storage blip: tried again soon, well within LEASE
                log.warning("could not renew the %s lease of %s", self._kind.value, self._member, exc_info=True)
                wait = LEASE_RETRY.total_seconds()
